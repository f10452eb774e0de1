/*
 * Keep-alive tests against a real PostgreSQL and a real Redis on loopback.
 * Racing workers are played by two keep-alives with their own job store
 * connections on one loop, so their statements interleave at the server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "common/migrate.h"
#include "dcworker/keepalive.h"
#include "support/support.h"

static const char *const queue_names[] = {"bulk"};

typedef struct fixture {
	ts_postgres *pg;
	ts_redis *redis;
	struct ev_loop *loop;
	job_store *stores[2];
	queue *q;
	PGconn *db;            /* blocking connection that sets up rows */
	redisContext *inspect; /* blocking client that reads the stream */
} fixture;

static fixture fx;

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run the loop until *DONE reaches TARGET or SECONDS pass; true when reached. */
static bool run_until(const int *done, int target, double seconds)
{
	ev_timer tick;
	double deadline;

	ev_now_update(fx.loop);
	deadline = ev_now(fx.loop) + seconds;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(fx.loop, &tick);
	while (*done < target && ev_now(fx.loop) < deadline)
		ev_run(fx.loop, EVRUN_ONCE);
	ev_timer_stop(fx.loop, &tick);
	return *done >= target;
}

static void setup(void)
{
	const char *source = getenv("DC_SOURCE_DIR");
	char dir[1024];
	common_error err;
	int never = 0;

	cr_assert_not_null(source, "DC_SOURCE_DIR is not set; run the test through ctest");
	fx.pg = ts_postgres_start();
	cr_assert_not_null(fx.pg, "PostgreSQL did not start");
	fx.redis = ts_redis_start(false);
	cr_assert_not_null(fx.redis, "Redis did not start");
	fx.db = PQconnectdb(ts_postgres_conninfo(fx.pg));
	cr_assert_eq(PQstatus(fx.db), CONNECTION_OK);
	snprintf(dir, sizeof(dir), "%s/migrations", source);
	cr_assert_eq(migrate_run(fx.db, dir, NULL, NULL, &err), COMMON_OK, "%s", err.message);

	fx.loop = ev_loop_new(EVFLAG_AUTO);
	for (int i = 0; i < 2; i++) {
		job_store_options o = {.conninfo = ts_postgres_conninfo(fx.pg), .pool_size = 1};
		job_store_error jerr;

		fx.stores[i] = job_store_new(fx.loop, &o, &jerr);
		cr_assert_not_null(fx.stores[i], "%s", jerr.message);
	}
	queue_options qo = {
		.host = "127.0.0.1",
		.port = ts_redis_port(fx.redis),
		.consumer = "keepalive-test",
		.queues = queue_names,
		.queue_count = 1,
	};
	queue_error qerr;
	fx.q = queue_new(fx.loop, &qo, &qerr);
	cr_assert_not_null(fx.q, "%s", qerr.message);
	for (int i = 0; i < 250; i++) {
		if (queue_connected(fx.q) && job_store_connected(fx.stores[0]) == 1 &&
		    job_store_connected(fx.stores[1]) == 1)
			break;
		run_until(&never, 1, 0.02);
	}
	cr_assert(queue_connected(fx.q), "the queue did not connect");
	cr_assert_eq(job_store_connected(fx.stores[0]), 1, "the job store did not connect");
	cr_assert_eq(job_store_connected(fx.stores[1]), 1, "the job store did not connect");

	fx.inspect = redisConnect("127.0.0.1", ts_redis_port(fx.redis));
	cr_assert(fx.inspect != NULL && fx.inspect->err == 0);
}

static void teardown(void)
{
	redisFree(fx.inspect);
	queue_free(fx.q);
	job_store_free(fx.stores[0]);
	job_store_free(fx.stores[1]);
	if (fx.loop != NULL)
		ev_loop_destroy(fx.loop);
	PQfinish(fx.db);
	ts_postgres_stop(fx.pg);
	ts_redis_stop(fx.redis);
	memset(&fx, 0, sizeof(fx));
}

TestSuite(keepalive, .init = setup, .fini = teardown, .timeout = 120);

/*
 * Insert COUNT authorizations with STATUS whose refresh token was last used
 * DAYS ago, with ids ...-PREFIX0001 upwards.
 */
static void insert_rows(int count, int prefix, int days, const char *status)
{
	for (int i = 1; i <= count; i++) {
		char id[64];
		char days_text[16];

		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%08d%04d", prefix, i);
		snprintf(days_text, sizeof(days_text), "%d", days);
		const char *params[] = {id, days_text, status};
		PGresult *res = PQexecParams(
			fx.db,
			"INSERT INTO dc_authorizations (id, dns_provider, zone, refresh_token, status,"
			" refresh_token_used_at)"
			" VALUES ($1::uuid, 'sandbox', 'example.com', '\\x01'::bytea, $3,"
			" now() - $2::int * interval '1 day')",
			3, NULL, params, NULL, NULL, 0);
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
		PQclear(res);
	}
}

typedef struct run_probe {
	int done;
	keepalive_report reports[2];
} run_probe;

static void on_report(void *arg, const keepalive_report *report)
{
	run_probe *p = arg;

	p->reports[p->done < 2 ? p->done : 1] = *report;
	p->done++;
}

static keepalive *new_keepalive(job_store *store, size_t max_per_run)
{
	keepalive_options o = {.idle_days = 20, .period_s = 3600, .max_per_run = max_per_run};
	job_store_error err;
	keepalive *k = keepalive_new(store, fx.q, &o, &err);

	cr_assert_not_null(k, "%s", err.message);
	return k;
}

/* Count refresh jobs per authorization id in the bulk stream; return the total. */
static size_t count_jobs(json_t *per_id)
{
	redisReply *reply = redisCommand(fx.inspect, "XRANGE {dc}:queue:bulk - +");
	size_t total = 0;

	cr_assert(reply != NULL && reply->type == REDIS_REPLY_ARRAY);
	for (size_t i = 0; i < reply->elements; i++) {
		redisReply *fields = reply->element[i]->element[1];

		cr_assert_eq(fields->elements, 2);
		cr_assert_str_eq(fields->element[0]->str, "job");

		json_error_t jerr;
		json_t *job = json_loads(fields->element[1]->str, 0, &jerr);
		cr_assert_not_null(job, "%s", jerr.text);
		cr_assert_str_eq(json_string_value(json_object_get(job, "type")), "refresh");
		cr_assert_eq(json_object_size(job), 3, "unexpected fields in %s", fields->element[1]->str);

		const char *auth = json_string_value(json_object_get(job, "authorization_id"));
		cr_assert_not_null(auth);
		json_int_t seen = json_integer_value(json_object_get(per_id, auth));
		json_object_set_new(per_id, auth, json_integer(seen + 1));
		json_decref(job);
		total++;
	}
	freeReplyObject(reply);
	return total;
}

Test(keepalive, racing_callers_enqueue_once_each)
{
	keepalive *a = new_keepalive(fx.stores[0], 0);
	keepalive *b = new_keepalive(fx.stores[1], 0);
	run_probe probe = {0};
	job_store_error err;

	insert_rows(30, 1, 25, "active");  /* idle: one job each */
	insert_rows(5, 2, 3, "active");    /* recent: none */
	insert_rows(4, 3, 40, "revoked");  /* idle but revoked: none */

	cr_assert_eq(keepalive_run(a, on_report, &probe, &err), JOB_STORE_OK, "%s", err.message);
	cr_assert_eq(keepalive_run(b, on_report, &probe, &err), JOB_STORE_OK, "%s", err.message);
	cr_assert_eq(keepalive_run(a, on_report, &probe, &err), JOB_STORE_ERR_BUSY);
	cr_assert(run_until(&probe.done, 2, 30), "the keep-alive runs did not finish");

	for (int i = 0; i < 2; i++) {
		cr_assert_eq(probe.reports[i].error.status, JOB_STORE_OK, "%s",
		             probe.reports[i].error.message);
		cr_assert_eq(probe.reports[i].queue_error.status, QUEUE_OK);
	}
	cr_log_info("racing keep-alives enqueued %zu and %zu jobs", probe.reports[0].enqueued,
	            probe.reports[1].enqueued);
	cr_assert_eq(probe.reports[0].enqueued + probe.reports[1].enqueued, 30);

	json_t *per_id = json_object();
	cr_assert_eq(count_jobs(per_id), 30);
	cr_assert_eq(json_object_size(per_id), 30, "some authorization got two jobs");
	for (int i = 1; i <= 30; i++) {
		char id[64];

		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%08d%04d", 1, i);
		cr_assert_eq(json_integer_value(json_object_get(per_id, id)), 1, "%s", id);
	}
	json_decref(per_id);

	/* Within the period a second run finds nothing. */
	probe = (run_probe){0};
	cr_assert_eq(keepalive_run(a, on_report, &probe, &err), JOB_STORE_OK);
	cr_assert(run_until(&probe.done, 1, 10));
	cr_assert_eq(probe.reports[0].enqueued, 0);
	keepalive_free(a);
	keepalive_free(b);
}

Test(keepalive, run_stops_at_max_per_run)
{
	keepalive *k = new_keepalive(fx.stores[0], 4);
	run_probe probe = {0};
	job_store_error err;

	insert_rows(6, 4, 30, "active");
	cr_assert_eq(keepalive_run(k, on_report, &probe, &err), JOB_STORE_OK);
	cr_assert(run_until(&probe.done, 1, 10));
	cr_assert_eq(probe.reports[0].enqueued, 4);

	probe = (run_probe){0};
	cr_assert_eq(keepalive_run(k, on_report, &probe, &err), JOB_STORE_OK);
	cr_assert(run_until(&probe.done, 1, 10));
	cr_assert_eq(probe.reports[0].enqueued, 2);
	keepalive_free(k);
}

Test(keepalive, failed_enqueue_removes_the_mark)
{
	keepalive_options o = {.idle_days = 20, .period_s = 3600, .queue_name = "bad name"};
	job_store_error err;
	keepalive *k = keepalive_new(fx.stores[0], fx.q, &o, &err);
	run_probe probe = {0};

	cr_assert_not_null(k, "%s", err.message);
	insert_rows(1, 5, 30, "active");
	cr_assert_eq(keepalive_run(k, on_report, &probe, &err), JOB_STORE_OK);
	cr_assert(run_until(&probe.done, 1, 10));
	cr_assert_eq(probe.reports[0].enqueued, 0);
	cr_assert_eq(probe.reports[0].queue_error.status, QUEUE_ERR_INVALID_ARGUMENT);

	PGresult *res = PQexec(fx.db, "SELECT count(*) FROM dc_authorizations"
	                              " WHERE keepalive_enqueued_at IS NOT NULL");
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "0", "the mark stayed after a failed XADD");
	PQclear(res);
	keepalive_free(k);

	k = new_keepalive(fx.stores[0], 0);
	probe = (run_probe){0};
	cr_assert_eq(keepalive_run(k, on_report, &probe, &err), JOB_STORE_OK);
	cr_assert(run_until(&probe.done, 1, 10));
	cr_assert_eq(probe.reports[0].enqueued, 1, "the next run did not retry");
	keepalive_free(k);
}

Test(keepalive, invalid_options_rejected)
{
	keepalive_options zero_days = {.idle_days = 0};
	keepalive_options negative_period = {.idle_days = 5, .period_s = -1};
	keepalive_options empty_queue = {.idle_days = 5, .queue_name = ""};
	job_store_error err;

	cr_assert_null(keepalive_new(fx.stores[0], fx.q, &zero_days, &err));
	cr_assert_eq(err.status, JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_null(keepalive_new(fx.stores[0], fx.q, &negative_period, &err));
	cr_assert_null(keepalive_new(fx.stores[0], fx.q, &empty_queue, &err));
	cr_assert_null(keepalive_new(NULL, fx.q, &zero_days, &err));
	keepalive_free(NULL);
}
