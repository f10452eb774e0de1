/* Job specs: every accepted shape and every rejected input with its error code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/job_spec.h"

/* 2026-01-01T00:00:00Z in Unix ms. */
#define NOW_MS 1767225600000LL
#define AUTH_ID "0b6f7a52-3c1e-4d8a-9f20-6a1d2c3b4e5f"

static job_spec *parse_ok(const char *json)
{
	job_spec *spec = NULL;
	common_error err;
	common_error_clear(&err);
	common_status status = job_spec_parse(json, strlen(json), NOW_MS, &spec, &err);
	cr_assert_eq(status, COMMON_OK, "rejected %s: %s", json, err.message);
	cr_assert_not_null(spec);
	return spec;
}

/* Asserts that json fails with code and a message containing needle. */
static void parse_bad(const char *json, const char *code, const char *needle)
{
	job_spec *spec = NULL;
	common_error err;
	common_error_clear(&err);
	common_status status = job_spec_parse(json, strlen(json), NOW_MS, &spec, &err);
	cr_assert_eq(status, COMMON_ERR_INVALID, "accepted %s", json);
	cr_assert_null(spec);
	cr_assert_str_eq(err.code, code, "%s: code %s, message %s", json, err.code, err.message);
	cr_assert_not_null(strstr(err.message, needle), "%s: message \"%s\" lacks \"%s\"", json,
	                   err.message, needle);
}

Test(job_spec, apply_parses)
{
	job_spec *spec = parse_ok(
		"{\"id\":\"job-1\",\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\","
		"\"service_id\":\"web\",\"host\":\"shop\",\"params\":{\"IP\":\"192.0.2.1\"},"
		"\"group_ids\":[\"a\",\"b\"],\"on_conflict\":\"force\",\"max_attempts\":3,"
		"\"not_before\":\"2026-01-02T00:00:00.5Z\"}");
	cr_assert_str_eq(spec->id, "job-1");
	cr_assert_eq(spec->type, JOB_TYPE_APPLY);
	cr_assert_str_eq(spec->authorization_id, AUTH_ID);
	cr_assert_str_eq(spec->service_id, "web");
	cr_assert_str_eq(spec->host, "shop");
	cr_assert_eq(spec->params_count, 1);
	cr_assert_str_eq(spec->params[0].name, "IP");
	cr_assert_str_eq(spec->params[0].value, "192.0.2.1");
	cr_assert_eq(spec->group_ids_count, 2);
	cr_assert_str_eq(spec->group_ids[1], "b");
	cr_assert_eq(spec->on_conflict, JOB_ON_CONFLICT_FORCE);
	cr_assert_eq(spec->max_attempts, 3);
	cr_assert_eq(spec->not_before_ms, NOW_MS + 86400000LL + 500);
	job_spec_free(spec);
}

Test(job_spec, defaults_when_absent)
{
	job_spec *spec = parse_ok("{\"type\":\"refresh\",\"authorization_id\":\"" AUTH_ID "\"}");
	cr_assert_null(spec->id);
	cr_assert_eq(spec->max_attempts, 0);
	cr_assert_eq(spec->not_before_ms, 0);
	cr_assert_eq(spec->on_conflict, JOB_ON_CONFLICT_FAIL);
	cr_assert_null(spec->host);
	job_spec_free(spec);
}

Test(job_spec, discover_splits_domain)
{
	job_spec *spec = parse_ok("{\"type\":\"discover\",\"domain\":\"Shop.Example.CO.UK.\","
	                          "\"service_ids\":[\"web\",\"mail\"],"
	                          "\"redirect_uri\":\"https://app.example/cb?x=1\",\"state\":\"s 1\"}");
	cr_assert_str_eq(spec->domain, "shop.example.co.uk");
	cr_assert_str_eq(spec->zone, "example.co.uk");
	cr_assert_str_eq(spec->domain_host, "shop");
	cr_assert_eq(spec->service_ids_count, 2);
	cr_assert_str_eq(spec->state, "s 1");
	job_spec_free(spec);
}

Test(job_spec, exchange_code_parses)
{
	job_spec *spec = parse_ok("{\"type\":\"exchange_code\",\"dns_provider\":\"ionos\","
	                          "\"code\":\"c0de-secret\",\"redirect_uri\":\"https://a.example/cb\","
	                          "\"domain\":\"example.com\",\"hosts\":[\"\",\"www\"]}");
	cr_assert_str_eq(spec->code, "c0de-secret");
	cr_assert_eq(spec->hosts_count, 2);
	cr_assert_str_eq(spec->hosts[0], "");
	cr_assert_str_eq(spec->domain_host, "");

	json_t *pub = job_spec_to_public_json(spec);
	char *text = json_dumps(pub, 0);
	cr_assert_null(strstr(text, "c0de"), "code in public JSON: %s", text);
	cr_assert_str_eq(json_string_value(json_object_get(pub, "dns_provider")), "ionos");
	free(text);
	json_decref(pub);
	job_spec_free(spec);
}

Test(job_spec, public_json_parses_again)
{
	job_spec *spec = parse_ok(
		"{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\",\"service_id\":\"web\","
		"\"params\":{\"IP\":\"1\"},\"not_before\":\"2026-01-01T01:00:00+01:00\"}");
	cr_assert_eq(spec->not_before_ms, NOW_MS);
	json_t *pub = job_spec_to_public_json(spec);
	char *text = json_dumps(pub, 0);
	job_spec *again = parse_ok(text);
	cr_assert_eq(again->not_before_ms, spec->not_before_ms);
	cr_assert_str_eq(again->params[0].value, "1");
	job_spec_free(again);
	free(text);
	json_decref(pub);
	job_spec_free(spec);
}

Test(job_spec, too_large_rejected)
{
	size_t len = JOB_SPEC_MAX_BYTES + 1;
	char *big = malloc(len + 1);
	memset(big, ' ', len);
	big[len] = '\0';
	big[0] = '{';
	big[len - 1] = '}';
	parse_bad(big, "too_large", "65537 bytes");
	free(big);
}

Test(job_spec, not_json_rejected)
{
	parse_bad("{\"type\":", "invalid_json", "not valid JSON");
	parse_bad("apply", "invalid_json", "not valid JSON");
	parse_bad("", "invalid_json", "not valid JSON");
	parse_bad("[1]", "invalid_json", "not a JSON object");
	parse_bad("\"apply\"", "invalid_json", "not valid JSON");
	parse_bad("{\"type\":\"refresh\",\"type\":\"apply\"}", "invalid_json", "duplicate");
}

Test(job_spec, type_errors)
{
	parse_bad("{}", "missing_field", "missing field \"type\"");
	parse_bad("{\"type\":1}", "invalid_field", "must be a string, got an integer");
	parse_bad("{\"type\":\"delete\"}", "invalid_field", "\"delete\" is not a job type");
}

Test(job_spec, unknown_fields_rejected)
{
	parse_bad("{\"type\":\"refresh\",\"authorization_id\":\"" AUTH_ID "\",\"prio\":1}",
	          "unknown_field", "unknown field \"prio\"; fields of type refresh: type, id, "
	                           "authorization_id, max_attempts, not_before");
	parse_bad("{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\",\"service_id\":\"w\","
	          "\"code\":\"x\"}",
	          "unknown_field", "field \"code\" is not valid for type apply");
	parse_bad("{\"type\":\"revert\",\"authorization_id\":\"" AUTH_ID "\",\"service_id\":\"w\","
	          "\"on_conflict\":\"force\"}",
	          "unknown_field", "\"on_conflict\" is not valid for type revert");
	parse_bad("{\"type\":\"refresh\",\"a\\nb\":1}", "unknown_field", "\"a\\x0ab\"");
}

Test(job_spec, required_fields_per_type)
{
	parse_bad("{\"type\":\"discover\"}", "missing_field", "\"domain\", required for type discover");
	parse_bad("{\"type\":\"apply\",\"service_id\":\"w\"}", "missing_field",
	          "\"authorization_id\", required for type apply");
	parse_bad("{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\"}", "missing_field",
	          "\"service_id\"");
	parse_bad("{\"type\":\"revert\",\"authorization_id\":\"" AUTH_ID "\"}", "missing_field",
	          "\"service_id\", required for type revert");
	parse_bad("{\"type\":\"refresh\"}", "missing_field", "\"authorization_id\"");
	parse_bad("{\"type\":\"exchange_code\",\"code\":\"x\",\"redirect_uri\":\"https://a/\","
	          "\"domain\":\"example.com\"}",
	          "missing_field", "\"dns_provider\"");
	parse_bad("{\"type\":\"exchange_code\",\"dns_provider\":\"p\",\"redirect_uri\":\"https://a/\","
	          "\"domain\":\"example.com\"}",
	          "missing_field", "\"code\"");
	parse_bad("{\"type\":\"exchange_code\",\"dns_provider\":\"p\",\"code\":\"x\","
	          "\"domain\":\"example.com\"}",
	          "missing_field", "\"redirect_uri\"");
	parse_bad("{\"type\":\"discover\",\"domain\":\"example.com\",\"redirect_uri\":\"https://a/\"}",
	          "missing_field", "\"service_ids\", required with redirect_uri");
}

Test(job_spec, wrong_json_types)
{
	const char *base = "{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\","
	                   "\"service_id\":\"w\",";
	static const struct {
		const char *tail;
		const char *needle;
	} cases[] = {
		{"\"max_attempts\":\"3\"}", "\"max_attempts\" must be an integer, got a string"},
		{"\"max_attempts\":2.5}", "must be an integer, got a number"},
		{"\"group_ids\":\"a\"}", "\"group_ids\" must be an array of strings, got a string"},
		{"\"group_ids\":[1]}", "\"group_ids[0]\" must be a string, got an integer"},
		{"\"params\":[]}", "\"params\" must be an object"},
		{"\"params\":{\"IP\":1}}", "\"params.IP\" must be a string, got an integer"},
		{"\"host\":null}", "\"host\" must be a string, got null"},
		{"\"on_conflict\":true}", "\"on_conflict\" must be a string, got a boolean"},
		{"\"not_before\":1767225600}", "\"not_before\" must be an RFC 3339 time string"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[512];
		snprintf(json, sizeof(json), "%s%s", base, cases[i].tail);
		parse_bad(json, "invalid_field", cases[i].needle);
	}
	parse_bad("{\"type\":\"refresh\",\"authorization_id\":{}}", "invalid_field",
	          "\"authorization_id\" must be a string, got an object");
}

Test(job_spec, reserved_param_names_rejected)
{
	static const char *const names[] = {"domain", "host", "groupId", "force", "sig", "key",
	                                    "state", "redirect_uri", "fqdn", "bad name", ""};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char json[512];
		snprintf(json, sizeof(json),
		         "{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\","
		         "\"service_id\":\"w\",\"params\":{\"%s\":\"v\"}}",
		         names[i]);
		char needle[64];
		snprintf(needle, sizeof(needle), "variable \"%s\" is not allowed", names[i]);
		parse_bad(json, "invalid_field", needle);
	}
}

Test(job_spec, id_syntax_checked)
{
	parse_bad("{\"type\":\"refresh\",\"authorization_id\":\"" AUTH_ID "\",\"id\":\"a b\"}",
	          "invalid_field", "field \"id\" value \"a b\" is invalid; use 1 to 128");
	parse_bad("{\"type\":\"refresh\",\"authorization_id\":\"" AUTH_ID "\",\"id\":\"\"}",
	          "invalid_field", "field \"id\" value \"\" is invalid");
	char json[512];
	char long_id[JOB_SPEC_ID_MAX + 2];
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"type\":\"refresh\",\"authorization_id\":\"" AUTH_ID "\","
	                             "\"id\":\"%s\"}", long_id);
	parse_bad(json, "invalid_field", "...\" is invalid");

	parse_bad("{\"type\":\"refresh\",\"authorization_id\":\"42\"}", "invalid_field",
	          "\"authorization_id\" value \"42\" is invalid; use the UUID");
	parse_bad("{\"type\":\"refresh\",\"authorization_id\":\"0b6f7a52x3c1e-4d8a-9f20-6a1d2c3b4e5f\"}",
	          "invalid_field", "use the UUID");
	parse_bad("{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\",\"service_id\":\"w/x\"}",
	          "invalid_field", "\"service_id\" value \"w/x\" is invalid");
	parse_bad("{\"type\":\"exchange_code\",\"dns_provider\":\"IONOS\",\"code\":\"x\","
	          "\"redirect_uri\":\"https://a/\",\"domain\":\"example.com\"}",
	          "invalid_field", "\"dns_provider\" value \"IONOS\" is invalid");
}

Test(job_spec, bad_domains_rejected)
{
	static const char *const domains[] = {"not a domain", "", "-bad-.example.com",
	                                      "a..example.com"};
	for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		char json[256];
		snprintf(json, sizeof(json), "{\"type\":\"discover\",\"domain\":\"%s\"}", domains[i]);
		parse_bad(json, "invalid_field", "is not a domain name");
	}
	parse_bad("{\"type\":\"discover\",\"domain\":[\"example.com\"]}", "invalid_field",
	          "\"domain\" must be a string");
}

Test(job_spec, bad_hosts_rejected)
{
	static const char *const hosts[] = {"a b", ".www", "www.", "a..b", "sh\\u00f6p"};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		char json[256];
		snprintf(json, sizeof(json),
		         "{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\","
		         "\"service_id\":\"w\",\"host\":\"%s\"}",
		         hosts[i]);
		parse_bad(json, "invalid_field", "\"host\" value");
	}
}

Test(job_spec, lists_checked)
{
	parse_bad("{\"type\":\"discover\",\"domain\":\"example.com\",\"service_ids\":[]}",
	          "invalid_field", "\"service_ids\" is empty");
	parse_bad("{\"type\":\"discover\",\"domain\":\"example.com\",\"service_ids\":[\"a\",\"a\"]}",
	          "invalid_field", "\"service_ids[1]\" value \"a\" is a duplicate");
	parse_bad("{\"type\":\"exchange_code\",\"dns_provider\":\"p\",\"code\":\"x\","
	          "\"redirect_uri\":\"https://a/\",\"domain\":\"example.com\",\"hosts\":[\"a b\"]}",
	          "invalid_field", "\"hosts[0]\" value \"a b\" is invalid");
}

Test(job_spec, enum_and_ranges_checked)
{
	const char *base = "{\"type\":\"apply\",\"authorization_id\":\"" AUTH_ID "\","
	                   "\"service_id\":\"w\",";
	static const struct {
		const char *tail;
		const char *needle;
	} cases[] = {
		{"\"on_conflict\":\"merge\"}", "\"on_conflict\" value \"merge\" is invalid; use \"fail\" or \"force\""},
		{"\"max_attempts\":0}", "value 0 is out of range; use an integer from 1 to 100"},
		{"\"max_attempts\":101}", "value 101 is out of range"},
		{"\"max_attempts\":-5}", "value -5 is out of range"},
		{"\"not_before\":\"tomorrow\"}", "\"tomorrow\" is not an RFC 3339 time"},
		{"\"not_before\":\"2026-02-30T00:00:00Z\"}", "is not an RFC 3339 time"},
		{"\"not_before\":\"2026-01-01T00:00:00\"}", "is not an RFC 3339 time"},
		{"\"not_before\":\"2026-01-01T25:00:00Z\"}", "is not an RFC 3339 time"},
		{"\"not_before\":\"2026-01-01T00:00:00Zjunk\"}", "is not an RFC 3339 time"},
		{"\"not_before\":\"2027-01-02T00:00:00Z\"}", "is too far ahead; use a time at most 365"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[512];
		snprintf(json, sizeof(json), "%s%s", base, cases[i].tail);
		parse_bad(json, "invalid_field", cases[i].needle);
	}
}

Test(job_spec, past_not_before_accepted)
{
	job_spec *spec = parse_ok("{\"type\":\"refresh\",\"authorization_id\":\"" AUTH_ID "\","
	                          "\"not_before\":\"2020-01-01T00:00:00Z\"}");
	cr_assert_eq(spec->not_before_ms, 1577836800000LL);
	job_spec_free(spec);
}

Test(job_spec, strings_checked)
{
	parse_bad("{\"type\":\"discover\",\"domain\":\"example.com\",\"service_ids\":[\"w\"],"
	          "\"redirect_uri\":\"ftp://x/\"}",
	          "invalid_field", "\"redirect_uri\" value \"ftp://x/\" is invalid; use an absolute");
	parse_bad("{\"type\":\"discover\",\"domain\":\"example.com\",\"state\":\"a\\u0001\"}",
	          "invalid_field", "\"state\" value \"a\\x01\" is invalid");
	char *long_state = malloc(4000);
	memset(long_state, 'x', 3999);
	long_state[3999] = '\0';
	char *json = malloc(5000);
	snprintf(json, 5000, "{\"type\":\"discover\",\"domain\":\"example.com\",\"state\":\"%s\"}",
	         long_state);
	parse_bad(json, "invalid_field", "is too long; send at most 2048 bytes");
	free(json);
	free(long_state);
}

Test(job_spec, code_never_in_message)
{
	parse_bad("{\"type\":\"exchange_code\",\"dns_provider\":\"p\",\"code\":\"top secret\","
	          "\"redirect_uri\":\"https://a/\",\"domain\":\"example.com\"}",
	          "invalid_field", "\"code\" value \"(not shown)\" is invalid");
	job_spec *spec = NULL;
	common_error err;
	const char *json = "{\"type\":\"exchange_code\",\"dns_provider\":\"p\",\"code\":\"top "
	                   "secret\",\"redirect_uri\":\"https://a/\",\"domain\":\"example.com\"}";
	job_spec_parse(json, strlen(json), NOW_MS, &spec, &err);
	cr_assert_null(strstr(err.message, "secret"), "%s", err.message);
}

Test(job_spec, type_names)
{
	job_type type;
	cr_assert_eq(job_type_parse("exchange_code", &type), COMMON_OK);
	cr_assert_eq(type, JOB_TYPE_EXCHANGE_CODE);
	cr_assert_eq(job_type_parse("Apply", &type), COMMON_ERR_INVALID);
	cr_assert_str_eq(job_type_name(JOB_TYPE_REVERT), "revert");
	cr_assert_str_eq(job_type_name(JOB_TYPE_COUNT), "unknown");
}
