/*
 * Apply and revert against an HTTPS provider API on loopback: the request
 * layout, input checks before any request, and the status mapping.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net_fixture.h"

#define APPLY_PATH "/v2/domainTemplates/providers/example.org/services/web/apply"
#define REVERT_PATH "/v2/domainTemplates/providers/example.org/services/web/revert"

typedef struct outcome {
	int calls;
	dc_status status;
	long http_status;
	long retry_after;
	char message[DC_MESSAGE_MAX];
	json_t *conflicts;
	bool have_result;
} outcome;

static net_fixture f;
static char url_api[256];

static void response_cb(void *arg, const dc_response *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->status = err->status;
	o->http_status = result != NULL ? result->http_status : err->http_status;
	o->retry_after = err->retry_after;
	o->have_result = result != NULL;
	strcpy(o->message, err->message);
	o->conflicts = json_incref(err->conflicts);
}

static void teardown(void)
{
	nf_stop(&f);
}

static void start(void)
{
	cr_assert(nf_start(&f, NULL, 0), "test servers did not start");
	snprintf(url_api, sizeof(url_api), "%s", nf_url(&f, "api.provider.test", ""));
}

static ts_response *serve(const char *path, int status, const char *body)
{
	ts_response *r = nf_route_add(&f, "POST", path);
	r->status = status;
	r->body = body;
	return r;
}

static dc_provider provider(void)
{
	dc_provider p = {.name = "testprov", .url_api = url_api, .client_id = "c"};
	return p;
}

static dc_apply_request request(void)
{
	dc_apply_request ar = {
		.access_token = "AT-apply",
		.provider_id = "example.org",
		.service_id = "web",
		.domain = "shop.test",
		.host = "www",
	};
	return ar;
}

static outcome run(bool revert, const dc_apply_request *ar)
{
	outcome o = {0};
	dc_error err = {0};
	dc_provider p = provider();

	dc_error_clear(&err);
	dc_status st = revert ? dc_revert_start(f.client, &p, ar, response_cb, &o, NULL, &err)
	                      : dc_apply_start(f.client, &p, ar, response_cb, &o, NULL, &err);
	cr_assert_eq(st, DC_OK, "start failed: %s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, 10.), "request did not finish");
	cr_assert_eq(o.calls, 1);
	return o;
}

Test(apply, sends_everything_in_query, .fini = teardown)
{
	serve(APPLY_PATH, 200, "{\"ok\":true}");
	start();
	dc_param params[] = {{"IP", "192.0.2.1"}, {"text", "a b&c"}};
	const char *groups[] = {"g1", "g2"};
	dc_apply_request ar = request();
	ar.params = params;
	ar.params_count = 2;
	ar.group_ids = groups;
	ar.group_ids_count = 2;
	ar.force = true;
	ar.instance_id = "i-1";
	ar.provider_name = "Shop";
	ar.service_name = "Web Site";

	outcome o = run(false, &ar);
	cr_assert_eq(o.status, DC_OK, "%s: %s", dc_status_name(o.status), o.message);
	cr_assert_eq(o.http_status, 200);

	ts_request *req = ts_https_request_copy(f.https, 0);
	cr_assert_str_eq(req->method, "POST");
	cr_assert_str_eq(req->path, APPLY_PATH);
	cr_assert_str_eq(req->query, "domain=shop.test&host=www&IP=192.0.2.1&text=a%20b%26c"
	                             "&groupId=g1%2Cg2&force=1&instanceId=i-1&providerName=Shop"
	                             "&serviceName=Web%20Site");
	cr_assert_str_eq(req->authorization, "Bearer AT-apply");
	cr_assert_eq(req->body_len, 0);
	ts_request_free(req);
}

Test(apply, force_omitted_when_unset, .fini = teardown)
{
	serve(APPLY_PATH, 202, NULL);
	start();
	dc_apply_request ar = request();
	ar.host = NULL;

	outcome o = run(false, &ar);
	cr_assert_eq(o.status, DC_OK);
	cr_assert_eq(o.http_status, 202);
	ts_request *req = ts_https_request_copy(f.https, 0);
	cr_assert_str_eq(req->query, "domain=shop.test&host=");
	ts_request_free(req);
}

Test(apply, status_204_is_success, .fini = teardown)
{
	serve(APPLY_PATH, 204, NULL);
	start();
	dc_apply_request ar = request();

	outcome o = run(false, &ar);
	cr_assert_eq(o.status, DC_OK);
	cr_assert(o.have_result);
	cr_assert_eq(o.http_status, 204);
}

Test(apply, conflict_keeps_records, .fini = teardown)
{
	serve(APPLY_PATH, 409,
	      "{\"code\":\"409\",\"records\":[{\"type\":\"A\",\"host\":\"www\",\"data\":\"1.2.3.4\"}]}");
	start();
	dc_apply_request ar = request();

	outcome o = run(false, &ar);
	cr_assert_eq(o.status, DC_ERR_CONFLICT, "%s", dc_status_name(o.status));
	cr_assert_eq(o.http_status, 409);
	cr_assert(json_is_array(o.conflicts));
	cr_assert_eq(json_array_size(o.conflicts), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(o.conflicts, 0), "type")), "A");
	json_decref(o.conflicts);
}

Test(apply, conflict_without_records, .fini = teardown)
{
	serve(APPLY_PATH, 409, "conflict");
	start();
	dc_apply_request ar = request();

	outcome o = run(false, &ar);
	cr_assert_eq(o.status, DC_ERR_CONFLICT);
	cr_assert_null(o.conflicts);
}

Test(apply, status_mapping, .fini = teardown)
{
	static const struct {
		int status;
		const char *retry_after;
		dc_status expected;
	} rows[] = {
		{401, NULL, DC_ERR_UNAUTHORIZED},
		{403, NULL, DC_ERR_HTTP},
		{400, NULL, DC_ERR_HTTP},
		{404, NULL, DC_ERR_HTTP},
		{429, NULL, DC_ERR_RATE_LIMITED},
		{503, "Retry-After: 120", DC_ERR_RATE_LIMITED},
		{503, NULL, DC_ERR_TRANSIENT},
		{500, NULL, DC_ERR_TRANSIENT},
		{501, NULL, DC_ERR_TRANSIENT},
		{410, NULL, DC_ERR_HTTP},
	};
	char paths[10][96];

	for (size_t i = 0; i < 10; i++) {
		snprintf(paths[i], sizeof(paths[i]), "/r%zu%s", i, APPLY_PATH);
		ts_response *r = serve(paths[i], rows[i].status, "{}");
		r->headers[0] = rows[i].retry_after;
	}
	start();

	for (size_t i = 0; i < 10; i++) {
		char base[256];
		snprintf(base, sizeof(base), "%s/r%zu", nf_url(&f, "api.provider.test", ""), i);
		dc_provider p = provider();
		p.url_api = base;
		dc_apply_request ar = request();
		outcome o = {0};
		dc_error err = {0};
		dc_error_clear(&err);
		cr_assert_eq(dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err), DC_OK);
		cr_assert(nf_run_until(&f, &o.calls, 1, 10.));
		cr_expect_eq(o.status, rows[i].expected, "HTTP %d: got %s", rows[i].status,
		             dc_status_name(o.status));
		cr_expect_eq(o.http_status, rows[i].status);
		cr_expect_not(o.have_result);
		if (rows[i].retry_after != NULL)
			cr_expect_eq(o.retry_after, 120);
	}
}

Test(apply, retry_after_http_date, .fini = teardown)
{
	static char header[96];
	time_t later = time(NULL) + 300;
	struct tm tm;
	gmtime_r(&later, &tm);
	strftime(header, sizeof(header), "Retry-After: %a, %d %b %Y %H:%M:%S GMT", &tm);
	ts_response *r = serve(APPLY_PATH, 429, NULL);
	r->headers[0] = header;
	start();
	dc_apply_request ar = request();

	outcome o = run(false, &ar);
	cr_assert_eq(o.status, DC_ERR_RATE_LIMITED);
	cr_assert(o.retry_after >= 295 && o.retry_after <= 300, "retry_after %ld", o.retry_after);
}

Test(revert, status_mapping, .fini = teardown)
{
	serve("/a" REVERT_PATH, 501, NULL);
	serve("/b" REVERT_PATH, 410, NULL);
	serve("/c" REVERT_PATH, 200, NULL);
	start();
	const char *prefixes[] = {"/a", "/b", "/c"};
	dc_status expected[] = {DC_ERR_NOT_IMPLEMENTED, DC_ERR_NOT_APPLIED, DC_OK};

	for (size_t i = 0; i < 3; i++) {
		char base[256];
		snprintf(base, sizeof(base), "%s%s", nf_url(&f, "api.provider.test", ""), prefixes[i]);
		dc_provider p = provider();
		p.url_api = base;
		dc_apply_request ar = request();
		ar.instance_id = "i-9";
		outcome o = {0};
		dc_error err = {0};
		dc_error_clear(&err);
		cr_assert_eq(dc_revert_start(f.client, &p, &ar, response_cb, &o, NULL, &err), DC_OK);
		cr_assert(nf_run_until(&f, &o.calls, 1, 10.));
		cr_expect_eq(o.status, expected[i], "%zu: %s", i, dc_status_name(o.status));
	}
	ts_request *req = ts_https_request_copy(f.https, 2);
	cr_assert_str_eq(req->query, "domain=shop.test&host=www&instanceId=i-9");
	ts_request_free(req);
}

Test(apply, bad_input_fails_at_start, .fini = teardown)
{
	serve(APPLY_PATH, 200, NULL);
	start();
	dc_provider p = provider();
	outcome o = {0};
	dc_error err = {0};
	dc_error_clear(&err);

	const char *reserved[] = {"domain", "host", "groupId", "force", "instanceId", "fqdn"};
	for (size_t i = 0; i < 6; i++) {
		dc_param param = {reserved[i], "evil.example"};
		dc_apply_request ar = request();
		ar.params = &param;
		ar.params_count = 1;
		cr_expect_eq(dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err),
		             DC_ERR_INVALID_ARGUMENT, "%s accepted", reserved[i]);
	}

	dc_apply_request ar = request();
	ar.provider_id = "bad id";
	cr_expect_eq(dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	ar = request();
	ar.service_id = "../x";
	cr_expect_eq(dc_revert_start(f.client, &p, &ar, response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	ar = request();
	const char *groups[] = {"g,1"};
	ar.group_ids = groups;
	ar.group_ids_count = 1;
	cr_expect_eq(dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	ar = request();
	ar.instance_id = "";
	cr_expect_eq(dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	ar = request();
	ar.domain = "shop.test/../x";
	cr_expect_eq(dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);
	ar = request();
	ar.access_token = NULL;
	cr_expect_eq(dc_apply_start(f.client, &p, &ar, response_cb, &o, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT);

	cr_assert_eq(o.calls, 0);
	cr_assert_eq(dc_client_pending(f.client), 0);
	cr_assert_eq(ts_https_request_count(f.https), 0);
}

Test(apply, blocking_wrappers_work, .fini = teardown)
{
	serve(APPLY_PATH, 409, "{\"records\":[]}");
	serve(REVERT_PATH, 204, NULL);
	start();
	dc_provider p = provider();
	dc_apply_request ar = request();
	dc_response resp = {0};
	dc_error err = {0};

	dc_error_clear(&err);
	cr_assert_eq(dc_apply(&f.cfg, &p, &ar, &resp, &err), DC_ERR_CONFLICT);
	cr_assert(json_is_array(err.conflicts));
	dc_error_clear(&err);
	cr_assert_eq(dc_revert(&f.cfg, &p, &ar, &resp, &err), DC_OK, "%s", err.message);
	cr_assert_eq(resp.http_status, 204);
}
