/* Token encryption: round trip, tampering, key rotation, key loading errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/token_crypto.h"

/* Two 32-byte keys in base64 (fixed test values). */
#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEY_B "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

static token_crypto *load(const char *list)
{
	common_error err;
	common_error_clear(&err);
	token_crypto *crypto = token_crypto_new_from_list(list, &err);
	cr_assert_not_null(crypto, "%s", err.message);
	return crypto;
}

static void expect_load_error(const char *list, const char *needle)
{
	common_error err;
	common_error_clear(&err);
	token_crypto *crypto = token_crypto_new_from_list(list, &err);
	cr_assert_null(crypto, "list \"%s\" was accepted", list);
	cr_assert_eq(err.status, COMMON_ERR_INVALID);
	cr_assert_not_null(strstr(err.message, needle), "message \"%s\" lacks \"%s\"", err.message,
	                   needle);
}

static const char token[] = "access-token-0123456789";
static const char aad[] = "auth:42:access";

Test(crypto, round_trip)
{
	token_crypto *crypto = load("k1:" KEY_A);
	unsigned char *ct = NULL;
	size_t ct_len = 0;
	common_error err;
	cr_assert_eq(token_crypto_encrypt(crypto, token, strlen(token), aad, strlen(aad), &ct,
	                                  &ct_len, &err),
	             COMMON_OK);
	cr_assert_eq(ct_len, 2 + 2 + 12 + strlen(token) + 16);
	cr_assert_eq(ct[0], TOKEN_CRYPTO_VERSION);
	cr_assert_eq(ct[1], 2);
	cr_assert_eq(memcmp(ct + 2, "k1", 2), 0);

	char *plain = NULL;
	size_t plain_len = 0;
	cr_assert_eq(token_crypto_decrypt(crypto, ct, ct_len, aad, strlen(aad), &plain, &plain_len,
	                                  &err),
	             COMMON_OK, "%s", err.message);
	cr_assert_str_eq(plain, token);
	cr_assert_eq(plain_len, strlen(token));
	token_crypto_free_plaintext(plain);
	free(ct);
	token_crypto_free(crypto);
}

Test(crypto, no_plaintext_in_ciphertext)
{
	token_crypto *crypto = load("k1:" KEY_A);
	unsigned char *ct1 = NULL, *ct2 = NULL;
	size_t len1 = 0, len2 = 0;
	cr_assert_eq(token_crypto_encrypt(crypto, token, strlen(token), NULL, 0, &ct1, &len1, NULL),
	             COMMON_OK);
	cr_assert_eq(token_crypto_encrypt(crypto, token, strlen(token), NULL, 0, &ct2, &len2, NULL),
	             COMMON_OK);
	cr_assert_null(memmem(ct1, len1, "access-token", 12));
	cr_assert_null(memmem(ct1, len1, "0123", 4));
	cr_assert_neq(memcmp(ct1, ct2, len1), 0, "two encryptions are identical: nonce reused");
	free(ct1);
	free(ct2);
	token_crypto_free(crypto);
}

Test(crypto, empty_plaintext_round_trip)
{
	token_crypto *crypto = load("k1:" KEY_A);
	unsigned char *ct = NULL;
	size_t ct_len = 0;
	cr_assert_eq(token_crypto_encrypt(crypto, "", 0, NULL, 0, &ct, &ct_len, NULL), COMMON_OK);
	char *plain = NULL;
	size_t plain_len = 1;
	cr_assert_eq(token_crypto_decrypt(crypto, ct, ct_len, NULL, 0, &plain, &plain_len, NULL),
	             COMMON_OK);
	cr_assert_eq(plain_len, 0);
	cr_assert_str_eq(plain, "");
	token_crypto_free_plaintext(plain);
	free(ct);
	token_crypto_free(crypto);
}

Test(crypto, tampering_detected)
{
	token_crypto *crypto = load("k1:" KEY_A);
	unsigned char *ct = NULL;
	size_t ct_len = 0;
	cr_assert_eq(token_crypto_encrypt(crypto, token, strlen(token), aad, strlen(aad), &ct,
	                                  &ct_len, NULL),
	             COMMON_OK);

	/* Flip one bit in each byte after the header, one at a time. */
	for (size_t i = 4; i < ct_len; i++) {
		ct[i] ^= 0x01;
		char *plain = NULL;
		size_t plain_len = 0;
		common_error err;
		common_error_clear(&err);
		cr_assert_eq(token_crypto_decrypt(crypto, ct, ct_len, aad, strlen(aad), &plain,
		                                  &plain_len, &err),
		             COMMON_ERR_CRYPTO, "flipped byte %zu was accepted", i);
		cr_assert_str_eq(err.code, "tampered");
		cr_assert_null(plain);
		ct[i] ^= 0x01;
	}

	/* Another row's associated data fails too. */
	char *plain = NULL;
	size_t plain_len = 0;
	cr_assert_eq(token_crypto_decrypt(crypto, ct, ct_len, "auth:43:access", 14, &plain,
	                                  &plain_len, NULL),
	             COMMON_ERR_CRYPTO);

	/* So does a truncated ciphertext and a wrong version byte. */
	cr_assert_eq(token_crypto_decrypt(crypto, ct, 20, aad, strlen(aad), &plain, &plain_len,
	                                  NULL),
	             COMMON_ERR_CRYPTO);
	ct[0] = 9;
	cr_assert_eq(token_crypto_decrypt(crypto, ct, ct_len, aad, strlen(aad), &plain, &plain_len,
	                                  NULL),
	             COMMON_ERR_CRYPTO);
	free(ct);
	token_crypto_free(crypto);
}

Test(crypto, key_rotation_decrypts_old)
{
	token_crypto *old = load("k1:" KEY_A);
	unsigned char *ct = NULL;
	size_t ct_len = 0;
	cr_assert_eq(token_crypto_encrypt(old, token, strlen(token), NULL, 0, &ct, &ct_len, NULL),
	             COMMON_OK);

	token_crypto *rotated = load("k2:" KEY_B ", k1:" KEY_A);
	cr_assert_str_eq(token_crypto_current_key_id(rotated), "k2");
	char *plain = NULL;
	size_t plain_len = 0;
	cr_assert_eq(token_crypto_decrypt(rotated, ct, ct_len, NULL, 0, &plain, &plain_len, NULL),
	             COMMON_OK);
	cr_assert_str_eq(plain, token);
	token_crypto_free_plaintext(plain);

	unsigned char *ct2 = NULL;
	size_t ct2_len = 0;
	cr_assert_eq(token_crypto_encrypt(rotated, token, strlen(token), NULL, 0, &ct2, &ct2_len,
	                                  NULL),
	             COMMON_OK);
	char id[TOKEN_CRYPTO_KEY_ID_MAX + 1];
	cr_assert_eq(token_crypto_key_id_of(ct2, ct2_len, id, NULL), COMMON_OK);
	cr_assert_str_eq(id, "k2");
	free(ct);
	free(ct2);
	token_crypto_free(old);
	token_crypto_free(rotated);
}

Test(crypto, missing_key_named)
{
	token_crypto *a = load("k1:" KEY_A);
	token_crypto *b = load("k2:" KEY_B);
	unsigned char *ct = NULL;
	size_t ct_len = 0;
	cr_assert_eq(token_crypto_encrypt(a, token, strlen(token), NULL, 0, &ct, &ct_len, NULL),
	             COMMON_OK);
	char *plain = NULL;
	size_t plain_len = 0;
	common_error err;
	cr_assert_eq(token_crypto_decrypt(b, ct, ct_len, NULL, 0, &plain, &plain_len, &err),
	             COMMON_ERR_CRYPTO);
	cr_assert_str_eq(err.code, "unknown_key");
	cr_assert_not_null(strstr(err.message, "\"k1\""), "%s", err.message);
	free(ct);
	token_crypto_free(a);
	token_crypto_free(b);
}

Test(crypto, same_id_wrong_key_fails)
{
	token_crypto *a = load("k1:" KEY_A);
	token_crypto *b = load("k1:" KEY_B);
	unsigned char *ct = NULL;
	size_t ct_len = 0;
	cr_assert_eq(token_crypto_encrypt(a, token, strlen(token), NULL, 0, &ct, &ct_len, NULL),
	             COMMON_OK);
	char *plain = NULL;
	size_t plain_len = 0;
	common_error err;
	cr_assert_eq(token_crypto_decrypt(b, ct, ct_len, NULL, 0, &plain, &plain_len, &err),
	             COMMON_ERR_CRYPTO);
	cr_assert_str_eq(err.code, "tampered");
	free(ct);
	token_crypto_free(a);
	token_crypto_free(b);
}

Test(crypto, bad_key_lists_rejected)
{
	expect_load_error("", "holds no key");
	expect_load_error(" , ", "holds no key");
	expect_load_error("k1", "expected id:base64key");
	expect_load_error(":" KEY_A, "key id \"\" is invalid");
	expect_load_error("k 1:" KEY_A, "is invalid");
	expect_load_error("k1:AAEC", "is not 32 bytes");
	expect_load_error("k1:!!!!" KEY_A, "is not 32 bytes");
	expect_load_error("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", "is not 32 bytes");
	expect_load_error("k1:" KEY_A ",k1:" KEY_B, "appears twice");
}

Test(crypto, key_error_hides_key)
{
	common_error err;
	token_crypto *crypto = token_crypto_new_from_list("k1:c2VjcmV0LWtleS1tYXRlcmlhbA==", &err);
	cr_assert_null(crypto);
	cr_assert_null(strstr(err.message, "c2VjcmV0"), "%s", err.message);
}

static char *write_key_file(const char *text, mode_t mode)
{
	char *path = strdup("/tmp/dc-keys.XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

Test(crypto, key_file_loads)
{
	char *path = write_key_file("# rotated 2026\n\nk2:" KEY_B "\n k1:" KEY_A " \n", 0600);
	common_error err;
	token_crypto *crypto = token_crypto_new_from_file(path, &err);
	cr_assert_not_null(crypto, "%s", err.message);
	cr_assert_str_eq(token_crypto_current_key_id(crypto), "k2");
	token_crypto_free(crypto);
	unlink(path);
	free(path);
}

Test(crypto, key_file_errors)
{
	common_error err;
	char *open_path = write_key_file("k1:" KEY_A "\n", 0644);
	cr_assert_null(token_crypto_new_from_file(open_path, &err));
	cr_assert_str_eq(err.code, "insecure_key_file");
	cr_assert_not_null(strstr(err.message, "chmod 600"), "%s", err.message);

	char *bad_path = write_key_file("k1:" KEY_A "\nk2:short\n", 0600);
	cr_assert_null(token_crypto_new_from_file(bad_path, &err));
	char where[300];
	snprintf(where, sizeof(where), "%s:2", bad_path);
	cr_assert_not_null(strstr(err.message, where), "%s", err.message);

	char *empty_path = write_key_file("# nothing\n", 0600);
	cr_assert_null(token_crypto_new_from_file(empty_path, &err));
	cr_assert_str_eq(err.code, "missing_key");

	cr_assert_null(token_crypto_new_from_file("/nonexistent/keys", &err));
	cr_assert_eq(err.status, COMMON_ERR_IO);

	unlink(open_path);
	unlink(bad_path);
	unlink(empty_path);
	free(open_path);
	free(bad_path);
	free(empty_path);
}

Test(crypto, env_preferred_over_file)
{
	common_error err;
	unsetenv(TOKEN_CRYPTO_KEYS_ENV);
	cr_assert_null(token_crypto_new_from_env_or_file(NULL, &err));
	cr_assert_str_eq(err.code, "missing_key");
	cr_assert_not_null(strstr(err.message, TOKEN_CRYPTO_KEYS_ENV));

	setenv(TOKEN_CRYPTO_KEYS_ENV, "envkey:" KEY_A, 1);
	token_crypto *crypto = token_crypto_new_from_env_or_file("/nonexistent/keys", &err);
	cr_assert_not_null(crypto, "%s", err.message);
	cr_assert_str_eq(token_crypto_current_key_id(crypto), "envkey");
	token_crypto_free(crypto);
	unsetenv(TOKEN_CRYPTO_KEYS_ENV);
}
