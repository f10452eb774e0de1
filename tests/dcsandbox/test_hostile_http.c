/*
 * Hostile requests against a running dcsandbox: malformed bodies, encoding
 * garbage, huge queries and headers, injection through echoed values,
 * replayed and foreign credentials, and slow clients. After every attack
 * the server must still answer, and sbh_free fails the test on a sanitizer
 * report in its log.
 */
#include "test_sandbox_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REDIRECT_ENC "https%3A%2F%2Fapp.sandbox.test%2Fcallback"
#define REDIRECT_FMT "https%%3A%%2F%%2Fapp.sandbox.test%%2Fcallback"
#define TOKEN_PATH "/v2/oauth/access_token"
#define APPLY_WEB "/v2/domainTemplates/providers/exampleservice.test/services/web/apply"
#define CONSENT "/consent/v2/domainTemplates/providers/exampleservice.test"
#define FORM "application/x-www-form-urlencoded"

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

TestSuite(hostile_http, .init = start, .fini = stop, .timeout = 120);

/* Fail unless the server still responds to a plain settings request. */
static void expect_alive(const char *after)
{
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200, "server did not answer after %s (curl %d)", after, r.curl_code);
	sbh_resp_clear(&r);
}

static char *repeat(const char *unit, size_t times, const char *prefix, const char *suffix)
{
	size_t unit_len = strlen(unit);
	size_t len = strlen(prefix) + unit_len * times + strlen(suffix);
	char *s = malloc(len + 1);
	cr_assert_not_null(s);
	char *p = s;
	p += sprintf(p, "%s", prefix);
	for (size_t i = 0; i < times; i++) {
		memcpy(p, unit, unit_len);
		p += unit_len;
	}
	sprintf(p, "%s", suffix);
	return s;
}

/* Return a fresh authorization code for HOSTS, or fail. */
static char *consent_code(const char *hosts)
{
	char path[1024];
	snprintf(path, sizeof(path), CONSENT "?domain=" SBH_ZONE "&host=%s&client_id=" SBH_CLIENT
		"&redirect_uri=" REDIRECT_FMT "&scope=web", hosts);
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, path, NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 302, "consent: %ld %s", r.status, r.body);
	char *code = sbh_query_value(r.location, "code");
	cr_assert_not_null(code);
	sbh_resp_clear(&r);
	return code;
}

Test(hostile_http, token_malformed_json_bodies)
{
	char *nested_array = repeat("[", 60000, "", "");
	char *nested_object = repeat("{\"a\":", 12000, "", "1");
	char *huge = repeat("a", 70000, "{\"grant_type\":\"", "\"}");
	const char *bodies[] = {
		"{", "{\"grant_type\":", "{\"grant_type\":\"authorization_code\",\"code\":123}",
		"{\"grant_type\":[\"authorization_code\"],\"code\":{}}", "{\"grant_type\":null}", "[]", "\"x\"",
		"{\"grant_type\":\"authorization_code\",\"code\":\"\\u0000\"}", "\xff\xfe\x00\x01",
		nested_array, nested_object, huge,
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, TOKEN_PATH, NULL, "application/json", bodies[i], &r);
		cr_expect(r.status == 400 || r.status == 401 || r.status == 413, "body %zu: status %ld", i, r.status);
		sbh_resp_clear(&r);
	}
	free(nested_array);
	free(nested_object);
	free(huge);
	expect_alive("malformed token bodies");
}

Test(hostile_http, admin_malformed_json_bodies)
{
	char *nested = repeat("[", 60000, "", "");
	const char *bodies[] = {
		"", "{", "[", "null", "{\"records\":7}", "[{\"type\":7,\"name\":\"@\"}]", nested,
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"x\",\"ttl\":1e400}]",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		sbh_resp r;
		sbh_request(h, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/zones/" SBH_ZONE, NULL,
			"application/json", bodies[i], &r);
		cr_expect_eq(r.status, 400, "body %zu: status %ld", i, r.status);
		sbh_resp_clear(&r);
		sbh_request(h, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/faults", NULL,
			"application/json", bodies[i], &r);
		cr_expect_eq(r.status, 400, "faults body %zu: status %ld", i, r.status);
		sbh_resp_clear(&r);
	}
	free(nested);
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_expect_eq(json_array_size(zone), 2, "a rejected PUT changed the zone");
	json_decref(zone);
	expect_alive("malformed admin bodies");
}

Test(hostile_http, form_duplicates_and_encoding_garbage)
{
	char *code = consent_code("");
	/* Each body is BEFORE, the code, AFTER. */
	static const struct {
		const char *before;
		const char *after;
	} bodies[] = {
		{"grant_type=authorization_code&grant_type=refresh_token&code=", ""},
		{"=&&&==&grant_type=authorization_code&code=", "&=x"},
		{"grant_type=authorization_code&code=", "%zz&redirect_uri=%"},
		{"grant_type=authorization_code&code=", "%00"},
		{"grant_type=authorization_code&code=%C0%AF", ""},
		{"grant_type=authorization%5fcode&code=", "&client_id=" SBH_CLIENT "%00&client_secret=" SBH_SECRET},
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		char body[1024];
		snprintf(body, sizeof(body), "%s%s%s", bodies[i].before, code, bodies[i].after);
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, TOKEN_PATH, NULL, FORM, body, &r);
		cr_expect(r.status == 400 || r.status == 401, "body %zu: status %ld %s", i, r.status, r.body);
		sbh_resp_clear(&r);
	}
	free(code);

	/* The same garbage in the query of every endpoint. */
	const char *paths[] = {
		TOKEN_PATH "?grant_type=%zz&code=%00&client_id=%C0%AF",
		CONSENT "?client_id=%zz&redirect_uri=%",
		APPLY_WEB "?domain=%00&host=%zz",
		"/v2/%zz%00/settings",
		"/v2/domainTemplates/providers/%00/services/%zz",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, paths[i], "x", FORM, "a=%zz&%00=%00", &r);
		cr_expect(r.status >= 400 && r.status < 500, "path %zu: status %ld", i, r.status);
		sbh_resp_clear(&r);
	}
	expect_alive("encoding garbage");
}

/* Send a GET with a raw URL or an extra header through libcurl. Returns the status, or 0 when the connection closed. */
static long raw_get(const char *path, const char *header)
{
	CURL *curl = curl_easy_init();
	size_t url_len = strlen(path) + 128;
	char *url = malloc(url_len);
	snprintf(url, url_len, "https://" SBH_ALPHA_HOST ":%d%s", h->port, path);
	char resolve[128];
	snprintf(resolve, sizeof(resolve), SBH_ALPHA_HOST ":%d:127.0.0.1", h->port);
	struct curl_slist *resolves = curl_slist_append(NULL, resolve);
	struct curl_slist *headers = header != NULL ? curl_slist_append(NULL, header) : NULL;
	FILE *sink = fopen("/dev/null", "w");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_RESOLVE, resolves);
	curl_easy_setopt(curl, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
	long status = 0;
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	fclose(sink);
	curl_slist_free_all(headers);
	curl_slist_free_all(resolves);
	curl_easy_cleanup(curl);
	free(url);
	return status;
}

Test(hostile_http, huge_query_and_header)
{
	char *query = repeat("&p=1", 10000, "/v2/" SBH_ZONE "/settings?a=1", "");
	long status = raw_get(query, NULL);
	cr_expect(status == 0 || status == 414 || status == 431 || status == 200, "10,000 parameters: %ld", status);
	free(query);

	char *header = repeat("x", 100 * 1024, "X-Big: ", "");
	status = raw_get("/v2/" SBH_ZONE "/settings", header);
	cr_expect(status == 0 || status == 431 || status == 413, "100 KB header: %ld", status);
	free(header);
	expect_alive("huge query and header");
}

/* An IPv6-style Host of 255 bytes with no closing bracket once made the router read past its buffer (ASan). */
Test(hostile_http, unclosed_bracket_host)
{
	char *host = repeat("a", 254, "Host: [", "");
	long status = raw_get("/p/" SBH_ALPHA_ID "/v2/" SBH_ZONE "/settings", host);
	cr_expect_eq(status, 200, "status %ld", status);
	free(host);
	host = repeat("a", 254, "Host: [", ":1");
	status = raw_get("/v2/" SBH_ZONE "/settings", host);
	cr_expect_eq(status, 404, "status %ld", status);
	free(host);
	expect_alive("unclosed bracket in Host");
}

static sbh *start_manual_consent(void)
{
	sbh *m = sbh_new();
	cr_assert_not_null(m);
	json_t *config = sbh_default_config(m->templates);
	json_t *providers = json_object_get(config, "providers");
	for (size_t i = 0; i < json_array_size(providers); i++)
		json_object_set_new(json_array_get(providers, i), "auto_approve", json_false());
	bool ok = sbh_start(m, config, NULL, 0);
	json_decref(config);
	cr_assert(ok, "dcsandbox did not start");
	return m;
}

Test(hostile_http, consent_page_escapes_echoed_values)
{
	sbh *m = start_manual_consent();
	sbh_resp r;
	sbh_request(m, "GET", SBH_ALPHA_HOST, CONSENT "?domain=" SBH_ZONE "&host=&client_id=" SBH_CLIENT
		"&redirect_uri=" REDIRECT_ENC "&scope=web&state=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27%0D%0A"
		"&%3Cimg%20src%3Dx%3E=%22%3E%3Cb%3E", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_expect_null(strstr(r.body, "<script>"), "unescaped script tag");
	cr_expect_null(strstr(r.body, "<img"), "unescaped parameter name");
	cr_expect_null(strstr(r.body, "<b>"), "unescaped parameter value");
	cr_expect_not_null(strstr(r.body, "&lt;script&gt;"));
	cr_expect_not_null(strstr(r.body, "&quot;&#39;"));
	sbh_resp_clear(&r);

	/* Deny through the form with CR/LF in state: the Location carries them encoded. */
	sbh_request(m, "POST", SBH_ALPHA_HOST, CONSENT, NULL, FORM,
		"domain=" SBH_ZONE "&host=&client_id=" SBH_CLIENT "&redirect_uri=" REDIRECT_ENC
		"&scope=web&decision=deny&state=a%0D%0ASet-Cookie%3A%20x%3D1", &r);
	cr_expect_eq(r.status, 302, "%s", r.body);
	cr_expect_not_null(r.location);
	if (r.location != NULL) {
		cr_expect_null(strpbrk(r.location, "\r\n"));
		cr_expect_not_null(strstr(r.location, "error=access_denied"));
		cr_expect_not_null(strstr(r.location, "state=a%0D%0ASet-Cookie"));
	}
	sbh_resp_clear(&r);
	sbh_free(m);
}

Test(hostile_http, redirect_uri_injection_rejected)
{
	static const char *const uris[] = {
		/* A registered URI plus an appended query carrying CR/LF or a space. */
		REDIRECT_ENC "%3Fx%3D1%0D%0ASet-Cookie%3A%20evil%3D1",
		REDIRECT_ENC "%3Fx%3D%0A",
		REDIRECT_ENC "%3Fa%20b",
		"javascript%3Aalert(1)",
		"https%3A%2F%2Fapp.sandbox.test%2Fcallbackx",
		REDIRECT_ENC "%2F..%2Fother",
	};
	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		char path[1024];
		snprintf(path, sizeof(path), CONSENT "?domain=" SBH_ZONE "&client_id=" SBH_CLIENT
			"&redirect_uri=%s&scope=web&state=s", uris[i]);
		sbh_resp r;
		sbh_request(h, "GET", SBH_ALPHA_HOST, path, NULL, NULL, NULL, &r);
		cr_expect_eq(r.status, 400, "uri %zu: status %ld, location %s", i, r.status,
			r.location != NULL ? r.location : "(none)");
		cr_expect_null(r.location, "uri %zu redirected", i);
		sbh_resp_clear(&r);
	}
	expect_alive("redirect_uri injection");
}

/* Exchange CODE as CLIENT with SECRET. Returns the status and stores the response in OUT. */
static long exchange(const char *code, const char *client, const char *secret, sbh_resp *out)
{
	char body[1024];
	snprintf(body, sizeof(body), "grant_type=authorization_code&code=%s&redirect_uri=" REDIRECT_FMT
		"&client_id=%s&client_secret=%s", code, client, secret);
	sbh_request(h, "POST", SBH_ALPHA_HOST, TOKEN_PATH, NULL, FORM, body, out);
	return out->status;
}

Test(hostile_http, code_replay_and_foreign_client)
{
	char *code = consent_code("");
	sbh_resp r;
	cr_expect_eq(exchange(code, "someone.else", "nope", &r), 401);
	sbh_resp_clear(&r);
	cr_expect_eq(exchange(code, SBH_CLIENT, SBH_SECRET, &r), 200, "%s", r.body);
	sbh_resp_clear(&r);
	cr_expect_eq(exchange(code, SBH_CLIENT, SBH_SECRET, &r), 400, "replayed code accepted");
	sbh_resp_clear(&r);
	free(code);

	/* A code issued by beta is unknown at alpha. */
	sbh_request(h, "GET", SBH_BETA_HOST, CONSENT "/services/web?domain=" SBH_ZONE "&client_id=" SBH_CLIENT
		"&redirect_uri=" REDIRECT_ENC "&scope=web", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 302);
	char *beta_code = sbh_query_value(r.location, "code");
	sbh_resp_clear(&r);
	cr_assert_not_null(beta_code);
	cr_expect_eq(exchange(beta_code, SBH_CLIENT, SBH_SECRET, &r), 400, "another provider's code accepted");
	sbh_resp_clear(&r);
	free(beta_code);
}

Test(hostile_http, refresh_replay_after_rotation)
{
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "");
	cr_assert_not_null(tokens);
	char *old = strdup(json_string_value(json_object_get(tokens, "refresh_token")));
	json_decref(tokens);
	char body[512];
	snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s&client_id=" SBH_CLIENT
		"&client_secret=" SBH_SECRET, old);
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, TOKEN_PATH, NULL, FORM, body, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	sbh_request(h, "POST", SBH_ALPHA_HOST, TOKEN_PATH, NULL, FORM, body, &r);
	cr_expect_eq(r.status, 400, "spent refresh token accepted");
	sbh_resp_clear(&r);
	/* The same token at beta (another provider). */
	sbh_request(h, "POST", SBH_BETA_HOST, TOKEN_PATH "?client_id=" SBH_CLIENT "&client_secret=" SBH_SECRET,
		NULL, FORM, body, &r);
	cr_expect_eq(r.status, 400);
	sbh_resp_clear(&r);
	free(old);
}

Test(hostile_http, bearer_scope_is_enforced)
{
	/* Beta needs the service in the consent path. */
	json_t *tokens = sbh_authorize(h, SBH_BETA_HOST, SBH_TPL_PROVIDER "/services/web", "web", "");
	cr_assert_not_null(tokens);
	char *beta = strdup(json_string_value(json_object_get(tokens, "access_token")));
	json_decref(tokens);
	tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "mail", "www");
	cr_assert_not_null(tokens);
	char *alpha_mail = strdup(json_string_value(json_object_get(tokens, "access_token")));
	json_decref(tokens);

	static const struct {
		int token_kind; /* 0 is the beta token, 1 the alpha token for mail on host www */
		const char *path;
		long status;
	} cases[] = {
		{0, APPLY_WEB "?domain=" SBH_ZONE "&ip=192.0.2.5&token=t", 401},
		{1, APPLY_WEB "?domain=" SBH_ZONE "&host=www&ip=192.0.2.5&token=t", 403},
		{1, "/v2/domainTemplates/providers/exampleservice.test/services/mail/apply?domain=" SBH_ZONE, 403},
		{1, "/v2/domainTemplates/providers/exampleservice.test/services/mail/apply?domain=" SBH_ZONE
			"&host=api", 403},
		{1, "/v2/domainTemplates/providers/exampleservice.test/services/mail/apply?domain=other.sandbox.test"
			"&host=www", 403},
		{1, "/v2/domainTemplates/providers/exampleservice.test/services/mail/apply?domain=" SBH_ZONE
			"&host=WWW.", 400},
		{1, "/v2/domainTemplates/providers/exampleservice.test/services/mail/apply?domain=" SBH_ZONE
			"&host=x.www", 403},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, cases[i].path, cases[i].token_kind == 0 ? beta : alpha_mail, NULL,
			NULL, &r);
		cr_expect_eq(r.status, cases[i].status, "case %zu: %ld %s", i, r.status, r.body);
		sbh_resp_clear(&r);
	}
	free(beta);
	free(alpha_mail);
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_expect_eq(json_array_size(zone), 2, "a rejected apply changed the zone");
	json_decref(zone);
}

Test(hostile_http, apply_hostile_variables)
{
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "");
	cr_assert_not_null(tokens);
	char *token = strdup(json_string_value(json_object_get(tokens, "access_token")));
	json_decref(tokens);

	static const char *const queries[] = {
		"ip=192.0.2.1%0A%40%20IN%20A%20192.0.2.66&token=t",
		"ip=192.0.2.1&token=t%0D%0Ax%20IN%20NS%20evil.example.net.",
		"ip=192.0.2.1%00&token=t",
		"ip=%25ip%25&token=t",
		"ip=192.0.2.1&token=t&groupId=nope,,,%00",
		"ip=192.0.2.1&token=t&force=2",
		"ip=192.0.2.1&token=t&instanceId=..%2F..",
	};
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		char path[1024];
		snprintf(path, sizeof(path), APPLY_WEB "?domain=" SBH_ZONE "&force=1&%s", queries[i]);
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, path, token, NULL, NULL, &r);
		cr_expect(r.status == 400 || r.status == 200, "query %zu: %ld %s", i, r.status, r.body);
		sbh_resp_clear(&r);
	}

	/* A 60 KB variable in a JSON body: stored as TXT data or rejected, never a crash. */
	char *big = repeat("A", 60 * 1024, "{\"domain\":\"" SBH_ZONE "\",\"force\":\"1\",\"ip\":\"192.0.2.1\",\"token\":\"", "\"}");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB, token, "application/json", big, &r);
	cr_expect(r.status == 400 || r.status == 200, "60 KB value: %ld %s", r.status, r.body);
	sbh_resp_clear(&r);
	free(big);

	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_assert_not_null(zone);
	size_t index;
	json_t *rec;
	json_array_foreach(zone, index, rec) {
		const char *data = json_string_value(json_object_get(rec, "data"));
		cr_expect(data == NULL || strpbrk(data, "\r\n") == NULL, "record %zu keeps a line break", index);
		if (strcmp(json_string_value(json_object_get(rec, "type")), "A") == 0)
			cr_expect_str_eq(data, "192.0.2.1");
	}
	json_decref(zone);
	free(token);
}
