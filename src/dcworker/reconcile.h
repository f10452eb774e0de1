/*
 * The PostgreSQL reconciler: finds jobs that PostgreSQL still lists as
 * unfinished but that Redis no longer contains, and enqueues each again.
 *
 * A job is lost to Redis when a failover or a restart without AOF dropped
 * its stream entry or its {dc}:scheduled member. Its dc_jobs row then stays
 * "queued" past its due time (not_before), or "running" past its lease,
 * with nothing left to deliver it. A run:
 *
 * 1. takes the lock RECONCILE_LOCK_KEY with SET NX PX for one interval, so
 *    one worker of all processes and hosts runs per interval (the others
 *    report skipped);
 * 2. reads such rows one at a time, at most max_per_run, those due more
 *    than grace_s ago (or whose lease expired more than grace_s ago);
 * 3. for each, in one Lua script: when no member of {dc}:scheduled and no
 *    entry of its queue stream (pending or not yet delivered) carries the
 *    job's id, XADDs the row's payload to the queue stream in the wire
 *    format; then appends a "reconciled" event to the row.
 *
 * The check and the XADD are atomic in Redis, so two runs that overlap
 * still enqueue a job once. A delivery of a job that finished meanwhile is
 * harmless: the claim sees the terminal row and only acknowledges it.
 * exchange_code jobs are left alone: their payload has no code.
 */
#ifndef DCWORKER_RECONCILE_H
#define DCWORKER_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>

#include "job_store.h"
#include "queue.h"

/* The lock that lets one worker run per interval; its value is the holder. */
#define RECONCILE_LOCK_KEY "{dc}:reconcile:lock"
/* Rows examined per run unless max_per_run sets another number. */
#define RECONCILE_DEFAULT_MAX_PER_RUN 100
/* Largest interval and grace in seconds. */
#define RECONCILE_SECONDS_MAX 86400L
/* Longest job id the reconciler handles. */
#define RECONCILE_ID_MAX 128

typedef struct reconcile_options {
	const char *owner;      /* the worker's consumer name, stored in the lock */
	long interval_s;        /* 1 to RECONCILE_SECONDS_MAX: the lock's lifetime */
	long grace_s;           /* 1 to RECONCILE_SECONDS_MAX */
	size_t max_per_run;     /* 0 means RECONCILE_DEFAULT_MAX_PER_RUN */
} reconcile_options;

/* What a run did. */
typedef struct reconcile_report {
	bool skipped;               /* another worker holds the lock for this interval */
	size_t examined;            /* rows read from PostgreSQL */
	size_t enqueued;            /* rows enqueued again */
	char last_id[RECONCILE_ID_MAX + 1]; /* the last job enqueued again, "" when none */
	job_store_error error;      /* status JOB_STORE_OK unless PostgreSQL failed */
	queue_error queue_error;    /* status QUEUE_OK unless Redis failed */
} reconcile_report;

/*
 * Called once per run with its report, which lives until the callback
 * returns. ON_ENQUEUED, when set, is called for each job enqueued again.
 */
typedef void (*reconcile_cb)(void *arg, const reconcile_report *report);
typedef void (*reconcile_job_cb)(void *arg, const char *id, const char *queue_name);

typedef struct reconcile reconcile;

/*
 * Create a reconciler on STORE and Q, which must outlive it. OPTS is
 * copied. Returns NULL and fills ERR on an invalid option or no memory.
 */
reconcile *reconcile_new(job_store *store, queue *q, const reconcile_options *opts,
                         job_store_error *err);

/* Free R; accepts NULL. A run in progress ends without calling its callback. */
void reconcile_free(reconcile *r);

/*
 * Start one run; CB is called once when it ends, ON_ENQUEUED (may be NULL)
 * for each job enqueued again. BUSY when a run is in progress; then CB is
 * not called.
 */
job_store_status reconcile_run(reconcile *r, reconcile_cb cb, reconcile_job_cb on_enqueued,
                               void *arg, job_store_error *err);

#endif
