/*
 * Hostile _domainconnect TXT answers from dnsmasq on loopback: values with a
 * scheme, userinfo, a bad port, a query or whitespace, a value of several
 * KB and many records. None may lead to a settings request anywhere but
 * the one valid value. NOTE: dnsmasq rejects a CNAME loop in its own
 * configuration, so a looping answer is not tested here.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_fixture.h"

static net_fixture f;

typedef struct outcome {
	int calls;
	dc_error err;
	dc_discovery *result;
} outcome;

static void discover_cb(void *arg, dc_discovery *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->err = *err;
	o->result = result;
}

static void teardown(void)
{
	nf_stop(&f);
}

static outcome discover(const char *const *dns_args, size_t count)
{
	outcome o = {0};
	dc_error err = {0};

	cr_assert(nf_start(&f, dns_args, count), "test servers did not start");
	dc_error_clear(&err);
	cr_assert_eq(dc_discover_start(f.client, "shop.test", discover_cb, &o, NULL, &err), DC_OK,
	             "%s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "discovery did not finish");
	return o;
}

Test(hostile_dns, bad_values_never_fetched, .fini = teardown)
{
	static const char *const args[] = {
		"--txt-record=_domainconnect.shop.test,https://api.provider.test:PORT",
		"--txt-record=_domainconnect.shop.test,user@api.provider.test:PORT",
		"--txt-record=_domainconnect.shop.test,api.provider.test:PORT/a b",
		"--txt-record=_domainconnect.shop.test,api.provider.test:PORT?x=1",
		"--txt-record=_domainconnect.shop.test,127.0.0.1:PORT",
		"--txt-record=_domainconnect.shop.test,api.provider.test:99999",
	};
	outcome o = discover(args, sizeof(args) / sizeof(args[0]));
	cr_assert_neq(o.err.status, DC_OK, "a hostile value was used");
	cr_assert_eq(ts_https_request_count(f.https), 0, "a settings request was made");
	dc_discovery_free(o.result);
}

Test(hostile_dns, dot_segments_never_fetched, .fini = teardown)
{
	static const char *const args[] = {
		"--txt-record=_domainconnect.shop.test,api.provider.test:PORT/../admin",
		"--txt-record=_domainconnect.shop.test,api.provider.test:PORT/api/./x",
		"--txt-record=_domainconnect.shop.test,api.provider.test:PORT/api/..",
	};
	outcome o = discover(args, sizeof(args) / sizeof(args[0]));
	cr_assert_eq(o.err.status, DC_ERR_INVALID_RESPONSE, "got %s: %s",
	             dc_status_name(o.err.status), o.err.message);
	cr_assert_eq(ts_https_request_count(f.https), 0, "a settings request was made");
	dc_discovery_free(o.result);
}

Test(hostile_dns, long_value_rejected, .fini = teardown)
{
	size_t len = 3000;
	char *arg = malloc(len + 64);
	cr_assert_not_null(arg);
	int n = snprintf(arg, 64, "--txt-record=_domainconnect.shop.test,api.provider.test:PORT/");
	memset(arg + n, 'a', len);
	arg[n + (int)len] = '\0';
	const char *args[] = {arg};
	outcome o = discover(args, 1);
	free(arg);
	/* A path this long is syntactically valid, so the settings URL is tried. */
	cr_assert(o.err.status == DC_OK || o.err.status == DC_ERR_NOT_SUPPORTED ||
	          o.err.status == DC_ERR_INVALID_RESPONSE || o.err.status == DC_ERR_HOST_REJECTED,
	          "%s: %s", dc_status_name(o.err.status), o.err.message);
	dc_discovery_free(o.result);
}

Test(hostile_dns, many_records_ambiguous, .fini = teardown)
{
	char *args[40];
	for (int i = 0; i < 40; i++) {
		args[i] = malloc(96);
		cr_assert_not_null(args[i]);
		snprintf(args[i], 96, "--txt-record=_domainconnect.shop.test,api.provider.test:PORT/p%d", i);
	}
	outcome o = discover((const char *const *)args, 31);
	for (int i = 0; i < 40; i++)
		free(args[i]);
	/* The resolver keeps at most 16 records and fails on more. */
	cr_assert_neq(o.err.status, DC_OK, "%s", o.err.message);
	cr_assert_eq(ts_https_request_count(f.https), 0);
}
