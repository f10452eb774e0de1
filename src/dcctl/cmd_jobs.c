/*
 * dcctl job ID and dcctl jobs: a job's row, result and events from
 * PostgreSQL (with the Redis result when the row is not there yet), and a
 * filtered list of jobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enqueue.h"

/* Default and largest --limit of `dcctl jobs`. */
#define JOBS_LIMIT_DEFAULT 100
#define JOBS_LIMIT_MAX 100000

static const char job_help[] =
	"usage: dcctl job ID\n\n"
	"Prints a job's state, attempts, last error, result and event history from\n"
	"PostgreSQL; when the row does not exist, the result stored in Redis, or\n"
	"\"queued (not yet picked up)\" for a job dcctl enqueued that no worker has read.\n\n"
	"Options:\n" DCCTL_COMMON_HELP
	"\nExit codes: 0 found, 3 no such job, 4 unreachable.\n";

static const char jobs_help[] =
	"usage: dcctl jobs [--status S] [--type T] [--domain D] [--since TIME] [--until TIME]\n\n"
	"Lists jobs from PostgreSQL, newest first.\n\n"
	"Options:\n"
	"  --status STATE    queued, running, succeeded, conflict, reauthorization_required,\n"
	"                    failed or dead\n"
	"  --type TYPE       discover, exchange_code, apply, refresh or revert\n"
	"  --domain NAME     jobs for domain NAME (an apply job's domain is its host in\n"
	"                    the authorization's zone)\n"
	"  --since TIME      created at or after TIME (RFC 3339, or a PostgreSQL timestamp)\n"
	"  --until TIME      created before TIME\n"
	"  --limit N         rows to print, 1 to 100000 (default 100)\n" DCCTL_COMMON_HELP;

static const char job_sql[] =
	"SELECT id, type, queue, state, attempts, reclaims, last_error, last_http_status, "
	"authorization_id::text, domain, payload::text, result::text, created_at, updated_at, "
	"not_before AS due_at, finished_at FROM dc_jobs WHERE id = $1";

static const char events_sql[] =
	"SELECT at, event, detail::text FROM dc_job_events WHERE job_id = $1 ORDER BY id";

/* Builds a JSON object from one row; text columns named in json_columns are parsed. */
static json_t *row_json(const PGresult *res, int row)
{
	json_t *obj = json_object();

	for (int col = 0; col < PQnfields(res); col++) {
		const char *name = PQfname(res, col);
		const char *value = PQgetvalue(res, row, col);
		json_t *v;

		if (PQgetisnull(res, row, col)) {
			v = json_null();
		} else if (PQftype(res, col) == 23 /* int4 */) {
			v = json_integer(strtoll(value, NULL, 10));
		} else if (strcmp(name, "payload") == 0 || strcmp(name, "result") == 0 ||
		           strcmp(name, "detail") == 0) {
			json_error_t error;

			v = json_loads(value, 0, &error);
			if (v == NULL)
				v = json_string(value);
		} else {
			v = json_string(value);
		}
		json_object_set_new(obj, name, v);
	}
	return obj;
}

/*
 * Returns the queue in which stream entry ENTRY_ID is pending in group
 * dcworker (delivered but not acknowledged), or NULL when it is pending in no
 * configured queue.
 */
static const char *pending_queue(const dcctl *ctx, redisContext *rc, const char *entry_id)
{
	for (size_t i = 0; i < ctx->cfg->worker.queues_count; i++) {
		const char *queue = ctx->cfg->worker.queues[i];
		redisReply *reply = redisCommand(rc, "XPENDING " REDIS_KEY_QUEUE_PREFIX "%s " REDIS_GROUP
		                                 " %s %s 1", queue, entry_id, entry_id);
		bool pending = reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0;

		freeReplyObject(reply);
		if (pending)
			return queue;
	}
	return NULL;
}

/*
 * Prints a job that dcctl enqueued but that has neither a dc_jobs row nor a
 * result. The marker {dc}:enqueued:<id> contains its stream entry id.
 * Returns false when there is no marker.
 */
static bool print_queued(const dcctl *ctx, redisContext *rc, const char *id)
{
	redisReply *reply = redisCommand(rc, "GET " REDIS_KEY_ENQUEUED_PREFIX "%s", id);

	if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
		freeReplyObject(reply);
		return false;
	}

	/* A pending entry was delivered to a worker that has not written its row yet. */
	const char *queue = pending_queue(ctx, rc, reply->str);
	const char *state = queue != NULL ? "running" : "queued";
	const char *detail = queue != NULL ? "running (picked up, no result yet)"
	                                   : "queued (not yet picked up)";
	if (ctx->json) {
		out_json(json_pack("{s:s, s:s, s:s, s:b, s:o}", "id", id, "state", state, "entry_id",
		                   reply->str, "picked_up", queue != NULL, "queue",
		                   queue != NULL ? json_string(queue) : json_null()));
	} else {
		out_field("id", "%s", id);
		out_field("state", "%s", detail);
		out_field("entry_id", "%s", reply->str);
	}
	freeReplyObject(reply);
	return true;
}

static dcctl_exit redis_result(dcctl *ctx, const char *id)
{
	redisContext *rc = NULL;
	dcctl_exit code = dcctl_redis_connect(ctx, &rc);

	if (code != DCCTL_EXIT_OK)
		return code;
	json_t *result = result_fetch(rc, id);
	if (result == NULL) {
		if (!print_queued(ctx, rc, id))
			code = out_error(ctx, DCCTL_EXIT_NOT_FOUND, "no job %s in dc_jobs or in Redis", id);
		redisFree(rc);
		return code;
	}
	redisFree(rc);
	if (ctx->json) {
		out_json(json_pack("{s:s, s:o}", "id", id, "result", result));
	} else {
		result_print(result);
		json_decref(result);
	}
	return DCCTL_EXIT_OK;
}

static void print_job(const json_t *job)
{
	const char *key;
	json_t *value;

	json_object_foreach((json_t *)job, key, value) {
		char buf[2048];

		if (strcmp(key, "events") == 0)
			continue;
		out_field(key, "%s", out_scalar(value, buf, sizeof(buf)));
	}
	printf("\n");
	const char *headers[] = {"AT", "EVENT", "DETAIL"};
	out_table *t = out_table_new(3, headers);
	size_t i;
	json_array_foreach(json_object_get(job, "events"), i, value) {
		char at[64];
		char detail[1024];
		const char *cells[] = {out_scalar(json_object_get(value, "at"), at, sizeof(at)),
		                       json_string_value(json_object_get(value, "event")),
		                       out_scalar(json_object_get(value, "detail"), detail, sizeof(detail))};
		out_table_add(t, cells);
	}
	out_table_print(t, stdout);
	out_table_free(t);
}

int cmd_job(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {DCCTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int code;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		if (opt == 'h') {
			fputs(job_help, stdout);
			return DCCTL_EXIT_OK;
		}
		return out_usage(ctx, "job", "invalid option");
	}
	if (argc - optind != 1)
		return out_usage(ctx, "job", "expected one job ID");
	const char *id = argv[optind];

	code = dcctl_load_config(ctx);
	if (code != DCCTL_EXIT_OK)
		return code;
	if (!dcctl_pg_configured(ctx))
		return redis_result(ctx, id);
	code = dcctl_pg_connect(ctx, &conn);
	if (code != DCCTL_EXIT_OK)
		return code;

	const char *params[] = {id};
	res = PQexecParams(conn, job_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		code = out_error(ctx, DCCTL_EXIT_FAILED, "reading dc_jobs failed: %s",
		                 PQresultErrorMessage(res));
		goto out;
	}
	if (PQntuples(res) == 0) {
		code = redis_result(ctx, id);
		goto out;
	}
	json_t *job = row_json(res, 0);
	PQclear(res);
	res = PQexecParams(conn, events_sql, 1, NULL, params, NULL, NULL, 0);
	json_t *events = json_array();
	for (int row = 0; PQresultStatus(res) == PGRES_TUPLES_OK && row < PQntuples(res); row++)
		json_array_append_new(events, row_json(res, row));
	json_object_set_new(job, "events", events);
	if (ctx->json) {
		out_json(job);
	} else {
		print_job(job);
		json_decref(job);
	}
out:
	PQclear(res);
	PQfinish(conn);
	return code;
}

int cmd_jobs(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"status", required_argument, NULL, 's'},
		{"type", required_argument, NULL, 't'},
		{"domain", required_argument, NULL, 'd'},
		{"since", required_argument, NULL, 'S'},
		{"until", required_argument, NULL, 'U'},
		{"limit", required_argument, NULL, 'l'},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *params[6] = {NULL};
	long limit = JOBS_LIMIT_DEFAULT;
	PGconn *conn = NULL;
	int code;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		switch (opt) {
		case 's': params[0] = optarg; break;
		case 't': params[1] = optarg; break;
		case 'd': params[2] = optarg; break;
		case 'S': params[3] = optarg; break;
		case 'U': params[4] = optarg; break;
		case 'l':
			if (!dcctl_parse_long(optarg, 1, JOBS_LIMIT_MAX, &limit))
				return out_usage(ctx, "jobs", "--limit %s: expected 1 to %d", optarg, JOBS_LIMIT_MAX);
			break;
		case 'h':
			fputs(jobs_help, stdout);
			return DCCTL_EXIT_OK;
		default:
			return out_usage(ctx, "jobs", "invalid option");
		}
	}
	if (optind != argc)
		return out_usage(ctx, "jobs", "unexpected argument \"%s\"", argv[optind]);
	code = dcctl_pg_connect(ctx, &conn);
	if (code != DCCTL_EXIT_OK)
		return code;

	char limit_text[24];
	snprintf(limit_text, sizeof(limit_text), "%ld", limit);
	params[5] = limit_text;
	PGresult *res = PQexecParams(conn,
		"SELECT id, type, queue, state, attempts, last_error, "
		"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at, "
		"coalesce(domain, payload->>'domain') AS domain FROM dc_jobs "
		"WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR type = $2) "
		"AND ($3::text IS NULL OR coalesce(domain, payload->>'domain') = lower($3)) "
		"AND ($4::timestamptz IS NULL OR created_at >= $4) "
		"AND ($5::timestamptz IS NULL OR created_at < $5) "
		"ORDER BY created_at DESC, id LIMIT $6::integer", 6, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		/* 22xxx: a --since or --until PostgreSQL could not read. */
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		code = out_error(ctx, state != NULL && strncmp(state, "22", 2) == 0 ? DCCTL_EXIT_USAGE
		                                                                    : DCCTL_EXIT_FAILED,
		                 "listing jobs failed: %s", PQresultErrorMessage(res));
		goto out;
	}
	if (ctx->json) {
		json_t *list = json_array();
		for (int row = 0; row < PQntuples(res); row++)
			json_array_append_new(list, row_json(res, row));
		out_json(json_pack("{s:o}", "jobs", list));
		goto out;
	}
	const char *headers[] = {"ID", "TYPE", "QUEUE", "STATE", "ATTEMPTS", "CREATED", "DOMAIN",
	                         "LAST ERROR"};
	out_table *t = out_table_new(8, headers);
	for (int row = 0; row < PQntuples(res); row++) {
		const char *cells[] = {PQgetvalue(res, row, 0), PQgetvalue(res, row, 1),
		                       PQgetvalue(res, row, 2), PQgetvalue(res, row, 3),
		                       PQgetvalue(res, row, 4), PQgetvalue(res, row, 6),
		                       PQgetvalue(res, row, 7), PQgetvalue(res, row, 5)};
		out_table_add(t, cells);
	}
	out_table_print(t, stdout);
	out_table_free(t);
out:
	PQclear(res);
	PQfinish(conn);
	return code;
}
