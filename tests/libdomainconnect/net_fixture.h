/*
 * Shared setup of the network suites: a test CA, an HTTPS server on
 * 127.0.0.1 answering from a route table, dnsmasq on loopback, a libev loop
 * and a dc_client whose guard allows only 127.0.0.1/32 and the server's port.
 */
#ifndef NET_FIXTURE_H
#define NET_FIXTURE_H

#include <stdbool.h>

#include "libdomainconnect/domainconnect.h"
#include "support/support.h"

#define NF_ROUTES_MAX 16

/* One canned answer. path matches exactly, or as a prefix when it ends in '*'. */
typedef struct nf_route {
	const char *method; /* NULL matches any method */
	const char *path;
	ts_response resp;
} nf_route;

typedef struct net_fixture {
	ts_tls *tls;
	ts_https *https;
	ts_dnsmasq *dns;
	struct ev_loop *loop;
	dc_client *client;
	dc_config cfg;
	int port;
	char allow_ports[16];
	nf_route routes[NF_ROUTES_MAX]; /* unmatched requests get 404 */
	size_t routes_count;
	ts_handler handler; /* when set, answers every request instead of the routes */
	void *handler_arg;
} net_fixture;

/*
 * Starts the server, then dnsmasq with "--address=/api.provider.test/127.0.0.1"
 * and dns_args, where every "PORT" is replaced with the server's port; then
 * the loop and the client. Fill f->routes before, and adjust f->cfg after
 * with nf_restart_client. Returns false (and says why on stderr) on failure.
 */
bool nf_start(net_fixture *f, const char *const *dns_args, size_t count);

/* Recreates the client after a change to f->cfg. */
bool nf_restart_client(net_fixture *f);

/* Stops everything nf_start started. */
void nf_stop(net_fixture *f);

/* Adds a route; returns its response for the caller to fill. */
ts_response *nf_route_add(net_fixture *f, const char *method, const char *path);

/*
 * Runs the loop until *counter reaches target or timeout_s passes. Returns
 * true when the counter got there.
 */
bool nf_run_until(net_fixture *f, const int *counter, int target, double timeout_s);

/* Returns "https://HOST:PORT" + path in a static buffer. */
const char *nf_url(const net_fixture *f, const char *host, const char *path);

/* True when text contains needle; NULL text never does. */
bool nf_contains(const char *text, const char *needle);

#endif
