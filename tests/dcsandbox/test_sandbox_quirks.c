/*
 * dcsandbox provider quirks, all on at provider beta: the service id in the
 * consent path, client credentials in the query on refresh, and plain-text
 * token errors. The consent page for people is tested here too.
 */
#include "test_sandbox_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define REDIRECT_ENC "https%3A%2F%2Fapp.sandbox.test%2Fcallback"
/* The same, for use inside a printf format. */
#define REDIRECT_FMT "https%%3A%%2F%%2Fapp.sandbox.test%%2Fcallback"
#define CONSENT "/consent/v2/domainTemplates/providers/exampleservice.test"

static sbh *h;

static void start(void)
{
	h = sbh_start_default(NULL, 0);
	cr_assert_not_null(h, "dcsandbox did not start");
}

static void stop(void)
{
	sbh_free(h);
	h = NULL;
}

TestSuite(sandbox_quirks, .init = start, .fini = stop, .timeout = 60);

static char *beta_code(void)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_BETA_HOST, CONSENT "/services/web?domain=" SBH_ZONE "&client_id=" SBH_CLIENT
		"&redirect_uri=" REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	char *code = sbh_query_value(r.location, "code");
	cr_assert_not_null(code, "consent failed: %ld %s", r.status, r.location);
	sbh_resp_clear(&r);
	return code;
}

Test(sandbox_quirks, consent_needs_service_in_path)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_BETA_HOST, CONSENT "?domain=" SBH_ZONE "&client_id=" SBH_CLIENT "&redirect_uri="
		REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 302);
	char *error = sbh_query_value(r.location, "error");
	cr_expect_str_eq(error != NULL ? error : "", "invalid_request");
	free(error);
	sbh_resp_clear(&r);

	sbh_request(h, "GET", SBH_BETA_HOST, CONSENT "/services/web?domain=" SBH_ZONE "&client_id=" SBH_CLIENT
		"&redirect_uri=" REDIRECT_ENC "&scope=web%20mail", NULL, NULL, NULL, &r);
	error = sbh_query_value(r.location, "error");
	cr_expect_str_eq(error != NULL ? error : "", "invalid_scope");
	free(error);
	sbh_resp_clear(&r);

	char *code = beta_code();
	free(code);
}

Test(sandbox_quirks, plain_text_token_errors)
{
	sbh_resp r;
	sbh_request(h, "POST", SBH_BETA_HOST, "/v2/oauth/access_token?grant_type=authorization_code&code=nope"
		"&redirect_uri=" REDIRECT_ENC "&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 400);
	cr_expect_not_null(strstr(r.content_type, "text/plain"), "%s", r.content_type);
	cr_expect_null(json_loads(r.body, 0, NULL), "the error body is JSON: %s", r.body);
	sbh_resp_clear(&r);

	/* Alpha has no quirk: JSON errors. */
	sbh_request(h, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token?grant_type=authorization_code&code=nope"
		"&redirect_uri=" REDIRECT_ENC "&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, NULL, NULL, NULL, &r);
	cr_expect_not_null(strstr(r.content_type, "application/json"));
	sbh_resp_clear(&r);
}

Test(sandbox_quirks, refresh_needs_query_credentials)
{
	char *code = beta_code();
	char query[512];
	snprintf(query, sizeof(query), "/v2/oauth/access_token?grant_type=authorization_code&code=%s&redirect_uri="
		REDIRECT_FMT, code);
	sbh_resp r;
	sbh_request(h, "POST", SBH_BETA_HOST, query, NULL, "application/json",
		"{\"client_id\":\"" SBH_CLIENT "\",\"client_secret\":\"" SBH_SECRET "\"}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_t *tokens = json_loads(r.body, 0, NULL);
	const char *refresh = json_string_value(json_object_get(tokens, "refresh_token"));
	sbh_resp_clear(&r);

	/* Credentials only in the body: rejected on refresh. */
	snprintf(query, sizeof(query), "/v2/oauth/access_token?grant_type=refresh_token&refresh_token=%s", refresh);
	sbh_request(h, "POST", SBH_BETA_HOST, query, NULL, "application/json",
		"{\"client_id\":\"" SBH_CLIENT "\",\"client_secret\":\"" SBH_SECRET "\"}", &r);
	cr_expect_eq(r.status, 400, "%s", r.body);
	sbh_resp_clear(&r);

	/* In the query: accepted; beta does not rotate, so the same refresh token comes back. */
	snprintf(query, sizeof(query), "/v2/oauth/access_token?grant_type=refresh_token&refresh_token=%s&client_id="
		SBH_CLIENT "&client_secret=" SBH_SECRET, refresh);
	sbh_request(h, "POST", SBH_BETA_HOST, query, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	cr_expect_not_null(strstr(r.body, refresh));
	sbh_resp_clear(&r);
	json_decref(tokens);
	free(code);
}

Test(sandbox_quirks, consent_page_escapes_and_buttons)
{
	/* A provider without auto-approve shows the page. */
	sbh *manual = sbh_new();
	json_t *config = sbh_default_config(manual->templates);
	json_object_set_new(json_array_get(json_object_get(config, "providers"), 0), "auto_approve", json_false());
	cr_assert(sbh_start(manual, config, NULL, 0));
	json_decref(config);

	sbh_resp r;
	sbh_request(manual, "GET", SBH_ALPHA_HOST, CONSENT "?domain=" SBH_ZONE "&client_id=" SBH_CLIENT
		"&redirect_uri=" REDIRECT_ENC "&scope=web&state=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22x", NULL, NULL, NULL,
		&r);
	cr_assert_eq(r.status, 200);
	cr_expect_not_null(strstr(r.content_type, "text/html"));
	cr_expect_null(strstr(r.body, "<script>"), "unescaped state in page");
	cr_expect_not_null(strstr(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;&quot;x"), "%s", r.body);
	cr_expect_not_null(strstr(r.body, "value=\"approve\""));
	cr_expect_not_null(strstr(r.body, "value=\"deny\""));
	cr_expect_not_null(strstr(r.body, "method=\"post\""));
	sbh_resp_clear(&r);

	const char *form = "domain=" SBH_ZONE "&client_id=" SBH_CLIENT "&redirect_uri=" REDIRECT_ENC
		"&scope=web&state=s9&decision=";
	char body[512];
	snprintf(body, sizeof(body), "%sapprove", form);
	sbh_request(manual, "POST", SBH_ALPHA_HOST, CONSENT, NULL, "application/x-www-form-urlencoded", body, &r);
	cr_expect_eq(r.status, 302);
	char *code = sbh_query_value(r.location, "code");
	char *state = sbh_query_value(r.location, "state");
	cr_expect_not_null(code);
	cr_expect_str_eq(state != NULL ? state : "", "s9");
	free(code);
	free(state);
	sbh_resp_clear(&r);

	snprintf(body, sizeof(body), "%sdeny", form);
	sbh_request(manual, "POST", SBH_ALPHA_HOST, CONSENT, NULL, "application/x-www-form-urlencoded", body, &r);
	cr_expect_eq(r.status, 302);
	char *error = sbh_query_value(r.location, "error");
	cr_expect_str_eq(error != NULL ? error : "", "access_denied");
	free(error);
	sbh_resp_clear(&r);
	sbh_free(manual);
}

Test(sandbox_quirks, auto_approve_flag_overrides)
{
	sbh *manual = sbh_new();
	json_t *config = sbh_default_config(manual->templates);
	json_object_set_new(json_array_get(json_object_get(config, "providers"), 0), "auto_approve", json_false());
	const char *args[] = {"--auto-approve"};
	cr_assert(sbh_start(manual, config, args, 1));
	json_decref(config);
	sbh_resp r;
	sbh_request(manual, "GET", SBH_ALPHA_HOST, CONSENT "?domain=" SBH_ZONE "&client_id=" SBH_CLIENT
		"&redirect_uri=" REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 302);
	sbh_resp_clear(&r);
	sbh_free(manual);
}

Test(sandbox_quirks, revert_unsupported_501)
{
	sbh *other = sbh_new();
	json_t *config = sbh_default_config(other->templates);
	json_object_set_new(json_array_get(json_object_get(config, "providers"), 0), "revert", json_false());
	cr_assert(sbh_start(other, config, NULL, 0));
	json_decref(config);
	sbh_resp r;
	sbh_request(other, "POST", SBH_ALPHA_HOST, "/v2/domainTemplates/providers/exampleservice.test/services/web/revert"
		"?domain=" SBH_ZONE, "any", NULL, NULL, &r);
	cr_expect_eq(r.status, 501);
	sbh_resp_clear(&r);
	sbh_free(other);
}

/* Start a sandbox whose provider alpha has KEY set to VALUE (reference stolen). */
static sbh *start_alpha_with(const char *key, json_t *value)
{
	sbh *s = sbh_new();
	json_t *config = sbh_default_config(s->templates);
	json_object_set_new(json_array_get(json_object_get(config, "providers"), 0), key, value);
	cr_assert(sbh_start(s, config, NULL, 0), "dcsandbox did not start with %s", key);
	json_decref(config);
	return s;
}

Test(sandbox_quirks, async_disabled_hides_consent)
{
	sbh *s = start_alpha_with("async", json_false());
	sbh_resp r;
	sbh_request(s, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_null(strstr(r.body, "urlAsyncUX"), "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(s, "GET", SBH_ALPHA_HOST, CONSENT "?domain=" SBH_ZONE "&client_id=" SBH_CLIENT "&redirect_uri="
		REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 404);
	sbh_resp_clear(&r);
	sbh_free(s);
}

Test(sandbox_quirks, code_lifetime_expires_code)
{
	sbh *s = start_alpha_with("code_lifetime", json_integer(1));
	sbh_resp r;
	sbh_request(s, "GET", SBH_ALPHA_HOST, CONSENT "?domain=" SBH_ZONE "&client_id=" SBH_CLIENT "&redirect_uri="
		REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	char *code = sbh_query_value(r.location, "code");
	cr_assert_not_null(code);
	sbh_resp_clear(&r);
	usleep(1100 * 1000);
	char query[512];
	snprintf(query, sizeof(query), "/v2/oauth/access_token?grant_type=authorization_code&code=%s&redirect_uri="
		REDIRECT_FMT "&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, code);
	sbh_request(s, "POST", SBH_ALPHA_HOST, query, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 400);
	cr_expect_not_null(strstr(r.body, "invalid_grant"), "%s", r.body);
	sbh_resp_clear(&r);
	free(code);
	sbh_free(s);
}

Test(sandbox_quirks, access_token_lifetime_applies)
{
	sbh *s = start_alpha_with("access_token_lifetime", json_integer(1));
	json_t *tokens = sbh_authorize(s, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "x");
	cr_assert_not_null(tokens);
	cr_expect_eq(json_integer_value(json_object_get(tokens, "expires_in")), 1);
	usleep(1100 * 1000);
	sbh_resp r;
	sbh_request(s, "POST", SBH_ALPHA_HOST, "/v2/domainTemplates/providers/exampleservice.test/services/web/apply"
		"?domain=" SBH_ZONE "&host=x&ip=192.0.2.1&token=1",
		json_string_value(json_object_get(tokens, "access_token")), NULL, NULL, &r);
	cr_expect_eq(r.status, 401, "%s", r.body);
	sbh_resp_clear(&r);
	json_decref(tokens);
	sbh_free(s);
}

Test(sandbox_quirks, apply_status_204_no_body)
{
	sbh *s = start_alpha_with("apply_status", json_integer(204));
	json_t *tokens = sbh_authorize(s, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "x");
	cr_assert_not_null(tokens);
	sbh_resp r;
	sbh_request(s, "POST", SBH_ALPHA_HOST, "/v2/domainTemplates/providers/exampleservice.test/services/web/apply"
		"?domain=" SBH_ZONE "&host=x&ip=192.0.2.1&token=1",
		json_string_value(json_object_get(tokens, "access_token")), NULL, NULL, &r);
	cr_expect_eq(r.status, 204, "%s", r.body);
	cr_expect_eq(r.body_len, 0);
	sbh_resp_clear(&r);
	json_decref(tokens);
	sbh_free(s);
}
