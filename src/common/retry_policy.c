/*
 * Outcome classification as data: the first row whose status matches and
 * whose conditions all hold decides the action. Rows are ordered from the
 * most specific to the catch-all of each status.
 */
#include "retry_policy.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Conditions a row may require; a row's mask lists all that must hold. */
enum {
	COND_FORCE_AVAILABLE = 1 << 0,  /* on_conflict=force and force not yet used */
	COND_NOT_REFRESHED = 1 << 1,    /* no refresh after a 401 yet */
	COND_GRANT_REJECTED = 1 << 2,   /* oauth error invalid_grant or invalid_request */
	COND_NOT_REREAD = 1 << 3,       /* the authorization row was not re-read yet */
	COND_OAUTH_TRANSIENT = 1 << 4,  /* token endpoint overloaded or failing */
	COND_HTTP_5XX = 1 << 5,
	COND_ATTEMPTS_LEFT = 1 << 6,    /* attempt < max_attempts */
	COND_RESCHEDULES_LEFT = 1 << 7, /* reschedules < RETRY_RESCHEDULES_MAX */
};

typedef struct policy_row {
	dc_status status;
	unsigned conditions;
	retry_action action;
	const char *reason;
} policy_row;

static const policy_row policy_table[] = {
	{DC_OK, 0, RETRY_SUCCEED, "succeeded"},

	{DC_ERR_CONFLICT, COND_FORCE_AVAILABLE, RETRY_FORCE_RETRY, "conflict"},
	{DC_ERR_CONFLICT, 0, RETRY_CONFLICT, "conflict"},

	{DC_ERR_UNAUTHORIZED, COND_NOT_REFRESHED, RETRY_REFRESH_AND_RETRY, "unauthorized"},
	{DC_ERR_UNAUTHORIZED, 0, RETRY_REAUTHORIZE, "unauthorized"},

	{DC_ERR_RATE_LIMITED, COND_RESCHEDULES_LEFT, RETRY_RESCHEDULE_NO_ATTEMPT, "rate_limited"},
	{DC_ERR_RATE_LIMITED, 0, RETRY_FAIL, "rate_limited_too_often"},

	{DC_ERR_TRANSIENT, COND_ATTEMPTS_LEFT, RETRY_BACKOFF, "transient"},
	{DC_ERR_TRANSIENT, 0, RETRY_FAIL, "attempts_exhausted"},

	{DC_ERR_OAUTH, COND_GRANT_REJECTED | COND_NOT_REREAD, RETRY_REREAD_AUTHORIZATION,
	 "invalid_grant"},
	{DC_ERR_OAUTH, COND_GRANT_REJECTED, RETRY_REAUTHORIZE, "invalid_grant"},
	{DC_ERR_OAUTH, COND_OAUTH_TRANSIENT | COND_ATTEMPTS_LEFT, RETRY_BACKOFF,
	 "token_endpoint_unavailable"},
	{DC_ERR_OAUTH, COND_OAUTH_TRANSIENT, RETRY_FAIL, "attempts_exhausted"},
	{DC_ERR_OAUTH, 0, RETRY_FAIL, "oauth_error"},

	{DC_ERR_HTTP, COND_HTTP_5XX | COND_ATTEMPTS_LEFT, RETRY_BACKOFF, "transient"},
	{DC_ERR_HTTP, COND_HTTP_5XX, RETRY_FAIL, "attempts_exhausted"},
	{DC_ERR_HTTP, 0, RETRY_FAIL, "http_error"},

	{DC_ERR_NOMEM, COND_ATTEMPTS_LEFT, RETRY_BACKOFF, "out_of_memory"},
	{DC_ERR_NOMEM, 0, RETRY_FAIL, "out_of_memory"},

	{DC_ERR_INVALID_ARGUMENT, 0, RETRY_FAIL, "invalid_argument"},
	{DC_ERR_NOT_SUPPORTED, 0, RETRY_FAIL, "not_supported"},
	{DC_ERR_INVALID_RESPONSE, 0, RETRY_FAIL, "invalid_response"},
	{DC_ERR_AMBIGUOUS, 0, RETRY_FAIL, "ambiguous_discovery"},
	{DC_ERR_HOST_REJECTED, 0, RETRY_FAIL, "host_rejected"},
	{DC_ERR_API_MISMATCH, 0, RETRY_FAIL, "api_mismatch"},
	{DC_ERR_ASYNC_NOT_SUPPORTED, 0, RETRY_FAIL, "async_not_supported"},
	{DC_ERR_NOT_IMPLEMENTED, 0, RETRY_FAIL, "not_implemented"},
	{DC_ERR_NOT_APPLIED, 0, RETRY_FAIL, "not_applied"},
	{DC_ERR_TOO_LARGE, 0, RETRY_FAIL, "response_too_large"},
	{DC_ERR_TEMPLATE_NOT_SUPPORTED, 0, RETRY_FAIL, "template_not_supported"},
	{DC_ERR_INTERNAL, 0, RETRY_FAIL, "internal_error"},
};

static const char *const action_names[RETRY_ACTION_COUNT] = {
	[RETRY_SUCCEED] = "succeed",
	[RETRY_CONFLICT] = "conflict",
	[RETRY_FORCE_RETRY] = "force_retry",
	[RETRY_REFRESH_AND_RETRY] = "refresh_and_retry",
	[RETRY_REREAD_AUTHORIZATION] = "reread_authorization",
	[RETRY_RESCHEDULE_NO_ATTEMPT] = "reschedule_no_attempt",
	[RETRY_BACKOFF] = "retry_backoff",
	[RETRY_FAIL] = "fail",
	[RETRY_REAUTHORIZE] = "reauthorize",
};

const char *retry_action_name(retry_action action)
{
	if ((unsigned)action >= RETRY_ACTION_COUNT)
		return "unknown";
	return action_names[action];
}

bool retry_action_is_terminal(retry_action action)
{
	return action == RETRY_SUCCEED || action == RETRY_CONFLICT || action == RETRY_FAIL ||
	       action == RETRY_REAUTHORIZE;
}

static bool oauth_error_is(const retry_input *in, const char *name)
{
	return in->oauth_error != NULL && strcmp(in->oauth_error, name) == 0;
}

/* Returns the mask of conditions that hold for in. */
static unsigned conditions_of(const retry_input *in)
{
	unsigned mask = 0;

	if (in->force_allowed && !in->force_used)
		mask |= COND_FORCE_AVAILABLE;
	if (!in->refreshed)
		mask |= COND_NOT_REFRESHED;
	if (oauth_error_is(in, "invalid_grant") || oauth_error_is(in, "invalid_request"))
		mask |= COND_GRANT_REJECTED;
	if (!in->authorization_unchanged)
		mask |= COND_NOT_REREAD;

	/* The spec spells the error "temporarilly_unavailable" in one place; accept both. */
	if (oauth_error_is(in, "server_error") || oauth_error_is(in, "temporarily_unavailable") ||
	    oauth_error_is(in, "temporarilly_unavailable") || in->http_status >= 500)
		mask |= COND_OAUTH_TRANSIENT;
	if (in->http_status >= 500 && in->http_status <= 599)
		mask |= COND_HTTP_5XX;
	if (in->attempt < in->max_attempts)
		mask |= COND_ATTEMPTS_LEFT;
	if (in->reschedules < RETRY_RESCHEDULES_MAX)
		mask |= COND_RESCHEDULES_LEFT;
	return mask;
}

static uint64_t default_random(void *arg)
{
	(void)arg;
	uint64_t value = 0;
	if (getrandom(&value, sizeof(value), 0) == (ssize_t)sizeof(value))
		return value;

	/*
	 * getrandom fails for 8 bytes only before the entropy pool is ready or on
	 * a signal, so the clock is a rare fallback that only spreads the jitter.
	 */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	value = (uint64_t)ts.tv_nsec * 6364136223846793005ULL + (uint64_t)ts.tv_sec;
	return value ^ (value >> 29);
}

long retry_backoff_ceiling(const retry_backoff *backoff, int attempt)
{
	long base = backoff->base_ms > 0 ? backoff->base_ms : 1;
	long cap = backoff->cap_ms > base ? backoff->cap_ms : base;

	/* Double step by step so the product never overflows. */
	long ceiling = base;
	for (int i = 1; i < attempt && ceiling < cap; i++) {
		if (ceiling > cap / 2) {
			ceiling = cap;
			break;
		}
		ceiling *= 2;
	}
	return ceiling < cap ? ceiling : cap;
}

long retry_backoff_delay(const retry_backoff *backoff, int attempt)
{
	long ceiling = retry_backoff_ceiling(backoff, attempt);
	retry_random_fn draw = backoff->random != NULL ? backoff->random : default_random;
	uint64_t value = draw(backoff->random_arg);
	return (long)(value % ((uint64_t)ceiling + 1));
}

retry_decision retry_classify(const retry_input *in, const retry_backoff *backoff)
{
	retry_decision decision = {.action = RETRY_FAIL, .delay_ms = 0, .reason = "unknown_status"};
	unsigned mask = conditions_of(in);

	for (size_t i = 0; i < sizeof(policy_table) / sizeof(policy_table[0]); i++) {
		const policy_row *row = &policy_table[i];
		if (row->status != in->status || (row->conditions & mask) != row->conditions)
			continue;
		decision.action = row->action;
		decision.reason = row->reason;
		break;
	}

	if (decision.action == RETRY_BACKOFF) {
		decision.delay_ms = retry_backoff_delay(backoff, in->attempt);
	} else if (decision.action == RETRY_RESCHEDULE_NO_ATTEMPT) {
		long delay = retry_backoff_delay(backoff, in->reschedules + 1);
		long after_s = in->retry_after_s;
		if (after_s > RETRY_AFTER_MAX_S)
			after_s = RETRY_AFTER_MAX_S;
		if (after_s >= 0 && after_s * 1000 > delay)
			delay = after_s * 1000;
		decision.delay_ms = delay;
	}
	return decision;
}
