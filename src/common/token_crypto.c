/* AES-256-GCM encryption of tokens at rest; the layout is in token_crypto.h. */
#include "token_crypto.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Base64 text of a 32-byte key is 44 characters; allow some slack for whitespace. */
#define KEY_BASE64_MAX 64

typedef struct crypto_key {
	char id[TOKEN_CRYPTO_KEY_ID_MAX + 1];
	unsigned char bytes[TOKEN_CRYPTO_KEY_BYTES];
} crypto_key;

struct token_crypto {
	crypto_key keys[TOKEN_CRYPTO_KEYS_MAX];
	size_t count;
};

static bool valid_key_id(const char *id, size_t len)
{
	if (len == 0 || len > TOKEN_CRYPTO_KEY_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

/*
 * Adds one "id:base64" entry to crypto. where names the source for
 * messages ("DCWORKER_TOKEN_KEYS entry 2", "keys.txt:3").
 */
static common_status add_key(token_crypto *crypto, char *entry, const char *where,
                             common_error *err)
{
	char *colon = strchr(entry, ':');
	if (colon == NULL)
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_key",
		                        "%s: expected id:base64key (a key id, a colon, then 32 "
		                        "bytes in base64)",
		                        where);
	*colon = '\0';
	char *id = trim(entry);
	char *b64 = trim(colon + 1);

	char quoted[80];
	if (!valid_key_id(id, strlen(id)))
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_key",
		                        "%s: key id \"%s\" is invalid; use 1 to %d of A-Z a-z 0-9 _ . -",
		                        where, common_quote(id, 32, quoted, sizeof(quoted)),
		                        TOKEN_CRYPTO_KEY_ID_MAX);
	for (size_t i = 0; i < crypto->count; i++) {
		if (strcmp(crypto->keys[i].id, id) == 0)
			return common_error_set(err, COMMON_ERR_INVALID, "invalid_key",
			                        "%s: key id \"%s\" appears twice; give every key its "
			                        "own id",
			                        where, id);
	}
	if (crypto->count == TOKEN_CRYPTO_KEYS_MAX)
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_key",
		                        "%s: more than %d keys; drop keys no row uses any more",
		                        where, TOKEN_CRYPTO_KEYS_MAX);

	/* Decode; EVP_DecodeBlock counts padding as zero bytes, so subtract it. */
	size_t b64_len = strlen(b64);
	unsigned char decoded[KEY_BASE64_MAX];
	int n = -1;
	if (b64_len > 0 && b64_len <= KEY_BASE64_MAX && b64_len % 4 == 0)
		n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)b64_len);
	if (n >= 0) {
		if (b64[b64_len - 1] == '=')
			n--;
		if (b64_len > 1 && b64[b64_len - 2] == '=')
			n--;
	}
	common_status status = COMMON_OK;
	if (n != TOKEN_CRYPTO_KEY_BYTES) {
		status = common_error_set(err, COMMON_ERR_INVALID, "invalid_key",
		                          "%s: key \"%s\" is not %d bytes of base64; generate one "
		                          "with: openssl rand -base64 32",
		                          where, id, TOKEN_CRYPTO_KEY_BYTES);
		goto out;
	}

	crypto_key *key = &crypto->keys[crypto->count++];
	snprintf(key->id, sizeof(key->id), "%s", id);
	memcpy(key->bytes, decoded, TOKEN_CRYPTO_KEY_BYTES);

out:
	OPENSSL_cleanse(decoded, sizeof(decoded));
	OPENSSL_cleanse(b64, b64_len);
	return status;
}

static token_crypto *crypto_alloc(common_error *err)
{
	token_crypto *crypto = OPENSSL_zalloc(sizeof(*crypto));
	if (crypto == NULL)
		common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory loading token keys");
	return crypto;
}

void token_crypto_free(token_crypto *crypto)
{
	if (crypto == NULL)
		return;
	OPENSSL_cleanse(crypto, sizeof(*crypto));
	OPENSSL_free(crypto);
}

token_crypto *token_crypto_new_from_list(const char *list, common_error *err)
{
	token_crypto *crypto = crypto_alloc(err);
	if (crypto == NULL)
		return NULL;
	char *copy = strdup(list != NULL ? list : "");
	size_t copy_len = copy != NULL ? strlen(copy) : 0;
	bool ok = false;
	if (copy == NULL) {
		common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory loading token keys");
		goto out;
	}

	int index = 0;
	char *save = NULL;
	for (char *entry = strtok_r(copy, ",", &save); entry != NULL;
	     entry = strtok_r(NULL, ",", &save)) {
		index++;
		if (*trim(entry) == '\0')
			continue;
		char where[64];
		snprintf(where, sizeof(where), "%s entry %d", TOKEN_CRYPTO_KEYS_ENV, index);
		if (add_key(crypto, entry, where, err) != COMMON_OK)
			goto out;
	}
	if (crypto->count == 0) {
		common_error_set(err, COMMON_ERR_INVALID, "missing_key",
		                 "%s holds no key; set it to id:base64key with a 32-byte key",
		                 TOKEN_CRYPTO_KEYS_ENV);
		goto out;
	}
	ok = true;

out:
	if (copy != NULL) {
		OPENSSL_cleanse(copy, copy_len);
		free(copy);
	}
	if (!ok) {
		token_crypto_free(crypto);
		return NULL;
	}
	return crypto;
}

token_crypto *token_crypto_new_from_file(const char *path, common_error *err)
{
	FILE *file = fopen(path, "re");
	if (file == NULL) {
		common_error_set(err, COMMON_ERR_IO, "missing_key", "cannot open token key file %s: %s",
		                 path, strerror(errno));
		return NULL;
	}

	token_crypto *crypto = NULL;
	char *line = NULL;
	size_t line_cap = 0;
	bool ok = false;

	struct stat st;
	if (fstat(fileno(file), &st) != 0) {
		common_error_set(err, COMMON_ERR_IO, "missing_key", "cannot stat token key file %s: %s",
		                 path, strerror(errno));
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		common_error_set(err, COMMON_ERR_INVALID, "insecure_key_file",
		                 "token key file %s has mode %04o, open to group or others; run "
		                 "chmod 600 %s",
		                 path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}

	crypto = crypto_alloc(err);
	if (crypto == NULL)
		goto out;

	int lineno = 0;
	while (getline(&line, &line_cap, file) >= 0) {
		lineno++;
		char *entry = trim(line);
		if (*entry == '\0' || *entry == '#')
			continue;
		char where[300];
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (add_key(crypto, entry, where, err) != COMMON_OK)
			goto out;
	}
	if (crypto->count == 0) {
		common_error_set(err, COMMON_ERR_INVALID, "missing_key",
		                 "token key file %s holds no key; add a line id:base64key with a "
		                 "32-byte key",
		                 path);
		goto out;
	}
	ok = true;

out:
	if (line != NULL) {
		OPENSSL_cleanse(line, line_cap);
		free(line);
	}
	fclose(file);
	if (!ok) {
		token_crypto_free(crypto);
		return NULL;
	}
	return crypto;
}

token_crypto *token_crypto_new_from_env_or_file(const char *key_file, common_error *err)
{
	const char *list = getenv(TOKEN_CRYPTO_KEYS_ENV);
	if (list != NULL && *list != '\0')
		return token_crypto_new_from_list(list, err);
	if (key_file != NULL && *key_file != '\0')
		return token_crypto_new_from_file(key_file, err);
	common_error_set(err, COMMON_ERR_INVALID, "missing_key",
	                 "no token encryption key: set %s=id:base64key or token_key_file in "
	                 "[worker] (generate a key with: openssl rand -base64 32)",
	                 TOKEN_CRYPTO_KEYS_ENV);
	return NULL;
}

const char *token_crypto_current_key_id(const token_crypto *crypto)
{
	return crypto->keys[0].id;
}

/* Runs AES-256-GCM in one direction; tag is written on encrypt and checked on decrypt. */
static bool gcm_run(bool encrypt, const unsigned char *key, const unsigned char *nonce,
                    const unsigned char *header, size_t header_len, const void *aad,
                    size_t aad_len, const unsigned char *in, size_t len, unsigned char *out,
                    unsigned char *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return false;

	bool ok = false;
	int n = 0;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt ? 1 : 0) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, TOKEN_CRYPTO_NONCE_BYTES, NULL) != 1)
		goto out;
	if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, -1) != 1)
		goto out;
	if (EVP_CipherUpdate(ctx, NULL, &n, header, (int)header_len) != 1)
		goto out;
	if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	if (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto out;
	if (!encrypt &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TOKEN_CRYPTO_TAG_BYTES, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1)
		goto out;
	if (encrypt &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TOKEN_CRYPTO_TAG_BYTES, tag) != 1)
		goto out;
	ok = true;

out:
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

common_status token_crypto_encrypt(const token_crypto *crypto, const void *plaintext, size_t len,
                                   const void *aad, size_t aad_len, unsigned char **out,
                                   size_t *out_len, common_error *err)
{
	if (len > TOKEN_CRYPTO_PLAINTEXT_MAX || aad_len > TOKEN_CRYPTO_PLAINTEXT_MAX)
		return common_error_set(err, COMMON_ERR_INVALID, "", "token of %zu bytes is over the "
		                        "%d-byte limit", len, TOKEN_CRYPTO_PLAINTEXT_MAX);

	const crypto_key *key = &crypto->keys[0];
	size_t id_len = strlen(key->id);
	size_t header_len = 2 + id_len;
	size_t total = header_len + TOKEN_CRYPTO_NONCE_BYTES + len + TOKEN_CRYPTO_TAG_BYTES;
	unsigned char *buf = malloc(total);
	if (buf == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory encrypting a token");

	buf[0] = TOKEN_CRYPTO_VERSION;
	buf[1] = (unsigned char)id_len;
	memcpy(buf + 2, key->id, id_len);
	unsigned char *nonce = buf + header_len;
	unsigned char *body = nonce + TOKEN_CRYPTO_NONCE_BYTES;
	unsigned char *tag = body + len;

	if (RAND_bytes(nonce, TOKEN_CRYPTO_NONCE_BYTES) != 1 ||
	    !gcm_run(true, key->bytes, nonce, buf, header_len, aad, aad_len, plaintext, len, body,
	             tag)) {
		free(buf);
		return common_error_set(err, COMMON_ERR_CRYPTO, "", "AES-256-GCM encryption failed");
	}

	*out = buf;
	*out_len = total;
	return COMMON_OK;
}

/* Validates the header of data; sets *id_len. */
static common_status parse_header(const unsigned char *data, size_t len, size_t *id_len,
                                  common_error *err)
{
	if (len < 2 || data[0] != TOKEN_CRYPTO_VERSION)
		return common_error_set(err, COMMON_ERR_CRYPTO, "",
		                        "token ciphertext has an unknown format (version byte %d, "
		                        "expected %d)",
		                        len > 0 ? data[0] : -1, TOKEN_CRYPTO_VERSION);
	size_t n = data[1];
	if (!valid_key_id((const char *)data + 2, n > len - 2 ? 0 : n) ||
	    len < 2 + n + TOKEN_CRYPTO_NONCE_BYTES + TOKEN_CRYPTO_TAG_BYTES)
		return common_error_set(err, COMMON_ERR_CRYPTO, "", "token ciphertext is truncated or "
		                        "has an invalid key id");
	*id_len = n;
	return COMMON_OK;
}

common_status token_crypto_key_id_of(const unsigned char *data, size_t len, char *id,
                                     common_error *err)
{
	size_t id_len = 0;
	common_status status = parse_header(data, len, &id_len, err);
	if (status != COMMON_OK)
		return status;
	memcpy(id, data + 2, id_len);
	id[id_len] = '\0';
	return COMMON_OK;
}

common_status token_crypto_decrypt(const token_crypto *crypto, const unsigned char *data,
                                   size_t len, const void *aad, size_t aad_len, char **out,
                                   size_t *out_len, common_error *err)
{
	char id[TOKEN_CRYPTO_KEY_ID_MAX + 1];
	common_status status = token_crypto_key_id_of(data, len, id, err);
	if (status != COMMON_OK)
		return status;

	const crypto_key *key = NULL;
	for (size_t i = 0; i < crypto->count; i++) {
		if (strcmp(crypto->keys[i].id, id) == 0)
			key = &crypto->keys[i];
	}
	if (key == NULL)
		return common_error_set(err, COMMON_ERR_CRYPTO, "unknown_key",
		                        "token was encrypted with key \"%s\", which is not loaded; add "
		                        "it to %s or the key file",
		                        id, TOKEN_CRYPTO_KEYS_ENV);

	size_t header_len = 2 + strlen(id);
	const unsigned char *nonce = data + header_len;
	const unsigned char *body = nonce + TOKEN_CRYPTO_NONCE_BYTES;
	size_t body_len = len - header_len - TOKEN_CRYPTO_NONCE_BYTES - TOKEN_CRYPTO_TAG_BYTES;
	unsigned char tag[TOKEN_CRYPTO_TAG_BYTES];
	memcpy(tag, body + body_len, sizeof(tag));

	/* One spare byte for the NUL and for EVP_CipherFinal_ex, which writes nothing for GCM. */
	unsigned char *plain = malloc(body_len + 1);
	if (plain == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory decrypting a token");
	if (!gcm_run(false, key->bytes, nonce, data, header_len, aad, aad_len, body, body_len, plain,
	             tag)) {
		OPENSSL_cleanse(plain, body_len + 1);
		free(plain);
		return common_error_set(err, COMMON_ERR_CRYPTO, "tampered",
		                        "token ciphertext under key \"%s\" failed authentication: it "
		                        "was altered or belongs to another row",
		                        id);
	}

	plain[body_len] = '\0';
	*out = (char *)plain;
	*out_len = body_len;
	return COMMON_OK;
}

void token_crypto_free_plaintext(char *plaintext)
{
	if (plaintext == NULL)
		return;
	OPENSSL_cleanse(plaintext, strlen(plaintext));
	free(plaintext);
}
