/*
 * Process tests of the dcworker daemon: a worker killed mid-call, a drain
 * on SIGTERM, --check-config and the schema check at start-up.
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

static void setup(void)
{
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
}

static void teardown(void)
{
	dd_env_free(env, true);
}

static char *slow_apply(const char *authorization, const char *id)
{
	json_t *job = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "apply",
	                        "authorization_id", authorization, "service_id", "web", "params",
	                        "ip", "192.0.2.66", "token", "t");
	char *text = json_dumps(job, JSON_COMPACT);
	json_decref(job);
	return text;
}

/* The pid of the worker the log names last ("worker 0 started with pid N"). */
static pid_t last_worker_pid(void)
{
	char *log = dd_log(env);
	pid_t pid = 0;

	for (char *p = strstr(log, "started with pid "); p != NULL;
	     p = strstr(p + 1, "started with pid "))
		pid = (pid_t)strtol(p + strlen("started with pid "), NULL, 10);
	free(log);
	return pid;
}

/* Waits until job ID is running in PostgreSQL. */
static bool wait_running(const char *id)
{
	long long deadline = dd_now_ms() + RESULT_TIMEOUT_MS;

	while (dd_now_ms() < deadline) {
		char *state = dd_query(env, "SELECT state FROM dc_jobs WHERE id = $1", id);
		bool running = state != NULL && strcmp(state, "running") == 0;

		free(state);
		if (running)
			return true;
		usleep(20000);
	}
	return false;
}

Test(daemon_process, killed_worker_job_reclaimed, .init = setup, .fini = teardown, .timeout = 120)
{
	cr_assert(dd_daemon_start(env, 1));
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1500,\"endpoints\":\"apply\"}"));

	char *job = slow_apply(authorization, "apply-killed");
	cr_assert(dd_enqueue(env, job));
	free(job);
	cr_assert(wait_running("apply-killed"));
	usleep(300000);

	pid_t victim = last_worker_pid();
	cr_assert_gt(victim, 0);
	cr_assert_eq(kill(victim, SIGKILL), 0);

	char *state = NULL;
	json_t *result = dd_wait_result(env, "apply-killed", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result, "the job of the killed worker was not reclaimed");
	cr_expect_str_eq(state, "succeeded");
	cr_expect_neq(last_worker_pid(), victim, "the supervisor did not restart the worker");
	char *outcomes = dd_query(env, "SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                          " AND event IN ('succeeded', 'failed', 'conflict')", "apply-killed");
	cr_expect_str_eq(outcomes, "1");
	free(outcomes);
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon_process, sigterm_drains_in_flight, .init = setup, .fini = teardown, .timeout = 120)
{
	cr_assert(dd_daemon_start(env, 1));
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1500,\"endpoints\":\"apply\"}"));

	char *job = slow_apply(authorization, "apply-drain");
	cr_assert(dd_enqueue(env, job));
	free(job);
	cr_assert(wait_running("apply-drain"));

	int status = dd_daemon_stop(env, SIGTERM, 15000);
	cr_assert(status >= 0, "dcworker did not exit after SIGTERM");
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);

	/* The job in flight finished during the drain. */
	char *state = dd_query(env, "SELECT state FROM dc_jobs WHERE id = $1", "apply-drain");
	cr_expect_str_eq(state, "succeeded");
	free(state);
	free(authorization);
}

/* Runs dcworker with ARGS and returns its exit status; OUTPUT gets stdout and stderr. */
static int run_dcworker(const char *const *args, size_t count, char **output)
{
	char binary[1024];
	char command[4096];
	size_t used;
	FILE *p;
	size_t size = 0;

	snprintf(binary, sizeof(binary), "%s/src/dcworker/dcworker", getenv("DC_BINARY_DIR"));
	used = (size_t)snprintf(command, sizeof(command), "'%s'", binary);
	for (size_t i = 0; i < count; i++)
		used += (size_t)snprintf(command + used, sizeof(command) - used, " '%s'", args[i]);
	snprintf(command + used, sizeof(command) - used, " 2>&1");

	p = popen(command, "r");
	cr_assert_not_null(p);
	FILE *mem = open_memstream(output, &size);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, n, mem);
	fclose(mem);
	return pclose(p);
}

Test(daemon_process, check_config_masks_secrets, .init = setup, .fini = teardown)
{
	const char *args[] = {"--config", env->config_path, "--check-config"};
	char *output = NULL;
	int status = run_dcworker(args, 3, &output);

	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, output);
	cr_expect_not_null(strstr(output, "********"), "no masked secret in: %s", output);
	cr_expect_null(strstr(output, SBH_SECRET), "the client secret was printed");
	free(output);

	FILE *f = fopen(env->config_path, "a");
	cr_assert_not_null(f);
	fputs("\n[worker]\nno_such_key = 1\n", f);
	fclose(f);
	status = run_dcworker(args, 3, &output);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d: %s", status, output);
	cr_expect_not_null(strstr(output, "no_such_key"), "the error does not name the key: %s",
	                   output);
	free(output);
}

Test(daemon_process, old_schema_is_refused, .init = setup, .fini = teardown)
{
	char *dropped = dd_query(env, "DELETE FROM dc_schema_migrations RETURNING 'x'", NULL);
	cr_assert_not_null(dropped);
	free(dropped);

	cr_expect_not(dd_daemon_start(env, 1), "dcworker started on an old schema");
	cr_expect_gt(dd_log_count(env, "dcctl migrate"), 0, "the error does not name dcctl migrate");
}
