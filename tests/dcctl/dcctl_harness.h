/*
 * Runs the built dcctl binary ($DC_BINARY_DIR/src/dcctl/dcctl) as a child
 * process against a Redis and a PostgreSQL started for the test, with a
 * config file in a temp folder.
 */
#ifndef DCCTL_HARNESS_H
#define DCCTL_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "support/support.h"

typedef struct harness {
	ts_redis *redis;
	ts_postgres *pg;     /* NULL when started without PostgreSQL */
	char *dir;           /* temp folder holding the config and files */
	char *config_path;
	redisContext *rc;    /* the test's own Redis connection */
	PGconn *conn;        /* the test's own PostgreSQL connection, or NULL */
} harness;

/* Output of one dcctl run. */
typedef struct run_output {
	int exit_code;       /* exit status, or 128 + signal */
	char *out;           /* stdout, NUL-terminated */
	char *err;           /* stderr */
} run_output;

/* Starts Redis (and PostgreSQL when with_pg) and writes the config. NULL on failure. */
harness *harness_start(bool with_pg, const char *extra_config);
void harness_stop(harness *h);

/* Path of the built dcctl. */
const char *harness_dcctl_path(void);

/* Runs dcctl --config <config> ARGV... (NULL-terminated), waits and captures its output. */
run_output harness_run(const harness *h, const char *const *argv);
void run_output_free(run_output *r);

/* Starts dcctl like harness_run without waiting; stdout and stderr go to files in h->dir. */
pid_t harness_spawn(const harness *h, const char *const *argv);

/* Parses r->out as JSON; NULL when it is not. */
json_t *run_json(const run_output *r);

/* Writes text to DIR/NAME; returns the malloc'd path. */
char *harness_write_file(const harness *h, const char *name, const char *text);

/* Runs a Redis command on the test's connection and returns its integer reply (-1 on error). */
long long harness_redis_int(const harness *h, const char *fmt, ...);

/* Applies the migrations with dcctl; returns true on exit 0. */
bool harness_migrate(const harness *h);

/* Runs SQL on the test's connection and returns the first value as a long (-1 on error). */
long harness_sql_long(const harness *h, const char *sql);

#endif
