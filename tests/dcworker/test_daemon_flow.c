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

	/* Redis holds the same result in the hash and on the channel. */
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
