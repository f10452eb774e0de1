/*
 * dcctl enqueue --bulk with files as spreadsheets and editors write them:
 * invalid UTF-8 in a CSV cell, a trailing blank CSV line, and a UTF-8 byte
 * order mark in front of JSON Lines.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dcctl_harness.h"

/* Runs dcctl enqueue --bulk on a file with text and returns the JSON summary. */
static json_t *run_bulk(const harness *h, const char *name, const char *text, run_output *r)
{
	char *path = harness_write_file(h, name, text);
	cr_assert_not_null(path);
	const char *argv[] = {"enqueue", "--bulk", path, "--json", NULL};
	*r = harness_run(h, argv);
	free(path);
	cr_assert_eq(r->exit_code, 0, "stderr: %.2000s", r->err);
	json_t *doc = run_json(r);
	cr_assert_not_null(doc, "stdout: %.500s", r->out);
	return doc;
}

static long long count(json_t *doc, const char *key)
{
	return json_integer_value(json_object_get(doc, key));
}

Test(newuser_bulk, csv_invalid_utf8_rejected)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	run_output r;
	json_t *doc = run_bulk(h, "utf8.csv",
	                       "id,type,domain\n"
	                       "nu-\xff" "1,discover,shop.example.com\n"
	                       "nu-2,discover,sh\xfe" "op.example.com\n"
	                       "nu-3,discover,shop.example.com\n",
	                       &r);

	cr_assert_eq(count(doc, "enqueued"), 1, "stderr: %s", r.err);
	cr_assert_eq(count(doc, "rejected"), 2, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "utf8.csv:2: column \"id\" is not valid UTF-8"),
	                   "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "utf8.csv:3: column \"domain\" is not valid UTF-8"),
	                   "stderr: %s", r.err);
	cr_assert_eq(harness_redis_int(h, "EXISTS {dc}:enqueued:nu-3"), 1);
	json_decref(doc);
	run_output_free(&r);
	harness_stop(h);
}

Test(newuser_bulk, csv_blank_lines_skipped)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	run_output r;
	json_t *doc = run_bulk(h, "blank.csv",
	                       "id,type,domain\r\nnu-4,discover,shop.example.com\r\n\r\n", &r);

	cr_assert_eq(count(doc, "enqueued"), 1, "stderr: %s", r.err);
	cr_assert_eq(count(doc, "rejected"), 0, "stderr: %s", r.err);
	json_decref(doc);
	run_output_free(&r);
	harness_stop(h);
}

Test(newuser_bulk, jsonl_byte_order_mark)
{
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);
	const char *text = "\xEF\xBB\xBF{\"id\":\"nu-5\",\"type\":\"discover\",\"domain\":\"shop.example.com\"}\n";
	run_output r;

	/* Once with the extension and once detected from the content. */
	json_t *doc = run_bulk(h, "bom.jsonl", text, &r);
	cr_assert_eq(count(doc, "enqueued"), 1, "stderr: %s", r.err);
	json_decref(doc);
	run_output_free(&r);

	doc = run_bulk(h, "bom.txt", text, &r);
	cr_assert_eq(count(doc, "rejected"), 0, "stderr: %s", r.err);
	cr_assert_eq(count(doc, "skipped"), 1, "stderr: %s", r.err);
	json_decref(doc);
	run_output_free(&r);
	harness_stop(h);
}
