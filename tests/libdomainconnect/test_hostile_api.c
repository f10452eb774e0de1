/*
 * Hostile use of the public API without a network: NULL for every pointer,
 * no error struct at all, and consent and sync URL input with CR/LF, control bytes,
 * non-ASCII, very long values and reserved names in every case.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "libdomainconnect/domainconnect.h"

/* No DNS server listens on port 1, so nothing here can leave the machine. */
static const dc_config offline = {.dns_servers = "127.0.0.1:1"};

static void discover_cb(void *arg, dc_discovery *result, const dc_error *err)
{
	(void)arg;
	(void)result;
	(void)err;
	cr_assert_fail("callback ran for a call that failed at start");
}

static void token_cb(void *arg, dc_token *result, const dc_error *err)
{
	discover_cb(arg, NULL, err);
	dc_token_free(result);
}

static void response_cb(void *arg, const dc_response *result, const dc_error *err)
{
	(void)result;
	discover_cb(arg, NULL, err);
}

Test(hostile_api, null_pure_functions)
{
	char *zone = NULL;
	char *host = NULL;
	char *url = NULL;
	int port = 0;
	dc_settings settings;

	free(dc_percent_encode(NULL));
	cr_assert_eq(dc_check_param_name(NULL, NULL), DC_ERR_INVALID_ARGUMENT);
	cr_assert_eq(dc_split_domain(NULL, &zone, &host, NULL), DC_ERR_INVALID_ARGUMENT);
	cr_assert_neq(dc_split_domain("shop.example", NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_settings_parse(NULL, 10, false, &settings, NULL), DC_OK);
	cr_assert_neq(dc_settings_parse("{}", 2, false, NULL, NULL), DC_OK);
	cr_assert_neq(dc_consent_url(NULL, &url, NULL), DC_OK);
	cr_assert_neq(dc_sync_apply_url(NULL, &url, NULL), DC_OK);
	cr_assert_null(url);
	cr_assert_neq(dc_sign(NULL, "m", 1, &url, NULL), DC_OK);
	cr_assert_neq(dc_sign("x", NULL, 1, &url, NULL), DC_OK);
	cr_assert_neq(dc_sign("x", "m", 1, NULL, NULL), DC_OK);
	cr_assert_neq(dc_guard_check_url(NULL, NULL, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_guard_check_url(NULL, "https://a.example", &host, &port, NULL), DC_ERR_INTERNAL);
	free(host);
	cr_assert_neq(dc_guard_check_address(NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_check_pinned_api(NULL, NULL, NULL), DC_OK);
	cr_assert_str_eq(dc_status_name((dc_status)-1), "DC_ERR_UNKNOWN");
	cr_assert_str_eq(dc_status_name(DC_STATUS_COUNT), "DC_ERR_UNKNOWN");

	dc_error_clear(NULL);
	dc_settings_free(NULL);
	dc_discovery_free(NULL);
	dc_token_free(NULL);
	dc_client_free(NULL);
	dc_request_cancel(NULL);
	cr_assert_eq(dc_client_pending(NULL), 0);
}

Test(hostile_api, null_async_starts)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	dc_client *c = dc_client_new(loop, &offline, NULL);
	dc_provider p = {.name = "p", .url_api = "https://api.provider.test", .client_id = "id"};
	dc_apply_request ar = {.access_token = "t", .provider_id = "a.b", .service_id = "s",
	                       .domain = "shop.test"};

	cr_assert_not_null(c);
	cr_assert_null(dc_client_new(NULL, &offline, NULL));
	cr_assert_neq(dc_discover_start(NULL, "shop.test", discover_cb, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_discover_start(c, NULL, discover_cb, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_discover_start(c, "shop.test", NULL, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_template_supported_start(c, NULL, "a", "b", response_cb, NULL, NULL, NULL),
	              DC_OK);
	cr_assert_neq(dc_template_supported_start(c, "https://x.example", NULL, NULL, response_cb,
	                                          NULL, NULL, NULL),
	              DC_OK);
	cr_assert_neq(dc_exchange_code_start(c, NULL, "c", "https://a/cb", token_cb, NULL, NULL, NULL),
	              DC_OK);
	cr_assert_neq(dc_exchange_code_start(c, &p, NULL, "https://a/cb", token_cb, NULL, NULL, NULL),
	              DC_OK);
	cr_assert_neq(dc_exchange_code_start(c, &p, "c", NULL, token_cb, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_refresh_start(c, &p, NULL, NULL, token_cb, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_refresh_start(NULL, &p, "r", NULL, token_cb, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_apply_start(c, &p, NULL, response_cb, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_revert_start(c, NULL, &ar, response_cb, NULL, NULL, NULL), DC_OK);
	ar.domain = NULL;
	cr_assert_neq(dc_apply_start(c, &p, &ar, response_cb, NULL, NULL, NULL), DC_OK);
	ar.domain = "shop.test";
	ar.access_token = NULL;
	cr_assert_neq(dc_apply_start(c, &p, &ar, response_cb, NULL, NULL, NULL), DC_OK);
	ar.access_token = "t";
	ar.params_count = 1; /* params still NULL */
	cr_assert_neq(dc_apply_start(c, &p, &ar, response_cb, NULL, NULL, NULL), DC_OK);
	ar.params_count = 0;
	ar.group_ids_count = 2; /* group_ids still NULL */
	cr_assert_neq(dc_apply_start(c, &p, &ar, response_cb, NULL, NULL, NULL), DC_OK);
	p.url_api = NULL;
	cr_assert_neq(dc_apply_start(c, &p, &ar, response_cb, NULL, NULL, NULL), DC_OK);
	cr_assert_eq(dc_client_pending(c), 0);

	dc_client_free(c);
	ev_loop_destroy(loop);
}

Test(hostile_api, null_blocking_wrappers)
{
	dc_discovery *d = NULL;
	dc_token *t = NULL;
	dc_response r;
	dc_provider p = {.name = "p", .url_api = "https://api.provider.test", .client_id = "id"};

	cr_assert_neq(dc_discover(&offline, NULL, &d, NULL), DC_OK);
	cr_assert_neq(dc_discover(&offline, "shop.test", NULL, NULL), DC_OK);
	cr_assert_neq(dc_template_supported(&offline, NULL, NULL, NULL, NULL), DC_OK);
	cr_assert_neq(dc_exchange_code(&offline, NULL, NULL, NULL, &t, NULL), DC_OK);
	cr_assert_neq(dc_exchange_code(&offline, &p, "c", "https://a/cb", NULL, NULL), DC_OK);
	cr_assert_neq(dc_refresh(&offline, &p, NULL, NULL, &t, NULL), DC_OK);
	cr_assert_neq(dc_apply(&offline, &p, NULL, &r, NULL), DC_OK);
	cr_assert_neq(dc_revert(&offline, NULL, NULL, NULL, NULL), DC_OK);
	cr_assert_null(d);
	cr_assert_null(t);
}

/* ---- Consent and sync URL input ----------------------------------------- */

static dc_status consent_with(const char *domain, const dc_param *params, size_t count,
                              const char *state, char **url)
{
	static const char *const services[] = {"web"};
	dc_consent_request req = {
		.url_async_ux = "https://consent.provider.test/async",
		.provider_id = "example.org",
		.service_ids = services,
		.service_ids_count = 1,
		.domain = domain,
		.redirect_uri = "https://app.example/cb",
		.state = state,
		.params = params,
		.params_count = count,
	};
	dc_error err = {0};

	dc_error_clear(&err);
	*url = NULL;
	dc_status st = dc_consent_url(&req, url, &err);
	cr_assert(strchr(err.message, '\n') == NULL && strchr(err.message, '\r') == NULL,
	          "message has a line break");
	return st;
}

Test(hostile_api, consent_crlf_and_controls)
{
	static const char *const bad[] = {"shop.test\r\nX-Evil: 1", "shop.test\n", "sh\top.test",
	                                  "shop.test%0d%0a", "shop .test", "\xff.test",
	                                  "shop.test\x7f"};
	char *url;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(consent_with(bad[i], NULL, 0, NULL, &url), DC_ERR_INVALID_ARGUMENT,
		             "domain %zu accepted: %s", i, url ? url : "");
		free(url);
	}
	cr_assert_eq(consent_with("shop.test", NULL, 0, "a\r\nb", &url), DC_ERR_INVALID_ARGUMENT);
	cr_assert_eq(consent_with("shop.test", NULL, 0, "caf\xc3\xa9", &url),
	             DC_ERR_INVALID_ARGUMENT);
}

Test(hostile_api, consent_values_encoded)
{
	dc_param params[] = {{"v", "a\r\nSet-Cookie: x=1&domain=evil.example#frag \xc3\xa9"}};
	char *url;

	cr_assert_eq(consent_with("shop.test", params, 1, NULL, &url), DC_OK);
	for (const char *p = url; *p != '\0'; p++)
		cr_assert(*p > 0x20 && *p < 0x7f, "URL byte 0x%02x not encoded: %s",
		          (unsigned char)*p, url);
	cr_assert_null(strstr(url, "&domain=evil"), "%s", url);
	cr_assert_null(strchr(url, '#'), "%s", url);
	free(url);
}

Test(hostile_api, consent_very_long_values)
{
	size_t len = 1 << 20;
	char *big = malloc(len + 1);
	char *url;

	cr_assert_not_null(big);
	memset(big, 'a', len);
	big[len] = '\0';
	cr_assert_eq(consent_with(big, NULL, 0, NULL, &url), DC_ERR_INVALID_ARGUMENT);
	cr_assert_eq(consent_with("shop.test", NULL, 0, big, &url), DC_OK,
	             "a long printable state is valid VSCHAR");
	free(url);

	dc_param params[] = {{big, "v"}};
	cr_assert_eq(consent_with("shop.test", params, 1, NULL, &url), DC_ERR_INVALID_ARGUMENT);
	free(big);
}

/* Every case variant of each reserved name is still an ordinary variable: names are
 * case-sensitive, so only the exact spelling is rejected. */
Test(hostile_api, reserved_names_every_case)
{
	static const char *const reserved[] = {
		"domain", "host", "groupId", "force", "providerName", "serviceName", "instanceId",
		"sig", "key", "state", "redirect_uri", "client_id", "scope", "response_type", "code",
		"grant_type", "error", "error_description", "fqdn"};

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		char name[64];
		size_t len = strlen(reserved[i]);

		cr_expect_eq(dc_check_param_name(reserved[i], NULL), DC_ERR_INVALID_ARGUMENT, "%s",
		             reserved[i]);
		for (size_t mask = 1; mask < ((size_t)1 << (len < 10 ? len : 10)); mask++) {
			strcpy(name, reserved[i]);
			for (size_t b = 0; b < len && b < 10; b++)
				if (mask & ((size_t)1 << b))
					name[b] = (char)(isupper((unsigned char)name[b])
					                         ? tolower((unsigned char)name[b])
					                         : toupper((unsigned char)name[b]));
			if (strcmp(name, reserved[i]) == 0)
				continue;
			/* A variant equal to another reserved name is rejected by that name. */
			bool other = false;
			for (size_t j = 0; j < sizeof(reserved) / sizeof(reserved[0]); j++)
				other = other || strcmp(name, reserved[j]) == 0;
			if (!other)
				cr_expect_eq(dc_check_param_name(name, NULL), DC_OK, "%s", name);
		}
	}
}

Test(hostile_api, sync_url_hostile_input)
{
	dc_param params[] = {{"v", "x\r\ny"}};
	dc_sync_request req = {
		.url_sync_ux = "https://sync.provider.test/sync",
		.provider_id = "example.org",
		.service_id = "web",
		.domain = "shop.test",
		.host = "a\r\nb",
		.params = params,
		.params_count = 1,
	};
	dc_error err = {0};
	char *url = NULL;

	dc_error_clear(&err);
	cr_assert_eq(dc_sync_apply_url(&req, &url, &err), DC_ERR_INVALID_ARGUMENT);
	cr_assert_null(url);
	req.host = "www";
	req.url_sync_ux = "https://sync.provider.test/sync?x=1";
	cr_assert_eq(dc_sync_apply_url(&req, &url, &err), DC_ERR_INVALID_ARGUMENT);
	req.url_sync_ux = "https://sync.provider.test/sync";
	req.redirect_uri = "https://app.example/cb\r\nX: 1";
	cr_assert_eq(dc_sync_apply_url(&req, &url, &err), DC_ERR_INVALID_ARGUMENT);
	req.redirect_uri = NULL;
	cr_assert_eq(dc_sync_apply_url(&req, &url, &err), DC_OK, "%s", err.message);
	cr_assert_not_null(strstr(url, "v=x%0D%0Ay"), "%s", url);
	free(url);
}

Test(hostile_api, apply_duplicate_variable_rejected)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	dc_client *c = dc_client_new(loop, &offline, NULL);
	dc_provider p = {.name = "p", .url_api = "https://api.provider.test", .client_id = "id"};
	dc_param params[] = {{"ip", "192.0.2.1"}, {"ip", "192.0.2.2"}};
	dc_apply_request ar = {.access_token = "t", .provider_id = "a.b", .service_id = "s",
	                       .domain = "shop.test", .params = params, .params_count = 2};
	dc_error err = {0};

	cr_assert_not_null(c);
	dc_error_clear(&err);
	cr_assert_eq(dc_apply_start(c, &p, &ar, response_cb, NULL, NULL, &err),
	             DC_ERR_INVALID_ARGUMENT, "a name sent twice was accepted");
	cr_assert_eq(dc_client_pending(c), 0);
	dc_client_free(c);
	ev_loop_destroy(loop);
}
