/*
 * The HTTPS server: one libmicrohttpd daemon (epoll, internal threads) in
 * front of every simulated provider, the per-request context that the
 * endpoint handlers read, and the response they fill.
 *
 * Locking: everything mutable (zones, tokens, counters, fault draws and
 * fault settings) is guarded by sb_server.lock. Handlers take it for the
 * shortest span that keeps one call consistent.
 */
#ifndef DC_SANDBOX_SERVER_H
#define DC_SANDBOX_SERVER_H

#include "faults.h"
#include "provider.h"
#include "sandbox.h"
#include "tls.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sb_tokens sb_tokens;
typedef struct sb_stats sb_stats;
typedef struct sb_timer sb_timer;

/* Largest request body the server reads; longer bodies get 413. */
#define SB_BODY_MAX (64 * 1024)

/* Server settings from the command line. */
typedef struct sb_server_opts {
	const char *listen;     /* IPv4 or IPv6 literal */
	int port;               /* 0 = ephemeral */
	unsigned threads;       /* MHD thread pool size, at least 1 */
	bool auto_approve;      /* approve every consent without the page */
	bool log_requests;      /* one line per request on stderr */
	uint64_t seed;          /* fault draws */
} sb_server_opts;

typedef struct sb_server {
	sb_config *config;  /* owned */
	sb_tls tls;         /* owned */
	sb_server_opts opts;
	pthread_mutex_t lock;
	sb_tokens *tokens;
	sb_stats *stats;
	sb_timer *timer;
	struct MHD_Daemon *daemon;
	int port; /* the bound port */
} sb_server;

/* A response under construction; the router sends it. */
typedef struct sb_response {
	int status;
	const char *content_type; /* static string */
	char *body;               /* malloc'd; may be NULL */
	size_t body_len;
	char *location;           /* malloc'd Location header, or NULL */
	int retry_after_s;        /* > 0 adds Retry-After */
	bool www_authenticate;    /* adds WWW-Authenticate: Bearer */
} sb_response;

/* Request phases; the router advances them. */
typedef enum sb_phase {
	SB_PHASE_NEW = 0,   /* headers seen, body may follow */
	SB_PHASE_WAITING,   /* suspended for injected latency */
	SB_PHASE_READY,     /* latency over, handle now */
	SB_PHASE_ANSWERED,  /* response queued */
} sb_phase;

/* One request, alive from the first header to the completion callback. */
typedef struct sb_request {
	sb_server *server;
	struct MHD_Connection *conn;
	const char *method;     /* MHD's string, valid for the request */
	const char *url;        /* MHD's string, without the query */
	const char *path;       /* URL after the provider prefix */
	char base_url[320];     /* "https://host[:port][/p/<id>]", for settings */
	sb_provider *provider;  /* NULL for admin and unknown hosts */
	int provider_index;     /* -1 when none */
	sb_endpoint endpoint;
	sb_phase phase;
	sb_fault_plan plan;
	char *body;
	size_t body_len;
	bool body_too_large;
	json_t *body_params;    /* object of body parameters (JSON or form), lazily parsed */
	bool body_params_done;
	sb_zone *overlap_zone;  /* counted as in flight for apply/revert */
	bool counted;           /* already in the counters, before its response was queued */
	int64_t start_ms;
	int status;             /* sent status, for the log */
	/* response body streaming for slow and oversized bodies */
	char *stream_body;
	size_t stream_len;
	size_t stream_pos;
	bool stream_pause;
	bool stream_fill;       /* generate padding instead of copying */
} sb_request;

/*
 * Start the daemon for CONFIG with TLS (both taken over, also on failure).
 * Returns SB_OK with *OUT set, or SB_ERR_LISTEN / SB_ERR_NOMEM.
 */
sb_result sb_server_start(sb_config *config, sb_tls *tls, const sb_server_opts *opts,
	sb_server **out, sb_error *err);

/* Resume suspended requests, stop the daemon and free everything. Accepts NULL. */
void sb_server_stop(sb_server *server);

/* Look up a query parameter (percent-decoded), or NULL. */
const char *sb_request_query(sb_request *req, const char *name);

/*
 * Look up a parameter in the query, then in the body (JSON object or form).
 * Returns NULL when absent or not a string.
 */
const char *sb_request_param(sb_request *req, const char *name);

/*
 * Return a new JSON object with every query and body parameter as strings
 * (query wins), or NULL when out of memory.
 */
json_t *sb_request_params(sb_request *req);

/* Return a request header, or NULL. */
const char *sb_request_header(sb_request *req, const char *name);

/* Fill RESP with STATUS and JSON (reference stolen). */
void sb_response_json(sb_response *resp, int status, json_t *json);

/* Fill RESP with STATUS and {"code":"<status>","message":MESSAGE}. */
void sb_response_error(sb_response *resp, int status, const char *message);

/* Fill RESP with STATUS, CONTENT_TYPE and a copy of TEXT. */
void sb_response_text(sb_response *resp, int status, const char *content_type, const char *text);

/* Fill RESP with 302 and LOCATION (copied). */
void sb_response_redirect(sb_response *resp, const char *location);

/* Endpoint handlers; each fills RESP. */
void sb_handle_settings(sb_request *req, const char *zone_name, sb_response *resp);
void sb_handle_template(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp);
void sb_handle_consent(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp);
void sb_handle_token(sb_request *req, sb_response *resp);
void sb_handle_apply(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp);
void sb_handle_revert(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp);
void sb_handle_admin(sb_request *req, const char *path, sb_response *resp);

/*
 * Enter and leave the per-zone "in flight" window of an apply or revert, so
 * the admin API can report the maximum overlap per zone. Call with the lock
 * held.
 */
void sb_overlap_enter(sb_zone *z);
void sb_overlap_leave(sb_zone *z);

#endif
