/*
 * Stored authorizations: the SQL that creates and updates dc_authorizations
 * rows, and the encryption of their token columns.
 */
#include "authorization.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "job_store_conn.h"

/* Largest ciphertext accepted for one column, with room for the header and tag. */
#define AUTHZ_CIPHERTEXT_MAX (TOKEN_CRYPTO_PLAINTEXT_MAX + 64)
/* Room for a column's associated data: "<id>/<column>". */
#define AUTHZ_AAD_MAX (AUTHZ_ID_LEN + 32)

static const char sql_insert[] =
	"INSERT INTO dc_authorizations (id, dns_provider, zone, hosts, token_type, access_token,"
	" refresh_token, token_key_id, expires_at, status, version, refresh_token_used_at)"
	" VALUES ($1::uuid, $2, $3, ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), $5,"
	" $6::bytea, $7::bytea, $9, to_timestamp($8::bigint / 1000.0), 'active', 1, now())";

static const char sql_set_status[] =
	"UPDATE dc_authorizations SET status = $2, updated_at = now() WHERE id = $1::uuid"
	" RETURNING id";

bool authz_new_id(char id[AUTHZ_ID_LEN + 1])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return false;

	/* RFC 9562 version 4: the version nibble is 4 and the variant bits are 10. */
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(id, AUTHZ_ID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
	return true;
}

static size_t aad_of(const char *id, const char *column, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", id, column);

	if (n < 0 || (size_t)n >= size)
		return 0;
	return (size_t)n;
}

common_status authz_encrypt(const token_crypto *crypto, const char *id, const char *column,
                            const char *token, unsigned char **out, size_t *out_len,
                            common_error *err)
{
	char aad[AUTHZ_AAD_MAX];
	size_t aad_len = aad_of(id, column, aad, sizeof(aad));

	if (aad_len == 0 || token == NULL)
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_token",
		                        "authorization id, column or token is missing");
	return token_crypto_encrypt(crypto, token, strlen(token), aad, aad_len, out, out_len, err);
}

common_status authz_decrypt(const token_crypto *crypto, const char *id, const char *column,
                            const unsigned char *data, size_t len, char **out,
                            common_error *err)
{
	char aad[AUTHZ_AAD_MAX];
	size_t aad_len = aad_of(id, column, aad, sizeof(aad));
	size_t plain_len = 0;

	if (aad_len == 0 || data == NULL || len == 0)
		return common_error_set(err, COMMON_ERR_INVALID, "missing_token",
		                        "authorization %s has no %s", id != NULL ? id : "(none)",
		                        column);
	return token_crypto_decrypt(crypto, data, len, aad, aad_len, out, &plain_len, err);
}

/*
 * Formats ciphertext as a bytea literal in hex ("\x0a1b..."), the text form
 * PostgreSQL parses for a bytea parameter. Returns NULL for NULL data, on
 * an oversized input or when out of memory; *failed is true in the last two cases.
 */
static char *bytea_hex(const unsigned char *data, size_t len, bool *failed)
{
	static const char digits[] = "0123456789abcdef";
	char *text;

	*failed = false;
	if (data == NULL)
		return NULL;
	if (len > AUTHZ_CIPHERTEXT_MAX) {
		*failed = true;
		return NULL;
	}
	text = malloc(2 + 2 * len + 1);
	if (text == NULL) {
		*failed = true;
		return NULL;
	}
	text[0] = '\\';
	text[1] = 'x';
	for (size_t i = 0; i < len; i++) {
		text[2 + 2 * i] = digits[data[i] >> 4];
		text[3 + 2 * i] = digits[data[i] & 0x0f];
	}
	text[2 + 2 * len] = '\0';
	return text;
}

/* Reads the key id of a ciphertext, recorded so rows under an old key can be found. */
static bool key_id_of(const unsigned char *data, size_t len, char key_id[TOKEN_CRYPTO_KEY_ID_MAX + 1])
{
	common_error cerr = {0};

	return token_crypto_key_id_of(data, len, key_id, &cerr) == COMMON_OK;
}

static void parse_none(const PGresult *res, job_store_result *result)
{
	(void)res;
	(void)result;
}

static void parse_found(const PGresult *res, job_store_result *result)
{
	if (PQntuples(res) == 0)
		job_store_fail(&result->error, JOB_STORE_ERR_NOT_FOUND, "authorization not found");
}

static bool id_valid(const char *id)
{
	return id != NULL && strlen(id) == AUTHZ_ID_LEN &&
	       strspn(id, "0123456789abcdefABCDEF-") == AUTHZ_ID_LEN;
}

job_store_status authz_insert(job_store *store, const authz_insert_args *args, job_store_cb cb,
                              void *arg, job_store_error *err)
{
	job_store_status status;
	char expires[24];
	char key_id[TOKEN_CRYPTO_KEY_ID_MAX + 1];
	char *access = NULL;
	char *refresh = NULL;
	bool failed_access;
	bool failed_refresh;

	if (args == NULL || !id_valid(args->id) || args->dns_provider == NULL ||
	    args->zone == NULL || args->hosts_json == NULL || args->token_type == NULL ||
	    args->access_token == NULL)
		return job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		                      "authorization id, provider, zone, hosts or token is missing");

	access = bytea_hex(args->access_token, args->access_token_len, &failed_access);
	refresh = bytea_hex(args->refresh_token, args->refresh_token_len, &failed_refresh);
	if (failed_access || failed_refresh) {
		status = job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		                        "token ciphertext is too large or memory ran out");
		goto out;
	}

	if (!key_id_of(args->access_token, args->access_token_len, key_id)) {
		status = job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		                        "the access token is not a token_crypto ciphertext");
		goto out;
	}
	snprintf(expires, sizeof(expires), "%lld", args->expires_at_ms);
	const char *params[] = {args->id,         args->dns_provider, args->zone,
	                        args->hosts_json, args->token_type,   access,
	                        refresh,          expires,            key_id};
	status = job_store_submit(store, sql_insert, 9, params, parse_none, cb, arg, err);
out:
	free(access);
	free(refresh);
	return status;
}

job_store_status authz_set_status(job_store *store, const char *id, const char *status,
                                  job_store_cb cb, void *arg, job_store_error *err)
{
	if (!id_valid(id) || status == NULL || status[0] == '\0')
		return job_store_fail(err, JOB_STORE_ERR_INVALID_ARGUMENT,
		                      "authorization id or status is missing");

	const char *params[] = {id, status};
	return job_store_submit(store, sql_set_status, 2, params, parse_found, cb, arg, err);
}
