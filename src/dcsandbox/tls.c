/* Test CA and server certificate generation with OpenSSL libcrypto. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest PEM file the server reads. */
#define TLS_PEM_MAX (1024 * 1024)
#define TLS_CA_DAYS 3650
#define TLS_SERVER_DAYS 30

void sb_tls_clear(sb_tls *tls)
{
	if (tls == NULL)
		return;
	free(tls->cert_pem);
	free(tls->key_pem);
	free(tls->ca_file);
	memset(tls, 0, sizeof(*tls));
}

static char *read_file(const char *path, sb_error *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		sb_error_set(err, SB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(TLS_PEM_MAX + 1);
	size_t n = buf != NULL ? fread(buf, 1, TLS_PEM_MAX + 1, f) : 0;
	fclose(f);
	if (buf == NULL || n == 0 || n > TLS_PEM_MAX) {
		free(buf);
		sb_error_set(err, SB_ERR_IO, "%s is empty, unreadable or larger than %d bytes", path, TLS_PEM_MAX);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

sb_result sb_tls_load(sb_tls *tls, const char *cert_file, const char *key_file, sb_error *err)
{
	memset(tls, 0, sizeof(*tls));
	tls->cert_pem = read_file(cert_file, err);
	if (tls->cert_pem == NULL)
		return err != NULL ? err->code : SB_ERR_IO;
	tls->key_pem = read_file(key_file, err);
	if (tls->key_pem == NULL) {
		sb_tls_clear(tls);
		return err != NULL ? err->code : SB_ERR_IO;
	}
	return SB_OK;
}

static sb_result tls_fail(sb_error *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char detail[256] = "no detail";
	if (e != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	return sb_error_set(err, SB_ERR_TLS, "%s failed: %s", what, detail);
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return false;
	bool ok = X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* Build a certificate for KEY, signed by ISSUER_KEY (self-signed when ISSUER is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *common_name, X509 *issuer, EVP_PKEY *issuer_key,
	int days, const char *san)
{
	X509 *cert = X509_new();
	if (cert == NULL)
		return NULL;

	unsigned char serial[16];
	BIGNUM *bn = NULL;
	bool ok = X509_set_version(cert, 2) == 1 && RAND_bytes(serial, sizeof(serial)) == 1;
	if (ok) {
		serial[0] &= 0x7f;
		bn = BN_bin2bn(serial, sizeof(serial), NULL);
		ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
	}
	BN_free(bn);

	X509_NAME *name = X509_get_subject_name(cert);
	ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"dcsandbox", -1, -1, 0) == 1;
	ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)common_name, -1, -1, 0) == 1;
	ok = ok && X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name) == 1;
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != NULL;
	ok = ok && X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400) != NULL;
	ok = ok && X509_set_pubkey(cert, key) == 1;

	X509 *ext_issuer = issuer != NULL ? issuer : cert;
	if (issuer == NULL) {
		ok = ok && add_ext(cert, ext_issuer, NID_basic_constraints, "critical,CA:TRUE");
		ok = ok && add_ext(cert, ext_issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		ok = ok && add_ext(cert, ext_issuer, NID_basic_constraints, "critical,CA:FALSE");
		ok = ok && add_ext(cert, ext_issuer, NID_key_usage, "critical,digitalSignature");
		ok = ok && add_ext(cert, ext_issuer, NID_ext_key_usage, "serverAuth");
		ok = ok && add_ext(cert, ext_issuer, NID_subject_alt_name, san);
	}
	ok = ok && add_ext(cert, ext_issuer, NID_subject_key_identifier, "hash");
	ok = ok && X509_sign(cert, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

static bool write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return false;
	}
	bool ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1
			      : PEM_write_X509(f, cert) == 1;
	return fclose(f) == 0 && ok;
}

static char *join_path(const char *dir, const char *file)
{
	size_t len = strlen(dir) + strlen(file) + 2;
	char *path = malloc(len);
	if (path != NULL)
		snprintf(path, len, "%s/%s", dir, file);
	return path;
}

/* Load the CA from STATE_DIR, or create and store a new one. */
static sb_result load_or_create_ca(const char *ca_path, const char *key_path, X509 **ca, EVP_PKEY **ca_key,
	sb_error *err)
{
	FILE *cf = fopen(ca_path, "r");
	FILE *kf = fopen(key_path, "r");
	if (cf != NULL && kf != NULL) {
		*ca = PEM_read_X509(cf, NULL, NULL, NULL);
		*ca_key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
	}
	if (cf != NULL)
		fclose(cf);
	if (kf != NULL)
		fclose(kf);
	if (*ca != NULL && *ca_key != NULL && X509_check_private_key(*ca, *ca_key) == 1)
		return SB_OK;

	X509_free(*ca);
	EVP_PKEY_free(*ca_key);
	*ca = NULL;
	*ca_key = EVP_EC_gen("P-256");
	if (*ca_key == NULL)
		return tls_fail(err, "CA key generation");
	*ca = make_cert(*ca_key, "dcsandbox test CA", NULL, NULL, TLS_CA_DAYS, NULL);
	if (*ca == NULL)
		return tls_fail(err, "CA certificate creation");
	if (!write_pem(key_path, *ca_key, NULL) || !write_pem(ca_path, NULL, *ca))
		return sb_error_set(err, SB_ERR_IO, "cannot write the CA to %s: %s", ca_path, strerror(errno));
	return SB_OK;
}

static char *build_san(const char *const *names, size_t name_count)
{
	size_t len = 64;
	for (size_t i = 0; i < name_count; i++)
		len += strlen(names[i]) + 8;
	char *san = malloc(len);
	if (san == NULL)
		return NULL;
	snprintf(san, len, "DNS:localhost,IP:127.0.0.1,IP:::1");
	for (size_t i = 0; i < name_count; i++) {
		strcat(san, ",DNS:");
		strcat(san, names[i]);
	}
	return san;
}

sb_result sb_tls_generate(sb_tls *tls, const char *state_dir, const char *const *names,
	size_t name_count, sb_error *err)
{
	memset(tls, 0, sizeof(*tls));
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return sb_error_set(err, SB_ERR_IO, "cannot create state folder %s: %s", state_dir, strerror(errno));

	sb_result rc = SB_OK;
	X509 *ca = NULL, *cert = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	char *san = build_san(names, name_count);
	char *ca_path = join_path(state_dir, "ca.pem");
	char *ca_key_path = join_path(state_dir, "ca.key");
	char *cert_path = join_path(state_dir, "server.pem");
	char *key_path = join_path(state_dir, "server.key");
	if (san == NULL || ca_path == NULL || ca_key_path == NULL || cert_path == NULL || key_path == NULL) {
		rc = sb_error_set(err, SB_ERR_NOMEM, "out of memory");
		goto out;
	}

	rc = load_or_create_ca(ca_path, ca_key_path, &ca, &ca_key, err);
	if (rc != SB_OK)
		goto out;

	key = EVP_EC_gen("P-256");
	if (key == NULL) {
		rc = tls_fail(err, "server key generation");
		goto out;
	}
	cert = make_cert(key, name_count > 0 ? names[0] : "localhost", ca, ca_key, TLS_SERVER_DAYS, san);
	if (cert == NULL) {
		rc = tls_fail(err, "server certificate creation");
		goto out;
	}
	if (!write_pem(key_path, key, NULL) || !write_pem(cert_path, NULL, cert)) {
		rc = sb_error_set(err, SB_ERR_IO, "cannot write the server certificate to %s: %s",
			state_dir, strerror(errno));
		goto out;
	}

	rc = sb_tls_load(tls, cert_path, key_path, err);
	if (rc != SB_OK)
		goto out;
	tls->ca_file = ca_path;
	ca_path = NULL;
out:
	X509_free(ca);
	X509_free(cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	free(san);
	free(ca_path);
	free(ca_key_path);
	free(cert_path);
	free(key_path);
	return rc;
}
