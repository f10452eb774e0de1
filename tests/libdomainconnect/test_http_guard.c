/*
 * The guarded HTTP path: no connection to an address the guard rejects, no
 * rebinding between the check and the connection, body caps, timeouts,
 * redirects, and no secret in any error field even when servers echo them.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_fixture.h"

#define CHECK_PATH "/v2/domainTemplates/providers/example.org/services/web"

typedef struct outcome {
	int calls;
	dc_status status;
	long http_status;
	dc_error err; /* a copy without conflicts */
} outcome;

static net_fixture f;

static void response_cb(void *arg, const dc_response *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->status = err->status;
	o->http_status = result != NULL ? result->http_status : err->http_status;
	o->err = *err;
	o->err.conflicts = NULL;
}

static void teardown(void)
{
	nf_stop(&f);
}

static outcome template_check(const char *url_api)
{
	outcome o = {0};
	dc_error err = {0};

	dc_error_clear(&err);
	dc_status st = dc_template_supported_start(f.client, url_api, "example.org", "web", response_cb,
	                                           &o, NULL, &err);
	if (st != DC_OK) {
		o.calls = 1;
		o.status = st;
		o.err = err;
		return o;
	}
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "request did not finish");
	cr_assert_eq(o.calls, 1);
	return o;
}

/* ---- No connection to rejected addresses -------------------------------- */

Test(http_guard, rejected_name_never_connects, .fini = teardown)
{
	ts_listener *l = ts_listener_start("127.0.0.2");
	cr_assert_not_null(l);
	const char *dns[] = {"--address=/evil.provider.test/127.0.0.2"};
	cr_assert(nf_start(&f, dns, 1));
	char ports[32];
	snprintf(ports, sizeof(ports), "%d,%d", f.port, ts_listener_port(l));
	f.cfg.allow_ports = ports;
	cr_assert(nf_restart_client(&f));

	char url[128];
	snprintf(url, sizeof(url), "https://evil.provider.test:%d", ts_listener_port(l));
	outcome o = template_check(url);
	cr_assert_eq(o.status, DC_ERR_HOST_REJECTED, "%s: %s", dc_status_name(o.status),
	             o.err.message);
	cr_assert_eq(ts_listener_accepted(l), 0);
	ts_listener_stop(l);
}

Test(http_guard, mixed_answer_is_rejected, .fini = teardown)
{
	const char *dns[] = {"--host-record=mixed.provider.test,127.0.0.1",
	                     "--host-record=mixed.provider.test,127.0.0.2"};
	cr_assert(nf_start(&f, dns, 2));

	outcome o = template_check(nf_url(&f, "mixed.provider.test", ""));
	cr_assert_eq(o.status, DC_ERR_HOST_REJECTED, "%s: %s", dc_status_name(o.status),
	             o.err.message);
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

Test(http_guard, ip_literal_rejected_at_start, .fini = teardown)
{
	cr_assert(nf_start(&f, NULL, 0));

	outcome o = template_check(nf_url(&f, "127.0.0.1", ""));
	cr_assert_neq(o.status, DC_OK);
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

/* Decision only: these addresses are checked, never connected to. */
Test(http_guard, private_ranges_rejected)
{
	static const char *const rows[] = {
		"10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
		"0.0.0.0", "224.0.0.1", "127.0.0.2", "::1", "fc00::1", "fe80::1", "::ffff:10.0.0.1",
		"::ffff:127.0.0.2",
	};
	dc_config cfg = {.allow_networks = "127.0.0.1/32"};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss = {0};
		dc_error err = {0};
		dc_error_clear(&err);
		if (strchr(rows[i], ':') != NULL) {
			struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
			sa->sin6_family = AF_INET6;
			cr_assert_eq(inet_pton(AF_INET6, rows[i], &sa->sin6_addr), 1);
		} else {
			struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
			sa->sin_family = AF_INET;
			cr_assert_eq(inet_pton(AF_INET, rows[i], &sa->sin_addr), 1);
		}
		cr_expect_eq(dc_guard_check_address(&cfg, (struct sockaddr *)&ss, &err),
		             DC_ERR_HOST_REJECTED, "%s passed the guard", rows[i]);
	}
}

/* ---- Rebinding ---------------------------------------------------------- */

/*
 * A DNS server that answers the first A query for any name with 127.0.0.1
 * and every later one with 127.0.0.2; AAAA queries get an empty answer.
 */
typedef struct rebinder {
	int fd;
	int port;
	atomic_int a_queries;
	atomic_bool stop;
	pthread_t thread;
} rebinder;

static void *rebinder_run(void *arg)
{
	rebinder *r = arg;
	unsigned char buf[512];

	while (!atomic_load(&r->stop)) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		if (poll(&pfd, 1, 50) != 1)
			continue;
		struct sockaddr_storage from;
		socklen_t from_len = sizeof(from);
		ssize_t n = recvfrom(r->fd, buf, sizeof(buf) - 16, 0, (struct sockaddr *)&from, &from_len);
		if (n < 17)
			continue;
		size_t q = 12;
		while (q < (size_t)n && buf[q] != 0)
			q += buf[q] + 1;
		if (q + 5 > (size_t)n)
			continue;
		int qtype = buf[q + 1] << 8 | buf[q + 2];
		size_t len = q + 5;
		buf[2] = 0x81; /* response, recursion desired */
		buf[3] = 0x80; /* recursion available, NOERROR */
		buf[6] = 0;
		buf[7] = 0;
		buf[8] = buf[9] = buf[10] = buf[11] = 0;
		if (qtype == 1) {
			int count = atomic_fetch_add(&r->a_queries, 1);
			static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0};
			memcpy(buf + len, rr, sizeof(rr));
			len += sizeof(rr);
			buf[len++] = count == 0 ? 1 : 2;
			buf[7] = 1;
		}
		sendto(r->fd, buf, len, 0, (struct sockaddr *)&from, from_len);
	}
	return NULL;
}

static void rebinder_start(rebinder *r)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);

	r->fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_eq(bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(r->fd, (struct sockaddr *)&sa, &len);
	r->port = ntohs(sa.sin_port);
	atomic_init(&r->a_queries, 0);
	atomic_init(&r->stop, false);
	cr_assert_eq(pthread_create(&r->thread, NULL, rebinder_run, r), 0);
}

static void rebinder_stop(rebinder *r)
{
	atomic_store(&r->stop, true);
	pthread_join(r->thread, NULL);
	close(r->fd);
}

Test(http_guard, rebinding_uses_checked_address, .fini = teardown)
{
	rebinder r;
	char servers[32];

	nf_route_add(&f, "GET", CHECK_PATH);
	cr_assert(nf_start(&f, NULL, 0));
	rebinder_start(&r);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", r.port);
	f.cfg.dns_servers = servers;
	cr_assert(nf_restart_client(&f));

	/* The first lookup returns the allowed address; the connection is pinned
	   to it, and the name is unknown to the system resolver. */
	outcome first = template_check(nf_url(&f, "rebind.provider.test", ""));
	cr_assert_eq(first.status, DC_OK, "%s: %s", dc_status_name(first.status), first.err.message);
	cr_assert_eq(ts_https_request_count(f.https), 1);
	cr_assert_eq(atomic_load(&r.a_queries), 1, "the name was resolved more than once");

	/* The second lookup returns 127.0.0.2: rejected before any connection. */
	outcome second = template_check(nf_url(&f, "rebind.provider.test", ""));
	cr_assert_eq(second.status, DC_ERR_HOST_REJECTED, "%s", dc_status_name(second.status));
	cr_assert_eq(ts_https_request_count(f.https), 1);
	cr_assert_eq(atomic_load(&r.a_queries), 2);
	rebinder_stop(&r);
}

/* ---- Caps, timeouts, redirects ------------------------------------------ */

Test(http_guard, body_over_cap_too_large, .fini = teardown)
{
	static char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	ts_response *r = nf_route_add(&f, "GET", CHECK_PATH);
	r->body = big;
	cr_assert(nf_start(&f, NULL, 0));
	f.cfg.max_body_bytes = 1000;
	cr_assert(nf_restart_client(&f));

	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	cr_assert_eq(o.status, DC_ERR_TOO_LARGE, "%s: %s", dc_status_name(o.status), o.err.message);
}

Test(http_guard, delayed_response_times_out, .fini = teardown)
{
	ts_response *r = nf_route_add(&f, "GET", CHECK_PATH);
	r->delay_ms = 3000;
	cr_assert(nf_start(&f, NULL, 0));
	f.cfg.total_timeout_ms = 500;
	cr_assert(nf_restart_client(&f));

	ev_tstamp before = ev_time();
	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	ev_tstamp took = ev_time() - before;
	cr_assert_eq(o.status, DC_ERR_TRANSIENT, "%s", dc_status_name(o.status));
	cr_assert(nf_contains(o.err.message, "timed out"), "%s", o.err.message);
	cr_assert(took < 1.5, "took %.2f s", took);
}

Test(http_guard, slow_body_times_out, .fini = teardown)
{
	ts_response *r = nf_route_add(&f, "GET", CHECK_PATH);
	r->body = "{\"version\":1,\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}";
	r->slow_body_ms = 100;
	cr_assert(nf_start(&f, NULL, 0));
	f.cfg.total_timeout_ms = 800;
	cr_assert(nf_restart_client(&f));

	ev_tstamp before = ev_time();
	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	cr_assert_eq(o.status, DC_ERR_TRANSIENT, "%s", dc_status_name(o.status));
	cr_assert(ev_time() - before < 2.0);
}

Test(http_guard, redirect_not_followed, .fini = teardown)
{
	static char location[128];
	ts_response *r = nf_route_add(&f, "GET", CHECK_PATH);
	r->status = 302;
	r->headers[0] = location;
	nf_route_add(&f, "GET", "/elsewhere*");
	cr_assert(nf_start(&f, NULL, 0));
	snprintf(location, sizeof(location), "Location: %s",
	         nf_url(&f, "api.provider.test", "/elsewhere" CHECK_PATH));

	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	cr_assert_eq(o.status, DC_ERR_HTTP, "%s", dc_status_name(o.status));
	cr_assert_eq(o.http_status, 302);
	cr_assert(nf_contains(o.err.message, "redirects are not followed"), "%s", o.err.message);
	cr_assert_eq(ts_https_request_count(f.https), 1);
}

Test(http_guard, refused_connection_transient, .fini = teardown)
{
	cr_assert(nf_start(&f, NULL, 0));
	int closed = ts_free_port();
	char ports[32];
	snprintf(ports, sizeof(ports), "%d", closed);
	f.cfg.allow_ports = ports;
	cr_assert(nf_restart_client(&f));

	char url[128];
	snprintf(url, sizeof(url), "https://api.provider.test:%d", closed);
	outcome o = template_check(url);
	cr_assert_eq(o.status, DC_ERR_TRANSIENT, "%s", dc_status_name(o.status));
}

Test(http_guard, untrusted_ca_fails, .fini = teardown)
{
	nf_route_add(&f, "GET", CHECK_PATH);
	cr_assert(nf_start(&f, NULL, 0));
	ts_tls *other = ts_tls_new(NULL, 0);
	f.cfg.ca_file = other->ca_file;
	cr_assert(nf_restart_client(&f));

	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	cr_assert_neq(o.status, DC_OK);
	cr_assert_eq(o.http_status, 0);
	ts_tls_free(other);
}

/* ---- Secrets never reach dc_error --------------------------------------- */

#define SECRET "SECRET-zq81 x/y"
#define CODE "CODE-77aa"
#define REFRESH "REFRESH-q5bb"
#define ACCESS "ACCESS-k9cc"

/* Echoes the query, body and Authorization back in an error body. */
static void echo_handler(void *arg, const ts_request *req, ts_response *resp)
{
	static _Thread_local char body[8192];
	char echo[4096];
	(void)arg;

	snprintf(echo, sizeof(echo), "query=%s body=%s auth=%s", req->query ? req->query : "",
	         req->body, req->authorization ? req->authorization : "");
	if (strncmp(req->path, "/json", 5) == 0) {
		json_t *obj = json_pack("{s:s, s:s}", "error", echo, "error_description", echo);
		char *text = json_dumps(obj, 0);
		snprintf(body, sizeof(body), "%s", text);
		free(text);
		json_decref(obj);
	} else {
		snprintf(body, sizeof(body), "%s", echo);
	}
	resp->status = strstr(req->path, "/apply") ? 403 : 400;
	if (strncmp(req->path, "/five", 5) == 0)
		resp->status = 500;
	resp->body = body;
	resp->content_type = "text/plain";
}

static void assert_clean(const dc_error *err, const char *what)
{
	static const char *const fragments[] = {"zq81", "77aa", "q5bb", "k9cc"};
	const char *fields[] = {err->message, err->oauth_error, err->oauth_description};

	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 4; j++)
			cr_expect(!nf_contains(fields[i], fragments[j]), "%s: field %zu leaks %s: %s", what,
			          i, fragments[j], fields[i]);
}

typedef struct token_outcome {
	int calls;
	dc_error err;
} token_outcome;

static void token_cb(void *arg, dc_token *result, const dc_error *err)
{
	token_outcome *o = arg;

	o->calls++;
	o->err = *err;
	dc_token_free(result);
}

Test(http_guard, secrets_never_in_errors, .fini = teardown)
{
	static const char *const prefixes[] = {"", "/json", "/five"};
	f.handler = echo_handler;
	cr_assert(nf_start(&f, NULL, 0));
	int checked = 0;

	for (size_t pi = 0; pi < 3; pi++) {
		char base[256];
		snprintf(base, sizeof(base), "%s%s", nf_url(&f, "api.provider.test", ""), prefixes[pi]);
		for (int placement = 0; placement <= DC_TOKEN_PARAMS_FORM; placement++) {
			dc_provider p = {.name = "leaky", .url_api = base, .client_id = "client.example",
			                 .client_secret = SECRET, .token_placement = placement};
			for (int refresh = 0; refresh < 2; refresh++) {
				token_outcome o = {0};
				dc_error err = {0};
				dc_error_clear(&err);
				dc_status st = refresh
					? dc_refresh_start(f.client, &p, REFRESH, "https://app.example/cb", token_cb, &o, NULL, &err)
					: dc_exchange_code_start(f.client, &p, CODE, "https://app.example/cb", token_cb, &o, NULL, &err);
				cr_assert_eq(st, DC_OK, "%s", err.message);
				cr_assert(nf_run_until(&f, &o.calls, 1, 10.));
				cr_expect_neq(o.err.status, DC_OK);
				cr_expect(nf_contains(o.err.message, "[redacted]") ||
				          nf_contains(o.err.oauth_error, "[redacted]"),
				          "the echo did not come back: %s", o.err.message);
				assert_clean(&o.err, "token");
				checked++;
			}
		}

		dc_provider p = {.name = "leaky", .url_api = base, .client_id = "c"};
		dc_apply_request ar = {.access_token = ACCESS, .provider_id = "example.org",
		                       .service_id = "web", .domain = "shop.test"};
		for (int revert = 0; revert < 2; revert++) {
			outcome o = {0};
			dc_error err = {0};
			dc_error_clear(&err);
			dc_status st = revert ? dc_revert_start(f.client, &p, &ar, response_cb, &o, NULL, &err)
			                      : dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err);
			cr_assert_eq(st, DC_OK, "%s", err.message);
			cr_assert(nf_run_until(&f, &o.calls, 1, 10.));
			cr_expect_neq(o.status, DC_OK);
			assert_clean(&o.err, revert ? "revert" : "apply");
			checked++;
		}
	}
	cr_assert_eq(checked, 3 * (4 * 2 + 2));
}

Test(http_guard, secrets_scrubbed_from_start_errors)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	dc_config cfg = {.dns_servers = "127.0.0.1:1"};
	dc_error err = {0};
	token_outcome o = {0};

	dc_error_clear(&err);
	dc_client *c = dc_client_new(loop, &cfg, &err);
	cr_assert_not_null(c);
	/* An API URL that fails the guard's URL check (a port not allowed). */
	dc_provider p = {.name = "x", .url_api = "https://api.provider.test:8443", .client_id = "c",
	                 .client_secret = SECRET, .token_placement = DC_TOKEN_PARAMS_QUERY};
	cr_assert_neq(dc_exchange_code_start(c, &p, CODE, "https://app.example/cb", token_cb, &o,
	                                     NULL, &err),
	              DC_OK);
	assert_clean(&err, "exchange start");
	cr_assert_eq(o.calls, 0);
	dc_client_free(c);
	ev_loop_destroy(loop);
}

static void v6_handler(void *arg, const ts_request *req, ts_response *resp)
{
	(void)arg;
	(void)req;
	resp->status = 204;
}

Test(http_guard, ipv6_address_is_pinned, .fini = teardown)
{
	const char *dns[] = {"--address=/v6.provider.test/::1"};
	cr_assert(nf_start(&f, dns, 1));
	ts_https *v6 = ts_https_start(f.tls, "::1", v6_handler, NULL);
	cr_assert_not_null(v6, "no IPv6 loopback");
	char ports[32];
	snprintf(ports, sizeof(ports), "%d,%d", f.port, ts_https_port(v6));
	f.cfg.allow_ports = ports;
	f.cfg.allow_networks = "127.0.0.1/32,::1/128";
	cr_assert(nf_restart_client(&f));

	char url[128];
	snprintf(url, sizeof(url), "https://v6.provider.test:%d", ts_https_port(v6));
	outcome o = template_check(url);
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.err.message);
	cr_assert_eq(ts_https_request_count(v6), 1);
	ts_https_stop(v6);
}
