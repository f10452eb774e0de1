/*
 * dcctl job, jobs, dead, authorizations and stats against real Redis and
 * PostgreSQL, with rows and entries written the way the worker writes them.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl_harness.h"

#define AUTHZ "3f2c1b8e-6f1e-4c55-9a4e-2b1d7c9e0a11"

static void sql(const harness *h, const char *text)
{
	PGresult *res = PQexec(h->conn, text);
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
}

static json_t *run_ok(const harness *h, const char *const *argv)
{
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0, "%s: stderr: %s", argv[0], r.err);
	json_t *doc = run_json(&r);
	cr_assert_not_null(doc, "%s: stdout: %s", argv[0], r.out);
	run_output_free(&r);
	return doc;
}

static int run_code(const harness *h, const char *const *argv)
{
	run_output r = harness_run(h, argv);
	int code = r.exit_code;
	run_output_free(&r);
	return code;
}

Test(dcctl_inspect, job_and_jobs_filters)
{
	harness *h = harness_start(true, NULL);
	cr_assert_not_null(h);
	cr_assert(harness_migrate(h));
	sql(h, "INSERT INTO dc_jobs (id, type, queue, state, attempts, payload, result) VALUES "
	       "('j1', 'discover', 'interactive', 'succeeded', 1, '{\"domain\":\"a.test\"}', "
	       "'{\"status\":\"succeeded\"}'), "
	       "('j2', 'apply', 'bulk', 'failed', 3, '{\"domain\":\"b.test\"}', NULL)");
	sql(h, "INSERT INTO dc_job_events (job_id, event) VALUES ('j1', 'started'), ('j1', 'succeeded')");

	const char *job[] = {"job", "j1", "--json", NULL};
	json_t *doc = run_ok(h, job);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "state")), "succeeded");
	cr_assert_eq(json_integer_value(json_object_get(doc, "attempts")), 1);
	json_t *events = json_object_get(doc, "events");
	cr_assert_eq(json_array_size(events), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(events, 1), "event")),
	                 "succeeded");
	json_decref(doc);

	const char *missing[] = {"job", "nope", NULL};
	cr_assert_eq(run_code(h, missing), 3);

	const char *failed[] = {"jobs", "--status", "failed", "--json", NULL};
	doc = run_ok(h, failed);
	cr_assert_eq(json_array_size(json_object_get(doc, "jobs")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(doc, "jobs"), 0),
	                                                   "id")), "j2");
	json_decref(doc);

	const char *domain[] = {"jobs", "--domain", "A.test", "--since", "2000-01-01T00:00:00Z",
	                        "--json", NULL};
	doc = run_ok(h, domain);
	cr_assert_eq(json_array_size(json_object_get(doc, "jobs")), 1);
	json_decref(doc);

	const char *future[] = {"jobs", "--since", "2999-01-01", "--json", NULL};
	doc = run_ok(h, future);
	cr_assert_eq(json_array_size(json_object_get(doc, "jobs")), 0);
	json_decref(doc);

	const char *bad_time[] = {"jobs", "--since", "yesterday-ish", NULL};
	cr_assert_eq(run_code(h, bad_time), 1);
	harness_stop(h);
}

Test(dcctl_inspect, dead_list_retry_purge)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	redisReply *reply = redisCommand(h->rc, "XADD {dc}:dead 1-1 queue bulk entry_id 9-9 job %s "
	                                 "error %s time_ms 1", "{\"id\":\"d1\",\"type\":\"exchange_code\","
	                                 "\"code\":\"c0de-secret\"}", "delivered too many times");
	freeReplyObject(reply);
	reply = redisCommand(h->rc, "XADD {dc}:dead 2-1 queue interactive job {\"id\":\"d2\"} error x");
	freeReplyObject(reply);

	const char *list[] = {"dead", "list", "--json", NULL};
	json_t *doc = run_ok(h, list);
	cr_assert_eq(json_array_size(json_object_get(doc, "dead")), 2);
	json_decref(doc);

	const char *show[] = {"dead", "show", "1-1", NULL};
	run_output r = harness_run(h, show);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_not_null(strstr(r.out, "delivered too many times"));
	cr_assert_null(strstr(r.out, "c0de-secret"), "the code is a secret");
	run_output_free(&r);

	const char *retry[] = {"dead", "retry", "1-1", "--json", NULL};
	doc = run_ok(h, retry);
	cr_assert_eq(json_integer_value(json_object_get(doc, "retried")), 1);
	json_decref(doc);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:bulk"), 1);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:dead"), 1);

	const char *again[] = {"dead", "retry", "1-1", NULL};
	cr_assert_eq(run_code(h, again), 3);

	const char *purge[] = {"dead", "purge", "--json", NULL};
	doc = run_ok(h, purge);
	cr_assert_eq(json_integer_value(json_object_get(doc, "purged")), 1);
	json_decref(doc);
	cr_assert_eq(harness_redis_int(h, "EXISTS {dc}:dead"), 0);
	harness_stop(h);
}

Test(dcctl_inspect, authorizations_hide_tokens)
{
	harness *h = harness_start(true, NULL);
	cr_assert_not_null(h);
	cr_assert(harness_migrate(h));
	sql(h, "INSERT INTO dc_authorizations (id, dns_provider, zone, hosts, access_token, "
	       "refresh_token) VALUES ('" AUTHZ "', 'sandbox', 'a.test', '{\"\",www}', "
	       "'tok-access-secret'::bytea, 'tok-refresh-secret'::bytea)");

	const char *show[] = {"authorizations", "show", AUTHZ, "--json", NULL};
	run_output r = harness_run(h, show);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_null(strstr(r.out, "secret"));
	cr_assert_null(strstr(r.out, "746f6b"), "no token bytes in hex either");
	json_t *doc = run_json(&r);
	cr_assert(json_is_true(json_object_get(doc, "has_refresh_token")));
	cr_assert_str_eq(json_string_value(json_object_get(doc, "status")), "active");
	json_decref(doc);
	run_output_free(&r);

	const char *revoke[] = {"authorizations", "revoke", AUTHZ, "--json", NULL};
	doc = run_ok(h, revoke);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "status")), "revoked");
	cr_assert_eq(json_integer_value(json_object_get(doc, "version")), 2);
	json_decref(doc);

	const char *list[] = {"authorizations", "list", "--status", "revoked", "--json", NULL};
	doc = run_ok(h, list);
	cr_assert_eq(json_array_size(json_object_get(doc, "authorizations")), 1);
	json_decref(doc);

	const char *unknown[] = {"authorizations", "show", "00000000-0000-4000-8000-000000000000", NULL};
	cr_assert_eq(run_code(h, unknown), 3);
	const char *bad[] = {"authorizations", "show", "x", NULL};
	cr_assert_eq(run_code(h, bad), 1);
	harness_stop(h);
}

Test(dcctl_inspect, stats_counts_queues)
{
	harness *h = harness_start(false, "[provider.sandbox]\nurl_api = https://api.sandbox.test\n"
	                                  "[worker]\ntemplate_provider_id = app.test\n");
	cr_assert_not_null(h);
	freeReplyObject(redisCommand(h->rc, "XGROUP CREATE {dc}:queue:bulk dcworker 0 MKSTREAM"));
	freeReplyObject(redisCommand(h->rc, "XADD {dc}:queue:bulk * job a"));
	freeReplyObject(redisCommand(h->rc, "XADD {dc}:queue:bulk * job b"));
	freeReplyObject(redisCommand(h->rc, "XREADGROUP GROUP dcworker w1 COUNT 1 STREAMS {dc}:queue:bulk >"));
	freeReplyObject(redisCommand(h->rc, "ZADD {dc}:scheduled 1 x 2 y 3 z"));
	freeReplyObject(redisCommand(h->rc, "HSET {dc}:provider_calls:sandbox 200 7 429 1"));

	const char *argv[] = {"stats", "--json", NULL};
	json_t *doc = run_ok(h, argv);
	json_t *bulk = json_object_get(json_object_get(doc, "queues"), "bulk");
	cr_assert_eq(json_integer_value(json_object_get(bulk, "length")), 2);
	cr_assert_eq(json_integer_value(json_object_get(bulk, "in_flight")), 1);
	cr_assert_eq(json_integer_value(json_object_get(doc, "scheduled")), 3);
	cr_assert_eq(json_integer_value(json_object_get(doc, "dead")), 0);
	json_t *calls = json_object_get(json_object_get(json_object_get(doc, "providers"), "sandbox"),
	                                "calls");
	cr_assert_eq(json_integer_value(json_object_get(calls, "429")), 1);
	json_decref(doc);

	const char *bad[] = {"stats", "--interval", "0", NULL};
	cr_assert_eq(run_code(h, bad), 1);
	harness_stop(h);
}

Test(dcctl_inspect, job_queued_not_picked_up)
{
	harness *h = harness_start(true, NULL);
	cr_assert_not_null(h);
	cr_assert(harness_migrate(h));
	const char *enqueue[] = {"enqueue", "--type", "apply", "--authorization-id", AUTHZ,
	                         "--service-id", "web", "--id", "q1", NULL};
	cr_assert_eq(run_code(h, enqueue), 0);

	/* No dc_jobs row and no result, but the enqueue marker exists: the job waits in its queue. */
	const char *job[] = {"job", "q1", NULL};
	run_output r = harness_run(h, job);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "queued (not yet picked up)"), "%s", r.out);
	run_output_free(&r);

	const char *job_json[] = {"job", "q1", "--json", NULL};
	json_t *doc = run_ok(h, job_json);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "state")), "queued");
	cr_assert(json_is_false(json_object_get(doc, "picked_up")));
	cr_assert_not_null(json_string_value(json_object_get(doc, "entry_id")));
	json_decref(doc);

	/* A worker read the entry but has not written the row yet. */
	redisReply *reply = redisCommand(h->rc, "XGROUP CREATE {dc}:queue:interactive dcworker 0");
	freeReplyObject(reply);
	reply = redisCommand(h->rc, "XREADGROUP GROUP dcworker w1 COUNT 1 STREAMS "
	                     "{dc}:queue:interactive >");
	cr_assert(reply != NULL && reply->type == REDIS_REPLY_ARRAY);
	freeReplyObject(reply);
	doc = run_ok(h, job_json);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "state")), "running");
	cr_assert(json_is_true(json_object_get(doc, "picked_up")));
	cr_assert_str_eq(json_string_value(json_object_get(doc, "queue")), "interactive");
	json_decref(doc);

	/* Once the row exists, dcctl prints the row from PostgreSQL. */
	sql(h, "INSERT INTO dc_jobs (id, type, queue, state, attempts, payload) VALUES "
	       "('q1', 'apply', 'interactive', 'running', 1, '{}')");
	doc = run_ok(h, job_json);
	cr_assert_eq(json_integer_value(json_object_get(doc, "attempts")), 1);
	json_decref(doc);

	const char *missing[] = {"job", "q2", NULL};
	cr_assert_eq(run_code(h, missing), 3);
	harness_stop(h);
}
