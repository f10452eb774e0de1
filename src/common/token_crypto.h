/*
 * Encryption of OAuth tokens at rest with AES-256-GCM (OpenSSL EVP).
 *
 * Ciphertext layout (stored as bytea):
 *   byte 0         format version, TOKEN_CRYPTO_VERSION
 *   byte 1         key id length n (1..TOKEN_CRYPTO_KEY_ID_MAX)
 *   bytes 2..n+1   key id (ASCII [A-Za-z0-9_.-])
 *   12 bytes       random nonce
 *   ...            ciphertext, as long as the plaintext
 *   16 bytes       GCM tag
 * The version byte, key id and the caller's associated data (for example
 * the authorization id and column name) are authenticated, so a ciphertext
 * moved to another row or column fails to decrypt.
 *
 * Keys come from the environment, DCWORKER_TOKEN_KEYS="id1:base64,id2:base64",
 * or from a key file with one "id:base64" per line ('#' starts a comment).
 * Every key is 32 bytes. The first key encrypts; all keys decrypt, so keys
 * can be rotated by putting a new key first and keeping the old ones until
 * every row was rewritten. Key material is wiped with OPENSSL_cleanse.
 */
#ifndef DC_COMMON_TOKEN_CRYPTO_H
#define DC_COMMON_TOKEN_CRYPTO_H

#include <stddef.h>

#include "common_error.h"

#define TOKEN_CRYPTO_VERSION 1
#define TOKEN_CRYPTO_KEY_ID_MAX 32
#define TOKEN_CRYPTO_KEY_BYTES 32
#define TOKEN_CRYPTO_NONCE_BYTES 12
#define TOKEN_CRYPTO_TAG_BYTES 16
/* Keys accepted in one key list. */
#define TOKEN_CRYPTO_KEYS_MAX 16
/* Largest plaintext accepted; tokens are far smaller. */
#define TOKEN_CRYPTO_PLAINTEXT_MAX 16384
/* Name of the environment variable holding the key list. */
#define TOKEN_CRYPTO_KEYS_ENV "DCWORKER_TOKEN_KEYS"

typedef struct token_crypto token_crypto;

/*
 * Parses a key list "id:base64[,id:base64...]" (the first key encrypts).
 * Returns NULL and fills err on a malformed list, a bad key id, a key that
 * does not decode to 32 bytes or a repeated id. The message never contains
 * key material.
 */
token_crypto *token_crypto_new_from_list(const char *list, common_error *err);

/*
 * Reads a key file: one "id:base64" per line, blank lines and lines
 * starting with '#' ignored, the first key encrypts. The file must not be
 * readable or writable by group or others. Returns NULL and fills err.
 */
token_crypto *token_crypto_new_from_file(const char *path, common_error *err);

/*
 * Loads keys from DCWORKER_TOKEN_KEYS when it is set, else from key_file
 * when it is not NULL. Returns NULL and fills err when neither gives keys,
 * naming both ways to provide them.
 */
token_crypto *token_crypto_new_from_env_or_file(const char *key_file, common_error *err);

/* Wipes all key material and frees. Accepts NULL. */
void token_crypto_free(token_crypto *crypto);

/* Returns the id of the key that encrypts. */
const char *token_crypto_current_key_id(const token_crypto *crypto);

/*
 * Encrypts plaintext (len bytes, at most TOKEN_CRYPTO_PLAINTEXT_MAX) with
 * the first key, binding aad (may be NULL with aad_len 0). *out is malloc'd
 * and *out_len set on success.
 */
common_status token_crypto_encrypt(const token_crypto *crypto, const void *plaintext, size_t len,
                                   const void *aad, size_t aad_len, unsigned char **out,
                                   size_t *out_len, common_error *err);

/*
 * Decrypts a ciphertext made by token_crypto_encrypt with the same aad.
 * *out is a malloc'd NUL-terminated copy of the plaintext (free it with
 * token_crypto_free_plaintext) and *out_len its length. Returns
 * COMMON_ERR_CRYPTO naming the key id when no loaded key has that id, and
 * COMMON_ERR_CRYPTO when the data was altered or the aad differs.
 */
common_status token_crypto_decrypt(const token_crypto *crypto, const unsigned char *data,
                                   size_t len, const void *aad, size_t aad_len, char **out,
                                   size_t *out_len, common_error *err);

/*
 * Copies the key id of a ciphertext into id (TOKEN_CRYPTO_KEY_ID_MAX + 1
 * bytes), so callers can find rows encrypted under an old key.
 */
common_status token_crypto_key_id_of(const unsigned char *data, size_t len, char *id,
                                     common_error *err);

/* Wipes and frees a plaintext returned by token_crypto_decrypt. Accepts NULL. */
void token_crypto_free_plaintext(char *plaintext);

#endif /* DC_COMMON_TOKEN_CRYPTO_H */
