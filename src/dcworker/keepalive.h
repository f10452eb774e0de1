/*
 * Refresh keep-alive: some providers expire refresh tokens that go unused
 * (30 days at one large provider). keepalive_run enqueues a "refresh" job
 * for every active authorization with a refresh token that was not used
 * for idle_days, at most once per period per authorization, across all
 * workers.
 *
 * Each authorization is marked in PostgreSQL (keepalive_enqueued_at) by one
 * UPDATE ... RETURNING whose row is picked with FOR UPDATE SKIP LOCKED, so
 * workers that run at the same time mark different rows. The job then goes
 * to Redis with XADD in the wire format. When the XADD fails, the mark is
 * removed again and the run stops, so the next run retries.
 * NOTE: a worker that crashes between the mark and the XADD loses that job
 * until the period has passed.
 */
#ifndef DCWORKER_KEEPALIVE_H
#define DCWORKER_KEEPALIVE_H

#include <stddef.h>

#include "job_store.h"
#include "queue.h"

typedef struct keepalive_options {
	long idle_days;          /* refresh tokens unused this long get a job; 1 to 3650 */
	long period_s;           /* at most one job per authorization per period; 0 means 86400 */
	const char *queue_name;  /* queue of the refresh jobs; NULL means "bulk" */
	size_t max_per_run;      /* jobs one run enqueues at most; 0 means 1000 */
} keepalive_options;

/* What one run did. */
typedef struct keepalive_report {
	job_store_error error;   /* status JOB_STORE_OK unless a PostgreSQL step failed */
	queue_error queue_error; /* status QUEUE_OK unless an XADD failed */
	size_t enqueued;         /* refresh jobs added to the queue */
} keepalive_report;

typedef void (*keepalive_cb)(void *arg, const keepalive_report *report);

typedef struct keepalive keepalive;

/*
 * Create a keep-alive on STORE and Q, which must outlive it. OPTS is
 * copied. Returns NULL and fills ERR on an invalid option or no memory.
 */
keepalive *keepalive_new(job_store *store, queue *q, const keepalive_options *opts,
                         job_store_error *err);

/*
 * Free K; accepts NULL. A run in progress stops after its pending call and
 * does not call its callback.
 */
void keepalive_free(keepalive *k);

/*
 * Enqueue refresh jobs for idle authorizations, one at a time, up to
 * max_per_run, then call CB once with the report. Returns
 * JOB_STORE_ERR_BUSY while a run of K is in progress; CB is not called then.
 */
job_store_status keepalive_run(keepalive *k, keepalive_cb cb, void *arg, job_store_error *err);

#endif
