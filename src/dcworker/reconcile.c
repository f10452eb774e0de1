/*
 * The PostgreSQL reconciler: enqueues again the unfinished jobs that Redis
 * lost. See reconcile.h.
 */
#include "reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "job_store_conn.h"
#include "queue_conn.h"
#include "redis_keys.h"

/*
 * The next unfinished row after id $1 that Redis may have lost: queued and
 * due more than $2 seconds ago, or running with a lease that expired more
 * than $2 seconds ago. exchange_code rows are skipped: the code is not
 * stored, so their payload cannot run.
 */
static const char sql_next[] =
	"SELECT id, queue, payload::text FROM dc_jobs"
	" WHERE id > $1 AND type <> 'exchange_code' AND payload IS NOT NULL"
	" AND ((state = 'queued'"
	"   AND coalesce(not_before, updated_at) < now() - $2::bigint * interval '1 second')"
	"  OR (state = 'running' AND lease_until < now() - $2::bigint * interval '1 second'))"
	" ORDER BY id LIMIT 1";

/*
 * KEYS[1] {dc}:scheduled, KEYS[2] the job's queue stream; ARGV[1] the job
 * id, ARGV[2] the job JSON. Returns 0 when a scheduled member or a stream
 * entry (pending or not yet delivered) carries the id, else XADDs the job
 * and returns 1. The plain text search keeps cjson off most members.
 */
static const char lua_restore[] =
	"local function has_job(text)\n"
	"  if not string.find(text, ARGV[1], 1, true) then return false end\n"
	"  local ok, job = pcall(cjson.decode, text)\n"
	"  return ok and type(job) == 'table' and job.id == ARGV[1]\n"
	"end\n"
	"for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
	"  local sp = string.find(m, ' ', 1, true)\n"
	"  if sp and has_job(string.sub(m, sp + 1)) then return 0 end\n"
	"end\n"
	"for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do\n"
	"  local f = e[2]\n"
	"  for i = 1, #f - 1, 2 do\n"
	"    if f[i] == 'job' and has_job(f[i + 1]) then return 0 end\n"
	"  end\n"
	"end\n"
	"redis.call('XADD', KEYS[2], '*', 'job', ARGV[2])\n"
	"return 1\n";

struct reconcile {
	job_store *store;
	queue *q;
	char owner[128];
	long interval_s;
	long grace_s;
	size_t max_per_run;

	bool running;
	bool freed;             /* reconcile_free ran during a run: free at its next callback */
	reconcile_cb cb;
	reconcile_job_cb on_enqueued;
	void *cb_arg;
	reconcile_report report;
	char cursor[RECONCILE_ID_MAX + 1];   /* id of the last row read; "" from the start */
	char queue_name[QUEUE_NAME_MAX + 1]; /* queue of the current row */
};

static void read_next(reconcile *r);

/* End the run: report, unless R was freed meanwhile. */
static void finish(reconcile *r)
{
	reconcile_report report = r->report;

	r->running = false;
	if (r->freed) {
		free(r);
		return;
	}
	r->cb(r->cb_arg, &report);
}

static bool queue_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > QUEUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * Store the row in RESULT->authorization: id in id, queue in zone, payload
 * in dns_provider. No row leaves it NULL.
 */
static void parse_row(const PGresult *res, job_store_result *result)
{
	job_authorization *row;

	if (PQntuples(res) == 0)
		return;
	if (PQntuples(res) != 1 || PQnfields(res) != 3 ||
	    PQgetlength(res, 0, 0) > RECONCILE_ID_MAX || PQgetlength(res, 0, 2) > QUEUE_JOB_MAX) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "reconciler read %d rows of an unexpected shape", PQntuples(res));
		return;
	}
	row = calloc(1, sizeof(*row));
	if (row == NULL || (row->id = strdup(PQgetvalue(res, 0, 0))) == NULL ||
	    (row->zone = strdup(PQgetvalue(res, 0, 1))) == NULL ||
	    (row->dns_provider = strdup(PQgetvalue(res, 0, 2))) == NULL) {
		job_authorization_free(row);
		job_store_fail(&result->error, JOB_STORE_ERR_NOMEM, "out of memory");
		return;
	}
	result->authorization = row;
}

static void on_event_written(void *arg, job_store_result *result)
{
	reconcile *r = arg;

	if (r->freed) {
		finish(r);
		return;
	}
	/* The job is back in Redis; a missing event does not undo that. */
	if (result->error.status != JOB_STORE_OK && r->report.error.status == JOB_STORE_OK)
		r->report.error = result->error;
	read_next(r);
}

/* Append the "reconciled" event to the current row, then go on. */
static void write_event(reconcile *r)
{
	job_store_error err = {0};
	json_t *detail = json_pack("{s:s, s:s}", "queue", r->queue_name, "owner", r->owner);
	char *text = detail != NULL ? json_dumps(detail, JSON_COMPACT) : NULL;
	job_store_status status;

	json_decref(detail);
	if (text == NULL) {
		job_store_fail(&r->report.error, JOB_STORE_ERR_NOMEM, "out of memory");
		read_next(r);
		return;
	}
	status = job_store_append_event(r->store, r->cursor, "reconciled", text, on_event_written,
	                                r, &err);
	free(text);
	if (status != JOB_STORE_OK) {
		r->report.error = err;
		finish(r);
	}
}

static void parse_restored(queue *q, const redisReply *reply, queue_result *result)
{
	(void)q;
	if (reply->type == REDIS_REPLY_ERROR) {
		queue_fail(&result->error, QUEUE_ERR_REDIS, "restore script failed: %.*s",
		           (int)(reply->len < 200 ? reply->len : 200), reply->str);
		return;
	}
	if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0 || reply->integer > 1) {
		queue_fail(&result->error, QUEUE_ERR_PROTOCOL, "restore script gave an unexpected reply");
		return;
	}
	result->value = reply->integer;
}

static void on_restored(void *arg, queue_result *result)
{
	reconcile *r = arg;

	if (r->freed) {
		finish(r);
		return;
	}
	if (result->error.status != QUEUE_OK) {
		r->report.queue_error = result->error;
		finish(r);
		return;
	}
	if (result->value == 0) {
		read_next(r);
		return;
	}
	r->report.enqueued++;
	snprintf(r->report.last_id, sizeof(r->report.last_id), "%s", r->cursor);
	if (r->on_enqueued != NULL)
		r->on_enqueued(r->cb_arg, r->cursor, r->queue_name);
	write_event(r);
}

static void on_row(void *arg, job_store_result *result)
{
	reconcile *r = arg;
	job_authorization *row = result->authorization;
	char stream[sizeof(REDIS_KEY_QUEUE_PREFIX) + QUEUE_NAME_MAX];
	queue_error qerr = {0};

	if (r->freed || result->error.status != JOB_STORE_OK || row == NULL) {
		if (!r->freed) {
			r->report.error = result->error;
			if (row == NULL && result->error.status == JOB_STORE_OK)
				r->cursor[0] = '\0'; /* the end: the next run starts over */
		}
		finish(r);
		return;
	}
	r->report.examined++;
	snprintf(r->cursor, sizeof(r->cursor), "%s", row->id);
	if (!queue_name_valid(row->zone)) {
		read_next(r); /* an invalid queue name: leave the row to an operator */
		return;
	}
	snprintf(r->queue_name, sizeof(r->queue_name), "%s", row->zone);
	snprintf(stream, sizeof(stream), "%s%s", REDIS_KEY_QUEUE_PREFIX, row->zone);

	const char *argv[] = {"EVAL", lua_restore, "2", REDIS_KEY_SCHEDULED, stream, row->id,
	                      row->dns_provider};
	size_t argvlen[] = {4, strlen(lua_restore), 1, strlen(REDIS_KEY_SCHEDULED), strlen(stream),
	                    strlen(row->id), strlen(row->dns_provider)};
	if (queue_conn_send(r->q, 7, argv, argvlen, parse_restored, on_restored, r, &qerr) !=
	    QUEUE_OK) {
		r->report.queue_error = qerr;
		finish(r);
	}
}

static void read_next(reconcile *r)
{
	char grace[24];
	job_store_error err = {0};

	if (r->report.examined >= r->max_per_run) {
		finish(r);
		return;
	}
	snprintf(grace, sizeof(grace), "%ld", r->grace_s);
	const char *params[] = {r->cursor, grace};
	if (job_store_submit(r->store, sql_next, 2, params, parse_row, on_row, r, &err) !=
	    JOB_STORE_OK) {
		r->report.error = err;
		finish(r);
	}
}

/* value 1 when SET NX took the lock, 0 when another worker holds it. */
static void parse_lock(queue *q, const redisReply *reply, queue_result *result)
{
	(void)q;
	if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0)
		result->value = 1;
	else if (reply->type == REDIS_REPLY_NIL)
		result->value = 0;
	else if (reply->type == REDIS_REPLY_ERROR)
		queue_fail(&result->error, QUEUE_ERR_REDIS, "taking the reconciler lock failed: %.*s",
		           (int)(reply->len < 200 ? reply->len : 200), reply->str);
	else
		queue_fail(&result->error, QUEUE_ERR_PROTOCOL, "unexpected reply to SET NX");
}

static void on_locked(void *arg, queue_result *result)
{
	reconcile *r = arg;

	if (r->freed) {
		finish(r);
		return;
	}
	if (result->error.status != QUEUE_OK) {
		r->report.queue_error = result->error;
		finish(r);
		return;
	}
	if (result->value == 0) {
		r->report.skipped = true;
		finish(r);
		return;
	}
	read_next(r);
}

reconcile *reconcile_new(job_store *store, queue *q, const reconcile_options *opts,
                         job_store_error *err)
{
	reconcile *r;

	if (store == NULL || q == NULL || opts == NULL || opts->owner == NULL) {
		job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT, "store, queue or options missing");
		return NULL;
	}
	if (opts->interval_s < 1 || opts->interval_s > RECONCILE_SECONDS_MAX || opts->grace_s < 1 ||
	    opts->grace_s > RECONCILE_SECONDS_MAX || opts->owner[0] == '\0' ||
	    strlen(opts->owner) >= sizeof(r->owner)) {
		job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		               "reconciler interval and grace must be 1 to %ld s and the owner 1 to "
		               "127 characters",
		               RECONCILE_SECONDS_MAX);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		job_store_fail(err, JOB_STORE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	r->store = store;
	r->q = q;
	snprintf(r->owner, sizeof(r->owner), "%s", opts->owner);
	r->interval_s = opts->interval_s;
	r->grace_s = opts->grace_s;
	r->max_per_run = opts->max_per_run > 0 ? opts->max_per_run : RECONCILE_DEFAULT_MAX_PER_RUN;
	return r;
}

void reconcile_free(reconcile *r)
{
	if (r == NULL)
		return;
	if (r->running) {
		r->freed = true;
		return;
	}
	free(r);
}

job_store_status reconcile_run(reconcile *r, reconcile_cb cb, reconcile_job_cb on_enqueued,
                               void *arg, job_store_error *err)
{
	char ttl[24];
	queue_error qerr = {0};

	if (r == NULL || cb == NULL)
		return job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		                      "reconciler or callback missing");
	if (r->running)
		return job_store_fail(err, JOB_STORE_ERR_BUSY, "a reconciler run is in progress");

	snprintf(ttl, sizeof(ttl), "%ld", r->interval_s * 1000L);
	const char *argv[] = {"SET", RECONCILE_LOCK_KEY, r->owner, "NX", "PX", ttl};
	size_t argvlen[] = {3, strlen(RECONCILE_LOCK_KEY), strlen(r->owner), 2, 2, strlen(ttl)};

	memset(&r->report, 0, sizeof(r->report));
	r->cb = cb;
	r->on_enqueued = on_enqueued;
	r->cb_arg = arg;
	if (queue_conn_send(r->q, 6, argv, argvlen, parse_lock, on_locked, r, &qerr) != QUEUE_OK)
		return job_store_fail(err, JOB_STORE_ERR_DISCONNECTED, "taking the reconciler lock: %s",
		                      qerr.message);
	r->running = true;
	return JOB_STORE_OK;
}
