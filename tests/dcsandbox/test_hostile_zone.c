/*
 * Hostile input fed straight to the zone engine: templates and zone JSON
 * that a careless or malicious integrator could write. Every case must end
 * in a status (never a crash), and a rejected apply must leave no record.
 */
#include "zone.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOMAIN "shop.sandbox.test"

static zone *seed_zone(void)
{
	json_t *records = json_loads("[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":600},"
		"{\"type\":\"CNAME\",\"name\":\"www\",\"data\":\"@\",\"ttl\":600}]", 0, NULL);
	cr_assert_not_null(records);
	zone *z = NULL;
	zone_error err = {0};
	cr_assert_eq(zone_from_json(records, &z, &err), ZONE_OK, "%s", err.message);
	json_decref(records);
	return z;
}

static json_t *template_with(const char *records_json)
{
	char text[8192];
	snprintf(text, sizeof(text), "{\"providerId\":\"hostile.test\",\"providerName\":\"Hostile\","
		"\"serviceId\":\"svc\",\"serviceName\":\"Hostile\",\"version\":1,\"records\":%s}", records_json);
	json_t *t = json_loads(text, 0, NULL);
	cr_assert_not_null(t, "bad fixture: %s", text);
	return t;
}

/* Apply TEMPLATE with PARAMS to a fresh seed zone and return the status. */
static zone_status apply(const json_t *tpl, const json_t *params, const char *host, zone_result *result)
{
	zone *z = seed_zone();
	zone_apply_opts opts = {.domain = DOMAIN, .host = host, .params = params, .multi_aware = true};
	zone_error err = {0};
	zone_status st = zone_apply_template(z, tpl, &opts, result, &err);
	if (st != ZONE_OK)
		cr_expect_neq(err.message[0], '\0', "status %s without a message", zone_status_name(st));
	zone_free(z);
	return st;
}

Test(hostile_zone, template_table_never_crashes)
{
	static const struct {
		const char *records;
		zone_status expected;
	} cases[] = {
		/* CNAME at the apex next to the seed's A record. */
		{"[{\"type\":\"CNAME\",\"host\":\"@\",\"pointsTo\":\"target.example.net\",\"ttl\":600}]",
			ZONE_ERR_INVALID_DATA},
		/* CNAME pointing at itself. */
		{"[{\"type\":\"CNAME\",\"host\":\"loop\",\"pointsTo\":\"loop." DOMAIN "\",\"ttl\":600}]", ZONE_OK},
		{"[{\"type\":\"CNAME\",\"host\":\"x\",\"pointsTo\":\"%x%\",\"ttl\":600}]", ZONE_ERR_MISSING_PARAMETER},
		{"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"999.1.1.1\",\"ttl\":600}]", ZONE_ERR_INVALID_DATA},
		{"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":-5}]", ZONE_ERR_INVALID_TEMPLATE},
		{"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":\"abc\"}]", ZONE_ERR_INVALID_TEMPLATE},
		{"[{\"type\":\"MX\",\"host\":\"@\",\"pointsTo\":\"mx.example.net\",\"priority\":99999999999,\"ttl\":1}]",
			ZONE_ERR_INVALID_TEMPLATE},
		{"[{\"type\":\"SRV\",\"name\":\"x\",\"target\":\"t.example.net\",\"priority\":1,\"weight\":1,"
			"\"port\":70000,\"protocol\":\"_tcp\",\"service\":\"_s\",\"ttl\":1}]", ZONE_ERR_INVALID_TEMPLATE},
		{"[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"%%%%%%\",\"ttl\":600}]", ZONE_ERR_INVALID_TEMPLATE},
		{"[{\"type\":\"\",\"host\":\"@\",\"data\":\"x\",\"ttl\":600}]", ZONE_ERR_UNKNOWN_TYPE},
		{"[{\"type\":null,\"host\":null,\"data\":null}]", ZONE_ERR_INVALID_TEMPLATE},
		{"[[],{},1,\"x\",null]", ZONE_ERR_INVALID_TEMPLATE},
		{"{}", ZONE_ERR_INVALID_TEMPLATE},
		{"[{\"type\":\"A\",\"host\":\"a..b\",\"pointsTo\":\"192.0.2.1\",\"ttl\":600}]", ZONE_ERR_INVALID_DATA},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *tpl = template_with(cases[i].records);
		json_t *params = json_object();
		zone_result result = {0};
		zone_status st = apply(tpl, params, NULL, &result);
		/* The exact error status is the engine's choice, but an error must come with no result. */
		if (cases[i].expected == ZONE_OK)
			cr_expect_eq(st, ZONE_OK, "case %zu: %s", i, zone_status_name(st));
		else
			cr_expect_neq(st, ZONE_OK, "case %zu accepted: %s", i, cases[i].records);
		if (st != ZONE_OK)
			cr_expect_null(result.final, "case %zu left a result", i);
		zone_result_clear(&result);
		json_decref(params);
		json_decref(tpl);
	}
}

Test(hostile_zone, metacharacter_variables_rejected)
{
	static const char *const values[] = {
		"192.0.2.1\n@ IN A 192.0.2.66",
		"192.0.2.1; rm -rf /",
		"192.0.2.1 ",
		"",
		"%ip%",
		"192.0.2.1\r\n",
	};
	json_t *tpl = template_with("[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"%ip%\",\"ttl\":600}]");
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		json_t *params = json_pack("{s:s}", "ip", values[i]);
		zone_result result = {0};
		zone_status st = apply(tpl, params, NULL, &result);
		cr_expect_neq(st, ZONE_OK, "value %zu accepted", i);
		zone_result_clear(&result);
		json_decref(params);
	}
	json_decref(tpl);
}

Test(hostile_zone, txt_with_quotes_and_newlines)
{
	json_t *tpl = template_with("[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"%v%\",\"ttl\":600}]");
	static const char *const values[] = {"a\"b", "line\nbreak", "semi;colon", "back\\slash"};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		json_t *params = json_pack("{s:s}", "v", values[i]);
		zone_result result = {0};
		zone_status st = apply(tpl, params, NULL, &result);
		cr_expect(st == ZONE_OK || st == ZONE_ERR_INVALID_DATA, "value %zu: %s", i, zone_status_name(st));
		zone_result_clear(&result);
		json_decref(params);
	}
	json_decref(tpl);
}

Test(hostile_zone, huge_variable_value)
{
	size_t len = 64 * 1024;
	char *big = malloc(len + 1);
	cr_assert_not_null(big);
	memset(big, 'a', len);
	big[len] = '\0';
	json_t *params = json_pack("{s:s}", "v", big);
	static const char *const records[] = {
		"[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"%v%\",\"ttl\":600}]",
		"[{\"type\":\"CNAME\",\"host\":\"%v%\",\"pointsTo\":\"t.example.net\",\"ttl\":600}]",
		"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"%v%\",\"ttl\":600}]",
	};
	for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++) {
		json_t *tpl = template_with(records[i]);
		zone_result result = {0};
		zone_status st = apply(tpl, params, NULL, &result);
		/* A 64 KiB name or address is never valid DNS. */
		if (i > 0)
			cr_expect_neq(st, ZONE_OK, "record %zu accepted a 64 KiB value", i);
		zone_result_clear(&result);
		json_decref(tpl);
	}
	json_decref(params);
	free(big);
}

Test(hostile_zone, ten_thousand_records)
{
	size_t count = 10000;
	json_t *list = json_array();
	for (size_t i = 0; i < count; i++) {
		char host[32];
		snprintf(host, sizeof(host), "h%zu", i);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:i}", "type", "A", "host", host,
			"pointsTo", "192.0.2.7", "ttl", 600));
	}
	json_t *tpl = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o}", "providerId", "hostile.test", "providerName", "H",
		"serviceId", "svc", "serviceName", "H", "version", 1, "records", list);
	zone_result result = {0};
	zone_status st = apply(tpl, NULL, NULL, &result);
	cr_expect_eq(st, ZONE_OK, "%s", zone_status_name(st));
	if (st == ZONE_OK)
		cr_expect_eq(zone_count(result.added), count);
	zone_result_clear(&result);
	json_decref(tpl);
}

/*
 * zone_from_json checks the shape only (string "type" and "name"), so the
 * admin API can seed odd zones. Garbage content is stored, and an apply on
 * top of it must still end in a status.
 */
Test(hostile_zone, garbage_zone_json_then_apply)
{
	static const struct {
		const char *json;
		bool accepted;
	} inputs[] = {
		{"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"not-an-ip\",\"ttl\":1}]", true},
		{"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":-1}]", false},
		{"[{\"type\":\"A\",\"name\":\"bad name\",\"data\":\"192.0.2.1\",\"ttl\":1}]", true},
		{"[{\"type\":\"CNAME\",\"name\":\"@\",\"data\":\"x.example.net\",\"ttl\":1},"
		"{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":1}]", true},
		{"[{\"type\":\"CNAME\",\"name\":\"loop\",\"data\":\"loop\",\"ttl\":1}]", true},
		{"[{\"name\":\"@\"}]", false},
		{"[1,2,3]", false},
		{"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":1,\"_dc\":7}]", false},
		{"[{\"type\":\"MX\",\"name\":\"@\",\"data\":\"mx.example.net\",\"ttl\":1,\"priority\":-3}]", false},
		{"[{\"type\":\"TXT\",\"name\":\"@\",\"data\":{},\"ttl\":1}]", false},
	};
	json_t *tpl = template_with("[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.9\",\"ttl\":600},"
		"{\"type\":\"CNAME\",\"host\":\"loop\",\"pointsTo\":\"@\",\"ttl\":600}]");
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		json_t *j = json_loads(inputs[i].json, 0, NULL);
		cr_assert_not_null(j, "bad fixture %zu", i);
		zone *z = NULL;
		zone_error err = {0};
		zone_status st = zone_from_json(j, &z, &err);
		json_decref(j);
		if (!inputs[i].accepted) {
			cr_expect_eq(st, ZONE_ERR_INVALID_ZONE, "input %zu: %s", i, zone_status_name(st));
			cr_expect_null(z, "input %zu left a zone", i);
			zone_free(z);
			continue;
		}
		cr_expect_eq(st, ZONE_OK, "input %zu: %s", i, err.message);
		zone_apply_opts opts = {.domain = DOMAIN, .params = NULL, .multi_aware = true};
		zone_result result = {0};
		st = zone_apply_template(z, tpl, &opts, &result, &err);
		cr_expect(st == ZONE_OK || st == ZONE_ERR_INVALID_DATA, "input %zu: apply gave %s", i,
			zone_status_name(st));
		zone_result_clear(&result);
		zone_free(z);
	}
	json_decref(tpl);
}
