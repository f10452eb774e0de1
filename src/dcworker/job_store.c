/*
 * The job store's operations: the SQL of each one, its argument checks and
 * the parsing of its result. Queries run through the pool in
 * job_store_conn.c. Each operation is one statement, so PostgreSQL commits
 * it atomically.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_store_conn.h"

static const char *const status_names[JOB_STORE_STATUS_COUNT] = {
	[JOB_STORE_OK] = "JOB_STORE_OK",
	[JOB_STORE_ERR_INVALID_ARGUMENT] = "JOB_STORE_ERR_INVALID_ARGUMENT",
	[JOB_STORE_ERR_DISCONNECTED] = "JOB_STORE_ERR_DISCONNECTED",
	[JOB_STORE_ERR_TIMEOUT] = "JOB_STORE_ERR_TIMEOUT",
	[JOB_STORE_ERR_BUSY] = "JOB_STORE_ERR_BUSY",
	[JOB_STORE_ERR_QUERY] = "JOB_STORE_ERR_QUERY",
	[JOB_STORE_ERR_NOT_FOUND] = "JOB_STORE_ERR_NOT_FOUND",
	[JOB_STORE_ERR_LEASE_LOST] = "JOB_STORE_ERR_LEASE_LOST",
	[JOB_STORE_ERR_VERSION_CONFLICT] = "JOB_STORE_ERR_VERSION_CONFLICT",
	[JOB_STORE_ERR_PROTOCOL] = "JOB_STORE_ERR_PROTOCOL",
	[JOB_STORE_ERR_CLOSED] = "JOB_STORE_ERR_CLOSED",
	[JOB_STORE_ERR_NOMEM] = "JOB_STORE_ERR_NOMEM",
};

const char *job_store_status_name(job_store_status status)
{
	if ((unsigned)status >= JOB_STORE_STATUS_COUNT || status_names[status] == NULL)
		return "JOB_STORE_ERR_UNKNOWN";
	return status_names[status];
}

const char *job_store_event_name(job_store_event event)
{
	switch (event) {
	case JOB_STORE_EVENT_CONNECTED:
		return "JOB_STORE_EVENT_CONNECTED";
	case JOB_STORE_EVENT_CONNECT_FAILED:
		return "JOB_STORE_EVENT_CONNECT_FAILED";
	case JOB_STORE_EVENT_LOST:
		return "JOB_STORE_EVENT_LOST";
	}
	return "JOB_STORE_EVENT_UNKNOWN";
}

const char *job_claim_name(job_claim claim)
{
	switch (claim) {
	case JOB_CLAIM_ACQUIRED:
		return "JOB_CLAIM_ACQUIRED";
	case JOB_CLAIM_FINISHED:
		return "JOB_CLAIM_FINISHED";
	case JOB_CLAIM_BUSY:
		return "JOB_CLAIM_BUSY";
	}
	return "JOB_CLAIM_UNKNOWN";
}

void job_authorization_free(job_authorization *auth)
{
	if (auth == NULL)
		return;
	free(auth->id);
	free(auth->dns_provider);
	free(auth->zone);
	free(auth->status);
	free(auth->token_type);
	if (auth->access_token != NULL)
		PQfreemem(auth->access_token);
	if (auth->refresh_token != NULL)
		PQfreemem(auth->refresh_token);
	free(auth);
}

/*
 * Claim by compare-and-set. The INSERT takes a new row; ON CONFLICT moves an
 * existing row to running only when it is queued or its lease expired; taking
 * over another owner's expired lease counts one in reclaims. The
 * second SELECT reads the row as it was before this statement (same
 * snapshot), so it reports why the claim did not happen. When another
 * transaction inserted the row concurrently, the row is invisible to this
 * snapshot and no row comes back at all, which the parser reads as busy.
 */
static const char sql_claim[] =
	"WITH claimed AS ("
	" INSERT INTO dc_jobs AS j (id, type, queue, state, payload, owner,"
	"   lease_until, started_at)"
	" VALUES ($1, $2, $3, 'running', $4::jsonb, $5,"
	"   now() + $6::bigint * interval '1 millisecond', now())"
	" ON CONFLICT (id) DO UPDATE SET state = 'running',"
	"   owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,"
	"   started_at = now(), updated_at = now(),"
	"   reclaims = j.reclaims + CASE WHEN j.state = 'running'"
	"     AND j.owner IS DISTINCT FROM EXCLUDED.owner THEN 1 ELSE 0 END"
	" WHERE j.state = 'queued' OR (j.state = 'running' AND j.lease_until < now())"
	" RETURNING j.id, j.state, j.attempts"
	"), event AS ("
	" INSERT INTO dc_job_events (job_id, event, detail)"
	" SELECT id, 'started', jsonb_build_object('owner', $5::text) FROM claimed"
	")"
	" SELECT 'acquired', state, attempts FROM claimed"
	" UNION ALL"
	" SELECT CASE WHEN state IN ('queued', 'running') THEN 'busy' ELSE 'finished' END,"
	"   state, attempts FROM dc_jobs"
	" WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM claimed)";

static const char sql_renew[] =
	"UPDATE dc_jobs SET lease_until = now() + $3::bigint * interval '1 millisecond',"
	" updated_at = now()"
	" WHERE id = $1 AND state = 'running' AND owner = $2 RETURNING id";

static const char sql_event[] =
	"INSERT INTO dc_job_events (job_id, event, detail) VALUES ($1, $2, $3::jsonb)";

/* One statement, so the row and its event commit together or not at all. */
static const char sql_commit[] =
	"WITH done AS ("
	" UPDATE dc_jobs SET state = $3, result = $4::jsonb, attempts = $5::integer,"
	"   owner = NULL, lease_until = NULL, updated_at = now(),"
	"   finished_at = CASE WHEN $3 IN ('queued', 'running') THEN NULL ELSE now() END"
	" WHERE id = $1 AND state = 'running' AND owner = $2"
	" RETURNING id"
	")"
	" INSERT INTO dc_job_events (job_id, event, detail)"
	" SELECT id, $6, $7::jsonb FROM done RETURNING job_id";

static const char sql_get_authorization[] =
	"SELECT id::text, dns_provider, zone, status, token_type, access_token, refresh_token,"
	" (extract(epoch FROM expires_at) * 1000)::bigint, version"
	" FROM dc_authorizations WHERE id = $1::uuid";

/* Argument checks */

static bool text_valid(const char *s, size_t max)
{
	size_t len = s != NULL ? strlen(s) : 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static bool json_valid_length(const char *json, bool optional)
{
	if (json == NULL)
		return optional;
	return json[0] != '\0' && strlen(json) <= JOB_STORE_JSON_MAX;
}

static job_store_status invalid(job_store_error *err, const char *argument)
{
	return job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT, "%s is missing or invalid",
	                      argument);
}

/* Result parsing */

static bool parse_int(const char *text, long long min, long long max, long long *out)
{
	char *end;
	long long value;

	if (text == NULL || text[0] == '\0')
		return false;
	value = strtoll(text, &end, 10);
	if (*end != '\0' || value < min || value > max)
		return false;
	*out = value;
	return true;
}

static void parse_none(const PGresult *res, job_store_result *result)
{
	(void)res;
	(void)result;
}

static void parse_claim(const PGresult *res, job_store_result *result)
{
	const char *outcome;
	long long attempts;

	if (PQntuples(res) == 0) {
		result->claim = JOB_CLAIM_BUSY;
		snprintf(result->state, sizeof(result->state), "running");
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 3 ||
	    !parse_int(PQgetvalue(res, 0, 2), 0, 1000000, &attempts)) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL, "claim returned %d rows",
		               PQntuples(res));
		return;
	}
	outcome = PQgetvalue(res, 0, 0);
	if (strcmp(outcome, "acquired") == 0)
		result->claim = JOB_CLAIM_ACQUIRED;
	else if (strcmp(outcome, "finished") == 0)
		result->claim = JOB_CLAIM_FINISHED;
	else
		result->claim = JOB_CLAIM_BUSY;
	snprintf(result->state, sizeof(result->state), "%s", PQgetvalue(res, 0, 1));
	result->attempts = (int)attempts;
}

static void parse_fenced(const PGresult *res, job_store_result *result)
{
	if (PQntuples(res) == 0)
		job_store_fail(&result->error, JOB_STORE_ERR_LEASE_LOST,
		               "the job is not running under this owner; nothing was written");
}

static char *column_string(const PGresult *res, int column)
{
	if (PQgetisnull(res, 0, column))
		return NULL;
	return strdup(PQgetvalue(res, 0, column));
}

static unsigned char *column_bytea(const PGresult *res, int column, size_t *len)
{
	*len = 0;
	if (PQgetisnull(res, 0, column))
		return NULL;
	return PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, column), len);
}

static void parse_authorization(const PGresult *res, job_store_result *result)
{
	job_authorization *auth;

	if (PQntuples(res) == 0) {
		job_store_fail(&result->error, JOB_STORE_ERR_NOT_FOUND, "authorization not found");
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 9) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "authorization query returned %d rows", PQntuples(res));
		return;
	}
	auth = calloc(1, sizeof(*auth));
	if (auth == NULL) {
		job_store_fail(&result->error, JOB_STORE_ERR_NOMEM, "out of memory");
		return;
	}
	auth->id = column_string(res, 0);
	auth->dns_provider = column_string(res, 1);
	auth->zone = column_string(res, 2);
	auth->status = column_string(res, 3);
	auth->token_type = column_string(res, 4);
	auth->access_token = column_bytea(res, 5, &auth->access_token_len);
	auth->refresh_token = column_bytea(res, 6, &auth->refresh_token_len);
	if (PQgetisnull(res, 0, 7) ||
	    !parse_int(PQgetvalue(res, 0, 7), 0, 1LL << 52, &auth->expires_at_ms))
		auth->expires_at_ms = -1;
	if (!parse_int(PQgetvalue(res, 0, 8), 0, 1LL << 62, &auth->version) || auth->id == NULL) {
		job_authorization_free(auth);
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "authorization row has no id or an invalid version");
		return;
	}
	result->authorization = auth;
}

/* Operations */

job_store_status job_store_claim(job_store *store, const job_store_claim_args *args,
                                 job_store_cb cb, void *arg, job_store_error *err)
{
	char lease[24];

	if (args == NULL || !text_valid(args->id, JOB_STORE_ID_MAX))
		return invalid(err, "job id");
	if (!text_valid(args->type, JOB_STORE_STATE_MAX) || !text_valid(args->queue, 64) ||
	    !text_valid(args->owner, 200))
		return invalid(err, "job type, queue or owner");
	if (!json_valid_length(args->payload_json, false))
		return invalid(err, "job payload");
	if (args->lease_ms <= 0)
		return invalid(err, "lease duration");

	snprintf(lease, sizeof(lease), "%ld", args->lease_ms);
	const char *params[] = {args->id, args->type, args->queue, args->payload_json, args->owner,
	                        lease};
	return job_store_submit(store, sql_claim, 6, params, parse_claim, cb, arg, err);
}

job_store_status job_store_renew_lease(job_store *store, const char *id, const char *owner,
                                       long lease_ms, job_store_cb cb, void *arg,
                                       job_store_error *err)
{
	char lease[24];

	if (!text_valid(id, JOB_STORE_ID_MAX) || !text_valid(owner, 200) || lease_ms <= 0)
		return invalid(err, "job id, owner or lease duration");
	snprintf(lease, sizeof(lease), "%ld", lease_ms);
	const char *params[] = {id, owner, lease};
	return job_store_submit(store, sql_renew, 3, params, parse_fenced, cb, arg, err);
}

job_store_status job_store_append_event(job_store *store, const char *id, const char *event,
                                        const char *detail_json, job_store_cb cb, void *arg,
                                        job_store_error *err)
{
	if (!text_valid(id, JOB_STORE_ID_MAX) || !text_valid(event, JOB_STORE_STATE_MAX))
		return invalid(err, "job id or event name");
	if (!json_valid_length(detail_json, true))
		return invalid(err, "event detail");

	const char *params[] = {id, event, detail_json};
	return job_store_submit(store, sql_event, 3, params, parse_none, cb, arg, err);
}

job_store_status job_store_commit(job_store *store, const job_store_commit_args *args,
                                  job_store_cb cb, void *arg, job_store_error *err)
{
	char attempts[16];

	if (args == NULL || !text_valid(args->id, JOB_STORE_ID_MAX) || !text_valid(args->owner, 200))
		return invalid(err, "job id or owner");
	if (!text_valid(args->state, JOB_STORE_STATE_MAX) || strcmp(args->state, "running") == 0)
		return invalid(err, "job state");
	if (!text_valid(args->event, JOB_STORE_STATE_MAX))
		return invalid(err, "event name");
	if (!json_valid_length(args->result_json, true) ||
	    !json_valid_length(args->event_detail_json, true))
		return invalid(err, "result or event detail");
	if (args->attempts < 0)
		return invalid(err, "attempts");

	snprintf(attempts, sizeof(attempts), "%d", args->attempts);
	const char *params[] = {args->id,     args->owner, args->state,
	                        args->result_json, attempts, args->event,
	                        args->event_detail_json};
	return job_store_submit(store, sql_commit, 7, params, parse_fenced, cb, arg, err);
}

job_store_status job_store_get_authorization(job_store *store, const char *id,
                                             job_store_cb cb, void *arg, job_store_error *err)
{
	if (!text_valid(id, JOB_STORE_ID_MAX))
		return invalid(err, "authorization id");

	const char *params[] = {id};
	return job_store_submit(store, sql_get_authorization, 1, params, parse_authorization, cb,
	                        arg, err);
}
