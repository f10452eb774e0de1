/*
 * The client: a curl multi handle and a c-ares channel driven by the caller's
 * libev loop, and the list of requests in flight.
 *
 * curl is wired through its socket interface. curl names the sockets to
 * watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION), and each ev_io or ev_timer event goes back to
 * curl_multi_socket_action. c-ares is wired the same way through its socket
 * state callback, ares_process_fd and ares_timeout.
 *
 * Process-wide state: curl_global_init is the only call that affects the
 * whole process. dc_client_new calls curl_global_init(CURL_GLOBAL_DEFAULT)
 * and dc_client_free the matching curl_global_cleanup; libcurl counts these
 * calls and is thread-safe about it since 7.84 (Debian 12 ships 7.88). c-ares
 * needs no library init on POSIX systems (ares_library_init only sets up
 * Winsock), so the client does not call it.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "http.h"
#include "resolver.h"

#define DEFAULT_DNS_TIMEOUT_MS 5000L
#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_TOTAL_TIMEOUT_MS 15000L
#define MAX_TIMEOUT_MS 600000L /* ten minutes; anything longer is a config mistake */
#define DEFAULT_MAX_BODY_BYTES ((size_t)1 << 20)
#define DEFAULT_MAX_SETTINGS_BYTES ((size_t)64 << 10)
#define DEFAULT_USER_AGENT "libdomainconnect/0.1.0"

/* One socket c-ares asked us to watch. */
struct dc_ares_watch {
	ev_io io;
	dc_client *client;
	ares_socket_t fd;
	dc_ares_watch *next;
};

/* One socket curl asked us to watch; assigned to the socket in curl. */
typedef struct curl_watch {
	ev_io io;
	dc_client *client;
	curl_socket_t fd;
} curl_watch;

/* ---- Configuration ------------------------------------------------------ */

static dc_status check_timeout(const char *name, long value, dc_error *err)
{
	if (value < 0 || value > MAX_TIMEOUT_MS)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "invalid %s %ld: expected 0 (default) to %ld milliseconds", name, value,
		               MAX_TIMEOUT_MS);
	return DC_OK;
}

static dc_status check_config(const dc_config *cfg, dc_error *err)
{
	dc_status st = dc_guard_config_check(cfg, err);
	if (st != DC_OK)
		return st;

	if ((st = check_timeout("dns_timeout_ms", cfg->dns_timeout_ms, err)) != DC_OK)
		return st;
	if ((st = check_timeout("connect_timeout_ms", cfg->connect_timeout_ms, err)) != DC_OK)
		return st;
	return check_timeout("total_timeout_ms", cfg->total_timeout_ms, err);
}

static bool copy_string(char **dst, const char *src)
{
	if (src == NULL)
		return true;
	*dst = strdup(src);
	return *dst != NULL;
}

/* Copies cfg into c with every default filled in. */
static bool copy_config(dc_client *c, const dc_config *cfg)
{
	if (!copy_string(&c->dns_servers, cfg->dns_servers) ||
	    !copy_string(&c->ca_file, cfg->ca_file) ||
	    !copy_string(&c->allow_networks, cfg->allow_networks) ||
	    !copy_string(&c->allow_ports, cfg->allow_ports) ||
	    !copy_string(&c->user_agent, cfg->user_agent ? cfg->user_agent : DEFAULT_USER_AGENT))
		return false;

	c->cfg = *cfg;
	c->cfg.dns_servers = c->dns_servers;
	c->cfg.ca_file = c->ca_file;
	c->cfg.allow_networks = c->allow_networks;
	c->cfg.allow_ports = c->allow_ports;
	c->cfg.user_agent = c->user_agent;
	if (c->cfg.dns_timeout_ms == 0)
		c->cfg.dns_timeout_ms = DEFAULT_DNS_TIMEOUT_MS;
	if (c->cfg.connect_timeout_ms == 0)
		c->cfg.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	if (c->cfg.total_timeout_ms == 0)
		c->cfg.total_timeout_ms = DEFAULT_TOTAL_TIMEOUT_MS;
	if (c->cfg.max_body_bytes == 0)
		c->cfg.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
	if (c->cfg.max_settings_bytes == 0)
		c->cfg.max_settings_bytes = DEFAULT_MAX_SETTINGS_BYTES;
	return true;
}

/* ---- c-ares on libev ---------------------------------------------------- */

void dc_client_ares_schedule(dc_client *c)
{
	struct timeval tv;

	ev_timer_stop(c->loop, &c->ares_timer);
	if (ares_timeout(c->channel, NULL, &tv) == NULL)
		return;
	ev_timer_set(&c->ares_timer, (double)tv.tv_sec + (double)tv.tv_usec / 1e6, 0.);
	ev_timer_start(c->loop, &c->ares_timer);
}

static void ares_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	dc_ares_watch *watch = w->data;
	dc_client *c = watch->client;
	ares_socket_t fd = watch->fd;

	(void)loop;
	ares_process_fd(c->channel, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dc_client_ares_schedule(c);
}

static void ares_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	dc_client *c = w->data;

	(void)loop;
	(void)revents;
	ares_process_fd(c->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dc_client_ares_schedule(c);
}

/* c-ares' socket state callback: start, change or stop the socket's watcher. */
static void ares_socket_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	dc_client *c = data;
	dc_ares_watch **link = &c->ares_watches;

	while (*link != NULL && (*link)->fd != fd)
		link = &(*link)->next;
	dc_ares_watch *watch = *link;

	if (!readable && !writable) {
		if (watch == NULL)
			return;
		ev_io_stop(c->loop, &watch->io);
		*link = watch->next;
		free(watch);
		return;
	}

	if (watch == NULL) {
		watch = calloc(1, sizeof(*watch));
		/* NOTE: without memory for a watcher the query ends by its timeout. */
		if (watch == NULL)
			return;
		watch->client = c;
		watch->fd = fd;
		watch->next = c->ares_watches;
		c->ares_watches = watch;
		ev_init(&watch->io, ares_io_cb);
		watch->io.data = watch;
	}
	ev_io_stop(c->loop, &watch->io);
	ev_io_set(&watch->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	ev_io_start(c->loop, &watch->io);
}

static dc_status start_ares(dc_client *c, dc_error *err)
{
	struct ares_options opts;
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	           ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_FLAGS;
	char lookups[] = "b";

	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = ares_socket_state_cb;
	opts.sock_state_cb_data = c;
	/* Two tries: c-ares doubles the wait for the second, so both fit in
	   about the configured time. resolver.c also enforces it per lookup. */
	opts.timeout = (int)(c->cfg.dns_timeout_ms / 3 > 0 ? c->cfg.dns_timeout_ms / 3 : 1);
	opts.tries = 2;
	/* Names are always absolute: no search domains, DNS only (no hosts file). */
	opts.domains = NULL;
	opts.ndomains = 0;
	opts.lookups = lookups;
	opts.flags = ARES_FLAG_NOSEARCH;

	int rc = ares_init_options(&c->channel, &opts, mask);
	if (rc != ARES_SUCCESS) {
		c->channel = NULL;
		return dc_fail(err, rc == ARES_ENOMEM ? DC_ERR_NOMEM : DC_ERR_INTERNAL,
		               "c-ares initialization failed: %s", ares_strerror(rc));
	}

	if (c->cfg.dns_servers != NULL) {
		rc = ares_set_servers_ports_csv(c->channel, c->cfg.dns_servers);
		if (rc != ARES_SUCCESS) {
			char shown[DC_ESCAPED_MAX];

			dc_escape_value(shown, sizeof(shown), c->cfg.dns_servers);
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "invalid dns_servers \"%s\": expected ip[:port] entries separated "
			               "by commas (%s)",
			               shown, ares_strerror(rc));
		}
	}

	ev_init(&c->ares_timer, ares_timer_cb);
	c->ares_timer.data = c;
	return DC_OK;
}

/* ---- curl multi on libev ------------------------------------------------ */

/* Reports every finished transfer. A callback may start or cancel others. */
static void check_multi_info(dc_client *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		dc_http_done(msg->easy_handle, msg->data.result);
	}
}

static void curl_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	curl_watch *watch = w->data;
	dc_client *c = watch->client;
	int action = ((revents & EV_READ) ? CURL_CSELECT_IN : 0) |
	             ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;

	(void)loop;
	curl_multi_socket_action(c->multi, watch->fd, action, &running);
	check_multi_info(c);
}

static void curl_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	dc_client *c = w->data;
	int running;

	(void)loop;
	(void)revents;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi_info(c);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, 0 means as soon as possible. */
static int curl_timer_update(CURLM *multi, long timeout_ms, void *userp)
{
	dc_client *c = userp;

	(void)multi;
	ev_timer_stop(c->loop, &c->curl_timer);
	if (timeout_ms < 0)
		return 0;
	ev_timer_set(&c->curl_timer, (double)timeout_ms / 1000., 0.);
	ev_timer_start(c->loop, &c->curl_timer);
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: keep one ev_io per socket in step with curl. */
static int curl_socket_update(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	dc_client *c = userp;
	curl_watch *watch = socketp;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (watch != NULL) {
			ev_io_stop(c->loop, &watch->io);
			curl_multi_assign(c->multi, fd, NULL);
			free(watch);
		}
		return 0;
	}

	if (watch == NULL) {
		watch = calloc(1, sizeof(*watch));
		if (watch == NULL)
			return -1; /* curl fails the transfer */
		watch->client = c;
		watch->fd = fd;
		ev_init(&watch->io, curl_io_cb);
		watch->io.data = watch;
		curl_multi_assign(c->multi, fd, watch);
	}

	int events = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EV_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EV_WRITE;
	ev_io_stop(c->loop, &watch->io);
	ev_io_set(&watch->io, fd, events);
	ev_io_start(c->loop, &watch->io);
	return 0;
}

static dc_status start_curl(dc_client *c, dc_error *err)
{
	c->multi = curl_multi_init();
	if (c->multi == NULL)
		return dc_fail(err, DC_ERR_NOMEM, "curl multi handle creation failed");

	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_update);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_update);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);

	ev_init(&c->curl_timer, curl_timer_cb);
	c->curl_timer.data = c;
	return DC_OK;
}

dc_status dc_client_add_transfer(dc_client *c, CURL *easy)
{
	return curl_multi_add_handle(c->multi, easy) == CURLM_OK ? DC_OK : DC_ERR_INTERNAL;
}

/* ---- Client ------------------------------------------------------------- */

dc_client *dc_client_new(struct ev_loop *loop, const dc_config *cfg, dc_error *err)
{
	static const dc_config defaults;
	dc_client *c = NULL;
	bool curl_ready = false;
	dc_status st;

	if (loop == NULL) {
		dc_fail(err, DC_ERR_INVALID_ARGUMENT, "missing event loop");
		return NULL;
	}
	if (cfg == NULL)
		cfg = &defaults;
	if (check_config(cfg, err) != DC_OK)
		return NULL;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dc_fail(err, DC_ERR_INTERNAL, "curl_global_init failed");
		return NULL;
	}
	curl_ready = true;

	c = calloc(1, sizeof(*c));
	if (c == NULL || !copy_config(c, cfg)) {
		dc_fail(err, DC_ERR_NOMEM, "out of memory creating a client");
		goto fail;
	}
	c->loop = loop;

	if ((st = start_ares(c, err)) != DC_OK)
		goto fail;
	if ((st = start_curl(c, err)) != DC_OK)
		goto fail;
	return c;

fail:
	/* dc_client_free makes the curl_global_cleanup call itself. */
	if (c != NULL) {
		dc_client_free(c);
		return NULL;
	}
	if (curl_ready)
		curl_global_cleanup();
	return NULL;
}

/*
 * NOTE: dc_client_free must not run inside a callback of the same client,
 * because the transfer or lookup reporting would then outlive its client.
 */
void dc_client_free(dc_client *client)
{
	if (client == NULL)
		return;

	/* Requests first: each cancels its lookup or transfer without a callback. */
	while (client->requests != NULL)
		dc_request_cancel(client->requests);
	dc_http_cancel_all(client);

	if (client->multi != NULL) {
		ev_timer_stop(client->loop, &client->curl_timer);
		curl_multi_cleanup(client->multi);
	}

	if (client->channel != NULL) {
		/* Orphaned lookups are still queued: ares_destroy ends them with
		   ARES_EDESTRUCTION, and resolver.c frees them then. */
		ares_destroy(client->channel);
		ev_timer_stop(client->loop, &client->ares_timer);
	}
	while (client->ares_watches != NULL) {
		dc_ares_watch *next = client->ares_watches->next;

		ev_io_stop(client->loop, &client->ares_watches->io);
		free(client->ares_watches);
		client->ares_watches = next;
	}

	free(client->dns_servers);
	free(client->ca_file);
	free(client->allow_networks);
	free(client->allow_ports);
	free(client->user_agent);
	free(client);
	curl_global_cleanup();
}

size_t dc_client_pending(const dc_client *client)
{
	return client == NULL ? 0 : client->pending;
}

/* ---- Requests ----------------------------------------------------------- */

dc_request *dc_request_new(dc_client *c, void *state, dc_request_state_free state_free)
{
	dc_request *req = calloc(1, sizeof(*req));
	if (req == NULL) {
		if (state_free != NULL)
			state_free(state);
		return NULL;
	}

	req->client = c;
	req->state = state;
	req->state_free = state_free;
	req->next = c->requests;
	if (c->requests != NULL)
		c->requests->prev = req;
	c->requests = req;
	c->pending++;
	return req;
}

void dc_request_finish(dc_request *req)
{
	if (req->finished)
		return;

	dc_client *c = req->client;
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		c->requests = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
	c->pending--;
	req->finished = true;
}

void dc_request_destroy(dc_request *req)
{
	if (req == NULL)
		return;

	dc_request_finish(req);
	dc_lookup_cancel(req->lookup);
	dc_http_cancel(req->http);
	if (req->state_free != NULL)
		req->state_free(req->state);
	free(req);
}

void dc_request_cancel(dc_request *req)
{
	/* A finished request is being reported right now; its owner frees it. */
	if (req == NULL || req->finished)
		return;
	dc_request_destroy(req);
}
