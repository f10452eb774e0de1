/*
 * Job store tests against a real PostgreSQL on loopback, one server per
 * test, with the repository's migrations applied by psql. A blocking libpq
 * connection inspects rows; the store under test runs on a libev loop.
 * Every callback is counted.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "dcworker/job_store.h"
#include "support/support.h"

typedef struct probe {
	int calls;
	int ok;
	job_store_status last_status;
	job_claim claim;
	char state[JOB_STORE_STATE_MAX];
	int attempts;
	job_authorization *authorization;
	int connected;
	int connect_failed;
	int lost;
} probe;

static void on_event(void *arg, job_store_event event, int slot, const char *detail)
{
	probe *p = arg;

	(void)slot;
	(void)detail;
	if (event == JOB_STORE_EVENT_CONNECTED)
		p->connected++;
	else if (event == JOB_STORE_EVENT_CONNECT_FAILED)
		p->connect_failed++;
	else
		p->lost++;
}

static void on_done(void *arg, job_store_result *result)
{
	probe *p = arg;

	p->calls++;
	p->last_status = result->error.status;
	if (result->error.status != JOB_STORE_OK)
		return;
	p->ok++;
	p->claim = result->claim;
	memcpy(p->state, result->state, sizeof(p->state));
	p->attempts = result->attempts;
	job_authorization_free(p->authorization);
	p->authorization = result->authorization;
	result->authorization = NULL;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static bool run_until(struct ev_loop *loop, const int *counter, int target, double seconds)
{
	ev_timer tick;
	double deadline;

	ev_now_update(loop);
	deadline = ev_now(loop) + seconds;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	while (*counter < target && ev_now(loop) < deadline)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return *counter >= target;
}

static void run_for(struct ev_loop *loop, double seconds)
{
	int never = 0;

	run_until(loop, &never, 1, seconds);
}

typedef struct fixture {
	ts_postgres *pg;
	struct ev_loop *loop;
	PGconn *db;  /* blocking connection that inspects rows */
} fixture;

static fixture fx;

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Apply every .sql file under migrations/ in name order with psql. */
static void apply_migrations(const char *conninfo)
{
	const char *source = getenv("DC_SOURCE_DIR");
	char dir[1024];
	char *names[64];
	size_t count = 0;
	struct dirent *entry;
	DIR *d;

	cr_assert_not_null(source, "DC_SOURCE_DIR is not set; run the test through ctest");
	snprintf(dir, sizeof(dir), "%s/migrations", source);
	d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s", dir);
	while ((entry = readdir(d)) != NULL && count < 64) {
		size_t len = strlen(entry->d_name);

		if (len > 4 && strcmp(entry->d_name + len - 4, ".sql") == 0)
			names[count++] = strdup(entry->d_name);
	}
	closedir(d);
	if (count == 0)
		cr_skip_test("no migrations in %s; the job store needs the dc_jobs tables", dir);
	qsort(names, count, sizeof(names[0]), compare_names);

	for (size_t i = 0; i < count; i++) {
		char command[4096];
		int status;

		snprintf(command, sizeof(command),
		         "psql -X -q -v ON_ERROR_STOP=1 -d '%s' -f '%s/%s' >/dev/null", conninfo, dir,
		         names[i]);
		status = system(command);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "migration %s failed", names[i]);
		free(names[i]);
	}
}

static void setup(void)
{
	fx.pg = ts_postgres_start();
	cr_assert_not_null(fx.pg, "PostgreSQL did not start");
	apply_migrations(ts_postgres_conninfo(fx.pg));
	fx.loop = ev_loop_new(EVFLAG_AUTO);
	fx.db = PQconnectdb(ts_postgres_conninfo(fx.pg));
	cr_assert_eq(PQstatus(fx.db), CONNECTION_OK);
}

static void teardown(void)
{
	PQfinish(fx.db);
	if (fx.loop != NULL)
		ev_loop_destroy(fx.loop);
	ts_postgres_stop(fx.pg);
	memset(&fx, 0, sizeof(fx));
}

static job_store_options options(probe *events)
{
	job_store_options o = {
		.conninfo = ts_postgres_conninfo(fx.pg),
		.pool_size = 2,
		.query_timeout_ms = 3000,
		.reconnect_min_ms = 20,
		.reconnect_max_ms = 200,
		.on_event = on_event,
		.event_arg = events,
	};
	return o;
}

static job_store *open_store(const job_store_options *o, probe *events)
{
	job_store_error err = {0};
	job_store *store = job_store_new(fx.loop, o, &err);

	cr_assert_not_null(store, "job_store_new failed: %s", err.message);
	cr_assert(run_until(fx.loop, &events->connected, (int)o->pool_size, 10),
	          "the pool did not connect");
	return store;
}

/* Run SQL on the inspecting connection and return the first value as an integer. */
static long long db_integer(const char *sql, const char *param)
{
	const char *params[] = {param};
	PGresult *res = PQexecParams(fx.db, sql, param != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
	long long value;

	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return value;
}

static void claim(job_store *store, const char *id, const char *owner, long lease_ms, probe *p)
{
	job_store_error err = {0};
	job_store_claim_args args = {
		.id = id,
		.type = "apply",
		.queue = "interactive",
		.payload_json = "{\"type\":\"apply\"}",
		.owner = owner,
		.lease_ms = lease_ms,
	};
	int before = p->calls;

	cr_assert_eq(job_store_claim(store, &args, on_done, p, &err), JOB_STORE_OK, "%s",
	             err.message);
	cr_assert(run_until(fx.loop, &p->calls, before + 1, 10));
}

static void commit(job_store *store, const char *id, const char *owner, const char *state,
                   probe *p)
{
	job_store_error err = {0};
	job_store_commit_args args = {
		.id = id,
		.owner = owner,
		.state = state,
		.result_json = "{\"status\":\"succeeded\"}",
		.attempts = 1,
		.event = state,
		.event_detail_json = NULL,
	};
	int before = p->calls;

	cr_assert_eq(job_store_commit(store, &args, on_done, p, &err), JOB_STORE_OK, "%s",
	             err.message);
	cr_assert(run_until(fx.loop, &p->calls, before + 1, 10));
}

TestSuite(job_store, .init = setup, .fini = teardown, .timeout = 120);

Test(job_store, claim_new_job_acquired)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	claim(store, "job-1", "worker-a", 30000, &p);
	cr_assert_eq(p.last_status, JOB_STORE_OK);
	cr_assert_eq(p.claim, JOB_CLAIM_ACQUIRED);
	cr_assert_str_eq(p.state, "running");
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_jobs WHERE id = $1 AND state = 'running'"
	                        " AND owner = 'worker-a'", "job-1"), 1);
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                        " AND event = 'started'", "job-1"), 1);
	job_store_free(store);
}

Test(job_store, finished_job_only_acks)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	claim(store, "job-2", "worker-a", 30000, &p);
	cr_assert_eq(p.claim, JOB_CLAIM_ACQUIRED);
	commit(store, "job-2", "worker-a", "succeeded", &p);
	cr_assert_eq(p.last_status, JOB_STORE_OK);

	/* A duplicate delivery of the finished job. */
	claim(store, "job-2", "worker-b", 30000, &p);
	cr_assert_eq(p.last_status, JOB_STORE_OK);
	cr_assert_eq(p.claim, JOB_CLAIM_FINISHED);
	cr_assert_str_eq(p.state, "succeeded");
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_job_events WHERE job_id = $1", "job-2"), 2);
	cr_assert_eq(p.calls, 3);
	job_store_free(store);
}

Test(job_store, claim_busy_until_lease_expires)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe a = {0};
	probe b = {0};

	claim(store, "job-3", "worker-a", 300, &a);
	cr_assert_eq(a.claim, JOB_CLAIM_ACQUIRED);
	claim(store, "job-3", "worker-b", 30000, &b);
	cr_assert_eq(b.claim, JOB_CLAIM_BUSY);

	run_for(fx.loop, 0.4);
	claim(store, "job-3", "worker-b", 30000, &b);
	cr_assert_eq(b.claim, JOB_CLAIM_ACQUIRED);

	/* The first owner lost its lease, so its result is rejected. */
	commit(store, "job-3", "worker-a", "succeeded", &a);
	cr_assert_eq(a.last_status, JOB_STORE_ERR_LEASE_LOST);
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_jobs WHERE id = $1"
	                        " AND owner = 'worker-b'", "job-3"), 1);
	job_store_free(store);
}

Test(job_store, concurrent_claims_one_wins)
{
	probe events_a = {0};
	probe events_b = {0};
	job_store_options oa = options(&events_a);
	job_store_options ob = options(&events_b);
	job_store *a = open_store(&oa, &events_a);
	job_store *b = open_store(&ob, &events_b);
	enum { JOBS = 20 };
	probe pa[JOBS] = {0};
	probe pb[JOBS] = {0};
	int done = 0;

	for (int i = 0; i < JOBS; i++) {
		char id[32];
		job_store_claim_args args = {
			.id = id, .type = "apply", .queue = "bulk", .payload_json = "{}", .lease_ms = 30000,
		};

		snprintf(id, sizeof(id), "race-%d", i);
		args.owner = "worker-a";
		cr_assert_eq(job_store_claim(a, &args, on_done, &pa[i], NULL), JOB_STORE_OK);
		args.owner = "worker-b";
		cr_assert_eq(job_store_claim(b, &args, on_done, &pb[i], NULL), JOB_STORE_OK);
	}
	for (int i = 0; i < JOBS; i++) {
		cr_assert(run_until(fx.loop, &pa[i].calls, 1, 10));
		cr_assert(run_until(fx.loop, &pb[i].calls, 1, 10));
	}
	for (int i = 0; i < JOBS; i++) {
		int won = (pa[i].claim == JOB_CLAIM_ACQUIRED) + (pb[i].claim == JOB_CLAIM_ACQUIRED);

		cr_assert_eq(pa[i].last_status, JOB_STORE_OK);
		cr_assert_eq(pb[i].last_status, JOB_STORE_OK);
		cr_assert_eq(won, 1, "job %d was acquired %d times", i, won);
		done++;
	}
	cr_assert_eq(done, JOBS);
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_job_events WHERE event = 'started'", NULL),
	             JOBS);
	job_store_free(a);
	job_store_free(b);
}

Test(job_store, commit_writes_row_and_event)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	claim(store, "job-4", "worker-a", 30000, &p);
	commit(store, "job-4", "worker-a", "succeeded", &p);
	cr_assert_eq(p.last_status, JOB_STORE_OK);
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_jobs WHERE id = $1 AND state = 'succeeded'"
	                        " AND result->>'status' = 'succeeded' AND owner IS NULL"
	                        " AND finished_at IS NOT NULL", "job-4"), 1);
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                        " AND event = 'succeeded'", "job-4"), 1);

	/* A second commit finds no running row and writes nothing. */
	commit(store, "job-4", "worker-a", "failed", &p);
	cr_assert_eq(p.last_status, JOB_STORE_ERR_LEASE_LOST);
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_job_events WHERE job_id = $1", "job-4"), 2);
	job_store_free(store);
}

Test(job_store, release_then_claim_again)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	claim(store, "job-5", "worker-a", 30000, &p);
	commit(store, "job-5", "worker-a", "queued", &p);
	cr_assert_eq(p.last_status, JOB_STORE_OK);
	claim(store, "job-5", "worker-b", 30000, &p);
	cr_assert_eq(p.claim, JOB_CLAIM_ACQUIRED);
	cr_assert_eq(p.attempts, 1);
	job_store_free(store);
}

Test(job_store, append_event_and_renew)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	probe event = {0};
	probe renewed = {0};
	probe stranger = {0};

	claim(store, "job-6", "worker-a", 30000, &p);
	cr_assert_eq(job_store_append_event(store, "job-6", "refreshed", "{\"n\":1}", on_done,
	                                    &event, NULL), JOB_STORE_OK);
	cr_assert_eq(job_store_renew_lease(store, "job-6", "worker-a", 60000, on_done, &renewed,
	                                   NULL), JOB_STORE_OK);
	cr_assert_eq(job_store_renew_lease(store, "job-6", "worker-z", 60000, on_done, &stranger,
	                                   NULL), JOB_STORE_OK);
	cr_assert(run_until(fx.loop, &event.calls, 1, 10));
	cr_assert(run_until(fx.loop, &renewed.calls, 1, 10));
	cr_assert(run_until(fx.loop, &stranger.calls, 1, 10));
	cr_assert_eq(event.last_status, JOB_STORE_OK);
	cr_assert_eq(renewed.last_status, JOB_STORE_OK);
	cr_assert_eq(stranger.last_status, JOB_STORE_ERR_LEASE_LOST);
	cr_assert_eq(db_integer("SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                        " AND event = 'refreshed'", "job-6"), 1);
	job_store_free(store);
}

Test(job_store, authorization_not_found)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	cr_assert_eq(job_store_get_authorization(store, "00000000-0000-0000-0000-000000000000",
	                                         on_done, &p, NULL), JOB_STORE_OK);
	cr_assert(run_until(fx.loop, &p.calls, 1, 10));
	cr_assert_eq(p.last_status, JOB_STORE_ERR_NOT_FOUND);
	cr_assert_null(p.authorization);
	job_store_free(store);
}

Test(job_store, authorization_loaded)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};
	PGresult *res = PQexec(fx.db,
		"INSERT INTO dc_authorizations (id, dns_provider, zone, access_token, refresh_token,"
		" expires_at, version) VALUES ('11111111-2222-3333-4444-555555555555', 'sandbox',"
		" 'shop.test.example', '\\x0102ff'::bytea, NULL, to_timestamp(1700000000), 7)");

	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	cr_assert_eq(job_store_get_authorization(store, "11111111-2222-3333-4444-555555555555",
	                                         on_done, &p, NULL), JOB_STORE_OK);
	cr_assert(run_until(fx.loop, &p.calls, 1, 10));
	cr_assert_eq(p.last_status, JOB_STORE_OK);
	cr_assert_not_null(p.authorization);
	cr_assert_str_eq(p.authorization->dns_provider, "sandbox");
	cr_assert_str_eq(p.authorization->zone, "shop.test.example");
	cr_assert_str_eq(p.authorization->status, "active");
	cr_assert_eq(p.authorization->access_token_len, 3);
	cr_assert_eq(p.authorization->access_token[2], 0xff);
	cr_assert_null(p.authorization->refresh_token);
	cr_assert_eq(p.authorization->expires_at_ms, 1700000000000LL);
	cr_assert_eq(p.authorization->version, 7);
	job_authorization_free(p.authorization);
	job_store_free(store);
}

Test(job_store, restart_reconnects)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	claim(store, "job-7", "worker-a", 30000, &p);
	cr_assert_eq(p.claim, JOB_CLAIM_ACQUIRED);

	PQfinish(fx.db);
	fx.db = NULL;
	cr_assert(ts_postgres_restart(fx.pg));
	cr_assert(run_until(fx.loop, &events.lost, 2, 10), "the loss was not reported");

	/* Issued while reconnecting: waits for a connection, then runs. */
	probe after = {0};
	claim(store, "job-8", "worker-a", 30000, &after);
	cr_assert_eq(after.last_status, JOB_STORE_OK);
	cr_assert_eq(after.claim, JOB_CLAIM_ACQUIRED);
	cr_assert(run_until(fx.loop, &events.connected, 4, 10));
	cr_assert_eq(events.lost, 2);
	fx.db = PQconnectdb(ts_postgres_conninfo(fx.pg));
	job_store_free(store);
}

Test(job_store, statement_timeout_cancels)
{
	probe events = {0};
	job_store_options o = options(&events);
	o.query_timeout_ms = 300;
	job_store *store = open_store(&o, &events);
	probe p = {0};
	job_store_error err = {0};

	claim(store, "job-9", "worker-a", 10, &p);
	run_for(fx.loop, 0.05);

	/* Another session locks the row, so the next claim waits on the lock. */
	PGresult *res = PQexec(fx.db, "BEGIN; SELECT * FROM dc_jobs WHERE id = 'job-9' FOR UPDATE");
	PQclear(res);
	job_store_claim_args args = {.id = "job-9", .type = "apply", .queue = "bulk",
	                             .payload_json = "{}", .owner = "worker-b", .lease_ms = 30000};
	probe slow = {0};
	cr_assert_eq(job_store_claim(store, &args, on_done, &slow, &err), JOB_STORE_OK);
	cr_assert(run_until(fx.loop, &slow.calls, 1, 10));
	cr_assert_eq(slow.last_status, JOB_STORE_ERR_QUERY);
	res = PQexec(fx.db, "ROLLBACK");
	PQclear(res);

	/* The cancelled claim wrote nothing, so the next one wins. */
	claim(store, "job-9", "worker-b", 30000, &p);
	cr_assert_eq(p.claim, JOB_CLAIM_ACQUIRED);
	cr_assert_eq(events.lost, 0);
	job_store_free(store);
}

/* Stop (SIGSTOP) or resume (SIGCONT) every other client backend. */
static void signal_backends(const char *signal_name)
{
	char sql[256];
	PGresult *res;

	snprintf(sql, sizeof(sql),
	         "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
	         " AND pid <> pg_backend_pid()");
	res = PQexec(fx.db, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	for (int i = 0; i < PQntuples(res); i++) {
		char command[64];

		snprintf(command, sizeof(command), "kill -%s %s", signal_name, PQgetvalue(res, i, 0));
		cr_assert_eq(system(command), 0);
	}
	PQclear(res);
}

Test(job_store, hung_server_times_out)
{
	probe events = {0};
	job_store_options o = options(&events);
	o.query_timeout_ms = 200;
	o.pool_size = 1;
	job_store *store = open_store(&o, &events);
	probe p = {0};

	signal_backends("STOP");
	claim(store, "job-10", "worker-a", 30000, &p);
	signal_backends("CONT");
	cr_assert_eq(p.last_status, JOB_STORE_ERR_TIMEOUT);
	cr_assert_eq(events.lost, 1);

	cr_assert(run_until(fx.loop, &events.connected, 2, 10));
	claim(store, "job-10", "worker-a", 30000, &p);
	cr_assert_eq(p.last_status, JOB_STORE_OK);
	job_store_free(store);
}

Test(job_store, waiting_queries_bounded)
{
	probe events = {0};
	job_store_options o = options(&events);
	char conninfo[128];

	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d user=postgres dbname=postgres",
	         ts_free_port());
	o.conninfo = conninfo;
	o.pool_size = 1;
	o.max_waiting = 2;
	o.query_timeout_ms = 200;
	job_store_error err = {0};
	job_store *store = job_store_new(fx.loop, &o, &err);
	cr_assert_not_null(store);

	probe p = {0};
	cr_assert_eq(job_store_append_event(store, "j", "e", NULL, on_done, &p, &err), JOB_STORE_OK);
	cr_assert_eq(job_store_append_event(store, "j", "e", NULL, on_done, &p, &err), JOB_STORE_OK);
	cr_assert_eq(job_store_append_event(store, "j", "e", NULL, on_done, &p, &err),
	             JOB_STORE_ERR_BUSY);
	cr_assert(run_until(fx.loop, &p.calls, 2, 5));
	run_for(fx.loop, 0.05);
	cr_assert_eq(p.calls, 2);
	cr_assert_eq(p.last_status, JOB_STORE_ERR_TIMEOUT);
	cr_assert_geq(events.connect_failed, 1);
	cr_assert_eq(events.connected, 0);
	job_store_free(store);
}

Test(job_store, free_fails_pending)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};

	for (int i = 0; i < 5; i++)
		cr_assert_eq(job_store_append_event(store, "job-x", "e", NULL, on_done, &p, NULL),
		             JOB_STORE_OK);
	job_store_free(store);
	cr_assert_eq(p.calls, 5);
	cr_assert_eq(p.last_status, JOB_STORE_ERR_CLOSED);
	run_for(fx.loop, 0.05);
	cr_assert_eq(p.calls, 5);
}

Test(job_store, invalid_arguments_rejected)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe p = {0};
	job_store_error err = {0};
	job_store_claim_args bad = {.id = "", .type = "apply", .queue = "q", .payload_json = "{}",
	                            .owner = "w", .lease_ms = 1000};
	job_store_commit_args running = {.id = "x", .owner = "w", .state = "running", .event = "e"};

	cr_assert_eq(job_store_claim(store, &bad, on_done, &p, &err), JOB_STORE_ERR_INVALID_ARGUMENT);
	bad.id = "x";
	bad.lease_ms = 0;
	cr_assert_eq(job_store_claim(store, &bad, on_done, &p, &err), JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(job_store_commit(store, &running, on_done, &p, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(job_store_get_authorization(store, "a\nb", on_done, &p, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	run_for(fx.loop, 0.05);
	cr_assert_eq(p.calls, 0);
	job_store_free(store);
}

Test(job_store, expired_lease_takeover_counts_reclaim)
{
	probe events = {0};
	job_store_options o = options(&events);
	job_store *store = open_store(&o, &events);
	probe a = {0};
	probe b = {0};

	claim(store, "job-reclaim", "worker-a", 300, &a);
	cr_assert_eq(a.claim, JOB_CLAIM_ACQUIRED);
	cr_assert_eq(db_integer("SELECT reclaims FROM dc_jobs WHERE id = $1", "job-reclaim"), 0);

	run_for(fx.loop, 0.4);
	claim(store, "job-reclaim", "worker-b", 30000, &b);
	cr_assert_eq(b.claim, JOB_CLAIM_ACQUIRED);
	cr_assert_eq(db_integer("SELECT reclaims FROM dc_jobs WHERE id = $1", "job-reclaim"), 1);

	/* A busy claim changes nothing. */
	claim(store, "job-reclaim", "worker-a", 30000, &a);
	cr_assert_eq(a.claim, JOB_CLAIM_BUSY);
	cr_assert_eq(db_integer("SELECT reclaims FROM dc_jobs WHERE id = $1", "job-reclaim"), 1);
	job_store_free(store);
}
