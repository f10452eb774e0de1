/*
 * The client's internals, shared by the files that run network calls
 * (resolver.c, http.c, discovery.c, token.c, apply.c, blocking.c).
 *
 * A dc_client owns one curl multi handle and one c-ares channel, both driven
 * by the caller's libev loop. A dc_request is one public call in flight. It
 * runs at most one DNS lookup or one HTTP transfer at a time, and it keeps
 * the operation's own state behind a pointer.
 */
#ifndef DC_CLIENT_H
#define DC_CLIENT_H

#include <ares.h>
#include <curl/curl.h>

#include "internal.h"

typedef struct dc_lookup dc_lookup;
typedef struct dc_http dc_http;
typedef struct dc_ares_watch dc_ares_watch;

struct dc_client {
	struct ev_loop *loop;
	dc_config cfg; /* string members point at the copies below */
	char *dns_servers;
	char *ca_file;
	char *allow_networks;
	char *allow_ports;
	char *user_agent;

	CURLM *multi;
	ev_timer curl_timer;

	ares_channel channel;
	ev_timer ares_timer;
	dc_ares_watch *ares_watches;

	dc_request *requests; /* doubly linked, newest first */
	size_t pending;
	dc_http *transfers;   /* HTTP transfers in flight, for dc_client_free */
};

/* Frees an operation's state; called once when its request ends. */
typedef void (*dc_request_state_free)(void *state);

struct dc_request {
	dc_client *client;
	dc_request *prev;
	dc_request *next;
	dc_lookup *lookup; /* the DNS step in flight, or NULL */
	dc_http *http;     /* the HTTP step in flight, or NULL */
	void *state;
	dc_request_state_free state_free;
	bool finished; /* unlinked; its callback is running or has run */
};

/*
 * Creates a request on c that owns state (freed with state_free when the
 * request ends, also on failure here). Returns NULL on ENOMEM.
 */
dc_request *dc_request_new(dc_client *c, void *state, dc_request_state_free state_free);

/*
 * Unlinks a request that has reached its outcome, so that dc_client_pending
 * no longer counts it and dc_request_cancel on it does nothing. The caller
 * then runs the user's callback and calls dc_request_destroy.
 */
void dc_request_finish(dc_request *req);

/* Frees a request, its state and any step still in flight. Accepts NULL. */
void dc_request_destroy(dc_request *req);

/*
 * Re-arms the c-ares timer after a query was started or processed. Called by
 * resolver.c; the socket watchers follow c-ares' socket state callback.
 */
void dc_client_ares_schedule(dc_client *c);

/*
 * Adds an easy handle to the multi handle. Returns DC_OK or DC_ERR_INTERNAL.
 * Completion is reported to http.c through dc_http_done().
 */
dc_status dc_client_add_transfer(dc_client *c, CURL *easy);

#endif /* DC_CLIENT_H */
