/*
 * Pacing per DNS provider, shared by every worker process on every machine
 * through Redis: a token bucket that limits the request rate, a cap on the
 * requests in flight, and a penalty that lowers the rate after a 429.
 *
 * Keys (every one carries the {dc} hash tag):
 *   {dc}:pace:<provider>           HASH tokens, ts: the bucket (ts in ms of Redis TIME)
 *   {dc}:pace:<provider>:penalty   STRING penalty level n: the rate is divided by 2^n
 *   {dc}:pace:<provider>:inflight  ZSET holder -> lease expiry (ms of Redis TIME)
 *
 * Every step is one Lua script that reads the clock with Redis TIME, so the
 * workers' clocks do not matter. The bucket and the in-flight set expire on
 * their own when unused; the penalty key expires penalty_ms after the last
 * 429, and the full rate comes back at that moment.
 *
 * The commands run on the queue's Redis connection (queue_conn_send), so the
 * callback contract is the queue's. A call that fails before sending returns
 * the error and never calls its callback. A call that returns QUEUE_OK calls
 * it exactly once, with QUEUE_ERR_CLOSED when queue_free runs first.
 */
#ifndef DCWORKER_PACING_H
#define DCWORKER_PACING_H

#include <stdbool.h>

#include "config.h"
#include "queue.h"

/* Maximum provider name length. Names use only [A-Za-z0-9_.-]. */
#define PACING_PROVIDER_MAX 64
/* Maximum in-flight holder id length. Holders use only [A-Za-z0-9_.:-]. */
#define PACING_HOLDER_MAX 128
/* Length of a holder made by pacing_new_holder, without the NUL. */
#define PACING_HOLDER_RANDOM_LEN 32
/* Most halvings of the rate; the floor usually stops them sooner. */
#define PACING_PENALTY_LEVEL_MAX 20

/* Limits of one provider. */
typedef struct pacing_limits {
	double rate;          /* requests per second across all workers, > 0 */
	long burst;           /* bucket size, >= 1 */
	long max_concurrency; /* requests in flight across all workers, >= 1 */
	double min_rate;      /* rate floor under penalties; 0 means rate / 16 */
	long penalty_ms;      /* how long a 429 lowers the rate; 0 means 60000 */
} pacing_limits;

/* Limits of provider P from the config, with the default floor and penalty time. */
pacing_limits pacing_limits_from_config(const config_provider *p);

/* What a pacing call returns; which fields are set depends on the call. */
typedef struct pacing_result {
	queue_error error;     /* error.status is QUEUE_OK on success */
	bool granted;          /* take, acquire, renew: the request may go / the slot is held */
	long long wait_ms;     /* take: when not granted, the wait until one token is there;
	                          acquire: when not granted, the time until the oldest slot
	                          lease runs out (an upper bound: slots are usually released
	                          sooner) */
	double rate;           /* take, penalize: the effective rate in requests per second */
	long long penalty_level; /* take, penalize: the rate is divided by 2^penalty_level */
	long long in_flight;   /* acquire: slots held after the call */
} pacing_result;

typedef void (*pacing_cb)(void *arg, pacing_result *result);

/*
 * Take one token from PROVIDER's bucket. Result: granted, or wait_ms; rate
 * and penalty_level. A refused take changes nothing but the refill time.
 */
queue_status pacing_take(queue *q, const char *provider, const pacing_limits *limits,
                         pacing_cb cb, void *arg, queue_error *err);

/*
 * Record a 429 from PROVIDER: raise the penalty level by one (until the rate
 * reaches min_rate), restart its penalty_ms expiry and empty the bucket.
 * Result: rate and penalty_level after the call.
 * NOTE: every 429 counts, so a burst of concurrent 429s lowers the rate to
 * the floor at once.
 */
queue_status pacing_penalize(queue *q, const char *provider, const pacing_limits *limits,
                             pacing_cb cb, void *arg, queue_error *err);

/*
 * Take an in-flight slot of PROVIDER for HOLDER until LEASE_MS from now.
 * Expired leases are dropped first, so a crashed holder's slot comes back
 * after its lease. A holder that already has a slot gets its lease extended.
 * Result: granted, in_flight, and wait_ms when refused.
 */
queue_status pacing_acquire(queue *q, const char *provider, const pacing_limits *limits,
                            const char *holder, long lease_ms, pacing_cb cb, void *arg,
                            queue_error *err);

/*
 * Extend HOLDER's slot to LEASE_MS from now. Result: granted is false when
 * the slot was released or its lease ran out (the slot may be someone
 * else's now: acquire again).
 */
queue_status pacing_renew(queue *q, const char *provider, const char *holder, long lease_ms,
                          pacing_cb cb, void *arg, queue_error *err);

/* Give HOLDER's slot back. Result: granted is true when it was still held. */
queue_status pacing_release(queue *q, const char *provider, const char *holder, pacing_cb cb,
                            void *arg, queue_error *err);

/*
 * Write a random holder id (PACING_HOLDER_RANDOM_LEN hex digits) into
 * HOLDER. Returns false when the system has no randomness to give.
 */
bool pacing_new_holder(char holder[PACING_HOLDER_RANDOM_LEN + 1]);

#endif
