/*
 * The job store's connection pool: libpq connections driven by libev, one
 * query at a time per connection, a FIFO of waiting queries, deadlines and
 * reconnects with backoff.
 *
 * Each connection has one ev_io on PQsocket. While connecting, the watcher
 * follows the read or write request of PQconnectPoll. While a query runs,
 * it reads until PQisBusy is false and writes until PQflush sent everything. A
 * repeating watchdog timer enforces the connect and query deadlines and
 * fails queries that waited too long for a free connection.
 *
 * The server's statement_timeout equals the query timeout, so PostgreSQL
 * normally cancels a slow statement itself (SQLSTATE 57014). The watchdog
 * closes a connection whose query runs a grace period past that, which
 * covers a hung server or network; PQcancel is not used because it blocks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_store_conn.h"

/* Seconds past the query timeout before the watchdog closes a connection. */
#define JS_QUERY_GRACE 1.0

typedef struct js_query js_query;

struct js_query {
	js_query *next;
	const char *sql;
	int nparams;
	char *params[JOB_STORE_PARAMS_MAX];
	job_store_parse_fn parse;
	job_store_cb cb;
	void *arg;
	double queued_at;
};

typedef enum js_conn_state {
	JS_CONN_DOWN,       /* waiting for the reconnect timer */
	JS_CONN_CONNECTING, /* PQconnectPoll in progress */
	JS_CONN_IDLE,
	JS_CONN_BUSY        /* running one query */
} js_conn_state;

typedef struct js_conn {
	job_store *store;
	int slot;
	PGconn *pg;
	js_conn_state state;
	ev_io io;
	ev_timer reconnect;
	double reconnect_delay;
	double started_at;      /* connect or query start */
	js_query *query;        /* running query */
	PGresult *result;       /* the query's first error or last result */
} js_conn;

struct job_store {
	struct ev_loop *loop;
	char *conninfo;
	char server_options[64];  /* "-c statement_timeout=N" */
	size_t pool_size;
	size_t max_waiting;
	double query_timeout;
	double connect_timeout;
	double reconnect_min;
	double reconnect_max;
	job_store_event_cb on_event;
	void *event_arg;
	js_conn conns[JOB_STORE_POOL_MAX];
	js_query *wait_head;
	js_query *wait_tail;
	size_t waiting;
	ev_timer watchdog;
	bool *freed;            /* set by job_store_free while callbacks run */
};

job_store_status job_store_fail(job_store_error *err, job_store_status status, const char *fmt,
                                ...)
{
	va_list ap;

	if (err == NULL)
		return status;
	err->status = status;
	err->sqlstate[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return status;
}

static void query_free(js_query *query)
{
	if (query == NULL)
		return;
	for (int i = 0; i < query->nparams; i++)
		free(query->params[i]);
	free(query);
}

/*
 * Run QUERY's callback with RESULT and free QUERY. Returns false when the
 * callback freed the store, so the caller must not touch it again.
 */
static bool query_finish(job_store *store, js_query *query, job_store_result *result)
{
	bool freed = false;
	bool *outer = store->freed;

	store->freed = &freed;
	query->cb(query->arg, result);
	job_authorization_free(result->authorization);
	query_free(query);
	if (freed) {
		if (outer != NULL)
			*outer = true;
		return false;
	}
	store->freed = outer;
	return true;
}

static bool query_fail(job_store *store, js_query *query, job_store_status status,
                       const char *message)
{
	job_store_result result;

	memset(&result, 0, sizeof(result));
	job_store_fail(&result.error, status, "%s", message);
	return query_finish(store, query, &result);
}

/* Fail QUERY after its store was freed; touches no store. */
static void query_fail_orphan(js_query *query, job_store_status status, const char *message)
{
	job_store_result result;

	memset(&result, 0, sizeof(result));
	job_store_fail(&result.error, status, "%s", message);
	query->cb(query->arg, &result);
	job_authorization_free(result.authorization);
	query_free(query);
}

/* Report EVENT; returns false when the callback freed the store. */
static bool emit(job_store *store, job_store_event event, int slot, const char *detail)
{
	bool freed = false;
	bool *outer = store->freed;

	if (store->on_event == NULL)
		return true;
	store->freed = &freed;
	store->on_event(store->event_arg, event, slot, detail);
	if (freed) {
		if (outer != NULL)
			*outer = true;
		return false;
	}
	store->freed = outer;
	return true;
}

/* Copy libpq's error text without its trailing newline. */
static void pg_message(PGconn *pg, char *buf, size_t size)
{
	const char *text = pg != NULL ? PQerrorMessage(pg) : "out of memory";
	size_t len;

	snprintf(buf, size, "%s", text[0] != '\0' ? text : "unknown error");
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
}

static void conn_watch(js_conn *c, int events)
{
	struct ev_loop *loop = c->store->loop;

	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, PQsocket(c->pg), events);
	ev_io_start(loop, &c->io);
}

static void schedule_reconnect(js_conn *c)
{
	job_store *store = c->store;

	ev_timer_stop(store->loop, &c->reconnect);
	ev_timer_set(&c->reconnect, c->reconnect_delay, 0.);
	ev_timer_start(store->loop, &c->reconnect);
	c->reconnect_delay *= 2;
	if (c->reconnect_delay > store->reconnect_max)
		c->reconnect_delay = store->reconnect_max;
}

/*
 * Close C's connection, schedule a reconnect, report it and fail its
 * running query with STATUS. Returns false when a callback freed the store.
 */
static bool conn_lost(js_conn *c, job_store_status status, const char *detail)
{
	job_store *store = c->store;
	bool was_up = c->state == JS_CONN_IDLE || c->state == JS_CONN_BUSY;
	js_query *query = c->query;
	char message[JOB_STORE_MESSAGE_MAX];

	ev_io_stop(store->loop, &c->io);
	PQclear(c->result);
	c->result = NULL;
	c->query = NULL;
	PQfinish(c->pg);
	c->pg = NULL;
	c->state = JS_CONN_DOWN;
	schedule_reconnect(c);

	if (!emit(store, was_up ? JOB_STORE_EVENT_LOST : JOB_STORE_EVENT_CONNECT_FAILED, c->slot,
	          detail)) {
		if (query != NULL)
			query_fail_orphan(query, status, detail);
		return false;
	}
	if (query == NULL)
		return true;
	snprintf(message, sizeof(message), "no reply from PostgreSQL: %s", detail);
	return query_fail(store, query, status, message);
}

static void dispatch(job_store *store);

/* Send QUERY on idle connection C; false when the connection broke. */
static bool conn_send(js_conn *c, js_query *query)
{
	int flushed;

	if (!PQsendQueryParams(c->pg, query->sql, query->nparams, NULL,
	                       (const char *const *)query->params, NULL, NULL, 0))
		return false;
	c->query = query;
	c->state = JS_CONN_BUSY;
	c->started_at = ev_now(c->store->loop);
	flushed = PQflush(c->pg);
	if (flushed < 0)
		return false;
	conn_watch(c, flushed == 1 ? EV_READ | EV_WRITE : EV_READ);
	return true;
}

/* Deliver the finished query of C and make C idle. */
static bool conn_complete(js_conn *c)
{
	job_store *store = c->store;
	js_query *query = c->query;
	PGresult *res = c->result;
	job_store_result result;
	ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	c->query = NULL;
	c->result = NULL;
	c->state = JS_CONN_IDLE;
	conn_watch(c, EV_READ);
	memset(&result, 0, sizeof(result));

	if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
		query->parse(res, &result);
	} else {
		const char *sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		const char *text = res != NULL ? PQresultErrorMessage(res) : "no result";

		job_store_fail(&result.error, JOB_STORE_ERR_QUERY, "PostgreSQL query failed: %.180s",
		               text);
		snprintf(result.error.sqlstate, sizeof(result.error.sqlstate), "%s",
		         sqlstate != NULL ? sqlstate : "");
	}
	PQclear(res);
	return query_finish(store, query, &result);
}

/* Read what arrived for C's running query; deliver it once complete. */
static bool conn_read(js_conn *c)
{
	char detail[JOB_STORE_MESSAGE_MAX];

	if (!PQconsumeInput(c->pg)) {
		pg_message(c->pg, detail, sizeof(detail));
		return conn_lost(c, JOB_STORE_ERR_DISCONNECTED, detail);
	}
	while (!PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (res == NULL)
			return c->query != NULL ? conn_complete(c) : true;

		/* Keep the first error; otherwise keep the last result. */
		if (c->result != NULL && PQresultStatus(c->result) == PGRES_FATAL_ERROR) {
			PQclear(res);
		} else {
			PQclear(c->result);
			c->result = res;
		}
	}
	return true;
}

static void on_io_connecting(js_conn *c)
{
	char detail[JOB_STORE_MESSAGE_MAX];

	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		conn_watch(c, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		conn_watch(c, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		break;
	default:
		pg_message(c->pg, detail, sizeof(detail));
		conn_lost(c, JOB_STORE_ERR_DISCONNECTED, detail);
		return;
	}

	PQsetnonblocking(c->pg, 1);
	c->state = JS_CONN_IDLE;
	c->reconnect_delay = c->store->reconnect_min;
	conn_watch(c, EV_READ);
	snprintf(detail, sizeof(detail), "connected to PostgreSQL (pool slot %d)", c->slot);
	if (emit(c->store, JOB_STORE_EVENT_CONNECTED, c->slot, detail))
		dispatch(c->store);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	js_conn *c = w->data;
	job_store *store = c->store;
	char detail[JOB_STORE_MESSAGE_MAX];

	(void)loop;
	if (c->state == JS_CONN_CONNECTING) {
		on_io_connecting(c);
		return;
	}
	if ((revents & EV_WRITE) && c->state == JS_CONN_BUSY) {
		int flushed = PQflush(c->pg);

		if (flushed < 0) {
			pg_message(c->pg, detail, sizeof(detail));
			conn_lost(c, JOB_STORE_ERR_DISCONNECTED, detail);
			return;
		}
		if (flushed == 0)
			conn_watch(c, EV_READ);
	}
	if (!(revents & EV_READ))
		return;
	if (c->state == JS_CONN_IDLE) {
		/* An idle connection only reads notices or the server closing it. */
		if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
			pg_message(c->pg, detail, sizeof(detail));
			conn_lost(c, JOB_STORE_ERR_DISCONNECTED, detail);
		}
		return;
	}
	if (conn_read(c) && c->state == JS_CONN_IDLE)
		dispatch(store);
}

static void conn_start(js_conn *c)
{
	job_store *store = c->store;
	char detail[JOB_STORE_MESSAGE_MAX];
	const char *keywords[] = {"dbname", "options", NULL};
	const char *values[] = {store->conninfo, store->server_options, NULL};

	c->pg = PQconnectStartParams(keywords, values, 1);
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD || PQsocket(c->pg) < 0) {
		pg_message(c->pg, detail, sizeof(detail));
		c->state = JS_CONN_CONNECTING;
		conn_lost(c, JOB_STORE_ERR_DISCONNECTED, detail);
		return;
	}
	c->state = JS_CONN_CONNECTING;
	c->started_at = ev_now(store->loop);

	/* PQconnectStart leaves the first step to PQconnectPoll on a writable socket. */
	conn_watch(c, EV_WRITE);
}

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	conn_start(w->data);
}

/* Send waiting queries on idle connections, oldest first. */
static void dispatch(job_store *store)
{
	for (size_t i = 0; i < store->pool_size && store->wait_head != NULL; i++) {
		js_conn *c = &store->conns[i];
		js_query *query;
		char detail[JOB_STORE_MESSAGE_MAX];

		if (c->state != JS_CONN_IDLE)
			continue;
		query = store->wait_head;
		store->wait_head = query->next;
		if (store->wait_head == NULL)
			store->wait_tail = NULL;
		store->waiting--;
		query->next = NULL;

		if (!conn_send(c, query)) {
			/* The query did not reach the server; put it back in front. */
			c->query = NULL;
			query->next = store->wait_head;
			store->wait_head = query;
			if (store->wait_tail == NULL)
				store->wait_tail = query;
			store->waiting++;
			pg_message(c->pg, detail, sizeof(detail));
			if (!conn_lost(c, JOB_STORE_ERR_DISCONNECTED, detail))
				return;
		}
	}
}

/* Fail waiting queries older than the query timeout. */
static bool expire_waiting(job_store *store, double now)
{
	char message[JOB_STORE_MESSAGE_MAX];

	while (store->wait_head != NULL && now - store->wait_head->queued_at > store->query_timeout) {
		js_query *query = store->wait_head;

		store->wait_head = query->next;
		if (store->wait_head == NULL)
			store->wait_tail = NULL;
		store->waiting--;
		snprintf(message, sizeof(message),
		         "no PostgreSQL connection became free within %.0f ms",
		         store->query_timeout * 1000);
		if (!query_fail(store, query, JOB_STORE_ERR_TIMEOUT, message))
			return false;
	}
	return true;
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	job_store *store = w->data;
	double now = ev_now(loop);
	char detail[JOB_STORE_MESSAGE_MAX];

	(void)revents;
	for (size_t i = 0; i < store->pool_size; i++) {
		js_conn *c = &store->conns[i];

		if (c->state == JS_CONN_CONNECTING && now - c->started_at > store->connect_timeout) {
			snprintf(detail, sizeof(detail), "connect to PostgreSQL timed out after %.0f ms",
			         store->connect_timeout * 1000);
			if (!conn_lost(c, JOB_STORE_ERR_DISCONNECTED, detail))
				return;
		} else if (c->state == JS_CONN_BUSY &&
		           now - c->started_at > store->query_timeout + JS_QUERY_GRACE) {
			snprintf(detail, sizeof(detail), "no reply to a query within %.0f ms",
			         (store->query_timeout + JS_QUERY_GRACE) * 1000);
			if (!conn_lost(c, JOB_STORE_ERR_TIMEOUT, detail))
				return;
		}
	}
	expire_waiting(store, now);
}

job_store_status job_store_submit(job_store *store, const char *sql, int nparams,
                                  const char *const *params, job_store_parse_fn parse,
                                  job_store_cb cb, void *arg, job_store_error *err)
{
	js_query *query;

	if (store->waiting >= store->max_waiting)
		return job_store_fail(err, JOB_STORE_ERR_BUSY,
		                      "%zu PostgreSQL queries are already waiting; retry later",
		                      store->waiting);
	query = calloc(1, sizeof(*query));
	if (query == NULL)
		return job_store_fail(err, JOB_STORE_ERR_NOMEM, "out of memory for a query");
	query->sql = sql;
	query->parse = parse;
	query->cb = cb;
	query->arg = arg;
	query->queued_at = ev_now(store->loop);
	for (int i = 0; i < nparams; i++) {
		query->nparams = i + 1;
		if (params[i] == NULL)
			continue;
		query->params[i] = strdup(params[i]);
		if (query->params[i] == NULL) {
			query_free(query);
			return job_store_fail(err, JOB_STORE_ERR_NOMEM, "out of memory for a query");
		}
	}

	if (store->wait_tail != NULL)
		store->wait_tail->next = query;
	else
		store->wait_head = query;
	store->wait_tail = query;
	store->waiting++;
	dispatch(store);
	return JOB_STORE_OK;
}

static long default_long(long value, long fallback)
{
	return value > 0 ? value : fallback;
}

job_store *job_store_new(struct ev_loop *loop, const job_store_options *opts,
                         job_store_error *err)
{
	job_store *store;
	double tick;

	if (loop == NULL || opts == NULL || opts->conninfo == NULL) {
		job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT, "loop, options or conninfo missing");
		return NULL;
	}
	if (opts->pool_size > JOB_STORE_POOL_MAX) {
		job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		               "pool size %zu is out of range (1 to %d)", opts->pool_size,
		               JOB_STORE_POOL_MAX);
		return NULL;
	}
	store = calloc(1, sizeof(*store));
	if (store == NULL || (store->conninfo = strdup(opts->conninfo)) == NULL) {
		free(store);
		job_store_fail(err, JOB_STORE_ERR_NOMEM, "out of memory");
		return NULL;
	}

	store->loop = loop;
	store->pool_size = opts->pool_size > 0 ? opts->pool_size : 2;
	store->max_waiting = opts->max_waiting > 0 ? opts->max_waiting : 1000;
	store->query_timeout = default_long(opts->query_timeout_ms, 10000) / 1000.0;
	store->connect_timeout = default_long(opts->connect_timeout_ms, 5000) / 1000.0;
	store->reconnect_min = default_long(opts->reconnect_min_ms, 100) / 1000.0;
	store->reconnect_max = default_long(opts->reconnect_max_ms, 5000) / 1000.0;
	if (store->reconnect_max < store->reconnect_min)
		store->reconnect_max = store->reconnect_min;
	store->on_event = opts->on_event;
	store->event_arg = opts->event_arg;

	/* The server cancels a statement that outlives the query timeout. */
	snprintf(store->server_options, sizeof(store->server_options),
	         "-c statement_timeout=%.0f", store->query_timeout * 1000);

	/* Check four times per deadline, between every 5 ms and every 250 ms. */
	tick = (store->query_timeout < store->connect_timeout ? store->query_timeout
	                                                      : store->connect_timeout) / 4;
	if (tick < 0.005)
		tick = 0.005;
	if (tick > 0.25)
		tick = 0.25;
	ev_timer_init(&store->watchdog, on_watchdog, tick, tick);
	store->watchdog.data = store;
	ev_timer_start(loop, &store->watchdog);

	/* Connect from the loop, so events reach the owner after job_store_new. */
	for (size_t i = 0; i < store->pool_size; i++) {
		js_conn *c = &store->conns[i];

		c->store = store;
		c->slot = (int)i;
		c->reconnect_delay = store->reconnect_min;
		ev_init(&c->io, on_io);
		c->io.data = c;
		ev_timer_init(&c->reconnect, on_reconnect, 0., 0.);
		c->reconnect.data = c;
		ev_timer_start(loop, &c->reconnect);
	}
	return store;
}

void job_store_free(job_store *store)
{
	js_query *closing = NULL;

	if (store == NULL)
		return;
	if (store->freed != NULL)
		*store->freed = true;
	ev_timer_stop(store->loop, &store->watchdog);

	/* Collect running and waiting queries, then close every connection. */
	for (size_t i = 0; i < store->pool_size; i++) {
		js_conn *c = &store->conns[i];

		ev_io_stop(store->loop, &c->io);
		ev_timer_stop(store->loop, &c->reconnect);
		if (c->query != NULL) {
			c->query->next = closing;
			closing = c->query;
		}
		PQclear(c->result);
		PQfinish(c->pg);
	}
	while (store->wait_head != NULL) {
		js_query *query = store->wait_head;

		store->wait_head = query->next;
		query->next = closing;
		closing = query;
	}
	free(store->conninfo);
	free(store);

	/* The store is gone; callbacks see JOB_STORE_ERR_CLOSED and no store. */
	while (closing != NULL) {
		js_query *query = closing;

		closing = query->next;
		query_fail_orphan(query, JOB_STORE_ERR_CLOSED,
		                  "the job store was closed before the reply");
	}
}

size_t job_store_connected(const job_store *store)
{
	size_t up = 0;

	if (store == NULL)
		return 0;
	for (size_t i = 0; i < store->pool_size; i++) {
		if (store->conns[i].state == JS_CONN_IDLE || store->conns[i].state == JS_CONN_BUSY)
			up++;
	}
	return up;
}
