/*
 * The client on a caller's loop: many requests in flight, cancellation,
 * exact callback counts, configuration checks, and proof that the loop is
 * never blocked while a provider is slow.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_fixture.h"

#define CHECK_PATH "/v2/domainTemplates/providers/example.org/services/web"
#define IN_FLIGHT 24

typedef struct counter {
	int calls;
	int ok;
	dc_request *to_cancel; /* cancelled from the first callback */
} counter;

static net_fixture f;
static char url_api[256];

static void count_cb(void *arg, const dc_response *result, const dc_error *err)
{
	counter *c = arg;

	c->calls++;
	if (err->status == DC_OK && result != NULL)
		c->ok++;
	if (c->to_cancel != NULL) {
		dc_request_cancel(c->to_cancel);
		c->to_cancel = NULL;
	}
}

static void teardown(void)
{
	nf_stop(&f);
}

static void start_slow(long delay_ms)
{
	ts_response *r = nf_route_add(&f, "GET", CHECK_PATH);
	r->delay_ms = delay_ms;
	cr_assert(nf_start(&f, NULL, 0), "test servers did not start");
	snprintf(url_api, sizeof(url_api), "%s", nf_url(&f, "api.provider.test", ""));
}

static dc_request *check(counter *c)
{
	dc_request *req = NULL;
	dc_error err = {0};

	dc_error_clear(&err);
	cr_assert_eq(dc_template_supported_start(f.client, url_api, "example.org", "web", count_cb, c,
	                                         &req, &err),
	             DC_OK, "%s", err.message);
	cr_assert_not_null(req);
	return req;
}

Test(client, many_requests_in_flight, .fini = teardown)
{
	counter c = {0};

	start_slow(400);
	for (int i = 0; i < IN_FLIGHT; i++)
		check(&c);
	cr_assert_eq(dc_client_pending(f.client), IN_FLIGHT);

	ev_tstamp before = ev_time();
	cr_assert(nf_run_until(&f, &c.calls, IN_FLIGHT, 15.));
	ev_tstamp took = ev_time() - before;
	cr_assert_eq(c.calls, IN_FLIGHT);
	cr_assert_eq(c.ok, IN_FLIGHT);
	cr_assert_eq(dc_client_pending(f.client), 0);
	/* One after the other they would take IN_FLIGHT * 0.4 s. */
	cr_assert(took < 4.0, "requests ran one after the other: %.2f s", took);
	cr_assert_eq(ts_https_request_count(f.https), IN_FLIGHT);
}

Test(client, cancel_skips_callback, .fini = teardown)
{
	counter c = {0};

	start_slow(300);
	dc_request *during_dns = check(&c);
	dc_request *during_http = check(&c);
	check(&c);
	check(&c);
	dc_request_cancel(during_dns);
	cr_assert_eq(dc_client_pending(f.client), 3);

	/* Let the second one reach the server, then cancel it mid-transfer. */
	int never = 0;
	nf_run_until(&f, &never, 1, 0.15);
	dc_request_cancel(during_http);
	cr_assert_eq(dc_client_pending(f.client), 2);

	cr_assert(nf_run_until(&f, &c.calls, 2, 10.));
	nf_run_until(&f, &never, 1, 0.5);
	cr_assert_eq(c.calls, 2, "a cancelled request reported");
	cr_assert_eq(dc_client_pending(f.client), 0);
	dc_request_cancel(NULL);
}

Test(client, cancel_from_callback, .fini = teardown)
{
	counter fast = {0};
	counter slow = {0};

	ts_response *r = nf_route_add(&f, "GET", "/slow" CHECK_PATH);
	r->delay_ms = 800;
	nf_route_add(&f, "GET", CHECK_PATH);
	cr_assert(nf_start(&f, NULL, 0));
	snprintf(url_api, sizeof(url_api), "%s", nf_url(&f, "api.provider.test", "/slow"));
	dc_request *slow_req = check(&slow);
	snprintf(url_api, sizeof(url_api), "%s", nf_url(&f, "api.provider.test", ""));
	fast.to_cancel = slow_req;
	check(&fast);

	cr_assert(nf_run_until(&f, &fast.calls, 1, 10.));
	int never = 0;
	nf_run_until(&f, &never, 1, 1.2);
	cr_assert_eq(fast.calls, 1);
	cr_assert_eq(slow.calls, 0);
	cr_assert_eq(dc_client_pending(f.client), 0);
}

Test(client, free_with_requests_pending, .fini = teardown)
{
	counter c = {0};

	start_slow(500);
	for (int i = 0; i < 5; i++)
		check(&c);
	int never = 0;
	nf_run_until(&f, &never, 1, 0.1);
	dc_client_free(f.client);
	f.client = NULL;
	nf_run_until(&f, &never, 1, 0.7);
	cr_assert_eq(c.calls, 0);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	*(ev_tstamp *)w->data = ev_time();
}

Test(client, loop_not_blocked_by_slow_server, .fini = teardown)
{
	counter c = {0};
	ev_tstamp fired = 0;
	ev_timer tick;

	start_slow(1500);
	check(&c);
	ev_tstamp before = ev_time();
	ev_timer_init(&tick, tick_cb, 0.2, 0.);
	tick.data = &fired;
	ev_timer_start(f.loop, &tick);

	cr_assert(nf_run_until(&f, &c.calls, 1, 10.));
	cr_assert_gt(fired, 0);
	cr_assert(fired - before < 0.45, "the timer fired %.3f s late", fired - before - 0.2);
	cr_assert_eq(c.ok, 1);
}

Test(client, rejects_bad_config)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	dc_error err = {0};
	dc_config cfg = {.dns_servers = "127.0.0.1:53"};

	dc_error_clear(&err);
	cfg.total_timeout_ms = -1;
	cr_assert_null(dc_client_new(loop, &cfg, &err));
	cr_assert_eq(err.status, DC_ERR_INVALID_ARGUMENT);
	cfg.total_timeout_ms = 0;
	cfg.dns_servers = "not-an-address";
	cr_assert_null(dc_client_new(loop, &cfg, &err));
	cr_assert_eq(err.status, DC_ERR_INVALID_ARGUMENT);
	cfg.dns_servers = "127.0.0.1:53";
	cfg.allow_networks = "127.0.0.1/99";
	cr_assert_null(dc_client_new(loop, &cfg, &err));
	cr_assert_eq(err.status, DC_ERR_INVALID_ARGUMENT);
	cfg.allow_networks = NULL;
	cr_assert_null(dc_client_new(NULL, &cfg, &err));

	dc_client *c = dc_client_new(loop, &cfg, &err);
	cr_assert_not_null(c, "%s", err.message);
	cr_assert_eq(dc_client_pending(c), 0);
	dc_client_free(c);
	dc_client_free(NULL);
	ev_loop_destroy(loop);
}
