/*
 * Queue tests against a real Redis on loopback, one server per test. A web
 * app's XADD is played by a blocking hiredis client; the queue under test
 * runs on its own libev loop. Every callback is counted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/hiredis.h>

#include "dcworker/queue.h"
#include "support/support.h"

static const char *const queue_names[] = {"interactive", "bulk"};

/* Counters and the last outcome of every callback kind. */
typedef struct probe {
	int calls;
	int ok;
	int failed;
	queue_status last_status;
	long long value;
	long long moved;
	long long next_due_ms;
	char entry_id[QUEUE_ENTRY_ID_MAX];
	queue_batch *batch;
	int connected;
	int connect_failed;
	int lost;
	int errors;
} probe;

static void on_event(void *arg, queue_event event, const char *detail)
{
	probe *p = arg;

	(void)detail;
	if (event == QUEUE_EVENT_CONNECTED)
		p->connected++;
	else if (event == QUEUE_EVENT_CONNECT_FAILED)
		p->connect_failed++;
	else if (event == QUEUE_EVENT_LOST)
		p->lost++;
	else
		p->errors++;
}

static void on_done(void *arg, queue_result *result)
{
	probe *p = arg;

	p->calls++;
	p->last_status = result->error.status;
	if (result->error.status != QUEUE_OK) {
		p->failed++;
		return;
	}
	p->ok++;
	p->value = result->value;
	p->moved = result->moved;
	p->next_due_ms = result->next_due_ms;
	memcpy(p->entry_id, result->entry_id, sizeof(p->entry_id));
	queue_batch_free(p->batch);
	p->batch = result->batch;
	result->batch = NULL;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run LOOP until *COUNTER reaches TARGET or SECONDS pass; true when reached. */
static bool run_until(struct ev_loop *loop, const int *counter, int target, double seconds)
{
	ev_timer tick;
	double deadline;

	ev_now_update(loop);
	deadline = ev_now(loop) + seconds;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	while (*counter < target && ev_now(loop) < deadline)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return *counter >= target;
}

/* Run LOOP for SECONDS. */
static void run_for(struct ev_loop *loop, double seconds)
{
	int never = 0;

	run_until(loop, &never, 1, seconds);
}

typedef struct fixture {
	ts_redis *redis;
	struct ev_loop *loop;
	redisContext *web;   /* plays the web app and inspects keys */
} fixture;

static fixture fx;

static void setup(void)
{
	fx.redis = ts_redis_start(true);
	cr_assert_not_null(fx.redis, "Redis did not start");
	fx.loop = ev_loop_new(EVFLAG_AUTO);
	fx.web = redisConnect("127.0.0.1", ts_redis_port(fx.redis));
	cr_assert(fx.web != NULL && fx.web->err == 0);
}

static void teardown(void)
{
	redisFree(fx.web);
	ev_loop_destroy(fx.loop);
	ts_redis_stop(fx.redis);
}

static queue_options options(const char *consumer, probe *events)
{
	queue_options o = {
		.host = "127.0.0.1",
		.port = ts_redis_port(fx.redis),
		.consumer = consumer,
		.queues = queue_names,
		.queue_count = 2,
		.command_timeout_ms = 2000,
		.visibility_timeout_ms = 200,
		.max_deliveries = 3,
		.reconnect_min_ms = 20,
		.reconnect_max_ms = 200,
		.on_event = on_event,
		.event_arg = events,
	};
	return o;
}

static queue *open_queue(const queue_options *o, probe *events)
{
	queue_error err = {0};
	queue *q = queue_new(fx.loop, o, &err);

	cr_assert_not_null(q, "queue_new failed: %s", err.message);
	cr_assert(run_until(fx.loop, &events->connected, 1, 5), "queue did not connect");
	return q;
}

static long long web_integer(const char *fmt, const char *arg)
{
	redisReply *r = redisCommand(fx.web, fmt, arg);
	long long value;

	cr_assert_not_null(r);
	cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "unexpected reply to %s: %s", fmt,
	             r->type == REDIS_REPLY_ERROR ? r->str : "(not an error)");
	value = r->integer;
	freeReplyObject(r);
	return value;
}

static void web_enqueue(const char *queue_name, const char *job)
{
	redisReply *r = redisCommand(fx.web, "XADD {dc}:queue:%s * job %s", queue_name, job);

	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
	freeReplyObject(r);
}

/* Fetch up to COUNT entries and return the batch; the caller frees it. */
static queue_batch *fetch(queue *q, size_t count)
{
	probe p = {0};
	queue_error err = {0};

	cr_assert_eq(queue_fetch(q, count, on_done, &p, &err), QUEUE_OK, "%s", err.message);
	cr_assert(run_until(fx.loop, &p.calls, 1, 5));
	cr_assert_eq(p.calls, 1);
	cr_assert_eq(p.last_status, QUEUE_OK);
	return p.batch;
}

static queue_batch *reclaim(queue *q, size_t count)
{
	probe p = {0};
	queue_error err = {0};

	cr_assert_eq(queue_reclaim(q, count, on_done, &p, &err), QUEUE_OK, "%s", err.message);
	cr_assert(run_until(fx.loop, &p.calls, 1, 5));
	cr_assert_eq(p.last_status, QUEUE_OK);
	return p.batch;
}

/* Run a command that returns an integer and return it. */
#define RUN_VALUE(call_expr, p)                                                              \
	do {                                                                                      \
		queue_error e_ = {0};                                                             \
		cr_assert_eq((call_expr), QUEUE_OK, "%s", e_.message);                            \
		cr_assert(run_until(fx.loop, &(p).calls, 1, 5));                                  \
		cr_assert_eq((p).last_status, QUEUE_OK);                                          \
	} while (0)

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 60);

Test(queue, fetch_priority_then_ack)
{
	probe events = {0};
	queue_options o = options("w1", &events);

	/* The web app writes before any worker created the group. */
	web_enqueue("bulk", "{\"id\":\"b1\"}");
	web_enqueue("bulk", "{\"id\":\"b2\"}");
	web_enqueue("interactive", "{\"id\":\"i1\"}");
	web_enqueue("interactive", "{\"id\":\"i2\"}");

	queue *q = open_queue(&o, &events);
	queue_batch *first = fetch(q, 3);

	cr_assert_eq(first->count, 3);
	cr_assert_str_eq(first->messages[0].queue, "interactive");
	cr_assert_str_eq(first->messages[0].job, "{\"id\":\"i1\"}");
	cr_assert_str_eq(first->messages[1].job, "{\"id\":\"i2\"}");
	cr_assert_str_eq(first->messages[2].queue, "bulk");
	cr_assert_str_eq(first->messages[2].job, "{\"id\":\"b1\"}");
	cr_assert_eq(first->messages[0].deliveries, 1);

	queue_batch *second = fetch(q, 3);
	cr_assert_eq(second->count, 1);
	cr_assert_str_eq(second->messages[0].job, "{\"id\":\"b2\"}");
	queue_batch *third = fetch(q, 3);
	cr_assert_eq(third->count, 0);

	probe acks = {0};
	for (size_t i = 0; i < first->count; i++)
		cr_assert_eq(queue_ack(q, &first->messages[i], on_done, &acks, NULL), QUEUE_OK);
	cr_assert_eq(queue_ack(q, &second->messages[0], on_done, &acks, NULL), QUEUE_OK);
	cr_assert(run_until(fx.loop, &acks.calls, 4, 5));
	cr_assert_eq(acks.ok, 4);
	cr_assert_eq(acks.value, 1);

	cr_assert_eq(web_integer("XLEN {dc}:queue:%s", "interactive"), 0);
	cr_assert_eq(web_integer("XLEN {dc}:queue:%s", "bulk"), 0);
	cr_assert_eq(events.connected, 1);
	cr_assert_eq(events.errors, 0);

	queue_batch_free(first);
	queue_batch_free(second);
	queue_batch_free(third);
	queue_free(q);
}

Test(queue, enqueue_returns_entry_id)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);
	probe p = {0};
	const char *job = "{\"id\":\"e1\"}";

	RUN_VALUE(queue_enqueue(q, "bulk", job, strlen(job), on_done, &p, &e_), p);
	cr_assert_neq(p.entry_id[0], '\0');
	cr_assert_eq(web_integer("XLEN {dc}:queue:%s", "bulk"), 1);
	queue_free(q);
}

Test(queue, reclaim_after_visibility_timeout)
{
	probe events_a = {0};
	probe events_b = {0};
	queue_options oa = options("worker-a", &events_a);
	queue_options ob = options("worker-b", &events_b);
	queue *a = open_queue(&oa, &events_a);
	queue *b = open_queue(&ob, &events_b);

	web_enqueue("interactive", "{\"id\":\"r1\"}");
	queue_batch *got = fetch(a, 10);
	cr_assert_eq(got->count, 1);

	/* Not idle long enough yet: nothing to reclaim. */
	queue_batch *early = reclaim(b, 10);
	cr_assert_eq(early->count, 0);

	run_for(fx.loop, 0.3);
	queue_batch *late = reclaim(b, 10);
	cr_assert_eq(late->count, 1);
	cr_assert_str_eq(late->messages[0].entry_id, got->messages[0].entry_id);
	cr_assert_str_eq(late->messages[0].job, "{\"id\":\"r1\"}");
	cr_assert_eq(late->messages[0].deliveries, 2);
	cr_assert_not(late->messages[0].dead_lettered);

	/* The first worker lost the entry: touching it reports that. */
	probe touch = {0};
	RUN_VALUE(queue_touch(a, &got->messages[0], on_done, &touch, &e_), touch);
	cr_assert_eq(touch.value, 0);

	queue_batch_free(got);
	queue_batch_free(early);
	queue_batch_free(late);
	queue_free(a);
	queue_free(b);
}

Test(queue, touch_keeps_claim)
{
	probe events_a = {0};
	probe events_b = {0};
	queue_options oa = options("worker-a", &events_a);
	queue_options ob = options("worker-b", &events_b);
	queue *a = open_queue(&oa, &events_a);
	queue *b = open_queue(&ob, &events_b);

	web_enqueue("bulk", "{\"id\":\"t1\"}");
	queue_batch *got = fetch(a, 1);
	cr_assert_eq(got->count, 1);

	int touched_ok = 0;
	for (int i = 0; i < 3; i++) {
		probe touch = {0};

		run_for(fx.loop, 0.12);
		RUN_VALUE(queue_touch(a, &got->messages[0], on_done, &touch, &e_), touch);
		touched_ok += (int)touch.value;
	}
	cr_assert_eq(touched_ok, 3);

	queue_batch *stolen = reclaim(b, 10);
	cr_assert_eq(stolen->count, 0);

	queue_batch_free(got);
	queue_batch_free(stolen);
	queue_free(a);
	queue_free(b);
}

Test(queue, poison_goes_to_dead_letters)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	o.visibility_timeout_ms = 50;
	o.max_deliveries = 2;
	queue *q = open_queue(&o, &events);

	web_enqueue("interactive", "{\"id\":\"p1\"}");
	queue_batch *first = fetch(q, 1);
	cr_assert_eq(first->count, 1);

	run_for(fx.loop, 0.08);
	queue_batch *second = reclaim(q, 10);
	cr_assert_eq(second->count, 1);
	cr_assert_eq(second->messages[0].deliveries, 2);
	cr_assert_not(second->messages[0].dead_lettered);

	run_for(fx.loop, 0.08);
	queue_batch *third = reclaim(q, 10);
	cr_assert_eq(third->count, 1);
	cr_assert_eq(third->messages[0].deliveries, 3);
	cr_assert(third->messages[0].dead_lettered);
	cr_assert_str_eq(third->messages[0].job, "{\"id\":\"p1\"}");

	cr_assert_eq(web_integer("XLEN %s", "{dc}:dead"), 1);
	cr_assert_eq(web_integer("XLEN {dc}:queue:%s", "interactive"), 0);
	redisReply *pending = redisCommand(fx.web, "XPENDING {dc}:queue:interactive dcworker");
	cr_assert_eq(pending->element[0]->integer, 0);
	freeReplyObject(pending);

	redisReply *dead = redisCommand(fx.web, "XRANGE {dc}:dead - +");
	cr_assert_eq(dead->elements, 1);
	const redisReply *fields = dead->element[0]->element[1];
	bool saw_job = false;
	bool saw_error = false;
	for (size_t f = 0; f + 1 < fields->elements; f += 2) {
		if (strcmp(fields->element[f]->str, "job") == 0)
			saw_job = strcmp(fields->element[f + 1]->str, "{\"id\":\"p1\"}") == 0;
		if (strcmp(fields->element[f]->str, "error") == 0)
			saw_error = strstr(fields->element[f + 1]->str, "delivered too many times") != NULL;
	}
	cr_assert(saw_job);
	cr_assert(saw_error);
	freeReplyObject(dead);

	queue_batch_free(first);
	queue_batch_free(second);
	queue_batch_free(third);
	queue_free(q);
}

Test(queue, dead_letters_capped)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	o.dead_max_len = 3;
	queue *q = open_queue(&o, &events);

	for (int i = 0; i < 5; i++)
		web_enqueue("bulk", "{\"id\":\"d\"}");
	queue_batch *got = fetch(q, 10);
	cr_assert_eq(got->count, 5);

	probe p = {0};
	for (size_t i = 0; i < got->count; i++)
		cr_assert_eq(queue_dead_letter(q, &got->messages[i], "invalid job", on_done, &p, NULL),
		             QUEUE_OK);
	cr_assert(run_until(fx.loop, &p.calls, 5, 5));
	cr_assert_eq(p.ok, 5);
	cr_assert_eq(web_integer("XLEN %s", "{dc}:dead"), 3);
	cr_assert_eq(web_integer("XLEN {dc}:queue:%s", "bulk"), 0);

	queue_batch_free(got);
	queue_free(q);
}

Test(queue, promote_due_only)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);
	probe s1 = {0};
	probe s2 = {0};
	probe s3 = {0};
	const char *now_job = "{\"id\":\"now\"}";
	const char *later_job = "{\"id\":\"later\"}";
	const char *past_job = "{\"id\":\"past\"}";

	RUN_VALUE(queue_schedule(q, "bulk", now_job, strlen(now_job), 0, NULL, on_done, &s1, &e_), s1);
	RUN_VALUE(queue_schedule(q, "interactive", later_job, strlen(later_job), 60000, NULL, on_done,
	                         &s2, &e_), s2);
	RUN_VALUE(queue_schedule_at(q, "interactive", past_job, strlen(past_job), 1000, NULL,
	                            on_done, &s3, &e_), s3);

	/* The due time comes from Redis TIME, not from this process's clock. */
	redisReply *t = redisCommand(fx.web, "TIME");
	long long redis_ms = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
	freeReplyObject(t);
	cr_assert(s1.value <= redis_ms && s1.value > redis_ms - 5000);
	cr_assert(s2.value >= s1.value + 60000 - 1000 && s2.value <= redis_ms + 60000);
	cr_assert_eq(s3.value, 1000);
	cr_assert_eq(web_integer("ZCARD %s", "{dc}:scheduled"), 3);

	probe promote = {0};
	RUN_VALUE(queue_promote(q, 100, on_done, &promote, &e_), promote);
	cr_assert_eq(promote.moved, 2);
	cr_assert_eq(promote.next_due_ms, s2.value);
	cr_assert_eq(web_integer("ZCARD %s", "{dc}:scheduled"), 1);

	queue_batch *got = fetch(q, 10);
	cr_assert_eq(got->count, 2);
	cr_assert_str_eq(got->messages[0].job, past_job);
	cr_assert_str_eq(got->messages[0].queue, "interactive");
	cr_assert_str_eq(got->messages[1].job, now_job);
	cr_assert_str_eq(got->messages[1].queue, "bulk");

	queue_batch_free(got);
	queue_free(q);
}

Test(queue, promote_races_move_once)
{
	probe events_a = {0};
	probe events_b = {0};
	queue_options oa = options("worker-a", &events_a);
	queue_options ob = options("worker-b", &events_b);
	queue *a = open_queue(&oa, &events_a);
	queue *b = open_queue(&ob, &events_b);
	char member[64];

	for (int i = 0; i < 50; i++) {
		snprintf(member, sizeof(member), "%d", i);
		redisReply *r = redisCommand(fx.web, "ZADD {dc}:scheduled 1000 %s",
		                             (snprintf(member, sizeof(member), "bulk {\"id\":\"%d\"}", i),
		                              member));
		freeReplyObject(r);
	}

	/* Both promoters run at once, five entries per call. */
	probe pa = {0};
	probe pb = {0};
	long long moved = 0;
	for (int round = 0; round < 10; round++) {
		memset(&pa, 0, sizeof(pa));
		memset(&pb, 0, sizeof(pb));
		cr_assert_eq(queue_promote(a, 5, on_done, &pa, NULL), QUEUE_OK);
		cr_assert_eq(queue_promote(b, 5, on_done, &pb, NULL), QUEUE_OK);
		cr_assert(run_until(fx.loop, &pa.calls, 1, 5));
		cr_assert(run_until(fx.loop, &pb.calls, 1, 5));
		moved += pa.moved + pb.moved;
	}
	cr_assert_eq(moved, 50);
	cr_assert_eq(web_integer("XLEN {dc}:queue:%s", "bulk"), 50);
	cr_assert_eq(web_integer("ZCARD %s", "{dc}:scheduled"), 0);

	queue_free(a);
	queue_free(b);
}

Test(queue, schedule_acks_entry)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);

	web_enqueue("bulk", "{\"id\":\"retry\"}");
	queue_batch *got = fetch(q, 1);
	cr_assert_eq(got->count, 1);

	probe s = {0};
	const queue_message *m = &got->messages[0];
	RUN_VALUE(queue_schedule(q, "bulk", m->job, m->job_len, 5000, m, on_done, &s, &e_), s);
	cr_assert_eq(web_integer("ZCARD %s", "{dc}:scheduled"), 1);
	cr_assert_eq(web_integer("XLEN {dc}:queue:%s", "bulk"), 0);
	redisReply *pending = redisCommand(fx.web, "XPENDING {dc}:queue:bulk dcworker");
	cr_assert_eq(pending->element[0]->integer, 0);
	freeReplyObject(pending);

	queue_batch_free(got);
	queue_free(q);
}

/* A subscriber on "dc:results", on the test's loop. */
typedef struct subscriber {
	int subscribed;
	int messages;
	char last[256];
} subscriber;

static void on_subscriber_reply(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply *reply = r;
	subscriber *s = arg;

	(void)ac;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
		return;
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		s->subscribed++;
	} else if (strcmp(reply->element[0]->str, "message") == 0) {
		s->messages++;
		snprintf(s->last, sizeof(s->last), "%s", reply->element[2]->str);
	}
}

Test(queue, result_hash_and_publish)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	o.result_ttl_s = 120;
	queue *q = open_queue(&o, &events);
	subscriber sub = {0};
	redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", ts_redis_port(fx.redis));

	cr_assert(ac != NULL && ac->err == 0);
	redisLibevAttach(fx.loop, ac);
	redisAsyncCommand(ac, on_subscriber_reply, &sub, "SUBSCRIBE dc:results");
	cr_assert(run_until(fx.loop, &sub.subscribed, 1, 5));

	const char *json = "{\"id\":\"job-7\",\"status\":\"succeeded\"}";
	probe p = {0};
	RUN_VALUE(queue_publish_result(q, "job-7", "succeeded", json, on_done, &p, &e_), p);
	cr_assert_eq(p.value, 1);
	cr_assert(run_until(fx.loop, &sub.messages, 1, 5));
	cr_assert_eq(sub.messages, 1);
	cr_assert_str_eq(sub.last, json);

	redisReply *h = redisCommand(fx.web, "HGET {dc}:result:job-7 result");
	cr_assert_str_eq(h->str, json);
	freeReplyObject(h);
	h = redisCommand(fx.web, "HGET {dc}:result:job-7 status");
	cr_assert_str_eq(h->str, "succeeded");
	freeReplyObject(h);
	long long ttl = web_integer("TTL %s", "{dc}:result:job-7");
	cr_assert(ttl > 100 && ttl <= 120, "TTL is %lld", ttl);

	redisAsyncFree(ac);
	queue_free(q);
}

Test(queue, restart_reconnects_and_continues)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);

	web_enqueue("interactive", "{\"id\":\"k1\"}");
	web_enqueue("interactive", "{\"id\":\"k2\"}");
	web_enqueue("interactive", "{\"id\":\"k3\"}");
	queue_batch *first = fetch(q, 1);
	cr_assert_eq(first->count, 1);

	/* Redis crashes; the AOF keeps every acknowledged write. */
	redisFree(fx.web);
	fx.web = NULL;
	cr_assert(ts_redis_restart(fx.redis));
	cr_assert(run_until(fx.loop, &events.lost, 1, 5));
	cr_assert_eq(events.lost, 1);

	cr_assert(run_until(fx.loop, &events.connected, 2, 10), "no reconnect");
	fx.web = redisConnect("127.0.0.1", ts_redis_port(fx.redis));

	/* The unacknowledged entry is still pending, the others still queued. */
	probe ack = {0};
	RUN_VALUE(queue_ack(q, &first->messages[0], on_done, &ack, &e_), ack);
	cr_assert_eq(ack.value, 1);
	queue_batch *rest = fetch(q, 10);
	cr_assert_eq(rest->count, 2);
	cr_assert_str_eq(rest->messages[0].job, "{\"id\":\"k2\"}");
	cr_assert_eq(events.connected, 2);

	queue_batch_free(first);
	queue_batch_free(rest);
	queue_free(q);
}

Test(queue, pending_command_fails_on_loss)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);
	probe p = {0};

	/* The command waits in hiredis's output buffer while Redis is killed. */
	cr_assert_eq(queue_fetch(q, 1, on_done, &p, NULL), QUEUE_OK);

	redisFree(fx.web);
	fx.web = NULL;
	cr_assert(ts_redis_restart(fx.redis));
	cr_assert(run_until(fx.loop, &p.calls, 1, 5));
	cr_assert_eq(p.calls, 1);
	cr_assert_eq(p.last_status, QUEUE_ERR_DISCONNECTED);
	cr_assert_eq(events.lost, 1);

	/* While down, calls fail at once and never call back. */
	queue_error err = {0};
	probe down = {0};
	if (!queue_connected(q)) {
		cr_assert_eq(queue_fetch(q, 1, on_done, &down, &err), QUEUE_ERR_DISCONNECTED);
		cr_assert_neq(err.message[0], '\0');
	}
	cr_assert(run_until(fx.loop, &events.connected, 2, 10));
	cr_assert_eq(down.calls, 0);

	queue_free(q);
}

Test(queue, command_timeout_drops_connection)
{
	/* A socket that accepts connections (backlog) and never replies. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(addr);

	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);

	probe events = {0};
	queue_options o = options("w1", &events);
	o.port = ntohs(addr.sin_port);
	o.command_timeout_ms = 150;
	queue_error err = {0};
	queue *q = queue_new(fx.loop, &o, &err);
	cr_assert_not_null(q);

	probe p1 = {0};
	probe p2 = {0};
	cr_assert_eq(queue_fetch(q, 1, on_done, &p1, NULL), QUEUE_OK);
	cr_assert_eq(queue_fetch(q, 1, on_done, &p2, NULL), QUEUE_OK);
	cr_assert(run_until(fx.loop, &p2.calls, 1, 5));
	cr_assert_eq(p1.calls, 1);
	cr_assert_eq(p1.last_status, QUEUE_ERR_TIMEOUT);
	cr_assert_eq(p2.calls, 1);
	cr_assert_eq(p2.last_status, QUEUE_ERR_TIMEOUT);
	cr_assert_eq(events.lost, 1);

	queue_free(q);
	close(fd);
}

Test(queue, refused_connect_retries)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	o.port = ts_free_port();
	queue_error err = {0};
	queue *q = queue_new(fx.loop, &o, &err);
	cr_assert_not_null(q);

	cr_assert(run_until(fx.loop, &events.connect_failed, 3, 5));
	cr_assert_eq(events.connected, 0);
	probe p = {0};
	cr_assert_eq(queue_fetch(q, 1, on_done, &p, &err), QUEUE_ERR_DISCONNECTED);
	run_for(fx.loop, 0.05);
	cr_assert_eq(p.calls, 0);
	queue_free(q);
}

/* Frees the queue from inside the first callback. */
typedef struct free_probe {
	queue *q;
	int calls;
	int closed;
} free_probe;

static void free_in_callback(void *arg, queue_result *result)
{
	free_probe *f = arg;

	f->calls++;
	if (result->error.status == QUEUE_ERR_CLOSED)
		f->closed++;
	queue_batch_free(result->batch);
	result->batch = NULL;
	if (f->q != NULL) {
		queue *q = f->q;

		f->q = NULL;
		queue_free(q);
	}
}

Test(queue, free_inside_callback)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	free_probe f = {0};

	f.q = open_queue(&o, &events);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(queue_fetch(f.q, 1, free_in_callback, &f, NULL), QUEUE_OK);
	cr_assert(run_until(fx.loop, &f.calls, 3, 5));
	run_for(fx.loop, 0.05);
	cr_assert_eq(f.calls, 3);
	cr_assert_eq(f.closed, 2);
}

Test(queue, free_fails_pending)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);
	probe p = {0};

	cr_assert_eq(queue_fetch(q, 1, on_done, &p, NULL), QUEUE_OK);
	cr_assert_eq(queue_fetch(q, 1, on_done, &p, NULL), QUEUE_OK);
	queue_free(q);
	cr_assert_eq(p.calls, 2);
	cr_assert_eq(p.failed, 2);
	cr_assert_eq(p.last_status, QUEUE_ERR_CLOSED);
	run_for(fx.loop, 0.05);
	cr_assert_eq(p.calls, 2);
}

Test(queue, invalid_arguments_rejected)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);
	probe p = {0};
	queue_error err = {0};
	queue_message unknown = {.queue = "nope", .entry_id = "1-0"};
	const char *job = "{}";

	cr_assert_eq(queue_enqueue(q, "nope", job, 2, on_done, &p, &err), QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(queue_enqueue(q, "bulk", job, 0, on_done, &p, &err), QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(queue_fetch(q, 0, on_done, &p, &err), QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(queue_fetch(q, QUEUE_BATCH_MAX + 1, on_done, &p, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(queue_ack(q, &unknown, on_done, &p, &err), QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(queue_schedule(q, "bulk", job, 2, -1, NULL, on_done, &p, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(queue_publish_result(q, "bad id", "succeeded", "{}", on_done, &p, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(queue_dead_letter(q, &unknown, "x", on_done, &p, &err),
	             QUEUE_ERR_INVALID_ARGUMENT);
	run_for(fx.loop, 0.05);
	cr_assert_eq(p.calls, 0);
	queue_free(q);

	queue_options bad = options("w1", &events);
	const char *const bad_names[] = {"has space"};
	bad.queues = bad_names;
	bad.queue_count = 1;
	cr_assert_null(queue_new(fx.loop, &bad, &err));
	cr_assert_eq(err.status, QUEUE_ERR_INVALID_ARGUMENT);
}

Test(queue, oversized_job_has_no_body)
{
	probe events = {0};
	queue_options o = options("w1", &events);
	queue *q = open_queue(&o, &events);
	size_t big_len = QUEUE_JOB_MAX + 10;
	char *big = malloc(big_len + 1);

	memset(big, 'x', big_len);
	big[big_len] = '\0';
	redisReply *r = redisCommand(fx.web, "XADD {dc}:queue:bulk * job %b", big, big_len);
	freeReplyObject(r);

	queue_batch *got = fetch(q, 1);
	cr_assert_eq(got->count, 1);
	cr_assert_null(got->messages[0].job);
	cr_assert_eq(got->messages[0].job_len, big_len);

	free(big);
	queue_batch_free(got);
	queue_free(q);
}
