/*
 * Stored OAuth authorizations (dc_authorizations): creating one after a code
 * exchange, marking one as needing the owner's consent again, and the
 * encryption of the token columns with token_crypto. Refreshed tokens are
 * stored through refresh_lease.h, fenced on the refresh lease and the
 * version.
 *
 * The SQL runs through the job store's connection pool (job_store_submit),
 * so the callback contract is the job store's: a call that fails before
 * queueing returns the error and never calls its callback; otherwise the
 * callback runs exactly once.
 *
 * Every token column is encrypted with the authorization id and the column
 * name as associated data ("<id>/access_token"), so a ciphertext copied to
 * another row or column does not decrypt.
 */
#ifndef DCWORKER_AUTHORIZATION_H
#define DCWORKER_AUTHORIZATION_H

#include <stddef.h>

#include "common_error.h"
#include "job_store.h"
#include "token_crypto.h"

/* Length of an authorization id: a UUID in its 36-character text form. */
#define AUTHZ_ID_LEN 36

/* Column names, also part of each ciphertext's associated data. */
#define AUTHZ_ACCESS_TOKEN "access_token"
#define AUTHZ_REFRESH_TOKEN "refresh_token"

/* What authz_insert stores. Token fields are ciphertext from authz_encrypt. */
typedef struct authz_insert_args {
	const char *id;              /* from authz_new_id */
	const char *dns_provider;    /* [provider.NAME] of the config */
	const char *zone;
	const char *hosts_json;      /* JSON array of consented hosts, "" for the apex */
	const char *token_type;
	const unsigned char *access_token;
	size_t access_token_len;
	const unsigned char *refresh_token; /* may be NULL */
	size_t refresh_token_len;
	long long expires_at_ms;     /* access token expiry, Unix time in ms */
	const char *job_id;          /* the exchange_code job that created it */
} authz_insert_args;

/* Writes a new random (version 4) UUID into ID. Returns false when getrandom fails. */
bool authz_new_id(char id[AUTHZ_ID_LEN + 1]);

/*
 * Encrypts TOKEN for column COLUMN of authorization ID. *OUT is malloc'd
 * ciphertext of *OUT_LEN bytes.
 */
common_status authz_encrypt(const token_crypto *crypto, const char *id, const char *column,
                            const char *token, unsigned char **out, size_t *out_len,
                            common_error *err);

/*
 * Decrypts column COLUMN of authorization ID. *OUT is the plaintext; free
 * it with token_crypto_free_plaintext.
 */
common_status authz_decrypt(const token_crypto *crypto, const char *id, const char *column,
                            const unsigned char *data, size_t len, char **out,
                            common_error *err);

/* Inserts an active authorization. The callback's result carries no extra field. */
job_store_status authz_insert(job_store *store, const authz_insert_args *args, job_store_cb cb,
                              void *arg, job_store_error *err);

/* Sets the status of authorization ID (e.g. "reauthorization_required"). */
job_store_status authz_set_status(job_store *store, const char *id, const char *status,
                                  job_store_cb cb, void *arg, job_store_error *err);

#endif
