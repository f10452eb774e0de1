/*
 * dc_consent_url: the reference URLs from the compliance vectors, then the
 * order of parameters, host lists, encoding and every rejected input.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "vectors.h"

#define ASYNC_UX "https://domainconnect.ionos.de/async"
#define PROVIDER "exampleservice.domainconnect.org"
#define REDIRECT "https://exampleservice.domainconnect.org/async_oauth_response"
#define PREFIX ASYNC_UX "/v2/domainTemplates/providers/" PROVIDER

static const char *const one_service[] = {"template2"};

/* A valid request for the apex of example.com that each test changes. */
static dc_consent_request base_request(void)
{
	dc_consent_request req = {
		.url_async_ux = ASYNC_UX,
		.provider_id = PROVIDER,
		.service_ids = one_service,
		.service_ids_count = 1,
		.domain = "example.com",
		.redirect_uri = REDIRECT,
	};
	return req;
}

/* Builds the URL and expects it to equal want. */
static void expect_url(const dc_consent_request *req, const char *want)
{
	char *url = NULL;
	dc_error err = {0};

	cr_assert_eq(dc_consent_url(req, &url, &err), DC_OK, "%s", err.message);
	cr_expect_str_eq(url, want);
	free(url);
}

/* Expects status and a message containing fragment, and no URL. */
static void expect_error(const dc_consent_request *req, dc_status status, const char *fragment)
{
	char *url = (char *)"unchanged";
	dc_error err = {0};

	cr_expect_eq(dc_consent_url(req, &url, &err), status, "status %s, message \"%s\"",
	             dc_status_name(err.status), err.message);
	cr_expect_eq(err.status, status);
	cr_expect_null(url, "no URL may be returned on failure");
	cr_expect_not_null(strstr(err.message, fragment), "message \"%s\" lacks \"%s\"",
	                   err.message, fragment);
}

static void run_vector(const char *id)
{
	json_t *root = vectors_load();
	json_t *c = vectors_case(root, "consent_url", id);
	json_t *in = json_object_get(c, "input");
	json_t *services = json_object_get(in, "service_ids");
	const char *ids[8];
	size_t n_ids = json_array_size(services);
	size_t n_params = 0;
	dc_param *params = vectors_params(json_object_get(in, "params"), &n_params);

	cr_assert_leq(n_ids, 8);
	for (size_t i = 0; i < n_ids; i++)
		ids[i] = json_string_value(json_array_get(services, i));

	dc_consent_request req = {
		.url_async_ux = vectors_string(in, "url_async_ux"),
		.provider_id = vectors_string(in, "provider_id"),
		.service_ids = ids,
		.service_ids_count = n_ids,
		.domain = vectors_string(in, "domain"),
		.client_id = vectors_string(in, "client_id"),
		.redirect_uri = vectors_string(in, "redirect_uri"),
		.state = vectors_string(in, "state"),
		.params = params,
		.params_count = n_params,
	};
	expect_url(&req, vectors_string(c, "expected"));
	free(params);
	json_decref(root);
}

Test(consent_vectors, apex)
{
	run_vector("consent_apex");
}

Test(consent_vectors, with_host)
{
	run_vector("consent_with_host");
}

Test(consent_url, minimal_request)
{
	dc_consent_request req = base_request();

	/* client_id defaults to the provider id, state is left out when NULL. */
	expect_url(&req, PREFIX "?client_id=" PROVIDER "&scope=template2&domain=example.com&host="
	                        "&redirect_uri=https%3A%2F%2Fexampleservice.domainconnect.org"
	                        "%2Fasync_oauth_response");
}

Test(consent_url, parameter_order)
{
	dc_consent_request req = base_request();
	const dc_param params[] = {
		{"zz", "1"}, {"beta", "2"}, {"Alpha", "3"}, {"a-b", "4"},
	};

	req.client_id = "my-client";
	req.state = "s1";
	req.params = params;
	req.params_count = 4;
	req.provider_name = "Example Co";
	req.service_name = "Web hosting";
	expect_url(&req, PREFIX "?client_id=my-client&scope=template2&domain=example.com&host="
	                        "&providerName=Example%20Co&serviceName=Web%20hosting"
	                        "&Alpha=3&a-b=4&beta=2&zz=1"
	                        "&redirect_uri=https%3A%2F%2Fexampleservice.domainconnect.org"
	                        "%2Fasync_oauth_response&state=s1");
}

Test(consent_url, values_encoded)
{
	dc_consent_request req = base_request();
	const dc_param params[] = {
		{"v", "a&b=c#d%e f\r\n\xc3\xa9+/"},
	};

	req.params = params;
	req.params_count = 1;
	req.redirect_uri = "https://sp.example/cb?x=1&y=2";
	req.state = "{a=b&c}";
	expect_url(&req, PREFIX "?client_id=" PROVIDER "&scope=template2&domain=example.com&host="
	                        "&v=a%26b%3Dc%23d%25e%20f%0D%0A%C3%A9%2B%2F"
	                        "&redirect_uri=https%3A%2F%2Fsp.example%2Fcb%3Fx%3D1%26y%3D2"
	                        "&state=%7Ba%3Db%26c%7D");
}

Test(consent_url, scope_joins_services)
{
	dc_consent_request req = base_request();
	const char *const ids[] = {"template1", "template2", "t.3"};

	req.service_ids = ids;
	req.service_ids_count = 3;
	expect_url(&req, PREFIX "?client_id=" PROVIDER "&scope=template1%20template2%20t.3"
	                        "&domain=example.com&host=&redirect_uri=https%3A%2F%2F"
	                        "exampleservice.domainconnect.org%2Fasync_oauth_response");
}

Test(consent_url, service_id_in_path)
{
	dc_consent_request req = base_request();
	const char *const ids[] = {"template1", "template2"};

	req.service_id_in_path = true;
	req.url_async_ux = "https://dcc.godaddy.com/manage/";
	expect_url(&req, "https://dcc.godaddy.com/manage/v2/domainTemplates/providers/" PROVIDER
	                 "/services/template2?client_id=" PROVIDER "&scope=template2"
	                 "&domain=example.com&host=&redirect_uri=https%3A%2F%2F"
	                 "exampleservice.domainconnect.org%2Fasync_oauth_response");

	req.service_ids = ids;
	req.service_ids_count = 2;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "one service id per consent");
}

Test(consent_url, host_list)
{
	dc_consent_request req = base_request();
	const char *const hosts[] = {"www", "", "WWW", "shop.eu", "_acme"};

	req.domain = "Blog.Example.com.";
	req.hosts = hosts;
	req.hosts_count = 5;
	expect_url(&req, PREFIX "?client_id=" PROVIDER "&scope=template2&domain=example.com"
	                        "&host=blog%2Cwww%2C%2Cshop.eu%2C_acme"
	                        "&redirect_uri=https%3A%2F%2Fexampleservice.domainconnect.org"
	                        "%2Fasync_oauth_response");
}

Test(consent_url, bad_hosts_rejected)
{
	dc_consent_request req = base_request();
	const char *bad[] = {"a..b", "-x", "a b", "x.", "a,b", "a/b"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req.hosts = &bad[i];
		req.hosts_count = 1;
		expect_error(&req, DC_ERR_INVALID_ARGUMENT, "host");
	}
}

Test(consent_url, reserved_name_first)
{
	dc_consent_request req = base_request();
	const dc_param params[] = {{"IP", "1.2.3.4"}, {"domain", "evil.example"}};

	/* The reserved name wins over the missing urlAsyncUX and the bad domain. */
	req.params = params;
	req.params_count = 2;
	req.url_async_ux = NULL;
	req.domain = "com";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "\"domain\" is reserved");
}

Test(consent_url, every_reserved_name)
{
	static const char *const names[] = {
		"domain", "host", "groupId", "force", "providerName", "serviceName", "instanceId",
		"sig", "key", "state", "redirect_uri", "client_id", "scope", "response_type",
		"code", "grant_type", "error", "error_description", "fqdn",
	};
	dc_consent_request req = base_request();

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		dc_param p = {names[i], "x"};

		req.params = &p;
		req.params_count = 1;
		expect_error(&req, DC_ERR_INVALID_ARGUMENT, "reserved");
	}
}

Test(consent_url, bad_params_rejected)
{
	dc_consent_request req = base_request();
	const dc_param dup[] = {{"IP", "1"}, {"IP", "2"}};
	const dc_param no_value[] = {{"IP", NULL}};
	const dc_param bad_name[] = {{"a b", "1"}};

	req.params = dup;
	req.params_count = 2;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "given twice");
	req.params = no_value;
	req.params_count = 1;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "has no value");
	req.params = bad_name;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "invalid");
	req.params = NULL;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "missing");
}

Test(consent_url, async_not_supported)
{
	dc_consent_request req = base_request();

	req.url_async_ux = NULL;
	expect_error(&req, DC_ERR_ASYNC_NOT_SUPPORTED, "urlAsyncUX");
	req.url_async_ux = "http://insecure.example/async";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "https://");
}

Test(consent_url, bad_fields_rejected)
{
	dc_consent_request req = base_request();
	const char *const bad_id[] = {"bad id"};

	req.provider_id = "a/b";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "provider id");
	req = base_request();
	req.service_ids = bad_id;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "service id");
	req = base_request();
	req.service_ids_count = 0;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "no service id");
	req = base_request();
	req.redirect_uri = NULL;
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "redirect_uri");
	req.redirect_uri = "/relative/path";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "not an absolute URI");
	req.redirect_uri = "https://sp.example/cb#frag";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "fragment");
	req.redirect_uri = "https://sp.example/c b";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "whitespace");
	req = base_request();
	req.state = "line\nbreak";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "state");
	req = base_request();
	req.client_id = "";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "client_id");
	req = base_request();
	req.provider_name = "";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "providerName");
	req = base_request();
	req.service_name = "a\tb";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "serviceName");
	req = base_request();
	req.domain = "co.uk";
	expect_error(&req, DC_ERR_INVALID_ARGUMENT, "public suffix");
	cr_expect_eq(dc_consent_url(NULL, NULL, NULL), DC_ERR_INVALID_ARGUMENT);
}
