/*
 * Bad input end to end: every malformed job ends failed (or in the dead
 * letters) with an error code and a message naming the field, is logged
 * once, and the worker goes on; malformed, huge, slow and redirecting
 * provider answers are classified without a crash and without a token in
 * the result.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_spec.h"
#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 30000
#define UNKNOWN_AUTHZ "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c"

static dd_env *env;

static void setup(void)
{
	/* Provider calls give up after 2 s, so the slow case is quick. */
	setenv("DCWORKER_PROVIDER_ALPHA_TOTAL_TIMEOUT_MS", "2000", 1);
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
}

static void teardown(void)
{
	dd_env_free(env, true);
}

typedef struct bad_job {
	const char *id;
	const char *json;
	const char *code;   /* expected error_code */
	const char *field;  /* the message names it */
} bad_job;

/* Counts the log lines that report job ID's outcome. */
static long outcome_lines(const char *id, const char *status)
{
	char text[256];

	snprintf(text, sizeof(text), "\"job_id\":\"%s\"", id);
	char *log = dd_log(env);
	long count = 0;
	char want[64];

	snprintf(want, sizeof(want), "\"msg\":\"job %s", status);
	for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n"))
		count += strstr(line, text) != NULL && strstr(line, want) != NULL;
	free(log);
	return count;
}

Test(daemon_input, bad_jobs_fail_naming_field, .init = setup, .fini = teardown, .timeout = 120)
{
	static char large[80 * 1024];
	/* Over the queue's own cap, so the worker never parses it. */
	static char huge[300 * 1024];
	char *big_value = malloc(JOB_SPEC_MAX_BYTES + 100);

	cr_assert_not_null(big_value);
	memset(big_value, 'a', JOB_SPEC_MAX_BYTES + 99);
	big_value[JOB_SPEC_MAX_BYTES + 99] = '\0';
	snprintf(large, sizeof(large),
	         "{\"id\":\"bad-large\",\"type\":\"apply\",\"authorization_id\":\"" UNKNOWN_AUTHZ
	         "\",\"service_id\":\"web\",\"params\":{\"ip\":\"%s\"}}",
	         big_value);
	free(big_value);
	snprintf(huge, sizeof(huge), "{\"id\":\"bad-huge\",\"type\":\"apply\",\"note\":\"");
	size_t used = strlen(huge);
	memset(huge + used, 'b', sizeof(huge) - used - 3);
	memcpy(huge + sizeof(huge) - 3, "\"}", 3);

	const bad_job table[] = {
		{"bad-large", large, "too_large", "bytes"},
		{"bad-unknown", "{\"id\":\"bad-unknown\",\"type\":\"apply\",\"authorization_id\":\""
		 UNKNOWN_AUTHZ "\",\"service_id\":\"web\",\"colour\":\"red\"}", "unknown_field", "colour"},
		{"bad-missing", "{\"id\":\"bad-missing\",\"type\":\"apply\",\"authorization_id\":\""
		 UNKNOWN_AUTHZ "\"}", "missing_field", "service_id"},
		{"bad-type", "{\"id\":\"bad-type\",\"type\":\"apply\",\"authorization_id\":\""
		 UNKNOWN_AUTHZ "\",\"service_id\":\"web\",\"max_attempts\":\"three\"}", "invalid_field",
		 "max_attempts"},
		{"bad-params", "{\"id\":\"bad-params\",\"type\":\"apply\",\"authorization_id\":\""
		 UNKNOWN_AUTHZ "\",\"service_id\":\"web\",\"params\":[1]}", "invalid_field", "params"},
		{"bad-reserved", "{\"id\":\"bad-reserved\",\"type\":\"apply\",\"authorization_id\":\""
		 UNKNOWN_AUTHZ "\",\"service_id\":\"web\",\"params\":{\"groupId\":\"a\"}}",
		 "invalid_field", "groupId"},
		{"bad-authz", "{\"id\":\"bad-authz\",\"type\":\"apply\",\"authorization_id\":\""
		 UNKNOWN_AUTHZ "\",\"service_id\":\"web\"}", "authorization_not_found", UNKNOWN_AUTHZ},
		{"bad-provider", "{\"id\":\"bad-provider\",\"type\":\"exchange_code\",\"dns_provider\":"
		 "\"nosuch\",\"code\":\"c0de-c0de\",\"redirect_uri\":\"" SBH_REDIRECT "\",\"domain\":\""
		 DD_ZONE "\"}", "unknown_dns_provider", "nosuch"},
		{"bad-domain", "{\"id\":\"bad-domain\",\"type\":\"discover\",\"domain\":\"not a domain!\"}",
		 "invalid_field", "domain"},
	};
	size_t count = sizeof(table) / sizeof(table[0]);

	cr_assert(dd_enqueue(env, "{not json"));
	cr_assert(dd_enqueue(env, huge));
	for (size_t i = 0; i < count; i++)
		cr_assert(dd_enqueue(env, table[i].json), "%s was not enqueued", table[i].id);

	for (size_t i = 0; i < count; i++) {
		char *state = NULL;
		json_t *result = dd_wait_result(env, table[i].id, RESULT_TIMEOUT_MS, &state);

		cr_assert_not_null(result, "%s has no result", table[i].id);
		cr_expect_str_eq(state, "failed", "%s", table[i].id);
		const char *code = json_string_value(json_object_get(result, "error_code"));
		const char *message = json_string_value(json_object_get(result, "message"));
		cr_expect(code != NULL && strcmp(code, table[i].code) == 0, "%s: error_code %s, not %s",
		          table[i].id, code, table[i].code);
		cr_expect(message != NULL && strstr(message, table[i].field) != NULL,
		          "%s: the message does not name %s: %s", table[i].id, table[i].field, message);
		cr_expect_null(strstr(message != NULL ? message : "", "c0de-c0de"),
		               "%s: the message holds the code", table[i].id);
		cr_expect_eq(outcome_lines(table[i].id, "failed"), 1, "%s was not logged once",
		             table[i].id);
		json_decref(result);
		free(state);
	}

	/* The unparsable and the oversized entries went to the dead letters, logged once. */
	redisReply *r = redisCommand(env->redis_conn, "XLEN {dc}:dead");
	cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
	cr_expect_eq(r->integer, 2);
	freeReplyObject(r);
	cr_expect_eq(dd_log_count(env, "invalid_json"), 1);
	cr_expect_eq(dd_log_count(env, "307199 bytes, over the limit of 65536 bytes"), 1,
	             "the oversized job's message does not name the size cap");
	cr_expect_eq(dd_log_count(env, "c0de-c0de"), 0, "a code reached the log");

	/* The worker still runs jobs. */
	char *authorization = dd_authorize(env, "exchange-after", DD_ZONE);
	cr_expect_not_null(authorization, "the worker stopped after the bad jobs");
	free(authorization);
}

typedef struct bad_answer {
	const char *id;
	const char *faults;   /* faults of provider alpha while the job runs */
	const char *state;    /* expected final state */
	const char *code;     /* expected error_code */
	int attempts;
} bad_answer;

Test(daemon_input, bad_answers_are_classified, .init = setup, .fini = teardown, .timeout = 120)
{
	const bad_answer table[] = {
		/* A 2xx whose body is over the cap is not trusted. */
		{"answer-huge", "{\"oversize_rate\":1,\"oversize_bytes\":2000000,\"endpoints\":\"apply\"}",
		 "failed", "response_too_large", 1},
		/* A timeout is transient: retried up to max_attempts (3). */
		{"answer-slow", "{\"latency_ms\":3000,\"endpoints\":\"apply\"}", "failed", "attempts_exhausted", 3},
		/* Redirects are never followed. */
		{"answer-redirect", "{\"redirect_rate\":1,\"endpoints\":\"apply\"}", "failed", "http_error",
		 1},
		/*
		 * A token answer that is not JSON, on the refresh before the call. The
		 * sandbox spent the refresh token all the same, so this authorization
		 * needs consent again afterwards.
		 */
		{"answer-token", "{\"oversize_rate\":1,\"oversize_bytes\":300,\"endpoints\":\"token\"}",
		 "failed", "invalid_response", 1},
	};
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);

	cr_assert_not_null(authorization);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		cr_assert(dd_sandbox_faults(env, table[i].faults));
		if (strstr(table[i].faults, "token") != NULL) {
			/* Expire the access token so the job refreshes it first. */
			char *done = dd_query(env, "UPDATE dc_authorizations SET expires_at = now()"
			                      " WHERE id = $1::uuid RETURNING 'x'", authorization);
			free(done);
		}
		char *job = dd_apply_text(table[i].id, authorization, "192.0.2.10");
		cr_assert(dd_enqueue(env, job));
		free(job);

		char *state = NULL;
		json_t *result = dd_wait_result(env, table[i].id, RESULT_TIMEOUT_MS, &state);
		cr_assert_not_null(result, "%s has no result", table[i].id);
		char *text = json_dumps(result, JSON_COMPACT);
		cr_log_info("%s: %s %s", table[i].id, state, text);
		cr_expect_str_eq(state, table[i].state, "%s: %s", table[i].id, text);
		const char *code = json_string_value(json_object_get(result, "error_code"));
		cr_expect(code != NULL && strcmp(code, table[i].code) == 0, "%s: %s", table[i].id, text);
		cr_expect_eq(json_integer_value(json_object_get(result, "attempts")), table[i].attempts,
		             "%s: %s", table[i].id, text);
		cr_expect_null(strstr(text, "Bearer"), "%s: a token in %s", table[i].id, text);
		cr_expect_null(strstr(text, SBH_SECRET), "%s: the secret in %s", table[i].id, text);
		free(text);
		json_decref(result);
		free(state);
		cr_assert(dd_sandbox_faults(env, "{}"));
	}

	/* The worker survived every answer. */
	free(authorization);
	authorization = dd_authorize(env, "exchange-2", DD_ZONE);
	cr_assert_not_null(authorization);
	char *job = dd_apply_text("answer-fine", authorization, "192.0.2.11");
	cr_assert(dd_enqueue(env, job));
	free(job);
	char *state = NULL;
	json_t *result = dd_wait_result(env, "answer-fine", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result);
	cr_expect_str_eq(state, "succeeded");
	json_decref(result);
	free(state);
	cr_expect_eq(dd_log_count(env, "Bearer "), 0, "a token reached the log");
	cr_expect_eq(dd_log_count(env, "\"level\":\"fatal\""), 0);
	free(authorization);
}
