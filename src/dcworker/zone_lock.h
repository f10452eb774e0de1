/*
 * Serialization per domain: at most one job per (DNS provider, zone) at the
 * provider at a time, across all worker processes and machines.
 *
 * Key: {dc}:zone:<provider>:<zone>, a string holding the owner token of the
 * holder, set with SET NX PX. Release deletes the key and renew extends it
 * only while it still holds the caller's token (compare-and-delete and
 * compare-and-pexpire in Lua), so a holder whose lease ran out cannot remove
 * or extend the next holder's lock. A crashed holder blocks its zone for at
 * most the lease.
 *
 * The commands run on the queue's Redis connection (queue_conn_send), so the
 * callback contract is the queue's. A call that fails before sending returns
 * the error and never calls its callback. A call that returns QUEUE_OK calls
 * it exactly once, with QUEUE_ERR_CLOSED when queue_free runs first. The
 * lock object may be freed while a call is pending.
 */
#ifndef DCWORKER_ZONE_LOCK_H
#define DCWORKER_ZONE_LOCK_H

#include <stdbool.h>

#include "queue.h"

/* Maximum provider name length. Names use only [A-Za-z0-9_.-]. */
#define ZONE_LOCK_PROVIDER_MAX 64
/* Maximum zone length: a DNS name in text form. */
#define ZONE_LOCK_ZONE_MAX 253
/* Hex digits of the random owner token. */
#define ZONE_LOCK_TOKEN_LEN 32
/* Maximum lease: one hour. */
#define ZONE_LOCK_LEASE_MAX_MS 3600000L

/* One (provider, zone) lock as seen by one would-be holder. */
typedef struct zone_lock zone_lock;

/* What a lock call returns. */
typedef struct zone_lock_result {
	queue_error error;  /* error.status is QUEUE_OK on success */
	bool held;          /* acquire, renew: the caller holds the lock now;
	                       release: the caller held it and it is deleted */
	long long wait_ms;  /* acquire refused: remaining lease of the holder (-1: no expiry) */
} zone_lock_result;

typedef void (*zone_lock_cb)(void *arg, zone_lock_result *result);

/*
 * Create the lock of ZONE at PROVIDER with a fresh random owner token.
 * ZONE is compared as given, so callers pass the normalized (lower-case,
 * A-label) zone. Returns NULL and fills ERR on an invalid name, no
 * randomness or no memory. Free with zone_lock_free.
 */
zone_lock *zone_lock_new(const char *provider, const char *zone, queue_error *err);

/* Free LOCK; accepts NULL. Does not release it in Redis. */
void zone_lock_free(zone_lock *lock);

/* The Redis key of LOCK. */
const char *zone_lock_key(const zone_lock *lock);

/* Take LOCK for LEASE_MS unless another token holds it. Result: held, wait_ms. */
queue_status zone_lock_acquire(queue *q, const zone_lock *lock, long lease_ms, zone_lock_cb cb,
                               void *arg, queue_error *err);

/* Extend LOCK to LEASE_MS from now while it holds our token. Result: held. */
queue_status zone_lock_renew(queue *q, const zone_lock *lock, long lease_ms, zone_lock_cb cb,
                             void *arg, queue_error *err);

/* Delete LOCK while it holds our token. Result: held (true when deleted). */
queue_status zone_lock_release(queue *q, const zone_lock *lock, zone_lock_cb cb, void *arg,
                               queue_error *err);

#endif
