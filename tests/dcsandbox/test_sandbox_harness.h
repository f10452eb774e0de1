/*
 * Test harness for dcsandbox. It writes a config and two small templates to
 * a temporary folder and starts the real dcsandbox binary as a child process
 * on an ephemeral loopback port. Requests go over HTTPS with libcurl, which
 * verifies the generated CA and pins provider host names to 127.0.0.1.
 */
#ifndef DC_TESTS_SANDBOX_HARNESS_H
#define DC_TESTS_SANDBOX_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Hosts, ids and credentials of the default config. */
#define SBH_ALPHA_HOST "api.alpha.sandbox.test"
#define SBH_BETA_HOST "api.beta.sandbox.test"
#define SBH_ALPHA_ID "alpha.sandbox.test"
#define SBH_BETA_ID "beta.sandbox.test"
#define SBH_ZONE "shop.sandbox.test"
#define SBH_CLIENT "exampleservice.test"
#define SBH_SECRET "harness-client-secret"
#define SBH_REDIRECT "https://app.sandbox.test/callback"
#define SBH_TPL_PROVIDER "exampleservice.test"

typedef struct sbh {
	pid_t pid;
	int port;
	char *dir;       /* temporary folder: config, templates, state, log */
	char *ca_file;
	char *log_path;
	char *templates; /* the harness's templates folder */
} sbh;

typedef struct sbh_resp {
	long status;      /* 0 when the transfer failed */
	int curl_code;    /* CURLcode of the transfer */
	char *body;       /* NUL-terminated, never NULL after sbh_request */
	size_t body_len;
	char *location;
	char *content_type;
	char *retry_after;
	char *www_authenticate;
	double seconds;   /* total transfer time */
} sbh_resp;

/*
 * Return the default config: providers alpha (plain) and beta (every quirk
 * on, refresh tokens not rotated), each hosting SBH_ZONE with an A record at the apex and a CNAME at
 * www, client SBH_CLIENT registered with SBH_REDIRECT. TEMPLATES is the
 * folder both providers load.
 */
json_t *sbh_default_config(const char *templates);

/* Create the temporary folder and the harness templates; config not yet written. */
sbh *sbh_new(void);

/*
 * Write CONFIG (reference kept by the caller) and start dcsandbox with
 * ARGS added. Returns false (and prints the log) when it does not become
 * ready within 10 s.
 */
bool sbh_start(sbh *h, const json_t *config, const char *const *args, size_t count);

/* Start with the default config and ARGS. Returns NULL on failure. */
sbh *sbh_start_default(const char *const *args, size_t count);

/* Send SIGTERM, wait for the exit and return the wait status (-1 on timeout). */
int sbh_stop_process(sbh *h);

/*
 * Stop the child if it runs (SIGTERM), fail the test when its log shows a
 * sanitizer report, and remove the folder. Accepts NULL.
 */
void sbh_free(sbh *h);

/*
 * Send METHOD https://HOST:port PATH (with query) to the sandbox. BEARER,
 * CONTENT_TYPE and BODY may be NULL. Redirects are not followed.
 */
void sbh_request(sbh *h, const char *method, const char *host, const char *path, const char *bearer,
	const char *content_type, const char *body, sbh_resp *out);

/* Free what a response holds. */
void sbh_resp_clear(sbh_resp *r);

/* Return the value of NAME in the query of URL (malloc'd, percent-decoded), or NULL. */
char *sbh_query_value(const char *url, const char *name);

/*
 * Run consent (auto-approve must be on for HOST's provider), exchange the
 * code and return the token response JSON, or NULL. HOSTS is the consent's
 * host list, SCOPE its service ids.
 */
json_t *sbh_authorize(sbh *h, const char *host, const char *tpl_provider, const char *scope, const char *hosts);

/* Return the records of ZONE at provider PROVIDER_ID from the admin API, or NULL. */
json_t *sbh_zone(sbh *h, const char *provider_id, const char *zone_name);

#endif
