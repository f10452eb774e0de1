/*
 * dcsandbox input checks. The admin zone endpoint rejects records the zone
 * engine would never write and leaves the zone as it was, but valid seeds
 * that conflict with a template still go in. Apply rejects an oversized
 * groupId list and a host with a final dot.
 */
#include "test_sandbox_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONE_PATH "/admin/providers/" SBH_ALPHA_ID "/zones/" SBH_ZONE
#define APPLY_WEB "/v2/domainTemplates/providers/exampleservice.test/services/web/apply"

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

TestSuite(sandbox_admin, .init = start, .fini = stop, .timeout = 60);

/* The zone's records as compact JSON text (malloc'd). */
static char *zone_text(const char *zone_name)
{
	json_t *records = sbh_zone(h, SBH_ALPHA_ID, zone_name);
	cr_assert_not_null(records, "zone %s not readable", zone_name);
	char *text = json_dumps(records, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(records);
	return text;
}

/* Send METHOD with BODY to PATH and return the status. MESSAGE, when not NULL, receives the message (malloc'd). */
static long write_zone(const char *method, const char *path, const char *body, char **message)
{
	sbh_resp r;
	sbh_request(h, method, "localhost", path, NULL, "application/json", body, &r);
	long status = r.status;
	if (message != NULL) {
		json_t *j = json_loads(r.body, 0, NULL);
		const char *text = json_string_value(json_object_get(j, "message"));
		*message = strdup(text != NULL ? text : r.body);
		if (status == 400)
			cr_expect_str_eq(json_string_value(json_object_get(j, "error")), "invalid_zone", "%s", r.body);
		json_decref(j);
	}
	sbh_resp_clear(&r);
	return status;
}

/* A body the endpoint must reject, and the words its message must contain. */
typedef struct bad_case {
	const char *body;
	const char *words[4]; /* record index, field, value, fix */
} bad_case;

static const bad_case bad_cases[] = {
	{ "[{\"type\":\"A\",\"name\":\"@\",\"data\":\"not-an-ip\",\"ttl\":60}]",
		{ "record 0", "data", "\"not-an-ip\"", "192.0.2.10" } },
	{ "[{\"type\":\"AAAA\",\"name\":\"v6\",\"data\":\"192.0.2.1\",\"ttl\":60}]",
		{ "record 0", "data", "\"192.0.2.1\"", "2001:db8::10" } },
	{ "[{\"type\":\"TXT\",\"name\":\"a\",\"data\":\"x\",\"ttl\":60},"
	  "{\"type\":\"A\",\"name\":\"dup\",\"data\":\"192.0.2.2\",\"ttl\":60},"
	  "{\"type\":\"CNAME\",\"name\":\"dup\",\"data\":\"edge.example.net\",\"ttl\":60}]",
		{ "record 2", "name", "\"dup\"", "the only record at its name" } },
	{ "[{\"type\":\"TXT\",\"name\":\"bad name\",\"data\":\"x\",\"ttl\":60}]",
		{ "record 0", "name", "\"bad name\"", "labels of letters" } },
	{ "[{\"type\":\"TXT\",\"name\":\"www.shop.sandbox.test.\",\"data\":\"x\",\"ttl\":60}]",
		{ "record 0", "name", "\"www.shop.sandbox.test.\"", "without the zone's domain" } },
	{ "[{\"type\":\"NOT A TYPE\",\"name\":\"x\",\"data\":\"x\",\"ttl\":60}]",
		{ "record 0", "type", "\"NOT A TYPE\"", "RR type name" } },
	{ "[{\"type\":\"SPFM\",\"name\":\"@\",\"data\":\"include:x.net\",\"ttl\":60}]",
		{ "record 0", "type", "\"SPFM\"", "v=spf1" } },
	{ "[{\"type\":\"CNAME\",\"name\":\"c\",\"data\":\"not a host\",\"ttl\":60}]",
		{ "record 0", "data", "\"not a host\"", "target.example.net" } },
	{ "[{\"type\":\"A\",\"name\":\"n\",\"data\":\"192.0.2.3\"}]",
		{ "record 0", "ttl", "missing", "2147483647" } },
	{ "[{\"type\":\"MX\",\"name\":\"@\",\"data\":\"mx.example.net\",\"ttl\":60,\"priority\":70000}]",
		{ "record 0", "priority", "70000", "65535" } },
	{ "[{\"type\":\"MX\",\"name\":\"@\",\"data\":\"mx.example.net\",\"ttl\":60}]",
		{ "record 0", "priority", "missing", "65535" } },
	{ "[{\"type\":\"A\",\"name\":\"p\",\"data\":\"192.0.2.4\",\"ttl\":60,\"priority\":5}]",
		{ "record 0", "type", "\"A\"", "remove \"priority\"" } },
	{ "[{\"type\":\"SRV\",\"name\":\"_sip._tcp\",\"data\":\"sip.example.net\",\"ttl\":60,\"priority\":1,"
	  "\"weight\":1,\"port\":5060,\"protocol\":\"sctp\",\"service\":\"_sip\"}]",
		{ "record 0", "protocol", "\"sctp\"", "\"tcp\"" } },
	{ "[{\"type\":\"REDIR301\",\"name\":\"@\",\"data\":\"ftp://example.net/\"}]",
		{ "record 0", "data", "\"ftp://example.net/\"", "https://" } },
	{ "[{\"type\":\"CAA\",\"name\":\"@\",\"data\":\"\",\"ttl\":60}]",
		{ "record 0", "data", "\"\"", "presentation form" } },
};

Test(sandbox_admin, bad_records_rejected_unchanged)
{
	char *before = zone_text(SBH_ZONE);
	const char *methods[] = { "PUT", "POST" };
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		for (size_t m = 0; m < 2; m++) {
			char *message = NULL;
			long status = write_zone(methods[m], ZONE_PATH, bad_cases[i].body, &message);
			cr_expect_eq(status, 400, "%s case %zu: status %ld: %s", methods[m], i, status, message);
			for (size_t w = 0; w < 4; w++)
				cr_expect_not_null(strstr(message, bad_cases[i].words[w]),
					"%s case %zu: \"%s\" not in: %s", methods[m], i, bad_cases[i].words[w], message);
			free(message);
		}
	}
	char *after = zone_text(SBH_ZONE);
	cr_expect_str_eq(after, before, "a rejected write changed the zone");
	free(before);
	free(after);
}

Test(sandbox_admin, rejected_post_creates_no_zone)
{
	long status = write_zone("POST", "/admin/providers/" SBH_ALPHA_ID "/zones/fresh.sandbox.test",
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"not-an-ip\",\"ttl\":60}]", NULL);
	cr_expect_eq(status, 400);
	sbh_resp r;
	sbh_request(h, "GET", "localhost", "/admin/providers/" SBH_ALPHA_ID "/zones/fresh.sandbox.test", NULL, NULL,
		NULL, &r);
	cr_expect_eq(r.status, 404, "a rejected POST created the zone: %s", r.body);
	sbh_resp_clear(&r);
}

Test(sandbox_admin, post_cname_beside_existing_rejected)
{
	/* The harness zone contains a CNAME at www. */
	char *message = NULL;
	long status = write_zone("POST", ZONE_PATH,
		"[{\"type\":\"TXT\",\"name\":\"ok\",\"data\":\"fine\",\"ttl\":60},"
		"{\"type\":\"A\",\"name\":\"www\",\"data\":\"192.0.2.7\",\"ttl\":60}]", &message);
	cr_expect_eq(status, 400, "%s", message);
	cr_expect_not_null(strstr(message, "record 1"), "%s", message);
	cr_expect_not_null(strstr(message, "already in the zone"), "%s", message);
	free(message);
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_expect_eq(json_array_size(zone), 2, "the valid first record went in");
	json_decref(zone);
}

Test(sandbox_admin, valid_records_accepted)
{
	const char *body =
		"{\"records\":["
		"{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":3600},"
		"{\"type\":\"AAAA\",\"name\":\"@\",\"data\":\"2001:db8::1\",\"ttl\":3600},"
		"{\"type\":\"CNAME\",\"name\":\"www\",\"data\":\"@\",\"ttl\":3600},"
		"{\"type\":\"CNAME\",\"name\":\"edge\",\"data\":\"Edge.Example.NET.\",\"ttl\":0},"
		"{\"type\":\"MX\",\"name\":\"@\",\"data\":\"mx.example.net\",\"priority\":10,\"ttl\":3600},"
		"{\"type\":\"TXT\",\"name\":\"@\",\"data\":\"v=spf1 include:example.net ~all\",\"ttl\":3600},"
		"{\"type\":\"TXT\",\"name\":\"_verify\",\"data\":\"\",\"ttl\":3600},"
		"{\"type\":\"SRV\",\"name\":\"_sip._tcp\",\"data\":\"sip.example.net\",\"ttl\":60,\"priority\":1,"
		"\"weight\":2,\"port\":5060,\"protocol\":\"tcp\",\"service\":\"_sip\"},"
		"{\"type\":\"NS\",\"name\":\"lab\",\"data\":\"ns1.example.net\",\"ttl\":3600},"
		"{\"type\":\"CAA\",\"name\":\"@\",\"data\":\"0 issue \\\"ca.example.net\\\"\",\"ttl\":3600},"
		"{\"type\":\"TYPE256\",\"name\":\"*.wild\",\"data\":\"10 1 \\\"x\\\"\",\"ttl\":3600},"
		"{\"type\":\"REDIR301\",\"name\":\"go\",\"data\":\"https://www.example.net/\"}]}";
	char *message = NULL;
	cr_expect_eq(write_zone("PUT", ZONE_PATH, body, &message), 200, "%s", message);
	free(message);
	/* A CNAME alone at the apex is what the demo seeds before a TXT template. */
	cr_expect_eq(write_zone("PUT", "/admin/providers/" SBH_ALPHA_ID "/zones/apex.sandbox.test",
		"[{\"type\":\"CNAME\",\"name\":\"@\",\"data\":\"old-edge.example.org\",\"ttl\":300}]", NULL), 200);
	cr_expect_eq(write_zone("POST", "/admin/providers/" SBH_ALPHA_ID "/zones/apex.sandbox.test",
		"[{\"type\":\"TXT\",\"name\":\"other\",\"data\":\"x\",\"ttl\":300}]", NULL), 200);
}

/* Apply the web template at the apex of SBH_ZONE with QUERY added, and return the status. */
static long apply_web(const char *token, const char *query)
{
	char path[4096];
	snprintf(path, sizeof(path), APPLY_WEB "?domain=" SBH_ZONE "&ip=192.0.2.9&token=t%s", query);
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, path, token, NULL, NULL, &r);
	long status = r.status;
	if (status == 400)
		cr_log_info("apply %s: %s", query, r.body);
	sbh_resp_clear(&r);
	return status;
}

static char *web_token(const char *hosts)
{
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", hosts);
	cr_assert_not_null(tokens, "authorization failed");
	char *token = strdup(json_string_value(json_object_get(tokens, "access_token")));
	json_decref(tokens);
	return token;
}

Test(sandbox_admin, conflicting_seed_gives_409)
{
	/* An A at www, where the web template puts a CNAME: valid, and a conflict. */
	cr_expect_eq(write_zone("PUT", ZONE_PATH,
		"[{\"type\":\"A\",\"name\":\"www\",\"data\":\"198.51.100.9\",\"ttl\":300}]", NULL), 200);
	char *token = web_token("");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&ip=192.0.2.9&token=t", token, NULL,
		NULL, &r);
	cr_expect_eq(r.status, 409, "%s", r.body);
	cr_expect_not_null(strstr(r.body, "198.51.100.9"), "%s", r.body);
	sbh_resp_clear(&r);
	free(token);
}

Test(sandbox_admin, group_id_caps_give_400)
{
	char *token = web_token("");
	char query[2200];

	/* 33 ids: one over the cap. */
	strcpy(query, "&groupId=g0");
	for (int i = 1; i < 33; i++)
		snprintf(query + strlen(query), sizeof(query) - strlen(query), ",g%d", i);
	cr_expect_eq(apply_web(token, query), 400, "33 group ids were accepted");

	/* 32 ids fit. */
	*strrchr(query, ',') = '\0';
	cr_expect_neq(apply_web(token, query), 400, "32 group ids were rejected");

	/* 1025 bytes are one over the cap, and 1024 fit. */
	strcpy(query, "&groupId=");
	memset(query + strlen(query), 'g', 1025);
	query[9 + 1025] = '\0';
	cr_expect_eq(apply_web(token, query), 400, "a 1025-byte groupId was accepted");
	query[9 + 1024] = '\0';
	cr_expect_neq(apply_web(token, query), 400, "a 1024-byte groupId was rejected");
	free(token);
}

Test(sandbox_admin, host_with_final_dot_400)
{
	char *token = web_token("www");
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=WWW.&ip=192.0.2.9&token=t", token,
		NULL, NULL, &r);
	cr_expect_eq(r.status, 400, "%s", r.body);
	cr_expect_not_null(strstr(r.body, "invalid host"), "%s", r.body);
	sbh_resp_clear(&r);
	free(token);
}

/* The counters include a request as soon as its response has arrived. */
Test(sandbox_admin, counters_include_answered_request)
{
	for (int i = 1; i <= 100; i++) {
		sbh_resp r;

		sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
		cr_assert_eq(r.status, 200, "settings request %d returned %ld", i, r.status);
		sbh_resp_clear(&r);

		sbh_request(h, "GET", "localhost", "/admin/counters", NULL, NULL, NULL, &r);
		json_t *counters = json_loads(r.body, 0, NULL);
		cr_assert_not_null(counters, "counters are not JSON: %s", r.body);
		json_t *requests = json_object_get(counters, "requests");
		json_t *settings = json_object_get(json_object_get(requests, SBH_ALPHA_ID), "settings");
		cr_assert_eq(json_integer_value(json_object_get(settings, "200")), i,
		             "request %d is missing from the counters: %s", i, r.body);
		json_decref(counters);
		sbh_resp_clear(&r);
	}
}
