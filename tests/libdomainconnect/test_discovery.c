/*
 * Discovery and the template check against dnsmasq and an HTTPS server on
 * loopback.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_fixture.h"

static const char settings_body[] =
	"{\"providerId\":\"provider.test\",\"providerName\":\"Provider\","
	"\"urlAPI\":\"https://api.provider.test\",\"urlAsyncUX\":\"https://api.provider.test/async\"}";

typedef struct outcome {
	int calls;
	dc_status status;
	long http_status;
	char message[DC_MESSAGE_MAX];
	dc_discovery *discovery;
} outcome;

static void discover_cb(void *arg, dc_discovery *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->status = err->status;
	o->http_status = err->http_status;
	strcpy(o->message, err->message);
	o->discovery = result;
}

static void response_cb(void *arg, const dc_response *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->status = err->status;
	o->http_status = result != NULL ? result->http_status : err->http_status;
	strcpy(o->message, err->message);
}

static net_fixture f;

static void start(const char *const *dns_args, size_t count)
{
	cr_assert(nf_start(&f, dns_args, count), "test servers did not start");
}

static void teardown(void)
{
	nf_stop(&f);
}

/* Runs one discovery to its end; the callback must run exactly once. */
static outcome discover(const char *domain)
{
	outcome o = {0};
	dc_error err = {0};

	dc_error_clear(&err);
	dc_status st = dc_discover_start(f.client, domain, discover_cb, &o, NULL, &err);
	cr_assert_eq(st, DC_OK, "start failed: %s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "discovery did not finish");
	cr_assert_eq(o.calls, 1);
	cr_assert_eq(dc_client_pending(f.client), 0);
	return o;
}

static void add_settings_route(void)
{
	ts_response *r = nf_route_add(&f, "GET", "/v2/shop.test/settings");
	r->body = settings_body;
}

Test(discovery, finds_settings_for_subdomain, .fini = teardown)
{
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT"};
	add_settings_route();
	start(dns, 1);

	outcome o = discover("WWW.Shop.Test.");
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.message);
	cr_assert_str_eq(o.discovery->domain, "www.shop.test");
	cr_assert_str_eq(o.discovery->zone, "shop.test");
	cr_assert_str_eq(o.discovery->host, "www");
	cr_assert(nf_contains(o.discovery->txt_value, "api.provider.test:"));
	cr_assert_str_eq(o.discovery->settings.provider_id, "provider.test");
	cr_assert_str_eq(o.discovery->settings.url_api, "https://api.provider.test");

	ts_request *req = ts_https_request_copy(f.https, 0);
	cr_assert_not_null(req);
	cr_assert_str_eq(req->method, "GET");
	cr_assert_str_eq(req->path, "/v2/shop.test/settings");
	ts_request_free(req);
	dc_discovery_free(o.discovery);
}

Test(discovery, txt_value_with_path, .fini = teardown)
{
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT/client/v4/dc/"};
	ts_response *r = nf_route_add(&f, "GET", "/client/v4/dc/v2/shop.test/settings");
	r->body = settings_body;
	start(dns, 1);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_OK, "%s", o.message);
	cr_assert_str_eq(o.discovery->host, "");
	dc_discovery_free(o.discovery);
}

Test(discovery, joins_multi_string_record, .fini = teardown)
{
	/* Two character-strings in one RR: "api.provider.test:PORT/client" "/v4". */
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT/client,/v4"};
	ts_response *r = nf_route_add(&f, "GET", "/client/v4/v2/shop.test/settings");
	r->body = settings_body;
	start(dns, 1);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_OK, "%s", o.message);
	cr_assert(nf_contains(o.discovery->txt_value, "/client/v4"));
	dc_discovery_free(o.discovery);
}

Test(discovery, follows_cname, .fini = teardown)
{
	const char *dns[] = {
		"--txt-record=_domainconnect.target.test,api.provider.test:PORT",
		"--cname=_domainconnect.shop.test,_domainconnect.target.test",
	};
	add_settings_route();
	start(dns, 2);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.message);
	dc_discovery_free(o.discovery);
}

Test(discovery, nxdomain_is_not_supported, .fini = teardown)
{
	start(NULL, 0);

	outcome o = discover("nothing.test");
	cr_assert_eq(o.status, DC_ERR_NOT_SUPPORTED, "%s", dc_status_name(o.status));
	cr_assert_null(o.discovery);
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

Test(discovery, nodata_is_not_supported, .fini = teardown)
{
	const char *dns[] = {"--address=/_domainconnect.shop.test/127.0.0.1"};
	start(dns, 1);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_ERR_NOT_SUPPORTED, "%s: %s", dc_status_name(o.status), o.message);
}

Test(discovery, dns_timeout_is_transient, .fini = teardown)
{
	start(NULL, 0);
	/* A UDP socket that never answers stands in for a dead DNS server. */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	char servers[64];
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(sa.sin_port));
	f.cfg.dns_servers = servers;
	f.cfg.dns_timeout_ms = 300;
	cr_assert(nf_restart_client(&f));

	ev_tstamp before = ev_time();
	outcome o = discover("shop.test");
	ev_tstamp took = ev_time() - before;
	cr_assert_eq(o.status, DC_ERR_TRANSIENT, "%s: %s", dc_status_name(o.status), o.message);
	cr_assert(took < 2.0, "the DNS timeout took %.2f s", took);
	close(fd);
}

Test(discovery, several_values_are_ambiguous, .fini = teardown)
{
	const char *dns[] = {
		"--txt-record=_domainconnect.shop.test,api.provider.test:PORT",
		"--txt-record=_domainconnect.shop.test,other.provider.test:PORT",
	};
	start(dns, 2);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_ERR_AMBIGUOUS, "%s", dc_status_name(o.status));
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

Test(discovery, duplicate_values_are_one, .fini = teardown)
{
	const char *dns[] = {
		"--txt-record=_domainconnect.shop.test,api.provider.test:PORT",
		"--txt-record=_domainconnect.shop.test,API.Provider.test:PORT/",
		"--txt-record=_domainconnect.shop.test,paddle-verification=9b0880ce",
	};
	add_settings_route();
	start(dns, 3);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.message);
	dc_discovery_free(o.discovery);
}

Test(discovery, garbage_values_are_invalid, .fini = teardown)
{
	const char *dns[] = {
		"--txt-record=_domainconnect.a.test,https://api.provider.test",
		"--txt-record=_domainconnect.b.test,api.provider.test/x?y=1",
		"--txt-record=_domainconnect.c.test,api.provider.test/x#frag",
		"--txt-record=_domainconnect.d.test,api provider.test",
		"--txt-record=_domainconnect.e.test,paddle-verification=9b0880ce",
		"--txt-record=_domainconnect.f.test,10.0.0.1",
		"--txt-record=_domainconnect.g.test,user@api.provider.test",
		"--txt-record=_domainconnect.h.test,api.provider.test:99999",
	};
	const char *zones[] = {"a.test", "b.test", "c.test", "d.test",
	                       "e.test", "f.test", "g.test", "h.test"};
	start(dns, 8);

	for (size_t i = 0; i < 8; i++) {
		outcome o = discover(zones[i]);
		cr_expect_eq(o.status, DC_ERR_INVALID_RESPONSE, "%s: %s", zones[i],
		             dc_status_name(o.status));
	}
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

Test(discovery, disallowed_port_is_rejected, .fini = teardown)
{
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:8443"};
	start(dns, 1);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_ERR_HOST_REJECTED, "%s: %s", dc_status_name(o.status), o.message);
}

Test(discovery, settings_404_is_not_supported, .fini = teardown)
{
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT"};
	start(dns, 1);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_ERR_NOT_SUPPORTED, "%s", dc_status_name(o.status));
	cr_assert_eq(o.http_status, 404);
	cr_assert_eq(ts_https_request_count(f.https), 1);
}

Test(discovery, settings_5xx_is_transient, .fini = teardown)
{
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT"};
	ts_response *r = nf_route_add(&f, "GET", "/v2/shop.test/settings");
	r->status = 502;
	r->body = "bad gateway";
	start(dns, 1);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_ERR_TRANSIENT, "%s", dc_status_name(o.status));
	cr_assert_eq(o.http_status, 502);
}

Test(discovery, settings_bad_json_is_invalid, .fini = teardown)
{
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT"};
	ts_response *r = nf_route_add(&f, "GET", "/v2/shop.test/settings");
	r->body = "{\"providerName\":";
	start(dns, 1);

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_ERR_INVALID_RESPONSE, "%s", dc_status_name(o.status));
}

Test(discovery, settings_over_cap_too_large, .fini = teardown)
{
	static char big[4096];
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT"};
	memset(big, ' ', sizeof(big) - 1);
	ts_response *r = nf_route_add(&f, "GET", "/v2/shop.test/settings");
	r->body = big;
	start(dns, 1);
	f.cfg.max_settings_bytes = 1000;
	cr_assert(nf_restart_client(&f));

	outcome o = discover("shop.test");
	cr_assert_eq(o.status, DC_ERR_TOO_LARGE, "%s: %s", dc_status_name(o.status), o.message);
}

Test(discovery, invalid_domain_fails_at_start, .fini = teardown)
{
	dc_error err = {0};
	outcome o = {0};

	start(NULL, 0);
	dc_error_clear(&err);
	cr_assert_neq(dc_discover_start(f.client, "not a domain", discover_cb, &o, NULL, &err), DC_OK);
	cr_assert_eq(o.calls, 0);
	cr_assert_eq(dc_client_pending(f.client), 0);
}

Test(discovery, blocking_wrapper_works, .fini = teardown)
{
	const char *dns[] = {"--txt-record=_domainconnect.shop.test,api.provider.test:PORT"};
	dc_discovery *d = NULL;
	dc_error err = {0};

	add_settings_route();
	start(dns, 1);
	dc_error_clear(&err);
	cr_assert_eq(dc_discover(&f.cfg, "shop.test", &d, &err), DC_OK, "%s", err.message);
	cr_assert_str_eq(d->settings.provider_name, "Provider");
	dc_discovery_free(d);
}

/* ---- Template check ----------------------------------------------------- */

static outcome template_check(const char *url_api)
{
	outcome o = {0};
	dc_error err = {0};

	dc_error_clear(&err);
	dc_status st = dc_template_supported_start(f.client, url_api, "example.org", "web", response_cb,
	                                           &o, NULL, &err);
	cr_assert_eq(st, DC_OK, "start failed: %s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "template check did not finish");
	cr_assert_eq(o.calls, 1);
	return o;
}

Test(template_check, empty_200_is_supported, .fini = teardown)
{
	ts_response *r = nf_route_add(&f, "GET", "/api/v2/domainTemplates/providers/example.org/services/web");
	r->body = "";
	start(NULL, 0);

	outcome o = template_check(nf_url(&f, "api.provider.test", "/api/"));
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.message);
	cr_assert_eq(o.http_status, 200);
}

Test(template_check, status_204_is_supported, .fini = teardown)
{
	ts_response *r = nf_route_add(&f, "GET", "/v2/domainTemplates/providers/example.org/services/web");
	r->status = 204;
	start(NULL, 0);

	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.message);
	cr_assert_eq(o.http_status, 204);
}

Test(template_check, status_404_not_supported, .fini = teardown)
{
	start(NULL, 0);

	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	cr_assert_eq(o.status, DC_ERR_TEMPLATE_NOT_SUPPORTED, "%s", dc_status_name(o.status));
	cr_assert_eq(o.http_status, 404);
}

Test(template_check, status_503_is_transient, .fini = teardown)
{
	ts_response *r = nf_route_add(&f, "GET", "/v2/domainTemplates/*");
	r->status = 503;
	start(NULL, 0);

	outcome o = template_check(nf_url(&f, "api.provider.test", ""));
	cr_assert_eq(o.status, DC_ERR_TRANSIENT, "%s", dc_status_name(o.status));
}

Test(template_check, bad_ids_fail_at_start, .fini = teardown)
{
	dc_error err = {0};
	outcome o = {0};

	start(NULL, 0);
	dc_error_clear(&err);
	cr_assert_eq(dc_template_supported_start(f.client, nf_url(&f, "api.provider.test", ""),
	                                         "example.org", "a/b", response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	cr_assert_eq(dc_template_supported_start(f.client, "http://api.provider.test", "example.org",
	                                         "web", response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	cr_assert_eq(o.calls, 0);
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

Test(template_check, blocking_wrapper_works, .fini = teardown)
{
	dc_error err = {0};

	nf_route_add(&f, "GET", "/v2/domainTemplates/providers/example.org/services/web");
	start(NULL, 0);
	dc_error_clear(&err);
	cr_assert_eq(dc_template_supported(&f.cfg, nf_url(&f, "api.provider.test", ""), "example.org",
	                                   "web", &err),
	             DC_OK, "%s", err.message);
	cr_assert_eq(dc_template_supported(&f.cfg, nf_url(&f, "api.provider.test", ""), "example.org",
	                                   "other", &err),
	             DC_ERR_TEMPLATE_NOT_SUPPORTED);
}
