/*
 * dc_sign and dc_sync_apply_url: the reference signatures from the
 * compliance vectors, the canonical order of parameters, and the errors.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "vectors.h"

#define SYNC_UX "https://domainconnect.ionos.de/sync"
#define PROVIDER "exampleservice.domainconnect.org"
#define PREFIX SYNC_UX "/v2/domainTemplates/providers/" PROVIDER "/services/template2/apply?"

/* The test key from the vectors, loaded at the start of each test that signs. */
static json_t *vectors;
static const char *private_pem;
static const char *public_pem;

static void load_key(void)
{
	vectors = vectors_load();
	json_t *key = json_object_get(vectors, "signing_key");
	private_pem = vectors_string(key, "private_pem");
	public_pem = vectors_string(key, "public_pem");
}

static void drop_key(void)
{
	json_decref(vectors);
}

/* Verifies a standard base64 RS256 signature of msg with the vectors' public key. */
static bool verify(const char *msg, const char *sig_base64)
{
	unsigned char sig[1024];
	size_t b64_len = strlen(sig_base64);
	int n = EVP_DecodeBlock(sig, (const unsigned char *)sig_base64, (int)b64_len);
	if (n < 0)
		return false;

	/* EVP_DecodeBlock counts padding as data bytes. */
	while (b64_len > 0 && sig_base64[b64_len - 1] == '=') {
		n--;
		b64_len--;
	}

	BIO *bio = BIO_new_mem_buf(public_pem, -1);
	EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	cr_assert_not_null(key);

	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	          EVP_DigestVerify(ctx, sig, (size_t)n, (const unsigned char *)msg, strlen(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ok;
}

static dc_sync_request base_request(void)
{
	dc_sync_request req = {
		.url_sync_ux = SYNC_UX,
		.provider_id = PROVIDER,
		.service_id = "template2",
		.domain = "example.com",
	};
	return req;
}

static void expect_error(const dc_sync_request *req, dc_status status, const char *fragment)
{
	char *url = (char *)"unchanged";
	dc_error err = {0};

	cr_expect_eq(dc_sync_apply_url(req, &url, &err), status, "status %s, message \"%s\"",
	             dc_status_name(err.status), err.message);
	cr_expect_null(url, "no URL may be returned on failure");
	cr_expect_not_null(strstr(err.message, fragment), "message \"%s\" lacks \"%s\"",
	                   err.message, fragment);
}

Test(signing, reference_signature)
{
	load_key();
	json_t *c = vectors_case(vectors, "signing", "sign_query_string_as_given");
	const char *msg = vectors_string(c, "message");
	char *sig = NULL;
	dc_error err = {0};

	cr_assert_eq(dc_sign(private_pem, msg, strlen(msg), &sig, &err), DC_OK, "%s", err.message);
	cr_expect_str_eq(sig, vectors_string(c, "signature_base64"));

	char *encoded = dc_percent_encode(sig);
	cr_expect_str_eq(encoded, vectors_string(c, "signature_percent_encoded"));
	free(encoded);
	free(sig);
	drop_key();
}

Test(signing, reference_sync_url)
{
	load_key();
	json_t *c = vectors_case(vectors, "signing", "sync_apply_url_signed");
	json_t *in = json_object_get(c, "input");
	size_t n_params = 0;
	dc_param *params = vectors_params(json_object_get(in, "params"), &n_params);
	dc_sync_request req = {
		.url_sync_ux = vectors_string(in, "url_sync_ux"),
		.provider_id = vectors_string(in, "provider_id"),
		.service_id = vectors_string(in, "service_id"),
		.domain = vectors_string(in, "domain"),
		.host = vectors_string(in, "host"),
		.params = params,
		.params_count = n_params,
	};
	char *url = NULL;
	dc_error err = {0};

	/* Unsigned, the URL is the prefix alone. */
	cr_assert_eq(dc_sync_apply_url(&req, &url, &err), DC_OK, "%s", err.message);
	cr_expect_str_eq(url, vectors_string(c, "expected_url_prefix"));
	free(url);

	/* Signed, key and then sig follow, with sig last. */
	req.private_key_pem = private_pem;
	req.key_id = vectors_string(in, "key_id");
	cr_assert_eq(dc_sync_apply_url(&req, &url, &err), DC_OK, "%s", err.message);

	char *sig = dc_percent_encode(vectors_string(c, "signature_base64"));
	char want[4096];
	snprintf(want, sizeof(want), "%s&key=%s&sig=%s", vectors_string(c, "expected_url_prefix"),
	         req.key_id, sig);
	cr_expect_str_eq(url, want);
	cr_expect(verify(vectors_string(c, "signed_query"), vectors_string(c, "signature_base64")));
	free(sig);
	free(url);
	free(params);
	drop_key();
}

Test(signing, canonical_order_all_fields)
{
	load_key();
	dc_sync_request req = base_request();
	const dc_param params[] = {{"zeta", "z z"}, {"IP", "1.2.3.4"}, {"a-b", "&=#%\r\n\xc3\xa9"}};
	const char *const groups[] = {"g1", "g2"};
	char *url = NULL;
	dc_error err = {0};

	req.domain = "Example.COM.";
	req.host = "WWW";
	req.params = params;
	req.params_count = 3;
	req.redirect_uri = "https://sp.example/done?x=1";
	req.state = "{s}";
	req.group_ids = groups;
	req.group_ids_count = 2;
	req.provider_name = "Example Co";
	req.service_name = "Site";
	req.instance_id = "i-1";
	req.private_key_pem = private_pem;
	req.key_id = "_dck1";
	cr_assert_eq(dc_sync_apply_url(&req, &url, &err), DC_OK, "%s", err.message);

	/* Sorted by encoded name in byte order: upper case before lower case. */
	const char *canonical = "IP=1.2.3.4&a-b=%26%3D%23%25%0D%0A%C3%A9&domain=example.com"
	                        "&groupId=g1%2Cg2&host=www&instanceId=i-1&providerName=Example%20Co"
	                        "&redirect_uri=https%3A%2F%2Fsp.example%2Fdone%3Fx%3D1"
	                        "&serviceName=Site&state=%7Bs%7D&zeta=z%20z";
	size_t prefix_len = strlen(PREFIX);
	cr_assert_eq(strncmp(url, PREFIX, prefix_len), 0, "url %s", url);
	cr_assert_eq(strncmp(url + prefix_len, canonical, strlen(canonical)), 0, "url %s", url);

	const char *tail = url + prefix_len + strlen(canonical);
	cr_assert_eq(strncmp(tail, "&key=_dck1&sig=", 15), 0, "tail %s", tail);
	cr_expect_null(strchr(tail + 15, '&'), "sig must be the last parameter");

	/* Undo the percent-encoding of the signature, then verify it. */
	char sig[1024];
	size_t n = 0;
	for (const char *p = tail + 15; *p != '\0' && n + 1 < sizeof(sig); p++) {
		if (*p == '%') {
			char hex[3] = {p[1], p[2], '\0'};
			sig[n++] = (char)strtol(hex, NULL, 16);
			p += 2;
		} else {
			sig[n++] = *p;
		}
	}
	sig[n] = '\0';
	cr_expect(verify(canonical, sig), "signature does not verify over the canonical query");
	free(url);
	drop_key();
}

Test(signing, reserved_name_first)
{
	load_key();
	dc_sync_request req = base_request();
	const dc_param params[] = {{"sig", "forged"}};

	/* Reported before the missing urlSyncUX and the bad domain. */
	req.params = params;
	req.params_count = 1;
	req.url_sync_ux = NULL;
	req.domain = "co.uk";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "\"sig\" is reserved");
	drop_key();
}

Test(signing, request_errors)
{
	load_key();
	dc_sync_request req = base_request();
	const char *const bad_group[] = {"g 1"};

	req.url_sync_ux = NULL;
	expect_error(&req, DC_ERR_NOT_SUPPORTED, "urlSyncUX");
	req = base_request();
	req.domain = "www.example.com";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "not a zone");
	req = base_request();
	req.host = "a..b";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "host");
	req = base_request();
	req.service_id = "a/b";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "service id");
	req = base_request();
	req.group_ids = bad_group;
	req.group_ids_count = 1;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "group id");
	req = base_request();
	req.instance_id = "";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "instance id");
	req = base_request();
	req.redirect_uri = "not a uri";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "redirect_uri");
	req = base_request();
	req.state = "\x01";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "state");
	req = base_request();
	req.private_key_pem = private_pem;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "without key_id");
	req.key_id = "bad.key";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "not a DNS label");
	req = base_request();
	req.key_id = "_dck1";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "without a signing key");
	drop_key();
}

Test(signing, bad_keys_rejected)
{
	load_key();
	char *sig = (char *)"unchanged";
	dc_error err = {0};

	cr_expect_eq(dc_sign("not a key", "m", 1, &sig, &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_null(sig);
	cr_expect_not_null(strstr(err.message, "PEM"), "message %s", err.message);

	/* An EC key reads fine but cannot make an RS256 signature. */
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	cr_assert_not_null(ec);
	BIO *bio = BIO_new(BIO_s_mem());
	cr_assert(PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL) == 1);
	char *pem = NULL;
	long len = BIO_get_mem_data(bio, &pem);
	char *ec_pem = strndup(pem, (size_t)len);
	BIO_free(bio);
	EVP_PKEY_free(ec);

	cr_expect_eq(dc_sign(ec_pem, "m", 1, &sig, &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "not an RSA key"), "message %s", err.message);

	/* A signed sync URL reports the same error and builds nothing. */
	dc_sync_request req = base_request();
	req.private_key_pem = ec_pem;
	req.key_id = "_dck1";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "not an RSA key");
	free(ec_pem);
	drop_key();
}

Test(signing, encrypted_key_not_prompted)
{
	load_key();
	BIO *in = BIO_new_mem_buf(private_pem, -1);
	EVP_PKEY *key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	BIO_free(in);
	cr_assert_not_null(key);

	BIO *out = BIO_new(BIO_s_mem());
	cr_assert(PEM_write_bio_PKCS8PrivateKey(out, key, EVP_aes_128_cbc(), NULL, 0, NULL,
	                                        (void *)"pass") == 1);
	char *pem = NULL;
	long len = BIO_get_mem_data(out, &pem);
	char *encrypted = strndup(pem, (size_t)len);
	BIO_free(out);
	EVP_PKEY_free(key);

	char *sig = NULL;
	dc_error err = {0};
	cr_expect_eq(dc_sign(encrypted, "m", 1, &sig, &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "unencrypted"), "message %s", err.message);
	free(encrypted);
	drop_key();
}
