/*
 * The dcctl test harness: servers, config file and child processes.
 */
#include "dcctl_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Largest output read back from a dcctl run. */
#define HARNESS_OUTPUT_MAX (8 * 1024 * 1024)
/* Maximum number of arguments of one dcctl run, the binary and --config included. */
#define HARNESS_ARGS_MAX 128

const char *harness_dcctl_path(void)
{
	static char path[4096];
	const char *bin = getenv("DC_BINARY_DIR");

	snprintf(path, sizeof(path), "%s/src/dcctl/dcctl", bin != NULL ? bin : ".");
	return path;
}

char *harness_write_file(const harness *h, const char *name, const char *text)
{
	char *path = NULL;

	if (asprintf(&path, "%s/%s", h->dir, name) < 0)
		return NULL;
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		free(path);
		return NULL;
	}
	fputs(text, f);
	fclose(f);
	return path;
}

harness *harness_start(bool with_pg, const char *extra_config)
{
	harness *h = calloc(1, sizeof(*h));
	char *config = NULL;

	if (h == NULL)
		return NULL;
	h->dir = ts_tempdir("dcctl-test");
	h->redis = ts_redis_start(false);
	if (h->dir == NULL || h->redis == NULL)
		goto fail;
	if (with_pg) {
		h->pg = ts_postgres_start();
		if (h->pg == NULL)
			goto fail;
	}
	if (asprintf(&config, "[redis]\nhost = 127.0.0.1\nport = %d\n\n%s%s%s\n%s\n",
	             ts_redis_port(h->redis), with_pg ? "[postgres]\nconninfo = " : "",
	             with_pg ? ts_postgres_conninfo(h->pg) : "", with_pg ? "\n" : "",
	             extra_config != NULL ? extra_config : "") < 0)
		goto fail;
	h->config_path = harness_write_file(h, "dcctl.ini", config);
	free(config);
	if (h->config_path == NULL)
		goto fail;

	struct timeval timeout = {5, 0};
	h->rc = redisConnectWithTimeout("127.0.0.1", ts_redis_port(h->redis), timeout);
	if (h->rc == NULL || h->rc->err != 0)
		goto fail;
	if (with_pg) {
		h->conn = PQconnectdb(ts_postgres_conninfo(h->pg));
		if (PQstatus(h->conn) != CONNECTION_OK)
			goto fail;
	}
	return h;
fail:
	harness_stop(h);
	return NULL;
}

void harness_stop(harness *h)
{
	if (h == NULL)
		return;
	if (h->rc != NULL)
		redisFree(h->rc);
	if (h->conn != NULL)
		PQfinish(h->conn);
	ts_redis_stop(h->redis);
	ts_postgres_stop(h->pg);
	if (h->dir != NULL)
		ts_rmtree(h->dir);
	free(h->dir);
	free(h->config_path);
	free(h);
}

static pid_t spawn(const harness *h, const char *const *argv, const char *out_path,
                   const char *err_path)
{
	const char *args[HARNESS_ARGS_MAX + 1];
	size_t n = 0;

	args[n++] = harness_dcctl_path();
	args[n++] = "--config";
	args[n++] = h->config_path;
	for (size_t i = 0; argv[i] != NULL && n < HARNESS_ARGS_MAX; i++)
		args[n++] = argv[i];
	args[n] = NULL;

	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int in = open("/dev/null", O_RDONLY);
	if (out < 0 || err < 0 || in < 0)
		_exit(127);
	dup2(in, STDIN_FILENO);
	dup2(out, STDOUT_FILENO);
	dup2(err, STDERR_FILENO);
	execv(args[0], (char *const *)args);
	_exit(127);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, HARNESS_OUTPUT_MAX + 1);

	if (f != NULL && buf != NULL) {
		size_t n = fread(buf, 1, HARNESS_OUTPUT_MAX, f);
		buf[n] = '\0';
	}
	if (f != NULL)
		fclose(f);
	return buf;
}

pid_t harness_spawn(const harness *h, const char *const *argv)
{
	char out_path[4096];
	char err_path[4096];

	snprintf(out_path, sizeof(out_path), "%s/spawn.out", h->dir);
	snprintf(err_path, sizeof(err_path), "%s/spawn.err", h->dir);
	return spawn(h, argv, out_path, err_path);
}

run_output harness_run(const harness *h, const char *const *argv)
{
	static int counter;
	char out_path[4096];
	char err_path[4096];
	run_output r = {.exit_code = -1};
	int status = 0;

	counter++;
	snprintf(out_path, sizeof(out_path), "%s/run%d.out", h->dir, counter);
	snprintf(err_path, sizeof(err_path), "%s/run%d.err", h->dir, counter);
	pid_t pid = spawn(h, argv, out_path, err_path);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return r;
	r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r.out = read_all(out_path);
	r.err = read_all(err_path);
	return r;
}

void run_output_free(run_output *r)
{
	free(r->out);
	free(r->err);
	r->out = NULL;
	r->err = NULL;
}

json_t *run_json(const run_output *r)
{
	json_error_t error;

	if (r->out == NULL)
		return NULL;
	return json_loads(r->out, 0, &error);
}

long long harness_redis_int(const harness *h, const char *fmt, ...)
{
	va_list ap;
	long long value = -1;

	va_start(ap, fmt);
	redisReply *reply = redisvCommand(h->rc, fmt, ap);
	va_end(ap);
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		value = reply->integer;
	freeReplyObject(reply);
	return value;
}

bool harness_migrate(const harness *h)
{
	const char *argv[] = {"migrate", NULL};
	run_output r = harness_run(h, argv);
	bool ok = r.exit_code == 0;

	if (!ok)
		fprintf(stderr, "dcctl migrate exited %d: %s\n", r.exit_code, r.err != NULL ? r.err : "");
	run_output_free(&r);
	return ok;
}

long harness_sql_long(const harness *h, const char *sql)
{
	PGresult *res = PQexec(h->conn, sql);
	long value = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
		value = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return value;
}
