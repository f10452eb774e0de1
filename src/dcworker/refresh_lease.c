/*
 * Refresh leases on dc_authorizations: the SQL of claim, store, release
 * and read, and the parsing of their rows. See refresh_lease.h.
 */
#include "refresh_lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "job_store_conn.h"
#include "token_crypto.h"

/* Length of an authorization id: a UUID in its 36-character text form. */
#define REFRESH_LEASE_ID_LEN 36
/* Largest ciphertext accepted: the largest plaintext plus the header and tag. */
#define REFRESH_LEASE_CIPHERTEXT_MAX (TOKEN_CRYPTO_PLAINTEXT_MAX + 64)

/* The authorization columns every row-returning statement selects, in this order. */
#define AUTH_COLUMNS                                                                  \
	"a.id::text, a.dns_provider, a.zone, a.status, a.token_type, a.access_token,"     \
	" a.refresh_token, (extract(epoch FROM a.expires_at) * 1000)::bigint, a.version," \
	" least(600000, greatest(0, ceil(extract(epoch FROM a.lease_until - now()) * 1000)))::bigint"
#define AUTH_COLUMN_COUNT 10

/*
 * $1 owner, $2 id, $3 version, $4 lease ms. When the UPDATE matched no row,
 * the second SELECT returns the reason, read from the statement's snapshot.
 */
static const char sql_claim[] =
	"WITH claimed AS ("
	" UPDATE dc_authorizations AS a SET lease_owner = $1,"
	" lease_until = now() + $4::bigint * interval '1 millisecond', updated_at = now()"
	" WHERE a.id = $2::uuid AND a.version = $3::bigint AND a.status = 'active'"
	" AND (a.lease_until IS NULL OR a.lease_until <= now() OR a.lease_owner = $1)"
	" RETURNING " AUTH_COLUMNS ")"
	" SELECT 'acquired', * FROM claimed"
	" UNION ALL"
	" SELECT CASE WHEN a.version <> $3::bigint THEN 'changed'"
	" WHEN a.status <> 'active' THEN 'inactive' ELSE 'busy' END, " AUTH_COLUMNS
	" FROM dc_authorizations AS a"
	" WHERE a.id = $2::uuid AND NOT EXISTS (SELECT 1 FROM claimed)";

/*
 * $1 id, $2 owner, $3 version, $4 access token hex, $5 refresh token hex or
 * NULL, $6 token type, $7 expiry ms or NULL, $8 key id.
 */
static const char sql_store[] =
	"WITH stored AS ("
	" UPDATE dc_authorizations SET access_token = decode($4, 'hex'),"
	" refresh_token = COALESCE(decode($5, 'hex'), refresh_token), token_type = $6,"
	" expires_at = to_timestamp($7::bigint / 1000.0), token_key_id = $8,"
	" version = version + 1, lease_owner = NULL, lease_until = NULL,"
	" refresh_token_used_at = now(), updated_at = now()"
	" WHERE id = $1::uuid AND lease_owner = $2 AND version = $3::bigint"
	" RETURNING version)"
	" SELECT 'stored', version FROM stored"
	" UNION ALL"
	" SELECT CASE WHEN version <> $3::bigint THEN 'changed' ELSE 'lost' END, version"
	" FROM dc_authorizations"
	" WHERE id = $1::uuid AND NOT EXISTS (SELECT 1 FROM stored)";

/* $1 id, $2 owner. */
static const char sql_release[] =
	"UPDATE dc_authorizations SET lease_owner = NULL, lease_until = NULL, updated_at = now()"
	" WHERE id = $1::uuid AND lease_owner = $2 RETURNING 'released', version";

/* $1 id. */
static const char sql_read[] =
	"SELECT CASE WHEN a.lease_until > now() THEN 'busy' ELSE 'free' END, " AUTH_COLUMNS
	" FROM dc_authorizations AS a WHERE a.id = $1::uuid";

static const char *const outcome_names[] = {
	[REFRESH_LEASE_ACQUIRED] = "REFRESH_LEASE_ACQUIRED",
	[REFRESH_LEASE_BUSY] = "REFRESH_LEASE_BUSY",
	[REFRESH_LEASE_CHANGED] = "REFRESH_LEASE_CHANGED",
	[REFRESH_LEASE_INACTIVE] = "REFRESH_LEASE_INACTIVE",
	[REFRESH_LEASE_FREE] = "REFRESH_LEASE_FREE",
	[REFRESH_LEASE_STORED] = "REFRESH_LEASE_STORED",
	[REFRESH_LEASE_RELEASED] = "REFRESH_LEASE_RELEASED",
};

/* The word each statement returns in its first column, per outcome. */
static const char *const outcome_words[] = {
	[REFRESH_LEASE_ACQUIRED] = "acquired", [REFRESH_LEASE_BUSY] = "busy",
	[REFRESH_LEASE_CHANGED] = "changed",   [REFRESH_LEASE_INACTIVE] = "inactive",
	[REFRESH_LEASE_FREE] = "free",         [REFRESH_LEASE_STORED] = "stored",
	[REFRESH_LEASE_RELEASED] = "released",
};

#define OUTCOME_COUNT (sizeof(outcome_names) / sizeof(outcome_names[0]))

const char *refresh_lease_outcome_name(refresh_lease_outcome outcome)
{
	if ((size_t)outcome >= OUTCOME_COUNT)
		return "REFRESH_LEASE_UNKNOWN";
	return outcome_names[outcome];
}

typedef struct lease_call {
	refresh_lease_cb cb;
	void *arg;
} lease_call;

/*
 * Rows are parsed into the job store's result and copied into a
 * refresh_lease_result here. Field use: state = the outcome word, version =
 * version, attempts = lease_remaining_ms, authorization = the row.
 */
static void call_done(void *arg, job_store_result *js)
{
	lease_call *call = arg;
	refresh_lease_cb cb = call->cb;
	void *cb_arg = call->arg;
	refresh_lease_result result;

	free(call);
	memset(&result, 0, sizeof(result));
	result.error = js->error;
	result.authorization = js->authorization;
	js->authorization = NULL;
	result.version = js->version;
	result.lease_remaining_ms = js->attempts;
	result.outcome = REFRESH_LEASE_FREE;
	for (size_t i = 0; i < OUTCOME_COUNT; i++) {
		if (strcmp(js->state, outcome_words[i]) == 0)
			result.outcome = (refresh_lease_outcome)i;
	}
	cb(cb_arg, &result);
	job_authorization_free(result.authorization);
}

/* Result parsing */

static bool parse_int(const char *text, long long min, long long max, long long *out)
{
	char *end;
	long long value;

	if (text == NULL || text[0] == '\0')
		return false;
	value = strtoll(text, &end, 10);
	if (*end != '\0' || value < min || value > max)
		return false;
	*out = value;
	return true;
}

static char *column_string(const PGresult *res, int column)
{
	if (PQgetisnull(res, 0, column))
		return NULL;
	return strdup(PQgetvalue(res, 0, column));
}

static unsigned char *column_bytea(const PGresult *res, int column, size_t *len)
{
	*len = 0;
	if (PQgetisnull(res, 0, column))
		return NULL;
	return PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, column), len);
}

/* Copy the outcome word of row 0 into RESULT->state; false when it is unknown. */
static bool parse_outcome(const PGresult *res, job_store_result *result)
{
	const char *word = PQgetvalue(res, 0, 0);

	for (size_t i = 0; i < OUTCOME_COUNT; i++) {
		if (strcmp(word, outcome_words[i]) == 0) {
			snprintf(result->state, sizeof(result->state), "%s", word);
			return true;
		}
	}
	return false;
}

/* Parse row 0: the outcome word, then AUTH_COLUMNS. */
static void parse_row(const PGresult *res, job_store_result *result)
{
	job_authorization *auth;
	long long remaining;

	if (PQntuples(res) == 0) {
		job_store_fail(&result->error, JOB_STORE_ERR_NOT_FOUND, "authorization not found");
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 1 + AUTH_COLUMN_COUNT ||
	    !parse_outcome(res, result) ||
	    !parse_int(PQgetvalue(res, 0, 10), 0, REFRESH_LEASE_MAX_MS, &remaining)) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "refresh lease query returned %d rows of an unexpected shape",
		               PQntuples(res));
		return;
	}
	auth = calloc(1, sizeof(*auth));
	if (auth == NULL) {
		job_store_fail(&result->error, JOB_STORE_ERR_NOMEM, "out of memory");
		return;
	}
	auth->id = column_string(res, 1);
	auth->dns_provider = column_string(res, 2);
	auth->zone = column_string(res, 3);
	auth->status = column_string(res, 4);
	auth->token_type = column_string(res, 5);
	auth->access_token = column_bytea(res, 6, &auth->access_token_len);
	auth->refresh_token = column_bytea(res, 7, &auth->refresh_token_len);
	if (PQgetisnull(res, 0, 8) ||
	    !parse_int(PQgetvalue(res, 0, 8), 0, 1LL << 52, &auth->expires_at_ms))
		auth->expires_at_ms = -1;
	if (!parse_int(PQgetvalue(res, 0, 9), 0, 1LL << 62, &auth->version) || auth->id == NULL) {
		job_authorization_free(auth);
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "authorization row has no id or an invalid version");
		return;
	}
	result->version = auth->version;
	result->attempts = (int)remaining;
	result->authorization = auth;
}

/* Parse row 0: the outcome word and the version; map refusals to errors. */
static void parse_version_row(const PGresult *res, job_store_result *result)
{
	if (PQntuples(res) == 0) {
		job_store_fail(&result->error, JOB_STORE_ERR_NOT_FOUND, "authorization not found");
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 2 ||
	    !parse_int(PQgetvalue(res, 0, 1), 0, 1LL << 62, &result->version)) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL,
		               "refresh lease query returned %d rows of an unexpected shape",
		               PQntuples(res));
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "changed") == 0) {
		job_store_fail(&result->error, JOB_STORE_ERR_VERSION_CONFLICT,
		               "the authorization is at version %lld now; nothing was written",
		               result->version);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "lost") == 0 || !parse_outcome(res, result))
		job_store_fail(&result->error, JOB_STORE_ERR_LEASE_LOST,
		               "the refresh lease is held by another owner; nothing was written");
}

/* Parse a release: one row when released, none when the lease was not held. */
static void parse_release(const PGresult *res, job_store_result *result)
{
	if (PQntuples(res) == 0) {
		job_store_fail(&result->error, JOB_STORE_ERR_LEASE_LOST,
		               "the refresh lease is not held by this owner or the row is gone");
		return;
	}
	parse_version_row(res, result);
}

/* Argument checks */

static bool id_valid(const char *id)
{
	if (id == NULL || strlen(id) != REFRESH_LEASE_ID_LEN)
		return false;
	for (size_t i = 0; i < REFRESH_LEASE_ID_LEN; i++) {
		char c = id[i];
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');

		if (dash ? c != '-' : !hex)
			return false;
	}
	return true;
}

static bool owner_valid(const char *owner)
{
	size_t len = owner != NULL ? strlen(owner) : 0;

	if (len == 0 || len > REFRESH_LEASE_OWNER_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)owner[i];

		if (c < 0x21 || c > 0x7e)
			return false;
	}
	return true;
}

static job_store_status invalid(job_store_error *err, const char *what)
{
	return job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT, "%s is missing or invalid", what);
}

/*
 * Read the key id from a token_crypto ciphertext header into KEY_ID.
 * False when DATA is not a ciphertext of the current format.
 */
static bool key_id_of(const unsigned char *data, size_t len,
                      char key_id[TOKEN_CRYPTO_KEY_ID_MAX + 1])
{
	size_t id_len;

	if (len < 2 || data[0] != TOKEN_CRYPTO_VERSION)
		return false;
	id_len = data[1];
	if (id_len == 0 || id_len > TOKEN_CRYPTO_KEY_ID_MAX ||
	    len < 2 + id_len + TOKEN_CRYPTO_NONCE_BYTES + TOKEN_CRYPTO_TAG_BYTES)
		return false;
	memcpy(key_id, data + 2, id_len);
	key_id[id_len] = '\0';
	return true;
}

/* Hex text of DATA for decode($n, 'hex'); NULL for NULL DATA or no memory. */
static char *hex_of(const unsigned char *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *hex;

	if (data == NULL)
		return NULL;
	hex = malloc(2 * len + 1);
	if (hex == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		hex[2 * i] = digits[data[i] >> 4];
		hex[2 * i + 1] = digits[data[i] & 0x0f];
	}
	hex[2 * len] = '\0';
	return hex;
}

static job_store_status submit(job_store *store, const char *sql, int nparams,
                               const char *const *params, job_store_parse_fn parse,
                               refresh_lease_cb cb, void *arg, job_store_error *err)
{
	lease_call *call;
	job_store_status status;

	if (store == NULL || cb == NULL)
		return invalid(err, "job store or callback");
	call = malloc(sizeof(*call));
	if (call == NULL)
		return job_store_fail(err, JOB_STORE_ERR_NOMEM, "out of memory");
	call->cb = cb;
	call->arg = arg;
	status = job_store_submit(store, sql, nparams, params, parse, call_done, call, err);
	if (status != JOB_STORE_OK)
		free(call);
	return status;
}

/* Operations */

job_store_status refresh_lease_claim(job_store *store, const char *id, const char *owner,
                                     long long version, long lease_ms, refresh_lease_cb cb,
                                     void *arg, job_store_error *err)
{
	char version_text[24];
	char lease_text[24];

	if (!id_valid(id))
		return invalid(err, "authorization id");
	if (!owner_valid(owner))
		return invalid(err, "refresh lease owner");
	if (version < 1)
		return invalid(err, "authorization version");
	if (lease_ms <= 0 || lease_ms > REFRESH_LEASE_MAX_MS)
		return invalid(err, "refresh lease duration");

	snprintf(version_text, sizeof(version_text), "%lld", version);
	snprintf(lease_text, sizeof(lease_text), "%ld", lease_ms);
	const char *params[] = {owner, id, version_text, lease_text};
	return submit(store, sql_claim, 4, params, parse_row, cb, arg, err);
}

job_store_status refresh_lease_store(job_store *store, const char *id, const char *owner,
                                     long long version, const refresh_lease_tokens *tokens,
                                     refresh_lease_cb cb, void *arg, job_store_error *err)
{
	char version_text[24];
	char expires_text[24];
	char key_id[TOKEN_CRYPTO_KEY_ID_MAX + 1];
	char *access = NULL;
	char *refresh = NULL;
	job_store_status status;

	if (!id_valid(id))
		return invalid(err, "authorization id");
	if (!owner_valid(owner))
		return invalid(err, "refresh lease owner");
	if (version < 1)
		return invalid(err, "authorization version");
	if (tokens == NULL || !owner_valid(tokens->token_type) || tokens->access_token == NULL ||
	    tokens->access_token_len > REFRESH_LEASE_CIPHERTEXT_MAX ||
	    tokens->refresh_token_len > REFRESH_LEASE_CIPHERTEXT_MAX)
		return invalid(err, "token type or token ciphertext");
	if (!key_id_of(tokens->access_token, tokens->access_token_len, key_id))
		return invalid(err, "access token ciphertext (not made by token_crypto)");
	if (tokens->refresh_token != NULL) {
		char refresh_key_id[TOKEN_CRYPTO_KEY_ID_MAX + 1];

		if (!key_id_of(tokens->refresh_token, tokens->refresh_token_len, refresh_key_id) ||
		    strcmp(refresh_key_id, key_id) != 0)
			return invalid(err, "refresh token ciphertext (not made with the access token's key)");
	}

	access = hex_of(tokens->access_token, tokens->access_token_len);
	refresh = hex_of(tokens->refresh_token, tokens->refresh_token_len);
	if (access == NULL || (tokens->refresh_token != NULL && refresh == NULL)) {
		status = job_store_fail(err, JOB_STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	snprintf(version_text, sizeof(version_text), "%lld", version);
	snprintf(expires_text, sizeof(expires_text), "%lld", tokens->expires_at_ms);
	const char *params[] = {id,      owner,
	                        version_text, access,
	                        refresh, tokens->token_type,
	                        tokens->expires_at_ms >= 0 ? expires_text : NULL, key_id};
	status = submit(store, sql_store, 8, params, parse_version_row, cb, arg, err);
out:
	free(access);
	free(refresh);
	return status;
}

job_store_status refresh_lease_release(job_store *store, const char *id, const char *owner,
                                       refresh_lease_cb cb, void *arg, job_store_error *err)
{
	if (!id_valid(id))
		return invalid(err, "authorization id");
	if (!owner_valid(owner))
		return invalid(err, "refresh lease owner");

	const char *params[] = {id, owner};
	return submit(store, sql_release, 2, params, parse_release, cb, arg, err);
}

job_store_status refresh_lease_read(job_store *store, const char *id, refresh_lease_cb cb,
                                    void *arg, job_store_error *err)
{
	if (!id_valid(id))
		return invalid(err, "authorization id");

	const char *params[] = {id};
	return submit(store, sql_read, 1, params, parse_row, cb, arg, err);
}
