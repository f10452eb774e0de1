/*
 * dcctl migrate against a real PostgreSQL: apply, re-run, --status, and
 * the exit codes of an unreachable server and a bad config.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl_harness.h"

Test(dcctl_migrate, applies_then_noop)
{
	harness *h = harness_start(true, NULL);
	cr_assert_not_null(h, "servers did not start");

	const char *argv[] = {"--json", "migrate", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_not_null(doc, "stdout is not JSON: %s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(doc, "from_version")), 0);
	cr_assert_geq(json_integer_value(json_object_get(doc, "applied")), 1);
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_sql_long(h, "SELECT count(*) FROM dc_jobs"), 0);

	r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0);
	doc = run_json(&r);
	cr_assert_eq(json_integer_value(json_object_get(doc, "applied")), 0);
	json_decref(doc);
	run_output_free(&r);
	harness_stop(h);
}

Test(dcctl_migrate, status_lists_pending_and_applied)
{
	harness *h = harness_start(true, NULL);
	cr_assert_not_null(h);

	const char *status[] = {"migrate", "--status", "--json", NULL};
	run_output r = harness_run(h, status);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_not_null(doc);
	json_t *first = json_array_get(json_object_get(doc, "migrations"), 0);
	cr_assert_eq(json_integer_value(json_object_get(first, "version")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(first, "state")), "pending");
	cr_assert_geq(json_integer_value(json_object_get(doc, "pending")), 1);
	json_decref(doc);
	run_output_free(&r);

	cr_assert(harness_migrate(h));
	r = harness_run(h, status);
	doc = run_json(&r);
	first = json_array_get(json_object_get(doc, "migrations"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(first, "state")), "applied");
	cr_assert_eq(json_integer_value(json_object_get(doc, "pending")), 0);
	json_decref(doc);
	run_output_free(&r);

	const char *human[] = {"migrate", "--status", NULL};
	r = harness_run(h, human);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_not_null(strstr(r.out, "0001_init"), "output: %s", r.out);
	cr_assert_not_null(strstr(r.out, "applied"));
	run_output_free(&r);
	harness_stop(h);
}

Test(dcctl_migrate, unreachable_exits_four)
{
	char extra[128];
	snprintf(extra, sizeof(extra), "[postgres]\nconninfo = host=127.0.0.1 port=%d dbname=x\n",
	         ts_free_port());
	harness *h = harness_start(false, extra);
	cr_assert_not_null(h);

	const char *argv[] = {"migrate", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 4, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "PostgreSQL"));
	run_output_free(&r);
	harness_stop(h);
}

Test(dcctl_migrate, bad_config_exits_two)
{
	harness *h = harness_start(false, "[worker]\nin_flight = many\n");
	cr_assert_not_null(h);

	const char *argv[] = {"migrate", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 2, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "in_flight"));
	run_output_free(&r);

	const char *unknown[] = {"migrate", "--bogus", NULL};
	r = harness_run(h, unknown);
	cr_assert_eq(r.exit_code, 1);
	run_output_free(&r);

	const char *missing[] = {"migrate", NULL};
	harness *no_pg = harness_start(false, NULL);
	r = harness_run(no_pg, missing);
	cr_assert_eq(r.exit_code, 2, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "conninfo"));
	run_output_free(&r);
	harness_stop(no_pg);
	harness_stop(h);
}
