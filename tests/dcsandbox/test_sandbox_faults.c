/* dcsandbox fault injection: every fault flag, per provider, deterministic with --seed. */
#include "test_sandbox_harness.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SETTINGS "/v2/" SBH_ZONE "/settings"
#define APPLY_WEB "/v2/domainTemplates/providers/exampleservice.test/services/web/apply"

TestSuite(sandbox_faults, .timeout = 90);

static sbh *start_with(const char *fault)
{
	const char *args[] = {"--fault", fault};
	sbh *h = sbh_start_default(args, 2);
	cr_assert_not_null(h, "dcsandbox did not start with --fault %s", fault);
	return h;
}

static long get_status(sbh *h, const char *host, const char *path)
{
	sbh_resp r;
	sbh_request(h, "GET", host, path, NULL, NULL, NULL, &r);
	long status = r.status;
	sbh_resp_clear(&r);
	return status;
}

Test(sandbox_faults, error_rate_all_500)
{
	sbh *h = start_with("errors=500:1");
	for (int i = 0; i < 5; i++)
		cr_expect_eq(get_status(h, SBH_ALPHA_HOST, SETTINGS), 500);
	sbh_free(h);
}

Test(sandbox_faults, error_rate_per_provider)
{
	sbh *h = start_with(SBH_BETA_ID ":errors=503:1");
	cr_expect_eq(get_status(h, SBH_ALPHA_HOST, SETTINGS), 200);
	sbh_resp r;
	sbh_request(h, "GET", SBH_BETA_HOST, SETTINGS, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 503);
	cr_expect_not_null(r.retry_after);
	sbh_resp_clear(&r);
	sbh_free(h);
}

Test(sandbox_faults, error_rate_mixed_share)
{
	sbh *h = start_with("errors=500:0.3,503:0.2");
	int ok = 0, e500 = 0, e503 = 0;
	for (int i = 0; i < 60; i++) {
		long s = get_status(h, SBH_ALPHA_HOST, SETTINGS);
		ok += s == 200;
		e500 += s == 500;
		e503 += s == 503;
	}
	cr_expect_eq(ok + e500 + e503, 60);
	cr_expect(e500 > 5 && e500 < 35, "500 count %d", e500);
	cr_expect(e503 > 2 && e503 < 25, "503 count %d", e503);
	sbh_free(h);
}

/* Return the status sequence of N settings calls as a string of digits. */
static void status_sequence(const char *seed, char *out, size_t n)
{
	const char *args[] = {"--fault", "errors=500:0.5", "--seed", seed};
	sbh *h = sbh_start_default(args, 4);
	cr_assert_not_null(h);
	for (size_t i = 0; i < n; i++)
		out[i] = get_status(h, SBH_ALPHA_HOST, SETTINGS) == 200 ? '2' : '5';
	out[n] = '\0';
	sbh_free(h);
}

Test(sandbox_faults, seed_makes_faults_repeat)
{
	char a[33], b[33], c[33];
	status_sequence("42", a, 32);
	status_sequence("42", b, 32);
	status_sequence("43", c, 32);
	cr_expect_str_eq(a, b);
	cr_expect_str_neq(a, c);
}

Test(sandbox_faults, rate_limit_429_retry_after)
{
	const char *args[] = {"--fault", "errors=429:1", "--fault", "retry_after=7"};
	sbh *h = sbh_start_default(args, 4);
	cr_assert_not_null(h);
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, SETTINGS, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 429);
	cr_expect_str_eq(r.retry_after != NULL ? r.retry_after : "", "7");
	sbh_resp_clear(&r);
	sbh_free(h);
}

Test(sandbox_faults, endpoint_filter_limits_faults)
{
	const char *args[] = {"--fault", "errors=500:1", "--fault", "endpoints=apply,token"};
	sbh *h = sbh_start_default(args, 4);
	cr_assert_not_null(h);
	cr_expect_eq(get_status(h, SBH_ALPHA_HOST, SETTINGS), 200);
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 500);
	sbh_resp_clear(&r);
	sbh_free(h);
}

typedef struct timed_call {
	sbh *h;
	double seconds;
	long status;
} timed_call;

static void *timed_settings(void *arg)
{
	timed_call *c = arg;
	sbh_resp r;
	sbh_request(c->h, "GET", SBH_ALPHA_HOST, SETTINGS, NULL, NULL, NULL, &r);
	c->seconds = r.seconds;
	c->status = r.status;
	sbh_resp_clear(&r);
	return NULL;
}

Test(sandbox_faults, latency_does_not_block_others)
{
	const char *args[] = {"--fault", "latency_ms=400", "--threads", "1"};
	sbh *h = sbh_start_default(args, 4);
	cr_assert_not_null(h);

	/* Eight concurrent calls on one server thread: about 0.4 s each, not 3.2 s in total. */
	pthread_t threads[8];
	timed_call calls[8];
	for (int i = 0; i < 8; i++) {
		calls[i] = (timed_call){.h = h};
		pthread_create(&threads[i], NULL, timed_settings, &calls[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		cr_expect_eq(calls[i].status, 200);
		cr_expect(calls[i].seconds >= 0.39, "call %d took %.3f s", i, calls[i].seconds);
		cr_expect(calls[i].seconds < 1.5, "call %d took %.3f s", i, calls[i].seconds);
	}
	sbh_free(h);
}

typedef struct apply_call {
	sbh *h;
	const char *token;
	const char *path;
	long status;
} apply_call;

static void *run_apply(void *arg)
{
	apply_call *c = arg;
	sbh_resp r;
	sbh_request(c->h, "POST", SBH_ALPHA_HOST, c->path, c->token, NULL, NULL, &r);
	c->status = r.status;
	sbh_resp_clear(&r);
	return NULL;
}

Test(sandbox_faults, latency_records_zone_overlap)
{
	const char *args[] = {"--fault", "latency_ms=300", "--fault", "endpoints=apply"};
	sbh *h = sbh_start_default(args, 4);
	cr_assert_not_null(h);
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "a,b,c");
	cr_assert_not_null(tokens);
	const char *token = json_string_value(json_object_get(tokens, "access_token"));

	/* Three applies to one zone at once, each held 300 ms inside the window. */
	static const char *const paths[] = {
		APPLY_WEB "?domain=" SBH_ZONE "&host=a&ip=192.0.2.1&token=1",
		APPLY_WEB "?domain=" SBH_ZONE "&host=b&ip=192.0.2.2&token=2",
		APPLY_WEB "?domain=" SBH_ZONE "&host=c&ip=192.0.2.3&token=3",
	};
	pthread_t threads[3];
	apply_call calls[3];
	for (int i = 0; i < 3; i++) {
		calls[i] = (apply_call){.h = h, .token = token, .path = paths[i]};
		pthread_create(&threads[i], NULL, run_apply, &calls[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(threads[i], NULL);
		cr_expect_eq(calls[i].status, 200);
	}

	sbh_resp r;
	sbh_request(h, "GET", "localhost", "/admin/overlap", NULL, NULL, NULL, &r);
	json_t *overlap = json_loads(r.body, 0, NULL);
	json_t *zone = json_object_get(json_object_get(overlap, SBH_ALPHA_ID), SBH_ZONE);
	cr_expect_eq(json_integer_value(json_object_get(zone, "max_in_flight")), 3, "%s", r.body);
	cr_expect_eq(json_integer_value(json_object_get(zone, "in_flight")), 0, "%s", r.body);
	cr_expect_eq(json_integer_value(json_object_get(zone, "changes")), 3, "%s", r.body);
	json_decref(overlap);
	sbh_resp_clear(&r);
	json_decref(tokens);
	sbh_free(h);
}

Test(sandbox_faults, token_expiry_limits_tokens)
{
	sbh *h = start_with("token_expiry=1");
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "x");
	cr_assert_not_null(tokens);
	cr_expect_eq(json_integer_value(json_object_get(tokens, "expires_in")), 1);
	const char *token = json_string_value(json_object_get(tokens, "access_token"));
	usleep(1100 * 1000);
	sbh_resp r;
	sbh_request(h, "POST", SBH_ALPHA_HOST, APPLY_WEB "?domain=" SBH_ZONE "&host=x&ip=192.0.2.1&token=1", token,
		NULL, NULL, &r);
	cr_expect_eq(r.status, 401, "%s", r.body);
	sbh_resp_clear(&r);
	json_decref(tokens);
	sbh_free(h);
}

Test(sandbox_faults, drop_closes_connection)
{
	sbh *h = start_with("drop_rate=1");
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, SETTINGS, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 0);
	cr_expect_neq(r.curl_code, 0);
	sbh_resp_clear(&r);
	sbh_request(h, "GET", "localhost", "/admin/counters", NULL, NULL, NULL, &r);
	cr_expect_not_null(strstr(r.body, "\"dropped\":1"), "%s", r.body);
	sbh_resp_clear(&r);
	sbh_free(h);
}

Test(sandbox_faults, slow_body_takes_time)
{
	sbh *h = start_with("slow_body_ms=50");
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, SETTINGS, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	json_t *s = json_loads(r.body, 0, NULL);
	cr_expect_not_null(s, "the slow body arrived incomplete: %s", r.body);
	/* About 300 bytes in 16-byte pieces, 50 ms apart. */
	cr_expect(r.seconds > 0.5, "took %.3f s", r.seconds);
	json_decref(s);
	sbh_resp_clear(&r);
	sbh_free(h);
}

Test(sandbox_faults, redirect_points_elsewhere)
{
	const char *args[] = {"--fault", "redirect_rate=1", "--fault", "redirect_location=https://127.0.0.1:9/moved"};
	sbh *h = sbh_start_default(args, 4);
	cr_assert_not_null(h);
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, SETTINGS, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 302);
	cr_expect_str_eq(r.location != NULL ? r.location : "", "https://127.0.0.1:9/moved");
	sbh_resp_clear(&r);
	sbh_free(h);
}

Test(sandbox_faults, oversize_sends_huge_body)
{
	const char *args[] = {"--fault", "oversize_rate=1", "--fault", "oversize_bytes=3000000"};
	sbh *h = sbh_start_default(args, 4);
	cr_assert_not_null(h);
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, SETTINGS, NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.body_len, 3000000);
	sbh_resp_clear(&r);
	sbh_free(h);
}

Test(sandbox_faults, admin_sets_faults_at_run_time)
{
	sbh *h = sbh_start_default(NULL, 0);
	cr_assert_not_null(h);
	sbh_resp r;
	sbh_request(h, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/faults", NULL, "application/json",
		"{\"errors\":\"502:1\"}", &r);
	cr_expect_eq(r.status, 200, "%s", r.body);
	sbh_resp_clear(&r);
	cr_expect_eq(get_status(h, SBH_ALPHA_HOST, SETTINGS), 502);
	cr_expect_eq(get_status(h, SBH_BETA_HOST, SETTINGS), 200);
	sbh_request(h, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/faults", NULL, "application/json",
		"{\"errors\":\"200:1\"}", &r);
	cr_expect_eq(r.status, 400, "%s", r.body);
	sbh_resp_clear(&r);
	sbh_free(h);
}

Test(sandbox_faults, invalid_fault_flag_exits)
{
	sbh *h = sbh_new();
	json_t *config = sbh_default_config(h->templates);
	const char *args[] = {"--fault", "errors=500:2"};
	cr_expect_not(sbh_start(h, config, args, 2));
	json_decref(config);
	sbh_free(h);
}
