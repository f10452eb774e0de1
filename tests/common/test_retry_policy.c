/* Retry policy: every row of the outcome table, and the backoff bounds. */
#include <criterion/criterion.h>

#include "common/retry_policy.h"

static uint64_t fixed_value;
static uint64_t fixed_random(void *arg)
{
	(void)arg;
	return fixed_value;
}

static const retry_backoff test_backoff = {
	.base_ms = 1000, .cap_ms = 60000, .random = fixed_random, .random_arg = NULL};

/* Input for attempt 1 of 5 with nothing special set. */
static retry_input input(dc_status status, long http_status)
{
	retry_input in = {.status = status, .http_status = http_status, .retry_after_s = -1,
	                  .attempt = 1, .max_attempts = 5};
	return in;
}

static void expect(const retry_input *in, retry_action action, const char *reason)
{
	retry_decision d = retry_classify(in, &test_backoff);
	cr_assert_eq(d.action, action, "status %s http %ld: got %s, expected %s",
	             dc_status_name(in->status), in->http_status, retry_action_name(d.action),
	             retry_action_name(action));
	cr_assert_str_eq(d.reason, reason);
}

Test(retry, success_succeeds)
{
	retry_input in = input(DC_OK, 204);
	expect(&in, RETRY_SUCCEED, "succeeded");
}

Test(retry, conflict_without_force_ends)
{
	retry_input in = input(DC_ERR_CONFLICT, 409);
	expect(&in, RETRY_CONFLICT, "conflict");
}

Test(retry, conflict_with_force_retries_once)
{
	retry_input in = input(DC_ERR_CONFLICT, 409);
	in.force_allowed = true;
	expect(&in, RETRY_FORCE_RETRY, "conflict");
	in.force_used = true;
	expect(&in, RETRY_CONFLICT, "conflict");
}

Test(retry, unauthorized_refreshes_then_reauthorizes)
{
	retry_input in = input(DC_ERR_UNAUTHORIZED, 401);
	expect(&in, RETRY_REFRESH_AND_RETRY, "unauthorized");
	in.refreshed = true;
	expect(&in, RETRY_REAUTHORIZE, "unauthorized");
}

Test(retry, rate_limit_honors_retry_after)
{
	retry_input in = input(DC_ERR_RATE_LIMITED, 429);
	in.retry_after_s = 30;
	fixed_value = 0;
	retry_decision d = retry_classify(&in, &test_backoff);
	cr_assert_eq(d.action, RETRY_RESCHEDULE_NO_ATTEMPT);
	cr_assert_eq(d.delay_ms, 30000);
	cr_assert_str_eq(d.reason, "rate_limited");
}

Test(retry, rate_limit_takes_longer_backoff)
{
	retry_input in = input(DC_ERR_RATE_LIMITED, 503);
	in.retry_after_s = 1;
	in.reschedules = 3; /* ceiling 8000 ms */
	fixed_value = UINT64_MAX; /* UINT64_MAX % 8001 */
	retry_decision d = retry_classify(&in, &test_backoff);
	cr_assert_eq(d.action, RETRY_RESCHEDULE_NO_ATTEMPT);
	cr_assert_eq(d.delay_ms, (long)(UINT64_MAX % 8001));
	cr_assert_gt(d.delay_ms, 1000);
}

Test(retry, rate_limit_caps_retry_after)
{
	retry_input in = input(DC_ERR_RATE_LIMITED, 429);
	in.retry_after_s = 86400 * 30;
	fixed_value = 0;
	retry_decision d = retry_classify(&in, &test_backoff);
	cr_assert_eq(d.delay_ms, RETRY_AFTER_MAX_S * 1000L);
}

Test(retry, rate_limit_without_header_backs_off)
{
	retry_input in = input(DC_ERR_RATE_LIMITED, 429);
	fixed_value = 700;
	retry_decision d = retry_classify(&in, &test_backoff);
	cr_assert_eq(d.action, RETRY_RESCHEDULE_NO_ATTEMPT);
	cr_assert_eq(d.delay_ms, 700);
}

Test(retry, rate_limit_forever_fails)
{
	retry_input in = input(DC_ERR_RATE_LIMITED, 429);
	in.reschedules = RETRY_RESCHEDULES_MAX;
	expect(&in, RETRY_FAIL, "rate_limited_too_often");
}

Test(retry, transient_backs_off_then_fails)
{
	retry_input in = input(DC_ERR_TRANSIENT, 502);
	fixed_value = 123;
	retry_decision d = retry_classify(&in, &test_backoff);
	cr_assert_eq(d.action, RETRY_BACKOFF);
	cr_assert_eq(d.delay_ms, 123);
	cr_assert_str_eq(d.reason, "transient");

	in.attempt = 5;
	expect(&in, RETRY_FAIL, "attempts_exhausted");
}

Test(retry, timeout_without_response_backs_off)
{
	retry_input in = input(DC_ERR_TRANSIENT, 0);
	expect(&in, RETRY_BACKOFF, "transient");
}

Test(retry, http_5xx_backs_off)
{
	retry_input in = input(DC_ERR_HTTP, 500);
	expect(&in, RETRY_BACKOFF, "transient");
	in.attempt = 5;
	expect(&in, RETRY_FAIL, "attempts_exhausted");
}

Test(retry, client_errors_fail_at_once)
{
	static const long statuses[] = {400, 403, 404, 405, 418, 422};
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		retry_input in = input(DC_ERR_HTTP, statuses[i]);
		expect(&in, RETRY_FAIL, "http_error");
	}
}

Test(retry, grant_rejected_rereads_first)
{
	static const char *const errors[] = {"invalid_grant", "invalid_request"};
	for (size_t i = 0; i < 2; i++) {
		retry_input in = input(DC_ERR_OAUTH, 400);
		in.oauth_error = errors[i];
		expect(&in, RETRY_REREAD_AUTHORIZATION, "invalid_grant");
		in.authorization_unchanged = true;
		expect(&in, RETRY_REAUTHORIZE, "invalid_grant");
	}
}

Test(retry, token_endpoint_outage_backs_off)
{
	retry_input in = input(DC_ERR_OAUTH, 400);
	in.oauth_error = "temporarily_unavailable";
	expect(&in, RETRY_BACKOFF, "token_endpoint_unavailable");
	in.oauth_error = "temporarilly_unavailable";
	expect(&in, RETRY_BACKOFF, "token_endpoint_unavailable");
	in.oauth_error = "server_error";
	expect(&in, RETRY_BACKOFF, "token_endpoint_unavailable");
	in.attempt = 5;
	expect(&in, RETRY_FAIL, "attempts_exhausted");
}

Test(retry, other_oauth_errors_fail)
{
	retry_input in = input(DC_ERR_OAUTH, 401);
	in.oauth_error = "invalid_client";
	expect(&in, RETRY_FAIL, "oauth_error");
}

Test(retry, permanent_statuses_fail)
{
	static const struct {
		dc_status status;
		const char *reason;
	} cases[] = {
		{DC_ERR_INVALID_ARGUMENT, "invalid_argument"},
		{DC_ERR_NOT_SUPPORTED, "not_supported"},
		{DC_ERR_INVALID_RESPONSE, "invalid_response"},
		{DC_ERR_AMBIGUOUS, "ambiguous_discovery"},
		{DC_ERR_HOST_REJECTED, "host_rejected"},
		{DC_ERR_API_MISMATCH, "api_mismatch"},
		{DC_ERR_ASYNC_NOT_SUPPORTED, "async_not_supported"},
		{DC_ERR_NOT_IMPLEMENTED, "not_implemented"},
		{DC_ERR_NOT_APPLIED, "not_applied"},
		{DC_ERR_TOO_LARGE, "response_too_large"},
		{DC_ERR_TEMPLATE_NOT_SUPPORTED, "template_not_supported"},
		{DC_ERR_INTERNAL, "internal_error"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		retry_input in = input(cases[i].status, 0);
		expect(&in, RETRY_FAIL, cases[i].reason);
	}
}

Test(retry, out_of_memory_backs_off)
{
	retry_input in = input(DC_ERR_NOMEM, 0);
	expect(&in, RETRY_BACKOFF, "out_of_memory");
	in.attempt = 5;
	expect(&in, RETRY_FAIL, "out_of_memory");
}

Test(retry, every_status_has_a_row)
{
	for (int s = 0; s < DC_STATUS_COUNT; s++) {
		retry_input in = input((dc_status)s, 0);
		retry_decision d = retry_classify(&in, &test_backoff);
		cr_assert_str_neq(d.reason, "unknown_status", "no row for %s",
		                  dc_status_name((dc_status)s));
	}
	retry_input in = input(DC_STATUS_COUNT, 0);
	expect(&in, RETRY_FAIL, "unknown_status");
}

Test(retry, terminal_actions)
{
	cr_assert(retry_action_is_terminal(RETRY_SUCCEED));
	cr_assert(retry_action_is_terminal(RETRY_CONFLICT));
	cr_assert(retry_action_is_terminal(RETRY_FAIL));
	cr_assert(retry_action_is_terminal(RETRY_REAUTHORIZE));
	cr_assert_not(retry_action_is_terminal(RETRY_BACKOFF));
	cr_assert_not(retry_action_is_terminal(RETRY_FORCE_RETRY));
	cr_assert_str_eq(retry_action_name(RETRY_RESCHEDULE_NO_ATTEMPT), "reschedule_no_attempt");
	cr_assert_str_eq(retry_action_name(RETRY_ACTION_COUNT), "unknown");
}

Test(retry, backoff_ceiling_doubles_to_cap)
{
	cr_assert_eq(retry_backoff_ceiling(&test_backoff, 0), 1000);
	cr_assert_eq(retry_backoff_ceiling(&test_backoff, 1), 1000);
	cr_assert_eq(retry_backoff_ceiling(&test_backoff, 2), 2000);
	cr_assert_eq(retry_backoff_ceiling(&test_backoff, 6), 32000);
	cr_assert_eq(retry_backoff_ceiling(&test_backoff, 7), 60000);
	cr_assert_eq(retry_backoff_ceiling(&test_backoff, 1000000), 60000);

	retry_backoff huge = {.base_ms = 1, .cap_ms = 0x7fffffffffffffffL};
	cr_assert_eq(retry_backoff_ceiling(&huge, 200), 0x7fffffffffffffffL);
}

Test(retry, jitter_stays_in_bounds)
{
	fixed_value = 0;
	cr_assert_eq(retry_backoff_delay(&test_backoff, 3), 0);
	fixed_value = 4000;
	cr_assert_eq(retry_backoff_delay(&test_backoff, 3), 4000);
	fixed_value = 4001;
	cr_assert_eq(retry_backoff_delay(&test_backoff, 3), 0);

	/* The default random source stays within [0, ceiling] too. */
	retry_backoff real = {.base_ms = 100, .cap_ms = 1000};
	long max_seen = 0;
	for (int i = 0; i < 2000; i++) {
		long d = retry_backoff_delay(&real, 10);
		cr_assert_geq(d, 0);
		cr_assert_leq(d, 1000);
		if (d > max_seen)
			max_seen = d;
	}
	cr_assert_gt(max_seen, 500, "jitter never went above half the ceiling");
}
