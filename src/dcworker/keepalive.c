/*
 * Refresh keep-alive: marks idle authorizations in PostgreSQL one at a time
 * and enqueues a refresh job for each. See keepalive.h.
 */
#include "keepalive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "job_store_conn.h"
#include "queue_conn.h"

#define KEEPALIVE_DEFAULT_PERIOD_S 86400L
#define KEEPALIVE_DEFAULT_QUEUE "bulk"
#define KEEPALIVE_DEFAULT_MAX_PER_RUN 1000
#define KEEPALIVE_IDLE_DAYS_MAX 3650L
/* Length of an authorization id: a UUID in its 36-character text form. */
#define KEEPALIVE_ID_LEN 36

/*
 * Mark the idle authorization unused longest. $1 idle days, $2 period in s.
 * Returns its id and the mark time in microseconds since the epoch.
 */
static const char sql_mark[] =
	"UPDATE dc_authorizations SET keepalive_enqueued_at = now()"
	" WHERE id = (SELECT id FROM dc_authorizations"
	" WHERE status = 'active' AND refresh_token IS NOT NULL"
	" AND coalesce(refresh_token_used_at, created_at) < now() - $1::bigint * interval '1 day'"
	" AND (keepalive_enqueued_at IS NULL"
	" OR keepalive_enqueued_at < now() - $2::bigint * interval '1 second')"
	" ORDER BY coalesce(refresh_token_used_at, created_at)"
	" LIMIT 1 FOR UPDATE SKIP LOCKED)"
	" RETURNING id::text, (extract(epoch FROM keepalive_enqueued_at) * 1000000)::bigint";

/* Remove the mark set at $2 (microseconds) from authorization $1 after a failed XADD. */
static const char sql_unmark[] =
	"UPDATE dc_authorizations SET keepalive_enqueued_at = NULL WHERE id = $1::uuid"
	" AND (extract(epoch FROM keepalive_enqueued_at) * 1000000)::bigint = $2::bigint";

struct keepalive {
	job_store *store;
	queue *q;
	long idle_days;
	long period_s;
	char queue_name[QUEUE_NAME_MAX + 1];
	size_t max_per_run;

	bool running;
	bool freed;             /* keepalive_free ran during a run: free at its next callback */
	keepalive_cb cb;
	void *cb_arg;
	keepalive_report report;
	char id[KEEPALIVE_ID_LEN + 1];  /* authorization marked by the current step */
	long long marked_us;
};

static void mark_next(keepalive *k);

/* End the run: report, unless K was freed meanwhile. */
static void finish(keepalive *k)
{
	keepalive_report report = k->report;
	keepalive_cb cb = k->cb;
	void *arg = k->cb_arg;

	k->running = false;
	if (k->freed) {
		free(k);
		return;
	}
	cb(arg, &report);
}

/* Store the marked row's id in RESULT->authorization and the mark time in version. */
static void parse_mark(const PGresult *res, job_store_result *result)
{
	char *end;

	if (PQntuples(res) == 0)
		return;
	if (PQntuples(res) != 1 || PQnfields(res) != 2 ||
	    strlen(PQgetvalue(res, 0, 0)) != KEEPALIVE_ID_LEN) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "keep-alive mark returned %d rows of an unexpected shape", PQntuples(res));
		return;
	}
	result->version = strtoll(PQgetvalue(res, 0, 1), &end, 10);
	if (*end != '\0' || result->version <= 0) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "keep-alive mark returned an invalid time");
		return;
	}
	result->authorization = calloc(1, sizeof(*result->authorization));
	if (result->authorization == NULL || (result->authorization->id =
	                                          strdup(PQgetvalue(res, 0, 0))) == NULL) {
		job_authorization_free(result->authorization);
		result->authorization = NULL;
		job_store_fail(&result->error, JOB_STORE_ERR_NOMEM, "out of memory");
	}
}

static void parse_none(const PGresult *res, job_store_result *result)
{
	(void)res;
	(void)result;
}

static void on_unmarked(void *arg, job_store_result *result)
{
	keepalive *k = arg;

	if (result->error.status != JOB_STORE_OK && k->report.error.status == JOB_STORE_OK)
		k->report.error = result->error;
	finish(k);
}

/* The XADD failed: remove the mark so the next run retries, then end the run. */
static void unmark(keepalive *k)
{
	char marked[24];
	job_store_error err;

	snprintf(marked, sizeof(marked), "%lld", k->marked_us);
	const char *params[] = {k->id, marked};
	if (job_store_submit(k->store, sql_unmark, 2, params, parse_none, on_unmarked, k, &err) !=
	    JOB_STORE_OK) {
		k->report.error = err;
		finish(k);
	}
}

static void on_enqueued(void *arg, queue_result *result)
{
	keepalive *k = arg;

	if (k->freed) {
		finish(k);
		return;
	}
	if (result->error.status != QUEUE_OK) {
		k->report.queue_error = result->error;
		unmark(k);
		return;
	}
	k->report.enqueued++;
	mark_next(k);
}

/*
 * Build the refresh job for the marked authorization. The id makes a
 * repeated delivery of the same job idempotent.
 */
static char *refresh_job_json(const keepalive *k)
{
	char job_id[96];
	json_t *job;
	char *text;

	snprintf(job_id, sizeof(job_id), "keepalive:%s:%lld", k->id, k->marked_us / 1000000);
	job = json_pack("{s:s, s:s, s:s}", "id", job_id, "type", "refresh", "authorization_id",
	                k->id);
	if (job == NULL)
		return NULL;
	text = json_dumps(job, JSON_COMPACT);
	json_decref(job);
	return text;
}

static void on_marked(void *arg, job_store_result *result)
{
	keepalive *k = arg;
	queue_error qerr;
	char *job;

	if (k->freed || result->error.status != JOB_STORE_OK || result->authorization == NULL) {
		if (!k->freed)
			k->report.error = result->error;
		finish(k);
		return;
	}
	snprintf(k->id, sizeof(k->id), "%s", result->authorization->id);
	k->marked_us = result->version;

	job = refresh_job_json(k);
	if (job == NULL) {
		queue_fail(&k->report.queue_error, QUEUE_ERR_NOMEM, "out of memory");
		unmark(k);
		return;
	}
	if (queue_enqueue(k->q, k->queue_name, job, strlen(job), on_enqueued, k, &qerr) !=
	    QUEUE_OK) {
		k->report.queue_error = qerr;
		unmark(k);
	}
	free(job);
}

static void mark_next(keepalive *k)
{
	char idle[24];
	char period[24];
	job_store_error err;

	if (k->report.enqueued >= k->max_per_run) {
		finish(k);
		return;
	}
	snprintf(idle, sizeof(idle), "%ld", k->idle_days);
	snprintf(period, sizeof(period), "%ld", k->period_s);
	const char *params[] = {idle, period};
	if (job_store_submit(k->store, sql_mark, 2, params, parse_mark, on_marked, k, &err) !=
	    JOB_STORE_OK) {
		k->report.error = err;
		finish(k);
	}
}

keepalive *keepalive_new(job_store *store, queue *q, const keepalive_options *opts,
                         job_store_error *err)
{
	keepalive *k;
	const char *name;

	if (store == NULL || q == NULL || opts == NULL) {
		job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT, "store, queue or options missing");
		return NULL;
	}
	name = opts->queue_name != NULL ? opts->queue_name : KEEPALIVE_DEFAULT_QUEUE;
	if (opts->idle_days < 1 || opts->idle_days > KEEPALIVE_IDLE_DAYS_MAX ||
	    opts->period_s < 0 || name[0] == '\0' || strlen(name) > QUEUE_NAME_MAX) {
		job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		               "keep-alive idle_days must be 1 to %ld, period_s not negative and the "
		               "queue name 1 to %d characters",
		               KEEPALIVE_IDLE_DAYS_MAX, QUEUE_NAME_MAX);
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		job_store_fail(err, JOB_STORE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	k->store = store;
	k->q = q;
	k->idle_days = opts->idle_days;
	k->period_s = opts->period_s > 0 ? opts->period_s : KEEPALIVE_DEFAULT_PERIOD_S;
	snprintf(k->queue_name, sizeof(k->queue_name), "%s", name);
	k->max_per_run = opts->max_per_run > 0 ? opts->max_per_run : KEEPALIVE_DEFAULT_MAX_PER_RUN;
	return k;
}

void keepalive_free(keepalive *k)
{
	if (k == NULL)
		return;
	if (k->running) {
		k->freed = true;
		return;
	}
	free(k);
}

job_store_status keepalive_run(keepalive *k, keepalive_cb cb, void *arg, job_store_error *err)
{
	if (k == NULL || cb == NULL)
		return job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		                      "keep-alive or callback missing");
	if (k->running)
		return job_store_fail(err, JOB_STORE_ERR_BUSY, "a keep-alive run is in progress");

	memset(&k->report, 0, sizeof(k->report));
	k->running = true;
	k->cb = cb;
	k->cb_arg = arg;
	mark_next(k);
	return JOB_STORE_OK;
}
