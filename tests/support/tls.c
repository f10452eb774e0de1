/*
 * A throwaway certificate authority and a server certificate it signs,
 * generated with OpenSSL's libcrypto. Keys are P-256, which both OpenSSL
 * (libcurl) and GnuTLS (libmicrohttpd) accept and which is fast to make.
 */
#include "support/support.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Certificates outlive any test run but expire soon if a file leaks. */
#define CERT_VALID_SECONDS (24L * 60 * 60)

static const char *const default_names[] = {"localhost", "127.0.0.1", "::1"};

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return false;
	bool ok = X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* Append one DNS name or IP address to NAMES. */
static bool add_general_name(GENERAL_NAMES *names, const char *name)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	if (gn == NULL)
		return false;

	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
	if (ip != NULL) {
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
	} else {
		ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
		if (dns == NULL || !ASN1_STRING_set(dns, name, (int)strlen(name))) {
			ASN1_IA5STRING_free(dns);
			GENERAL_NAME_free(gn);
			return false;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	}
	if (!sk_GENERAL_NAME_push(names, gn)) {
		GENERAL_NAME_free(gn);
		return false;
	}
	return true;
}

static bool add_san(X509 *cert, const char *const *names, size_t count)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	bool ok = gens != NULL;

	for (size_t i = 0; ok && i < sizeof default_names / sizeof default_names[0]; i++)
		ok = add_general_name(gens, default_names[i]);
	for (size_t i = 0; ok && i < count; i++)
		ok = names[i] != NULL && add_general_name(gens, names[i]);
	if (ok)
		ok = X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}

/*
 * Make a certificate for KEY with subject CN, signed by ISSUER_KEY under
 * ISSUER (NULL for a self-signed CA).
 */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
	const char *const *names, size_t count)
{
	X509 *cert = X509_new();
	BIGNUM *serial = BN_new();
	bool ok = cert != NULL && serial != NULL;

	ok = ok && X509_set_version(cert, 2) == 1;
	ok = ok && BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1;
	ok = ok && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) != NULL;
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), -60) != NULL;
	ok = ok && X509_gmtime_adj(X509_getm_notAfter(cert), CERT_VALID_SECONDS) != NULL;
	ok = ok && X509_set_pubkey(cert, key) == 1;

	X509_NAME *subject = ok ? X509_get_subject_name(cert) : NULL;
	ok = ok && X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC, (const unsigned char *)"dcworker tests", -1, -1, 0) == 1;
	ok = ok && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) == 1;
	ok = ok && X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : subject) == 1;

	X509 *signer = issuer != NULL ? issuer : cert;
	ok = ok && add_ext(cert, signer, NID_subject_key_identifier, "hash");
	ok = ok && add_ext(cert, signer, NID_authority_key_identifier, "keyid:always");
	if (issuer == NULL) {
		ok = ok && add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
		ok = ok && add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		ok = ok && add_ext(cert, signer, NID_basic_constraints, "critical,CA:FALSE");
		ok = ok && add_ext(cert, signer, NID_key_usage, "critical,digitalSignature");
		ok = ok && add_ext(cert, signer, NID_ext_key_usage, "serverAuth");
		ok = ok && add_san(cert, names, count);
	}
	ok = ok && X509_sign(cert, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0;

	BN_free(serial);
	if (!ok) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

/* Return the PEM text that WRITE puts into a memory BIO, malloc'd. */
static char *bio_to_string(BIO *bio)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	if (len < 0)
		return NULL;

	char *copy = malloc((size_t)len + 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, data, (size_t)len);
	copy[len] = '\0';
	return copy;
}

static char *cert_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;

	if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
		pem = bio_to_string(bio);
	BIO_free(bio);
	return pem;
}

static char *key_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;

	if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
		pem = bio_to_string(bio);
	BIO_free(bio);
	return pem;
}

/* Write TEXT to DIR/NAME; returns the malloc'd path or NULL. */
static char *write_file(const char *dir, const char *name, const char *text)
{
	char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;

	FILE *f = fopen(path, "w");
	bool ok = f != NULL && fputs(text, f) >= 0;
	if (f != NULL && fclose(f) != 0)
		ok = false;
	if (!ok) {
		fprintf(stderr, "support: cannot write %s\n", path);
		free(path);
		return NULL;
	}
	return path;
}

ts_tls *ts_tls_new(const char *const *names, size_t count)
{
	ts_tls *tls = calloc(1, sizeof *tls);
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *ca = NULL;
	X509 *cert = NULL;
	char *ca_pem = NULL;
	bool ok = false;

	if (tls == NULL || ca_key == NULL || key == NULL)
		goto out;
	ca = make_cert(ca_key, "dcworker test CA", NULL, NULL, NULL, 0);
	if (ca == NULL)
		goto out;
	cert = make_cert(key, "localhost", ca, ca_key, names, count);
	if (cert == NULL)
		goto out;

	ca_pem = cert_pem(ca);
	tls->cert_pem = cert_pem(cert);
	tls->key_pem = key_pem(key);
	if (ca_pem == NULL || tls->cert_pem == NULL || tls->key_pem == NULL)
		goto out;

	tls->dir = ts_tempdir("dctest-tls");
	if (tls->dir == NULL)
		goto out;
	tls->ca_file = write_file(tls->dir, "ca.pem", ca_pem);
	tls->cert_file = write_file(tls->dir, "cert.pem", tls->cert_pem);
	tls->key_file = write_file(tls->dir, "key.pem", tls->key_pem);
	ok = tls->ca_file != NULL && tls->cert_file != NULL && tls->key_file != NULL;

out:
	if (!ok)
		fprintf(stderr, "support: generating the test CA and certificate failed\n");
	free(ca_pem);
	X509_free(cert);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	if (!ok) {
		ts_tls_free(tls);
		return NULL;
	}
	return tls;
}

void ts_tls_free(ts_tls *tls)
{
	if (tls == NULL)
		return;
	ts_rmtree(tls->dir);
	free(tls->dir);
	free(tls->ca_file);
	free(tls->cert_file);
	free(tls->key_file);
	free(tls->cert_pem);
	free(tls->key_pem);
	free(tls);
}
