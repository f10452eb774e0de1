/*
 * The one HTTP request path of the library. Every request passes the host
 * guard: the URL is checked, its host name is resolved by the client's c-ares
 * channel, every address is checked, and the connection is pinned to the
 * checked addresses with CURLOPT_RESOLVE. libcurl never resolves a name
 * itself and never follows a redirect.
 */
#ifndef DC_HTTP_H
#define DC_HTTP_H

#include "client.h"

#define DC_HTTP_HEADERS_MAX 4 /* extra request headers */
#define DC_HTTP_SECRETS_MAX 4 /* secret strings scrubbed from messages */

typedef struct dc_http_request {
	const char *method;   /* "GET" or "POST" */
	const char *url;      /* https://host[:port]/path[?query] */
	const char *headers[DC_HTTP_HEADERS_MAX]; /* "Name: value", NULL-terminated */
	const char *body;     /* POST body or NULL for an empty one */
	size_t body_len;
	size_t max_body;      /* response body cap; exceeding it is DC_ERR_TOO_LARGE */
	const char *what;     /* action named in messages, e.g. "settings request" */
	/* Secrets sent with the request (NULL entries are skipped); never copied
	   into a message, even when a server echoes them back. */
	const char *secrets[DC_HTTP_SECRETS_MAX];
} dc_http_request;

typedef struct dc_http_response {
	long status;
	long retry_after; /* seconds from Retry-After, -1 when absent */
	char *body;       /* NUL-terminated, owned by the transfer */
	size_t body_len;
} dc_http_response;

/*
 * Called once with the response (any status from 100 to 599 other than 3xx)
 * or with err->status set (DC_ERR_HOST_REJECTED, DC_ERR_TRANSIENT,
 * DC_ERR_TOO_LARGE, DC_ERR_HTTP for a redirect, ...) and resp NULL. resp and
 * its body are valid during the callback only.
 */
typedef void (*dc_http_cb)(void *arg, const dc_http_response *resp, const dc_error *err);

/*
 * Starts a request. The request description and its strings are copied.
 * Fails without calling cb when the URL does not pass the guard's URL check
 * (DC_ERR_HOST_REJECTED) or memory runs out.
 */
dc_http *dc_http_start(dc_client *c, const dc_http_request *r, dc_http_cb cb, void *arg,
                       dc_error *err);

/* Cancels a request in flight without calling its callback. Accepts NULL. */
void dc_http_cancel(dc_http *h);

/* Reports a finished transfer of the multi handle (client.c calls it). */
void dc_http_done(CURL *easy, CURLcode result);

/* Cancels every transfer of c without callbacks (dc_client_free). */
void dc_http_cancel_all(dc_client *c);

/*
 * Maps a status every call treats alike: 401 DC_ERR_UNAUTHORIZED, 429 and
 * 503 with Retry-After DC_ERR_RATE_LIMITED, other 5xx DC_ERR_TRANSIENT, any
 * other non-2xx DC_ERR_HTTP. Fills err (http_status, retry_after, message
 * naming what) and returns the status; returns DC_OK for 2xx.
 */
dc_status dc_http_classify(const dc_http_response *resp, const char *what, dc_error *err);

/*
 * Copies untrusted text into dst like dc_copy_sanitized, after replacing
 * each non-empty secret with "[redacted]", so no prefix of a secret survives
 * the truncation. Raw, %XX (any byte, any case), form and JSON-escaped
 * spellings are found, and so is any piece of 8 or more bytes of a secret
 * of at most 1024 bytes (a provider may split one over several fields).
 */
void dc_copy_scrubbed(char *dst, size_t dst_size, const char *src, size_t src_len,
                      const char *const *secrets, size_t secrets_count);

/*
 * Joins a base URL (trailing slashes dropped) and a path that starts with
 * '/'. Returns a malloc'd string or NULL on ENOMEM.
 */
char *dc_url_join(const char *base, const char *path);

/* Scrubs the message and OAuth strings of err in place; see dc_copy_scrubbed. */
void dc_error_scrub(dc_error *err, const char *const *secrets, size_t secrets_count);

/*
 * Replaces each whole secret in the strings of a JSON value, recursively,
 * and deletes object members whose key contains one. Returns false on ENOMEM,
 * when value may be partly scrubbed.
 */
bool dc_json_scrub(json_t *value, const char *const *secrets, size_t secrets_count);

#endif /* DC_HTTP_H */
