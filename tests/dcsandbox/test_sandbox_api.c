/* dcsandbox endpoints over TLS: settings, template check, consent, token, apply, revert, admin. */
#include "test_sandbox_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define REDIRECT_ENC "https%3A%2F%2Fapp.sandbox.test%2Fcallback"
/* The same, for use inside a printf format. */
#define REDIRECT_FMT "https%%3A%%2F%%2Fapp.sandbox.test%%2Fcallback"
#define APPLY_WEB "/v2/domainTemplates/providers/exampleservice.test/services/web/apply"
#define REVERT_WEB "/v2/domainTemplates/providers/exampleservice.test/services/web/revert"

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

TestSuite(sandbox_api, .init = start, .fini = stop, .timeout = 60);

static json_t *body_json(const sbh_resp *r)
{
	json_t *j = json_loads(r->body, 0, NULL);
	cr_assert_not_null(j, "body is not JSON: %s", r->body);
	return j;
}

static char *access_token(const char *scope, const char *hosts)
{
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, scope, hosts);
	cr_assert_not_null(tokens, "authorization failed");
	char *token = strdup(json_string_value(json_object_get(tokens, "access_token")));
	json_decref(tokens);
	return token;
}

Test(sandbox_api, settings_for_hosted_zone)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200);
	json_t *s = body_json(&r);
	char base[128];
	snprintf(base, sizeof(base), "https://" SBH_ALPHA_HOST ":%d", h->port);
	cr_expect_str_eq(json_string_value(json_object_get(s, "providerId")), SBH_ALPHA_ID);
	cr_expect_str_eq(json_string_value(json_object_get(s, "providerName")), "Alpha DNS");
	cr_expect_str_eq(json_string_value(json_object_get(s, "urlAPI")), base);
	cr_expect_not_null(strstr(json_string_value(json_object_get(s, "urlAsyncUX")), base));
	cr_expect_not_null(json_object_get(s, "urlSyncUX"));
	json_decref(s);
	sbh_resp_clear(&r);
}

Test(sandbox_api, settings_unknown_zone_404)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/nothere.test/settings", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 404);
	sbh_resp_clear(&r);
}

Test(sandbox_api, settings_by_path_prefix)
{
	sbh_resp r;
	sbh_request(h, "GET", "localhost", "/p/" SBH_BETA_ID "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200);
	json_t *s = body_json(&r);
	char base[160];
	snprintf(base, sizeof(base), "https://localhost:%d/p/" SBH_BETA_ID, h->port);
	cr_expect_str_eq(json_string_value(json_object_get(s, "providerId")), SBH_BETA_ID);
	cr_expect_str_eq(json_string_value(json_object_get(s, "urlAPI")), base);
	json_decref(s);
	sbh_resp_clear(&r);
}

Test(sandbox_api, unknown_host_404)
{
	sbh_resp r;
	sbh_request(h, "GET", "localhost", "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 404);
	sbh_resp_clear(&r);
}

Test(sandbox_api, template_check_found_and_missing)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/domainTemplates/providers/ExampleService.test/services/web",
		NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_not_null(strstr(r.body, "\"serviceId\""));
	sbh_resp_clear(&r);
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/domainTemplates/providers/exampleservice.test/services/nope",
		NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 404);
	sbh_resp_clear(&r);
}

Test(sandbox_api, consent_auto_approve_redirects)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST,
		"/consent/v2/domainTemplates/providers/exampleservice.test?domain=" SBH_ZONE
		"&host=&client_id=" SBH_CLIENT "&redirect_uri=" REDIRECT_ENC "&scope=web%20mail&state=a%20b",
		NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 302);
	cr_expect_eq(strncmp(r.location, SBH_REDIRECT "?code=", strlen(SBH_REDIRECT) + 6), 0, "%s", r.location);
	char *state = sbh_query_value(r.location, "state");
	cr_expect_str_eq(state, "a b");
	free(state);
	sbh_resp_clear(&r);
}

Test(sandbox_api, consent_rejects_unregistered_redirect)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST,
		"/consent/v2/domainTemplates/providers/exampleservice.test?domain=" SBH_ZONE
		"&client_id=" SBH_CLIENT "&redirect_uri=https%3A%2F%2Fevil.test%2F&scope=web",
		NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 400);
	cr_expect_null(r.location);
	sbh_resp_clear(&r);
	sbh_request(h, "GET", SBH_ALPHA_HOST,
		"/consent/v2/domainTemplates/providers/exampleservice.test?domain=" SBH_ZONE
		"&client_id=someone&redirect_uri=" REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 400);
	sbh_resp_clear(&r);
}

Test(sandbox_api, consent_errors_redirect_back)
{
	static const struct {
		const char *query;
		const char *error;
	} cases[] = {
		{"domain=unknown.test&scope=web", "invalid_request"},
		{"domain=" SBH_ZONE "&scope=nope", "invalid_scope"},
		{"domain=" SBH_ZONE, "invalid_scope"},
		{"domain=" SBH_ZONE "&scope=web&response_type=token", "unsupported_response_type"},
		{"domain=" SBH_ZONE "&scope=web&host=bad%20host", "invalid_request"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[1024];
		snprintf(path, sizeof(path), "/consent/v2/domainTemplates/providers/exampleservice.test?client_id="
			SBH_CLIENT "&redirect_uri=" REDIRECT_FMT "&state=st&%s", cases[i].query);
		sbh_resp r;
		sbh_request(h, "GET", SBH_ALPHA_HOST, path, NULL, NULL, NULL, &r);
		cr_expect_eq(r.status, 302, "case %zu", i);
		char *error = sbh_query_value(r.location, "error");
		cr_expect_str_eq(error != NULL ? error : "(none)", cases[i].error, "case %zu", i);
		free(error);
		sbh_resp_clear(&r);
	}
}

Test(sandbox_api, token_code_is_single_use)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST,
		"/consent/v2/domainTemplates/providers/exampleservice.test?domain=" SBH_ZONE
		"&client_id=" SBH_CLIENT "&redirect_uri=" REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	char *code = sbh_query_value(r.location, "code");
	cr_assert_not_null(code);
	sbh_resp_clear(&r);

	/* Code in a form body, credentials in a JSON-less form too. */
	char body[512];
	snprintf(body, sizeof(body), "grant_type=authorization_code&code=%s&redirect_uri=" REDIRECT_FMT
		"&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, code);
	sbh_request(h, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL,
		"application/x-www-form-urlencoded", body, &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	json_t *t = body_json(&r);
	cr_expect_str_eq(json_string_value(json_object_get(t, "token_type")), "bearer");
	cr_expect(json_integer_value(json_object_get(t, "expires_in")) > 0);
	cr_expect_not_null(json_object_get(t, "refresh_token"));
	json_decref(t);
	sbh_resp_clear(&r);

	sbh_request(h, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL,
		"application/x-www-form-urlencoded", body, &r);
	cr_expect_eq(r.status, 400);
	cr_expect_not_null(strstr(r.body, "invalid_grant"));
	sbh_resp_clear(&r);
	free(code);
}

Test(sandbox_api, token_json_body_and_wrong_secret)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST,
		"/consent/v2/domainTemplates/providers/exampleservice.test?domain=" SBH_ZONE
		"&client_id=" SBH_CLIENT "&redirect_uri=" REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	char *code = sbh_query_value(r.location, "code");
	sbh_resp_clear(&r);
	char query[512];
	snprintf(query, sizeof(query), "/v2/oauth/access_token?grant_type=authorization_code&code=%s&redirect_uri="
		REDIRECT_FMT, code);

	sbh_request(h, "POST", SBH_ALPHA_HOST, query, NULL, "application/json",
		"{\"client_id\":\"" SBH_CLIENT "\",\"client_secret\":\"wrong-secret-1234\"}", &r);
	cr_expect_eq(r.status, 401);
	cr_expect_not_null(strstr(r.body, "invalid_client"));
	cr_expect_null(strstr(r.body, "wrong-secret-1234"), "the error echoes the secret");
	sbh_resp_clear(&r);

	/* The failed attempt did not spend the code: the client check comes first. */
	sbh_request(h, "POST", SBH_ALPHA_HOST, query, NULL, "application/json",
		"{\"client_id\":\"" SBH_CLIENT "\",\"client_secret\":\"" SBH_SECRET "\"}", &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	free(code);
}

Test(sandbox_api, token_rejects_bad_requests)
{
	static const struct {
		const char *query;
		long status;
		const char *error;
	} cases[] = {
		{"client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, 400, "invalid_request"},
		{"grant_type=password&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, 400, "unsupported_grant_type"},
		{"grant_type=refresh_token&code=a&refresh_token=b&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, 400,
			"invalid_request"},
		{"grant_type=refresh_token&refresh_token=unknown&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET, 400,
			"invalid_grant"},
		{"grant_type=authorization_code&code=unknown&redirect_uri=" REDIRECT_ENC "&client_id=" SBH_CLIENT
			"&client_secret=" SBH_SECRET, 400, "invalid_grant"},
		{"grant_type=refresh_token&refresh_token=x", 401, "invalid_client"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[1024];
		snprintf(path, sizeof(path), "/v2/oauth/access_token?%s", cases[i].query);
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, path, NULL, NULL, NULL, &r);
		cr_expect_eq(r.status, cases[i].status, "case %zu: %ld %s", i, r.status, r.body);
		cr_expect_not_null(strstr(r.body, cases[i].error), "case %zu: %s", i, r.body);
		sbh_resp_clear(&r);
	}
}

Test(sandbox_api, refresh_rotates_and_spends_old)
{
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "");
	cr_assert_not_null(tokens);
	const char *first = json_string_value(json_object_get(tokens, "refresh_token"));
	char body[512];
	snprintf(body, sizeof(body), "{\"grant_type\":\"refresh_token\",\"refresh_token\":\"%s\",\"client_id\":\""
		SBH_CLIENT "\",\"client_secret\":\"" SBH_SECRET "\"}", first);

	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL, "application/json", body, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_t *next = body_json(&r);
	cr_expect_str_neq(json_string_value(json_object_get(next, "refresh_token")), first);
	cr_expect_str_neq(json_string_value(json_object_get(next, "access_token")),
		json_string_value(json_object_get(tokens, "access_token")));
	sbh_resp_clear(&r);

	sbh_request(h, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL, "application/json", body, &r);
	cr_expect_eq(r.status, 400);
	cr_expect_not_null(strstr(r.body, "invalid_grant"));
	sbh_resp_clear(&r);
	json_decref(next);
	json_decref(tokens);
}

Test(sandbox_api, apply_needs_valid_bearer)
{
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&ip=192.0.2.9&token=t", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 401);
	cr_expect_not_null(r.www_authenticate);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&ip=192.0.2.9&token=t", "forged", NULL,
		NULL, &r);
	cr_expect_eq(r.status, 401);
	sbh_resp_clear(&r);
}

Test(sandbox_api, apply_scope_checks_403)
{
	char *token = access_token("web", "");
	static const char *const paths[] = {
		APPLY_WEB "?domain=other.sandbox.test&ip=192.0.2.9&token=t",
		APPLY_WEB "?domain=" SBH_ZONE "&host=sub&ip=192.0.2.9&token=t",
		"/v2/domainTemplates/providers/exampleservice.test/services/mail/apply?domain=" SBH_ZONE,
	};
	for (size_t i = 0; i < 3; i++) {
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, paths[i], token, NULL, NULL, &r);
		cr_expect_eq(r.status, 403, "case %zu: %s", i, r.body);
		sbh_resp_clear(&r);
	}

	/* A token of one provider is unknown at another. */
	sbh_resp r;
	sbh_request(h, "POST", SBH_BETA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&ip=192.0.2.9&token=t", token, NULL, NULL, &r);
	cr_expect_eq(r.status, 401);
	sbh_resp_clear(&r);
	free(token);
}

Test(sandbox_api, apply_conflict_then_force)
{
	char *token = access_token("web%20mail", ",www2");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=&ip=192.0.2.9&token=abc", token,
		NULL, NULL, &r);
	cr_assert_eq(r.status, 409, "%s", r.body);
	json_t *conflict = body_json(&r);
	cr_expect_str_eq(json_string_value(json_object_get(conflict, "code")), "409");
	cr_expect_not_null(json_object_get(conflict, "message"));
	cr_expect_eq(json_array_size(json_object_get(conflict, "records")), 2);
	json_decref(conflict);
	sbh_resp_clear(&r);

	/* Nothing changed on 409. */
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_expect_eq(json_array_size(zone), 2);
	json_decref(zone);

	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=&ip=192.0.2.9&token=abc&force=1",
		token, NULL, NULL, &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);

	zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_expect_eq(json_array_size(zone), 3);
	char *dump = json_dumps(zone, 0);
	cr_expect_not_null(strstr(dump, "192.0.2.9"), "%s", dump);
	cr_expect_not_null(strstr(dump, "token=abc"), "%s", dump);
	cr_expect_null(strstr(dump, "192.0.2.1\""), "%s", dump);
	free(dump);
	json_decref(zone);
	free(token);
}

Test(sandbox_api, apply_params_in_json_body)
{
	char *token = access_token("web", "www2");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB, token, "application/json",
		"{\"domain\":\"" SBH_ZONE "\",\"host\":\"www2\",\"ip\":\"192.0.2.77\",\"token\":\"j\"}", &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	char *dump = json_dumps(zone, 0);
	cr_expect_not_null(strstr(dump, "\"www2\""), "%s", dump);
	cr_expect_not_null(strstr(dump, "192.0.2.77"), "%s", dump);
	free(dump);
	json_decref(zone);
	free(token);
}

Test(sandbox_api, apply_template_error_400)
{
	char *token = access_token("web", "sub");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=sub&token=x", token, NULL, NULL, &r);
	cr_expect_eq(r.status, 400, "%s", r.body);
	json_t *err = body_json(&r);
	cr_expect_not_null(json_string_value(json_object_get(err, "message")));
	json_decref(err);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=sub&ip=192.0.2.1&token=x&force=2",
		token, NULL, NULL, &r);
	cr_expect_eq(r.status, 400, "%s", r.body);
	sbh_resp_clear(&r);
	free(token);
}

Test(sandbox_api, revert_removes_then_410)
{
	char *token = access_token("web", "sub");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, REVERT_WEB "?domain=" SBH_ZONE "&host=sub", token, NULL, NULL, &r);
	cr_expect_eq(r.status, 410, "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=sub&ip=192.0.2.5&token=q", token,
		NULL, NULL, &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", SBH_ALPHA_HOST, REVERT_WEB "?domain=" SBH_ZONE "&host=sub", token, NULL, NULL, &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_expect_eq(json_array_size(zone), 2);
	json_decref(zone);
	sbh_request(h, "POST", SBH_ALPHA_HOST, REVERT_WEB "?domain=" SBH_ZONE "&host=sub", token, NULL, NULL, &r);
	cr_expect_eq(r.status, 410);
	sbh_resp_clear(&r);
	free(token);
}

Test(sandbox_api, admin_zone_counters_reset)
{
	sbh_resp r;
	sbh_request(h, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/zones/new.sandbox.test", NULL,
		"application/json", "[{\"type\":\"TXT\",\"name\":\"@\",\"data\":\"hello\",\"ttl\":60}]", &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", "localhost", "/admin/providers/" SBH_ALPHA_ID "/zones/new.sandbox.test", NULL,
		"application/json", "{\"records\":[{\"type\":\"A\",\"name\":\"x\",\"data\":\"192.0.2.3\",\"ttl\":60}]}", &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, "new.sandbox.test");
	cr_expect_eq(json_array_size(zone), 2);
	json_decref(zone);

	sbh_request(h, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/zones/new.sandbox.test", NULL,
		"application/json", "{\"records\":\"no\"}", &r);
	cr_expect_eq(r.status, 400);
	sbh_resp_clear(&r);

	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/new.sandbox.test/settings", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	sbh_resp_clear(&r);

	sbh_request(h, "GET", "localhost", "/admin/counters", NULL, NULL, NULL, &r);
	json_t *c = body_json(&r);
	json_t *settings = json_object_get(json_object_get(json_object_get(c, "requests"), SBH_ALPHA_ID), "settings");
	cr_expect_eq(json_integer_value(json_object_get(settings, "200")), 1, "%s", r.body);
	json_decref(c);
	sbh_resp_clear(&r);

	sbh_request(h, "POST", "localhost", "/admin/reset", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	sbh_resp_clear(&r);
	sbh_request(h, "GET", "localhost", "/admin/counters", NULL, NULL, NULL, &r);
	c = body_json(&r);
	settings = json_object_get(json_object_get(json_object_get(c, "requests"), SBH_ALPHA_ID), "settings");
	cr_expect_null(settings, "%s", r.body);
	json_decref(c);
	sbh_resp_clear(&r);
	zone = sbh_zone(h, SBH_ALPHA_ID, "new.sandbox.test");
	cr_expect_eq(json_array_size(zone), 0, "a zone added at run time resets to empty");
	json_decref(zone);
}

Test(sandbox_api, admin_expires_tokens)
{
	char *token = access_token("web", "sub");
	sbh_resp r;
	sbh_request(h, "POST", "localhost", "/admin/providers/" SBH_ALPHA_ID "/expire-tokens", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=sub&ip=192.0.2.5&token=q", token,
		NULL, NULL, &r);
	cr_expect_eq(r.status, 401);
	sbh_resp_clear(&r);
	sbh_request(h, "GET", "localhost", "/admin/nothing", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 404);
	sbh_resp_clear(&r);
	free(token);
}

Test(sandbox_api, oversized_request_413)
{
	size_t n = 70 * 1024;
	char *body = malloc(n + 1);
	memset(body, 'a', n);
	body[n] = '\0';
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL, "application/x-www-form-urlencoded",
		body, &r);
	cr_expect_eq(r.status, 413);
	sbh_resp_clear(&r);
	free(body);
}

Test(sandbox_api, wrong_method_405)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 405);
	sbh_resp_clear(&r);
	sbh_request(h, "GET", SBH_ALPHA_HOST, APPLY_WEB, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 405);
	sbh_resp_clear(&r);
}

Test(sandbox_api, token_redirect_uri_must_match)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST,
		"/consent/v2/domainTemplates/providers/exampleservice.test?domain=" SBH_ZONE
		"&client_id=" SBH_CLIENT "&redirect_uri=" REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	char *code = sbh_query_value(r.location, "code");
	cr_assert_not_null(code);
	sbh_resp_clear(&r);
	char query[512];
	snprintf(query, sizeof(query), "/v2/oauth/access_token?grant_type=authorization_code&code=%s"
		"&redirect_uri=https%%3A%%2F%%2Fapp.sandbox.test%%2Fother&client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET,
		code);
	sbh_request(h, "POST", SBH_ALPHA_HOST, query, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 400);
	cr_expect_not_null(strstr(r.body, "invalid_grant"), "%s", r.body);
	sbh_resp_clear(&r);
	free(code);
}

Test(sandbox_api, invalid_instance_id_400)
{
	char *token = access_token("web", "");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&ip=192.0.2.5&token=q&instanceId=a%20b",
		token, NULL, NULL, &r);
	cr_expect_eq(r.status, 400, "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", SBH_ALPHA_HOST, REVERT_WEB "?domain=" SBH_ZONE "&instanceId=a%2Fb", token, NULL, NULL, &r);
	cr_expect_eq(r.status, 400, "%s", r.body);
	sbh_resp_clear(&r);
	free(token);
}

Test(sandbox_api, admin_reads_faults)
{
	sbh_resp r;
	sbh_request(h, "GET", "localhost", "/admin/providers/" SBH_ALPHA_ID "/faults", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_not_null(strstr(r.body, "\"latency_ms\":0"), "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(h, "GET", "localhost", "/admin/providers", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_not_null(strstr(r.body, SBH_BETA_HOST), "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(h, "DELETE", "localhost", "/admin/providers/" SBH_ALPHA_ID "/zones/" SBH_ZONE, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 405);
	sbh_resp_clear(&r);
}
