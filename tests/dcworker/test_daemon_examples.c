/*
 * The enqueue examples of examples/enqueue/ run as a user runs them, one per
 * language, against the dcworker daemon: each adds an apply job for an
 * authorization that an exchange_code job stored, waits for the result and
 * prints it. The interpreters and client libraries are Debian's packages;
 * a missing one fails the test with the package to install.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_daemon_env.h"

extern char **environ;

/* The examples give up after 60 s without a result; the test waits longer. */
#define EXAMPLE_TIMEOUT_MS 90000
/* Debian's node finds /usr/share/nodejs on its own, a NodeSource build only through NODE_PATH. */
#define DEBIAN_NODE_PATH "/usr/share/nodejs"

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

/* Output of one child process. */
typedef struct run_output {
	int status;     /* wait status, -1 when it did not start or timed out */
	char *out;      /* stdout (malloc'd, "" when empty) */
	char *err;      /* stderr (malloc'd, "" when empty) */
} run_output;

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t size = 0;
	FILE *mem = open_memstream(&text, &size);

	if (f != NULL) {
		char buf[4096];
		size_t n;

		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			fwrite(buf, 1, n, mem);
		fclose(f);
	}
	fclose(mem);
	return text;
}

/*
 * Runs ARGV with stdin from /dev/null and stdout and stderr in files under
 * the fixture's folder, kills it after TIMEOUT_MS. The child inherits the
 * test's environment.
 */
static run_output run(char *const argv[], long timeout_ms)
{
	run_output result = {.status = -1};
	char out_path[1024];
	char err_path[1024];
	posix_spawn_file_actions_t actions;
	pid_t pid;

	snprintf(out_path, sizeof(out_path), "%s/example.out", env->dir);
	snprintf(err_path, sizeof(err_path), "%s/example.err", env->dir);
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&actions, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&actions, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	if (rc != 0) {
		result.out = strdup("");
		if (asprintf(&result.err, "cannot start %s: %s", argv[0], strerror(rc)) < 0)
			result.err = NULL;
		return result;
	}

	long long deadline = dd_now_ms() + timeout_ms;
	int status = 0;
	pid_t done = 0;
	while ((done = waitpid(pid, &status, WNOHANG)) == 0 && dd_now_ms() < deadline) {
		struct timespec pause = {.tv_nsec = 100 * 1000000L};
		nanosleep(&pause, NULL);
	}
	if (done == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	} else if (done == pid) {
		result.status = status;
	}
	result.out = read_all(out_path);
	result.err = read_all(err_path);
	return result;
}

static void run_output_clear(run_output *r)
{
	free(r->out);
	free(r->err);
}

/*
 * Fails the test unless PROBE (an interpreter with an argument that loads
 * the client library) exits 0, naming PACKAGES to install.
 */
static void require_probe(char *const probe[], const char *packages)
{
	cr_assert_eq(access(probe[0], X_OK), 0, "%s is missing: apt-get install %s", probe[0], packages);
	run_output r = run(probe, 30000);
	cr_assert(r.status != -1 && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
	          "%s cannot load the client library (%s): apt-get install %s", probe[0], r.err,
	          packages);
	run_output_clear(&r);
}

/* The value of line "enqueued ID" of OUT (malloc'd), or NULL. */
static char *enqueued_id(const char *out)
{
	const char *line = strstr(out, "enqueued ");

	if (line == NULL || (line != out && line[-1] != '\n'))
		return NULL;
	line += strlen("enqueued ");
	return strndup(line, strcspn(line, "\n"));
}

/* The first line of OUT that parses as a JSON object, or NULL. */
static json_t *printed_result(const char *out)
{
	for (const char *line = out; *line != '\0';) {
		size_t length = strcspn(line, "\n");

		if (line[0] == '{') {
			json_t *value = json_loadb(line, length, 0, NULL);
			if (json_is_object(value))
				return value;
			json_decref(value);
		}
		line += length;
		if (*line == '\n')
			line++;
	}
	return NULL;
}

/* The apex A record of the test zone at the sandbox (malloc'd), or NULL. */
static char *apex_address(void)
{
	json_t *records = sbh_zone(env->sandbox, SBH_ALPHA_ID, DD_ZONE);
	size_t i;
	json_t *r;
	char *address = NULL;

	json_array_foreach(records, i, r) {
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *name = json_string_value(json_object_get(r, "name"));

		if (type != NULL && name != NULL && strcmp(type, "A") == 0 && strcmp(name, "@") == 0) {
			free(address);
			address = strdup(json_string_value(json_object_get(r, "data")));
		}
	}
	json_decref(records);
	return address;
}

/* Returns the path of examples/enqueue/FILE under DC_SOURCE_DIR (malloc'd). */
static char *example_path(const char *file)
{
	const char *source = getenv("DC_SOURCE_DIR");
	char *path = NULL;

	cr_assert_not_null(source, "DC_SOURCE_DIR is not set; run the test through ctest");
	cr_assert(asprintf(&path, "%s/examples/enqueue/%s", source, file) > 0);
	cr_assert_eq(access(path, R_OK), 0, "%s is missing", path);
	return path;
}

/*
 * Exports the fixture's Redis as REDIS_URL and as REDIS_HOST and REDIS_PORT,
 * the variables the README tells users to set.
 */
static void export_redis(void)
{
	char url[64];
	char port[16];

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ts_redis_port(env->redis));
	snprintf(port, sizeof(port), "%d", ts_redis_port(env->redis));
	cr_assert_eq(setenv("REDIS_URL", url, 1), 0);
	cr_assert_eq(setenv("REDIS_HOST", "127.0.0.1", 1), 0);
	cr_assert_eq(setenv("REDIS_PORT", port, 1), 0);
}

/*
 * Authorizes the test zone with an exchange_code job, then runs the example
 * as INTERPRETER FILE AUTHORIZATION_ID web ip=IP token=verify-1 and checks
 * its exit status, the result it prints, the job's row and the zone.
 */
static void run_example(const char *interpreter, const char *file, const char *ip)
{
	char *authorization = dd_authorize(env, "exchange-example", DD_ZONE);
	cr_assert_not_null(authorization, "exchange_code did not yield an authorization_id");
	char *state = NULL;
	json_t *exchange = dd_wait_result(env, "exchange-example", 20000, &state);
	cr_assert_str_eq(state, "succeeded");
	free(state);
	json_decref(exchange);

	export_redis();
	char *path = example_path(file);
	char ip_pair[64];
	snprintf(ip_pair, sizeof(ip_pair), "ip=%s", ip);
	char *argv[] = {(char *)interpreter, path, authorization, "web", ip_pair, "token=verify-1",
	                NULL};
	run_output r = run(argv, EXAMPLE_TIMEOUT_MS);

	cr_assert_neq(r.status, -1, "%s did not finish within %d s; stdout: %s; stderr: %s", file,
	              EXAMPLE_TIMEOUT_MS / 1000, r.out, r.err);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
	          "%s exited with wait status %d; stdout: %s; stderr: %s", file, r.status, r.out, r.err);

	char *id = enqueued_id(r.out);
	cr_assert_not_null(id, "%s printed no \"enqueued ID\" line: %s", file, r.out);
	json_t *printed = printed_result(r.out);
	cr_assert_not_null(printed, "%s printed no result JSON: %s", file, r.out);
	cr_expect_str_eq(json_string_value(json_object_get(printed, "id")), id);
	cr_expect_str_eq(json_string_value(json_object_get(printed, "status")), "succeeded",
	                 "the printed result: %s", r.out);

	char *row_state = dd_query(env, "SELECT state FROM dc_jobs WHERE id = $1", id);
	cr_expect_str_eq(row_state, "succeeded", "dc_jobs state of %s", id);
	free(row_state);

	char *address = apex_address();
	cr_expect_str_eq(address, ip, "the NAME=VALUE argument did not reach the template");
	free(address);

	json_decref(printed);
	free(id);
	run_output_clear(&r);
	free(path);
	free(authorization);
}

Test(examples, redis_cli_script, .init = setup, .fini = teardown, .timeout = 180)
{
	char *redis_cli[] = {"/usr/bin/redis-cli", "--version", NULL};
	char *jq[] = {"/usr/bin/jq", "--version", NULL};
	require_probe(redis_cli, "redis-tools");
	require_probe(jq, "jq");
	run_example("/bin/bash", "redis-cli.sh", "192.0.2.21");
}

/* /usr/bin/python3, since a python3 earlier in PATH may lack Debian's modules. */
Test(examples, python_redis_py, .init = setup, .fini = teardown, .timeout = 180)
{
	char *probe[] = {"/usr/bin/python3", "-c", "import redis", NULL};
	require_probe(probe, "python3 python3-redis");
	run_example("/usr/bin/python3", "enqueue.py", "192.0.2.22");
}

Test(examples, node_redis, .init = setup, .fini = teardown, .timeout = 180)
{
	cr_assert_eq(setenv("NODE_PATH", DEBIAN_NODE_PATH, 1), 0);
	char *probe[] = {"/usr/bin/node", "-e", "require(\"redis\")", NULL};
	require_probe(probe, "nodejs node-redis");
	run_example("/usr/bin/node", "enqueue.js", "192.0.2.23");
}

Test(examples, ruby_redis_rb, .init = setup, .fini = teardown, .timeout = 180)
{
	char *probe[] = {"/usr/bin/ruby", "-rredis", "-e", "exit", NULL};
	require_probe(probe, "ruby ruby-redis");
	run_example("/usr/bin/ruby", "enqueue.rb", "192.0.2.24");
}
