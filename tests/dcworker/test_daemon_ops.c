/*
 * Operating the daemon: the metrics endpoint and the provider call counters
 * in Redis, SIGHUP reloads, the supervisor's restart backoff and a Redis
 * that requires a password.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 30000
#define REDIS_PASSWORD "redis-pass-7f3a9c"

static dd_env *env;
static int metrics_port;

static void setup(void)
{
	char listen[64];

	metrics_port = dd_free_port();
	cr_assert_gt(metrics_port, 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", metrics_port);
	setenv("DCWORKER_METRICS_LISTEN", listen, 1);
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
}

static void teardown(void)
{
	dd_env_free(env, true);
}

static json_t *run_job(const char *id, const char *authorization)
{
	char *job = dd_apply_text(id, authorization, "192.0.2.70");
	cr_assert(dd_enqueue(env, job));
	free(job);
	return dd_wait_result(env, id, RESULT_TIMEOUT_MS, NULL);
}

static bool wait_log(const char *text, long want, long timeout_ms)
{
	long long deadline = dd_now_ms() + timeout_ms;

	while (dd_now_ms() < deadline) {
		if (dd_log_count(env, text) >= want)
			return true;
		usleep(50000);
	}
	return false;
}

Test(daemon_ops, metrics_count_jobs_and_calls, .init = setup, .fini = teardown, .timeout = 90)
{
	cr_assert(dd_daemon_start(env, 1));
	cr_assert(wait_log("serves /metrics", 1, 10000), "no metrics endpoint was started");
	cr_expect_eq(dd_http_get(metrics_port, "/healthz", NULL), 200);
	long long deadline = dd_now_ms() + 10000;
	int ready = 0;
	while (ready != 200 && dd_now_ms() < deadline) {
		ready = dd_http_get(metrics_port, "/readyz", NULL);
		usleep(50000);
	}
	cr_expect_eq(ready, 200, "/readyz is not ready with Redis and PostgreSQL up");

	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	json_decref(run_job("apply-m", authorization));

	char *body = NULL;
	cr_assert_eq(dd_http_get(metrics_port, "/metrics", &body), 200);
	cr_expect_not_null(strstr(body, "dcworker_jobs_total{type=\"apply\",outcome=\"succeeded\"} 1"),
	                   "%s", body);
	cr_expect_not_null(strstr(body, "dcworker_jobs_total{type=\"exchange_code\",outcome=\"succeeded\"} 1"));
	cr_expect_not_null(strstr(body, "dcworker_provider_calls_total{provider=\"alpha\","
	                                "endpoint=\"apply\",status=\"200\"} 1"), "%s", body);
	cr_expect_not_null(strstr(body, "dcworker_provider_call_seconds_count{provider=\"alpha\","
	                                "endpoint=\"apply\"} 1"));
	cr_expect_not_null(strstr(body, "dcworker_jobs_in_flight 0"));
	cr_expect_null(strstr(body, SBH_SECRET), "the client secret is in the metrics");
	cr_expect_null(strstr(body, authorization), "an authorization id is in the metrics");
	free(body);
	cr_expect_eq(dd_http_get(metrics_port, "/nothing", NULL), 404);

	/* dcctl stats reads the same calls from Redis, summed over every worker. */
	redisReply *r = redisCommand(env->redis_conn, "HGET {dc}:provider_calls:alpha 200");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "no call counter in Redis");
	cr_expect_str_eq(r->str, "2", "one exchange and one apply");
	freeReplyObject(r);
	r = redisCommand(env->redis_conn, "KEYS {dc}:provider_calls:alpha:*");
	cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
	cr_expect_geq(r->elements, 1, "no per-minute counter");
	freeReplyObject(r);

	/* With Redis gone the process is alive but not ready. */
	ts_redis_stop(env->redis);
	env->redis = NULL;
	deadline = dd_now_ms() + 10000;
	while (ready == 200 && dd_now_ms() < deadline) {
		ready = dd_http_get(metrics_port, "/readyz", NULL);
		usleep(100000);
	}
	cr_expect_eq(ready, 503);
	cr_expect_eq(dd_http_get(metrics_port, "/healthz", NULL), 200);
	free(authorization);
}

/* Replaces "KEY = OLD" with "KEY = NEW" in the daemon's config file. */
static void edit_config(const char *from, const char *to)
{
	FILE *f = fopen(env->config_path, "r");
	char *text = NULL;
	size_t size = 0;
	cr_assert_not_null(f);
	FILE *mem = open_memstream(&text, &size);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, mem);
	fclose(f);
	fclose(mem);
	char *at = strstr(text, from);
	cr_assert_not_null(at, "%s is not in the config", from);
	f = fopen(env->config_path, "w");
	cr_assert_not_null(f);
	fwrite(text, 1, (size_t)(at - text), f);
	fputs(to, f);
	fputs(at + strlen(from), f);
	fclose(f);
	free(text);
}

Test(daemon_ops, sighup_reloads_or_keeps_old, .init = setup, .fini = teardown, .timeout = 90)
{
	cr_assert(dd_daemon_start(env, 1));
	cr_assert(wait_log("worker 0 started as consumer", 1, 10000));

	edit_config("level = debug", "level = warn");
	edit_config("in_flight = 16", "in_flight = 3");
	cr_assert_eq(kill(env->pid, SIGHUP), 0);
	cr_assert(wait_log("reloaded: log level warn, in_flight 3", 1, 10000),
	          "the worker did not reload");
	cr_expect_eq(dd_log_count(env, "config is valid; workers reload it"), 1);

	/* An invalid file is refused and the running settings stay. */
	edit_config("in_flight = 3", "in_flight = many");
	cr_assert_eq(kill(env->pid, SIGHUP), 0);
	cr_assert(wait_log("config is invalid; not reloading", 1, 10000));
	usleep(300000);
	cr_expect_eq(dd_log_count(env, "reloaded:"), 1, "the invalid config reached a worker");

	/* Still running, at level warn: a successful job writes no info line. */
	long info_before = dd_log_count(env, "\"level\":\"info\"");
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_expect_not_null(authorization, "the worker stopped running jobs");
	cr_expect_eq(dd_log_count(env, "\"level\":\"info\""), info_before,
	             "info lines after the reload to warn");
	free(authorization);
}

Test(daemon_ops, crashes_back_off_restarts, .init = setup, .fini = teardown, .timeout = 90)
{
	cr_assert(dd_daemon_start(env, 1));
	cr_assert(wait_log("worker 0 started with pid", 1, 10000));

	static const char *const delays[] = {"restarting it in 100 ms", "restarting it in 200 ms",
	                                     "restarting it in 400 ms", "restarting it in 800 ms"};
	for (long i = 0; i < 4; i++) {
		pid_t victim = dd_last_worker_pid(env);
		cr_assert_gt(victim, 0);
		cr_assert_eq(kill(victim, SIGKILL), 0);
		cr_assert(wait_log(delays[i], 1, 10000), "no restart after %s", delays[i]);
		cr_assert(wait_log("worker 0 started with pid", i + 2, 10000), "no restart %ld", i + 1);
	}
	cr_expect_eq(dd_log_count(env, "was killed by signal 9"), 4);

	/* The last worker runs jobs. */
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_expect_not_null(authorization);
	free(authorization);
}

static void setup_password(void)
{
	setup();
	redisReply *r = redisCommand(env->redis_conn, "CONFIG SET requirepass %s", REDIS_PASSWORD);
	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
	r = redisCommand(env->redis_conn, "AUTH %s", REDIS_PASSWORD);
	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
}

Test(daemon_ops, redis_password_is_sent, .init = setup_password, .fini = teardown, .timeout = 90)
{
	/* Without the password the worker cannot read the queue. */
	cr_assert(dd_daemon_start(env, 1));
	cr_assert(wait_log("NOAUTH", 1, 10000), "the refused commands were not logged");
	cr_assert_geq(dd_daemon_stop(env, SIGTERM, 15000), 0);

	setenv("DD_REDIS_PASSWORD", REDIS_PASSWORD, 1);
	FILE *f = fopen(env->config_path, "a");
	cr_assert_not_null(f);
	fputs("\n[redis]\npassword_env = DD_REDIS_PASSWORD\n", f);
	fclose(f);
	cr_assert(dd_daemon_start(env, 1));
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_expect_not_null(authorization, "no job ran with the password set");
	free(authorization);
	cr_expect_eq(dd_log_count(env, REDIS_PASSWORD), 0, "the password reached the log");
}
