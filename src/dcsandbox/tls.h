/*
 * The server's TLS material: a certificate and key given by flags, or a test
 * CA and a server certificate generated with OpenSSL and written to a state
 * folder. The CA is reused across runs when its files exist, so a client
 * that trusts it once keeps trusting the sandbox.
 */
#ifndef DC_SANDBOX_TLS_H
#define DC_SANDBOX_TLS_H

#include "sandbox.h"

#include <stddef.h>

/* PEM material for the HTTPS server. */
typedef struct sb_tls {
	char *cert_pem; /* server certificate (and chain) */
	char *key_pem;  /* server private key */
	char *ca_file;  /* path of the CA certificate clients should trust; NULL when given by flags */
} sb_tls;

/*
 * Read CERT_FILE and KEY_FILE into TLS. Returns SB_OK or SB_ERR_TLS/SB_ERR_IO.
 */
sb_result sb_tls_load(sb_tls *tls, const char *cert_file, const char *key_file, sb_error *err);

/*
 * Generate (or reuse) STATE_DIR/ca.pem and ca.key, then issue a fresh server
 * certificate valid for 30 days with subjectAltName localhost, 127.0.0.1,
 * ::1 and NAMES, written to STATE_DIR/server.pem and server.key. Keys are
 * ECDSA P-256. STATE_DIR is created (mode 0700) when missing. Returns
 * SB_OK or SB_ERR_TLS/SB_ERR_IO.
 */
sb_result sb_tls_generate(sb_tls *tls, const char *state_dir, const char *const *names,
	size_t name_count, sb_error *err);

/* Free the strings in TLS. Accepts NULL. */
void sb_tls_clear(sb_tls *tls);

#endif
