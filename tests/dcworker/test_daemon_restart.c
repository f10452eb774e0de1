/*
 * Redis and PostgreSQL restarted while the daemon runs 50 jobs: nothing is
 * lost, every job ends with exactly one outcome and one result hash, and
 * the losses and reconnects are logged.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_daemon_env.h"

#define JOBS 50
#define RUN_TIMEOUT_MS 60000

static dd_env *env;

static void setup(void)
{
	/* Four at a time with a slow provider, so the run outlasts both restarts. */
	setenv("DCWORKER_WORKER_IN_FLIGHT", "4", 1);
	env = dd_env_new_aof(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
}

static void teardown(void)
{
	dd_env_free(env, true);
}

static long finished_jobs(void)
{
	char *count = dd_query(env, "SELECT count(*) FROM dc_jobs WHERE id LIKE 'run-%'"
	                       " AND state NOT IN ('queued', 'running')", NULL);
	long n = count != NULL ? strtol(count, NULL, 10) : -1;

	free(count);
	return n;
}

static bool wait_finished(long n, long timeout_ms)
{
	long long deadline = dd_now_ms() + timeout_ms;

	while (dd_now_ms() < deadline) {
		if (finished_jobs() >= n)
			return true;
		usleep(50000);
	}
	return false;
}

Test(daemon_restart, servers_restart_mid_run, .init = setup, .fini = teardown, .timeout = 120)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":250,\"endpoints\":\"apply\"}"));

	for (int i = 0; i < JOBS; i++) {
		char id[32];
		snprintf(id, sizeof(id), "run-%02d", i);
		char *job = dd_apply_text(id, authorization, "192.0.2.60");
		cr_assert(dd_enqueue(env, job));
		free(job);
	}

	cr_assert(wait_finished(8, RUN_TIMEOUT_MS), "the run did not start");
	cr_assert(ts_redis_restart(env->redis), "Redis did not restart");
	redisFree(env->redis_conn);
	env->redis_conn = redisConnect("127.0.0.1", ts_redis_port(env->redis));
	cr_assert(env->redis_conn != NULL && env->redis_conn->err == 0);

	cr_assert(wait_finished(25, RUN_TIMEOUT_MS), "the run stalled after the Redis restart");
	PQfinish(env->db);
	env->db = NULL;
	cr_assert(ts_postgres_restart(env->postgres), "PostgreSQL did not restart");
	env->db = PQconnectdb(ts_postgres_conninfo(env->postgres));
	cr_assert_eq(PQstatus(env->db), CONNECTION_OK);

	cr_assert(wait_finished(JOBS, RUN_TIMEOUT_MS), "only %ld of %d jobs finished", finished_jobs(),
	          JOBS);

	/* One row, one outcome event and one result hash per job. */
	char *succeeded = dd_query(env, "SELECT count(*) FROM dc_jobs WHERE id LIKE 'run-%'"
	                           " AND state = 'succeeded'", NULL);
	cr_expect_str_eq(succeeded, "50");
	free(succeeded);
	char *outcomes = dd_query(env, "SELECT count(*) FROM dc_job_events WHERE job_id LIKE 'run-%'"
	                          " AND event IN ('succeeded', 'failed', 'conflict', 'dead')", NULL);
	cr_expect_str_eq(outcomes, "50", "a job has more than one outcome");
	free(outcomes);
	for (int i = 0; i < JOBS; i++) {
		long long deadline = dd_now_ms() + 10000;
		redisReply *r = NULL;

		/* The last results may still be on their way after the commit. */
		do {
			if (r != NULL)
				freeReplyObject(r);
			r = redisCommand(env->redis_conn, "HGET {dc}:result:run-%02d status", i);
			if (r != NULL && r->type == REDIS_REPLY_STRING)
				break;
			usleep(50000);
		} while (dd_now_ms() < deadline);
		cr_expect(r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, "succeeded") == 0,
		          "run-%02d has no succeeded result hash", i);
		if (r != NULL)
			freeReplyObject(r);
	}

	cr_expect_gt(dd_log_count(env, "QUEUE_EVENT_LOST"), 0, "the Redis loss was not logged");
	cr_expect_gt(dd_log_count(env, "JOB_STORE_EVENT_LOST"), 0,
	             "the PostgreSQL loss was not logged");
	cr_expect_gt(dd_log_count(env, "connected to Redis"), 1, "no Redis reconnect was logged");
	free(authorization);
}
