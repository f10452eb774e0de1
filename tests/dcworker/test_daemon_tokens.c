/*
 * Tokens end to end: the dcworker binary with two worker processes against
 * the dcsandbox's rotating refresh tokens. One refresh per rotation under
 * concurrency, reauthorization only for a token that is really spent,
 * no token in clear in PostgreSQL, key rotation, and the keep-alive.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authorization.h"
#include "test_daemon_env.h"
#include "token_crypto.h"

#define RESULT_TIMEOUT_MS 30000
/* A second test key (32 bytes of 0x21..0x40), for the rotation test only. */
#define NEW_KEY "test2:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A="

static dd_env *env;

static void teardown(void)
{
	dd_env_free(env, getenv("DD_PRINT_LOG") != NULL);
	env = NULL;
}

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static void start(const char *extra_ini, int processes)
{
	env = dd_env_new(extra_ini, NULL, 0);
	cr_assert_not_null(env, "the test servers did not start");
	cr_assert(dd_daemon_start(env, processes), "dcworker exited at start-up");
}

static void expire_access_tokens(void)
{
	sbh_resp r;

	sbh_request(env->sandbox, "POST", "localhost",
	            "/admin/providers/" SBH_ALPHA_ID "/expire-tokens", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200);
	sbh_resp_clear(&r);
}

static long long auth_number(const char *column, const char *authorization)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT %s FROM dc_authorizations WHERE id = $1::uuid", column);
	char *text = dd_query(env, sql, authorization);
	long long value = text != NULL ? strtoll(text, NULL, 10) : -1;

	free(text);
	return value;
}

static long count_rows(const char *sql, const char *param)
{
	char *text = dd_query(env, sql, param);
	long value = text != NULL ? strtol(text, NULL, 10) : -1;

	free(text);
	return value;
}

/* Runs JOB_TEXT and returns its final state (malloc'd), or NULL on timeout. */
static char *run_job(const char *id, char *job_text)
{
	char *state = NULL;

	cr_assert(dd_enqueue(env, job_text));
	free(job_text);
	json_decref(dd_wait_result(env, id, RESULT_TIMEOUT_MS, &state));
	return state;
}

static char *refresh_text(const char *id, const char *authorization)
{
	json_t *job = json_pack("{s:s, s:s, s:s}", "id", id, "type", "refresh", "authorization_id",
	                        authorization);
	char *text = json_dumps(job, JSON_COMPACT);

	json_decref(job);
	return text;
}

/* Decrypts token column COLUMN of AUTHORIZATION with the keys in DCWORKER_TOKEN_KEYS. */
static char *stored_token(const char *authorization, const char *column)
{
	common_error err = {0};
	token_crypto *crypto = token_crypto_new_from_list(getenv("DCWORKER_TOKEN_KEYS"), &err);
	char sql[128];
	const char *params[] = {authorization};
	char *plain = NULL;
	char *copy = NULL;

	cr_assert_not_null(crypto, "%s", err.message);
	snprintf(sql, sizeof(sql), "SELECT %s FROM dc_authorizations WHERE id = $1::uuid", column);
	PGresult *res = PQexecParams(env->db, sql, 1, NULL, params, NULL, NULL, 1);
	cr_assert_eq(PQntuples(res), 1);
	if (authz_decrypt(crypto, authorization, column, (const unsigned char *)PQgetvalue(res, 0, 0),
	                  (size_t)PQgetlength(res, 0, 0), &plain, &err) == COMMON_OK)
		copy = strdup(plain);
	token_crypto_free_plaintext(plain);
	PQclear(res);
	token_crypto_free(crypto);
	cr_assert_not_null(copy, "the stored %s does not decrypt: %s", column, err.message);
	return copy;
}

/* Spends REFRESH at the sandbox's token endpoint, as a second client would. */
static void spend_refresh_token(const char *refresh)
{
	sbh_resp r;
	char body[1024];

	snprintf(body, sizeof(body),
	         "grant_type=refresh_token&refresh_token=%s&client_id=" SBH_CLIENT
	         "&client_secret=" SBH_SECRET,
	         refresh);
	sbh_request(env->sandbox, "POST", SBH_ALPHA_HOST, "/v2/oauth/access_token", NULL,
	            "application/x-www-form-urlencoded", body, &r);
	cr_assert_eq(r.status, 200, "the test's own refresh failed: %ld", r.status);
	sbh_resp_clear(&r);
}

/* Enqueues COUNT apply jobs PREFIX-<n> and expects each to succeed. */
static void apply_all(const char *prefix, const char *authorization, int count)
{
	char id[64];

	for (int i = 0; i < count; i++) {
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		char *text = dd_apply_text(id, authorization, "192.0.2.10");

		cr_assert(dd_enqueue(env, text));
		free(text);
	}
	for (int i = 0; i < count; i++) {
		char *state = NULL;

		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		json_t *result = dd_wait_result(env, id, RESULT_TIMEOUT_MS, &state);

		cr_assert_not_null(result, "job %s did not finish", id);
		cr_expect_str_eq(state, "succeeded", "job %s: %s", id,
		                 json_string_value(json_object_get(result, "message")));
		json_decref(result);
		free(state);
	}
}

Test(daemon_tokens, one_refresh_per_rotation, .fini = teardown, .timeout = 120)
{
	start(NULL, 2);
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	/* Slow token responses widen the window in which jobs of both workers need a refresh. */
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":300,\"endpoints\":\"token\"}"));
	long long version0 = auth_number("version", authorization);
	long calls0 = dd_sandbox_count(env, "token");

	expire_access_tokens();
	apply_all("round1", authorization, 20);
	expire_access_tokens();
	apply_all("round2", authorization, 20);

	long long rotations = auth_number("version", authorization) - version0;
	long calls = dd_sandbox_count(env, "token") - calls0;
	fprintf(stderr, "one_refresh_per_rotation: %ld token calls, %lld rotations, 40 jobs\n",
	        calls, rotations);
	cr_expect_eq(rotations, 2, "one rotation per expiry");
	cr_expect_eq(calls, rotations, "token endpoint calls must equal rotations");
	cr_expect_eq(count_rows("SELECT count(*) FROM dc_job_events WHERE event = 'refreshed'"
	                        " AND job_id LIKE $1", "round%"),
	             rotations, "one refreshed event per rotation");

	/* The stored refresh token is the sandbox's current one: one more refresh works. */
	char *state = run_job("refresh-final", refresh_text("refresh-final", authorization));
	cr_expect_str_eq(state, "succeeded");
	cr_expect_eq(dd_sandbox_count(env, "token") - calls0, calls + 1);
	free(state);
	free(authorization);
}

Test(daemon_tokens, waiter_reuses_inflight_refresh, .fini = teardown, .timeout = 120)
{
	start(NULL, 2);
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert(dd_sandbox_faults(env, "{\"latency_ms\":1500,\"endpoints\":\"token\"}"));
	long calls0 = dd_sandbox_count(env, "token");

	/* Two refreshes at once: the second must wait for the first, not replay its token. */
	char *text_a = refresh_text("refresh-a", authorization);
	char *text_b = refresh_text("refresh-b", authorization);
	cr_assert(dd_enqueue(env, text_a));
	cr_assert(dd_enqueue(env, text_b));
	free(text_a);
	free(text_b);
	char *state_a = NULL;
	char *state_b = NULL;
	json_decref(dd_wait_result(env, "refresh-a", RESULT_TIMEOUT_MS, &state_a));
	json_decref(dd_wait_result(env, "refresh-b", RESULT_TIMEOUT_MS, &state_b));
	cr_expect_str_eq(state_a, "succeeded");
	cr_expect_str_eq(state_b, "succeeded");
	cr_expect_eq(dd_sandbox_count(env, "token") - calls0, 1, "one token call for both");
	char *status = dd_query(env, "SELECT status FROM dc_authorizations WHERE id = $1::uuid",
	                        authorization);
	cr_expect_str_eq(status, "active");
	free(status);
	free(state_a);
	free(state_b);

	/* Another client spends the stored token: now it is really dead. */
	cr_assert(dd_sandbox_faults(env, "{}"));
	char *refresh = stored_token(authorization, AUTHZ_REFRESH_TOKEN);
	spend_refresh_token(refresh);
	free(refresh);
	char *state = run_job("refresh-dead", refresh_text("refresh-dead", authorization));
	cr_expect_str_eq(state, "reauthorization_required");
	status = dd_query(env, "SELECT status FROM dc_authorizations WHERE id = $1::uuid",
	                  authorization);
	cr_expect_str_eq(status, "reauthorization_required");
	free(status);
	free(state);
	free(authorization);
}

/* Every text form of every column of TABLE, one row per line. */
static char *table_text(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n'), '')"
	                           " FROM %s t", table);
	char *text = dd_query(env, sql, NULL);

	cr_assert_not_null(text, "reading %s failed", table);
	return text;
}

static char *hex_of(const char *s)
{
	size_t n = strlen(s);
	char *hex = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", (unsigned char)s[i]);
	hex[2 * n] = '\0';
	return hex;
}

/* Expects SECRET, as text and as hex, in no column of the three tables and not in the log. */
static void expect_nowhere(const char *what, const char *secret)
{
	static const char *const tables[] = {"dc_authorizations", "dc_jobs", "dc_job_events"};
	char *hex = hex_of(secret);
	char *log = dd_log(env);

	cr_assert(strlen(secret) >= 8, "%s is too short to search for", what);
	for (size_t i = 0; i < 3; i++) {
		char *text = table_text(tables[i]);

		cr_expect_null(strstr(text, secret), "%s in clear in %s", what, tables[i]);
		cr_expect_null(strstr(text, hex), "%s in hex in %s", what, tables[i]);
		free(text);
	}
	cr_expect_null(strstr(log, secret), "%s in the daemon log", what);
	free(log);
	free(hex);
}

Test(daemon_tokens, no_token_in_clear_and_key_rotation, .fini = teardown, .timeout = 120)
{
	start(NULL, 1);
	char *code = dd_consent_code(env, DD_ZONE);
	cr_assert_not_null(code);
	json_t *job = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", "exchange-1", "type",
	                        "exchange_code", "dns_provider", DD_PROVIDER, "code", code,
	                        "redirect_uri", SBH_REDIRECT, "domain", DD_ZONE);
	char *state = run_job("exchange-1", json_dumps(job, JSON_COMPACT));
	json_decref(job);
	cr_assert_str_eq(state, "succeeded");
	free(state);
	char *authorization = dd_query(env, "SELECT result->>'authorization_id' FROM dc_jobs"
	                                    " WHERE id = $1", "exchange-1");
	cr_assert_not_null(authorization);

	/* Every secret the sandbox issued: the code, and two generations of tokens. */
	char *secrets[5] = {code};
	secrets[1] = stored_token(authorization, AUTHZ_ACCESS_TOKEN);
	secrets[2] = stored_token(authorization, AUTHZ_REFRESH_TOKEN);
	state = run_job("refresh-1", refresh_text("refresh-1", authorization));
	cr_assert_str_eq(state, "succeeded");
	free(state);
	secrets[3] = stored_token(authorization, AUTHZ_ACCESS_TOKEN);
	secrets[4] = stored_token(authorization, AUTHZ_REFRESH_TOKEN);
	cr_expect_str_neq(secrets[2], secrets[4], "the sandbox rotates refresh tokens");
	state = run_job("apply-1", dd_apply_text("apply-1", authorization, "192.0.2.11"));
	cr_expect_str_eq(state, "succeeded");
	free(state);
	for (size_t i = 0; i < 5; i++)
		expect_nowhere(i == 0 ? "the code" : "a token", secrets[i]);

	/* A new first key: old rows stay readable, and the next write re-encrypts. */
	cr_assert_geq(dd_daemon_stop(env, SIGTERM, 15000), 0);
	char keys[256];
	snprintf(keys, sizeof(keys), "%s,%s", NEW_KEY, getenv("DCWORKER_TOKEN_KEYS"));
	setenv("DCWORKER_TOKEN_KEYS", keys, 1);
	cr_assert(dd_daemon_start(env, 1));
	char *key_id = dd_query(env, "SELECT token_key_id FROM dc_authorizations WHERE id = $1::uuid",
	                        authorization);
	cr_expect_str_eq(key_id, "test1");
	free(key_id);
	state = run_job("apply-2", dd_apply_text("apply-2", authorization, "192.0.2.12"));
	cr_expect_str_eq(state, "succeeded", "a row under the old key must stay readable");
	free(state);
	state = run_job("refresh-2", refresh_text("refresh-2", authorization));
	cr_expect_str_eq(state, "succeeded");
	free(state);
	key_id = dd_query(env, "SELECT token_key_id FROM dc_authorizations WHERE id = $1::uuid",
	                  authorization);
	cr_expect_str_eq(key_id, "test2", "the refresh must re-encrypt under the new key");
	free(key_id);
	char *rotated = stored_token(authorization, AUTHZ_REFRESH_TOKEN);
	expect_nowhere("a token", rotated);
	free(rotated);
	for (size_t i = 0; i < 5; i++)
		free(secrets[i]);
	free(authorization);
}

Test(daemon_tokens, keepalive_enqueues_once, .fini = teardown, .timeout = 120)
{
	start("keepalive_days = 1", 1);
	char *authorization = dd_authorize(env, "exchange-1", DD_ZONE);
	cr_assert_not_null(authorization);
	cr_assert_geq(dd_daemon_stop(env, SIGTERM, 15000), 0);
	char *done = dd_query(env, "UPDATE dc_authorizations SET refresh_token_used_at ="
	                           " now() - interval '3 days' WHERE id = $1::uuid RETURNING id",
	                      authorization);
	cr_assert_not_null(done);
	free(done);
	long calls0 = dd_sandbox_count(env, "token");

	cr_assert(dd_daemon_start(env, 2));
	long long deadline = dd_now_ms() + RESULT_TIMEOUT_MS;
	long finished = 0;
	while (finished < 1 && dd_now_ms() < deadline) {
		pause_ms(100);
		finished = count_rows("SELECT count(*) FROM dc_jobs WHERE type = 'refresh'"
		                      " AND state = 'succeeded' AND payload->>'authorization_id' = $1",
		                      authorization);
	}
	cr_assert_eq(finished, 1, "the keep-alive refresh did not succeed");
	/* Both workers have run the keep-alive by now; give a second job time to show. */
	pause_ms(3000);
	cr_expect_eq(count_rows("SELECT count(*) FROM dc_jobs WHERE type = 'refresh'"
	                        " AND payload->>'authorization_id' = $1", authorization),
	             1, "one keep-alive job across two workers");
	cr_expect_eq(dd_sandbox_count(env, "token") - calls0, 1);
	cr_expect_lt(count_rows("SELECT extract(epoch FROM now() - refresh_token_used_at)::bigint"
	                        " FROM dc_authorizations WHERE id = $1::uuid", authorization),
	             60, "the refresh records the token's use");
	free(authorization);
}
