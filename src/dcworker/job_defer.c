/*
 * The PostgreSQL side of deferred jobs and the columns that describe a job:
 *
 * - Every job that goes to {dc}:scheduled (not_before in the future, a
 *   retry, a Retry-After reschedule, a wait parked by the gate) first gets
 *   its dc_jobs row in state "queued" with its payload and due time
 *   (not_before), and a "scheduled" event. A Redis that loses the scheduled
 *   set therefore keeps the job in PostgreSQL, and the reconciler
 *   (reconcile.h) enqueues it again once it is past due.
 * - Once known, the row's authorization_id and domain are filled in, so
 *   jobs can be listed by domain whatever their type.
 */
#include "job_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "job_store_conn.h"

/*
 * Upserts the row as queued with its due time. An existing row changes only
 * when it is queued, or running under this worker (a job that gives its
 * gate wait back); a row that is terminal or held by another worker stays
 * as it is. The event is written only when the row changed.
 */
static const char sql_defer[] =
	"WITH deferred AS ("
	" INSERT INTO dc_jobs AS j (id, type, queue, state, payload, not_before)"
	" VALUES ($1, $2, $3, 'queued', $4::jsonb, to_timestamp($5::bigint / 1000.0))"
	" ON CONFLICT (id) DO UPDATE SET state = 'queued', owner = NULL, lease_until = NULL,"
	"   not_before = EXCLUDED.not_before, updated_at = now()"
	" WHERE j.state = 'queued' OR (j.state = 'running' AND j.owner = $6)"
	" RETURNING j.id"
	"), event AS ("
	" INSERT INTO dc_job_events (job_id, event, detail)"
	" SELECT id, 'scheduled', $7::jsonb FROM deferred"
	")"
	" SELECT count(*) FROM deferred";

static const char sql_describe[] =
	"UPDATE dc_jobs SET authorization_id = $2::uuid, domain = $3 WHERE id = $1";

/* Row count of sql_defer in result->attempts. */
static void parse_count(const PGresult *res, job_store_result *result)
{
	char *end;
	long count;

	if (PQntuples(res) != 1) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL, "defer returned no row");
		return;
	}
	count = strtol(PQgetvalue(res, 0, 0), &end, 10);
	if (*end != '\0' || count < 0 || count > 1) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL, "defer changed %ld rows",
		               count);
		return;
	}
	result->attempts = (int)count;
}

static void parse_none(const PGresult *res, job_store_result *result)
{
	(void)res;
	(void)result;
}

static bool store_error_transient(job_store_status status)
{
	return status == JOB_STORE_ERR_DISCONNECTED || status == JOB_STORE_ERR_TIMEOUT ||
	       status == JOB_STORE_ERR_BUSY || status == JOB_STORE_ERR_CLOSED;
}

/* The payload stored with the row: the public JSON of the job, without secrets. */
static char *defer_payload(const job *j)
{
	json_t *root = job_spec_to_public_json(j->spec);
	char *text;

	if (root == NULL)
		return NULL;
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

static void defer_cb(void *arg, job_store_result *result)
{
	job *j = arg;
	log_fields f;

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_retry_step(j, "recording the due time", result->error.message);
		return;
	}
	f = job_log_fields(j, "defer");
	if (result->error.status != JOB_STORE_OK) {
		f.error = job_store_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_ERROR, &f,
		          "recording the due time failed: %s; leaving the entry for reclaim",
		          result->error.message);
		job_transition(j, JOB_STATE_DONE);
		return;
	}
	if (result->attempts == 0 && j->parking) {
		/* The row is no longer ours: the worker that took it decides. */
		log_write(j->env->log, LOG_LEVEL_WARN, &f,
		          "the PostgreSQL lease was lost while waiting at the gate; leaving the job");
		job_transition(j, JOB_STATE_DONE);
		return;
	}
	job_transition(j, JOB_STATE_SCHEDULE);
}

void job_state_defer(job *j)
{
	job_store_error err = {0};
	char *payload = defer_payload(j);
	char due[24];
	char *detail = NULL;
	json_t *detail_json;

	detail_json = json_pack("{s:s, s:I, s:s}", "reason", j->defer_reason, "delay_ms",
	                        (json_int_t)j->delay_ms, "owner", j->env->owner);
	if (detail_json != NULL)
		detail = json_dumps(detail_json, JSON_COMPACT);
	json_decref(detail_json);
	if (payload == NULL || detail == NULL) {
		free(payload);
		free(detail);
		job_retry_step(j, "recording the due time", "out of memory building the row");
		return;
	}
	snprintf(due, sizeof(due), "%lld", (long long)j->due_ms);

	const char *params[] = {j->id, j->type_name, j->msg.queue, payload, due, j->env->owner,
	                        detail};
	job_store_status status = job_store_submit(j->env->store, sql_defer, 7, params, parse_count,
	                                           defer_cb, j, &err);

	free(payload);
	free(detail);
	if (status != JOB_STORE_OK) {
		job_retry_step(j, "recording the due time", err.message);
		return;
	}
	job_callback_expect(j);
}

void job_defer(job *j, long long delay_ms, const char *reason)
{
	job_defer_until(j, job_now_ms() + (delay_ms > 0 ? delay_ms : 0), reason);
}

void job_defer_until(job *j, int64_t due_ms, const char *reason)
{
	int64_t now = job_now_ms();

	j->due_ms = due_ms;
	j->delay_ms = due_ms > now ? due_ms - now : 0;
	j->defer_reason = reason;
	job_transition(j, JOB_STATE_DEFER);
}

static void describe_cb(void *arg, job_store_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != JOB_STORE_OK) {
		log_fields f = job_log_fields(j, "describe");

		/* Only the listing by domain misses the row; the job goes on. */
		f.error = job_store_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_WARN, &f,
		          "recording the job's authorization and domain failed: %s",
		          result->error.message);
	}
}

void job_record_domain(job *j)
{
	job_store_error err = {0};
	char domain[512];
	const char *authorization = NULL;

	domain[0] = '\0';
	if (j->auth != NULL) {
		const char *host = j->spec->host;

		authorization = j->auth->id;
		if (host != NULL && host[0] != '\0')
			snprintf(domain, sizeof(domain), "%s.%s", host, j->auth->zone);
		else
			snprintf(domain, sizeof(domain), "%s", j->auth->zone);
	} else if (j->spec != NULL && j->spec->domain != NULL) {
		snprintf(domain, sizeof(domain), "%s", j->spec->domain);
	}
	if (domain[0] == '\0' && authorization == NULL)
		return;

	const char *params[] = {j->id, authorization, domain[0] != '\0' ? domain : NULL};

	if (job_store_submit(j->env->store, sql_describe, 3, params, parse_none, describe_cb, j,
	                     &err) != JOB_STORE_OK) {
		log_fields f = job_log_fields(j, "describe");

		f.error = job_store_status_name(err.status);
		log_write(j->env->log, LOG_LEVEL_WARN, &f,
		          "recording the job's authorization and domain failed: %s", err.message);
		return;
	}
	job_callback_expect(j);
}
