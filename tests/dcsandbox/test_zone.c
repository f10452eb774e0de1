/*
 * Zone engine unit tests for the paths the compliance vectors leave out:
 * zone JSON errors, bad apply inputs, redirects, APEXCNAME, number ranges,
 * multi-aware re-apply at the apex, and revert.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "dcsandbox/zone.h"

/* Parse TEXT (a JSON array of records) into a zone, failing the test on error. */
static zone *zone_parse(const char *text)
{
	json_error_t json_err;
	json_t *array = json_loads(text, 0, &json_err);
	cr_assert_not_null(array, "bad test JSON: %s", json_err.text);
	zone *parsed = NULL;
	zone_error err = { 0 };
	cr_assert_eq(zone_from_json(array, &parsed, &err), ZONE_OK, "%s", err.message);
	json_decref(array);
	return parsed;
}

/* Apply the template records RECORDS_TEXT to ZONE_TEXT under OPTS. */
static zone_status apply_records(const char *zone_text, const char *records_text,
	zone_apply_opts *opts, zone_result *result, zone_error *err)
{
	zone *before = zone_parse(zone_text);
	json_t *records = json_loads(records_text, 0, NULL);
	cr_assert_not_null(records, "bad test JSON: %s", records_text);

	zone_status status = zone_process_records(before, records, opts, result, err);
	json_decref(records);
	zone_free(before);
	return status;
}

/* Apply RECORDS_TEXT to an empty zone of example.com and return the status only. */
static zone_status apply_status(const char *records_text, zone_error *err)
{
	zone_apply_opts opts = { .domain = "example.com", .host = "" };
	zone_result result = { 0 };
	zone_status status = apply_records("[]", records_text, &opts, &result, err);
	zone_result_clear(&result);
	return status;
}

Test(zone_json, rejects_non_array)
{
	json_t *object = json_object();
	zone *parsed = NULL;
	zone_error err = { 0 };
	cr_expect_eq(zone_from_json(object, &parsed, &err), ZONE_ERR_INVALID_ZONE);
	cr_expect_null(parsed);
	json_decref(object);
}

Test(zone_json, rejects_bad_records)
{
	static const char *const bad[] = {
		"[1]",
		"[{\"name\":\"@\",\"data\":\"x\"}]",
		"[{\"type\":\"A\",\"data\":\"192.0.2.1\"}]",
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":-5}]",
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":\"soon\"}]",
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":7}]",
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"_dc\":\"x\"}]",
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"_dc\":{\"id\":3}}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *array = json_loads(bad[i], 0, NULL);
		zone *parsed = NULL;
		zone_error err = { 0 };
		cr_expect_eq(zone_from_json(array, &parsed, &err), ZONE_ERR_INVALID_ZONE,
			"accepted %s", bad[i]);
		cr_expect_null(parsed);
		cr_expect_neq(err.message[0], '\0', "no message for %s", bad[i]);
		json_decref(array);
	}
}

Test(zone_json, null_is_empty_zone)
{
	zone *parsed = NULL;
	cr_assert_eq(zone_from_json(NULL, &parsed, NULL), ZONE_OK);
	cr_expect_eq(zone_count(parsed), 0);
	zone_free(parsed);
}

Test(zone_json, round_trip_keeps_dc_keys)
{
	zone *parsed = zone_parse("[{\"type\":\"txt\",\"name\":\"\",\"data\":\"Keep Case\",\"ttl\":\"60\","
		"\"_dc\":{\"record_id\":\"r1\",\"id\":\"i1\"}}]");
	json_t *out = zone_to_json(parsed);
	json_t *expected = json_loads("[{\"type\":\"TXT\",\"name\":\"@\",\"data\":\"Keep Case\",\"ttl\":60,"
		"\"_dc\":{\"record_id\":\"r1\",\"id\":\"i1\"}}]", 0, NULL);
	char *text = json_dumps(out, JSON_COMPACT);
	cr_expect(json_equal(out, expected), "got %s", text);
	free(text);
	json_decref(out);
	json_decref(expected);
	zone_free(parsed);
}

Test(zone_apply, rejects_bad_domain_and_host)
{
	static const struct {
		const char *domain;
		const char *host;
	} bad[] = {
		{ NULL, "" },
		{ "bad domain.com", "" },
		{ "example.com.", "" },
		{ "example.com", "bad host" },
		{ "example.com", "*.wild" },
		{ "example.com", "-lead" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		zone_apply_opts opts = { .domain = bad[i].domain, .host = bad[i].host };
		zone_result result = { 0 };
		zone_error err = { 0 };
		cr_expect_eq(apply_records("[]", "[]", &opts, &result, &err), ZONE_ERR_INVALID_DATA,
			"accepted domain %s host %s", bad[i].domain, bad[i].host);
		cr_expect_null(result.final);
	}
}

Test(zone_apply, rejects_malformed_templates)
{
	static const char *const bad[] = {
		"{}",
		"[3]",
		"[{\"host\":\"@\"}]",
		"[{\"type\":\"A\",\"host\":\"@\",\"ttl\":60}]",
		"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\"}]",
		"[{\"type\":\"A\",\"host\":5,\"pointsTo\":\"192.0.2.1\",\"ttl\":60}]",
		"[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"x\",\"ttl\":60,\"txtConflictMatchingMode\":\"Some\"}]",
		"[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"x\",\"ttl\":60,\"txtConflictMatchingMode\":\"Prefix\"}]",
		"[{\"type\":\"REDIR301\",\"host\":\"@\",\"target\":\"https://example.net\"}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		zone_error err = { 0 };
		cr_expect_eq(apply_status(bad[i], &err), ZONE_ERR_INVALID_TEMPLATE, "%s: %s (%s)",
			bad[i], zone_status_name(err.status), err.message);
	}
}

Test(zone_apply, rejects_invalid_values)
{
	static const char *const bad[] = {
		"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":-1}]",
		"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":2147483648}]",
		"[{\"type\":\"MX\",\"host\":\"@\",\"pointsTo\":\"mx.example.net\",\"ttl\":60,\"priority\":65536}]",
		"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":\"%word%\"}]",
		"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":true}]",
		"[{\"type\":\"A\",\"host\":\"www.other.org.\",\"pointsTo\":\"192.0.2.1\",\"ttl\":60}]",
		"[{\"type\":\"A\",\"host\":\"a123456789012345678901234567890123456789012345678901234567890.b123456789012345678901234567890123456789012345678901234567890.c123456789012345678901234567890123456789012345678901234567890.d1234567890123456789012345678901234567890123456789012345\",\"pointsTo\":\"192.0.2.1\",\"ttl\":60}]",
		"[{\"type\":\"CAA\",\"host\":\"@\",\"data\":\"\",\"ttl\":60}]",
	};
	zone_apply_opts opts = { .domain = "example.com", .host = "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		zone_result result = { 0 };
		zone_error err = { 0 };
		json_t *params = json_pack("{s:s}", "word", "abc");
		opts.params = params;
		cr_expect_eq(apply_records("[]", bad[i], &opts, &result, &err), ZONE_ERR_INVALID_DATA,
			"%s: %s (%s)", bad[i], zone_status_name(err.status), err.message);
		zone_result_clear(&result);
		json_decref(params);
	}
}

Test(zone_apply, params_must_be_object)
{
	json_t *params = json_array();
	zone_apply_opts opts = { .domain = "example.com", .params = params };
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_expect_eq(apply_records("[]", "[]", &opts, &result, &err), ZONE_ERR_INVALID_DATA);
	json_decref(params);
}

Test(zone_apply, variable_names_case_sensitive)
{
	json_t *params = json_pack("{s:s}", "ip", "192.0.2.1");
	zone_apply_opts opts = { .domain = "example.com", .params = params };
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_expect_eq(apply_records("[]", "[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"%IP%\",\"ttl\":60}]",
		&opts, &result, &err), ZONE_ERR_MISSING_PARAMETER);
	cr_expect(strstr(err.message, "IP") != NULL, "message: %s", err.message);
	json_decref(params);
}

Test(zone_apply, absent_host_substitutes_empty)
{
	zone_apply_opts opts = { .domain = "example.com", .host = NULL };
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_assert_eq(apply_records("[]", "[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"h=%host%\",\"ttl\":60}]",
		&opts, &result, &err), ZONE_OK, "%s", err.message);
	cr_expect_str_eq(zone_get(result.added, 0)->data, "h=");
	zone_result_clear(&result);
}

Test(zone_apply, message_strips_control_bytes)
{
	zone_error err = { 0 };
	cr_expect_eq(apply_status("[{\"type\":\"A\",\"host\":\"bad\\nname\",\"pointsTo\":\"192.0.2.1\",\"ttl\":60}]",
		&err), ZONE_ERR_INVALID_DATA);
	cr_expect_null(strchr(err.message, '\n'), "message: %s", err.message);
}

Test(zone_apply, does_not_change_input)
{
	zone *before = zone_parse("[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.9\",\"ttl\":60}]");
	json_t *records = json_loads("[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":60}]",
		0, NULL);
	zone_apply_opts opts = { .domain = "example.com" };
	zone_result result = { 0 };
	cr_assert_eq(zone_process_records(before, records, &opts, &result, NULL), ZONE_OK);

	cr_expect_eq(zone_count(before), 1);
	cr_expect_str_eq(zone_get(before, 0)->data, "192.0.2.9");
	cr_expect_eq(zone_count(result.deleted), 1);
	cr_expect_str_eq(zone_get(result.deleted, 0)->data, "192.0.2.9");
	zone_result_clear(&result);
	json_decref(records);
	zone_free(before);
}

/* A and AAAA records of a redirect server, as a provider configures them. */
static zone *redirect_backing(void)
{
	return zone_parse("[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.80\",\"ttl\":300},"
		"{\"type\":\"AAAA\",\"name\":\"@\",\"data\":\"2001:db8::80\",\"ttl\":300}]");
}

Test(zone_apply, redirect_target_must_be_url)
{
	static const char *const bad[] = {
		"ftp://example.net/",
		"https://user@example.net/",
		"https://exa mple.net/",
		"https://example.net:99999/",
		"example.net",
	};
	zone *backing = redirect_backing();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *records = json_pack("[{s:s, s:s, s:s}]", "type", "REDIR302", "host", "@",
			"target", bad[i]);
		zone_apply_opts opts = { .domain = "example.com", .redirect_records = backing };
		zone_result result = { 0 };
		zone_error err = { 0 };
		cr_expect_eq(zone_process_records(NULL, records, &opts, &result, &err), ZONE_ERR_INVALID_DATA,
			"accepted %s", bad[i]);
		json_decref(records);
	}
	zone_free(backing);
}

Test(zone_apply, redirect_adds_backing_records)
{
	zone *backing = redirect_backing();
	zone *before = zone_parse("[{\"type\":\"CNAME\",\"name\":\"go\",\"data\":\"old.example.net\",\"ttl\":60}]");
	json_t *records = json_loads("[{\"type\":\"REDIR301\",\"host\":\"go\",\"target\":\"https://example.net/path?q=1\",\"ttl\":900}]",
		0, NULL);
	zone_apply_opts opts = { .domain = "example.com", .redirect_records = backing };
	zone_result result = { 0 };
	zone_error err = { 0 };

	cr_assert_eq(zone_process_records(before, records, &opts, &result, &err), ZONE_OK, "%s", err.message);
	cr_expect_eq(zone_count(result.added), 3);
	cr_expect_eq(zone_count(result.deleted), 1);
	const zone_record *a = zone_get(result.added, 0);
	cr_expect_str_eq(a->type, "A");
	cr_expect_str_eq(a->name, "go");
	cr_expect_str_eq(a->data, "192.0.2.80");
	cr_expect_eq(a->ttl, 900, "the redirect's ttl applies to its backing records");
	const zone_record *redirect = zone_get(result.added, 2);
	cr_expect_str_eq(redirect->type, "REDIR301");
	cr_expect_not(redirect->has_ttl);

	zone_result_clear(&result);
	json_decref(records);
	zone_free(before);
	zone_free(backing);
}

Test(zone_apply, apexcname_replaces_addresses)
{
	zone_apply_opts opts = { .domain = "example.com" };
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_assert_eq(apply_records(
		"[{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":60},"
		"{\"type\":\"MX\",\"name\":\"@\",\"data\":\"mx.example.net\",\"ttl\":60,\"priority\":10}]",
		"[{\"type\":\"APEXCNAME\",\"pointsTo\":\"Edge.Example.NET\",\"ttl\":300}]",
		&opts, &result, &err), ZONE_OK, "%s", err.message);

	cr_expect_eq(zone_count(result.added), 1);
	cr_expect_str_eq(zone_get(result.added, 0)->name, "@");
	cr_expect_str_eq(zone_get(result.added, 0)->data, "edge.example.net");
	cr_expect_eq(zone_count(result.deleted), 1);
	cr_expect_str_eq(zone_get(result.deleted, 0)->type, "A");
	zone_result_clear(&result);
}

Test(zone_apply, reapply_at_apex_replaces)
{
	/* The earlier instance's TXT conflicts with nothing new, but is replaced. */
	zone_apply_opts opts = {
		.domain = "example.com", .host = "", .multi_aware = true,
		.provider_id = "p.example", .service_id = "s", .unique_id = "new",
	};
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_assert_eq(apply_records(
		"[{\"type\":\"TXT\",\"name\":\"@\",\"data\":\"old\",\"ttl\":60,\"_dc\":{\"id\":\"old\","
		"\"providerId\":\"P.Example\",\"serviceId\":\"s\",\"host\":\"\",\"essential\":\"OnApply\"}},"
		"{\"type\":\"TXT\",\"name\":\"@\",\"data\":\"other\",\"ttl\":60}]",
		"[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":60}]",
		&opts, &result, &err), ZONE_OK, "%s", err.message);

	cr_expect_eq(zone_count(result.deleted), 1);
	cr_expect_str_eq(zone_get(result.deleted, 0)->data, "old");
	cr_expect_eq(zone_count(result.final), 2);
	const zone_record *added = zone_get(result.added, 0);
	cr_assert(added->has_dc);
	cr_expect_str_eq(added->dc.id, "new");
	cr_expect_str_eq(added->dc.essential, "Always");
	zone_result_clear(&result);
}

Test(zone_apply, rejects_bad_essential)
{
	zone_apply_opts opts = {
		.domain = "example.com", .multi_aware = true, .provider_id = "p", .service_id = "s",
	};
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_expect_eq(apply_records("[]",
		"[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"x\",\"ttl\":60,\"essential\":\"Sometimes\"}]",
		&opts, &result, &err), ZONE_ERR_INVALID_TEMPLATE);
}

Test(zone_template, rejects_incomplete_template)
{
	static const char *const bad[] = {
		"[]",
		"{\"serviceId\":\"s\",\"records\":[]}",
		"{\"providerId\":\"p\",\"records\":[]}",
		"{\"providerId\":\"p\",\"serviceId\":\"s\"}",
	};
	zone_apply_opts opts = { .domain = "example.com" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *template = json_loads(bad[i], 0, NULL);
		zone_result result = { 0 };
		zone_error err = { 0 };
		cr_expect_eq(zone_apply_template(NULL, template, &opts, &result, &err),
			ZONE_ERR_INVALID_TEMPLATE, "accepted %s", bad[i]);
		json_decref(template);
	}
}

Test(zone_template, generates_random_instance_id)
{
	json_t *template = json_loads("{\"providerId\":\"p.example\",\"serviceId\":\"s\",\"records\":"
		"[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"x\",\"ttl\":60}]}", 0, NULL);
	zone_apply_opts opts = { .domain = "example.com", .host = "www", .multi_aware = true };
	zone_result first = { 0 };
	zone_result second = { 0 };

	cr_assert_eq(zone_apply_template(NULL, template, &opts, &first, NULL), ZONE_OK);
	cr_assert_eq(zone_apply_template(NULL, template, &opts, &second, NULL), ZONE_OK);
	const zone_dc *dc = &zone_get(first.added, 0)->dc;
	cr_assert_not_null(dc->id);
	cr_expect_eq(strlen(dc->id), 36, "id %s is not a UUID", dc->id);
	cr_expect_str_neq(dc->id, zone_get(second.added, 0)->dc.id);
	cr_expect_str_eq(dc->provider_id, "p.example");
	cr_expect_str_eq(dc->host, "www");

	zone_result_clear(&first);
	zone_result_clear(&second);
	json_decref(template);
}

/* A zone with two instances of p.example/s at www and one at the apex. */
static zone *applied_zone(void)
{
	return zone_parse(
		"[{\"type\":\"TXT\",\"name\":\"www\",\"data\":\"one\",\"ttl\":60,\"_dc\":{\"id\":\"i1\","
		"\"providerId\":\"p.example\",\"serviceId\":\"s\",\"host\":\"www\",\"essential\":\"Always\"}},"
		"{\"type\":\"TXT\",\"name\":\"www\",\"data\":\"two\",\"ttl\":60,\"_dc\":{\"id\":\"i2\","
		"\"providerId\":\"p.example\",\"serviceId\":\"s\",\"host\":\"www\",\"essential\":\"Always\"}},"
		"{\"type\":\"TXT\",\"name\":\"@\",\"data\":\"apex\",\"ttl\":60,\"_dc\":{\"id\":\"i3\","
		"\"providerId\":\"p.example\",\"serviceId\":\"s\",\"host\":\"\",\"essential\":\"Always\"}},"
		"{\"type\":\"A\",\"name\":\"@\",\"data\":\"192.0.2.1\",\"ttl\":60}]");
}

Test(zone_revert, removes_all_instances_at_host)
{
	zone *z = applied_zone();
	zone_result result = { 0 };
	cr_assert_eq(zone_revert(z, "P.EXAMPLE", "S", "WWW", NULL, &result, NULL), ZONE_OK);
	cr_expect_eq(zone_count(result.deleted), 2);
	cr_expect_eq(zone_count(result.final), 2);
	cr_expect_eq(zone_count(result.added), 0);
	zone_result_clear(&result);
	zone_free(z);
}

Test(zone_revert, removes_one_instance)
{
	zone *z = applied_zone();
	zone_result result = { 0 };
	cr_assert_eq(zone_revert(z, "p.example", "s", "www", "i2", &result, NULL), ZONE_OK);
	cr_assert_eq(zone_count(result.deleted), 1);
	cr_expect_str_eq(zone_get(result.deleted, 0)->data, "two");
	zone_result_clear(&result);
	zone_free(z);
}

Test(zone_revert, apex_host_forms_match)
{
	zone *z = applied_zone();
	zone_result result = { 0 };
	cr_assert_eq(zone_revert(z, "p.example", "s", NULL, NULL, &result, NULL), ZONE_OK);
	cr_assert_eq(zone_count(result.deleted), 1);
	cr_expect_str_eq(zone_get(result.deleted, 0)->data, "apex");
	zone_result_clear(&result);
	zone_free(z);
}

Test(zone_revert, not_applied_is_empty)
{
	zone *z = applied_zone();
	zone_result result = { 0 };
	cr_assert_eq(zone_revert(z, "p.example", "other", "www", NULL, &result, NULL), ZONE_OK);
	cr_expect_eq(zone_count(result.deleted), 0);
	cr_expect_eq(zone_count(result.final), 4);
	zone_result_clear(&result);
	zone_free(z);
}

Test(zone_revert, needs_ids)
{
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_expect_eq(zone_revert(NULL, NULL, "s", "", NULL, &result, &err), ZONE_ERR_INVALID_TEMPLATE);
	cr_expect_null(result.final);
}

Test(zone_status, names_cover_every_value)
{
	for (int status = 0; status < ZONE_STATUS_COUNT; status++) {
		const char *name = zone_status_name((zone_status)status);
		cr_assert_not_null(name);
		cr_expect_str_neq(name, "unknown", "status %d has no name", status);
	}
	cr_expect_str_eq(zone_status_name(ZONE_STATUS_COUNT), "unknown");
	cr_expect_str_eq(zone_status_name(ZONE_OK), "ok");
}

/* Apply RECORDS_TEXT to ZONE_TEXT of example.com at the apex, failing the test unless it succeeds. */
static void apply_ok(const char *zone_text, const char *records_text, zone_result *result)
{
	zone_apply_opts opts = { .domain = "example.com", .host = "" };
	zone_error err = { 0 };
	cr_assert_eq(apply_records(zone_text, records_text, &opts, result, &err), ZONE_OK, "%s", err.message);
}

Test(zone_apply, spfm_pair_merges_into_one)
{
	static const char two_spfm[] =
		"[{\"type\":\"SPFM\",\"host\":\"@\",\"spfRules\":\"include:a.example.net\"},"
		"{\"type\":\"SPFM\",\"host\":\"@\",\"spfRules\":\"include:b.example.net\"},"
		"{\"type\":\"SPFM\",\"host\":\"@\",\"spfRules\":\"include:a.example.net\"}]";

	/* Into an empty zone: one new SPF record with both rules. */
	zone_result result = { 0 };
	apply_ok("[]", two_spfm, &result);
	cr_assert_eq(zone_count(result.added), 1, "the SPFM records made %zu SPF records",
		zone_count(result.added));
	cr_expect_str_eq(zone_get(result.added, 0)->data, "v=spf1 include:b.example.net include:a.example.net ~all");
	cr_expect_eq(zone_count(result.final), 1);
	zone_result_clear(&result);

	/* Into a zone with an SPF record: that one is replaced by one record with every rule. */
	apply_ok("[{\"type\":\"TXT\",\"name\":\"@\",\"data\":\"v=spf1 mx ~all\",\"ttl\":300}]", two_spfm, &result);
	cr_assert_eq(zone_count(result.added), 1, "the SPFM records made %zu SPF records",
		zone_count(result.added));
	cr_expect_str_eq(zone_get(result.added, 0)->data, "v=spf1 include:b.example.net include:a.example.net mx ~all");
	cr_expect_eq(zone_get(result.added, 0)->ttl, 300);
	cr_assert_eq(zone_count(result.deleted), 1);
	cr_expect_str_eq(zone_get(result.deleted, 0)->data, "v=spf1 mx ~all");
	cr_expect_eq(zone_count(result.final), 1);
	zone_result_clear(&result);

	/* SPFM at two names stays two records. */
	apply_ok("[]", "[{\"type\":\"SPFM\",\"host\":\"@\",\"spfRules\":\"a\"},"
		"{\"type\":\"SPFM\",\"host\":\"mail\",\"spfRules\":\"b\"}]", &result);
	cr_expect_eq(zone_count(result.added), 2);
	zone_result_clear(&result);
}
