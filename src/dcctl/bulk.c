/*
 * dcctl enqueue --bulk: reads a file of jobs in batches, validates each row,
 * skips ids already known (dc_jobs, a result, or an earlier enqueue) and
 * adds the rest with the atomic enqueue step, paced by --rate. Progress goes
 * to stderr: a bar on a terminal, plain lines otherwise. With --wait it then
 * follows the published results and prints a summary by status and by DNS
 * provider.
 *
 * Re-running a file after an interruption adds exactly the rows that were
 * not added before, because each row's id is stable (its id column, or a
 * hash of its content) and the enqueue step is atomic per id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulk_reader.h"
#include "enqueue.h"

/* Rows validated, checked and sent to Redis per round trip. */
#define BULK_BATCH_MAX 200
/* Prefix of ids derived from row content. */
#define BULK_ID_PREFIX "bulk-"
/* Rejected rows listed in the --json summary; the rest are counted. */
#define BULK_REJECTED_LIST_MAX 1000
/* Width of the progress bar, in characters. */
#define BULK_BAR_WIDTH 30

typedef struct bulk_row {
	long line;
	json_t *job;
	const char *id;   /* inside job */
	bool skip;        /* known in dc_jobs */
} bulk_row;

typedef struct bulk_run_state {
	dcctl *ctx;
	const bulk_options *opts;
	bulk_reader *reader;
	redisContext *rc;
	PGconn *conn;            /* NULL when no PostgreSQL is configured */
	FILE *failed_out;
	long read;
	long enqueued;
	long skipped;
	long rejected;
	json_t *rejected_rows;   /* [{line, reason}] up to BULK_REJECTED_LIST_MAX */
	json_t *waiting;         /* id -> {line, job} for --wait */
	double started;
	double last_progress;
	bulk_row batch[BULK_BATCH_MAX];
	size_t batch_count;
} bulk_run_state;

static void write_failed(bulk_run_state *s, json_t *job)
{
	if (s->failed_out == NULL || job == NULL)
		return;
	json_dumpf(job, s->failed_out, JSON_COMPACT);
	fputc('\n', s->failed_out);
}

static void progress(bulk_run_state *s, bool final)
{
	double now = dcctl_mono();
	double elapsed = now - s->started;
	double rate = elapsed > 0 ? (double)s->read / elapsed : 0;
	double done = bulk_reader_progress(s->reader);

	if (s->ctx->stderr_tty) {
		if (!final && now - s->last_progress < 0.1)
			return;
		int filled = (int)(done * BULK_BAR_WIDTH);
		char bar[BULK_BAR_WIDTH + 1];
		memset(bar, '#', (size_t)filled);
		memset(bar + filled, '.', (size_t)(BULK_BAR_WIDTH - filled));
		bar[BULK_BAR_WIDTH] = '\0';
		double eta = done > 0 ? elapsed / done - elapsed : 0;
		fprintf(stderr, "\r[%s] %3.0f%% read %ld enqueued %ld skipped %ld rejected %ld  "
		        "%.0f rows/s  ETA %.0fs ", bar, done * 100, s->read, s->enqueued, s->skipped,
		        s->rejected, rate, eta);
		if (final)
			fputc('\n', stderr);
	} else {
		if (!final && now - s->last_progress < s->opts->progress_interval_s)
			return;
		fprintf(stderr, "dcctl: bulk %s: read %ld, enqueued %ld, skipped %ld, rejected %ld, "
		        "%.0f rows/s, %.0f%% of the file\n", final ? "done" : "progress", s->read,
		        s->enqueued, s->skipped, s->rejected, rate, done * 100);
	}
	s->last_progress = now;
}

static void reject(bulk_run_state *s, long line, const char *reason, json_t *job)
{
	s->rejected++;
	if (s->ctx->stderr_tty)
		fputc('\n', stderr);
	fprintf(stderr, "dcctl: %s:%ld: %s\n", s->opts->file, line, reason);
	if (json_array_size(s->rejected_rows) < BULK_REJECTED_LIST_MAX)
		json_array_append_new(s->rejected_rows, json_pack("{s:I, s:s}", "line", (json_int_t)line,
		                                                  "reason", reason));
	write_failed(s, job);
}

/* Marks rows whose id already has a dc_jobs row. */
static dcctl_exit check_store(bulk_run_state *s)
{
	if (s->conn == NULL || s->batch_count == 0)
		return DCCTL_EXIT_OK;

	/* Ids go in as one text[] literal; each element is quoted and escaped. */
	size_t cap = 4;
	for (size_t i = 0; i < s->batch_count; i++)
		cap += strlen(s->batch[i].id) * 2 + 4;
	char *array = malloc(cap);
	if (array == NULL)
		return out_error(s->ctx, DCCTL_EXIT_FAILED, "out of memory");
	size_t n = 0;
	array[n++] = '{';
	for (size_t i = 0; i < s->batch_count; i++) {
		if (i > 0)
			array[n++] = ',';
		array[n++] = '"';
		for (const char *p = s->batch[i].id; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				array[n++] = '\\';
			array[n++] = *p;
		}
		array[n++] = '"';
	}
	array[n++] = '}';
	array[n] = '\0';

	const char *params[] = {array};
	PGresult *res = PQexecParams(s->conn, "SELECT id FROM dc_jobs WHERE id = ANY($1::text[])", 1,
	                             NULL, params, NULL, NULL, 0);
	free(array);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		dcctl_exit code = out_error(s->ctx, PQstatus(s->conn) == CONNECTION_OK
		                                        ? DCCTL_EXIT_FAILED : DCCTL_EXIT_UNREACHABLE,
		                            "reading dc_jobs failed (run dcctl migrate?): %s",
		                            PQresultErrorMessage(res));
		PQclear(res);
		return code;
	}
	for (int row = 0; row < PQntuples(res); row++) {
		for (size_t i = 0; i < s->batch_count; i++) {
			if (strcmp(s->batch[i].id, PQgetvalue(res, row, 0)) == 0)
				s->batch[i].skip = true;
		}
	}
	PQclear(res);
	return DCCTL_EXIT_OK;
}

static void remember(bulk_run_state *s, const bulk_row *row)
{
	if (s->waiting == NULL)
		return;
	json_object_set_new(s->waiting, row->id, json_pack("{s:I, s:O}", "line", (json_int_t)row->line,
	                                                   "job", row->job));
}

/* Checks and enqueues the current batch, then empties it. */
static dcctl_exit flush_batch(bulk_run_state *s)
{
	dcctl_exit code = check_store(s);
	long ttl = enqueue_marker_ttl(s->ctx);
	char message[512];

	if (code != DCCTL_EXIT_OK)
		goto out;
	for (size_t i = 0; i < s->batch_count; i++) {
		bulk_row *row = &s->batch[i];

		if (row->skip)
			continue;
		char *text = json_dumps(row->job, JSON_COMPACT);
		bool ok = text != NULL && enqueue_append(s->rc, s->opts->queue, row->id, text, ttl);
		free(text);
		if (!ok) {
			code = out_error(s->ctx, DCCTL_EXIT_FAILED, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < s->batch_count; i++) {
		bulk_row *row = &s->batch[i];
		enqueue_outcome outcome = ENQUEUE_KNOWN;
		char entry_id[64];

		if (!row->skip) {
			code = enqueue_read(s->rc, &outcome, entry_id, sizeof(entry_id), message,
			                    sizeof(message));
			if (code != DCCTL_EXIT_OK) {
				code = out_error(s->ctx, code, "%s:%ld: %s", s->opts->file, row->line, message);
				goto out;
			}
		}
		if (outcome == ENQUEUE_ADDED)
			s->enqueued++;
		else
			s->skipped++;
		remember(s, row);
	}
out:
	for (size_t i = 0; i < s->batch_count; i++)
		json_decref(s->batch[i].job);
	s->batch_count = 0;
	return code;
}

/* Sleeps until enqueueing `rows` more stays within --rate. */
static void pace(bulk_run_state *s, long rows)
{
	if (s->opts->rate <= 0)
		return;
	double due = s->started + (double)(s->enqueued + s->skipped + rows) / s->opts->rate;
	for (double now = dcctl_mono(); now < due; now = dcctl_mono()) {
		double left = due - now;
		struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};

		nanosleep(&ts, NULL);
		progress(s, false);
	}
}

static size_t batch_size(const bulk_options *opts)
{
	if (opts->rate <= 0)
		return BULK_BATCH_MAX;
	double per_tick = opts->rate / 10;
	if (per_tick < 1)
		return 1;
	return per_tick > BULK_BATCH_MAX ? BULK_BATCH_MAX : (size_t)per_tick;
}

/* Reads the whole file; returns the exit code of the enqueue phase. */
static dcctl_exit read_all(bulk_run_state *s)
{
	size_t size = batch_size(s->opts);
	char reason[BULK_REASON_MAX];

	for (;;) {
		json_t *job = NULL;
		long line = 0;
		bulk_read status = bulk_reader_next(s->reader, &job, &line, reason, sizeof(reason));

		if (status == BULK_READ_END)
			break;
		if (status == BULK_READ_FATAL) {
			json_decref(job);
			return out_error(s->ctx, DCCTL_EXIT_FAILED, "%s:%ld: %s", s->opts->file, line, reason);
		}
		s->read++;

		common_error err = {0};
		bool had_id = json_object_get(job, "id") != NULL;
		if (status == BULK_READ_ROW && !enqueue_prepare(s->ctx, job, BULK_ID_PREFIX, &err)) {
			snprintf(reason, sizeof(reason), "%s", err.message);
			status = BULK_READ_BAD;
			if (!had_id)
				json_object_del(job, "id");
		}
		if (status == BULK_READ_BAD) {
			reject(s, line, reason, job);
			json_decref(job);
			if (s->opts->strict) {
				dcctl_exit code = flush_batch(s);

				if (code != DCCTL_EXIT_OK)
					return code;
				return out_error(s->ctx, DCCTL_EXIT_FAILED, "stopped at the bad row on line %ld "
				                 "(--strict); rows before it were enqueued", line);
			}
			continue;
		}

		bulk_row *row = &s->batch[s->batch_count++];
		row->line = line;
		row->job = job;
		row->id = json_string_value(json_object_get(job, "id"));
		row->skip = false;
		if (s->batch_count == size) {
			pace(s, (long)s->batch_count);
			dcctl_exit code = flush_batch(s);

			if (code != DCCTL_EXIT_OK)
				return code;
			progress(s, false);
		}
	}
	pace(s, (long)s->batch_count);
	return flush_batch(s);
}


/* Id for a row written to --failed-out: ID.rN with N one more than before. */
static void retry_id(json_t *job)
{
	const char *id = json_string_value(json_object_get(job, "id"));
	char base[128];
	long n = 0;

	if (id == NULL)
		return;
	snprintf(base, sizeof(base), "%.120s", id);
	char *dot = strrchr(base, '.');
	if (dot != NULL && dot[1] == 'r' && dcctl_parse_long(dot + 2, 1, 999999, &n))
		*dot = '\0';
	else
		n = 0;

	char next[160];
	snprintf(next, sizeof(next), "%s.r%ld", base, n + 1);
	json_object_set_new(job, "id", json_string(next));
}

/* Maps authorization ids of the waiting rows to their DNS provider (dc_authorizations). */
static json_t *authorization_providers(bulk_run_state *s)
{
	json_t *map = json_object();
	const char *id;
	json_t *entry;

	if (s->conn == NULL)
		return map;
	json_t *ids = json_array();
	json_object_foreach(s->waiting, id, entry) {
		json_t *authz = json_object_get(json_object_get(entry, "job"), "authorization_id");

		if (authz != NULL)
			json_array_append(ids, authz);
	}
	char *array = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	if (array == NULL)
		return map;
	const char *params[] = {array};
	PGresult *res = PQexecParams(s->conn, "SELECT a.id::text, a.dns_provider FROM dc_authorizations a "
	                                      "WHERE a.id::text IN (SELECT jsonb_array_elements_text($1::jsonb))",
	                             1, NULL, params, NULL, NULL, 0);
	free(array);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int row = 0; row < PQntuples(res); row++)
			json_object_set_new(map, PQgetvalue(res, row, 0), json_string(PQgetvalue(res, row, 1)));
	}
	PQclear(res);
	return map;
}

/* DNS provider of a row: its dns_provider, its authorization's, the discovered one, or "unknown". */
static const char *row_provider(const json_t *job, const json_t *result, const json_t *providers)
{
	const char *name = json_string_value(json_object_get(job, "dns_provider"));
	const char *authz = json_string_value(json_object_get(job, "authorization_id"));
	const json_t *discovery = json_object_get(result, "discovery");

	if (name != NULL)
		return name;
	if (authz != NULL && json_object_get(providers, authz) != NULL)
		return json_string_value(json_object_get(providers, authz));
	name = json_string_value(json_object_get(discovery, "provider_id"));
	if (name == NULL)
		name = json_string_value(json_object_get(discovery, "provider_name"));
	return name != NULL ? name : "unknown";
}

static void wait_progress(bulk_run_state *s, size_t finished, size_t total, bool final)
{
	double now = dcctl_mono();

	if (s->ctx->stderr_tty) {
		if (!final && now - s->last_progress < 0.1)
			return;
		fprintf(stderr, "\rresults %zu/%zu (%.0f%%) ", finished, total,
		        total > 0 ? 100.0 * (double)finished / (double)total : 100.0);
		if (final)
			fputc('\n', stderr);
	} else {
		if (!final && now - s->last_progress < s->opts->progress_interval_s)
			return;
		fprintf(stderr, "dcctl: bulk results: %zu of %zu finished\n", finished, total);
	}
	s->last_progress = now;
}

/* Reads the results already stored for the waiting rows, in pipelined chunks. */
static dcctl_exit stored_results(bulk_run_state *s, json_t *results)
{
	const char *id;
	json_t *entry;
	const char *chunk[BULK_BATCH_MAX];
	size_t n = 0;
	void *iter = json_object_iter(s->waiting);

	while (iter != NULL || n > 0) {
		if (iter != NULL && n < BULK_BATCH_MAX) {
			id = json_object_iter_key(iter);
			entry = json_object_iter_value(iter);
			(void)entry;
			if (redisAppendCommand(s->rc, "HGET " REDIS_KEY_RESULT_PREFIX "%s result", id) != REDIS_OK)
				return out_error(s->ctx, DCCTL_EXIT_FAILED, "out of memory");
			chunk[n++] = id;
			iter = json_object_iter_next(s->waiting, iter);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			redisReply *reply = NULL;
			json_error_t error;

			if (redisGetReply(s->rc, (void **)&reply) != REDIS_OK || reply == NULL)
				return out_error(s->ctx, DCCTL_EXIT_UNREACHABLE, "Redis connection failed: %s",
				                 s->rc->errstr);
			json_t *result = reply->type == REDIS_REPLY_STRING
			                     ? json_loadb(reply->str, reply->len, 0, &error) : NULL;
			if (result_is_terminal(json_string_value(json_object_get(result, "status"))))
				json_object_set(results, chunk[i], result);
			json_decref(result);
			freeReplyObject(reply);
		}
		n = 0;
	}
	return DCCTL_EXIT_OK;
}

static void count(json_t *object, const char *key)
{
	json_t *value = json_object_get(object, key);

	json_object_set_new(object, key, json_integer(json_integer_value(value) + 1));
}

/* Counts results by status and provider, writes --failed-out, prints tables. */
static bool summarize(bulk_run_state *s, json_t *results, json_t *summary)
{
	json_t *providers = authorization_providers(s);
	json_t *by_status = json_object();
	json_t *by_provider = json_object();
	bool all_succeeded = true;
	const char *id;
	json_t *entry;

	json_object_foreach(s->waiting, id, entry) {
		json_t *job = json_object_get(entry, "job");
		json_t *result = json_object_get(results, id);
		const char *status = result != NULL ? json_string_value(json_object_get(result, "status"))
		                                    : "no_result";
		const char *provider = row_provider(job, result, providers);

		count(by_status, status);
		if (json_object_get(by_provider, provider) == NULL)
			json_object_set_new(by_provider, provider, json_object());
		count(json_object_get(by_provider, provider), status);
		if (strcmp(status, "succeeded") != 0) {
			all_succeeded = false;
			retry_id(job);
			write_failed(s, job);
		}
	}
	json_object_set_new(summary, "results", json_pack("{s:I, s:I, s:O, s:O}", "total",
	                    (json_int_t)json_object_size(s->waiting), "finished",
	                    (json_int_t)json_object_size(results), "by_status", by_status,
	                    "by_provider", by_provider));

	if (!s->ctx->json) {
		const char *status_headers[] = {"STATUS", "JOBS"};
		out_table *t = out_table_new(2, status_headers);
		const char *key;
		json_t *value;

		json_object_foreach(by_status, key, value) {
			char n[24];
			const char *cells[] = {key, out_scalar(value, n, sizeof(n))};
			out_table_add(t, cells);
		}
		out_table_print(t, stdout);
		out_table_free(t);
		putchar('\n');

		const char *provider_headers[] = {"DNS PROVIDER", "STATUS", "JOBS"};
		t = out_table_new(3, provider_headers);
		json_object_foreach(by_provider, key, value) {
			const char *status;
			json_t *n_value;

			json_object_foreach(value, status, n_value) {
				char n[24];
				const char *cells[] = {key, status, out_scalar(n_value, n, sizeof(n))};
				out_table_add(t, cells);
			}
		}
		out_table_print(t, stdout);
		out_table_free(t);
	}
	json_decref(by_status);
	json_decref(by_provider);
	json_decref(providers);
	return all_succeeded;
}

/* Gives each waiting row its final result: those already stored, then published ones. */
static dcctl_exit bulk_wait(bulk_run_state *s, waiter *w, json_t *summary)
{
	json_t *results = json_object();
	size_t total = json_object_size(s->waiting);
	double deadline = dcctl_mono() + s->opts->timeout_s;
	dcctl_exit code = stored_results(s, results);
	bool timed_out = false;

	while (code == DCCTL_EXIT_OK && json_object_size(results) < total) {
		wait_progress(s, json_object_size(results), total, false);
		double left = deadline - dcctl_mono();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		json_t *result = waiter_next(w, left < 1 ? left : 1, &code);
		const char *id = json_string_value(json_object_get(result, "id"));

		if (id != NULL && json_object_get(s->waiting, id) != NULL)
			json_object_set(results, id, result);
		json_decref(result);
	}
	if (code != DCCTL_EXIT_OK) {
		json_decref(results);
		return out_error(s->ctx, code, "lost the Redis connection while waiting for results");
	}
	wait_progress(s, json_object_size(results), total, true);
	json_object_set_new(summary, "timed_out", json_boolean(timed_out));
	bool all_succeeded = summarize(s, results, summary);
	json_decref(results);
	if (timed_out) {
		fprintf(stderr, "dcctl: %zu of %zu results arrived before the timeout\n",
		        json_object_size(summary) > 0 ? (size_t)json_integer_value(json_object_get(
		            json_object_get(summary, "results"), "finished")) : 0, total);
		return DCCTL_EXIT_TIMEOUT;
	}
	return all_succeeded ? DCCTL_EXIT_OK : DCCTL_EXIT_FAILED;
}

static void print_summary(bulk_run_state *s, json_t *summary)
{
	if (s->ctx->json) {
		json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:O}", "file", s->opts->file,
		                        "queue", s->opts->queue, "read", (json_int_t)s->read, "enqueued",
		                        (json_int_t)s->enqueued, "skipped", (json_int_t)s->skipped,
		                        "rejected", (json_int_t)s->rejected, "rejected_rows",
		                        s->rejected_rows);
		if (summary != NULL)
			json_object_update(doc, summary);
		out_json(doc);
		return;
	}
	printf("%s: read %ld rows: %ld enqueued on %s, %ld skipped as already known, %ld rejected\n",
	       s->opts->file, s->read, s->enqueued, s->opts->queue, s->skipped, s->rejected);
}

int bulk_run(dcctl *ctx, const bulk_options *opts)
{
	bulk_run_state s = {.ctx = ctx, .opts = opts};
	waiter *w = NULL;
	json_t *summary = NULL;
	char reason[BULK_REASON_MAX];
	dcctl_exit code;

	s.rejected_rows = json_array();
	code = dcctl_redis_connect(ctx, &s.rc);
	if (code != DCCTL_EXIT_OK)
		goto out;
	if (dcctl_pg_configured(ctx)) {
		code = dcctl_pg_connect(ctx, &s.conn);
		if (code != DCCTL_EXIT_OK)
			goto out;
	}
	s.reader = bulk_reader_open(opts->file, opts->format, opts->default_type, reason,
	                            sizeof(reason));
	if (s.reader == NULL) {
		code = out_error(ctx, DCCTL_EXIT_USAGE, "%s: %s", opts->file, reason);
		goto out;
	}
	if (opts->failed_out != NULL) {
		s.failed_out = fopen(opts->failed_out, "w");
		if (s.failed_out == NULL) {
			code = out_error(ctx, DCCTL_EXIT_USAGE, "cannot write --failed-out %s",
			                 opts->failed_out);
			goto out;
		}
	}
	if (opts->wait) {
		/* Subscribed before the first row is added, so no result is missed. */
		code = waiter_new(ctx, &w);
		if (code != DCCTL_EXIT_OK)
			goto out;
		s.waiting = json_object();
	}

	s.started = dcctl_mono();
	s.last_progress = s.started;
	code = read_all(&s);
	progress(&s, true);
	if (code == DCCTL_EXIT_OK && opts->wait) {
		summary = json_object();
		code = bulk_wait(&s, w, summary);
	}
	if (code == DCCTL_EXIT_OK || code == DCCTL_EXIT_TIMEOUT ||
	    (code == DCCTL_EXIT_FAILED && summary != NULL))
		print_summary(&s, summary);
out:
	json_decref(summary);
	json_decref(s.rejected_rows);
	json_decref(s.waiting);
	for (size_t i = 0; i < s.batch_count; i++)
		json_decref(s.batch[i].job);
	if (s.failed_out != NULL)
		fclose(s.failed_out);
	waiter_free(w);
	bulk_reader_free(s.reader);
	if (s.rc != NULL)
		redisFree(s.rc);
	PQfinish(s.conn);
	return code;
}
