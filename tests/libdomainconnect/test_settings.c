/*
 * dc_settings_parse: required and optional fields, URL rules, popup sizes,
 * name servers, unknown fields and the error for each bad field.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "libdomainconnect/domainconnect.h"

#define GODADDY_BODY                                                                     \
	"{\"providerId\":\"godaddy.com\",\"providerName\":\"GoDaddy\","                  \
	"\"providerDisplayName\":\"GoDaddy\",\"urlSyncUX\":\"https://dcc.godaddy.com/manage\"," \
	"\"urlAsyncUX\":\"https://dcc.godaddy.com/manage\","                             \
	"\"urlAPI\":\"https://domainconnect.api.godaddy.com\",\"width\":750,\"height\":750," \
	"\"urlControlPanel\":\"https://dcc.godaddy.com/manage/dns?domainName=%domain%\","  \
	"\"nameServers\":[\"ns01.domaincontrol.com\",\"ns02.domaincontrol.com\"]}"

static dc_status parse(const char *body, bool strict, dc_settings *s, dc_error *err)
{
	return dc_settings_parse(body, strlen(body), strict, s, err);
}

/* Parses body, expects DC_ERR_INVALID_RESPONSE and a message containing fragment. */
static void expect_invalid(const char *body, bool strict, const char *fragment)
{
	dc_settings s;
	dc_error err = {0};

	cr_expect_eq(parse(body, strict, &s, &err), DC_ERR_INVALID_RESPONSE, "body %s", body);
	cr_expect_eq(err.status, DC_ERR_INVALID_RESPONSE);
	cr_expect_not_null(strstr(err.message, fragment), "body %s: message \"%s\"", body,
	                   err.message);
	cr_expect_null(s.url_api, "a failed parse must leave no fields behind");
	cr_expect_null(s.provider_name);
	dc_settings_free(&s);
}

Test(settings, full_document)
{
	dc_settings s;
	dc_error err = {0};

	cr_assert_eq(parse(GODADDY_BODY, true, &s, &err), DC_OK, "%s", err.message);
	cr_expect_str_eq(s.provider_id, "godaddy.com");
	cr_expect_str_eq(s.provider_name, "GoDaddy");
	cr_expect_str_eq(s.provider_display_name, "GoDaddy");
	cr_expect_str_eq(s.url_sync_ux, "https://dcc.godaddy.com/manage");
	cr_expect_str_eq(s.url_async_ux, "https://dcc.godaddy.com/manage");
	cr_expect_str_eq(s.url_api, "https://domainconnect.api.godaddy.com");
	cr_expect_str_eq(s.url_control_panel,
	                 "https://dcc.godaddy.com/manage/dns?domainName=%domain%");
	cr_expect_eq(s.width, 750);
	cr_expect_eq(s.height, 750);
	cr_assert_eq(s.name_servers_count, 2);
	cr_expect_str_eq(s.name_servers[0], "ns01.domaincontrol.com");
	cr_expect_str_eq(s.name_servers[1], "ns02.domaincontrol.com");
	dc_settings_free(&s);
	dc_settings_free(&s);
	dc_settings_free(NULL);
}

Test(settings, minimal_document_defaults)
{
	dc_settings s;
	dc_error err = {0};
	const char *body = "{\"providerName\":\"Cloudflare\","
	                   "\"urlAPI\":\"https://api.cloudflare.com/client/v4/dns/domainconnect\"}";

	cr_assert_eq(parse(body, false, &s, &err), DC_OK, "%s", err.message);
	cr_expect_null(s.provider_id);
	cr_expect_null(s.provider_display_name);
	cr_expect_null(s.url_sync_ux);
	cr_expect_null(s.url_async_ux);
	cr_expect_null(s.url_control_panel);
	cr_expect_str_eq(s.url_api, "https://api.cloudflare.com/client/v4/dns/domainconnect");
	cr_expect_eq(s.width, 750);
	cr_expect_eq(s.height, 750);
	cr_expect_eq(s.name_servers_count, 0);
	cr_expect_null(s.name_servers);
	dc_settings_free(&s);
}

Test(settings, unknown_fields_ignored)
{
	dc_settings s;
	dc_error err = {0};
	const char *body = "{\"providerName\":\"P\",\"urlAPI\":\"https://api.example\","
	                   "\"redirectSupported\":\"not a bool\",\"hosts\":{\"a\":1},"
	                   "\"future\":[1,2,3],\"urlSyncUX\":null}";

	cr_assert_eq(parse(body, false, &s, &err), DC_OK, "%s", err.message);
	cr_expect_null(s.url_sync_ux, "null must count as absent");
	dc_settings_free(&s);
}

Test(settings, popup_size_forms)
{
	dc_settings s;
	dc_error err = {0};
	const char *body = "{\"providerName\":\"P\",\"urlAPI\":\"https://api.example\","
	                   "\"width\":\"600\",\"height\":480.0}";

	cr_assert_eq(parse(body, false, &s, &err), DC_OK, "%s", err.message);
	cr_expect_eq(s.width, 600);
	cr_expect_eq(s.height, 480);
	dc_settings_free(&s);

	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"width\":\"6x\"}",
	               false, "\"width\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"width\":\"\"}",
	               false, "\"width\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"width\":\" 600\"}",
	               false, "\"width\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"width\":\"+600\"}",
	               false, "\"width\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"height\":0}",
	               false, "\"height\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"height\":-5}",
	               false, "\"height\"");
	expect_invalid(
		"{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"height\":99999999999}",
		false, "\"height\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"height\":1.5}",
	               false, "\"height\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\",\"width\":true}",
	               false, "\"width\" is not a number");
}

Test(settings, url_api_required)
{
	expect_invalid("{\"providerName\":\"P\"}", false, "\"urlAPI\" is missing");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":null}", false, "\"urlAPI\" is missing");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"\"}", false, "\"urlAPI\"");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":42}", false, "\"urlAPI\" is not a string");
}

Test(settings, url_rules)
{
	static const struct {
		const char *url;
		const char *fragment;
	} cases[] = {
		{"http://api.example", "not an https:// URL"},
		{"api.example", "not an https:// URL"},
		{"https://", "no host"},
		{"https:///v2", "no host"},
		{"https://api.example/?x=1", "query or fragment"},
		{"https://api.example#frag", "query or fragment"},
		{"https://user:pw@api.example", "user information"},
		{"https://api.example/a b", "whitespace"},
		{"https://api.example/\xc3\xa9", "non-ASCII"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[256];

		snprintf(body, sizeof(body), "{\"providerName\":\"P\",\"urlAsyncUX\":\"%s\","
		                             "\"urlAPI\":\"https://api.example\"}",
		         cases[i].url);
		expect_invalid(body, false, cases[i].fragment);
		expect_invalid(body, false, "\"urlAsyncUX\"");
	}
}

Test(settings, url_with_path_accepted)
{
	dc_settings s;
	dc_error err = {0};
	const char *body = "{\"providerName\":\"P\",\"urlAPI\":\"HTTPS://api.example:8443/dc/\","
	                   "\"urlSyncUX\":\"https://sync.example/sync\"}";

	cr_assert_eq(parse(body, false, &s, &err), DC_OK, "%s", err.message);
	cr_expect_str_eq(s.url_api, "HTTPS://api.example:8443/dc/");
	dc_settings_free(&s);
}

Test(settings, provider_fields)
{
	char body[512];
	char long_name[300];

	expect_invalid("{\"urlAPI\":\"https://a.example\"}", false, "\"providerName\" is missing");
	expect_invalid("{\"providerName\":\"\",\"urlAPI\":\"https://a.example\"}", false,
	               "\"providerName\"");
	expect_invalid("{\"providerName\":7,\"urlAPI\":\"https://a.example\"}", false,
	               "\"providerName\" is not a string");

	memset(long_name, 'n', 256);
	long_name[256] = '\0';
	snprintf(body, sizeof(body), "{\"providerName\":\"%s\",\"urlAPI\":\"https://a.example\"}",
	         long_name);
	expect_invalid(body, false, "maximum is 255");

	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\"}", true,
	               "\"providerId\" is missing");
	expect_invalid("{\"providerId\":\"bad id\",\"providerName\":\"P\","
	               "\"urlAPI\":\"https://a.example\"}",
	               false, "\"providerId\"");
	expect_invalid("{\"providerId\":[],\"providerName\":\"P\",\"urlAPI\":\"https://a.example\"}",
	               false, "\"providerId\" is not a string");
	expect_invalid("{\"providerName\":\"P\",\"providerDisplayName\":1,"
	               "\"urlAPI\":\"https://a.example\"}",
	               false, "\"providerDisplayName\" is not a string");
	expect_invalid("{\"providerName\":\"P\",\"urlControlPanel\":{},"
	               "\"urlAPI\":\"https://a.example\"}",
	               false, "\"urlControlPanel\" is not a string");
}

Test(settings, name_servers_checked)
{
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\","
	               "\"nameServers\":\"ns1.example\"}",
	               false, "\"nameServers\" is not a list");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\","
	               "\"nameServers\":[\"ns1.example\",5]}",
	               false, "entry 1 is not a string");
	expect_invalid("{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\","
	               "\"nameServers\":[\"\"]}",
	               false, "entry 0 is empty");
}

Test(settings, bad_json)
{
	dc_settings s;
	dc_error err = {0};

	expect_invalid("", false, "not valid JSON");
	expect_invalid("{\"providerName\":", false, "not valid JSON");
	expect_invalid("[1,2]", false, "not a JSON object");
	expect_invalid("{\"providerName\":\"P\",\"providerName\":\"Q\",\"urlAPI\":\"https://a.example\"}",
	               false, "not valid JSON");
	expect_invalid("{\"providerName\":\"P\\u0000Q\",\"urlAPI\":\"https://a.example\"}", false,
	               "NUL");
	cr_expect_eq(dc_settings_parse(NULL, 0, false, &s, &err), DC_ERR_INVALID_RESPONSE);
	cr_expect_eq(dc_settings_parse("{}", 2, false, NULL, &err), DC_ERR_INVALID_ARGUMENT);
}

Test(settings, length_is_respected)
{
	dc_settings s;
	dc_error err = {0};
	const char *body = "{\"providerName\":\"P\",\"urlAPI\":\"https://a.example\"}trailing";

	cr_expect_eq(dc_settings_parse(body, strlen(body) - 8, false, &s, &err), DC_OK, "%s",
	             err.message);
	dc_settings_free(&s);
}
