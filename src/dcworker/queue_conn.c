/*
 * The queue's Redis connection: connect, pending commands in send order,
 * deadlines, loss and reconnect with backoff.
 *
 * hiredis 0.14 has no timeouts in its async API, so one repeating libev timer
 * (the watchdog) checks the connect deadline and the oldest pending command.
 * Replies arrive in send order, so the oldest command is the one to check.
 * When a deadline passes the connection is dropped and every pending command
 * fails with QUEUE_ERR_TIMEOUT, because all of them wait behind the oldest.
 *
 * Ownership of a command: hiredis holds one reference (released in the reply
 * callback, which hiredis also calls with a NULL reply when it frees the
 * context) and the pending list holds one (released once the caller's
 * callback ran). A command detached from the queue (cmd->q == NULL) has had
 * or will get its failure delivered by us, so its hiredis callback only
 * drops the reference.
 *
 * hiredis must not see its context freed from inside its connect callback,
 * so the "connected" event is reported from a zero-delay timer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>

#include "queue_conn.h"

struct queue_cmd {
	queue_cmd *prev;
	queue_cmd *next;
	queue *q;          /* NULL once detached */
	int refs;
	double sent_at;
	queue_parse_fn parse;
	queue_cb cb;       /* NULL for the queue's own setup commands */
	void *arg;
};

queue_status queue_fail(queue_error *err, queue_status status, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return status;
	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return status;
}

static void cmd_release(queue_cmd *cmd)
{
	cmd->refs--;
	if (cmd->refs == 0)
		free(cmd);
}

static void cmd_unlink(queue *q, queue_cmd *cmd)
{
	if (cmd->prev != NULL)
		cmd->prev->next = cmd->next;
	else
		q->head = cmd->next;
	if (cmd->next != NULL)
		cmd->next->prev = cmd->prev;
	else
		q->tail = cmd->prev;
	cmd->prev = NULL;
	cmd->next = NULL;
}

/* Detach every pending command and return them as a list, oldest first. */
static queue_cmd *cmds_detach(queue *q)
{
	queue_cmd *list = q->head;

	for (queue_cmd *cmd = list; cmd != NULL; cmd = cmd->next)
		cmd->q = NULL;
	q->head = NULL;
	q->tail = NULL;
	return list;
}

/*
 * Run the callbacks of a detached list with STATUS and release the list's
 * references. Touches no queue, so a callback may free the queue.
 */
static void cmds_fail(queue_cmd *list, queue_status status, const char *message)
{
	while (list != NULL) {
		queue_cmd *cmd = list;
		queue_result result;

		list = cmd->next;
		cmd->next = NULL;
		cmd->prev = NULL;
		if (cmd->cb != NULL) {
			memset(&result, 0, sizeof(result));
			queue_fail(&result.error, status, "%s", message);
			cmd->cb(cmd->arg, &result);
		}
		cmd_release(cmd);
	}
}

/* Report EVENT to the owner. Returns false when the callback freed Q. */
static bool emit(queue *q, queue_event event, const char *detail)
{
	bool freed = false;
	bool *outer = q->freed;

	if (q->on_event == NULL)
		return true;
	q->freed = &freed;
	q->on_event(q->event_arg, event, detail);
	if (freed) {
		if (outer != NULL)
			*outer = true;
		return false;
	}
	q->freed = outer;
	return true;
}

static void schedule_reconnect(queue *q)
{
	double delay = q->reconnect_delay;

	q->reconnect_delay *= 2;
	if (q->reconnect_delay > q->reconnect_max)
		q->reconnect_delay = q->reconnect_max;
	ev_timer_stop(q->loop, &q->reconnect);
	ev_timer_set(&q->reconnect, delay, 0.);
	ev_timer_start(q->loop, &q->reconnect);
}

/*
 * Forget the connection, schedule a reconnect, report the loss and fail
 * every pending command. FREE_AC is false when hiredis is already freeing
 * the context (disconnect, failed connect, NULL reply). The caller must not
 * touch Q afterwards, because a callback may free it.
 */
static void connection_lost(queue *q, queue_status status, const char *detail, bool free_ac)
{
	redisAsyncContext *ac = q->ac;
	bool was_connected = q->connected;
	queue_cmd *list = cmds_detach(q);
	char message[QUEUE_MESSAGE_MAX];

	q->ac = NULL;
	q->connected = false;
	if (ac != NULL)
		ac->data = NULL;
	schedule_reconnect(q);
	if (free_ac && ac != NULL)
		redisAsyncFree(ac);

	snprintf(message, sizeof(message), "no reply before the connection closed: %s", detail);
	emit(q, was_connected ? QUEUE_EVENT_LOST : QUEUE_EVENT_CONNECT_FAILED, detail);
	cmds_fail(list, status, message);
}

/*
 * Report EVENT from a zero-delay timer: hiredis's connect callback and
 * queue_new must not run the owner's callback, which may free the queue.
 */
static void emit_later(queue *q, queue_event event, const char *detail)
{
	q->notify_event = event;
	snprintf(q->notify_detail, sizeof(q->notify_detail), "%s", detail);
	ev_timer_stop(q->loop, &q->notify);
	ev_timer_set(&q->notify, 0., 0.);
	ev_timer_start(q->loop, &q->notify);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	queue *q = ac->data;
	char detail[QUEUE_MESSAGE_MAX];

	if (q == NULL)
		return;
	if (status != REDIS_OK) {
		snprintf(detail, sizeof(detail), "connect to Redis at %s:%d failed: %s", q->host,
		         q->port, ac->errstr);
		connection_lost(q, QUEUE_ERR_DISCONNECTED, detail, false);
		return;
	}

	q->connected = true;
	q->reconnect_delay = q->reconnect_min;
	snprintf(detail, sizeof(detail), "connected to Redis at %s:%d", q->host, q->port);
	emit_later(q, QUEUE_EVENT_CONNECTED, detail);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	queue *q = ac->data;
	char detail[QUEUE_MESSAGE_MAX];

	(void)status;
	if (q == NULL)
		return;
	snprintf(detail, sizeof(detail), "connection to Redis at %s:%d closed: %s", q->host,
	         q->port, ac->err != 0 ? ac->errstr : "closed by the server");
	connection_lost(q, QUEUE_ERR_DISCONNECTED, detail, false);
}

static void on_notify(struct ev_loop *loop, ev_timer *w, int revents)
{
	queue *q = w->data;

	(void)loop;
	(void)revents;
	if (q->notify_event == QUEUE_EVENT_CONNECTED && !q->connected)
		return;
	emit(q, q->notify_event, q->notify_detail);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	queue_cmd *cmd = privdata;
	queue *q = cmd->q;
	const redisReply *reply = r;
	queue_result result;

	(void)ac;
	if (q == NULL) {
		cmd_release(cmd);
		return;
	}
	if (reply == NULL) {
		/* hiredis is freeing the context: the connection is gone. */
		connection_lost(q, QUEUE_ERR_DISCONNECTED, "connection closed", false);
		cmd_release(cmd);
		return;
	}

	cmd_unlink(q, cmd);
	cmd->q = NULL;
	memset(&result, 0, sizeof(result));
	cmd->parse(q, reply, &result);
	if (cmd->cb != NULL) {
		cmd->cb(cmd->arg, &result);
	} else if (result.error.status != QUEUE_OK) {
		emit(q, QUEUE_EVENT_ERROR, result.error.message);
	}
	queue_batch_free(result.batch);

	/* Drop the pending list's reference, then hiredis's. */
	cmd->refs--;
	cmd_release(cmd);
}

static queue_status send_argv(queue *q, int argc, const char **argv, const size_t *argvlen,
                              queue_parse_fn parse, queue_cb cb, void *arg, queue_error *err)
{
	queue_cmd *cmd = calloc(1, sizeof(*cmd));

	if (cmd == NULL)
		return queue_fail(err, QUEUE_ERR_NOMEM, "out of memory for a Redis command");
	cmd->q = q;
	cmd->refs = 2;
	cmd->sent_at = ev_now(q->loop);
	cmd->parse = parse;
	cmd->cb = cb;
	cmd->arg = arg;

	if (redisAsyncCommandArgv(q->ac, on_reply, cmd, argc, argv, argvlen) != REDIS_OK) {
		free(cmd);
		return queue_fail(err, QUEUE_ERR_DISCONNECTED,
		                  "Redis connection to %s:%d is closing", q->host, q->port);
	}

	cmd->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = cmd;
	else
		q->head = cmd;
	q->tail = cmd;
	return QUEUE_OK;
}

queue_status queue_conn_send(queue *q, int argc, const char **argv, const size_t *argvlen,
                             queue_parse_fn parse, queue_cb cb, void *arg, queue_error *err)
{
	if (q->ac == NULL)
		return queue_fail(err, QUEUE_ERR_DISCONNECTED,
		                  "not connected to Redis at %s:%d; reconnecting", q->host, q->port);
	return send_argv(q, argc, argv, argvlen, parse, cb, arg, err);
}

static void parse_group_create(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply->type != REDIS_REPLY_ERROR)
		return;
	if (strncmp(reply->str, "BUSYGROUP", 9) == 0)
		return;
	queue_fail(&result->error, QUEUE_ERR_REDIS,
	           "creating consumer group dcworker on Redis %s:%d failed: %.120s", q->host,
	           q->port, reply->str);
}

static void parse_setup(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply->type != REDIS_REPLY_ERROR)
		return;
	queue_fail(&result->error, QUEUE_ERR_REDIS, "connection setup on Redis %s:%d failed: %.120s",
	           q->host, q->port, reply->str);
}

/* Queue AUTH and SELECT when configured; they run before anything else on the connection. */
static void send_setup(queue *q)
{
	if (q->password != NULL) {
		const char *argv[] = {"AUTH", q->password};
		size_t argvlen[] = {4, strlen(q->password)};

		send_argv(q, 2, argv, argvlen, parse_setup, NULL, NULL, NULL);
	}
	if (q->db != 0) {
		char db[24];
		const char *argv[] = {"SELECT", db};
		size_t argvlen[2];

		snprintf(db, sizeof(db), "%ld", q->db);
		argvlen[0] = 6;
		argvlen[1] = strlen(db);
		send_argv(q, 2, argv, argvlen, parse_setup, NULL, NULL, NULL);
	}
}

/* Queue XGROUP CREATE for every stream; they run before any caller command. */
static void create_groups(queue *q)
{
	for (size_t i = 0; i < q->queue_count; i++) {
		const char *argv[] = {"XGROUP", "CREATE", q->keys[i], "dcworker", "0", "MKSTREAM"};
		size_t argvlen[6];

		for (size_t a = 0; a < 6; a++)
			argvlen[a] = strlen(argv[a]);
		send_argv(q, 6, argv, argvlen, parse_group_create, NULL, NULL, NULL);
	}
}

static void connect_now(queue *q)
{
	redisAsyncContext *ac = redisAsyncConnect(q->host, q->port);
	char detail[QUEUE_MESSAGE_MAX];

	if (ac == NULL || ac->err != 0) {
		snprintf(detail, sizeof(detail), "connect to Redis at %s:%d failed: %s", q->host,
		         q->port, ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_reconnect(q);
		emit_later(q, QUEUE_EVENT_CONNECT_FAILED, detail);
		return;
	}

	ac->data = q;
	redisLibevAttach(q->loop, ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	q->ac = ac;
	q->connected = false;
	q->connect_started = ev_now(q->loop);
	send_setup(q);
	create_groups(q);
}

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	connect_now(w->data);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	queue *q = w->data;
	double now = ev_now(loop);
	char detail[QUEUE_MESSAGE_MAX];

	(void)revents;
	if (q->ac == NULL)
		return;
	if (!q->connected && now - q->connect_started > q->connect_timeout) {
		snprintf(detail, sizeof(detail), "connect to Redis at %s:%d timed out after %.0f ms",
		         q->host, q->port, q->connect_timeout * 1000);
		connection_lost(q, QUEUE_ERR_DISCONNECTED, detail, true);
		return;
	}
	if (q->head != NULL && now - q->head->sent_at > q->command_timeout) {
		snprintf(detail, sizeof(detail), "no reply from Redis at %s:%d within %.0f ms",
		         q->host, q->port, q->command_timeout * 1000);
		connection_lost(q, QUEUE_ERR_TIMEOUT, detail, true);
	}
}

void queue_conn_start(queue *q)
{
	double tick = q->command_timeout < q->connect_timeout ? q->command_timeout
	                                                      : q->connect_timeout;

	/* Check four times per deadline, but not more often than every 5 ms. */
	tick /= 4;
	if (tick < 0.005)
		tick = 0.005;
	if (tick > 0.25)
		tick = 0.25;
	ev_timer_init(&q->watchdog, on_watchdog, tick, tick);
	q->watchdog.data = q;
	ev_timer_start(q->loop, &q->watchdog);
	ev_timer_init(&q->reconnect, on_reconnect, 0., 0.);
	q->reconnect.data = q;
	ev_timer_init(&q->notify, on_notify, 0., 0.);
	q->notify.data = q;
	q->reconnect_delay = q->reconnect_min;
	connect_now(q);
}

void queue_conn_close(queue *q)
{
	redisAsyncContext *ac = q->ac;
	queue_cmd *list = cmds_detach(q);

	ev_timer_stop(q->loop, &q->watchdog);
	ev_timer_stop(q->loop, &q->reconnect);
	ev_timer_stop(q->loop, &q->notify);
	q->ac = NULL;
	q->connected = false;
	if (ac != NULL) {
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	if (q->freed != NULL)
		*q->freed = true;
	cmds_fail(list, QUEUE_ERR_CLOSED, "the queue was closed before the reply");
}
