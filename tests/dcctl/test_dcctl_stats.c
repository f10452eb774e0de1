/*
 * dcctl stats per DNS provider, with the call counters and the pacing keys
 * written by the worker's own code (queue_count_call, pacing_take,
 * pacing_penalize, pacing_acquire) on a real Redis, so a change of key
 * names on either side fails here.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcctl_harness.h"
#include "dcworker/pacing.h"

static const char *const queue_names[] = {"interactive"};

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Runs LOOP until *DONE is set or SECONDS pass; true when set. */
static bool run_until(struct ev_loop *loop, const bool *done, double seconds)
{
	ev_timer tick;

	ev_now_update(loop);
	double deadline = ev_now(loop) + seconds;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	while (!*done && ev_now(loop) < deadline)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return *done;
}

static queue *connect_queue(struct ev_loop *loop, int port)
{
	queue_options o = {
		.host = "127.0.0.1",
		.port = port,
		.consumer = "stats-test",
		.queues = queue_names,
		.queue_count = 1,
		.command_timeout_ms = 3000,
	};
	queue_error err;
	queue *q = queue_new(loop, &o, &err);
	bool never = false;

	cr_assert_not_null(q, "%s", err.message);
	for (int i = 0; i < 250 && !queue_connected(q); i++)
		run_until(loop, &never, 0.02);
	cr_assert(queue_connected(q), "the queue did not connect to Redis");
	return q;
}

static void on_queue(void *arg, queue_result *result)
{
	cr_assert_eq(result->error.status, QUEUE_OK, "%s", result->error.message);
	*(bool *)arg = true;
}

static void on_pacing(void *arg, pacing_result *result)
{
	cr_assert_eq(result->error.status, QUEUE_OK, "%s", result->error.message);
	*(bool *)arg = true;
}

static void count_call(queue *q, struct ev_loop *loop, const char *status, long long now_ms)
{
	bool done = false;
	queue_error err;

	cr_assert_eq(queue_count_call(q, "sandbox", status, now_ms, on_queue, &done, &err), QUEUE_OK,
	             "%s", err.message);
	cr_assert(run_until(loop, &done, 5), "queue_count_call did not call back");
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double number(const json_t *object, const char *key)
{
	const json_t *value = json_object_get(object, key);

	cr_assert(json_is_number(value), "%s is not a number", key);
	return json_number_value(value);
}

Test(dcctl_stats, provider_calls_and_pacing)
{
	harness *h = harness_start(false, "[worker]\ntemplate_provider_id = app.test\n\n"
	                                  "[provider.sandbox]\nurl_api = https://api.sandbox.test\n"
	                                  "rate = 10\nburst = 5\nmax_concurrency = 4\n\n"
	                                  "[provider.idle]\nurl_api = https://api.idle.test\n");
	cr_assert_not_null(h);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	queue *q = connect_queue(loop, ts_redis_port(h->redis));

	long long before_ms = wall_ms();
	count_call(q, loop, "200", before_ms);
	count_call(q, loop, "200", before_ms);
	count_call(q, loop, "200", before_ms);
	count_call(q, loop, "429", before_ms);

	/* One take, then a 429 penalty (rate 10 -> 5 per second), and one slot in flight. */
	pacing_limits limits = {.rate = 10, .burst = 5, .max_concurrency = 4};
	queue_error err;
	bool done = false;
	cr_assert_eq(pacing_take(q, "sandbox", &limits, on_pacing, &done, &err), QUEUE_OK);
	cr_assert(run_until(loop, &done, 5));
	done = false;
	cr_assert_eq(pacing_penalize(q, "sandbox", &limits, on_pacing, &done, &err), QUEUE_OK);
	cr_assert(run_until(loop, &done, 5));
	done = false;
	cr_assert_eq(pacing_acquire(q, "sandbox", &limits, "holder-1", 60000, on_pacing, &done, &err),
	             QUEUE_OK);
	cr_assert(run_until(loop, &done, 5));

	const char *argv[] = {"stats", "--json", NULL};
	run_output r = harness_run(h, argv);
	long long after_ms = wall_ms();
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_not_null(doc, "stdout: %s", r.out);
	run_output_free(&r);

	json_t *sandbox = json_object_get(json_object_get(doc, "providers"), "sandbox");
	json_t *calls = json_object_get(sandbox, "calls");
	cr_assert_eq(json_integer_value(json_object_get(calls, "200")), 3);
	cr_assert_eq(json_integer_value(json_object_get(calls, "429")), 1);
	/* The per-minute key is only comparable when the run stayed in one minute. */
	if (before_ms / 60000 == after_ms / 60000) {
		json_t *minute = json_object_get(sandbox, "calls_this_minute");
		cr_assert_eq(json_integer_value(json_object_get(minute, "200")), 3);
	}

	json_t *pacing = json_object_get(sandbox, "pacing");
	cr_assert(json_is_object(pacing), "no pacing in %s", json_dumps(sandbox, 0));
	cr_assert_eq(json_integer_value(json_object_get(pacing, "penalty_level")), 1);
	cr_assert_float_eq(number(pacing, "effective_rate"), 5.0, 1e-9);
	cr_assert_float_eq(number(pacing, "rate"), 10.0, 1e-9);
	cr_assert_eq(json_integer_value(json_object_get(pacing, "in_flight")), 1);
	cr_assert_eq(json_integer_value(json_object_get(pacing, "max_concurrency")), 4);
	/* The penalty emptied the bucket; it refills at 5/s up to 5 * 5 / 10 tokens. */
	double tokens = number(pacing, "tokens");
	cr_assert(tokens >= 0 && tokens <= 2.5, "tokens %f", tokens);
	cr_assert_gt(json_integer_value(json_object_get(pacing, "penalty_ms_left")), 0);

	/* A provider nothing has called yet: no counters, a full bucket, no penalty. */
	json_t *idle = json_object_get(json_object_get(doc, "providers"), "idle");
	cr_assert_eq(json_object_size(json_object_get(idle, "calls")), 0);
	json_t *idle_pacing = json_object_get(idle, "pacing");
	cr_assert_eq(json_integer_value(json_object_get(idle_pacing, "penalty_level")), 0);
	cr_assert(json_is_null(json_object_get(idle_pacing, "tokens")));
	cr_assert(json_is_null(json_object_get(idle_pacing, "penalty_ms_left")));
	json_decref(doc);

	/* The text table names the provider and its counters. */
	const char *text[] = {"stats", NULL};
	r = harness_run(h, text);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "PROVIDER"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "200=3 429=1"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "5/10"), "%s", r.out);
	run_output_free(&r);

	queue_free(q);
	ev_loop_destroy(loop);
	harness_stop(h);
}
