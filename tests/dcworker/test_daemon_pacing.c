/*
 * Serialization and pacing end to end: two dcworker processes against the
 * dcsandbox, whose counters show the calls per zone in flight at once and
 * the calls per second that reached the provider.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 30000

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

/* Starts two workers with provider alpha limited to RATE requests/s and BURST. */
static char *start_paced(const char *rate, const char *burst)
{
	setenv("DCWORKER_PROVIDER_ALPHA_RATE", rate, 1);
	setenv("DCWORKER_PROVIDER_ALPHA_BURST", burst, 1);
	setenv("DCWORKER_PROVIDER_ALPHA_MAX_CONCURRENCY", "16", 1);
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 2), "dcworker exited at start-up");
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	return authorization;
}

static void enqueue_applies(const char *prefix, const char *authorization, int count)
{
	char id[64];

	for (int i = 0; i < count; i++) {
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		char *text = dd_apply_text(id, authorization, "192.0.2.20");

		cr_assert(dd_enqueue(env, text));
		free(text);
	}
}

/* The sandbox's overlap record of DD_ZONE at provider alpha. */
static long max_in_flight(void)
{
	sbh_resp r;

	sbh_request(env->sandbox, "GET", "localhost", "/admin/overlap", NULL, NULL, NULL, &r);
	json_t *body = json_loads(r.body, 0, NULL);
	sbh_resp_clear(&r);
	json_t *zone = json_object_get(json_object_get(body, SBH_ALPHA_ID), DD_ZONE);
	long value = zone != NULL ? (long)json_integer_value(json_object_get(zone, "max_in_flight"))
	                          : -1;

	json_decref(body);
	return value;
}

Test(daemon_pacing, one_call_per_zone_at_a_time, .fini = teardown, .timeout = 90)
{
	char *authorization = start_paced("1000", "100");
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":100,\"endpoints\":\"apply\"}"));
	long long t0 = dd_now_ms();

	enqueue_applies("zone", authorization, 30);
	for (int i = 0; i < 30; i++) {
		char id[64];
		char *state = NULL;

		snprintf(id, sizeof(id), "zone-%d", i);
		json_decref(dd_wait_result(env, id, RESULT_TIMEOUT_MS, &state));
		cr_assert_not_null(state, "job %s did not finish", id);
		cr_expect_str_eq(state, "succeeded", "job %s", id);
		free(state);
	}
	long overlap = max_in_flight();
	fprintf(stderr, "one_call_per_zone_at_a_time: 30 jobs in %lld ms, %ld apply calls,"
	                " max_in_flight %ld\n",
	        dd_now_ms() - t0, dd_sandbox_count(env, "apply"), overlap);
	cr_expect_eq(overlap, 1, "two calls for one zone were in flight at the provider");
	cr_expect_eq(dd_sandbox_count(env, "apply"), 30);
	free(authorization);
}

Test(daemon_pacing, rate_limit_and_penalty, .fini = teardown, .timeout = 90)
{
	const double rate = 10;
	const long burst = 5;
	const int window_s = 10;
	char *authorization = start_paced("10", "5");
	long before = dd_sandbox_count(env, "apply");

	enqueue_applies("rate", authorization, 200);
	long long t0 = dd_now_ms();
	long last = before;
	for (int s = 1; s <= window_s; s++) {
		pause_ms(t0 + s * 1000LL - dd_now_ms());
		long now = dd_sandbox_count(env, "apply");

		fprintf(stderr, "rate_limit_and_penalty: second %d: %ld calls\n", s, now - last);
		last = now;
	}
	long calls = last - before;
	double bound = rate * window_s * 1.1 + (double)burst;
	fprintf(stderr, "rate_limit_and_penalty: %ld calls in %d s (%.1f/s), bound %.0f\n", calls,
	        window_s, (double)calls / window_s, bound);
	cr_expect_leq((double)calls, bound, "more calls than the rate allows");
	cr_expect_geq(calls, (long)(rate * window_s / 2), "the pace is far below the rate");

	/* Half the calls return 429, so every worker slows down. */
	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"429:0.5\",\"retry_after\":1,"
	                                 "\"endpoints\":\"apply\"}"));
	pause_ms(1500);
	long c1 = dd_sandbox_count(env, "apply");
	pause_ms(5000);
	long c2 = dd_sandbox_count(env, "apply");
	double slowed = (double)(c2 - c1) / 5.0;
	fprintf(stderr, "rate_limit_and_penalty: %.1f calls/s after the 429s\n", slowed);
	cr_expect_lt(slowed, rate / 2, "the 429s did not slow the pace");
	redisReply *reply = redisCommand(env->redis_conn, "GET {dc}:pace:%s:penalty", DD_PROVIDER);
	cr_expect(reply != NULL && reply->type == REDIS_REPLY_STRING && strtol(reply->str, NULL, 10) >= 1,
	          "no penalty recorded");
	if (reply != NULL)
		freeReplyObject(reply);
	cr_assert(dd_sandbox_faults(env, "{}"));
	free(authorization);
}
