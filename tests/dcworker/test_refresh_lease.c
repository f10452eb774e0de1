/*
 * Refresh lease tests against a real PostgreSQL on loopback, with the
 * schema applied by the project's migration runner. Concurrent claimers
 * run in forked processes, each with its own job store connection.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "common/migrate.h"
#include "common/token_crypto.h"
#include "dcworker/refresh_lease.h"
#include "support/support.h"

/* A test key: 32 zero bytes. */
#define TEST_KEYS "test1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

typedef struct fixture {
	ts_postgres *pg;
	struct ev_loop *loop;
	job_store *store;
	PGconn *db;          /* blocking connection that sets up and inspects rows */
	token_crypto *crypto;
} fixture;

static fixture fx;

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run LOOP until *DONE is set or SECONDS pass; true when set. */
static bool run_until(struct ev_loop *loop, const bool *done, double seconds)
{
	ev_timer tick;
	double deadline;

	ev_now_update(loop);
	deadline = ev_now(loop) + seconds;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	while (!*done && ev_now(loop) < deadline)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	return *done;
}

static void sleep_loop(struct ev_loop *loop, double seconds)
{
	bool never = false;

	run_until(loop, &never, seconds);
}

/* Open a job store on LOOP and wait for its connection; NULL on failure. */
static job_store *open_store(struct ev_loop *loop)
{
	job_store_options o = {
		.conninfo = ts_postgres_conninfo(fx.pg),
		.pool_size = 1,
		.query_timeout_ms = 5000,
	};
	job_store_error err;
	job_store *store = job_store_new(loop, &o, &err);

	if (store == NULL)
		return NULL;
	for (int i = 0; i < 250 && job_store_connected(store) == 0; i++)
		sleep_loop(loop, 0.02);
	if (job_store_connected(store) == 0) {
		job_store_free(store);
		return NULL;
	}
	return store;
}

static void setup(void)
{
	const char *source = getenv("DC_SOURCE_DIR");
	char dir[1024];
	common_error err;

	cr_assert_not_null(source, "DC_SOURCE_DIR is not set; run the test through ctest");
	fx.pg = ts_postgres_start();
	cr_assert_not_null(fx.pg, "PostgreSQL did not start");
	fx.db = PQconnectdb(ts_postgres_conninfo(fx.pg));
	cr_assert_eq(PQstatus(fx.db), CONNECTION_OK);
	snprintf(dir, sizeof(dir), "%s/migrations", source);
	cr_assert_eq(migrate_run(fx.db, dir, NULL, NULL, &err), COMMON_OK, "%s", err.message);
	fx.crypto = token_crypto_new_from_list(TEST_KEYS, &err);
	cr_assert_not_null(fx.crypto, "%s", err.message);
	fx.loop = ev_loop_new(EVFLAG_AUTO);
	fx.store = open_store(fx.loop);
	cr_assert_not_null(fx.store, "the job store did not connect");
}

static void teardown(void)
{
	job_store_free(fx.store);
	if (fx.loop != NULL)
		ev_loop_destroy(fx.loop);
	token_crypto_free(fx.crypto);
	PQfinish(fx.db);
	ts_postgres_stop(fx.pg);
	memset(&fx, 0, sizeof(fx));
}

TestSuite(refresh_lease, .init = setup, .fini = teardown, .timeout = 120);

/* Encrypt TOKEN for column COLUMN of authorization ID, as stored ciphertexts are bound. */
static unsigned char *encrypt(const char *id, const char *column, const char *token, size_t *len)
{
	char aad[128];
	unsigned char *out = NULL;
	common_error err;

	snprintf(aad, sizeof(aad), "%s/%s", id, column);
	cr_assert_eq(token_crypto_encrypt(fx.crypto, token, strlen(token), aad, strlen(aad), &out,
	                                  len, &err),
	             COMMON_OK, "%s", err.message);
	return out;
}

static char *decrypt(const char *id, const char *column, const unsigned char *data, size_t len)
{
	char aad[128];
	char *out = NULL;
	size_t out_len = 0;
	common_error err;

	snprintf(aad, sizeof(aad), "%s/%s", id, column);
	cr_assert_eq(token_crypto_decrypt(fx.crypto, data, len, aad, strlen(aad), &out, &out_len,
	                                  &err),
	             COMMON_OK, "%s", err.message);
	return out;
}

static PGresult *exec(const char *sql, int nparams, const char *const *params)
{
	PGresult *res = PQexecParams(fx.db, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType status = PQresultStatus(res);

	cr_assert(status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK, "%s",
	          PQresultErrorMessage(res));
	return res;
}

/* Insert an active authorization with a fixed id and no tokens yet; return its id. */
static const char *insert_authorization(const char *id)
{
	const char *params[] = {id};

	PQclear(exec("INSERT INTO dc_authorizations (id, dns_provider, zone)"
	             " VALUES ($1::uuid, 'sandbox', 'example.com')",
	             1, params));
	return id;
}

typedef struct outcome {
	bool done;
	int calls;
	refresh_lease_result result;
} outcome;

/* Record the result and keep the row; the test frees it. */
static void on_result(void *arg, refresh_lease_result *result)
{
	outcome *o = arg;

	o->done = true;
	o->calls++;
	o->result = *result;
	result->authorization = NULL;
}

static refresh_lease_result wait_result(outcome *o)
{
	cr_assert(run_until(fx.loop, &o->done, 10), "the refresh lease call did not call back");
	cr_assert_eq(o->calls, 1);
	return o->result;
}

static refresh_lease_result claim(const char *id, const char *owner, long long version,
                                  long lease_ms)
{
	outcome o = {0};
	job_store_error err;

	cr_assert_eq(refresh_lease_claim(fx.store, id, owner, version, lease_ms, on_result, &o, &err),
	             JOB_STORE_OK, "%s", err.message);
	refresh_lease_result r = wait_result(&o);
	cr_assert_eq(r.error.status, JOB_STORE_OK, "%s", r.error.message);
	return r;
}

static refresh_lease_result store_tokens(const char *id, const char *owner, long long version,
                                         const char *access, const char *refresh)
{
	size_t access_len = 0;
	size_t refresh_len = 0;
	unsigned char *access_ct = encrypt(id, "access_token", access, &access_len);
	unsigned char *refresh_ct =
		refresh != NULL ? encrypt(id, "refresh_token", refresh, &refresh_len) : NULL;
	refresh_lease_tokens tokens = {
		.token_type = "bearer",
		.access_token = access_ct,
		.access_token_len = access_len,
		.refresh_token = refresh_ct,
		.refresh_token_len = refresh_len,
		.expires_at_ms = 1900000000000LL,
	};
	outcome o = {0};
	job_store_error err;

	cr_assert_eq(refresh_lease_store(fx.store, id, owner, version, &tokens, on_result, &o, &err),
	             JOB_STORE_OK, "%s", err.message);
	free(access_ct);
	free(refresh_ct);
	return wait_result(&o);
}

static refresh_lease_result release(const char *id, const char *owner)
{
	outcome o = {0};
	job_store_error err;

	cr_assert_eq(refresh_lease_release(fx.store, id, owner, on_result, &o, &err), JOB_STORE_OK,
	             "%s", err.message);
	return wait_result(&o);
}

static refresh_lease_result read_row(const char *id)
{
	outcome o = {0};
	job_store_error err;

	cr_assert_eq(refresh_lease_read(fx.store, id, on_result, &o, &err), JOB_STORE_OK, "%s",
	             err.message);
	refresh_lease_result r = wait_result(&o);
	cr_assert_eq(r.error.status, JOB_STORE_OK, "%s", r.error.message);
	return r;
}

/*
 * Claim the lease of ID as owner "claimer-N" once the parent writes to GO,
 * then write the outcome (or -1) to RESULT_FD and exit.
 */
static void claim_in_child(const char *id, int n, int ready_fd, int go_fd, int result_fd)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	job_store *store = open_store(loop);
	char owner[32];
	char go;
	int outcome_code = -1;
	outcome o = {0};
	job_store_error err;

	snprintf(owner, sizeof(owner), "claimer-%d", n);
	if (store == NULL || write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		goto out;
	if (refresh_lease_claim(store, id, owner, 1, 30000, on_result, &o, &err) != JOB_STORE_OK)
		goto out;
	run_until(loop, &o.done, 10);
	if (o.done && o.result.error.status == JOB_STORE_OK)
		outcome_code = (int)o.result.outcome;
	job_authorization_free(o.result.authorization);
out:
	if (write(result_fd, &outcome_code, sizeof(outcome_code)) != (ssize_t)sizeof(outcome_code))
		_exit(2);
	_exit(0);
}

Test(refresh_lease, concurrent_claimers_one_wins)
{
	enum { CLAIMERS = 6 };
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000001");
	int ready[2];
	int go[2];
	int results[2];
	pid_t pids[CLAIMERS];
	int acquired = 0;
	int busy = 0;
	char byte;

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(results), 0);
	for (int i = 0; i < CLAIMERS; i++) {
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0)
			claim_in_child(id, i, ready[1], go[0], results[1]);
	}
	close(ready[1]);
	close(go[0]);
	close(results[1]);
	for (int i = 0; i < CLAIMERS; i++)
		cr_assert_eq(read(ready[0], &byte, 1), 1, "a claimer did not connect");
	for (int i = 0; i < CLAIMERS; i++)
		cr_assert_eq(write(go[1], "g", 1), 1);

	for (int i = 0; i < CLAIMERS; i++) {
		int code;

		cr_assert_eq(read(results[0], &code, sizeof(code)), (ssize_t)sizeof(code));
		cr_assert_geq(code, 0, "a claimer's query failed");
		if (code == REFRESH_LEASE_ACQUIRED)
			acquired++;
		else if (code == REFRESH_LEASE_BUSY)
			busy++;
	}
	for (int i = 0; i < CLAIMERS; i++)
		waitpid(pids[i], NULL, 0);
	close(ready[0]);
	close(go[1]);
	close(results[0]);
	cr_log_info("%d concurrent claimers: %d acquired, %d busy", CLAIMERS, acquired, busy);
	cr_assert_eq(acquired, 1, "%d claimers acquired one lease", acquired);
	cr_assert_eq(busy, CLAIMERS - 1);

	PGresult *res = exec("SELECT lease_owner FROM dc_authorizations WHERE id = $1::uuid", 1,
	                     (const char *[]){id});
	cr_assert_eq(strncmp(PQgetvalue(res, 0, 0), "claimer-", 8), 0);
	PQclear(res);
}

Test(refresh_lease, busy_claim_reports_the_lease)
{
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000002");

	refresh_lease_result r = claim(id, "owner-a", 1, 30000);
	cr_assert_eq(r.outcome, REFRESH_LEASE_ACQUIRED);
	cr_assert_not_null(r.authorization);
	cr_assert_str_eq(r.authorization->zone, "example.com");
	cr_assert(r.lease_remaining_ms > 29000 && r.lease_remaining_ms <= 30000);
	job_authorization_free(r.authorization);

	r = claim(id, "owner-b", 1, 30000);
	cr_assert_eq(r.outcome, REFRESH_LEASE_BUSY, "%s", refresh_lease_outcome_name(r.outcome));
	cr_assert(r.lease_remaining_ms > 0, "remaining %lld ms", r.lease_remaining_ms);
	job_authorization_free(r.authorization);

	r = claim(id, "owner-a", 1, 30000);
	cr_assert_eq(r.outcome, REFRESH_LEASE_ACQUIRED, "the owner could not claim again");
	job_authorization_free(r.authorization);

	r = read_row(id);
	cr_assert_eq(r.outcome, REFRESH_LEASE_BUSY);
	cr_assert_eq(r.version, 1);
	job_authorization_free(r.authorization);
}

Test(refresh_lease, expired_lease_taken_over)
{
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000003");

	job_authorization_free(claim(id, "slow", 1, 200).authorization);
	sleep_loop(fx.loop, 0.3);

	refresh_lease_result r = claim(id, "fast", 1, 30000);
	cr_assert_eq(r.outcome, REFRESH_LEASE_ACQUIRED, "%s", refresh_lease_outcome_name(r.outcome));
	job_authorization_free(r.authorization);

	/* The first owner's late store is refused: the lease is someone else's. */
	r = store_tokens(id, "slow", 1, "access-from-slow", "refresh-from-slow");
	cr_assert_eq(r.error.status, JOB_STORE_ERR_LEASE_LOST, "%s",
	             job_store_status_name(r.error.status));
	r = release(id, "slow");
	cr_assert_eq(r.error.status, JOB_STORE_ERR_LEASE_LOST);

	r = store_tokens(id, "fast", 1, "access-from-fast", "refresh-from-fast");
	cr_assert_eq(r.error.status, JOB_STORE_OK, "%s", r.error.message);
	cr_assert_eq(r.outcome, REFRESH_LEASE_STORED);
	cr_assert_eq(r.version, 2);
}

Test(refresh_lease, stale_version_store_rejected)
{
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000004");

	job_authorization_free(claim(id, "first", 1, 30000).authorization);
	refresh_lease_result r = store_tokens(id, "first", 1, "access-1", "refresh-1");
	cr_assert_eq(r.outcome, REFRESH_LEASE_STORED);
	cr_assert_eq(r.version, 2);

	/* A second store from version 1 is refused even by the same owner. */
	r = store_tokens(id, "first", 1, "access-again", "refresh-again");
	cr_assert_eq(r.error.status, JOB_STORE_ERR_VERSION_CONFLICT, "%s",
	             job_store_status_name(r.error.status));
	cr_assert_eq(r.version, 2);

	/* A claimer that read version 1 learns that the tokens rotated. */
	r = claim(id, "second", 1, 30000);
	cr_assert_eq(r.outcome, REFRESH_LEASE_CHANGED, "%s", refresh_lease_outcome_name(r.outcome));
	cr_assert_eq(r.version, 2);
	char *refresh = decrypt(id, "refresh_token", r.authorization->refresh_token,
	                        r.authorization->refresh_token_len);
	cr_assert_str_eq(refresh, "refresh-1");
	token_crypto_free_plaintext(refresh);
	job_authorization_free(r.authorization);

	/* A store without a lease is refused. */
	r = store_tokens(id, "second", 2, "access-2", "refresh-2");
	cr_assert_eq(r.error.status, JOB_STORE_ERR_LEASE_LOST);

	PGresult *res = exec("SELECT version, lease_owner IS NULL FROM dc_authorizations"
	                     " WHERE id = $1::uuid",
	                     1, (const char *[]){id});
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "2");
	cr_assert_str_eq(PQgetvalue(res, 0, 1), "t");
	PQclear(res);
}

Test(refresh_lease, store_without_refresh_keeps_it)
{
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000005");

	job_authorization_free(claim(id, "one", 1, 30000).authorization);
	cr_assert_eq(store_tokens(id, "one", 1, "access-1", "refresh-1").outcome,
	             REFRESH_LEASE_STORED);
	job_authorization_free(claim(id, "two", 2, 30000).authorization);
	refresh_lease_result r = store_tokens(id, "two", 2, "access-2", NULL);
	cr_assert_eq(r.error.status, JOB_STORE_OK, "%s", r.error.message);
	cr_assert_eq(r.version, 3);

	r = read_row(id);
	cr_assert_eq(r.outcome, REFRESH_LEASE_FREE);
	char *access = decrypt(id, "access_token", r.authorization->access_token,
	                       r.authorization->access_token_len);
	char *refresh = decrypt(id, "refresh_token", r.authorization->refresh_token,
	                        r.authorization->refresh_token_len);
	cr_assert_str_eq(access, "access-2");
	cr_assert_str_eq(refresh, "refresh-1");
	cr_assert_eq(r.authorization->expires_at_ms, 1900000000000LL);
	token_crypto_free_plaintext(access);
	token_crypto_free_plaintext(refresh);
	job_authorization_free(r.authorization);
}

Test(refresh_lease, release_keeps_the_tokens)
{
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000006");

	job_authorization_free(claim(id, "one", 1, 30000).authorization);
	cr_assert_eq(store_tokens(id, "one", 1, "access-1", "refresh-1").outcome,
	             REFRESH_LEASE_STORED);
	PGresult *before = exec("SELECT encode(access_token, 'hex'), encode(refresh_token, 'hex')"
	                        " FROM dc_authorizations WHERE id = $1::uuid",
	                        1, (const char *[]){id});

	job_authorization_free(claim(id, "failing", 2, 30000).authorization);
	refresh_lease_result r = release(id, "other");
	cr_assert_eq(r.error.status, JOB_STORE_ERR_LEASE_LOST, "a non-owner released the lease");
	r = release(id, "failing");
	cr_assert_eq(r.error.status, JOB_STORE_OK, "%s", r.error.message);
	cr_assert_eq(r.outcome, REFRESH_LEASE_RELEASED);
	cr_assert_eq(r.version, 2);

	PGresult *after = exec("SELECT encode(access_token, 'hex'), encode(refresh_token, 'hex'),"
	                       " version, lease_owner IS NULL FROM dc_authorizations"
	                       " WHERE id = $1::uuid",
	                       1, (const char *[]){id});
	cr_assert_str_eq(PQgetvalue(after, 0, 0), PQgetvalue(before, 0, 0));
	cr_assert_str_eq(PQgetvalue(after, 0, 1), PQgetvalue(before, 0, 1));
	cr_assert_str_eq(PQgetvalue(after, 0, 2), "2");
	cr_assert_str_eq(PQgetvalue(after, 0, 3), "t");
	PQclear(before);
	PQclear(after);

	r = claim(id, "next", 2, 30000);
	cr_assert_eq(r.outcome, REFRESH_LEASE_ACQUIRED, "the released lease was not free");
	job_authorization_free(r.authorization);
}

Test(refresh_lease, stored_ciphertext_hides_tokens)
{
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000007");
	const char *access = "plain-access-token-0123456789";
	const char *refresh = "plain-refresh-token-9876543210";

	job_authorization_free(claim(id, "one", 1, 30000).authorization);
	cr_assert_eq(store_tokens(id, "one", 1, access, refresh).outcome, REFRESH_LEASE_STORED);

	PGresult *res = exec("SELECT access_token, refresh_token, token_key_id"
	                     " FROM dc_authorizations WHERE id = $1::uuid",
	                     1, (const char *[]){id});
	for (int column = 0; column < 2; column++) {
		size_t len = 0;
		unsigned char *bytes =
			PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, column), &len);

		cr_assert_not_null(bytes);
		cr_assert_gt(len, strlen(refresh));
		cr_assert_null(memmem(bytes, len, access, strlen(access)), "plaintext access token stored");
		cr_assert_null(memmem(bytes, len, refresh, strlen(refresh)),
		               "plaintext refresh token stored");
		PQfreemem(bytes);
	}
	cr_assert_str_eq(PQgetvalue(res, 0, 2), "test1");
	PQclear(res);

	refresh_lease_result r = read_row(id);
	char *plain = decrypt(id, "refresh_token", r.authorization->refresh_token,
	                      r.authorization->refresh_token_len);
	cr_assert_str_eq(plain, refresh);
	token_crypto_free_plaintext(plain);
	job_authorization_free(r.authorization);
}

Test(refresh_lease, inactive_and_missing_rows)
{
	const char *id = insert_authorization("00000000-0000-4000-8000-000000000008");
	outcome o = {0};
	job_store_error err;

	PQclear(exec("UPDATE dc_authorizations SET status = 'revoked' WHERE id = $1::uuid", 1,
	             (const char *[]){id}));
	refresh_lease_result r = claim(id, "one", 1, 30000);
	cr_assert_eq(r.outcome, REFRESH_LEASE_INACTIVE, "%s", refresh_lease_outcome_name(r.outcome));
	job_authorization_free(r.authorization);

	cr_assert_eq(refresh_lease_claim(fx.store, "00000000-0000-4000-8000-0000000000ff", "one", 1,
	                                 30000, on_result, &o, &err),
	             JOB_STORE_OK);
	r = wait_result(&o);
	cr_assert_eq(r.error.status, JOB_STORE_ERR_NOT_FOUND);
}

Test(refresh_lease, invalid_arguments_rejected)
{
	const char *id = "00000000-0000-4000-8000-000000000009";
	refresh_lease_tokens plain = {.token_type = "bearer",
	                              .access_token = (const unsigned char *)"not-ciphertext",
	                              .access_token_len = 14};
	outcome o = {0};
	job_store_error err;

	cr_assert_eq(refresh_lease_claim(fx.store, "not-a-uuid", "o", 1, 1000, on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(refresh_lease_claim(fx.store, id, "", 1, 1000, on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(refresh_lease_claim(fx.store, id, "o", 0, 1000, on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(refresh_lease_claim(fx.store, id, "o", 1, 0, on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(refresh_lease_claim(fx.store, id, "o", 1, REFRESH_LEASE_MAX_MS + 1, on_result,
	                                 &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(refresh_lease_store(fx.store, id, "o", 1, &plain, on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT, "a plaintext token was accepted for storage");
	cr_assert_eq(refresh_lease_store(fx.store, id, "o", 1, NULL, on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(refresh_lease_release(fx.store, id, "o w", on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(refresh_lease_read(fx.store, NULL, on_result, &o, &err),
	             JOB_STORE_ERR_INVALID_ARGUMENT);
	cr_assert_eq(o.calls, 0, "a rejected call ran its callback");
	cr_assert_str_eq(refresh_lease_outcome_name(REFRESH_LEASE_STORED), "REFRESH_LEASE_STORED");
	cr_assert_str_eq(refresh_lease_outcome_name((refresh_lease_outcome)99),
	                 "REFRESH_LEASE_UNKNOWN");
}
