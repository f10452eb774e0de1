/*
 * A worker process: its event loop, the fetch bounded by the in-flight
 * limit, the reclaim, promoter and keep-alive timers, the signal watchers
 * and the drain.
 */
#include "worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "job.h"
#include "keepalive.h"
#include "reconcile.h"
#include "log.h"

typedef struct worker {
	struct ev_loop *loop;
	const char *config_path;
	config *cfg;
	log_ctx *log;
	token_crypto *crypto;
	dc_client *client;
	queue *queue;
	job_store *store;
	metrics *metrics;
	keepalive *keepalive;        /* NULL when keepalive_days is 0 */
	reconcile *reconcile;        /* NULL when reconcile_interval_s is 0 */
	job_env env;
	char owner[128];

	long in_flight_max;
	job **jobs;                  /* jobs in flight, in no order */
	size_t jobs_count;
	size_t jobs_capacity;

	bool fetching;               /* a fetch or reclaim reply is outstanding */
	bool promoting;
	bool draining;

	ev_timer fetch_timer;
	ev_timer reclaim_timer;
	ev_timer promote_timer;
	ev_timer keepalive_timer;
	ev_timer reconcile_timer;
	ev_timer grace_timer;
	ev_signal sigterm_watcher;
	ev_signal sigint_watcher;
	ev_signal sighup_watcher;
} worker;

static void worker_pump(worker *w);

static void log_simple(worker *w, log_level level, const char *action, const char *error,
                       const char *msg)
{
	log_fields f = {.action = action, .error = error};

	log_write(w->log, level, &f, "%s", msg);
}

/* Jobs in flight */

static bool jobs_add(worker *w, job *j)
{
	if (w->jobs_count == w->jobs_capacity) {
		size_t capacity = w->jobs_capacity == 0 ? 64 : w->jobs_capacity * 2;
		job **grown = realloc(w->jobs, capacity * sizeof(*grown));

		if (grown == NULL)
			return false;
		w->jobs = grown;
		w->jobs_capacity = capacity;
	}
	w->jobs[w->jobs_count++] = j;
	return true;
}

static void jobs_remove(worker *w, job *j)
{
	for (size_t i = 0; i < w->jobs_count; i++) {
		if (w->jobs[i] == j) {
			w->jobs[i] = w->jobs[--w->jobs_count];
			return;
		}
	}
}

static void job_done_cb(void *arg, job *j)
{
	worker *w = arg;

	jobs_remove(w, j);
	if (w->draining) {
		if (w->jobs_count == 0)
			ev_break(w->loop, EVBREAK_ALL);
		return;
	}
	/* Run after this callback returns, so the job is freed first. */
	if (!ev_is_active(&w->fetch_timer)) {
		ev_timer_set(&w->fetch_timer, 0.0, 0.0);
		ev_timer_start(w->loop, &w->fetch_timer);
	}
}

/* Starts a job for every entry of BATCH. */
static void start_batch(worker *w, queue_batch *batch)
{
	for (size_t i = 0; batch != NULL && i < batch->count; i++) {
		job *j = job_new(&w->env, &batch->messages[i]);

		if (j == NULL || !jobs_add(w, j)) {
			/* The entry stays pending and is reclaimed after the visibility timeout. */
			free(j);
			log_simple(w, LOG_LEVEL_ERROR, "fetch", "out_of_memory",
			           "no memory for a job; its entry stays pending for reclaim");
			continue;
		}
		job_start(j);
	}
}

/* Fetch and reclaim */

static void schedule_fetch(worker *w, long delay_ms)
{
	ev_timer_stop(w->loop, &w->fetch_timer);
	ev_timer_set(&w->fetch_timer, (double)delay_ms / 1000.0, 0.0);
	ev_timer_start(w->loop, &w->fetch_timer);
}

static void fetch_cb(void *arg, queue_result *result)
{
	worker *w = arg;
	size_t count = result->batch != NULL ? result->batch->count : 0;

	w->fetching = false;
	if (result->error.status != QUEUE_OK) {
		if (result->error.status != QUEUE_ERR_CLOSED) {
			log_simple(w, LOG_LEVEL_WARN, "fetch", queue_status_name(result->error.status),
			           result->error.message);
			schedule_fetch(w, WORKER_FETCH_ERROR_DELAY_MS);
		}
		return;
	}
	start_batch(w, result->batch);
	queue_batch_free(result->batch);
	result->batch = NULL;
	if (count == 0)
		schedule_fetch(w, WORKER_IDLE_POLL_MS);
	else
		worker_pump(w);
}

static size_t free_slots(const worker *w)
{
	if ((long)w->jobs_count >= w->in_flight_max)
		return 0;
	size_t slots = (size_t)w->in_flight_max - w->jobs_count;

	return slots > QUEUE_BATCH_MAX ? QUEUE_BATCH_MAX : slots;
}

/* Fetches new entries when the connection is up, nothing is outstanding and slots are free. */
static void worker_pump(worker *w)
{
	queue_error err = {0};
	size_t slots = free_slots(w);

	if (w->draining || w->fetching || slots == 0 || !queue_connected(w->queue))
		return;
	if (queue_fetch(w->queue, slots, fetch_cb, w, &err) != QUEUE_OK) {
		log_simple(w, LOG_LEVEL_WARN, "fetch", queue_status_name(err.status), err.message);
		schedule_fetch(w, WORKER_FETCH_ERROR_DELAY_MS);
		return;
	}
	w->fetching = true;
}

static void fetch_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	worker_pump(t->data);
}

static void reclaim_cb(void *arg, queue_result *result)
{
	worker *w = arg;

	w->fetching = false;
	if (result->error.status != QUEUE_OK) {
		if (result->error.status != QUEUE_ERR_CLOSED)
			log_simple(w, LOG_LEVEL_WARN, "reclaim", queue_status_name(result->error.status),
			           result->error.message);
		return;
	}
	if (result->batch != NULL && result->batch->count > 0) {
		log_fields f = {.action = "reclaim"};
		size_t dead = 0;

		for (size_t i = 0; i < result->batch->count; i++)
			dead += result->batch->messages[i].dead_lettered;
		metrics_reclaimed(w->metrics, result->batch->count, dead);
		log_write(w->log, LOG_LEVEL_INFO, &f,
		          "reclaimed %zu entries idle past the visibility timeout, %zu of them dead "
		          "letters",
		          result->batch->count, dead);
	}
	start_batch(w, result->batch);
	queue_batch_free(result->batch);
	result->batch = NULL;
	worker_pump(w);
}

static void reclaim_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	worker *w = t->data;
	queue_error err = {0};
	size_t slots = free_slots(w);

	(void)loop;
	(void)revents;
	if (w->draining || w->fetching || slots == 0 || !queue_connected(w->queue))
		return;
	if (queue_reclaim(w->queue, slots, reclaim_cb, w, &err) != QUEUE_OK) {
		log_simple(w, LOG_LEVEL_WARN, "reclaim", queue_status_name(err.status), err.message);
		return;
	}
	w->fetching = true;
}

/* Promoter */

static void promote_cb(void *arg, queue_result *result)
{
	worker *w = arg;

	w->promoting = false;
	if (result->error.status != QUEUE_OK) {
		if (result->error.status != QUEUE_ERR_CLOSED)
			log_simple(w, LOG_LEVEL_WARN, "promote", queue_status_name(result->error.status),
			           result->error.message);
		return;
	}
	if (result->dead_lettered > 0) {
		log_fields f = {.action = "promote"};

		log_write(w->log, LOG_LEVEL_WARN, &f,
		          "%lld scheduled jobs named an unknown queue and went to the dead letters",
		          result->dead_lettered);
	}
}

static void promote_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	worker *w = t->data;
	queue_error err = {0};

	(void)loop;
	(void)revents;
	if (w->draining || w->promoting || !queue_connected(w->queue))
		return;
	if (queue_promote(w->queue, WORKER_PROMOTE_BATCH, promote_cb, w, &err) != QUEUE_OK) {
		log_simple(w, LOG_LEVEL_WARN, "promote", queue_status_name(err.status), err.message);
		return;
	}
	w->promoting = true;
}

/* Refresh keep-alive */

static void keepalive_done_cb(void *arg, const keepalive_report *report)
{
	worker *w = arg;
	log_fields f = {.action = "keepalive"};

	if (report->error.status != JOB_STORE_OK) {
		f.error = job_store_status_name(report->error.status);
		log_write(w->log, LOG_LEVEL_WARN, &f, "keep-alive run failed: %s; enqueued %zu",
		          report->error.message, report->enqueued);
		return;
	}
	if (report->queue_error.status != QUEUE_OK) {
		f.error = queue_status_name(report->queue_error.status);
		log_write(w->log, LOG_LEVEL_WARN, &f, "keep-alive run failed: %s; enqueued %zu",
		          report->queue_error.message, report->enqueued);
		return;
	}
	if (report->enqueued > 0)
		log_write(w->log, LOG_LEVEL_INFO, &f,
		          "enqueued %zu refresh jobs for authorizations idle for %ld days",
		          report->enqueued, w->cfg->worker.keepalive_days);
}

static void keepalive_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	worker *w = t->data;
	job_store_error err = {0};
	job_store_status status;

	(void)loop;
	(void)revents;
	if (w->draining || w->keepalive == NULL)
		return;
	status = keepalive_run(w->keepalive, keepalive_done_cb, w, &err);
	if (status != JOB_STORE_OK && status != JOB_STORE_ERR_BUSY)
		log_simple(w, LOG_LEVEL_WARN, "keepalive", job_store_status_name(status), err.message);
}

/* The queue of keep-alive refreshes: "bulk" when configured, else the last one read. */
static const char *keepalive_queue(const config *cfg)
{
	for (size_t i = 0; i < cfg->worker.queues_count; i++)
		if (strcmp(cfg->worker.queues[i], "bulk") == 0)
			return cfg->worker.queues[i];
	return cfg->worker.queues_count > 0 ? cfg->worker.queues[cfg->worker.queues_count - 1]
	                                    : NULL;
}

/* Creates the keep-alive when keepalive_days is set. A failure is logged; the worker runs on. */
static void open_keepalive(worker *w)
{
	job_store_error err = {0};
	keepalive_options opts = {
		.idle_days = w->cfg->worker.keepalive_days,
		.queue_name = keepalive_queue(w->cfg),
	};

	if (w->cfg->worker.keepalive_days <= 0)
		return;
	w->keepalive = keepalive_new(w->store, w->queue, &opts, &err);
	if (w->keepalive == NULL)
		log_simple(w, LOG_LEVEL_ERROR, "keepalive", job_store_status_name(err.status),
		           err.message);
}

/* PostgreSQL reconciler */

static void reconciled_job_cb(void *arg, const char *id, const char *queue_name)
{
	worker *w = arg;
	log_fields f = {.action = "reconcile", .job_id = id};

	log_write(w->log, LOG_LEVEL_WARN, &f,
	          "job %s was unfinished in PostgreSQL and missing from Redis; enqueued it again "
	          "on queue %s",
	          id, queue_name);
}

static void reconcile_done_cb(void *arg, const reconcile_report *report)
{
	worker *w = arg;
	log_fields f = {.action = "reconcile"};

	if (report->error.status != JOB_STORE_OK) {
		f.error = job_store_status_name(report->error.status);
		log_write(w->log, LOG_LEVEL_WARN, &f, "reconciler run failed: %s; enqueued %zu",
		          report->error.message, report->enqueued);
	} else if (report->queue_error.status != QUEUE_OK) {
		f.error = queue_status_name(report->queue_error.status);
		log_write(w->log, LOG_LEVEL_WARN, &f, "reconciler run failed: %s; enqueued %zu",
		          report->queue_error.message, report->enqueued);
	} else if (report->enqueued > 0) {
		log_write(w->log, LOG_LEVEL_INFO, &f,
		          "reconciler enqueued %zu of %zu unfinished jobs again", report->enqueued,
		          report->examined);
	}
}

static void reconcile_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	worker *w = t->data;
	job_store_error err = {0};
	job_store_status status;

	(void)loop;
	(void)revents;
	if (w->draining || w->reconcile == NULL)
		return;
	status = reconcile_run(w->reconcile, reconcile_done_cb, reconciled_job_cb, w, &err);
	if (status != JOB_STORE_OK && status != JOB_STORE_ERR_BUSY)
		log_simple(w, LOG_LEVEL_WARN, "reconcile", job_store_status_name(status), err.message);
}

/* Creates the reconciler when reconcile_interval_s is set. A failure is logged. */
static void open_reconcile(worker *w)
{
	job_store_error err = {0};
	reconcile_options opts = {
		.owner = w->owner,
		.interval_s = w->cfg->worker.reconcile_interval_s,
		.grace_s = w->cfg->worker.reconcile_grace_s,
	};

	if (w->cfg->worker.reconcile_interval_s <= 0)
		return;
	w->reconcile = reconcile_new(w->store, w->queue, &opts, &err);
	if (w->reconcile == NULL)
		log_simple(w, LOG_LEVEL_ERROR, "reconcile", job_store_status_name(err.status),
		           err.message);
}

/* Connection events */

static void on_queue_event(void *arg, queue_event event, const char *detail)
{
	worker *w = arg;
	log_level level = event == QUEUE_EVENT_CONNECTED ? LOG_LEVEL_INFO : LOG_LEVEL_WARN;
	/* A connect is news, not an error: only failures fill the error field. */
	log_fields f = {.action = "redis",
	                .error = event == QUEUE_EVENT_CONNECTED ? NULL : queue_event_name(event)};

	log_write(w->log, level, &f, "Redis: %s", detail != NULL ? detail : "");
	if (event == QUEUE_EVENT_CONNECTED)
		worker_pump(w);
}

static void on_store_event(void *arg, job_store_event event, int slot, const char *detail)
{
	worker *w = arg;
	log_level level = event == JOB_STORE_EVENT_CONNECTED ? LOG_LEVEL_INFO : LOG_LEVEL_WARN;
	log_fields f = {.action = "postgres",
	                .error = event == JOB_STORE_EVENT_CONNECTED ? NULL
	                                                            : job_store_event_name(event)};

	log_write(w->log, level, &f, "PostgreSQL connection %d: %s", slot,
	          detail != NULL ? detail : "");
}

/* Signals */

static void grace_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	worker *w = t->data;
	log_fields f = {.action = "drain"};

	(void)revents;
	log_write(w->log, LOG_LEVEL_WARN, &f,
	          "grace period over; leaving %zu jobs unacknowledged for reclaim", w->jobs_count);
	ev_break(loop, EVBREAK_ALL);
}

static void stop_signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	worker *w = s->data;
	log_fields f = {.action = "drain"};

	(void)revents;
	if (w->draining)
		return;
	w->draining = true;
	ev_timer_stop(loop, &w->fetch_timer);
	ev_timer_stop(loop, &w->reclaim_timer);
	ev_timer_stop(loop, &w->promote_timer);
	ev_timer_stop(loop, &w->keepalive_timer);
	ev_timer_stop(loop, &w->reconcile_timer);
	log_write(w->log, LOG_LEVEL_INFO, &f,
	          "signal %d: no new jobs; waiting up to %ld s for %zu jobs in flight", s->signum,
	          w->cfg->worker.grace_period_s, w->jobs_count);
	if (w->jobs_count == 0) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	ev_timer_set(&w->grace_timer, (double)w->cfg->worker.grace_period_s, 0.0);
	ev_timer_start(loop, &w->grace_timer);
}

static void reload_signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	worker *w = s->data;
	common_error err = {0};
	config *fresh;
	log_fields f = {.action = "reload"};

	(void)loop;
	(void)revents;
	fresh = config_load(w->config_path, NULL, &err);
	if (fresh == NULL) {
		f.error = err.code;
		log_write(w->log, LOG_LEVEL_ERROR, &f, "reload failed; keeping the running settings: %s",
		          err.message);
		return;
	}

	/* Only these settings change in a running process; the rest needs a restart. */
	w->in_flight_max = fresh->worker.in_flight;
	w->cfg->worker.in_flight = fresh->worker.in_flight;

	/* Log at the lower of the two levels, so the line shows whichever way the level moves. */
	log_set_level(w->log, fresh->log.level < w->cfg->log.level ? fresh->log.level
	                                                           : w->cfg->log.level);
	log_write(w->log, LOG_LEVEL_INFO, &f, "reloaded: log level %s, in_flight %ld",
	          log_level_name(fresh->log.level), fresh->worker.in_flight);
	log_set_level(w->log, fresh->log.level);
	w->cfg->log.level = fresh->log.level;
	config_free(fresh);
	worker_pump(w);
}

/* Metrics probes */

static double in_flight_gauge(void *arg)
{
	const worker *w = arg;

	return (double)w->jobs_count;
}

static bool ready_probe(void *arg, char *detail, size_t size)
{
	const worker *w = arg;

	if (w->draining) {
		snprintf(detail, size, "draining");
		return false;
	}
	if (!queue_connected(w->queue)) {
		snprintf(detail, size, "Redis is not connected");
		return false;
	}
	if (job_store_connected(w->store) == 0) {
		snprintf(detail, size, "PostgreSQL is not connected");
		return false;
	}
	return true;
}

/*
 * Serves the metrics of worker INDEX at [metrics] listen plus INDEX. A
 * failure is logged and the worker runs on without the endpoint.
 */
static void serve_metrics(worker *w, int index)
{
	metrics_error err = {0};
	log_fields f = {.action = "metrics"};

	if (w->cfg->metrics.listen == NULL || w->cfg->metrics.listen[0] == '\0')
		return;
	if (metrics_serve(w->metrics, w->loop, w->cfg->metrics.listen, index, &err) != METRICS_OK) {
		f.error = metrics_status_name(err.status);
		log_write(w->log, LOG_LEVEL_ERROR, &f, "%s; running without the metrics endpoint",
		          err.message);
		return;
	}
	log_write(w->log, LOG_LEVEL_INFO, &f, "worker %d serves /metrics, /healthz and /readyz on port %d",
	          index, metrics_port(w->metrics));
}

/* Largest timeout of the provider sections, or 0 (the library default) when none sets one. */
static long provider_timeout(const config *cfg, bool connect)
{
	long max = 0;

	for (size_t i = 0; i < cfg->providers_count; i++) {
		long t = connect ? cfg->providers[i].connect_timeout_ms
		                 : cfg->providers[i].total_timeout_ms;

		if (t > max)
			max = t;
	}
	return max;
}

/* Start and stop */

static bool open_components(worker *w)
{
	common_error cerr = {0};
	dc_error derr = {0};
	queue_error qerr = {0};
	job_store_error serr = {0};
	const config *cfg = w->cfg;
	char host[64];

	w->crypto = token_crypto_new_from_env_or_file(cfg->worker.token_key_file, &cerr);
	if (w->crypto == NULL) {
		log_simple(w, LOG_LEVEL_ERROR, "start", cerr.code, cerr.message);
		return false;
	}

	dc_config dcc = {
		.dns_servers = cfg->dns.servers,
		.ca_file = cfg->guard.ca_file,
		.allow_networks = cfg->guard.allow_networks,
		.allow_ports = cfg->guard.allow_ports,
		.dns_timeout_ms = cfg->dns.timeout_ms,
		/* NOTE: one client serves every provider, so the largest provider timeout applies to all. */
		.connect_timeout_ms = provider_timeout(cfg, true),
		.total_timeout_ms = provider_timeout(cfg, false),
	};
	w->client = dc_client_new(w->loop, &dcc, &derr);
	if (w->client == NULL) {
		log_simple(w, LOG_LEVEL_ERROR, "start", dc_status_name(derr.status), derr.message);
		return false;
	}

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "host");
	host[sizeof(host) - 1] = '\0';
	snprintf(w->owner, sizeof(w->owner), "%s-%ld", host, (long)getpid());

	queue_options qo = {
		.host = cfg->redis.host != NULL ? cfg->redis.host : "127.0.0.1",
		.port = (int)cfg->redis.port,
		.password = cfg->redis.password,
		.db = cfg->redis.db,
		.consumer = w->owner,
		.queues = (const char *const *)cfg->worker.queues,
		.queue_count = cfg->worker.queues_count,
		.visibility_timeout_ms = cfg->worker.visibility_timeout_s * 1000,
		.max_deliveries = cfg->worker.max_reclaims,
		.dead_max_len = cfg->worker.dead_letter_max,
		.result_ttl_s = cfg->worker.result_ttl_s,
		.on_event = on_queue_event,
		.event_arg = w,
	};
	w->queue = queue_new(w->loop, &qo, &qerr);
	if (w->queue == NULL) {
		log_simple(w, LOG_LEVEL_ERROR, "start", queue_status_name(qerr.status), qerr.message);
		return false;
	}

	/* libpq reads the password from the environment, which keeps it out of conninfo. */
	if (cfg->postgres.password != NULL)
		setenv("PGPASSWORD", cfg->postgres.password, 1);
	job_store_options so = {
		.conninfo = cfg->postgres.conninfo != NULL ? cfg->postgres.conninfo : "",
		.on_event = on_store_event,
		.event_arg = w,
	};
	w->store = job_store_new(w->loop, &so, &serr);
	if (w->store == NULL) {
		log_simple(w, LOG_LEVEL_ERROR, "start", job_store_status_name(serr.status), serr.message);
		return false;
	}
	return true;
}

static void start_watchers(worker *w)
{
	double reclaim_s = (double)w->cfg->worker.visibility_timeout_s / 2.0;

	ev_init(&w->fetch_timer, fetch_timer_cb);
	w->fetch_timer.data = w;
	ev_timer_init(&w->reclaim_timer, reclaim_timer_cb, 1.0, reclaim_s);
	w->reclaim_timer.data = w;
	ev_timer_start(w->loop, &w->reclaim_timer);
	ev_timer_init(&w->promote_timer, promote_timer_cb, 0.0, WORKER_PROMOTE_INTERVAL_MS / 1000.0);
	w->promote_timer.data = w;
	ev_timer_start(w->loop, &w->promote_timer);
	ev_timer_init(&w->keepalive_timer, keepalive_timer_cb, WORKER_KEEPALIVE_FIRST_MS / 1000.0,
	              WORKER_KEEPALIVE_INTERVAL_S);
	w->keepalive_timer.data = w;
	if (w->keepalive != NULL)
		ev_timer_start(w->loop, &w->keepalive_timer);
	ev_timer_init(&w->reconcile_timer, reconcile_timer_cb,
	              (double)w->cfg->worker.reconcile_interval_s,
	              (double)w->cfg->worker.reconcile_interval_s);
	w->reconcile_timer.data = w;
	if (w->reconcile != NULL)
		ev_timer_start(w->loop, &w->reconcile_timer);
	ev_init(&w->grace_timer, grace_timer_cb);
	w->grace_timer.data = w;

	ev_signal_init(&w->sigterm_watcher, stop_signal_cb, SIGTERM);
	w->sigterm_watcher.data = w;
	ev_signal_start(w->loop, &w->sigterm_watcher);
	ev_signal_init(&w->sigint_watcher, stop_signal_cb, SIGINT);
	w->sigint_watcher.data = w;
	ev_signal_start(w->loop, &w->sigint_watcher);
	ev_signal_init(&w->sighup_watcher, reload_signal_cb, SIGHUP);
	w->sighup_watcher.data = w;
	ev_signal_start(w->loop, &w->sighup_watcher);
}

/*
 * Abandons the jobs still in flight, then closes the connections. Jobs
 * waiting on a queue or store reply are freed when that reply fails with
 * CLOSED during queue_free or job_store_free.
 */
static void close_components(worker *w)
{
	w->draining = true;
	while (w->jobs_count > 0)
		job_cancel(w->jobs[w->jobs_count - 1]);
	keepalive_free(w->keepalive);
	w->keepalive = NULL;
	reconcile_free(w->reconcile);
	w->reconcile = NULL;
	queue_free(w->queue);
	job_store_free(w->store);
	while (w->jobs_count > 0)
		job_cancel(w->jobs[w->jobs_count - 1]);
	dc_client_free(w->client);
	token_crypto_free(w->crypto);
	metrics_free(w->metrics);
}

int worker_run(const char *config_path, int index)
{
	worker w = {.config_path = config_path};
	common_error err = {0};
	int status = 1;

	w.log = log_ctx_new(stderr, LOG_LEVEL_INFO);
	if (w.log == NULL)
		return 1;
	w.cfg = config_load(config_path, w.log, &err);
	if (w.cfg == NULL) {
		log_simple(&w, LOG_LEVEL_ERROR, "start", err.code, err.message);
		goto out;
	}
	log_set_level(w.log, w.cfg->log.level);
	w.in_flight_max = w.cfg->worker.in_flight;

	w.loop = ev_loop_new(EVFLAG_AUTO);
	if (w.loop == NULL) {
		log_simple(&w, LOG_LEVEL_ERROR, "start", NULL, "no event loop");
		goto out;
	}
	w.metrics = metrics_new();
	if (w.metrics == NULL || !open_components(&w))
		goto out;
	metrics_set_probes(w.metrics, in_flight_gauge, ready_probe, &w);
	open_keepalive(&w);
	open_reconcile(&w);

	w.env = (job_env){
		.loop = w.loop,
		.cfg = w.cfg,
		.log = w.log,
		.client = w.client,
		.queue = w.queue,
		.store = w.store,
		.crypto = w.crypto,
		.owner = w.owner,
		.lease_ms = w.cfg->worker.visibility_timeout_s * 1000,
		.backoff = {.base_ms = w.cfg->worker.backoff_base_ms,
		            .cap_ms = w.cfg->worker.backoff_cap_ms},
		.metrics = w.metrics,
		.on_done = job_done_cb,
		.done_arg = &w,
	};
	start_watchers(&w);
	serve_metrics(&w, index);

	log_fields f = {.action = "start"};
	log_write(w.log, LOG_LEVEL_INFO, &f, "worker %d started as consumer %s, in_flight %ld", index,
	          w.owner, w.in_flight_max);
	ev_run(w.loop, 0);
	f.action = "stop";
	log_write(w.log, LOG_LEVEL_INFO, &f, "worker %d stopped", index);
	status = 0;
out:
	if (w.loop != NULL) {
		close_components(&w);
		ev_loop_destroy(w.loop);
	}
	free(w.jobs);
	config_free(w.cfg);
	log_ctx_free(w.log);
	return status;
}
