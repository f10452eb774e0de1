/* Shared setup of the network suites; see net_fixture.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_fixture.h"

static bool route_matches(const nf_route *r, const ts_request *req)
{
	if (r->method != NULL && strcmp(r->method, req->method) != 0)
		return false;
	size_t len = strlen(r->path);
	if (len > 0 && r->path[len - 1] == '*')
		return strncmp(r->path, req->path, len - 1) == 0;
	return strcmp(r->path, req->path) == 0;
}

static void route_handler(void *arg, const ts_request *req, ts_response *resp)
{
	const net_fixture *f = arg;

	if (f->handler != NULL) {
		f->handler(f->handler_arg, req, resp);
		return;
	}
	for (size_t i = 0; i < f->routes_count; i++) {
		if (route_matches(&f->routes[i], req)) {
			*resp = f->routes[i].resp;
			return;
		}
	}
	resp->status = 404;
	resp->body = "{\"error\":\"no route\"}";
}

ts_response *nf_route_add(net_fixture *f, const char *method, const char *path)
{
	if (f->routes_count == NF_ROUTES_MAX)
		abort();
	nf_route *r = &f->routes[f->routes_count++];
	r->method = method;
	r->path = path;
	return &r->resp;
}

/* Replaces every "PORT" in arg with port; malloc'd. */
static char *substitute_port(const char *arg, int port)
{
	char digits[16];
	size_t cap = strlen(arg) * 2 + 16;
	char *out = calloc(1, cap);
	char *o = out;

	snprintf(digits, sizeof(digits), "%d", port);
	for (const char *p = arg; *p != '\0';) {
		if (strncmp(p, "PORT", 4) == 0) {
			o += sprintf(o, "%s", digits);
			p += 4;
		} else {
			*o++ = *p++;
		}
	}
	return out;
}

bool nf_restart_client(net_fixture *f)
{
	dc_error err = {0};

	dc_error_clear(&err);
	dc_client_free(f->client);
	f->client = dc_client_new(f->loop, &f->cfg, &err);
	if (f->client == NULL)
		fprintf(stderr, "dc_client_new failed: %s: %s\n", dc_status_name(err.status),
		        err.message);
	return f->client != NULL;
}

bool nf_start(net_fixture *f, const char *const *dns_args, size_t count)
{
	static const char *const names[] = {"api.provider.test", "*.provider.test", "shop.test"};
	char *args[32];
	size_t n = 0;
	bool ok = false;

	f->tls = ts_tls_new(names, 3);
	if (f->tls == NULL)
		return false;
	f->https = ts_https_start(f->tls, "127.0.0.1", route_handler, f);
	if (f->https == NULL)
		return false;
	f->port = ts_https_port(f->https);

	args[n++] = strdup("--address=/api.provider.test/127.0.0.1");
	for (size_t i = 0; i < count && n < 32; i++)
		args[n++] = substitute_port(dns_args[i], f->port);
	f->dns = ts_dnsmasq_start((const char *const *)args, n);
	for (size_t i = 0; i < n; i++)
		free(args[i]);
	if (f->dns == NULL)
		return false;

	snprintf(f->allow_ports, sizeof(f->allow_ports), "%d", f->port);
	f->cfg.dns_servers = ts_dnsmasq_servers(f->dns);
	f->cfg.ca_file = f->tls->ca_file;
	f->cfg.allow_networks = "127.0.0.1/32";
	f->cfg.allow_ports = f->allow_ports;
	f->cfg.dns_timeout_ms = 2000;
	f->cfg.connect_timeout_ms = 2000;
	f->cfg.total_timeout_ms = 5000;
	f->loop = ev_loop_new(EVFLAG_AUTO);
	ok = f->loop != NULL && nf_restart_client(f);
	return ok;
}

void nf_stop(net_fixture *f)
{
	dc_client_free(f->client);
	f->client = NULL;
	if (f->loop != NULL)
		ev_loop_destroy(f->loop);
	f->loop = NULL;
	ts_dnsmasq_stop(f->dns);
	ts_https_stop(f->https);
	ts_tls_free(f->tls);
	f->dns = NULL;
	f->https = NULL;
	f->tls = NULL;
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	*(bool *)w->data = true;
	ev_break(loop, EVBREAK_ONE);
}

bool nf_run_until(net_fixture *f, const int *counter, int target, double timeout_s)
{
	bool expired = false;
	ev_timer deadline;

	ev_timer_init(&deadline, deadline_cb, timeout_s, 0.);
	deadline.data = &expired;
	ev_timer_start(f->loop, &deadline);
	while (*counter < target && !expired)
		ev_run(f->loop, EVRUN_ONCE);
	ev_timer_stop(f->loop, &deadline);
	return *counter >= target;
}

const char *nf_url(const net_fixture *f, const char *host, const char *path)
{
	static char url[512];

	snprintf(url, sizeof(url), "https://%s:%d%s", host, f->port, path);
	return url;
}

bool nf_contains(const char *text, const char *needle)
{
	return text != NULL && strstr(text, needle) != NULL;
}
