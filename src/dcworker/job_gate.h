/*
 * The gate in front of every call to a configured DNS provider:
 *
 *   zone lock (apply, revert) -> in-flight slot -> rate token -> call -> leave
 *
 * - The zone lock (zone_lock.h) keeps one call per (DNS provider, zone) at
 *   the provider across all workers. Its lease is longer than the call's
 *   total timeout.
 * - The in-flight slot and the token bucket (pacing.h) apply the
 *   [provider.NAME] max_concurrency, rate and burst across all workers. A
 *   rate of 0 takes no token.
 *
 * A refused step waits in the worker (a timer on the job) and is tried
 * again, for up to JOB_GATE_WAIT_MAX_MS; after that the job gives its place
 * back and is scheduled again (job_defer). Waiting uses no attempt. Held
 * leases are renewed every third of their length until job_gate_leave, so
 * a long call keeps them. job_gate_leave and job_gate_stop give the zone
 * lock and the slot back without waiting for the reply; a release that gets
 * lost ends with the lease.
 */
#ifndef DCWORKER_JOB_GATE_H
#define DCWORKER_JOB_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "pacing.h"
#include "zone_lock.h"

/*
 * Longest wait at the gate inside the worker. A job refused for longer gives
 * its in-flight place back: it releases every lease it holds, is recorded
 * as queued and goes to the scheduled set, without using an attempt, so one
 * busy zone cannot fill a worker with waiting jobs.
 */
#define JOB_GATE_WAIT_MAX_MS 2000
/*
 * Bounds of the delay of a job that gave its wait back. The zone lock and
 * the slot report the holder's remaining lease, which is only an upper
 * bound (the holder usually releases sooner), so their delay is capped at
 * JOB_GATE_PARK_MAX_MS; the rate token's wait is exact and is used as is.
 */
#define JOB_GATE_PARK_MIN_MS 200
#define JOB_GATE_PARK_MAX_MS 2000
/* Maximum pause between two tries of a refused zone lock or slot. */
#define JOB_GATE_POLL_MS 100
/* Pause after a Redis error before the step runs again. */
#define JOB_GATE_ERROR_DELAY_MS 250
/* Added to the call's total timeout for the zone lock and slot leases. */
#define JOB_GATE_LEASE_MARGIN_MS 5000

typedef struct job job;
typedef void (*job_gate_fn)(job *j);

/* Gate state of one job; zeroed by calloc in job_new. */
typedef struct job_gate {
	bool zone;                /* this call needs the zone lock */
	bool zone_held;
	bool slot_held;
	bool token_taken;
	bool open;                /* every step passed; the call may run */
	zone_lock *lock;          /* created on the first zone call */
	char holder[PACING_HOLDER_RANDOM_LEN + 1]; /* in-flight holder id, "" until set */
	pacing_limits limits;
	long lease_ms;
	job_gate_fn then;         /* the call to start when the gate opens */
	ev_timer renew_timer;
	int64_t wait_started_ms;  /* when the gate was entered */
	uint64_t jitter;          /* xorshift state for the poll jitter */
} job_gate;

/*
 * Passes J through the gate of its provider (j->provider), with the zone
 * lock of j->auth's zone when ZONE is true, then runs THEN. A job without a
 * provider runs THEN at once. Waits and Redis errors delay THEN; they never
 * end the job.
 */
void job_gate_enter(job *j, bool zone, job_gate_fn then);

/* After the call: stops the renewals and gives back the zone lock and the slot. */
void job_gate_leave(job *j);

/* Records a 429 from J's provider, which lowers its rate for every worker. */
void job_gate_penalize(job *j);

/* For cancel and free: as job_gate_leave, and frees the zone lock object. */
void job_gate_stop(job *j);

/* Largest total timeout of a provider call, in ms: the client applies the largest of all providers. */
long job_gate_call_timeout_ms(const job *j);

#endif
