/*
 * Scheduling end to end: deferred jobs keep a queued row in PostgreSQL,
 * job rows name their authorization and domain, and jobs waiting at a busy
 * zone give their in-flight place back to other zones.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 30000
/* Days ahead of the deferred job: months, and within the 365 days a job may name. */
#define FAR_DAYS 90
#define UNUSED_AUTHORIZATION "00000000-0000-4000-8000-000000000001"

static dd_env *env;

static void teardown(void)
{
	dd_env_free(env, getenv("DD_PRINT_LOG") != NULL);
	env = NULL;
}

static void pause_ms(long long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Polls SQL (one text parameter ID) until it returns EXPECTED; returns the last value. */
static char *wait_value(const char *sql, const char *id, const char *expected, long timeout_ms)
{
	long long end = dd_now_ms() + timeout_ms;
	char *value = NULL;

	for (;;) {
		free(value);
		value = dd_query(env, sql, id);
		if ((value != NULL && strcmp(value, expected) == 0) || dd_now_ms() > end)
			return value;
		pause_ms(50);
	}
}

/* Runs dcctl with ARGS against the test config; returns its exit status and output. */
static int run_dcctl(const char *args, char *out, size_t size)
{
	const char *build = getenv("DC_BINARY_DIR");
	char command[2048];
	FILE *p;
	size_t n;

	snprintf(command, sizeof(command), "%s/src/dcctl/dcctl --config %s %s 2>&1",
	         build != NULL ? build : ".", env->config_path, args);
	p = popen(command, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *apply_with(const char *id, const char *authorization, const char *key,
                        json_t *value)
{
	char *text = dd_apply_text(id, authorization, "192.0.2.30");
	json_t *root = json_loads(text, 0, NULL);

	free(text);
	cr_assert_not_null(root);
	json_object_set_new(root, key, value);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

Test(daemon_sched, not_before_keeps_queued_row, .fini = teardown, .timeout = 60)
{
	char out[8192];
	char not_before[32];
	char day[16];
	time_t later = time(NULL) + (time_t)FAR_DAYS * 86400;
	struct tm tm;

	gmtime_r(&later, &tm);
	strftime(not_before, sizeof(not_before), "%Y-%m-%dT%H:%M:%SZ", &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);

	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
	char *text = apply_with("later-1", UNUSED_AUTHORIZATION, "not_before",
	                        json_string(not_before));
	cr_assert(dd_enqueue(env, text));
	free(text);

	char *state = wait_value("SELECT state FROM dc_jobs WHERE id = $1", "later-1", "queued",
	                         10000);
	cr_assert_not_null(state, "the deferred job has no dc_jobs row");
	cr_expect_str_eq(state, "queued");
	free(state);
	char *due = dd_query(env, "SELECT not_before = $1::timestamptz FROM dc_jobs "
	                          "WHERE id = 'later-1'", not_before);
	cr_expect_str_eq(due, "t", "the row does not hold the due time");
	free(due);
	char *events = wait_value("SELECT count(*) FROM dc_job_events "
	                          "WHERE job_id = $1 AND event = 'scheduled'",
	                          "later-1", "1", 5000);
	cr_expect_str_eq(events, "1", "no scheduled event");
	free(events);
	char *payload = dd_query(env, "SELECT payload->>'service_id' FROM dc_jobs WHERE id = $1",
	                         "later-1");
	cr_expect_str_eq(payload, "web", "the row has no payload");
	free(payload);
	char *attempts = dd_query(env, "SELECT attempts FROM dc_jobs WHERE id = $1", "later-1");
	cr_expect_str_eq(attempts, "0");
	free(attempts);

	int code = run_dcctl("job later-1", out, sizeof(out));
	cr_expect_eq(code, 0, "dcctl job exited %d: %s", code, out);
	cr_expect_not_null(strstr(out, "queued"), "dcctl job output: %s", out);
	cr_expect_not_null(strstr(out, day), "dcctl job shows no due time: %s", out);
}

Test(daemon_sched, retry_row_holds_due_time, .fini = teardown, .timeout = 60)
{
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
	char *authorization = dd_authorize(env, "exchange-retry", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"503:1\",\"endpoints\":\"apply\"}"));
	char *text = apply_with("retry-1", authorization, "max_attempts", json_integer(3));
	cr_assert(dd_enqueue(env, text));
	free(text);

	char *events = wait_value("SELECT count(*) FROM dc_job_events "
	                          "WHERE job_id = $1 AND event = 'scheduled'",
	                          "retry-1", "1", 10000);
	cr_expect_str_eq(events, "1", "the retry wrote no scheduled event");
	free(events);
	char *due = dd_query(env, "SELECT not_before IS NOT NULL FROM dc_jobs WHERE id = $1",
	                     "retry-1");
	cr_expect_str_eq(due, "t", "the retried row has no due time");
	free(due);
	cr_assert(dd_sandbox_faults(env, "{}"));
	char *state = NULL;
	json_decref(dd_wait_result(env, "retry-1", RESULT_TIMEOUT_MS, &state));
	cr_assert_not_null(state, "the retried job did not finish");
	cr_expect_str_eq(state, "succeeded");
	free(state);
	free(authorization);
}

Test(daemon_sched, apply_row_names_domain, .fini = teardown, .timeout = 60)
{
	char out[8192];

	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
	char *authorization = dd_authorize(env, "exchange-domain", DD_ZONE);
	cr_assert_not_null(authorization);
	char *text = dd_apply_text("domain-1", authorization, "192.0.2.31");
	cr_assert(dd_enqueue(env, text));
	free(text);
	char *state = NULL;
	json_decref(dd_wait_result(env, "domain-1", RESULT_TIMEOUT_MS, &state));
	cr_assert_not_null(state, "the apply job did not finish");
	free(state);

	char *id = dd_query(env, "SELECT authorization_id::text FROM dc_jobs WHERE id = $1",
	                    "domain-1");
	cr_expect_str_eq(id, authorization);
	free(id);
	char *domain = dd_query(env, "SELECT domain FROM dc_jobs WHERE id = $1", "domain-1");
	cr_expect_str_eq(domain, DD_ZONE);
	free(domain);

	int code = run_dcctl("jobs --type apply --domain " DD_ZONE, out, sizeof(out));
	cr_expect_eq(code, 0, "dcctl jobs exited %d: %s", code, out);
	cr_expect_not_null(strstr(out, "domain-1"), "dcctl jobs --domain misses the apply job: %s",
	                   out);
	free(authorization);
}

/* Number of jobs PREFIX-0 .. PREFIX-(COUNT-1) in a terminal state. */
static int count_finished(const char *prefix)
{
	char *value = dd_query(env, "SELECT count(*) FROM dc_jobs WHERE id LIKE $1 || '-%' "
	                            "AND state NOT IN ('queued', 'running')", prefix);
	int count = value != NULL ? (int)strtol(value, NULL, 10) : -1;

	free(value);
	return count;
}

static void enqueue_applies(const char *prefix, const char *authorization, int count)
{
	for (int i = 0; i < count; i++) {
		char id[64];

		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		char *text = dd_apply_text(id, authorization, "192.0.2.32");
		cr_assert(dd_enqueue(env, text));
		free(text);
	}
}

Test(daemon_sched, busy_zone_gives_places_back, .fini = teardown, .timeout = 120)
{
	const int hot_count = 20;
	const int cold_count = 2;

	setenv("DCWORKER_WORKER_IN_FLIGHT", "4", 1);
	setenv("DCWORKER_PROVIDER_ALPHA_MAX_CONCURRENCY", "16", 1);
	env = dd_env_new(NULL, NULL, 0);
	unsetenv("DCWORKER_WORKER_IN_FLIGHT");
	unsetenv("DCWORKER_PROVIDER_ALPHA_MAX_CONCURRENCY");
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
	char *hot = dd_authorize(env, "exchange-hot", DD_ZONE);
	char *cold = dd_authorize(env, "exchange-cold", DD_BUSY_ZONE);
	cr_assert_not_null(hot);
	cr_assert_not_null(cold);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1000,\"endpoints\":\"apply\"}"));

	long long t0 = dd_now_ms();
	enqueue_applies("hot", hot, hot_count);
	enqueue_applies("cold", cold, cold_count);
	long long end = t0 + 60000;
	while (count_finished("cold") < cold_count && dd_now_ms() < end)
		pause_ms(100);
	int hot_done = count_finished("hot");
	fprintf(stderr, "busy_zone_gives_places_back: other zone done after %lld ms, "
	                "%d of %d busy-zone jobs done\n",
	        dd_now_ms() - t0, hot_done, hot_count);
	cr_assert_eq(count_finished("cold"), cold_count, "the other zone's jobs did not finish");
	/* Waiting in place, the other zone starts only after 17 busy-zone jobs are done. */
	cr_expect_leq(hot_done, 12, "the busy zone's waiting jobs held every place");

	for (int i = 0; i < hot_count; i++) {
		char id[64];
		char *state = NULL;

		snprintf(id, sizeof(id), "hot-%d", i);
		json_decref(dd_wait_result(env, id, 60000, &state));
		cr_assert_not_null(state, "job %s did not finish", id);
		cr_expect_str_eq(state, "succeeded", "job %s", id);
		free(state);
		char *attempts = dd_query(env, "SELECT attempts FROM dc_jobs WHERE id = $1", id);
		cr_expect_str_eq(attempts, "1", "job %s used attempts while waiting", id);
		free(attempts);
		char *results = dd_query(env, "SELECT count(*) FROM dc_job_events WHERE job_id = $1 "
		                              "AND event IN ('succeeded', 'conflict', 'failed')", id);
		cr_expect_str_eq(results, "1", "job %s has not exactly one result", id);
		free(results);
	}
	char *parked = dd_query(env, "SELECT count(*) > 0 FROM dc_job_events "
	                             "WHERE event = 'scheduled' AND detail->>'reason' = $1",
	                        "zone_lock_busy");
	cr_expect_str_eq(parked, "t", "no job gave its wait back");
	free(parked);
	cr_expect_eq(dd_sandbox_count(env, "apply"), hot_count + cold_count);
	free(hot);
	free(cold);
}
