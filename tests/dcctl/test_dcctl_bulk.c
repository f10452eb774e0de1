/*
 * dcctl enqueue --bulk against a real Redis: a 10,000-row file with bad
 * rows mixed in, an interrupted run resumed without duplicates, --strict,
 * and --wait with a summary and --failed-out.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcctl_harness.h"
#include "dcworker/queue_scripts.h"

#define AUTHZ "3f2c1b8e-6f1e-4c55-9a4e-2b1d7c9e0a11"
#define ROWS 10000

/* Writes a CSV of ROWS data rows where every 500th row is bad; returns the path. */
static char *write_csv(const harness *h, long *bad_lines, size_t *bad_count)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/jobs.csv", h->dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "authorization_id,service_id,host,param.IP,max_attempts\n");
	*bad_count = 0;
	for (int i = 0; i < ROWS; i++) {
		long line = i + 2;

		if (i % 500 == 250) {
			/* Four kinds of bad rows, in turn. */
			switch ((i / 500) % 4) {
			case 0: fprintf(f, ",web,h%d,192.0.2.1,3\n", i); break;
			case 1: fprintf(f, "%s,web,h%d,192.0.2.1,zero\n", AUTHZ, i); break;
			case 2: fprintf(f, "%s,web\n", AUTHZ); break;
			default: fprintf(f, "not-a-uuid,web,h%d,192.0.2.1,3\n", i); break;
			}
			bad_lines[(*bad_count)++] = line;
			continue;
		}
		fprintf(f, "%s,web,h%d,\"192.0.2.%d\",3\n", AUTHZ, i, i % 250);
	}
	fclose(f);
	return strdup(path);
}

Test(dcctl_bulk, csv_rejects_bad_rows)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	long bad_lines[64];
	size_t bad_count = 0;
	char *path = write_csv(h, bad_lines, &bad_count);
	cr_assert_eq(bad_count, 20);

	const char *argv[] = {"enqueue", "--bulk", path, "--type", "apply", "--json", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0, "stderr: %.2000s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_not_null(doc, "stdout: %.500s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(doc, "read")), ROWS);
	cr_assert_eq(json_integer_value(json_object_get(doc, "enqueued")), ROWS - 20);
	cr_assert_eq(json_integer_value(json_object_get(doc, "skipped")), 0);
	cr_assert_eq(json_integer_value(json_object_get(doc, "rejected")), 20);
	json_t *rejected = json_object_get(doc, "rejected_rows");
	cr_assert_eq(json_array_size(rejected), 20);
	for (size_t i = 0; i < bad_count; i++) {
		json_t *row = json_array_get(rejected, i);
		char needle[64];

		cr_assert_eq(json_integer_value(json_object_get(row, "line")), bad_lines[i]);
		snprintf(needle, sizeof(needle), "jobs.csv:%ld: ", bad_lines[i]);
		cr_assert_not_null(strstr(r.err, needle), "no report of line %ld", bad_lines[i]);
	}
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_array_get(rejected, 0),
	                                                            "reason")), "authorization_id"));
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_array_get(rejected, 1),
	                                                            "reason")), "max_attempts"));
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_array_get(rejected, 2),
	                                                            "reason")), "fields"));
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:bulk"), ROWS - 20);

	/* A second run adds nothing. */
	r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 0);
	doc = run_json(&r);
	cr_assert_eq(json_integer_value(json_object_get(doc, "enqueued")), 0);
	cr_assert_eq(json_integer_value(json_object_get(doc, "skipped")), ROWS - 20);
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:bulk"), ROWS - 20);
	free(path);
	harness_stop(h);
}

Test(dcctl_bulk, interrupted_run_resumes_exactly)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	char path[4096];
	snprintf(path, sizeof(path), "%s/jobs.jsonl", h->dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	for (int i = 0; i < ROWS; i++)
		fprintf(f, "{\"type\":\"apply\",\"authorization_id\":\"%s\",\"service_id\":\"web\","
		           "\"host\":\"r%d\"}\n", AUTHZ, i);
	fclose(f);

	const char *slow[] = {"enqueue", "--bulk", path, "--rate", "5000", NULL};
	pid_t pid = harness_spawn(h, slow);
	cr_assert_gt(pid, 0);
	for (int i = 0; i < 300 && harness_redis_int(h, "XLEN {dc}:queue:bulk") < 1500; i++)
		usleep(10000);
	kill(pid, SIGKILL);
	int status = 0;
	waitpid(pid, &status, 0);
	cr_assert(WIFSIGNALED(status), "the run ended before it was killed");
	long long partial = harness_redis_int(h, "XLEN {dc}:queue:bulk");
	cr_assert_gt(partial, 0);
	cr_assert_lt(partial, ROWS);

	const char *resume[] = {"enqueue", "--bulk", path, "--json", NULL};
	run_output r = harness_run(h, resume);
	cr_assert_eq(r.exit_code, 0, "stderr: %.1000s", r.err);
	json_t *doc = run_json(&r);
	cr_assert_eq(json_integer_value(json_object_get(doc, "enqueued")), ROWS - partial);
	cr_assert_eq(json_integer_value(json_object_get(doc, "skipped")), partial);
	json_decref(doc);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:bulk"), ROWS);
	harness_stop(h);
}

Test(dcctl_bulk, strict_stops_at_bad_row)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	char *path = harness_write_file(h, "strict.jsonl",
	                                "{\"type\":\"refresh\",\"authorization_id\":\"" AUTHZ "\",\"id\":\"a\"}\n"
	                                "{\"type\":\"refresh\"\n"
	                                "{\"type\":\"refresh\",\"authorization_id\":\"" AUTHZ "\",\"id\":\"b\"}\n");
	const char *argv[] = {"enqueue", "--bulk", path, "--strict", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 5, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "strict.jsonl:2: invalid JSON"), "stderr: %s", r.err);
	run_output_free(&r);
	cr_assert_eq(harness_redis_int(h, "XLEN {dc}:queue:bulk"), 1);

	const char *missing[] = {"enqueue", "--bulk", "/nonexistent/jobs.csv", NULL};
	r = harness_run(h, missing);
	cr_assert_eq(r.exit_code, 1);
	run_output_free(&r);

	char *bad_header = harness_write_file(h, "bad.csv", "authorization_id,colour\n");
	const char *header[] = {"enqueue", "--bulk", bad_header, NULL};
	r = harness_run(h, header);
	cr_assert_eq(r.exit_code, 1);
	cr_assert_not_null(strstr(r.err, "unknown column \"colour\""), "stderr: %s", r.err);
	run_output_free(&r);
	free(bad_header);
	free(path);
	harness_stop(h);
}

/* Publishes a result for every entry of the bulk stream, failing ids ending in "3". */
static void play_worker(const harness *h, int expected)
{
	int published = 0;

	for (int round = 0; round < 500 && published < expected; round++) {
		redisReply *reply = redisCommand(h->rc, "XRANGE {dc}:queue:bulk - +");
		cr_assert_not_null(reply);
		for (size_t i = 0; i < reply->elements; i++) {
			json_error_t error;
			json_t *job = json_loads(reply->element[i]->element[1]->element[1]->str, 0, &error);
			const char *id = json_string_value(json_object_get(job, "id"));
			const char *status = id[strlen(id) - 1] == '3' ? "failed" : "succeeded";
			char key[256];
			char result[512];

			snprintf(key, sizeof(key), "{dc}:result:%s", id);
			snprintf(result, sizeof(result), "{\"id\":\"%s\",\"status\":\"%s\"}", id, status);
			redisReply *r2 = redisCommand(h->rc, "EVAL %s 1 %s %s %s 600 dc:results",
			                              queue_script_result, key, result, status);
			freeReplyObject(r2);
			r2 = redisCommand(h->rc, "XDEL {dc}:queue:bulk %s", reply->element[i]->element[0]->str);
			freeReplyObject(r2);
			json_decref(job);
			published++;
		}
		freeReplyObject(reply);
		usleep(10000);
	}
	cr_assert_eq(published, expected);
}

Test(dcctl_bulk, wait_summarizes_results)
{
	harness *h = harness_start(false, "[provider.sandbox]\nurl_api = https://api.sandbox.test\n"
	                                  "[worker]\ntemplate_provider_id = app.test\n");
	cr_assert_not_null(h);
	char *path = harness_write_file(h, "wait.csv",
	                                "id,type,domain,dns_provider,redirect_uri,code\n"
	                                "w1,exchange_code,a.test,sandbox,https://app.test/cb,c0de-aaaa\n"
	                                "w2,exchange_code,b.test,sandbox,https://app.test/cb,c0de-bbbb\n"
	                                "w3,exchange_code,c.test,sandbox,https://app.test/cb,c0de-cccc\n"
	                                "w4,exchange_code,d.test,sandbox,https://app.test/cb,c0de-dddd\n");
	char failed[4096];
	snprintf(failed, sizeof(failed), "%s/failed.jsonl", h->dir);
	const char *argv[] = {"enqueue", "--bulk", path, "--wait", "--timeout", "20", "--json",
	                      "--failed-out", failed, NULL};
	pid_t pid = harness_spawn(h, argv);
	play_worker(h, 4);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(WEXITSTATUS(status), 5, "a failed result exits 5");

	char out[4096];
	snprintf(out, sizeof(out), "%s/spawn.out", h->dir);
	json_error_t error;
	json_t *doc = json_load_file(out, 0, &error);
	cr_assert_not_null(doc, "%s", error.text);
	json_t *results = json_object_get(doc, "results");
	cr_assert_eq(json_integer_value(json_object_get(results, "finished")), 4);
	json_t *by_status = json_object_get(results, "by_status");
	cr_assert_eq(json_integer_value(json_object_get(by_status, "succeeded")), 3);
	cr_assert_eq(json_integer_value(json_object_get(by_status, "failed")), 1);
	json_t *sandbox = json_object_get(json_object_get(results, "by_provider"), "sandbox");
	cr_assert_eq(json_integer_value(json_object_get(sandbox, "succeeded")), 3);
	json_decref(doc);

	json_t *retry = json_load_file(failed, 0, &error);
	cr_assert_not_null(retry, "failed-out: %s", error.text);
	cr_assert_str_eq(json_string_value(json_object_get(retry, "id")), "w3.r1");
	cr_assert_str_eq(json_string_value(json_object_get(retry, "domain")), "c.test");
	json_decref(retry);
	free(path);
	harness_stop(h);
}
