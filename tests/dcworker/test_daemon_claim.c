/*
 * Claims of running jobs: a provider call longer than the visibility
 * timeout keeps its claim, a job whose worker keeps dying ends in the dead
 * letters, and a job cut off by a short grace period is finished by the
 * next worker.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 30000

static dd_env *env;

static void teardown(void)
{
	dd_env_free(env, true);
}

static char *count_events(const char *id, const char *event)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                           " AND event = '%s'", event);
	return dd_query(env, sql, id);
}

static void setup_short_visibility(void)
{
	/* The fixture's claims go stale after 5 s; the provider answers after 12 s. */
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 2), "dcworker exited at start-up");
}

Test(daemon_claim, long_call_keeps_its_claim, .init = setup_short_visibility, .fini = teardown,
     .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":12000,\"endpoints\":\"apply\"}"));

	char *job = dd_apply_text("apply-long", authorization, "192.0.2.50");
	cr_assert(dd_enqueue(env, job));
	free(job);

	char *state = NULL;
	json_t *result = dd_wait_result(env, "apply-long", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result, "apply-long has no result");
	cr_expect_str_eq(state, "succeeded");
	cr_expect_eq(json_integer_value(json_object_get(result, "attempts")), 1);
	cr_expect_eq(dd_sandbox_count(env, "apply"), 1, "the job was reclaimed and called again");
	char *started = count_events("apply-long", "started");
	char *succeeded = count_events("apply-long", "succeeded");
	cr_expect_str_eq(started, "1", "the job was claimed again");
	cr_expect_str_eq(succeeded, "1");
	cr_expect_eq(dd_log_count(env, "reclaimed 1 entries"), 0, "an entry was reclaimed");
	cr_expect_eq(dd_log_count(env, "no longer"), 0, "a claim was lost");
	free(started);
	free(succeeded);
	json_decref(result);
	free(state);
	free(authorization);
}

static void setup_poison(void)
{
	/* A second delivery is one too many. */
	setenv("DCWORKER_WORKER_MAX_RECLAIMS", "1", 1);
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
}

Test(daemon_claim, dying_worker_job_goes_dead, .init = setup_poison, .fini = teardown,
     .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":20000,\"endpoints\":\"apply\"}"));

	char *job = dd_apply_text("apply-poison", authorization, "192.0.2.51");
	cr_assert(dd_enqueue(env, job));
	free(job);

	/* Each worker that takes the job dies in the provider call. */
	for (int kill_count = 0; kill_count < 2; kill_count++) {
		if (!dd_wait_running(env, "apply-poison", 8000))
			break;
		usleep(300000);
		pid_t victim = dd_last_worker_pid(env);
		cr_assert_gt(victim, 0);
		cr_assert_eq(kill(victim, SIGKILL), 0);
		usleep(500000);
	}

	char *state = NULL;
	json_t *result = dd_wait_result(env, "apply-poison", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result, "apply-poison has no result");
	cr_expect_str_eq(state, "dead");
	cr_expect_str_eq(json_string_value(json_object_get(result, "error_code")), "poison_job");
	redisReply *r = redisCommand(env->redis_conn, "XLEN {dc}:dead");
	cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
	cr_expect_eq(r->integer, 1);
	freeReplyObject(r);
	r = redisCommand(env->redis_conn, "HGET {dc}:result:apply-poison status");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
	cr_expect_str_eq(r->str, "dead");
	freeReplyObject(r);
	json_decref(result);
	free(state);
	free(authorization);
}

static void setup_short_grace(void)
{
	setenv("DCWORKER_WORKER_GRACE_PERIOD_S", "1", 1);
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
}

Test(daemon_claim, cut_off_job_finished_by_next, .init = setup_short_grace, .fini = teardown,
     .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":4000,\"endpoints\":\"apply\"}"));

	char *job = dd_apply_text("apply-cut", authorization, "192.0.2.52");
	cr_assert(dd_enqueue(env, job));
	free(job);
	cr_assert(dd_wait_running(env, "apply-cut", RESULT_TIMEOUT_MS));

	/* The grace period (1 s) ends before the provider answers (4 s). */
	int status = dd_daemon_stop(env, SIGTERM, 15000);
	cr_assert(status >= 0, "dcworker did not exit after SIGTERM");
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
	cr_expect_eq(dd_log_count(env, "leaving 1 jobs unacknowledged"), 1);
	char *state = dd_query(env, "SELECT state FROM dc_jobs WHERE id = $1", "apply-cut");
	cr_expect_str_eq(state, "running");
	free(state);

	/* The next worker reclaims it once the claim is stale. */
	cr_assert(dd_sandbox_faults(env, "{}"));
	cr_assert(dd_daemon_start(env, 1));
	json_t *result = dd_wait_result(env, "apply-cut", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result, "apply-cut was not reclaimed");
	cr_expect_str_eq(state, "succeeded");
	char *succeeded = count_events("apply-cut", "succeeded");
	cr_expect_str_eq(succeeded, "1");
	free(succeeded);
	json_decref(result);
	free(state);
	free(authorization);
}
