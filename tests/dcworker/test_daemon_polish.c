/*
 * Daemon tests of rough edges a new user meets: workers outliving a killed
 * supervisor, and the output of --check-config and of start-up config
 * errors.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 60000
/* grace_period_s of the fixture's config. */
#define GRACE_MS 10000
/* Extra time after the grace period for a worker to exit. */
#define EXIT_MARGIN_MS 5000

/* Key list of the runs without the fixture, with key id "polish". */
#define POLISH_KEY_B64 "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define POLISH_KEYS "polish:" POLISH_KEY_B64

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

/* True while PID exists and is not a zombie. */
static bool alive(pid_t pid)
{
	char path[64];
	char stat[256];
	FILE *f;
	size_t n;

	if (kill(pid, 0) != 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *state = strrchr(stat, ')');
	return state != NULL && state[1] == ' ' && state[2] != 'Z' && state[2] != 'X';
}

/* Collects the pids of every "started with pid N" line of the log into PIDS. */
static size_t worker_pids(pid_t *pids, size_t max)
{
	static const char marker[] = "started with pid ";
	char *log = dd_log(env);
	size_t n = 0;

	for (char *p = strstr(log, marker); p != NULL && n < max; p = strstr(p + 1, marker))
		pids[n++] = (pid_t)strtol(p + strlen(marker), NULL, 10);
	free(log);
	return n;
}

Test(daemon_polish, killed_supervisor_takes_workers, .init = setup, .fini = teardown,
     .timeout = 180)
{
	cr_assert(dd_daemon_start(env, 2));
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	/* Longer than the grace period, so the drain gives the job up for reclaim. */
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":14000,\"endpoints\":\"apply\"}"));
	char *job = dd_apply_text("apply-orphan", authorization, "192.0.2.77");
	cr_assert(dd_enqueue(env, job));
	free(job);
	cr_assert(dd_wait_running(env, "apply-orphan", 30000));

	pid_t pids[8];
	size_t count = worker_pids(pids, 8);
	cr_assert_eq(count, 2, "expected 2 workers in the log, found %zu", count);

	cr_assert_eq(kill(env->pid, SIGKILL), 0);
	cr_assert_eq(waitpid(env->pid, NULL, 0), env->pid);
	env->pid = 0;

	long long deadline = dd_now_ms() + GRACE_MS + EXIT_MARGIN_MS;
	for (size_t i = 0; i < count; i++) {
		while (alive(pids[i]) && dd_now_ms() < deadline)
			usleep(50000);
		cr_assert_not(alive(pids[i]), "worker %ld outlived its supervisor", (long)pids[i]);
	}
	cr_expect_gt(dd_log_count(env, "no new jobs"), 0, "the workers did not drain");

	/* A new daemon finishes the job the orphaned worker gave up, once. */
	cr_assert(dd_sandbox_faults(env, "{}"));
	cr_assert(dd_daemon_start(env, 1));
	char *state = NULL;
	json_t *result = dd_wait_result(env, "apply-orphan", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result, "the new daemon did not finish the job");
	cr_expect_str_eq(state, "succeeded");
	char *outcomes = dd_query(env, "SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                          " AND event IN ('succeeded', 'failed', 'conflict')", "apply-orphan");
	cr_expect_str_eq(outcomes, "1");
	char *reclaims = dd_query(env, "SELECT reclaims FROM dc_jobs WHERE id = $1", "apply-orphan");
	cr_expect_str_eq(reclaims, "1", "the takeover was not counted in reclaims");
	free(reclaims);
	free(outcomes);
	json_decref(result);
	free(state);
	free(authorization);
}

/* Runs dcworker with ARGS; OUTPUT gets stdout and stderr. Returns the wait status. */
static int run_dcworker(const char *const *args, size_t count, char **output)
{
	char command[4096];
	size_t used;
	size_t size = 0;
	char buf[4096];
	size_t n;

	used = (size_t)snprintf(command, sizeof(command), "'%s/src/dcworker/dcworker'",
	                        getenv("DC_BINARY_DIR"));
	for (size_t i = 0; i < count; i++)
		used += (size_t)snprintf(command + used, sizeof(command) - used, " '%s'", args[i]);
	snprintf(command + used, sizeof(command) - used, " 2>&1");

	FILE *p = popen(command, "r");
	cr_assert_not_null(p);
	FILE *mem = open_memstream(output, &size);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, n, mem);
	fclose(mem);
	return pclose(p);
}

/* Writes TEXT to a config file in a new folder and returns its path (malloc'd). */
static char *write_config(const char *text)
{
	char *dir = ts_tempdir("dcworker-polish");
	char *path = NULL;

	cr_assert_not_null(dir);
	cr_assert(asprintf(&path, "%s/dcworker.ini", dir) > 0);
	free(dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

Test(daemon_polish, check_config_names_key_and_warns, .timeout = 60)
{
	setenv("DCWORKER_TOKEN_KEYS", POLISH_KEYS, 1);
	char *path = write_config("[worker]\ntemplate_provider_id = app.example.test\n\n"
	                          "[metrics]\nlisten = 0.0.0.0:9311\n");
	const char *args[] = {"--check-config", path};
	char *output = NULL;
	int status = run_dcworker(args, 2, &output);

	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, output);
	cr_expect_not_null(strstr(output, "key id polish encrypts"), "no key id in: %s", output);
	cr_expect_null(strstr(output, POLISH_KEY_B64), "key material was printed");
	cr_expect_not_null(strstr(output, "dcworker: warning: [metrics] listen = 0.0.0.0:9311 is not "
	                          "a loopback address"),
	                   "no loopback warning in: %s", output);
	free(output);

	/* A loopback listen address is not warned about. */
	free(path);
	path = write_config("[worker]\ntemplate_provider_id = app.example.test\n\n"
	                    "[metrics]\nlisten = [::1]:9311\n");
	const char *args2[] = {"--config", path, "--check-config"};
	status = run_dcworker(args2, 3, &output);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, output);
	cr_expect_null(strstr(output, "warning"), "a loopback address was warned about: %s", output);
	free(output);
	free(path);
}

Test(daemon_polish, missing_provider_id_plain_error, .timeout = 60)
{
	setenv("DCWORKER_TOKEN_KEYS", POLISH_KEYS, 1);
	char *path = write_config("[worker]\nin_flight = 4\n");
	const char *args[] = {"--config", path};
	char *output = NULL;
	int status = run_dcworker(args, 2, &output);

	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d: %s", status, output);
	cr_expect_eq(strncmp(output, "dcworker: [worker] template_provider_id is missing", 50), 0,
	             "not a plain message: %s", output);
	cr_expect_null(strstr(output, "{\""), "a JSON line was printed: %s", output);
	free(output);
	free(path);
}
