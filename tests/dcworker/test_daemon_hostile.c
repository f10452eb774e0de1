/*
 * Hostile cases of token handling and pacing: the dcworker binary killed
 * with SIGKILL while it holds a refresh lease or a zone lock, token
 * endpoint errors, two authorizations on one zone, 429 storms, rate = 0
 * with one in-flight slot, and an access token expiring during a bulk run.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 60000

static dd_env *env;

static void teardown(void)
{
	dd_env_free(env, getenv("DD_PRINT_LOG") != NULL);
	env = NULL;
}

static void pause_ms(long long ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Starts PROCESSES workers after setting provider alpha's pacing variables. */
static char *start(const char *rate, const char *max_concurrency, const char *total_timeout_ms,
                   int processes)
{
	setenv("DCWORKER_PROVIDER_ALPHA_RATE", rate, 1);
	setenv("DCWORKER_PROVIDER_ALPHA_BURST", "20", 1);
	setenv("DCWORKER_PROVIDER_ALPHA_MAX_CONCURRENCY", max_concurrency, 1);
	setenv("DCWORKER_PROVIDER_ALPHA_TOTAL_TIMEOUT_MS", total_timeout_ms, 1);
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, processes), "dcworker exited at start-up");
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	return authorization;
}

static long long query_number(const char *sql, const char *param)
{
	char *text = dd_query(env, sql, param);
	long long value = text != NULL ? strtoll(text, NULL, 10) : -1;

	free(text);
	return value;
}

static long long auth_version(const char *authorization)
{
	return query_number("SELECT version FROM dc_authorizations WHERE id = $1::uuid",
	                    authorization);
}

static void expect_auth_status(const char *authorization, const char *expected)
{
	char *status = dd_query(env, "SELECT status FROM dc_authorizations WHERE id = $1::uuid",
	                        authorization);

	cr_expect_str_eq(status, expected, "authorization status");
	free(status);
}

static void expire_access_tokens(void)
{
	sbh_resp r;

	sbh_request(env->sandbox, "POST", "localhost",
	            "/admin/providers/" SBH_ALPHA_ID "/expire-tokens", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200);
	sbh_resp_clear(&r);
}

static void enqueue_text(char *text)
{
	cr_assert(dd_enqueue(env, text));
	free(text);
}

static char *refresh_text(const char *id, const char *authorization)
{
	json_t *job = json_pack("{s:s, s:s, s:s}", "id", id, "type", "refresh", "authorization_id",
	                        authorization);
	char *text = json_dumps(job, JSON_COMPACT);

	json_decref(job);
	return text;
}

/* Waits for job ID and expects final state EXPECTED and a finished_at. */
static void expect_job(const char *id, const char *expected)
{
	char *state = NULL;
	json_t *result = dd_wait_result(env, id, RESULT_TIMEOUT_MS, &state);

	cr_assert_not_null(result, "job %s did not finish", id);
	cr_expect_str_eq(state, expected, "job %s: %s", id,
	                 json_string_value(json_object_get(result, "message")));
	cr_expect_eq(query_number("SELECT count(*) FROM dc_jobs WHERE id = $1"
	                          " AND finished_at IS NOT NULL", id), 1, "job %s has no end", id);
	json_decref(result);
	free(state);
}

/* Waits up to TIMEOUT_MS until the sandbox counted more than COUNT calls to ENDPOINT. */
static bool wait_calls_above(const char *endpoint, long count, long timeout_ms)
{
	long long deadline = dd_now_ms() + timeout_ms;

	while (dd_now_ms() < deadline) {
		if (dd_sandbox_count(env, endpoint) > count)
			return true;
		pause_ms(20);
	}
	return false;
}

/* Waits up to TIMEOUT_MS until the daemon log contains TEXT. */
static bool wait_log(const char *text, long timeout_ms)
{
	long long deadline = dd_now_ms() + timeout_ms;

	while (dd_now_ms() < deadline) {
		if (dd_log_count(env, text) > 0)
			return true;
		pause_ms(20);
	}
	return false;
}

/* Kills the worker the log names last with SIGKILL. */
static void kill_worker(void)
{
	pid_t pid = dd_last_worker_pid(env);

	cr_assert_gt(pid, 0, "no worker pid in the log");
	cr_assert_eq(kill(pid, SIGKILL), 0);
}

static long max_in_flight(const char *zone)
{
	sbh_resp r;

	sbh_request(env->sandbox, "GET", "localhost", "/admin/overlap", NULL, NULL, NULL, &r);
	json_t *body = json_loads(r.body, 0, NULL);
	sbh_resp_clear(&r);
	json_t *entry = json_object_get(json_object_get(body, SBH_ALPHA_ID), zone);
	long value = entry != NULL ? (long)json_integer_value(json_object_get(entry, "max_in_flight"))
	                           : -1;

	json_decref(body);
	return value;
}

static long long refreshed_events(const char *pattern)
{
	return query_number("SELECT count(*) FROM dc_job_events WHERE event = 'refreshed'"
	                    " AND job_id LIKE $1", pattern);
}

Test(daemon_hostile, refresh_holder_killed_token_alive, .fini = teardown, .timeout = 90)
{
	char *authorization = start("0", "16", "2000", 1);
	long long version0 = auth_version(authorization);
	long calls0 = dd_sandbox_count(env, "token");

	/* The token call is in flight for 1.5 s and then fails without spending the token. */
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1500,\"errors\":\"500:1\","
	                                 "\"endpoints\":\"token\"}"));
	enqueue_text(refresh_text("refresh-killed", authorization));
	cr_assert(wait_log("\"job_id\":\"refresh-killed\",\"action\":\"refresh\"", 10000),
	          "the refresh never started");
	/* The sandbox counts a call only when its response goes out, after the latency. */
	pause_ms(500);
	cr_assert_eq(dd_sandbox_count(env, "token"), calls0, "the token call already returned");
	kill_worker();
	cr_assert(dd_sandbox_faults(env, "{}"));

	expect_job("refresh-killed", "succeeded");
	expect_auth_status(authorization, "active");
	cr_expect_eq(auth_version(authorization), version0 + 1, "one rotation");
	cr_expect_eq(refreshed_events("refresh-killed"), 1);
	cr_expect_null(dd_query(env, "SELECT lease_owner FROM dc_authorizations WHERE id = $1::uuid"
	                             " AND lease_owner IS NOT NULL", authorization),
	               "the refresh lease is still held");
	free(authorization);
}

Test(daemon_hostile, token_500_then_200, .fini = teardown, .timeout = 90)
{
	char *authorization = start("0", "16", "2000", 1);
	long long version0 = auth_version(authorization);
	long calls0 = dd_sandbox_count(env, "token");

	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"500:1\",\"endpoints\":\"token\"}"));
	expire_access_tokens();
	enqueue_text(dd_apply_text("apply-500", authorization, "192.0.2.30"));
	cr_assert(wait_calls_above("token", calls0, 10000), "no token call");
	cr_assert(dd_sandbox_faults(env, "{}"));

	expect_job("apply-500", "succeeded");
	expect_auth_status(authorization, "active");
	cr_expect_eq(auth_version(authorization), version0 + 1, "one rotation after the 500");

	/* The stored refresh token is the one the sandbox issued last. */
	enqueue_text(refresh_text("refresh-after", authorization));
	expect_job("refresh-after", "succeeded");
	expect_auth_status(authorization, "active");
	free(authorization);
}

Test(daemon_hostile, two_authorizations_one_zone, .fini = teardown, .timeout = 90)
{
	char *first = start("0", "16", "15000", 2);
	char *second = dd_authorize(env, "exchange-2", DD_ZONE);
	cr_assert_not_null(second);
	cr_expect_str_neq(first, second);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":100,\"endpoints\":\"apply\"}"));

	for (int i = 0; i < 12; i++) {
		char id[32];

		snprintf(id, sizeof(id), "two-%d", i);
		enqueue_text(dd_apply_text(id, i % 2 == 0 ? first : second, "192.0.2.31"));
	}
	for (int i = 0; i < 12; i++) {
		char id[32];

		snprintf(id, sizeof(id), "two-%d", i);
		expect_job(id, "succeeded");
	}
	cr_expect_eq(max_in_flight(DD_ZONE), 1, "two authorizations overlapped on one zone");
	free(first);
	free(second);
}

Test(daemon_hostile, zone_holder_killed_frees, .fini = teardown, .timeout = 90)
{
	/* Zone lock lease: total_timeout_ms 2000 + 5 s. */
	char *authorization = start("0", "16", "2000", 1);
	long applies0 = dd_sandbox_count(env, "apply");

	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1800,\"endpoints\":\"apply\"}"));
	enqueue_text(dd_apply_text("held", authorization, "192.0.2.32"));
	cr_assert(wait_log("\"job_id\":\"held\",\"action\":\"call_provider\"", 10000),
	          "the apply never started");
	pause_ms(300);
	cr_assert_eq(dd_sandbox_count(env, "apply"), applies0, "the apply call already returned");
	kill_worker();
	long long killed_at = dd_now_ms();
	cr_assert(dd_sandbox_faults(env, "{}"));

	enqueue_text(dd_apply_text("after", authorization, "192.0.2.33"));
	expect_job("after", "succeeded");
	long long freed_ms = dd_now_ms() - killed_at;
	fprintf(stderr, "zone_holder_killed_frees: next apply done %lld ms after the kill\n",
	        freed_ms);
	cr_expect_gt(freed_ms, 1500, "the next apply overtook the killed call");
	cr_expect_lt(freed_ms, 20000, "the zone stayed locked far beyond its lease");
	expect_job("held", "succeeded");
	cr_expect_eq(max_in_flight(DD_ZONE), 1, "the next call overlapped the killed one");
	free(authorization);
}

Test(daemon_hostile, rate_zero_one_slot_three_workers, .fini = teardown, .timeout = 90)
{
	char *authorization = start("0", "1", "15000", 3);

	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":50,\"endpoints\":\"apply\"}"));
	for (int i = 0; i < 20; i++) {
		char id[32];

		snprintf(id, sizeof(id), "slot-%d", i);
		enqueue_text(dd_apply_text(id, authorization, "192.0.2.34"));
	}
	for (int i = 0; i < 20; i++) {
		char id[32];

		snprintf(id, sizeof(id), "slot-%d", i);
		expect_job(id, "succeeded");
	}
	cr_expect_eq(max_in_flight(DD_ZONE), 1);
	cr_expect_eq(query_number("SELECT max(attempts) FROM dc_jobs WHERE id LIKE $1", "slot-%"), 1,
	             "waiting for the slot used an attempt");
	free(authorization);
}

Test(daemon_hostile, storm_429_then_recovery, .fini = teardown, .timeout = 90)
{
	char *authorization = start("20", "16", "15000", 2);
	long applies0 = dd_sandbox_count(env, "apply");

	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"429:1\",\"retry_after\":1,"
	                                 "\"endpoints\":\"apply\"}"));
	for (int i = 0; i < 10; i++) {
		char id[32];

		snprintf(id, sizeof(id), "storm-%d", i);
		enqueue_text(dd_apply_text(id, authorization, "192.0.2.35"));
	}
	cr_assert(wait_calls_above("apply", applies0 + 5, 10000), "too few calls during the storm");
	redisReply *reply = redisCommand(env->redis_conn, "GET {dc}:pace:%s:penalty", DD_PROVIDER);
	cr_expect(reply != NULL && reply->type == REDIS_REPLY_STRING &&
	                  strtol(reply->str, NULL, 10) >= 1,
	          "no penalty recorded");
	if (reply != NULL)
		freeReplyObject(reply);
	cr_assert(dd_sandbox_faults(env, "{}"));

	for (int i = 0; i < 10; i++) {
		char id[32];

		snprintf(id, sizeof(id), "storm-%d", i);
		expect_job(id, "succeeded");
	}
	cr_expect_eq(query_number("SELECT max(attempts) FROM dc_jobs WHERE id LIKE $1", "storm-%"), 1,
	             "a 429 used an attempt");
	free(authorization);
}

Test(daemon_hostile, expiry_during_bulk_of_50, .fini = teardown, .timeout = 90)
{
	char *authorization = start("0", "16", "15000", 2);
	long long version0 = auth_version(authorization);
	long calls0 = dd_sandbox_count(env, "token");

	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":300,\"endpoints\":\"token\"}"));
	for (int i = 0; i < 50; i++) {
		char id[32];

		snprintf(id, sizeof(id), "bulk-%d", i);
		enqueue_text(dd_apply_text(id, authorization, "192.0.2.36"));
	}
	long long deadline = dd_now_ms() + 20000;
	while (query_number("SELECT count(*) FROM dc_jobs WHERE id LIKE $1 AND state = 'succeeded'",
	                    "bulk-%") < 10 && dd_now_ms() < deadline)
		pause_ms(20);
	expire_access_tokens();

	for (int i = 0; i < 50; i++) {
		char id[32];

		snprintf(id, sizeof(id), "bulk-%d", i);
		expect_job(id, "succeeded");
	}
	long long rotations = auth_version(authorization) - version0;
	long calls = dd_sandbox_count(env, "token") - calls0;
	fprintf(stderr, "expiry_during_bulk_of_50: %ld token calls, %lld rotations\n", calls,
	        rotations);
	cr_expect_eq(rotations, 1, "one rotation for one expiry");
	cr_expect_eq(calls, rotations, "token calls must equal rotations");
	cr_expect_eq(refreshed_events("bulk-%"), rotations);
	expect_auth_status(authorization, "active");
	free(authorization);
}

Test(daemon_hostile, refresh_holder_killed_before_store, .fini = teardown, .timeout = 90)
{
	char *authorization = start("0", "16", "2000", 1);
	long long version0 = auth_version(authorization);
	long calls0 = dd_sandbox_count(env, "token");

	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1000,\"endpoints\":\"token\"}"));
	enqueue_text(refresh_text("refresh-lost", authorization));
	cr_assert(wait_log("\"job_id\":\"refresh-lost\",\"action\":\"refresh\"", 10000),
	          "the refresh never started");
	pause_ms(300);

	/* A row lock of the test holds the store back after the token call returned. */
	PGresult *res = PQexec(env->db, "BEGIN");
	PQclear(res);
	const char *params[] = {authorization};
	res = PQexecParams(env->db, "SELECT id FROM dc_authorizations WHERE id = $1::uuid FOR UPDATE",
	                   1, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(env->db));
	PQclear(res);
	cr_assert(wait_log("\"job_id\":\"refresh-lost\",\"action\":\"store_tokens\"", 10000),
	          "the store never started");
	pause_ms(300);
	cr_assert_eq(dd_sandbox_count(env, "token"), calls0 + 1, "the token call did not return");
	kill_worker();
	res = PQexec(env->db, "COMMIT");
	PQclear(res);
	cr_assert(dd_sandbox_faults(env, "{}"));

	/*
	 * PostgreSQL finishes the store the killed worker had sent once the
	 * lock goes, so the rotated tokens survive and the re-run job uses them.
	 */
	expect_job("refresh-lost", "succeeded");
	expect_auth_status(authorization, "active");
	long long rotations = auth_version(authorization) - version0;
	long calls = dd_sandbox_count(env, "token") - calls0;
	fprintf(stderr, "refresh_holder_killed_before_store: %ld token calls, %lld rotations\n",
	        calls, rotations);
	cr_expect_geq(rotations, 1);
	cr_expect_eq(calls, rotations, "a token call without a stored rotation");
	enqueue_text(refresh_text("refresh-next", authorization));
	expect_job("refresh-next", "succeeded");
	free(authorization);
}

/* Enqueues COUNT apply jobs PREFIX-<n> of AUTHORIZATION. */
static void enqueue_applies(const char *prefix, const char *authorization, int count)
{
	for (int i = 0; i < count; i++) {
		char id[32];

		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		enqueue_text(dd_apply_text(id, authorization, "192.0.2.37"));
	}
}

static void expect_applies(const char *prefix, int count, const char *expected)
{
	for (int i = 0; i < count; i++) {
		char id[32];

		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		expect_job(id, expected);
	}
}

Test(daemon_hostile, storm_429_with_rate_zero, .fini = teardown, .timeout = 90)
{
	/* rate = 0 turns the rate token off: a 429 must not halve it to a stall. */
	char *authorization = start("0", "16", "15000", 2);
	long applies0 = dd_sandbox_count(env, "apply");

	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"429:1\",\"retry_after\":1,"
	                                 "\"endpoints\":\"apply\"}"));
	enqueue_applies("zero", authorization, 8);
	cr_assert(wait_calls_above("apply", applies0 + 3, 10000), "too few calls during the storm");
	cr_assert(dd_sandbox_faults(env, "{}"));
	expect_applies("zero", 8, "succeeded");
	cr_expect_eq(query_number("SELECT max(attempts) FROM dc_jobs WHERE id LIKE $1", "zero-%"), 1,
	             "a 429 used an attempt");
	free(authorization);
}

Test(daemon_hostile, token_429_keeps_refresh_token, .fini = teardown, .timeout = 90)
{
	char *authorization = start("20", "16", "2000", 1);
	long long version0 = auth_version(authorization);
	long calls0 = dd_sandbox_count(env, "token");

	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"429:1\",\"retry_after\":1,"
	                                 "\"endpoints\":\"token\"}"));
	expire_access_tokens();
	enqueue_applies("tok429", authorization, 3);
	cr_assert(wait_calls_above("token", calls0 + 1, 10000), "too few token calls");
	cr_assert(dd_sandbox_faults(env, "{}"));
	expect_applies("tok429", 3, "succeeded");
	expect_auth_status(authorization, "active");
	cr_expect_eq(auth_version(authorization), version0 + 1, "one rotation after the 429s");
	cr_expect_eq(query_number("SELECT max(attempts) FROM dc_jobs WHERE id LIKE $1", "tok429-%"),
	             1, "a 429 of the token endpoint used an attempt");
	free(authorization);
}

Test(daemon_hostile, keys_rotated_between_runs, .fini = teardown, .timeout = 90)
{
	char *authorization = start("0", "16", "15000", 2);
	long long version0 = auth_version(authorization);
	long calls0 = dd_sandbox_count(env, "token");

	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":50,\"endpoints\":\"apply\"}"));
	enqueue_applies("keys", authorization, 30);
	cr_assert(wait_calls_above("apply", 5, 10000));
	cr_assert_geq(dd_daemon_stop(env, SIGTERM, 15000), 0);

	/* A new first key while jobs are still queued, and the access token expires. */
	char keys[256];
	snprintf(keys, sizeof(keys), "test2:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=,%s",
	         getenv("DCWORKER_TOKEN_KEYS"));
	setenv("DCWORKER_TOKEN_KEYS", keys, 1);
	expire_access_tokens();
	cr_assert(dd_daemon_start(env, 2));
	expect_applies("keys", 30, "succeeded");

	char *key_id = dd_query(env, "SELECT token_key_id FROM dc_authorizations WHERE id = $1::uuid",
	                        authorization);
	cr_expect_str_eq(key_id, "test2", "the refresh must re-encrypt under the new key");
	free(key_id);
	cr_expect_eq(auth_version(authorization) - version0, 1, "one rotation for one expiry");
	cr_expect_eq(dd_sandbox_count(env, "token") - calls0, 1);
	free(authorization);
}

Test(daemon_hostile, slot_holder_killed_frees, .fini = teardown, .timeout = 90)
{
	/* One in-flight slot, leased for total_timeout_ms 2000 + 5 s. */
	char *authorization = start("0", "1", "2000", 1);
	long applies0 = dd_sandbox_count(env, "apply");

	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1800,\"endpoints\":\"apply\"}"));
	enqueue_text(dd_apply_text("slot-held", authorization, "192.0.2.38"));
	cr_assert(wait_log("\"job_id\":\"slot-held\",\"action\":\"call_provider\"", 10000),
	          "the apply never started");
	pause_ms(300);
	cr_assert_eq(dd_sandbox_count(env, "apply"), applies0, "the apply call already returned");
	kill_worker();
	long long killed_at = dd_now_ms();
	cr_assert(dd_sandbox_faults(env, "{}"));

	/* A refresh takes the provider's slot but not the zone lock. */
	enqueue_text(refresh_text("slot-refresh", authorization));
	expect_job("slot-refresh", "succeeded");
	long long freed_ms = dd_now_ms() - killed_at;
	fprintf(stderr, "slot_holder_killed_frees: refresh done %lld ms after the kill\n", freed_ms);
	cr_expect_lt(freed_ms, 20000, "the slot stayed taken far beyond its lease");
	expect_job("slot-held", "succeeded");
	expect_auth_status(authorization, "active");
	free(authorization);
}

Test(daemon_hostile, apply_401_storm_no_burn, .fini = teardown, .timeout = 90)
{
	char *authorization = start("0", "16", "2000", 2);
	long long version0 = auth_version(authorization);
	long calls0 = dd_sandbox_count(env, "token");
	long applies0 = dd_sandbox_count(env, "apply");

	/*
	 * Every apply returns 401, so every job refreshes once and retries once.
	 * The jobs share one rotation, and a second 401 ends each of them as
	 * reauthorization_required.
	 */
	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"401:1\",\"endpoints\":\"apply\"}"));
	enqueue_applies("unauth", authorization, 6);
	cr_assert(wait_calls_above("apply", applies0 + 6, 10000), "too few calls during the storm");
	expect_applies("unauth", 6, "reauthorization_required");
	cr_assert(dd_sandbox_faults(env, "{}"));

	long long rotations = auth_version(authorization) - version0;
	long calls = dd_sandbox_count(env, "token") - calls0;
	fprintf(stderr, "apply_401_storm_no_burn: %ld token calls, %lld rotations\n", calls,
	        rotations);
	cr_expect_eq(rotations, 1, "one rotation shared by six jobs");
	cr_expect_eq(calls, rotations, "a token call without a stored rotation");
	cr_expect_eq(query_number("SELECT max(attempts) FROM dc_jobs WHERE id LIKE $1", "unauth-%"),
	             1);
	expect_auth_status(authorization, "reauthorization_required");
	free(authorization);
}
