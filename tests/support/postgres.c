/*
 * Throwaway PostgreSQL servers on 127.0.0.1. initdb and postgres reject
 * root, so both run as the postgres user in a directory under /tmp.
 */
#include "support/support.h"
#include "process.h"

#include <glob.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Ports tried before giving up, because a free port can be taken meanwhile. */
#define PG_START_ATTEMPTS 5
/* How long initdb may run; it takes about a second on two cores. */
#define PG_INITDB_TIMEOUT_MS 60000
/* How long the server may take to accept connections or to shut down. */
#define PG_READY_TIMEOUT_MS 30000
#define PG_STOP_TIMEOUT_MS 30000

struct ts_postgres {
	pid_t pid;
	int port;
	char *bindir;
	char *dir;      /* owned by postgres; contains data/, the socket and the log */
	char *data_dir;
	char *log_path;
	char conninfo[128];
	ts_proc_user user;
};

typedef enum launch_result {
	LAUNCH_READY,     /* the server accepts connections */
	LAUNCH_PORT_USED, /* another process took the port first */
	LAUNCH_FAILED,    /* the server exited or never became ready */
} launch_result;

/*
 * Return the folder with initdb and postgres: $DC_TEST_PG_BINDIR, else the
 * highest /usr/lib/postgresql/N/bin that has both. Malloc'd, or NULL.
 */
static char *find_bindir(void)
{
	const char *env = getenv("DC_TEST_PG_BINDIR");
	if (env != NULL && env[0] != '\0')
		return strdup(env);

	glob_t g;
	char *found = NULL;
	long best = -1;
	if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) != 0)
		return NULL;

	/* Pick the highest major version that also has initdb. */
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *path = g.gl_pathv[i];
		const char *version = path + strlen("/usr/lib/postgresql/");
		char *end = NULL;
		long major = strtol(version, &end, 10);
		if (end == version || *end != '/' || major <= best)
			continue;

		char initdb[4096];
		int n = snprintf(initdb, sizeof initdb, "%.*sinitdb", (int)(strlen(path) - strlen("postgres")), path);
		if (n < 0 || (size_t)n >= sizeof initdb || access(initdb, X_OK) != 0)
			continue;
		char *dir = strndup(path, strlen(path) - strlen("/postgres"));
		if (dir == NULL)
			continue;
		free(found);
		found = dir;
		best = major;
	}
	globfree(&g);
	return found;
}

static bool log_mentions(const char *path, const char *text)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/* Run initdb as postgres and wait for it. */
static bool run_initdb(ts_postgres *p)
{
	char initdb[4096];
	snprintf(initdb, sizeof initdb, "%s/initdb", p->bindir);
	char *argv[] = {
		initdb, "-D", p->data_dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions", NULL,
	};

	pid_t pid = ts_proc_spawn(argv, p->log_path, &p->user);
	if (pid < 0)
		return false;
	int status = 0;
	if (!ts_proc_wait(pid, PG_INITDB_TIMEOUT_MS, &status)) {
		fprintf(stderr, "support: initdb did not finish within %d ms\n", PG_INITDB_TIMEOUT_MS);
		ts_proc_stop(pid, SIGKILL, 0);
		return false;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "support: initdb failed with wait status %d\n", status);
		return false;
	}
	return true;
}

/* Start postgres on p->port and wait until it accepts connections. */
static launch_result launch(ts_postgres *p)
{
	char program[4096];
	snprintf(program, sizeof program, "%s/postgres", p->bindir);
	char port_arg[16];
	snprintf(port_arg, sizeof port_arg, "%d", p->port);
	char *argv[] = {
		program, "-D", p->data_dir, "-p", port_arg, "-k", p->dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", NULL,
	};
	snprintf(p->conninfo, sizeof p->conninfo, "host=127.0.0.1 port=%d user=postgres dbname=postgres", p->port);
	char ping_conninfo[160];
	snprintf(ping_conninfo, sizeof ping_conninfo, "%s connect_timeout=2", p->conninfo);

	p->pid = ts_proc_spawn(argv, p->log_path, &p->user);
	if (p->pid < 0)
		return LAUNCH_FAILED;

	long long deadline = ts_now_ms() + PG_READY_TIMEOUT_MS;
	while (ts_now_ms() < deadline) {
		if (!ts_proc_running(p->pid, NULL)) {
			p->pid = -1;
			return log_mentions(p->log_path, "already in use") ? LAUNCH_PORT_USED : LAUNCH_FAILED;
		}
		if (PQping(ping_conninfo) == PQPING_OK)
			return LAUNCH_READY;
		ts_sleep_ms(20);
	}
	fprintf(stderr, "support: postgres did not accept connections within %d ms\n", PG_READY_TIMEOUT_MS);
	ts_proc_stop(p->pid, SIGKILL, 0);
	p->pid = -1;
	return LAUNCH_FAILED;
}

/* Create the directory tree owned by postgres and run initdb in it. */
static bool prepare_dir(ts_postgres *p)
{
	p->dir = ts_tempdir("dctest-pg");
	if (p->dir == NULL)
		return false;
	if (chown(p->dir, p->user.uid, p->user.gid) != 0) {
		fprintf(stderr, "support: cannot chown %s to postgres; run the tests as root\n", p->dir);
		return false;
	}
	if (asprintf(&p->data_dir, "%s/data", p->dir) < 0) {
		p->data_dir = NULL;
		return false;
	}
	if (asprintf(&p->log_path, "%s/postgres.log", p->dir) < 0) {
		p->log_path = NULL;
		return false;
	}
	return run_initdb(p);
}

ts_postgres *ts_postgres_start(void)
{
	ts_postgres *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->pid = -1;

	p->bindir = find_bindir();
	if (p->bindir == NULL) {
		fprintf(stderr, "support: PostgreSQL binaries not found; install postgresql or set DC_TEST_PG_BINDIR\n");
		goto fail;
	}
	char initdb[4096];
	snprintf(initdb, sizeof initdb, "%s/initdb", p->bindir);
	if (access(initdb, X_OK) != 0) {
		fprintf(stderr, "support: %s not found; check DC_TEST_PG_BINDIR\n", initdb);
		goto fail;
	}
	if (!ts_proc_user_lookup("postgres", &p->user))
		goto fail;
	if (!prepare_dir(p)) {
		ts_proc_print_log("initdb", p->log_path);
		goto fail;
	}

	launch_result result = LAUNCH_PORT_USED;
	for (int attempt = 0; attempt < PG_START_ATTEMPTS && result == LAUNCH_PORT_USED; attempt++) {
		p->port = ts_free_port();
		if (p->port > 0)
			result = launch(p);
	}
	if (result != LAUNCH_READY) {
		fprintf(stderr, "support: postgres failed to start\n");
		ts_proc_print_log("postgres", p->log_path);
		goto fail;
	}
	return p;

fail:
	ts_postgres_stop(p);
	return NULL;
}

const char *ts_postgres_conninfo(const ts_postgres *p)
{
	return p->conninfo;
}

int ts_postgres_port(const ts_postgres *p)
{
	return p->port;
}

const char *ts_postgres_dir(const ts_postgres *p)
{
	return p->dir;
}

bool ts_postgres_restart(ts_postgres *p)
{
	if (p == NULL)
		return false;

	/* SIGINT is a fast shutdown: it ends sessions and writes a checkpoint. */
	ts_proc_stop(p->pid, SIGINT, PG_STOP_TIMEOUT_MS);
	p->pid = -1;
	if (launch(p) != LAUNCH_READY) {
		fprintf(stderr, "support: postgres failed to restart on port %d\n", p->port);
		ts_proc_print_log("postgres", p->log_path);
		return false;
	}
	return true;
}

void ts_postgres_stop(ts_postgres *p)
{
	if (p == NULL)
		return;

	/* SIGQUIT is an immediate shutdown; the data is thrown away anyway. */
	ts_proc_stop(p->pid, SIGQUIT, PG_STOP_TIMEOUT_MS);
	ts_rmtree(p->dir);
	free(p->bindir);
	free(p->dir);
	free(p->data_dir);
	free(p->log_path);
	free(p);
}
