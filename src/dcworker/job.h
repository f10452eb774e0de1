/*
 * One job's life in a worker process, as a state machine advanced by the
 * callbacks of the queue, the job store and the protocol client.
 *
 *   parse -> claim -> [load authorization -> [refresh -> store tokens]]
 *         -> call provider -> [store authorization] -> commit -> publish -> ack
 *
 * A refresh first claims the authorization's refresh lease (refresh_lease.h),
 * and every call to a configured provider passes the gate of job_gate.h
 * (zone lock, in-flight slot, rate token) first.
 *
 * From the claim to the acknowledgment a timer renews the claim: the Redis
 * entry's idle time (queue_touch) and, until the commit, the PostgreSQL
 * lease (job_store_renew_lease).
 *
 * The outcome of every provider call is classified by retry_classify(). A
 * terminal outcome is committed in PostgreSQL, published and acknowledged;
 * a retry is committed as "queued" and scheduled again with the entry
 * acknowledged in the same atomic step. Failures of PostgreSQL or Redis
 * themselves (disconnects, timeouts) never end a job: the step waits with
 * backoff and runs again, and an entry that is never acknowledged is
 * reclaimed by another worker after the visibility timeout.
 *
 * Results and log lines never contain a token, a code or a client secret.
 */
#ifndef DCWORKER_JOB_H
#define DCWORKER_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "config.h"
#include "domainconnect.h"
#include "job_store.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "retry_policy.h"
#include "token_crypto.h"

/* Delay before a step that failed on Redis or PostgreSQL runs again. */
#define JOB_STEP_RETRY_MIN_MS 100
#define JOB_STEP_RETRY_MAX_MS 5000
/* Wait before a job whose row another worker holds is offered again. */
#define JOB_BUSY_DELAY_MS 1000
/*
 * A running job renews its claim (the Redis entry's idle time and the
 * PostgreSQL lease) every lease_ms / JOB_RENEW_DIVISOR, so a provider call
 * longer than the visibility timeout is not reclaimed by another worker.
 */
#define JOB_RENEW_DIVISOR 3
#define JOB_RENEW_MIN_MS 100

typedef struct job job;

/* Everything a job borrows from its worker. Outlives every job. */
typedef struct job_env {
	struct ev_loop *loop;
	const config *cfg;
	log_ctx *log;
	dc_client *client;
	queue *queue;
	job_store *store;
	const token_crypto *crypto;
	const char *owner;        /* consumer name, also the lease owner in PostgreSQL */
	long lease_ms;            /* lease taken on claim; the visibility timeout */
	retry_backoff backoff;    /* for provider retries */
	metrics *metrics;         /* counters; may be NULL */

	/* Called once when a job has finished or was cancelled, just before it is freed. */
	void (*on_done)(void *arg, job *j);
	void *done_arg;
} job_env;

/*
 * Creates a job for MSG. The job takes MSG's job text (msg->job is set to
 * NULL); the rest is copied. Returns NULL when out of memory.
 */
job *job_new(const job_env *env, queue_message *msg);

/* Starts the state machine. env->on_done runs exactly once afterwards. */
void job_start(job *j);

/*
 * Abandons the job without acknowledging its entry, so it is reclaimed later.
 * Pending provider calls and timers stop at once; env->on_done runs when the
 * last outstanding queue or job store callback has returned, which may be
 * during this call.
 */
void job_cancel(job *j);

/* Job id for logs: the client's id, the generated one, or the entry id before parsing. */
const char *job_id(const job *j);

#endif
