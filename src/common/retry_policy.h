/*
 * What to do after a call to a DNS provider, as a table (retry_policy.c):
 *
 *   outcome                                  action
 *   2xx                                      succeed
 *   409, on_conflict=fail or force spent     conflict (terminal)
 *   409, on_conflict=force                   force_retry (once, force=1, now)
 *   401, not yet refreshed                   refresh_and_retry (once)
 *   401 after a refresh                      reauthorize
 *   429, or 503 with Retry-After             reschedule_no_attempt, after
 *                                            max(Retry-After, backoff)
 *   5xx, timeouts, connection errors         retry_backoff until max_attempts,
 *                                            then fail
 *   token endpoint invalid_grant or          reread_authorization (another
 *   invalid_request                          worker may have rotated the
 *                                            tokens); if the row is unchanged,
 *                                            reauthorize
 *   400, 403, 404, other 4xx, bad input,     fail at once
 *   unsupported, host guard, API mismatch
 *
 * Backoff is capped exponential with full jitter: a delay drawn uniformly
 * from [0, min(cap, base * 2^(attempt-1))].
 */
#ifndef DC_COMMON_RETRY_POLICY_H
#define DC_COMMON_RETRY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "domainconnect.h"

/* Reschedules without an attempt (rate limits) allowed before a job fails. */
#define RETRY_RESCHEDULES_MAX 100
/* Longest Retry-After honored; longer values are cut to this. */
#define RETRY_AFTER_MAX_S 3600

/* The action a job takes next. */
typedef enum retry_action {
	RETRY_SUCCEED = 0,           /* the call succeeded */
	RETRY_CONFLICT,              /* terminal: records conflict and force is not allowed */
	RETRY_FORCE_RETRY,           /* call again now with force=1 */
	RETRY_REFRESH_AND_RETRY,     /* refresh the access token, then call again now */
	RETRY_REREAD_AUTHORIZATION,  /* re-read the authorization row; retry if it changed,
	                                else classify again with authorization_unchanged */
	RETRY_RESCHEDULE_NO_ATTEMPT, /* wait delay_ms; the attempt is not counted */
	RETRY_BACKOFF,               /* wait delay_ms; the attempt is counted */
	RETRY_FAIL,                  /* terminal: failed */
	RETRY_REAUTHORIZE,           /* terminal: the owner must consent again */
	RETRY_ACTION_COUNT
} retry_action;

/* Outcome of one call and the job's retry state. */
typedef struct retry_input {
	dc_status status;         /* from the library call */
	long http_status;         /* 0 when no response was received */
	long retry_after_s;       /* -1 when absent */
	const char *oauth_error;  /* token endpoint "error", or NULL */
	int attempt;              /* 1 for the first attempt */
	int max_attempts;
	int reschedules;          /* reschedules without an attempt so far */
	bool force_allowed;       /* on_conflict=force */
	bool force_used;          /* this call already had force=1 */
	bool refreshed;           /* the token was already refreshed after a 401 */
	bool authorization_unchanged; /* a re-read found the same row version */
} retry_input;

/* The decision. */
typedef struct retry_decision {
	retry_action action;
	long delay_ms;       /* for RESCHEDULE_NO_ATTEMPT and BACKOFF, else 0 */
	const char *reason;  /* stable code for results and logs, e.g. "rate_limited" */
} retry_decision;

/* Uniform random 64-bit values; replaceable for tests. */
typedef uint64_t (*retry_random_fn)(void *arg);

/* Backoff parameters. random NULL uses getrandom(2). */
typedef struct retry_backoff {
	long base_ms;
	long cap_ms;
	retry_random_fn random;
	void *random_arg;
} retry_backoff;

/*
 * Classifies in per the table above and computes delays with backoff.
 * Pure apart from the random source; never fails.
 */
retry_decision retry_classify(const retry_input *in, const retry_backoff *backoff);

/*
 * Returns a delay drawn uniformly from [0, min(cap, base * 2^(attempt-1))]
 * in milliseconds; attempt values below 1 count as 1.
 */
long retry_backoff_delay(const retry_backoff *backoff, int attempt);

/* Returns the upper bound of retry_backoff_delay for attempt. */
long retry_backoff_ceiling(const retry_backoff *backoff, int attempt);

/* Returns the stable name of an action ("retry_backoff"); never NULL. */
const char *retry_action_name(retry_action action);

/* True for the actions that end a job. */
bool retry_action_is_terminal(retry_action action);

#endif /* DC_COMMON_RETRY_POLICY_H */
