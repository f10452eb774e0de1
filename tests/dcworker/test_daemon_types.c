/*
 * The job types beyond exchange and apply (discover, revert, refresh), the
 * token endpoint's invalid_grant on exchange and on refresh, and not_before.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 30000

static dd_env *env;

static void setup(void)
{
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
}

static void teardown(void)
{
	dd_env_free(env, true);
}

static json_t *run(const char *id, json_t *job, char **state)
{
	json_object_set_new(job, "id", json_string(id));
	char *text = json_dumps(job, JSON_COMPACT);
	json_decref(job);
	cr_assert(dd_enqueue(env, text));
	free(text);
	json_t *result = dd_wait_result(env, id, RESULT_TIMEOUT_MS, state);
	cr_assert_not_null(result, "%s has no result", id);
	return result;
}

Test(daemon_types, discover_reports_provider, .init = setup, .fini = teardown, .timeout = 60)
{
	char *state = NULL;
	json_t *result = run("discover-1",
	                     json_pack("{s:s, s:s, s:[s], s:s, s:s}", "type", "discover", "domain",
	                               DD_ZONE, "service_ids", "web", "redirect_uri", SBH_REDIRECT,
	                               "state", "st-1"),
	                     &state);
	cr_expect_str_eq(state, "succeeded");
	json_t *d = json_object_get(result, "discovery");
	cr_expect(json_is_true(json_object_get(d, "supported")));
	cr_expect_str_eq(json_string_value(json_object_get(d, "provider_id")), SBH_ALPHA_ID);
	cr_expect_str_eq(json_string_value(json_object_get(d, "dns_provider")), DD_PROVIDER);
	cr_expect(json_is_true(json_object_get(json_object_get(d, "templates"), "web")));
	const char *url = json_string_value(json_object_get(d, "consent_url"));
	cr_expect(url != NULL && strstr(url, "state=st-1") != NULL, "consent_url %s", url);
	json_decref(result);
	free(state);

	/* A zone without a _domainconnect record is reported as unsupported, not failed. */
	result = run("discover-2", json_pack("{s:s, s:s}", "type", "discover", "domain", "other.test"),
	             &state);
	cr_expect_str_eq(state, "succeeded");
	cr_expect(json_is_false(json_object_get(json_object_get(result, "discovery"), "supported")));
	json_decref(result);
	free(state);
}

Test(daemon_types, revert_and_refresh_succeed, .init = setup, .fini = teardown, .timeout = 60)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	char *job = dd_apply_text("apply-1", authorization, "192.0.2.30");
	cr_assert(dd_enqueue(env, job));
	free(job);
	json_decref(dd_wait_result(env, "apply-1", RESULT_TIMEOUT_MS, NULL));

	char *state = NULL;
	json_t *result = run("revert-1",
	                     json_pack("{s:s, s:s, s:s}", "type", "revert", "authorization_id",
	                               authorization, "service_id", "web"),
	                     &state);
	cr_expect_str_eq(state, "succeeded", "%s", json_dumps(result, 0));
	json_t *zone = sbh_zone(env->sandbox, SBH_ALPHA_ID, DD_ZONE);
	cr_expect_eq(json_array_size(zone), 0, "the template's records are still there");
	json_decref(zone);
	json_decref(result);
	free(state);

	long tokens = dd_sandbox_count(env, "token");
	result = run("refresh-1",
	             json_pack("{s:s, s:s}", "type", "refresh", "authorization_id", authorization),
	             &state);
	cr_expect_str_eq(state, "succeeded");
	cr_expect_eq(dd_sandbox_count(env, "token") - tokens, 1);
	char *version = dd_query(env, "SELECT version FROM dc_authorizations WHERE id = $1::uuid",
	                         authorization);
	cr_expect_str_eq(version, "2");
	free(version);
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon_types, invalid_grant_on_exchange, .init = setup, .fini = teardown, .timeout = 60)
{
	char *code = dd_consent_code(env, DD_ZONE);
	cr_assert_not_null(code);
	json_t *job = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "exchange_code", "dns_provider",
	                        DD_PROVIDER, "code", code, "redirect_uri", SBH_REDIRECT, "domain",
	                        DD_ZONE);
	char *state = NULL;
	json_t *first = run("exchange-a", json_deep_copy(job), &state);
	cr_expect_str_eq(state, "succeeded");
	free(state);
	json_decref(first);

	/* The code is spent, so the provider returns invalid_grant. */
	json_t *result = run("exchange-b", job, &state);
	cr_expect_str_eq(state, "failed");
	cr_expect_str_eq(json_string_value(json_object_get(result, "error_code")), "invalid_grant");
	char *text = json_dumps(result, JSON_COMPACT);
	cr_expect_null(strstr(text, code), "the code is in the result");
	free(text);
	cr_expect_eq(dd_log_count(env, code), 0, "the code reached the log");
	json_decref(result);
	free(state);
	free(code);
}

Test(daemon_types, invalid_grant_on_refresh, .init = setup, .fini = teardown, .timeout = 60)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	char *old_token = dd_query(env, "SELECT encode(refresh_token, 'hex') FROM dc_authorizations"
	                           " WHERE id = $1::uuid", authorization);
	cr_assert_not_null(old_token);

	char *state = NULL;
	json_t *result = run("refresh-1",
	                     json_pack("{s:s, s:s}", "type", "refresh", "authorization_id", authorization),
	                     &state);
	cr_expect_str_eq(state, "succeeded");
	json_decref(result);
	free(state);

	/* Put the spent refresh token back, as if the rotation had never been stored. */
	char sql[1024];
	snprintf(sql, sizeof(sql), "UPDATE dc_authorizations SET refresh_token = decode('%s', 'hex')"
	                           " WHERE id = $1::uuid RETURNING 'x'", old_token);
	char *done = dd_query(env, sql, authorization);
	cr_assert_not_null(done);
	free(done);
	free(old_token);

	result = run("refresh-2",
	             json_pack("{s:s, s:s}", "type", "refresh", "authorization_id", authorization),
	             &state);
	cr_expect_str_eq(state, "reauthorization_required");
	cr_expect_str_eq(json_string_value(json_object_get(result, "error_code")), "invalid_grant");
	char *status = dd_query(env, "SELECT status FROM dc_authorizations WHERE id = $1::uuid",
	                        authorization);
	cr_expect_str_eq(status, "reauthorization_required");
	free(status);
	json_decref(result);
	free(state);

	/* Later jobs of that authorization stop at once. */
	result = run("refresh-3",
	             json_pack("{s:s, s:s}", "type", "refresh", "authorization_id", authorization),
	             &state);
	cr_expect_str_eq(state, "reauthorization_required");
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon_types, not_before_delays_job, .init = setup, .fini = teardown, .timeout = 60)
{
	char due[64];
	time_t at = time(NULL) + 3;
	struct tm tm;

	gmtime_r(&at, &tm);
	strftime(due, sizeof(due), "%Y-%m-%dT%H:%M:%SZ", &tm);
	long long enqueued = dd_now_ms();
	char *state = NULL;
	json_t *result = run("discover-later",
	                     json_pack("{s:s, s:s, s:s}", "type", "discover", "domain", DD_ZONE,
	                               "not_before", due),
	                     &state);
	long long waited = dd_now_ms() - enqueued;

	cr_expect_str_eq(state, "succeeded");
	cr_expect_geq(waited, 1900, "the job ran after %lld ms, before not_before", waited);
	json_decref(result);
	free(state);
}
