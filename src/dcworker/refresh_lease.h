/*
 * The PostgreSQL side of a race-free token refresh. With rotating refresh
 * tokens, two concurrent refreshes are fatal because the loser replays a
 * spent token. So one worker at a time refreshes an authorization:
 *
 *   1. refresh_lease_claim: a conditional UPDATE ... RETURNING sets
 *      lease_owner and lease_until when no unexpired lease exists and the
 *      row still has the version the caller read.
 *   2. The owner calls the token endpoint, with no transaction open.
 *   3. refresh_lease_store writes the new ciphertexts, fenced on the lease
 *      owner and the version, bumps the version and clears the lease. After
 *      a failed call, refresh_lease_release clears the lease instead and
 *      leaves the tokens alone.
 *   Workers that did not get the lease poll refresh_lease_read until the
 *   version moves on or the lease is gone.
 *
 * Each call is one SQL statement through the job store's pool
 * (job_store_submit), so the callback contract is the job store's. A call
 * that fails before queueing returns the error and never calls its callback.
 * Otherwise the callback runs exactly once.
 */
#ifndef DCWORKER_REFRESH_LEASE_H
#define DCWORKER_REFRESH_LEASE_H

#include <stddef.h>

#include "job_store.h"

/* Maximum lease owner length; owners are printable ASCII. */
#define REFRESH_LEASE_OWNER_MAX 200
/* Maximum lease: ten minutes, far above any token endpoint timeout. */
#define REFRESH_LEASE_MAX_MS 600000L

/* What a call found or did. */
typedef enum refresh_lease_outcome {
	REFRESH_LEASE_ACQUIRED = 0, /* claim: the caller holds the lease; call the token endpoint */
	REFRESH_LEASE_BUSY,         /* claim, read: another owner holds an unexpired lease */
	REFRESH_LEASE_CHANGED,      /* claim: the version moved on, so the tokens were rotated
	                               already; use the returned row */
	REFRESH_LEASE_INACTIVE,     /* claim: the authorization is not active */
	REFRESH_LEASE_FREE,         /* read: no unexpired lease */
	REFRESH_LEASE_STORED,       /* store: tokens written, version bumped, lease cleared */
	REFRESH_LEASE_RELEASED      /* release: lease cleared, tokens untouched */
} refresh_lease_outcome;

/* Return the stable name of an outcome ("REFRESH_LEASE_BUSY"); never NULL. */
const char *refresh_lease_outcome_name(refresh_lease_outcome outcome);

/*
 * A call's result. On error.status JOB_STORE_OK, outcome is what
 * happened. AUTHORIZATION belongs to the callback (set it to NULL to keep
 * it); the rest lives until the callback returns.
 */
typedef struct refresh_lease_result {
	job_store_error error;
	refresh_lease_outcome outcome;
	job_authorization *authorization; /* claim, read: the row as the statement saw it */
	long long version;                /* the row's version; store: the new version */
	long long lease_remaining_ms;     /* claim, read: time left on the lease, 0 when none */
} refresh_lease_result;

typedef void (*refresh_lease_cb)(void *arg, refresh_lease_result *result);

/*
 * Claim the refresh lease of authorization ID for OWNER for LEASE_MS, when
 * the row is active, still has VERSION, and no other owner holds an
 * unexpired lease. OWNER may claim again while it holds the lease. Outcome:
 * ACQUIRED, BUSY, CHANGED or INACTIVE, with the row; NOT_FOUND when absent.
 * NOTE: a claimer that waited on a concurrent winner's row lock sees the row
 * as it was before that winner, so it reports BUSY with
 * lease_remaining_ms 0; poll with refresh_lease_read.
 */
job_store_status refresh_lease_claim(job_store *store, const char *id, const char *owner,
                                     long long version, long lease_ms, refresh_lease_cb cb,
                                     void *arg, job_store_error *err);

/* New tokens for refresh_lease_store: ciphertexts from token_crypto. */
typedef struct refresh_lease_tokens {
	const char *token_type;
	const unsigned char *access_token;
	size_t access_token_len;
	const unsigned char *refresh_token; /* NULL keeps the stored refresh token */
	size_t refresh_token_len;
	long long expires_at_ms;            /* access token expiry, Unix time in ms; -1 unknown */
} refresh_lease_tokens;

/*
 * Store TOKENS for authorization ID when OWNER still holds its lease and the
 * row still has VERSION: bump the version, clear the lease and record the
 * refresh token's use. An expired lease that no other owner took over
 * still counts, because the provider already spent the old refresh token.
 * Outcome STORED
 * with the new version. Errors: LEASE_LOST when another owner took the
 * lease, VERSION_CONFLICT when the version moved on, NOT_FOUND when absent.
 * Nothing is written on an error.
 */
job_store_status refresh_lease_store(job_store *store, const char *id, const char *owner,
                                     long long version, const refresh_lease_tokens *tokens,
                                     refresh_lease_cb cb, void *arg, job_store_error *err);

/*
 * Clear OWNER's lease of authorization ID after a failed refresh, without
 * touching the tokens. Outcome RELEASED; LEASE_LOST when OWNER does not hold
 * it.
 */
job_store_status refresh_lease_release(job_store *store, const char *id, const char *owner,
                                       refresh_lease_cb cb, void *arg, job_store_error *err);

/* Re-read authorization ID for a waiter. Outcome BUSY or FREE, with the row. */
job_store_status refresh_lease_read(job_store *store, const char *id, refresh_lease_cb cb,
                                    void *arg, job_store_error *err);

#endif
