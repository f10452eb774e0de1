/*
 * The PostgreSQL reconciler end to end: a deferred job whose
 * {dc}:scheduled member Redis lost still runs, once, with two worker
 * processes that both run the reconciler timer.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 30000
/* Seconds ahead of the deferred job: time to delete its scheduled member first. */
#define DUE_AHEAD_S 4
/* The reconciler runs every second and takes jobs past due by two seconds. */
#define RECONCILE_INI "reconcile_interval_s = 1\nreconcile_grace_s = 2\n"

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

static long long redis_integer(const char *command)
{
	redisReply *reply = redisCommand(env->redis_conn, command);
	long long value = -1;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		value = reply->integer;
	freeReplyObject(reply);
	return value;
}

static long events(const char *id, const char *event)
{
	char sql[160];
	char *text;
	long n;

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM dc_job_events WHERE job_id = $1 AND event = '%s'", event);
	text = dd_query(env, sql, id);
	n = text != NULL ? strtol(text, NULL, 10) : -1;
	free(text);
	return n;
}

static char *apply_due(const char *id, const char *authorization, time_t due)
{
	char not_before[32];
	struct tm tm;
	char *text = dd_apply_text(id, authorization, "192.0.2.40");
	json_t *root = json_loads(text, 0, NULL);

	free(text);
	cr_assert_not_null(root);
	gmtime_r(&due, &tm);
	strftime(not_before, sizeof(not_before), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(root, "not_before", json_string(not_before));
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

Test(daemon_reconcile, lost_scheduled_job_runs_once, .fini = teardown, .timeout = 90)
{
	env = dd_env_new(RECONCILE_INI, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 2), "dcworker exited at start-up");
	char *authorization = dd_authorize(env, "exchange-reconcile", DD_ZONE);
	cr_assert_not_null(authorization);

	char *text = apply_due("lost-1", authorization, time(NULL) + DUE_AHEAD_S);
	cr_assert(dd_enqueue(env, text));
	free(text);

	long long end = dd_now_ms() + 3000;
	while (redis_integer("ZCARD {dc}:scheduled") != 1 && dd_now_ms() < end)
		pause_ms(20);
	cr_assert_eq(redis_integer("ZCARD {dc}:scheduled"), 1, "the job was never scheduled");
	cr_assert_eq(events("lost-1", "scheduled"), 1, "the deferred job has no scheduled event");
	/* The loss: as if a Redis failover dropped the member. */
	cr_assert_eq(redis_integer("DEL {dc}:scheduled"), 1);

	char *state = NULL;
	json_decref(dd_wait_result(env, "lost-1", RESULT_TIMEOUT_MS, &state));
	cr_assert_not_null(state, "the lost job did not finish after the reconciler ran");
	cr_expect_str_eq(state, "succeeded");
	free(state);

	/* Runs of both processes after the job finished add nothing. */
	pause_ms(2500);
	cr_expect_eq(events("lost-1", "reconciled"), 1, "the job was not enqueued exactly once");
	cr_expect_eq(events("lost-1", "succeeded"), 1);
	cr_expect_eq(dd_sandbox_count(env, "apply"), 1, "the change was applied more than once");
	cr_expect_eq(dd_log_count(env, "enqueued it again"), 1);
	free(authorization);
}

Test(daemon_reconcile, off_leaves_lost_job, .fini = teardown, .timeout = 60)
{
	env = dd_env_new("reconcile_interval_s = 0\n", NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
	char *text = apply_due("kept-1", "00000000-0000-4000-8000-000000000002", time(NULL) + 2);
	cr_assert(dd_enqueue(env, text));
	free(text);

	long long end = dd_now_ms() + 3000;
	while (redis_integer("ZCARD {dc}:scheduled") != 1 && dd_now_ms() < end)
		pause_ms(20);
	cr_assert_eq(redis_integer("DEL {dc}:scheduled"), 1);
	pause_ms(5000);
	char *state = dd_query(env, "SELECT state FROM dc_jobs WHERE id = $1", "kept-1");
	cr_expect_str_eq(state, "queued", "without the reconciler the lost job stays queued");
	free(state);
	cr_expect_eq(events("kept-1", "reconciled"), 0);
}
