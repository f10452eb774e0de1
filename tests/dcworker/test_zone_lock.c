/*
 * Zone lock tests against a real Redis on loopback. Contending holders run
 * in forked processes, each with its own libev loop and Redis connection.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "dcworker/zone_lock.h"
#include "support/support.h"

static const char *const queue_names[] = {"interactive"};

typedef struct fixture {
	ts_redis *redis;
	struct ev_loop *loop;
	queue *q;
	redisContext *inspect; /* blocking client that reads keys */
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

static void sleep_loop(struct ev_loop *loop, double seconds)
{
	bool never = false;

	run_until(loop, &never, seconds);
}

/* Connect a queue on LOOP to the fixture's Redis; NULL when it does not come up. */
static queue *connect_queue(struct ev_loop *loop)
{
	queue_options o = {
		.host = "127.0.0.1",
		.port = ts_redis_port(fx.redis),
		.consumer = "zone-lock-test",
		.queues = queue_names,
		.queue_count = 1,
		.command_timeout_ms = 3000,
	};
	queue_error err;
	queue *q = queue_new(loop, &o, &err);

	if (q == NULL)
		return NULL;
	for (int i = 0; i < 250 && !queue_connected(q); i++)
		sleep_loop(loop, 0.02);
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
	fx.q = connect_queue(fx.loop);
	cr_assert_not_null(fx.q, "the queue did not connect to Redis");
	fx.inspect = redisConnect("127.0.0.1", ts_redis_port(fx.redis));
	cr_assert(fx.inspect != NULL && fx.inspect->err == 0);
}

static void teardown(void)
{
	redisFree(fx.inspect);
	queue_free(fx.q);
	if (fx.loop != NULL)
		ev_loop_destroy(fx.loop);
	ts_redis_stop(fx.redis);
	memset(&fx, 0, sizeof(fx));
}

TestSuite(zone_lock, .init = setup, .fini = teardown, .timeout = 60);

typedef struct outcome {
	bool done;
	int calls;
	zone_lock_result result;
} outcome;

static void on_result(void *arg, zone_lock_result *result)
{
	outcome *o = arg;

	o->done = true;
	o->calls++;
	o->result = *result;
}

/* Which call a helper runs. */
typedef enum lock_op { OP_ACQUIRE, OP_RENEW, OP_RELEASE } lock_op;

/* Run OP on LOCK and wait for its callback; false on any failure. */
static bool lock_call(queue *q, struct ev_loop *loop, lock_op op, const zone_lock *lock,
                      long lease_ms, zone_lock_result *out)
{
	outcome o = {0};
	queue_error err;
	queue_status status;

	if (op == OP_ACQUIRE)
		status = zone_lock_acquire(q, lock, lease_ms, on_result, &o, &err);
	else if (op == OP_RENEW)
		status = zone_lock_renew(q, lock, lease_ms, on_result, &o, &err);
	else
		status = zone_lock_release(q, lock, on_result, &o, &err);
	if (status != QUEUE_OK || !run_until(loop, &o.done, 5) || o.calls != 1 ||
	    o.result.error.status != QUEUE_OK)
		return false;
	*out = o.result;
	return true;
}

static zone_lock_result run_op(lock_op op, const zone_lock *lock, long lease_ms)
{
	zone_lock_result r;

	cr_assert(lock_call(fx.q, fx.loop, op, lock, lease_ms, &r), "zone lock call %d failed", op);
	return r;
}

static zone_lock *new_lock(const char *provider, const char *zone)
{
	queue_error err;
	zone_lock *lock = zone_lock_new(provider, zone, &err);

	cr_assert_not_null(lock, "%s", err.message);
	return lock;
}

/* Counts one contender reports to the parent. */
typedef struct contender_counts {
	long sections;   /* times it held the lock */
	long overlaps;   /* times it found another holder inside */
	long failures;   /* failed calls */
} contender_counts;

/*
 * Enter the zone's critical section as often as possible for SECONDS. A
 * Redis counter tracks how many processes are inside; entering when it is
 * not zero is an overlap. Writes the counts to FD and exits.
 */
static void contend_in_child(int fd, double seconds)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	queue *q = connect_queue(loop);
	redisContext *c = redisConnect("127.0.0.1", ts_redis_port(fx.redis));
	zone_lock *lock = zone_lock_new("dns-one", "example.com", NULL);
	contender_counts counts = {0};

	if (q == NULL || c == NULL || c->err != 0 || lock == NULL) {
		counts.failures = 1;
		goto out;
	}
	ev_now_update(loop);
	double deadline = ev_now(loop) + seconds;
	while (ev_now(loop) < deadline) {
		zone_lock_result r;

		if (!lock_call(q, loop, OP_ACQUIRE, lock, 2000, &r)) {
			counts.failures++;
			break;
		}
		if (!r.held) {
			sleep_loop(loop, 0.005);
			continue;
		}

		redisReply *inside = redisCommand(c, "INCR {test}:inside");
		if (inside == NULL || inside->integer != 1)
			counts.overlaps++;
		freeReplyObject(inside);
		sleep_loop(loop, 0.02);
		freeReplyObject(redisCommand(c, "DECR {test}:inside"));
		counts.sections++;

		if (!lock_call(q, loop, OP_RELEASE, lock, 0, &r) || !r.held) {
			counts.failures++;
			break;
		}
		/* Give the other contender a chance before taking the lock again. */
		sleep_loop(loop, 0.005);
	}
out:
	if (write(fd, &counts, sizeof(counts)) != (ssize_t)sizeof(counts))
		_exit(2);
	_exit(0);
}

Test(zone_lock, two_processes_never_overlap)
{
	int fds[2];
	pid_t pids[2];
	long sections = 0;

	cr_assert_eq(pipe(fds), 0);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0) {
			close(fds[0]);
			contend_in_child(fds[1], 2.0);
		}
	}
	close(fds[1]);
	for (int i = 0; i < 2; i++) {
		contender_counts counts;

		cr_assert_eq(read(fds[0], &counts, sizeof(counts)), (ssize_t)sizeof(counts));
		cr_log_info("contender %d: %ld sections, %ld overlaps, %ld failures", i,
		            counts.sections, counts.overlaps, counts.failures);
		cr_assert_eq(counts.failures, 0);
		cr_assert_eq(counts.overlaps, 0, "two holders were inside one zone at once");
		cr_assert_gt(counts.sections, 0, "contender %d never got the lock", i);
		sections += counts.sections;
		cr_assert_eq(waitpid(pids[i], NULL, 0), pids[i]);
	}
	close(fds[0]);
	cr_assert_gt(sections, 10);
}

Test(zone_lock, killed_holder_blocks_until_lease)
{
	int fds[2];
	char ready = 0;

	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
		queue *q = connect_queue(loop);
		zone_lock *lock = zone_lock_new("dns-one", "crash.example", NULL);
		zone_lock_result r;

		close(fds[0]);
		if (q == NULL || lock == NULL || !lock_call(q, loop, OP_ACQUIRE, lock, 600, &r) ||
		    !r.held || write(fds[1], "1", 1) != 1)
			_exit(1);
		pause();
		_exit(1);
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &ready, 1), 1, "the child did not take the lock");
	close(fds[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	zone_lock *lock = new_lock("dns-one", "crash.example");
	zone_lock_result r = run_op(OP_ACQUIRE, lock, 5000);
	cr_assert_not(r.held, "the killed holder's lock vanished before its lease ran out");
	cr_assert(r.wait_ms > 0 && r.wait_ms <= 600, "wait %lld ms", r.wait_ms);

	sleep_loop(fx.loop, (double)r.wait_ms / 1000.0 + 0.05);
	r = run_op(OP_ACQUIRE, lock, 5000);
	cr_assert(r.held, "the lock stayed blocked after the killed holder's lease");
	zone_lock_free(lock);
}

Test(zone_lock, release_by_non_owner_rejected)
{
	zone_lock *owner = new_lock("dns-one", "shop.example");
	zone_lock *other = new_lock("dns-one", "shop.example");

	cr_assert(run_op(OP_ACQUIRE, owner, 5000).held);
	cr_assert_not(run_op(OP_RELEASE, other, 0).held, "a non-owner released the lock");
	cr_assert_not(run_op(OP_RENEW, other, 5000).held, "a non-owner renewed the lock");
	cr_assert_not(run_op(OP_ACQUIRE, other, 5000).held);

	redisReply *exists = redisCommand(fx.inspect, "EXISTS %s", zone_lock_key(owner));
	cr_assert_eq(exists->integer, 1, "the lock key is gone after a non-owner's release");
	freeReplyObject(exists);

	cr_assert(run_op(OP_RELEASE, owner, 0).held);
	cr_assert_not(run_op(OP_RELEASE, owner, 0).held, "a lock was released twice");
	cr_assert(run_op(OP_ACQUIRE, other, 5000).held);
	zone_lock_free(owner);
	zone_lock_free(other);
}

Test(zone_lock, renew_extends_the_lease)
{
	zone_lock *owner = new_lock("dns-one", "renew.example");
	zone_lock *other = new_lock("dns-one", "renew.example");

	cr_assert(run_op(OP_ACQUIRE, owner, 1000).held);
	cr_assert(run_op(OP_RENEW, owner, 5000).held);
	sleep_loop(fx.loop, 1.2);
	cr_assert_not(run_op(OP_ACQUIRE, other, 5000).held, "the renewed lease ran out early");
	cr_assert(run_op(OP_ACQUIRE, owner, 3000).held, "the holder could not take its own lock");
	zone_lock_free(owner);
	zone_lock_free(other);
}

Test(zone_lock, lapsed_lock_not_renewed)
{
	zone_lock *owner = new_lock("dns-one", "lapse.example");

	cr_assert(run_op(OP_ACQUIRE, owner, 100).held);
	sleep_loop(fx.loop, 0.25);
	cr_assert_not(run_op(OP_RENEW, owner, 3000).held);
	cr_assert_not(run_op(OP_RELEASE, owner, 0).held);
	zone_lock_free(owner);
}

Test(zone_lock, zones_and_providers_independent)
{
	zone_lock *a = new_lock("dns-one", "a.example");
	zone_lock *b = new_lock("dns-one", "b.example");
	zone_lock *c = new_lock("dns-two", "a.example");

	cr_assert(run_op(OP_ACQUIRE, a, 5000).held);
	cr_assert(run_op(OP_ACQUIRE, b, 5000).held);
	cr_assert(run_op(OP_ACQUIRE, c, 5000).held);
	cr_assert_str_eq(zone_lock_key(a), "{dc}:zone:dns-one:a.example");
	zone_lock_free(a);
	zone_lock_free(b);
	zone_lock_free(c);
}

Test(zone_lock, invalid_arguments_rejected)
{
	queue_error err;
	outcome o = {0};

	cr_assert_null(zone_lock_new("dns one", "a.example", &err));
	cr_assert_eq(err.status, QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_null(zone_lock_new("dns-one", "a example", &err));
	cr_assert_null(zone_lock_new("dns-one", "", &err));
	cr_assert_null(zone_lock_new(NULL, "a.example", &err));

	zone_lock *lock = new_lock("dns-one", "a.example");
	cr_assert_eq(zone_lock_acquire(fx.q, lock, 0, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(zone_lock_acquire(fx.q, lock, ZONE_LOCK_LEASE_MAX_MS + 1, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(zone_lock_renew(fx.q, lock, -5, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(zone_lock_release(fx.q, NULL, on_result, &o, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(o.calls, 0, "a rejected call ran its callback");
	zone_lock_free(lock);
	zone_lock_free(NULL);
}
