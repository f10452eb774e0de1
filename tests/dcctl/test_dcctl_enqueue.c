/*
 * dcctl enqueue against a real Redis (and PostgreSQL for the dc_jobs
 * check): options and --json-job, validation errors, idempotency, and
 * --wait with results published by the worker's own result script.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcctl_harness.h"
#include "dcworker/queue_scripts.h"

#define AUTHZ "3f2c1b8e-6f1e-4c55-9a4e-2b1d7c9e0a11"

/* Stores and publishes a result the way the worker does. */
static void publish_result(const harness *h, const char *id, const char *status)
{
	char key[256];
	char result[512];

	snprintf(key, sizeof(key), "{dc}:result:%s", id);
	snprintf(result, sizeof(result),
	         "{\"id\":\"%s\",\"type\":\"apply\",\"status\":\"%s\",\"attempts\":1}", id, status);
	redisReply *reply = redisCommand(h->rc, "EVAL %s 1 %s %s %s 600 dc:results",
	                                 queue_script_result, key, result, status);
	cr_assert_not_null(reply);
	cr_assert_neq(reply->type, REDIS_REPLY_ERROR, "%s", reply->str);
	freeReplyObject(reply);
}

/* Reads the job JSON of the first entry of a queue stream. */
static json_t *first_job(const harness *h, const char *queue)
{
	redisReply *reply = redisCommand(h->rc, "XRANGE {dc}:queue:%s - + COUNT 1", queue);
	json_t *job = NULL;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
		redisReply *fields = reply->element[0]->element[1];
		json_error_t error;

		job = json_loads(fields->element[1]->str, 0, &error);
	}
	freeReplyObject(reply);
	return job;
}

Test(dcctl_enqueue, options_build_apply_job)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);

	const char *argv[] = {"enqueue", "--json", "--type", "apply", "--authorization-id", AUTHZ,
	                      "--service-id", "web", "--host", "shop", "--param", "IP=192.0.2.1",
	                      "--id", "job-1", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_not_null(doc, "stdout: %s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "id")), "job-1");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "outcome")), "enqueued");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "queue")), "interactive");
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:interactive"), 1);

	json_t *job = first_job(h, "interactive");
	cr_assert_not_null(job);
	cr_assert_str_eq(json_string_value(json_object_get(job, "service_id")), "web");
	cr_assert_str_eq(json_string_value(json_object_get(job, "host")), "shop");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "params"), "IP")),
	                 "192.0.2.1");
	json_decref(job);

	/* Same id again: not added a second time. */
	r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0);
	doc = run_json(&r);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "outcome")), "already_queued");
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:interactive"), 1);
	harness_stop(h);
}

Test(dcctl_enqueue, json_job_prints_generated_id)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);

	const char *argv[] = {"enqueue", "--queue", "bulk", "--json-job",
	                      "{\"type\":\"refresh\",\"authorization_id\":\"" AUTHZ "\"}", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_eq(strlen(r.out), 37, "stdout: %s", r.out);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:bulk"), 1);
	json_t *job = first_job(h, "bulk");
	r.out[36] = '\0';
	cr_assert_str_eq(json_string_value(json_object_get(job, "id")), r.out);
	json_decref(job);
	run_output_free(&r);
	harness_stop(h);
}

Test(dcctl_enqueue, invalid_job_exits_five)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);

	const char *missing[] = {"enqueue", "--type", "apply", "--service-id", "web", NULL};
	run_output r = harness_run(h, missing);
	cr_assert_eq(r.exit_code, 5);
	cr_assert_not_null(strstr(r.err, "authorization_id"), "stderr: %s", r.err);
	run_output_free(&r);

	const char *bad_json[] = {"enqueue", "--json-job", "{\"type\":", NULL};
	r = harness_run(h, bad_json);
	cr_assert_eq(r.exit_code, 1);
	run_output_free(&r);

	const char *unknown_provider[] = {"enqueue", "--type", "exchange_code", "--domain",
	                                  "example.com", "--dns-provider", "nope",
	                                  "--redirect-uri", "https://app.test/cb", "--json-job",
	                                  "{\"code\":\"c0de-secret\"}", NULL};
	r = harness_run(h, unknown_provider);
	cr_assert_eq(r.exit_code, 5);
	cr_assert_not_null(strstr(r.err, "dns_provider"), "stderr: %s", r.err);
	cr_assert_null(strstr(r.err, "c0de-secret"));
	run_output_free(&r);

	const char *bad_attempts[] = {"enqueue", "--max-attempts", "0", NULL};
	r = harness_run(h, bad_attempts);
	cr_assert_eq(r.exit_code, 1);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "EXISTS {dc}:queue:interactive"), 0);
	harness_stop(h);
}

Test(dcctl_enqueue, wait_prints_published_result)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);

	const char *argv[] = {"enqueue", "--json", "--wait", "--timeout", "20", "--type", "refresh",
	                      "--authorization-id", AUTHZ, "--id", "wait-1", NULL};
	pid_t pid = harness_spawn(h, argv);
	cr_assert_gt(pid, 0);

	/* Publish once the job is in the stream, as a worker would. */
	for (int i = 0; i < 200 && harness_redis_int(h, "XLEN {dc}:queue:interactive") < 1; i++)
		usleep(20000);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:interactive"), 1);
	publish_result(h, "other-job", "failed");
	publish_result(h, "wait-1", "succeeded");

	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0);

	char path[4096];
	snprintf(path, sizeof(path), "%s/spawn.out", h->dir);
	json_error_t error;
	json_t *doc = json_load_file(path, 0, &error);
	cr_assert_not_null(doc, "%s", error.text);
	json_t *result = json_object_get(doc, "result");
	cr_assert_str_eq(json_string_value(json_object_get(result, "id")), "wait-1");
	cr_assert_str_eq(json_string_value(json_object_get(result, "status")), "succeeded");
	json_decref(doc);
	harness_stop(h);
}

Test(dcctl_enqueue, wait_reads_existing_result)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	publish_result(h, "done-1", "conflict");

	const char *argv[] = {"enqueue", "--json", "--wait", "--timeout", "5", "--type", "refresh",
	                      "--authorization-id", AUTHZ, "--id", "done-1", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 5, "a conflict result exits 5; stderr: %s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "outcome")), "has_result");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "result"), "status")),
	                 "conflict");
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "EXISTS {dc}:queue:interactive"), 0);
	harness_stop(h);
}

Test(dcctl_enqueue, wait_times_out_six)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);

	const char *argv[] = {"enqueue", "--wait", "--timeout", "0.3", "--type", "refresh",
	                      "--authorization-id", AUTHZ, NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 6, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "no result"));
	run_output_free(&r);
	harness_stop(h);
}

Test(dcctl_enqueue, known_in_store_skipped)
{
	harness *h = harness_start(true, NULL);
	cr_assert_not_null(h);
	cr_assert(harness_migrate(h));
	PGresult *res = PQexec(h->conn, "INSERT INTO dc_jobs (id, type, queue, state, payload) "
	                                "VALUES ('old-1', 'refresh', 'interactive', 'succeeded', '{}')");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);

	const char *argv[] = {"enqueue", "--json", "--type", "refresh", "--authorization-id", AUTHZ,
	                      "--id", "old-1", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "outcome")), "known");
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "EXISTS {dc}:queue:interactive"), 0);

	const char *down[] = {"enqueue", "--type", "refresh", "--authorization-id", AUTHZ, NULL};
	ts_redis_stop(h->redis);
	h->redis = NULL;
	r = harness_run(h, down);
	cr_assert_eq(r.exit_code, 4, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "Redis"));
	run_output_free(&r);
	harness_stop(h);
}
