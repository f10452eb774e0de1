/*
 * Code exchange and refresh against an HTTPS token endpoint on loopback:
 * parameter placement, response parsing and error mapping.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_fixture.h"

#define TOKEN_PATH "/v2/oauth/access_token"
#define REDIRECT "https://app.example/cb?x=1"

typedef struct outcome {
	int calls;
	dc_status status;
	long http_status;
	long retry_after;
	char message[DC_MESSAGE_MAX];
	char oauth_error[DC_OAUTH_ERROR_MAX];
	char oauth_description[DC_OAUTH_DESCRIPTION_MAX];
	dc_token *token;
} outcome;

static net_fixture f;
static char url_api[256];

static void token_cb(void *arg, dc_token *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->status = err->status;
	o->http_status = err->http_status;
	o->retry_after = err->retry_after;
	strcpy(o->message, err->message);
	strcpy(o->oauth_error, err->oauth_error);
	strcpy(o->oauth_description, err->oauth_description);
	o->token = result;
}

static void teardown(void)
{
	nf_stop(&f);
}

/* Serves body with status on the token path and starts the servers. */
static void serve(int status, const char *body)
{
	ts_response *r = nf_route_add(&f, "POST", TOKEN_PATH);
	r->status = status;
	r->body = body;
	cr_assert(nf_start(&f, NULL, 0), "test servers did not start");
	snprintf(url_api, sizeof(url_api), "%s", nf_url(&f, "api.provider.test", "/"));
}

static dc_provider provider(dc_token_placement placement)
{
	dc_provider p = {
		.name = "testprov",
		.url_api = url_api,
		.client_id = "client.example",
		.client_secret = "s3cret value",
		.token_placement = placement,
	};
	return p;
}

static outcome run(bool refresh, const dc_provider *p, const char *grant, const char *redirect)
{
	outcome o = {0};
	dc_error err = {0};
	dc_status st;

	dc_error_clear(&err);
	if (refresh)
		st = dc_refresh_start(f.client, p, grant, redirect, token_cb, &o, NULL, &err);
	else
		st = dc_exchange_code_start(f.client, p, grant, redirect, token_cb, &o, NULL, &err);
	cr_assert_eq(st, DC_OK, "start failed: %s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "token request did not finish");
	cr_assert_eq(o.calls, 1);
	return o;
}

static ts_request *last_request(void)
{
	ts_request *req = ts_https_request_copy(f.https, ts_https_request_count(f.https) - 1);
	cr_assert_not_null(req);
	return req;
}

static const char good_body[] =
	"{\"access_token\":\"AT-1\",\"token_type\":\"Bearer\",\"expires_in\":\"3600\","
	"\"refresh_token\":\"RT-2\"}";

Test(token, exchange_default_placement, .fini = teardown)
{
	serve(200, good_body);
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(false, &p, "code-1", REDIRECT);
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.message);
	cr_assert_str_eq(o.token->access_token, "AT-1");
	cr_assert_str_eq(o.token->refresh_token, "RT-2");
	cr_assert_str_eq(o.token->token_type, "bearer");
	cr_assert_eq(o.token->expires_in, 3600);

	ts_request *req = last_request();
	cr_assert_str_eq(req->path, TOKEN_PATH);
	cr_assert_str_eq(req->query, "code=code-1&grant_type=authorization_code&redirect_uri="
	                             "https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1");
	cr_assert_str_eq(req->body, "{\"client_id\":\"client.example\",\"client_secret\":\"s3cret value\"}");
	cr_assert_str_eq(req->content_type, "application/json");
	ts_request_free(req);
	dc_token_free(o.token);
}

Test(token, refresh_default_placement, .fini = teardown)
{
	serve(200, "{\"access_token\":\"AT-3\",\"token_type\":\"bearer\",\"expires_in\":60}");
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(true, &p, "RT-1", NULL);
	cr_assert_eq(o.status, DC_OK, "%s", o.message);
	cr_assert_null(o.token->refresh_token, "no new refresh token: the caller keeps the old one");
	cr_assert_eq(o.token->expires_in, 60);

	ts_request *req = last_request();
	cr_assert_str_eq(req->query, "refresh_token=RT-1&grant_type=refresh_token"
	                             "&client_id=client.example&client_secret=s3cret%20value");
	cr_assert_str_eq(req->body, "{\"client_id\":\"client.example\",\"client_secret\":\"s3cret value\"}");
	ts_request_free(req);
	dc_token_free(o.token);
}

Test(token, query_placement, .fini = teardown)
{
	serve(200, good_body);
	dc_provider p = provider(DC_TOKEN_PARAMS_QUERY);

	outcome o = run(false, &p, "code-1", REDIRECT);
	cr_assert_eq(o.status, DC_OK, "%s", o.message);
	ts_request *req = last_request();
	cr_assert(nf_contains(req->query, "client_secret=s3cret%20value"));
	cr_assert(nf_contains(req->query, "code=code-1"));
	cr_assert_eq(req->body_len, 0);
	ts_request_free(req);
	dc_token_free(o.token);
}

Test(token, json_placement, .fini = teardown)
{
	serve(200, good_body);
	dc_provider p = provider(DC_TOKEN_PARAMS_JSON);

	outcome o = run(false, &p, "code-1", REDIRECT);
	cr_assert_eq(o.status, DC_OK, "%s", o.message);
	ts_request *req = last_request();
	cr_assert(req->query == NULL || req->query[0] == '\0');
	cr_assert(nf_contains(req->body, "\"code\":\"code-1\""));
	cr_assert(nf_contains(req->body, "\"grant_type\":\"authorization_code\""));
	cr_assert(nf_contains(req->body, "\"client_secret\":\"s3cret value\""));
	cr_assert_str_eq(req->content_type, "application/json");
	ts_request_free(req);
	dc_token_free(o.token);
}

Test(token, form_placement, .fini = teardown)
{
	serve(200, good_body);
	dc_provider p = provider(DC_TOKEN_PARAMS_FORM);

	outcome o = run(true, &p, "RT-1", NULL);
	cr_assert_eq(o.status, DC_OK, "%s", o.message);
	ts_request *req = last_request();
	cr_assert_str_eq(req->body, "refresh_token=RT-1&grant_type=refresh_token"
	                            "&client_id=client.example&client_secret=s3cret%20value");
	cr_assert_str_eq(req->content_type, "application/x-www-form-urlencoded");
	ts_request_free(req);
	dc_token_free(o.token);
}

Test(token, invalid_success_bodies, .fini = teardown)
{
	static const char *const bodies[] = {
		"not json",
		"[]",
		"{\"token_type\":\"bearer\",\"expires_in\":1}",
		"{\"access_token\":\"\",\"token_type\":\"bearer\",\"expires_in\":1}",
		"{\"access_token\":\"A\",\"token_type\":\"mac\",\"expires_in\":1}",
		"{\"access_token\":\"A\",\"expires_in\":1}",
		"{\"access_token\":\"A\",\"token_type\":\"bearer\"}",
		"{\"access_token\":\"A\",\"token_type\":\"bearer\",\"expires_in\":-5}",
		"{\"access_token\":\"A\",\"token_type\":\"bearer\",\"expires_in\":\"12x\"}",
		"{\"access_token\":\"A\",\"token_type\":\"bearer\",\"expires_in\":99999999999}",
		"{\"access_token\":\"A\",\"token_type\":\"bearer\",\"expires_in\":1,\"refresh_token\":7}",
	};
	ts_response *routes[11];
	char paths[11][32];

	for (size_t i = 0; i < 11; i++) {
		snprintf(paths[i], sizeof(paths[i]), "/b%zu" TOKEN_PATH, i);
		routes[i] = nf_route_add(&f, "POST", paths[i]);
		routes[i]->body = bodies[i];
	}
	cr_assert(nf_start(&f, NULL, 0));

	for (size_t i = 0; i < 11; i++) {
		char base[256];
		snprintf(base, sizeof(base), "%s", nf_url(&f, "api.provider.test", paths[i]));
		base[strlen(base) - strlen(TOKEN_PATH)] = '\0';
		dc_provider p = {.name = "t", .url_api = base, .client_id = "c", .client_secret = "s"};
		outcome o = run(false, &p, "code", REDIRECT);
		cr_expect_eq(o.status, DC_ERR_INVALID_RESPONSE, "body %zu: %s", i,
		             dc_status_name(o.status));
		cr_expect_null(o.token);
	}
}

Test(token, expires_in_number_accepted, .fini = teardown)
{
	serve(200, "{\"access_token\":\"A\",\"token_type\":\"BEARER\",\"expires_in\":7200.0}");
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(false, &p, "code", REDIRECT);
	cr_assert_eq(o.status, DC_OK, "%s", o.message);
	cr_assert_eq(o.token->expires_in, 7200);
	dc_token_free(o.token);
}

Test(token, json_error_is_oauth, .fini = teardown)
{
	serve(400, "{\"error\":\"invalid_grant\",\"error_description\":\"code\\nexpired\"}");
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(false, &p, "c-123", REDIRECT);
	cr_assert_eq(o.status, DC_ERR_OAUTH, "%s", dc_status_name(o.status));
	cr_assert_eq(o.http_status, 400);
	cr_assert_str_eq(o.oauth_error, "invalid_grant");
	cr_assert_str_eq(o.oauth_description, "code?expired");
	cr_assert_null(o.token);
}

Test(token, plain_text_error_tolerated, .fini = teardown)
{
	serve(400, "Provided token doesn't match the registered one");
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(true, &p, "RT-1", NULL);
	cr_assert_eq(o.status, DC_ERR_OAUTH, "%s", dc_status_name(o.status));
	cr_assert_str_eq(o.oauth_error, "");
	cr_assert(nf_contains(o.message, "doesn't match"), "%s", o.message);
}

Test(token, long_error_body_truncated, .fini = teardown)
{
	static char body[5000];
	memset(body, 'x', sizeof(body) - 1);
	serve(400, body);
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(true, &p, "RT-1", NULL);
	cr_assert_eq(o.status, DC_ERR_OAUTH);
	cr_assert_lt(strlen(o.message), DC_MESSAGE_MAX);
}

Test(token, server_error_is_transient, .fini = teardown)
{
	serve(500, "{\"error\":\"server_error\"}");
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(true, &p, "RT-1", NULL);
	cr_assert_eq(o.status, DC_ERR_TRANSIENT, "%s", dc_status_name(o.status));
	cr_assert_str_eq(o.oauth_error, "server_error");
}

Test(token, status_429_is_rate_limited, .fini = teardown)
{
	ts_response *r = nf_route_add(&f, "POST", TOKEN_PATH);
	r->status = 429;
	r->headers[0] = "Retry-After: 30";
	cr_assert(nf_start(&f, NULL, 0));
	snprintf(url_api, sizeof(url_api), "%s", nf_url(&f, "api.provider.test", ""));
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);

	outcome o = run(true, &p, "RT-1", NULL);
	cr_assert_eq(o.status, DC_ERR_RATE_LIMITED, "%s", dc_status_name(o.status));
	cr_assert_eq(o.retry_after, 30);
}

Test(token, bad_input_fails_at_start, .fini = teardown)
{
	outcome o = {0};
	dc_error err = {0};

	serve(200, good_body);
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);
	dc_error_clear(&err);

	p.client_id = NULL;
	cr_assert_eq(dc_exchange_code_start(f.client, &p, "c", REDIRECT, token_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	p = provider(DC_TOKEN_PARAMS_DEFAULT);
	cr_assert_eq(dc_exchange_code_start(f.client, &p, "c", NULL, token_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	cr_assert_eq(dc_exchange_code_start(f.client, &p, "", REDIRECT, token_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	p.url_api = "http://api.provider.test";
	cr_assert_eq(dc_refresh_start(f.client, &p, "RT", NULL, token_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	p = provider((dc_token_placement)9);
	cr_assert_eq(dc_refresh_start(f.client, &p, "RT", NULL, token_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	cr_assert_eq(o.calls, 0);
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

Test(token, blocking_wrappers_work, .fini = teardown)
{
	dc_token *t = NULL;
	dc_error err = {0};

	serve(200, good_body);
	dc_provider p = provider(DC_TOKEN_PARAMS_DEFAULT);
	dc_error_clear(&err);
	cr_assert_eq(dc_exchange_code(&f.cfg, &p, "code", REDIRECT, &t, &err), DC_OK, "%s",
	             err.message);
	cr_assert_str_eq(t->access_token, "AT-1");
	dc_token_free(t);
	cr_assert_eq(dc_refresh(&f.cfg, &p, "RT-2", NULL, &t, &err), DC_OK, "%s", err.message);
	dc_token_free(t);
}
