/* Throwaway redis-server processes on 127.0.0.1. */
#include "support/support.h"
#include "process.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ports tried before giving up, because a free port can be taken meanwhile. */
#define REDIS_START_ATTEMPTS 5
/* How long Redis may take to reply PONG, AOF replay included. */
#define REDIS_READY_TIMEOUT_MS 10000
/* How long SHUTDOWN SAVE may take before the server is killed. */
#define REDIS_SHUTDOWN_TIMEOUT_MS 10000

struct ts_redis {
	pid_t pid;
	int port;
	bool aof;
	char *program;
	char *dir;
	char *log_path;
};

/* How a launch ended. */
typedef enum launch_result {
	LAUNCH_READY,     /* the server replies PONG to PING */
	LAUNCH_PORT_USED, /* another process took the port first */
	LAUNCH_FAILED,    /* the server exited or never replied */
} launch_result;

static redisContext *connect_redis(int port, long timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (c != NULL && c->err != 0) {
		redisFree(c);
		return NULL;
	}
	if (c != NULL)
		redisSetTimeout(c, tv);
	return c;
}

/* Return true when Redis on PORT replies PONG to PING (not LOADING). */
static bool redis_answers_ping(int port)
{
	redisContext *c = connect_redis(port, 200);
	if (c == NULL)
		return false;
	redisReply *reply = redisCommand(c, "PING");
	bool ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
	freeReplyObject(reply);
	redisFree(c);
	return ok;
}

/* Return true when a line of the log at PATH contains TEXT. */
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

/* Start redis-server on r->port and wait until it answers PING. */
static launch_result launch(ts_redis *r)
{
	char port_arg[16];
	snprintf(port_arg, sizeof port_arg, "%d", r->port);
	char *argv[] = {
		r->program, "--bind", "127.0.0.1", "--port", port_arg, "--save", "", "--daemonize", "no",
		"--dir", r->dir, "--appendonly", r->aof ? "yes" : "no", "--appendfsync", r->aof ? "always" : "everysec",
		NULL,
	};

	/* A fresh log per launch, so an old "in use" line cannot mislead. */
	remove(r->log_path);
	r->pid = ts_proc_spawn(argv, r->log_path, NULL);
	if (r->pid < 0)
		return LAUNCH_FAILED;

	long long deadline = ts_now_ms() + REDIS_READY_TIMEOUT_MS;
	while (ts_now_ms() < deadline) {
		if (!ts_proc_running(r->pid, NULL)) {
			r->pid = -1;
			return log_mentions(r->log_path, "in use") ? LAUNCH_PORT_USED : LAUNCH_FAILED;
		}
		if (redis_answers_ping(r->port))
			return LAUNCH_READY;
		ts_sleep_ms(10);
	}
	fprintf(stderr, "support: redis-server did not reply to PING within %d ms\n", REDIS_READY_TIMEOUT_MS);
	ts_proc_stop(r->pid, SIGKILL, 0);
	r->pid = -1;
	return LAUNCH_FAILED;
}

ts_redis *ts_redis_start(bool aof)
{
	ts_redis *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->pid = -1;
	r->aof = aof;

	r->program = ts_proc_find("redis-server");
	if (r->program == NULL) {
		fprintf(stderr, "support: redis-server not found; install redis-server\n");
		goto fail;
	}
	r->dir = ts_tempdir("dctest-redis");
	if (r->dir == NULL || asprintf(&r->log_path, "%s/redis.log", r->dir) < 0) {
		r->log_path = NULL;
		goto fail;
	}

	launch_result result = LAUNCH_PORT_USED;
	for (int attempt = 0; attempt < REDIS_START_ATTEMPTS && result == LAUNCH_PORT_USED; attempt++) {
		r->port = ts_free_port();
		if (r->port > 0)
			result = launch(r);
	}
	if (result != LAUNCH_READY) {
		fprintf(stderr, "support: redis-server failed to start\n");
		ts_proc_print_log("redis-server", r->log_path);
		goto fail;
	}
	return r;

fail:
	ts_redis_stop(r);
	return NULL;
}

int ts_redis_port(const ts_redis *r)
{
	return r->port;
}

const char *ts_redis_dir(const ts_redis *r)
{
	return r->dir;
}

/* Ask Redis to write its snapshot and exit, then reap it. */
static void shutdown_save(ts_redis *r)
{
	redisContext *c = connect_redis(r->port, 1000);
	if (c != NULL) {
		/* The server closes the connection instead of replying. */
		redisReply *reply = redisCommand(c, "SHUTDOWN SAVE");
		freeReplyObject(reply);
		redisFree(c);
	}
	if (!ts_proc_wait(r->pid, REDIS_SHUTDOWN_TIMEOUT_MS, NULL)) {
		fprintf(stderr, "support: redis-server did not shut down within %d ms; killing it\n", REDIS_SHUTDOWN_TIMEOUT_MS);
		ts_proc_stop(r->pid, SIGKILL, 0);
	}
	r->pid = -1;
}

bool ts_redis_restart(ts_redis *r)
{
	if (r == NULL)
		return false;
	if (r->aof)
		ts_proc_stop(r->pid, SIGKILL, 0);
	else
		shutdown_save(r);
	r->pid = -1;

	if (launch(r) != LAUNCH_READY) {
		fprintf(stderr, "support: redis-server failed to restart on port %d\n", r->port);
		ts_proc_print_log("redis-server", r->log_path);
		return false;
	}
	return true;
}

void ts_redis_stop(ts_redis *r)
{
	if (r == NULL)
		return;
	ts_proc_stop(r->pid, SIGKILL, 0);
	ts_rmtree(r->dir);
	free(r->dir);
	free(r->log_path);
	free(r->program);
	free(r);
}
