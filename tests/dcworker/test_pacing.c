/*
 * Pacing tests against a real Redis on loopback. The shared bucket and the
 * in-flight cap are exercised by forked processes, each with its own libev
 * loop and Redis connection, as separate workers would be.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "dcworker/pacing.h"
#include "support/support.h"

static const char *const queue_names[] = {"interactive"};

typedef struct fixture {
	ts_redis *redis;
	struct ev_loop *loop;
	queue *q;
} fixture;

static fixture fx;

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run LOOP until *DONE is set or SECONDS pass; true when set. */
static bool run_until(struct ev_loop *loop, const bool *done, double seconds)
{
	ev_timer tick;
	double deadline;

	ev_now_update(loop);
	deadline = ev_now(loop) + seconds;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	while (!*done && ev_now(loop) < deadline)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return *done;
}

/* Connect a queue on LOOP to the fixture's Redis; NULL when it does not come up. */
static queue *connect_queue(struct ev_loop *loop, const char *consumer)
{
	queue_options o = {
		.host = "127.0.0.1",
		.port = ts_redis_port(fx.redis),
		.consumer = consumer,
		.queues = queue_names,
		.queue_count = 1,
		.command_timeout_ms = 3000,
	};
	queue_error err;
	queue *q = queue_new(loop, &o, &err);
	bool never = false;

	if (q == NULL)
		return NULL;
	ev_now_update(loop);
	double deadline = ev_now(loop) + 5;
	while (!queue_connected(q) && ev_now(loop) < deadline)
		run_until(loop, &never, 0.02);
	if (!queue_connected(q)) {
		queue_free(q);
		return NULL;
	}
	return q;
}

static void setup(void)
{
	fx.redis = ts_redis_start(false);
	cr_assert_not_null(fx.redis, "Redis did not start");
	fx.loop = ev_loop_new(EVFLAG_AUTO);
	fx.q = connect_queue(fx.loop, "pacing-test");
	cr_assert_not_null(fx.q, "the queue did not connect to Redis");
}

static void teardown(void)
{
	queue_free(fx.q);
	if (fx.loop != NULL)
		ev_loop_destroy(fx.loop);
	ts_redis_stop(fx.redis);
	memset(&fx, 0, sizeof(fx));
}

TestSuite(pacing, .init = setup, .fini = teardown, .timeout = 120);

/* One call's outcome, for the synchronous helpers below. */
typedef struct outcome {
	bool done;
	int calls;
	pacing_result result;
} outcome;

static void on_result(void *arg, pacing_result *result)
{
	outcome *o = arg;

	o->done = true;
	o->calls++;
	o->result = *result;
}

static pacing_limits limits(double rate, long burst, long max_concurrency)
{
	pacing_limits l = {.rate = rate, .burst = burst, .max_concurrency = max_concurrency};

	return l;
}

static pacing_result take(queue *q, struct ev_loop *loop, const char *provider,
                          const pacing_limits *l)
{
	outcome o = {0};
	queue_error err;

	cr_assert_eq(pacing_take(q, provider, l, on_result, &o, &err), QUEUE_OK, "%s", err.message);
	cr_assert(run_until(loop, &o.done, 5), "pacing_take did not call back");
	cr_assert_eq(o.result.error.status, QUEUE_OK, "%s", o.result.error.message);
	return o.result;
}

static pacing_result penalize(const char *provider, const pacing_limits *l)
{
	outcome o = {0};
	queue_error err;

	cr_assert_eq(pacing_penalize(fx.q, provider, l, on_result, &o, &err), QUEUE_OK, "%s",
	             err.message);
	cr_assert(run_until(fx.loop, &o.done, 5), "pacing_penalize did not call back");
	cr_assert_eq(o.result.error.status, QUEUE_OK, "%s", o.result.error.message);
	return o.result;
}

static pacing_result acquire(queue *q, struct ev_loop *loop, const char *provider,
                             const pacing_limits *l, const char *holder, long lease_ms)
{
	outcome o = {0};
	queue_error err;

	cr_assert_eq(pacing_acquire(q, provider, l, holder, lease_ms, on_result, &o, &err), QUEUE_OK,
	             "%s", err.message);
	cr_assert(run_until(loop, &o.done, 5), "pacing_acquire did not call back");
	cr_assert_eq(o.result.error.status, QUEUE_OK, "%s", o.result.error.message);
	return o.result;
}

/* A process drawing tokens as fast as the bucket allows, for a fixed time. */
typedef struct drawer {
	struct ev_loop *loop;
	queue *q;
	const char *provider;
	pacing_limits limits;
	ev_timer retry;
	long granted;
	long refused;
	long errors;
	bool stopped;
	bool done;
} drawer;

static void draw_next(drawer *d);

static void on_drawn(void *arg, pacing_result *result)
{
	drawer *d = arg;

	if (result->error.status != QUEUE_OK) {
		d->errors++;
		d->done = true;
		return;
	}
	if (d->stopped) {
		d->done = true;
		return;
	}
	if (result->granted) {
		d->granted++;
		draw_next(d);
		return;
	}
	d->refused++;
	ev_timer_set(&d->retry, (double)result->wait_ms / 1000.0, 0);
	ev_timer_start(d->loop, &d->retry);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	drawer *d = w->data;

	(void)loop;
	(void)revents;
	draw_next(d);
}

static void draw_next(drawer *d)
{
	queue_error err;

	if (d->stopped) {
		d->done = true;
		return;
	}
	if (pacing_take(d->q, d->provider, &d->limits, on_drawn, d, &err) != QUEUE_OK) {
		d->errors++;
		d->done = true;
	}
}

static void on_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
	drawer *d = w->data;

	(void)revents;
	d->stopped = true;
	ev_timer_stop(loop, &d->retry);
}

/*
 * Draw tokens for SECONDS on a new connection and write the grant count to
 * FD. Runs in a forked child, so it reports failures as -1 and never
 * returns to Criterion.
 */
static void draw_in_child(int fd, const char *provider, const pacing_limits *l, double seconds)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drawer d = {.loop = loop, .provider = provider, .limits = *l};
	ev_timer stop;
	long counts[2] = {-1, -1};

	d.q = connect_queue(loop, "pacing-child");
	if (d.q != NULL) {
		ev_timer_init(&d.retry, on_retry, 0, 0);
		d.retry.data = &d;
		ev_timer_init(&stop, on_stop, seconds, 0);
		stop.data = &d;
		ev_timer_start(loop, &stop);
		draw_next(&d);
		run_until(loop, &d.done, seconds + 5);
		if (d.errors == 0) {
			counts[0] = d.granted;
			counts[1] = d.refused;
		}
		queue_free(d.q);
	}
	if (write(fd, counts, sizeof(counts)) != (ssize_t)sizeof(counts))
		_exit(2);
	_exit(0);
}

/* Fork CHILDREN drawers on one bucket; return the total grants. */
static long draw_in_children(int children, const char *provider, const pacing_limits *l,
                             double seconds)
{
	int fds[2];
	pid_t pids[4];
	long total = 0;

	cr_assert(children <= 4);
	cr_assert_eq(pipe(fds), 0);
	for (int i = 0; i < children; i++) {
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0) {
			close(fds[0]);
			draw_in_child(fds[1], provider, l, seconds);
		}
	}
	close(fds[1]);
	for (int i = 0; i < children; i++) {
		long counts[2];
		int status;

		cr_assert_eq(read(fds[0], counts, sizeof(counts)), (ssize_t)sizeof(counts),
		             "a drawer process did not report");
		cr_assert_geq(counts[0], 0, "a drawer process failed");
		cr_log_info("drawer %d: %ld granted, %ld refused in %.1f s", i, counts[0], counts[1],
		            seconds);
		total += counts[0];
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
	}
	close(fds[0]);
	return total;
}

Test(pacing, bucket_shared_by_two_processes)
{
	pacing_limits l = limits(20, 5, 1);
	double seconds = 6;
	long total = draw_in_children(2, "shared", &l, seconds);
	double max = l.rate * seconds * 1.1 + (double)l.burst;
	double min = l.rate * seconds * 0.9;

	cr_log_info("two processes: %ld grants in %.0f s at %.0f/s burst %ld (max %.0f)", total,
	            seconds, l.rate, l.burst, max);
	cr_assert_leq((double)total, max, "%ld grants exceed rate * time * 1.1 + burst", total);
	cr_assert_geq((double)total, min, "%ld grants: the bucket starves its takers", total);
}

Test(pacing, first_takes_use_the_burst)
{
	pacing_limits l = limits(1, 3, 1);

	for (int i = 0; i < 3; i++)
		cr_assert(take(fx.q, fx.loop, "burst", &l).granted, "take %d of the burst refused", i);

	pacing_result r = take(fx.q, fx.loop, "burst", &l);
	cr_assert_not(r.granted);
	cr_assert(r.wait_ms > 0 && r.wait_ms <= 1000, "wait %lld ms", r.wait_ms);
	cr_assert_eq(r.penalty_level, 0);
	cr_assert_float_eq(r.rate, 1.0, 1e-6);
}

Test(pacing, penalty_lowers_the_rate)
{
	pacing_limits l = limits(40, 4, 1);
	double seconds = 4;

	l.penalty_ms = 30000;
	pacing_result p = penalize("slow", &l);
	cr_assert_eq(p.penalty_level, 1);
	p = penalize("slow", &l);
	cr_assert_eq(p.penalty_level, 2);
	cr_assert_float_eq(p.rate, 10.0, 1e-6);

	long total = draw_in_children(1, "slow", &l, seconds);
	double max = 10.0 * seconds * 1.1 + 1.0;

	cr_log_info("penalized: %ld grants in %.0f s at 40/s halved twice (max %.0f)", total,
	            seconds, max);
	cr_assert_leq((double)total, max, "%ld grants: the penalty did not lower the rate", total);
	cr_assert_geq((double)total, 10.0 * seconds * 0.9);
}

Test(pacing, penalty_stops_at_the_floor)
{
	pacing_limits l = limits(16, 4, 1);
	pacing_result p = {0};

	l.min_rate = 2;
	for (int i = 0; i < 6; i++)
		p = penalize("floor", &l);
	cr_assert_eq(p.penalty_level, 3);
	cr_assert_float_eq(p.rate, 2.0, 1e-6);

	pacing_result r = take(fx.q, fx.loop, "floor", &l);
	cr_assert_not(r.granted, "a 429 must empty the bucket");
	cr_assert_float_eq(r.rate, 2.0, 1e-6);
}

Test(pacing, penalty_expires_after_its_time)
{
	pacing_limits l = limits(10, 2, 1);
	bool never = false;

	l.penalty_ms = 500;
	cr_assert_eq(penalize("recover", &l).penalty_level, 1);
	cr_assert_eq(take(fx.q, fx.loop, "recover", &l).penalty_level, 1);
	run_until(fx.loop, &never, 0.7);

	pacing_result r = take(fx.q, fx.loop, "recover", &l);
	cr_assert_eq(r.penalty_level, 0);
	cr_assert_float_eq(r.rate, 10.0, 1e-6);
}

/* Acquire ATTEMPTS slots with fresh holders in a child; write the grants to FD. */
static void acquire_in_child(int fd, const pacing_limits *l, int attempts)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	queue *q = connect_queue(loop, "pacing-child");
	long granted = -1;

	if (q != NULL) {
		granted = 0;
		for (int i = 0; i < attempts; i++) {
			char holder[PACING_HOLDER_RANDOM_LEN + 1];
			outcome o = {0};
			queue_error err;

			if (!pacing_new_holder(holder) ||
			    pacing_acquire(q, "capped", l, holder, 30000, on_result, &o, &err) != QUEUE_OK ||
			    !run_until(loop, &o.done, 5) || o.result.error.status != QUEUE_OK) {
				granted = -1;
				break;
			}
			granted += o.result.granted ? 1 : 0;
		}
		queue_free(q);
	}
	if (write(fd, &granted, sizeof(granted)) != (ssize_t)sizeof(granted))
		_exit(2);
	_exit(0);
}

Test(pacing, in_flight_cap_across_processes)
{
	pacing_limits l = limits(100, 10, 3);
	int fds[2];
	pid_t pids[2];
	long total = 0;

	cr_assert_eq(pipe(fds), 0);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0) {
			close(fds[0]);
			acquire_in_child(fds[1], &l, 3);
		}
	}
	close(fds[1]);
	for (int i = 0; i < 2; i++) {
		long granted;
		int status;

		cr_assert_eq(read(fds[0], &granted, sizeof(granted)), (ssize_t)sizeof(granted));
		cr_assert_geq(granted, 0, "an acquiring process failed");
		total += granted;
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
	}
	close(fds[0]);
	cr_assert_eq(total, 3, "%ld slots granted with a cap of 3", total);

	pacing_result r = acquire(fx.q, fx.loop, "capped", &l, "late", 1000);
	cr_assert_not(r.granted);
	cr_assert_eq(r.in_flight, 3);
	cr_assert(r.wait_ms > 0 && r.wait_ms <= 30000, "wait %lld ms", r.wait_ms);
}

Test(pacing, expired_holder_frees_its_slot)
{
	pacing_limits l = limits(100, 10, 1);
	bool never = false;
	int fds[2];
	char ready = 0;

	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		/* Take the only slot with a short lease and die without releasing it. */
		struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
		queue *q = connect_queue(loop, "pacing-child");
		outcome o = {0};
		queue_error err;

		close(fds[0]);
		if (q == NULL || pacing_acquire(q, "crash", &l, "doomed", 400, on_result, &o, &err) !=
		                     QUEUE_OK)
			_exit(1);
		run_until(loop, &o.done, 5);
		if (!o.result.granted || write(fds[1], "1", 1) != 1)
			_exit(1);
		pause();
		_exit(1);
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &ready, 1), 1, "the child did not take the slot");
	close(fds[0]);

	pacing_result r = acquire(fx.q, fx.loop, "crash", &l, "survivor", 5000);
	cr_assert_not(r.granted, "the survivor got a slot the child holds");
	cr_assert_eq(r.in_flight, 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	run_until(fx.loop, &never, 0.5);
	r = acquire(fx.q, fx.loop, "crash", &l, "survivor", 5000);
	cr_assert(r.granted, "the dead holder's slot did not expire");
	cr_assert_eq(r.in_flight, 1);
}

Test(pacing, release_and_renew_a_slot)
{
	pacing_limits l = limits(100, 10, 1);
	outcome o = {0};
	queue_error err;

	cr_assert(acquire(fx.q, fx.loop, "cycle", &l, "one", 5000).granted);
	cr_assert(acquire(fx.q, fx.loop, "cycle", &l, "one", 5000).granted,
	          "a holder re-acquiring its own slot was refused");
	cr_assert_not(acquire(fx.q, fx.loop, "cycle", &l, "two", 5000).granted);

	cr_assert_eq(pacing_renew(fx.q, "cycle", "one", 5000, on_result, &o, &err), QUEUE_OK);
	cr_assert(run_until(fx.loop, &o.done, 5));
	cr_assert(o.result.granted, "renewing a held slot failed");

	o = (outcome){0};
	cr_assert_eq(pacing_release(fx.q, "cycle", "one", on_result, &o, &err), QUEUE_OK);
	cr_assert(run_until(fx.loop, &o.done, 5));
	cr_assert(o.result.granted);

	o = (outcome){0};
	cr_assert_eq(pacing_renew(fx.q, "cycle", "one", 5000, on_result, &o, &err), QUEUE_OK);
	cr_assert(run_until(fx.loop, &o.done, 5));
	cr_assert_not(o.result.granted, "a released slot was renewed");

	o = (outcome){0};
	cr_assert_eq(pacing_release(fx.q, "cycle", "one", on_result, &o, &err), QUEUE_OK);
	cr_assert(run_until(fx.loop, &o.done, 5));
	cr_assert_not(o.result.granted, "a slot was released twice");

	cr_assert(acquire(fx.q, fx.loop, "cycle", &l, "two", 5000).granted);
}

Test(pacing, renew_of_an_expired_slot_fails)
{
	pacing_limits l = limits(100, 10, 1);
	outcome o = {0};
	queue_error err;
	bool never = false;

	cr_assert(acquire(fx.q, fx.loop, "lapse", &l, "slow", 100).granted);
	run_until(fx.loop, &never, 0.25);
	cr_assert_eq(pacing_renew(fx.q, "lapse", "slow", 5000, on_result, &o, &err), QUEUE_OK);
	cr_assert(run_until(fx.loop, &o.done, 5));
	cr_assert_not(o.result.granted, "a lapsed slot was renewed");
}

Test(pacing, invalid_arguments_rejected)
{
	pacing_limits good = limits(10, 2, 1);
	pacing_limits bad_rate = limits(0, 2, 1);
	pacing_limits bad_burst = limits(10, 0, 1);
	pacing_limits bad_cap = limits(10, 2, 0);
	pacing_limits bad_floor = limits(10, 2, 1);
	outcome o = {0};
	queue_error err;

	bad_floor.min_rate = 20;
	cr_assert_eq(pacing_take(fx.q, "a b", &good, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_take(fx.q, "", &good, on_result, &o, &err), QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_take(fx.q, "p", &bad_rate, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_take(fx.q, "p", &bad_burst, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_penalize(fx.q, "p", &bad_floor, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_acquire(fx.q, "p", &bad_cap, "h", 100, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_acquire(fx.q, "p", &good, "h h", 100, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_acquire(fx.q, "p", &good, "h", 0, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_renew(fx.q, "p", "h", -1, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(pacing_release(fx.q, "p", NULL, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(o.calls, 0, "a rejected call ran its callback");
}

Test(pacing, random_holders_differ)
{
	char a[PACING_HOLDER_RANDOM_LEN + 1];
	char b[PACING_HOLDER_RANDOM_LEN + 1];

	cr_assert(pacing_new_holder(a));
	cr_assert(pacing_new_holder(b));
	cr_assert_eq(strlen(a), PACING_HOLDER_RANDOM_LEN);
	cr_assert_str_neq(a, b);
}
