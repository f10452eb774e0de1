/*
 * Internal to the job store: the libpq connection pool and its query FIFO.
 * job_store.c builds the SQL of each operation and parses its result.
 */
#ifndef DCWORKER_JOB_STORE_CONN_H
#define DCWORKER_JOB_STORE_CONN_H

#include <libpq-fe.h>

#include "job_store.h"

/* Most parameters one query takes. */
#define JOB_STORE_PARAMS_MAX 10

/* Turns a finished query's result into RESULT. RES is PGRES_TUPLES_OK or COMMAND_OK. */
typedef void (*job_store_parse_fn)(const PGresult *res, job_store_result *result);

/* Fill ERR (when non-NULL) with STATUS and a formatted message; returns STATUS. */
job_store_status job_store_fail(job_store_error *err, job_store_status status, const char *fmt,
                                ...) __attribute__((format(printf, 3, 4)));

/*
 * Queue SQL (a static string) with NPARAMS text parameters (NULL means SQL
 * NULL; copied). Runs on the first free connection. On failure returns the
 * status, fills ERR and never calls CB.
 */
job_store_status job_store_submit(job_store *store, const char *sql, int nparams,
                                  const char *const *params, job_store_parse_fn parse,
                                  job_store_cb cb, void *arg, job_store_error *err);

#endif
