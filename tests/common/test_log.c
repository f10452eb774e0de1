/* Logger: line format, level filter, redaction, truncation, escaping, rate limiting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "common/log.h"

/* A logger writing into a memory buffer, read back line by line. */
typedef struct capture {
	char *buf;
	size_t len;
	FILE *out;
	log_ctx *log;
} capture;

static void capture_open(capture *c, log_level level)
{
	memset(c, 0, sizeof(*c));
	c->out = open_memstream(&c->buf, &c->len);
	cr_assert_not_null(c->out);
	c->log = log_ctx_new(c->out, level);
	cr_assert_not_null(c->log);
}

static void capture_close(capture *c)
{
	log_ctx_free(c->log);
	fclose(c->out);
	free(c->buf);
}

static size_t capture_lines(capture *c)
{
	fflush(c->out);
	size_t lines = 0;
	for (size_t i = 0; i < c->len; i++)
		lines += c->buf[i] == '\n';
	return lines;
}

/* Parses line index (0-based) of the capture; the caller decrefs. */
static json_t *capture_line(capture *c, size_t index)
{
	fflush(c->out);
	const char *p = c->buf;
	for (size_t i = 0; i < index; i++) {
		p = strchr(p, '\n');
		cr_assert_not_null(p, "line %zu missing", index);
		p++;
	}
	const char *end = strchr(p, '\n');
	cr_assert_not_null(end);
	json_error_t jerr;
	json_t *obj = json_loadb(p, (size_t)(end - p), 0, &jerr);
	cr_assert_not_null(obj, "line %zu is not JSON: %s", index, jerr.text);
	return obj;
}

static const char *field(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static int64_t fake_now;
static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

Test(log, line_has_all_fields)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	log_fields f = {.job_id = "j1", .action = "apply", .type = "apply", .domain = "a.example",
	                .dns_provider = "ionos", .error = "transient", .attempt = 2,
	                .http_status = 503, .duration_ms = 0, .has_duration = true};
	log_write(c.log, LOG_LEVEL_WARN, &f, "apply failed after %d ms", 12);

	cr_assert_eq(capture_lines(&c), 1);
	json_t *obj = capture_line(&c, 0);
	cr_assert_str_eq(field(obj, "level"), "warn");
	cr_assert_str_eq(field(obj, "msg"), "apply failed after 12 ms");
	cr_assert_str_eq(field(obj, "job_id"), "j1");
	cr_assert_str_eq(field(obj, "action"), "apply");
	cr_assert_str_eq(field(obj, "type"), "apply");
	cr_assert_str_eq(field(obj, "domain"), "a.example");
	cr_assert_str_eq(field(obj, "dns_provider"), "ionos");
	cr_assert_str_eq(field(obj, "error"), "transient");
	cr_assert_eq(json_integer_value(json_object_get(obj, "attempt")), 2);
	cr_assert_eq(json_integer_value(json_object_get(obj, "http_status")), 503);
	cr_assert_eq(json_integer_value(json_object_get(obj, "duration_ms")), 0);
	cr_assert(json_is_integer(json_object_get(obj, "duration_ms")));
	json_decref(obj);
	capture_close(&c);
}

Test(log, time_is_rfc3339_utc_ms)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	log_write(c.log, LOG_LEVEL_INFO, NULL, "started");
	json_t *obj = capture_line(&c, 0);
	const char *t = field(obj, "time");
	cr_assert_not_null(t);
	cr_assert_eq(strlen(t), strlen("2026-01-01T00:00:00.000Z"), "time %s", t);
	cr_assert_eq(t[4], '-');
	cr_assert_eq(t[10], 'T');
	cr_assert_eq(t[19], '.');
	cr_assert_eq(t[23], 'Z');
	cr_assert_null(json_object_get(obj, "job_id"));
	cr_assert_null(json_object_get(obj, "attempt"));
	json_decref(obj);
	capture_close(&c);
}

Test(log, level_filter_drops_lines)
{
	capture c;
	capture_open(&c, LOG_LEVEL_WARN);
	log_write(c.log, LOG_LEVEL_DEBUG, NULL, "debug");
	log_write(c.log, LOG_LEVEL_INFO, NULL, "info");
	log_write(c.log, LOG_LEVEL_ERROR, NULL, "error");
	cr_assert_eq(capture_lines(&c), 1);
	cr_assert_not(log_enabled(c.log, LOG_LEVEL_INFO));
	cr_assert(log_enabled(c.log, LOG_LEVEL_WARN));

	log_set_level(c.log, LOG_LEVEL_DEBUG);
	log_write(c.log, LOG_LEVEL_DEBUG, NULL, "debug");
	cr_assert_eq(capture_lines(&c), 2);
	capture_close(&c);
}

Test(log, level_names_parse)
{
	log_level level;
	cr_assert_eq(log_level_parse("DEBUG", &level), COMMON_OK);
	cr_assert_eq(level, LOG_LEVEL_DEBUG);
	cr_assert_eq(log_level_parse("warning", &level), COMMON_OK);
	cr_assert_eq(level, LOG_LEVEL_WARN);
	cr_assert_eq(log_level_parse("loud", &level), COMMON_ERR_INVALID);
	cr_assert_str_eq(log_level_name(LOG_LEVEL_ERROR), "error");
}

Test(log, registered_secret_redacted_everywhere)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	cr_assert_eq(log_add_secret(c.log, "s3cr3t-value"), COMMON_OK);
	log_fields f = {.job_id = "id-s3cr3t-value", .error = "got s3cr3t-value twice s3cr3t-value"};
	log_write(c.log, LOG_LEVEL_INFO, &f, "token %s", "s3cr3t-value");
	fflush(c.out);
	cr_assert_null(strstr(c.buf, "s3cr3t"), "secret leaked: %s", c.buf);
	json_t *obj = capture_line(&c, 0);
	cr_assert_str_eq(field(obj, "msg"), "token [redacted]");
	cr_assert_str_eq(field(obj, "job_id"), "id-[redacted]");
	cr_assert_str_eq(field(obj, "error"), "got [redacted] twice [redacted]");
	json_decref(obj);

	log_remove_secret(c.log, "s3cr3t-value");
	log_write(c.log, LOG_LEVEL_INFO, NULL, "token %s", "s3cr3t-value");
	obj = capture_line(&c, 1);
	cr_assert_str_eq(field(obj, "msg"), "token s3cr3t-value");
	json_decref(obj);
	capture_close(&c);
}

Test(log, short_secret_rejected)
{
	log_ctx *log = log_ctx_new(stderr, LOG_LEVEL_ERROR);
	cr_assert_eq(log_add_secret(log, "abc"), COMMON_ERR_INVALID);
	cr_assert_eq(log_add_secret(log, NULL), COMMON_ERR_INVALID);
	log_ctx_free(log);
}

Test(log, query_keys_redacted)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
		{"https://x/token?code=abc&state=s", "https://x/token?code=[redacted]&state=s"},
		{"client_secret=xyz refresh_token=r1&access_token=a1#f",
		 "client_secret=[redacted] refresh_token=[redacted]&access_token=[redacted]#f"},
		{"error_code=E1", "error_code=E1"},
		{"{\"access_token\": \"tok\\\"en\", \"x\":1}", "{\"access_token\": \"[redacted]\", \"x\":1}"},
		{"Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"},
		{"code=", "code="},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = log_redact(NULL, cases[i].in);
		cr_assert_not_null(out);
		cr_assert_str_eq(out, cases[i].out, "case %zu: %s", i, out);
		free(out);
	}
}

Test(log, long_field_truncated)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	char big[4000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_fields f = {.domain = big};
	log_write(c.log, LOG_LEVEL_INFO, &f, "%s", big);
	json_t *obj = capture_line(&c, 0);
	cr_assert_eq(strlen(field(obj, "msg")), LOG_MSG_MAX);
	cr_assert_eq(strlen(field(obj, "domain")), LOG_FIELD_MAX);
	cr_assert_str_eq(field(obj, "domain") + LOG_FIELD_MAX - 3, "...");
	json_decref(obj);
	capture_close(&c);
}

Test(log, secret_at_cut_still_redacted)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	cr_assert_eq(log_add_secret(c.log, "SECRETSECRET"), COMMON_OK);
	char text[LOG_FIELD_MAX + 32];
	memset(text, 'b', sizeof(text));
	memcpy(text + LOG_FIELD_MAX - 8, "SECRETSECRET", 12);
	text[sizeof(text) - 1] = '\0';
	log_fields f = {.error = text};
	log_write(c.log, LOG_LEVEL_INFO, &f, "x");
	fflush(c.out);
	cr_assert_null(strstr(c.buf, "SECRET"), "partial secret leaked: %s", c.buf);
	capture_close(&c);
}

Test(log, control_and_invalid_utf8_escaped)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	log_fields f = {.domain = "a\"b\nc\x01\xff\xc3\xa9"};
	log_write(c.log, LOG_LEVEL_INFO, &f, "line\r\nbreak \"quoted\"");
	cr_assert_eq(capture_lines(&c), 1, "a newline leaked into the output");
	json_t *obj = capture_line(&c, 0);
	cr_assert_str_eq(field(obj, "domain"), "a\"b\nc\x01?\xc3\xa9");
	cr_assert_str_eq(field(obj, "msg"), "line\r\nbreak \"quoted\"");
	json_decref(obj);
	capture_close(&c);
}

Test(log, repeats_suppressed_then_counted)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	fake_now = 1000;
	log_set_clock(c.log, fake_clock, NULL);
	for (int i = 0; i < LOG_RATE_BURST + 15; i++)
		log_write(c.log, LOG_LEVEL_ERROR, NULL, "redis down: %d", i);
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST);

	/* Another key is not affected. */
	log_write(c.log, LOG_LEVEL_ERROR, NULL, "other message");
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST + 1);

	/* After the interval the count is reported with the first dropped line, then the line. */
	fake_now += LOG_RATE_INTERVAL_MS;
	log_write(c.log, LOG_LEVEL_ERROR, NULL, "redis down: %d", 99);
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST + 3);
	json_t *obj = capture_line(&c, LOG_RATE_BURST + 1);
	cr_assert_str_eq(field(obj, "msg"), "suppressed 15 similar lines like: redis down: 20");
	cr_assert_str_eq(field(obj, "level"), "error");
	json_decref(obj);
	obj = capture_line(&c, LOG_RATE_BURST + 2);
	cr_assert_str_eq(field(obj, "msg"), "redis down: 99");
	json_decref(obj);
	capture_close(&c);
}

Test(log, pending_suppressed_flushed_on_free)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	fake_now = 0;
	log_set_clock(c.log, fake_clock, NULL);
	for (int i = 0; i < LOG_RATE_BURST + 2; i++)
		log_write(c.log, LOG_LEVEL_WARN, NULL, "slow provider");
	log_ctx_free(c.log);
	c.log = NULL;
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST + 1);
	json_t *obj = capture_line(&c, LOG_RATE_BURST);
	cr_assert_str_eq(field(obj, "msg"), "suppressed 2 similar lines like: slow provider");
	json_decref(obj);
	capture_close(&c);
}

Test(log, summary_due_on_any_later_call)
{
	capture c;
	capture_open(&c, LOG_LEVEL_INFO);
	fake_now = 5000;
	log_set_clock(c.log, fake_clock, NULL);
	for (int i = 0; i < LOG_RATE_BURST + 3; i++)
		log_write(c.log, LOG_LEVEL_WARN, NULL, "job %s%s%s", "j-", "1", "");
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST);

	/* Before the interval ends another call writes nothing more. */
	fake_now += LOG_RATE_INTERVAL_MS - 1;
	log_write(c.log, LOG_LEVEL_DEBUG, NULL, "filtered");
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST);

	/* A filtered line of another format is enough to flush it once the interval is over. */
	fake_now += 1;
	log_write(c.log, LOG_LEVEL_DEBUG, NULL, "filtered");
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST + 1);
	json_t *obj = capture_line(&c, LOG_RATE_BURST);
	cr_assert_str_eq(field(obj, "msg"), "suppressed 3 similar lines like: job j-1");
	cr_assert_str_eq(field(obj, "level"), "warn");
	json_decref(obj);

	/* It is written once. */
	log_write(c.log, LOG_LEVEL_INFO, NULL, "next");
	log_ctx_free(c.log);
	c.log = NULL;
	cr_assert_eq(capture_lines(&c), LOG_RATE_BURST + 2);
	capture_close(&c);
}

Test(log, summary_sample_is_redacted)
{
	capture c;
	capture_open(&c, LOG_LEVEL_DEBUG);
	fake_now = 0;
	log_set_clock(c.log, fake_clock, NULL);
	for (int i = 0; i < LOG_RATE_BURST + 1; i++)
		log_write(c.log, LOG_LEVEL_ERROR, NULL, "token call: %s", "refresh_token=abcdef123456");
	log_flush_suppressed(c.log);
	json_t *obj = capture_line(&c, LOG_RATE_BURST);
	cr_assert_str_eq(field(obj, "msg"),
	                 "suppressed 1 similar lines like: token call: refresh_token=[redacted]");
	json_decref(obj);
	capture_close(&c);
}

Test(log, filtered_level_not_counted)
{
	capture c;
	capture_open(&c, LOG_LEVEL_INFO);
	fake_now = 0;
	log_set_clock(c.log, fake_clock, NULL);
	for (int i = 0; i < LOG_RATE_BURST * 2; i++)
		log_write(c.log, LOG_LEVEL_DEBUG, NULL, "noise");
	log_set_level(c.log, LOG_LEVEL_DEBUG);
	log_write(c.log, LOG_LEVEL_DEBUG, NULL, "noise");
	cr_assert_eq(capture_lines(&c), 1);
	capture_close(&c);
}
