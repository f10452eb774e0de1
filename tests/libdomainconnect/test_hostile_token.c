/*
 * Hostile token endpoints and API responses: malformed token bodies,
 * Retry-After garbage, and providers that echo a secret back escaped or in
 * pieces (JSON \u escapes, %XX of unreserved bytes, split across fields,
 * inside a 409 conflicts array).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_fixture.h"

#define TOKEN_PATH "/v2/oauth/access_token"
#define REDIRECT "https://app.example/cb"
#define SECRET "Sec9Client7Secret3"
#define CODE "Code4Grant8Value2x"
#define ACCESS "Acc5Token1Zq8r6zW"

typedef struct outcome {
	int calls;
	dc_error err;
	char *conflicts; /* json_dumps of err->conflicts during the callback */
	dc_token *token;
} outcome;

static net_fixture f;
static char url_api[256];

static void token_cb(void *arg, dc_token *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->err = *err;
	o->err.conflicts = NULL;
	o->token = result;
}

static void response_cb(void *arg, const dc_response *result, const dc_error *err)
{
	outcome *o = arg;

	(void)result;
	o->calls++;
	o->err = *err;
	o->err.conflicts = NULL;
	if (err->conflicts != NULL)
		o->conflicts = json_dumps(err->conflicts, JSON_COMPACT);
}

static void teardown(void)
{
	nf_stop(&f);
}

static void serve(const char *method, const char *path, int status, const char *body,
                  const char *header)
{
	ts_response *r = nf_route_add(&f, method, path);
	r->status = status;
	r->body = body;
	r->headers[0] = header;
	r->content_type = "application/json";
	cr_assert(nf_start(&f, NULL, 0), "test servers did not start");
	snprintf(url_api, sizeof(url_api), "%s", nf_url(&f, "api.provider.test", ""));
}

static outcome exchange(void)
{
	dc_provider p = {.name = "hostile", .url_api = url_api, .client_id = "client.example",
	                 .client_secret = SECRET, .token_placement = DC_TOKEN_PARAMS_QUERY};
	outcome o = {0};
	dc_error err = {0};

	dc_error_clear(&err);
	dc_status st = dc_exchange_code_start(f.client, &p, CODE, REDIRECT, token_cb, &o, NULL, &err);
	cr_assert_eq(st, DC_OK, "start failed: %s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "token request did not finish");
	return o;
}

static outcome apply(void)
{
	dc_provider p = {.name = "hostile", .url_api = url_api, .client_id = "c"};
	dc_apply_request ar = {.access_token = ACCESS, .provider_id = "example.org",
	                       .service_id = "web", .domain = "shop.test"};
	outcome o = {0};
	dc_error err = {0};

	dc_error_clear(&err);
	dc_status st = dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err);
	cr_assert_eq(st, DC_OK, "start failed: %s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "apply request did not finish");
	return o;
}

/* Fails when any fragment of 6 or more bytes of a secret is in text. */
static void assert_no_fragment(const char *field, const char *text)
{
	static const char *const secrets[] = {SECRET, CODE, ACCESS};

	for (size_t s = 0; s < 3; s++) {
		size_t len = strlen(secrets[s]);
		for (size_t i = 0; i + 6 <= len; i++) {
			char piece[7];
			memcpy(piece, secrets[s] + i, 6);
			piece[6] = '\0';
			cr_assert(!nf_contains(text, piece), "%s leaks part of a secret: %s", field, text);
		}
	}
}

static void assert_clean(const outcome *o)
{
	assert_no_fragment("message", o->err.message);
	assert_no_fragment("oauth_error", o->err.oauth_error);
	assert_no_fragment("oauth_description", o->err.oauth_description);
	if (o->conflicts != NULL)
		assert_no_fragment("conflicts", o->conflicts);
}

/* ---- Malformed success bodies ------------------------------------------- */

static dc_status exchange_with(const char *body, outcome *o)
{
	serve("POST", TOKEN_PATH, 200, body, NULL);
	*o = exchange();
	return o->err.status;
}

Test(hostile_token, expires_in_negative, .fini = teardown)
{
	outcome o;
	cr_assert_eq(exchange_with("{\"access_token\":\"A\",\"token_type\":\"bearer\","
	                           "\"expires_in\":-1}", &o),
	             DC_ERR_INVALID_RESPONSE);
	cr_assert_null(o.token);
}

Test(hostile_token, expires_in_huge_integer, .fini = teardown)
{
	outcome o;
	cr_assert_eq(exchange_with("{\"access_token\":\"A\",\"token_type\":\"bearer\","
	                           "\"expires_in\":99999999999999999999}", &o),
	             DC_ERR_INVALID_RESPONSE);
}

Test(hostile_token, expires_in_fraction, .fini = teardown)
{
	outcome o;
	cr_assert_eq(exchange_with("{\"access_token\":\"A\",\"token_type\":\"bearer\","
	                           "\"expires_in\":3600.5}", &o),
	             DC_ERR_INVALID_RESPONSE);
}

Test(hostile_token, expires_in_string_garbage, .fini = teardown)
{
	static const char *const values[] = {"\"36x\"", "\"-5\"", "\" 60\"", "\"\"",
	                                     "\"99999999999\"", "\"1e3\"", "true", "[60]"};
	serve("POST", TOKEN_PATH, 200, NULL, NULL);
	/* One server, one body per round: the route's body is swapped in place. */
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char body[256];
		snprintf(body, sizeof(body),
		         "{\"access_token\":\"A\",\"token_type\":\"bearer\",\"expires_in\":%s}",
		         values[i]);
		f.routes[0].resp.body = body;
		outcome o = exchange();
		cr_expect_eq(o.err.status, DC_ERR_INVALID_RESPONSE, "expires_in %s: %s", values[i],
		             dc_status_name(o.err.status));
		dc_token_free(o.token);
	}
}

Test(hostile_token, token_type_not_bearer, .fini = teardown)
{
	outcome o;
	cr_assert_eq(exchange_with("{\"access_token\":\"A\",\"token_type\":\"mac\","
	                           "\"expires_in\":60}", &o),
	             DC_ERR_INVALID_RESPONSE);
}

Test(hostile_token, html_with_status_200, .fini = teardown)
{
	outcome o;
	cr_assert_eq(exchange_with("<html><body>Welcome " ACCESS "</body></html>", &o),
	             DC_ERR_INVALID_RESPONSE);
	assert_clean(&o);
}

Test(hostile_token, duplicate_access_token, .fini = teardown)
{
	outcome o;
	cr_assert_eq(exchange_with("{\"access_token\":\"A\",\"access_token\":\"B\","
	                           "\"token_type\":\"bearer\",\"expires_in\":60}", &o),
	             DC_ERR_INVALID_RESPONSE);
}

Test(hostile_token, refresh_token_wrong_type, .fini = teardown)
{
	outcome o;
	cr_assert_eq(exchange_with("{\"access_token\":\"A\",\"token_type\":\"bearer\","
	                           "\"expires_in\":60,\"refresh_token\":{\"x\":1}}", &o),
	             DC_ERR_INVALID_RESPONSE);
}

/* ---- Retry-After -------------------------------------------------------- */

static long retry_after_for(const char *header)
{
	serve("POST", TOKEN_PATH, 429, "{}", header);
	outcome o = exchange();
	cr_assert_eq(o.err.status, DC_ERR_RATE_LIMITED, "%s", o.err.message);
	return o.err.retry_after;
}

Test(hostile_token, retry_after_negative, .fini = teardown)
{
	cr_assert_eq(retry_after_for("Retry-After: -30"), -1);
}

Test(hostile_token, retry_after_huge_clamped, .fini = teardown)
{
	cr_assert_eq(retry_after_for("Retry-After: 999999999999999999999999"), 86400);
}

Test(hostile_token, retry_after_garbage, .fini = teardown)
{
	cr_assert_eq(retry_after_for("Retry-After: soon, maybe"), -1);
}

Test(hostile_token, retry_after_past_date_is_zero, .fini = teardown)
{
	cr_assert_eq(retry_after_for("Retry-After: Wed, 21 Oct 2015 07:28:00 GMT"), 0);
}

Test(hostile_token, retry_after_far_date_clamped, .fini = teardown)
{
	cr_assert_eq(retry_after_for("Retry-After: Fri, 31 Dec 9999 23:59:59 GMT"), 86400);
}

/* ---- Secrets echoed back ------------------------------------------------ */

Test(hostile_token, echo_in_json_escapes, .fini = teardown)
{
	/* Valid JSON without an "error" string: the body excerpt is shown. */
	serve("POST", TOKEN_PATH, 400,
	      "{\"error\":5,\"got\":\"\\u0053ec9Client7Secret3 \\u0043ode4Grant8Value2x\"}", NULL);
	outcome o = exchange();
	cr_assert_eq(o.err.status, DC_ERR_OAUTH, "%s", o.err.message);
	assert_clean(&o);
}

Test(hostile_token, echo_in_mixed_case_escapes, .fini = teardown)
{
	/* %43 is 'C', an unreserved byte that RFC 3986 encoding leaves alone. */
	serve("POST", TOKEN_PATH, 400, "bad code %43ode4Grant8Value2x", NULL);
	outcome o = exchange();
	cr_assert_eq(o.err.status, DC_ERR_OAUTH, "%s", o.err.message);
	assert_clean(&o);
}

Test(hostile_token, echo_split_across_fields, .fini = teardown)
{
	serve("POST", TOKEN_PATH, 400,
	      "{\"error\":\"Sec9Client\",\"error_description\":\"7Secret3\"}", NULL);
	outcome o = exchange();
	cr_assert_eq(o.err.status, DC_ERR_OAUTH, "%s", o.err.message);
	assert_clean(&o);
}

Test(hostile_token, echo_in_conflict_records, .fini = teardown)
{
	serve("POST", "/v2/domainTemplates/providers/example.org/services/web/apply", 409,
	      "{\"records\":[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"Bearer "
	      "\\u0041cc5Token1Zq8r6zW\"}]}",
	      NULL);
	outcome o = apply();
	cr_assert_eq(o.err.status, DC_ERR_CONFLICT, "%s", o.err.message);
	cr_assert_not_null(o.conflicts, "the records array should be kept");
	assert_clean(&o);
	free(o.conflicts);
}

Test(hostile_token, huge_malformed_409, .fini = teardown)
{
	size_t len = 900 * 1024;
	char *body = malloc(len + 1);
	cr_assert_not_null(body);
	memset(body, '[', len);
	body[len] = '\0';
	serve("POST", "/v2/domainTemplates/providers/example.org/services/web/apply", 409, body,
	      NULL);
	outcome o = apply();
	cr_assert_eq(o.err.status, DC_ERR_CONFLICT, "%s", o.err.message);
	cr_assert_null(o.conflicts);
	free(body);
}
