/*
 * Fixture of the daemon tests: a throwaway Redis, a migrated PostgreSQL and
 * dnsmasq serving the sandbox's host names on loopback. The dcsandbox
 * binary runs with the harness defaults (providers alpha and beta,
 * templates "web" and "mail" of exampleservice.test) and the zones below,
 * and the real dcworker binary runs as a child process.
 */
#ifndef DC_TESTS_DAEMON_ENV_H
#define DC_TESTS_DAEMON_ENV_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "dcsandbox/test_sandbox_harness.h"
#include "support/support.h"

/*
 * Zone of the tests at both sandbox providers. It is a registrable domain
 * under the public suffix rules (unlike the harness's shop.sandbox.test),
 * so the zone the worker derives from it is the zone the sandbox hosts.
 */
#define DD_ZONE "shop.test"
/* A second zone that starts with an apex A record and a CNAME at www, so "web" conflicts. */
#define DD_BUSY_ZONE "busy.test"

/* Provider section of the dcworker config that points at sandbox provider alpha. */
#define DD_PROVIDER "alpha"

typedef struct dd_env {
	char *dir;            /* config, log */
	char *config_path;
	char *log_path;
	ts_redis *redis;
	ts_postgres *postgres;
	ts_dnsmasq *dns;
	sbh *sandbox;
	PGconn *db;
	redisContext *redis_conn;
	pid_t pid;            /* dcworker's supervisor, 0 when not running */
} dd_env;

/*
 * Starts the servers and writes the dcworker config with EXTRA_INI
 * appended to the [worker] section (may be NULL). The sandbox gets
 * SANDBOX_ARGS. dcworker is not started yet. Returns NULL on failure.
 */
dd_env *dd_env_new(const char *extra_worker_ini, const char *const *sandbox_args,
                   size_t sandbox_arg_count);

/* As dd_env_new, with Redis writing an AOF so that ts_redis_restart keeps every write. */
dd_env *dd_env_new_aof(const char *extra_worker_ini, const char *const *sandbox_args,
                       size_t sandbox_arg_count);

/* Starts dcworker --processes PROCESSES. Returns false when it exits at once. */
bool dd_daemon_start(dd_env *env, int processes);

/* Sends SIGNUM to the supervisor and waits up to TIMEOUT_MS; returns the wait status or -1. */
int dd_daemon_stop(dd_env *env, int signum, long timeout_ms);

/* Stops everything and removes the folder; prints the daemon log when PRINT_LOG is true. */
void dd_env_free(dd_env *env, bool print_log);

/* XADDs JOB (JSON text) to {dc}:queue:interactive; returns false on error. */
bool dd_enqueue(dd_env *env, const char *job);

/*
 * Waits up to TIMEOUT_MS for job ID to reach a terminal state in PostgreSQL.
 * Returns its result column (parsed), or NULL on timeout; *STATE gets the
 * state (caller frees) when STATE is not NULL.
 */
json_t *dd_wait_result(dd_env *env, const char *id, long timeout_ms, char **state);

/* Runs the consent for ZONE at sandbox provider alpha for template "web" and returns the code. */
char *dd_consent_code(dd_env *env, const char *zone);

/* Runs exchange_code job ID for ZONE and returns the new authorization id, or NULL. */
char *dd_authorize(dd_env *env, const char *id, const char *zone);

/* Number of requests sandbox provider alpha served on ENDPOINT ("apply", "token"). */
long dd_sandbox_count(dd_env *env, const char *endpoint);

/* PUTs FAULTS_JSON as provider alpha's run-time faults. */
bool dd_sandbox_faults(dd_env *env, const char *faults_json);

/* Runs SQL with one text parameter and returns the first column of the first row (malloc'd), or NULL. */
char *dd_query(dd_env *env, const char *sql, const char *param);

/* Counts the lines of the daemon log that contain TEXT. */
long dd_log_count(dd_env *env, const char *text);

/* Reads the daemon log (malloc'd, "" when empty). */
char *dd_log(dd_env *env);

/*
 * Returns the JSON of apply job ID of template "web" with authorization
 * AUTHORIZATION and the apex address IP (malloc'd).
 */
char *dd_apply_text(const char *id, const char *authorization, const char *ip);

/* The pid of the worker the log names last ("started with pid N"), 0 when none. */
pid_t dd_last_worker_pid(dd_env *env);

/* Waits up to TIMEOUT_MS until job ID is running in PostgreSQL. */
bool dd_wait_running(dd_env *env, const char *id, long timeout_ms);

/*
 * GETs PATH from 127.0.0.1:PORT over plain HTTP. Returns the status (0 when
 * no answer) and puts the body in *BODY (malloc'd) when BODY is not NULL.
 */
int dd_http_get(int port, const char *path, char **body);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int dd_free_port(void);

/* Milliseconds on a monotonic clock. */
long long dd_now_ms(void);

#endif
