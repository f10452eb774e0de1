/*
 * End-to-end tests of the dcworker daemon: jobs enqueued with one XADD run
 * against the dcsandbox provider, and their outcome is read back from
 * PostgreSQL, the Redis result hash and the dc:results channel.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_daemon_env.h"

#define RESULT_TIMEOUT_MS 20000

static dd_env *env;

static void setup(void)
{
	env = dd_env_new(NULL, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, 1), "dcworker exited at start-up");
}

static void teardown(void)
{
	dd_env_free(env, true);
}

static char *apply_job(const char *id, const char *authorization, const char *ip,
                       const char *on_conflict)
{
	json_t *job = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "apply",
	                        "authorization_id", authorization, "service_id", "web", "params",
	                        "ip", ip, "token", "verify-1");
	if (on_conflict != NULL)
		json_object_set_new(job, "on_conflict", json_string(on_conflict));
	char *text = json_dumps(job, JSON_COMPACT);
	json_decref(job);
	return text;
}

/* The apex A record of the sandbox zone, or NULL. */
static char *apex_address(void)
{
	json_t *records = sbh_zone(env->sandbox, SBH_ALPHA_ID, DD_ZONE);
	size_t i;
	json_t *r;
	char *address = NULL;

	json_array_foreach(records, i, r) {
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *name = json_string_value(json_object_get(r, "name"));

		if (type != NULL && name != NULL && strcmp(type, "A") == 0 && strcmp(name, "@") == 0)
			address = strdup(json_string_value(json_object_get(r, "data")));
	}
	json_decref(records);
	return address;
}

Test(daemon, exchange_then_apply, .init = setup, .fini = teardown, .timeout = 90)
{
	redisContext *sub = redisConnect("127.0.0.1", ts_redis_port(env->redis));
	cr_assert(sub != NULL && sub->err == 0);
	redisReply *r = redisCommand(sub, "SUBSCRIBE dc:results");
	cr_assert_not_null(r);
	freeReplyObject(r);

	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization, "exchange_code did not yield an authorization_id");

	char *state = NULL;
	json_t *exchange = dd_wait_result(env, "exchange-1", RESULT_TIMEOUT_MS, &state);
	cr_assert_str_eq(state, "succeeded");
	free(state);
	char *text = json_dumps(exchange, JSON_COMPACT);
	cr_expect_null(strstr(text, "access_token"), "a result names a token: %s", text);
	free(text);
	json_decref(exchange);

	/* Tokens are stored encrypted, never as plain text. */
	char *stored = dd_query(env, "SELECT encode(access_token, 'escape') FROM dc_authorizations"
	                        " WHERE id = $1::uuid", authorization);
	cr_assert_not_null(stored);
	free(stored);

	char *job = apply_job("apply-1", authorization, "192.0.2.77", NULL);
	cr_assert(dd_enqueue(env, job));
	free(job);
	json_t *result = dd_wait_result(env, "apply-1", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result, "apply-1 has no result");
	cr_expect_str_eq(state, "succeeded");
	free(state);
	cr_expect_eq(json_integer_value(json_object_get(result, "attempts")), 1);
	cr_expect_str_eq(json_string_value(json_object_get(result, "authorization_id")), authorization);
	json_decref(result);

	char *address = apex_address();
	cr_expect_str_eq(address, "192.0.2.77");
	free(address);

	/* Redis has the same result in the hash and on the channel. */
	r = redisCommand(env->redis_conn, "HGET {dc}:result:apply-1 status");
	cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
	cr_expect_str_eq(r->str, "succeeded");
	freeReplyObject(r);

	struct timeval tv = {.tv_sec = 5};
	redisSetTimeout(sub, tv);
	int published = 0;
	for (int i = 0; i < 2; i++) {
		redisReply *msg = NULL;
		cr_assert_eq(redisGetReply(sub, (void **)&msg), REDIS_OK);
		cr_assert(msg->type == REDIS_REPLY_ARRAY && msg->elements == 3);
		json_t *body = json_loads(msg->element[2]->str, 0, NULL);
		const char *id = json_string_value(json_object_get(body, "id"));
		if (id != NULL && strcmp(id, "apply-1") == 0) {
			cr_expect_str_eq(json_string_value(json_object_get(body, "status")), "succeeded");
			published++;
		}
		json_decref(body);
		freeReplyObject(msg);
	}
	cr_expect_eq(published, 1);
	redisFree(sub);

	/* No token or code reaches the log. */
	cr_expect_eq(dd_log_count(env, "Bearer "), 0);
	cr_expect_eq(dd_log_count(env, SBH_SECRET), 0);
	free(authorization);
}

/* Enqueues apply job ID and waits for its terminal state; returns the result. */
static json_t *run_apply(const char *id, const char *authorization, const char *on_conflict,
                         char **state)
{
	char *job = apply_job(id, authorization, "192.0.2.88", on_conflict);

	cr_assert(dd_enqueue(env, job));
	free(job);
	json_t *result = dd_wait_result(env, id, RESULT_TIMEOUT_MS, state);
	cr_assert_not_null(result, "%s has no result", id);
	return result;
}

Test(daemon, conflict_fails_by_default, .init = setup, .fini = teardown, .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-busy", DD_BUSY_ZONE);
	cr_assert_not_null(authorization);
	char *state = NULL;
	json_t *result = run_apply("apply-conflict", authorization, NULL, &state);

	cr_expect_str_eq(state, "conflict");
	cr_expect_eq(json_integer_value(json_object_get(result, "http_status")), 409);
	cr_expect(json_array_size(json_object_get(result, "conflicts")) > 0,
	          "the result lists no conflicting records");
	cr_expect_eq(dd_sandbox_count(env, "apply"), 1);
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon, conflict_force_retries_once, .init = setup, .fini = teardown, .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-busy", DD_BUSY_ZONE);
	cr_assert_not_null(authorization);
	char *state = NULL;
	json_t *result = run_apply("apply-force", authorization, "force", &state);

	cr_expect_str_eq(state, "succeeded");
	cr_expect_eq(dd_sandbox_count(env, "apply"), 2);
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon, unauthorized_refreshes_and_retries, .init = setup, .fini = teardown, .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	long tokens_before = dd_sandbox_count(env, "token");

	sbh_resp r;
	sbh_request(env->sandbox, "POST", "localhost", "/admin/providers/" SBH_ALPHA_ID "/expire-tokens",
	            NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200);
	sbh_resp_clear(&r);

	char *state = NULL;
	json_t *result = run_apply("apply-401", authorization, NULL, &state);
	cr_expect_str_eq(state, "succeeded");
	cr_expect_eq(dd_sandbox_count(env, "apply"), 2, "one 401, one retry");
	cr_expect_eq(dd_sandbox_count(env, "token") - tokens_before, 1, "one refresh");
	char *version = dd_query(env, "SELECT version FROM dc_authorizations WHERE id = $1::uuid",
	                         authorization);
	cr_expect_str_eq(version, "2");
	free(version);
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon, rate_limit_reschedules_free, .init = setup, .fini = teardown, .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"429:1\",\"retry_after\":1,\"endpoints\":\"apply\"}"));

	char *job = apply_job("apply-429", authorization, "192.0.2.88", NULL);
	cr_assert(dd_enqueue(env, job));
	free(job);

	/* Wait for the first reschedule, then lift the rate limit. */
	char *rescheduled = NULL;
	long long deadline = dd_now_ms() + RESULT_TIMEOUT_MS;
	while (rescheduled == NULL && dd_now_ms() < deadline)
		rescheduled = dd_query(env, "SELECT id FROM dc_job_events WHERE job_id = $1"
		                       " AND event = 'rescheduled'", "apply-429");
	cr_assert_not_null(rescheduled, "the 429 did not reschedule the job");
	free(rescheduled);
	cr_assert(dd_sandbox_faults(env, "{}"));

	char *state = NULL;
	json_t *result = dd_wait_result(env, "apply-429", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result);
	cr_expect_str_eq(state, "succeeded");
	cr_expect_eq(json_integer_value(json_object_get(result, "attempts")), 1,
	             "a rate limit used an attempt");
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon, server_error_retries_then_fails, .init = setup, .fini = teardown, .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"errors\":\"500:1\",\"endpoints\":\"apply\"}"));

	char *state = NULL;
	json_t *result = run_apply("apply-500", authorization, NULL, &state);
	cr_expect_str_eq(state, "failed");
	cr_expect_eq(json_integer_value(json_object_get(result, "attempts")), 3);
	cr_expect_eq(json_integer_value(json_object_get(result, "http_status")), 500);
	cr_expect_eq(dd_sandbox_count(env, "apply"), 3, "max_attempts is 3");
	char *retried = dd_query(env, "SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                         " AND event = 'retried'", "apply-500");
	cr_expect_str_eq(retried, "2");
	free(retried);
	json_decref(result);
	free(state);
	free(authorization);
}

Test(daemon, bad_jobs_fail_and_loop_goes_on, .init = setup, .fini = teardown, .timeout = 90)
{
	cr_assert(dd_enqueue(env, "{not json"));
	cr_assert(dd_enqueue(env, "{\"id\":\"bad-field\",\"type\":\"apply\",\"authorization_id\":"
	                          "\"6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c\",\"service_id\":\"web\","
	                          "\"colour\":\"red\"}"));
	cr_assert(dd_enqueue(env, "{\"id\":\"no-auth\",\"type\":\"apply\",\"authorization_id\":"
	                          "\"6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c\",\"service_id\":\"web\"}"));

	char *state = NULL;
	json_t *result = dd_wait_result(env, "bad-field", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result);
	cr_expect_str_eq(state, "failed");
	cr_expect_str_eq(json_string_value(json_object_get(result, "error_code")), "unknown_field");
	const char *message = json_string_value(json_object_get(result, "message"));
	cr_expect(message != NULL && strstr(message, "colour") != NULL,
	          "the message does not name the field: %s", message);
	json_decref(result);
	free(state);

	result = dd_wait_result(env, "no-auth", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result);
	cr_expect_str_eq(state, "failed");
	cr_expect_str_eq(json_string_value(json_object_get(result, "error_code")),
	                 "authorization_not_found");
	json_decref(result);
	free(state);

	/* The unparsable entry has no type for a row: it goes to the dead letters. */
	redisReply *r = redisCommand(env->redis_conn, "XLEN {dc}:dead");
	cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
	cr_expect_eq(r->integer, 1);
	freeReplyObject(r);
	cr_expect_eq(dd_log_count(env, "invalid_json"), 1, "the bad job was not logged once");
}

Test(daemon, duplicate_id_runs_once, .init = setup, .fini = teardown, .timeout = 90)
{
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	char *job = apply_job("apply-twice", authorization, "192.0.2.99", NULL);
	cr_assert(dd_enqueue(env, job));
	cr_assert(dd_enqueue(env, job));
	free(job);

	char *state = NULL;
	json_t *result = dd_wait_result(env, "apply-twice", RESULT_TIMEOUT_MS, &state);
	cr_assert_not_null(result);
	cr_expect_str_eq(state, "succeeded");
	json_decref(result);
	free(state);

	/* Both entries end acknowledged; the duplicate only waits for the first. */
	long long deadline = dd_now_ms() + RESULT_TIMEOUT_MS;
	long long length = -1;
	while (length != 0 && dd_now_ms() < deadline) {
		redisReply *r = redisCommand(env->redis_conn, "XLEN {dc}:queue:interactive");
		length = r != NULL ? r->integer : -1;
		freeReplyObject(r);
		redisReply *z = redisCommand(env->redis_conn, "ZCARD {dc}:scheduled");
		length += z != NULL ? z->integer : 0;
		freeReplyObject(z);
	}
	cr_expect_eq(length, 0, "an entry of the duplicate is still queued");
	cr_expect_eq(dd_sandbox_count(env, "apply"), 1);
	char *succeeded = dd_query(env, "SELECT count(*) FROM dc_job_events WHERE job_id = $1"
	                           " AND event = 'succeeded'", "apply-twice");
	cr_expect_str_eq(succeeded, "1");
	free(succeeded);
	free(authorization);
}
