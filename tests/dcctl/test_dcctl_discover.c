/*
 * dcctl discover and consent-url against the real dcsandbox binary and
 * dnsmasq on loopback. Sandbox provider alpha hosts shop.test. Provider
 * beta hosts beta-shop.test and has every quirk on, so the service id goes
 * in its consent path. Provider gamma, a copy of alpha without the
 * asynchronous flow, hosts sync-only.test. dnsmasq returns NXDOMAIN for
 * every other name under .test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl_harness.h"
#include "dcsandbox/test_sandbox_harness.h"

#define ALPHA_ZONE "shop.test"
#define BETA_ZONE "beta-shop.test"
#define GAMMA_ZONE "sync-only.test"
#define GAMMA_HOST "api.gamma.sandbox.test"
/* _domainconnect points at alpha, which does not host this zone, so the settings request gets 404. */
#define NO_SETTINGS_ZONE "nosettings.test"
/* _domainconnect points at a port where nothing listens: a transient failure. */
#define DOWN_ZONE "down.test"
#define DOWN_PORT 1

typedef struct env {
	sbh *sandbox;
	ts_dnsmasq *dns;
	harness *h;
} env;

/* Moves the harness zone SBH_ZONE of provider INDEX to ZONE. */
static void rename_zone(json_t *config, size_t index, const char *zone)
{
	json_t *provider = json_array_get(json_object_get(config, "providers"), index);
	json_t *zones = json_object_get(provider, "zones");

	json_object_set(zones, zone, json_object_get(zones, SBH_ZONE));
	json_object_del(zones, SBH_ZONE);
}

/* Adds provider gamma: alpha's settings under another id and host, without urlAsyncUX. */
static void add_gamma(json_t *config)
{
	json_t *providers = json_object_get(config, "providers");
	json_t *gamma = json_deep_copy(json_array_get(providers, 0));

	json_object_set_new(gamma, "id", json_string("gamma.sandbox.test"));
	json_object_set_new(gamma, "name", json_string("Gamma DNS"));
	json_object_set_new(gamma, "host", json_string(GAMMA_HOST));
	json_object_set_new(gamma, "async", json_false());
	json_t *zones = json_object();
	json_object_set_new(zones, GAMMA_ZONE, json_array());
	json_object_set_new(gamma, "zones", zones);
	json_array_append_new(providers, gamma);
}

static env *env_start(void)
{
	env *e = calloc(1, sizeof(*e));
	const char *sandbox_args[] = {"--auto-approve"};

	cr_assert_not_null(e);
	e->sandbox = sbh_new();
	cr_assert_not_null(e->sandbox);
	json_t *config = sbh_default_config(e->sandbox->templates);
	rename_zone(config, 0, ALPHA_ZONE);
	rename_zone(config, 1, BETA_ZONE);
	add_gamma(config);
	bool started = sbh_start(e->sandbox, config, sandbox_args, 1);
	json_decref(config);
	cr_assert(started, "dcsandbox did not start");

	int port = e->sandbox->port;
	char txt[5][256];
	snprintf(txt[0], sizeof(txt[0]), "--txt-record=_domainconnect.%s,%s:%d", ALPHA_ZONE,
	         SBH_ALPHA_HOST, port);
	snprintf(txt[1], sizeof(txt[1]), "--txt-record=_domainconnect.%s,%s:%d", BETA_ZONE,
	         SBH_BETA_HOST, port);
	snprintf(txt[2], sizeof(txt[2]), "--txt-record=_domainconnect.%s,%s:%d", NO_SETTINGS_ZONE,
	         SBH_ALPHA_HOST, port);
	snprintf(txt[3], sizeof(txt[3]), "--txt-record=_domainconnect.%s,%s:%d", DOWN_ZONE,
	         SBH_ALPHA_HOST, DOWN_PORT);
	snprintf(txt[4], sizeof(txt[4]), "--txt-record=_domainconnect.%s,%s:%d", GAMMA_ZONE,
	         GAMMA_HOST, port);
	const char *dns_args[] = {"--local=/test/", "--address=/" SBH_ALPHA_HOST "/127.0.0.1",
	                          "--address=/" SBH_BETA_HOST "/127.0.0.1",
	                          "--address=/" GAMMA_HOST "/127.0.0.1", txt[0], txt[1], txt[2], txt[3],
	                          txt[4]};
	e->dns = ts_dnsmasq_start(dns_args, sizeof(dns_args) / sizeof(dns_args[0]));
	cr_assert_not_null(e->dns, "dnsmasq did not start");

	char *ini = NULL;
	int len = asprintf(&ini,
	                   "[worker]\ntemplate_provider_id = %s\n\n"
	                   "[dns]\nservers = %s\ntimeout_ms = 2000\n\n"
	                   "[guard]\nallow_networks = 127.0.0.1/32\nallow_ports = %d,%d\nca_file = %s\n\n"
	                   "[provider.alpha]\nprovider_id = %s\nurl_api = https://%s:%d\n\n"
	                   "[provider.beta]\nprovider_id = %s\nurl_api = https://%s:%d\n"
	                   "client_id = beta-client\nservice_id_in_path = true\n",
	                   SBH_TPL_PROVIDER, ts_dnsmasq_servers(e->dns), port, DOWN_PORT,
	                   e->sandbox->ca_file, SBH_ALPHA_ID, SBH_ALPHA_HOST, port, SBH_BETA_ID,
	                   SBH_BETA_HOST, port);
	cr_assert_gt(len, 0);
	e->h = harness_start(false, ini);
	free(ini);
	cr_assert_not_null(e->h);
	return e;
}

static void env_stop(env *e)
{
	harness_stop(e->h);
	ts_dnsmasq_stop(e->dns);
	sbh_free(e->sandbox);
	free(e);
}

/* Runs dcctl, checks the exit code and returns stdout parsed as JSON. */
static json_t *run_json_code(const harness *h, const char *const *argv, int expected)
{
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, expected, "%s exited %d, expected %d; stderr: %s", argv[0],
	             r.exit_code, expected, r.err);
	json_t *doc = run_json(&r);
	cr_assert_not_null(doc, "%s: stdout is not JSON: %s", argv[0], r.out);
	run_output_free(&r);
	return doc;
}

static const char *str(const json_t *doc, const char *key)
{
	return json_string_value(json_object_get(doc, key));
}

/* Requests URL at the sandbox (its host and port stripped) and returns the redirect's code. */
static char *follow_consent(sbh *sandbox, const char *url, const char *host)
{
	char prefix[256];

	snprintf(prefix, sizeof(prefix), "https://%s:%d", host, sandbox->port);
	cr_assert_eq(strncmp(url, prefix, strlen(prefix)), 0, "%s does not start with %s", url,
	             prefix);
	sbh_resp r;
	sbh_request(sandbox, "GET", host, url + strlen(prefix), NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 302, "consent answered %ld: %s", r.status, r.body);
	char *code = sbh_query_value(r.location, "code");
	cr_assert_not_null(code, "redirect without a code: %s", r.location);
	sbh_resp_clear(&r);
	return code;
}

Test(dcctl_discover, supported_domain_json)
{
	env *e = env_start();
	const char *argv[] = {"discover", "WWW.Shop.test.", "--json", NULL};
	json_t *doc = run_json_code(e->h, argv, 0);

	cr_assert_str_eq(str(doc, "domain"), "www.shop.test");
	cr_assert_str_eq(str(doc, "zone"), ALPHA_ZONE);
	cr_assert_str_eq(str(doc, "host"), "www");
	cr_assert_str_eq(str(doc, "provider_id"), SBH_ALPHA_ID);
	cr_assert_str_eq(str(doc, "provider_name"), "Alpha DNS");
	cr_assert_str_eq(str(doc, "dns_provider"), "alpha");
	cr_assert(json_is_true(json_object_get(doc, "async_supported")));
	cr_assert_not_null(strstr(str(doc, "url_async_ux"), "/consent"));
	cr_assert_not_null(strstr(str(doc, "url_api"), SBH_ALPHA_HOST));
	cr_assert_null(json_object_get(doc, "templates"), "no --service-id, no template check");
	json_decref(doc);

	const char *text[] = {"discover", ALPHA_ZONE, NULL};
	run_output r = harness_run(e->h, text);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "provider_id:"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, SBH_ALPHA_ID), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "async_supported:   true"), "%s", r.out);
	run_output_free(&r);
	env_stop(e);
}

Test(dcctl_discover, template_supported_or_not)
{
	env *e = env_start();
	const char *both[] = {"discover", ALPHA_ZONE, "--service-id", "web", "--service-id", "mail",
	                      "--json", NULL};
	json_t *doc = run_json_code(e->h, both, 0);
	json_t *templates = json_object_get(doc, "templates");
	cr_assert(json_is_true(json_object_get(templates, "web")));
	cr_assert(json_is_true(json_object_get(templates, "mail")));
	json_decref(doc);

	const char *missing[] = {"discover", ALPHA_ZONE, "--service-id", "web", "--service-id",
	                         "nosuch", "--json", NULL};
	run_output r = harness_run(e->h, missing);
	cr_assert_not_null(strstr(r.err, "template " SBH_TPL_PROVIDER "/nosuch"), "%s", r.err);
	cr_assert_null(strstr(r.err, "/web"), "%s", r.err);
	run_output_free(&r);
	doc = run_json_code(e->h, missing, 7);
	templates = json_object_get(doc, "templates");
	cr_assert(json_is_true(json_object_get(templates, "web")));
	cr_assert(json_is_false(json_object_get(templates, "nosuch")));
	json_decref(doc);

	const char *other_provider[] = {"discover", ALPHA_ZONE, "--provider-id", "other.test",
	                                "--service-id", "web", "--json", NULL};
	doc = run_json_code(e->h, other_provider, 7);
	cr_assert(json_is_false(json_object_get(json_object_get(doc, "templates"), "web")));
	json_decref(doc);
	env_stop(e);
}

Test(dcctl_discover, not_supported_exit_codes)
{
	env *e = env_start();
	const char *nxdomain[] = {"discover", "none.test", "--json", NULL};
	json_t *doc = run_json_code(e->h, nxdomain, 7);
	cr_assert_str_eq(str(json_object_get(doc, "error"), "code"), "not_supported");
	json_decref(doc);

	const char *no_settings[] = {"discover", NO_SETTINGS_ZONE, "--json", NULL};
	doc = run_json_code(e->h, no_settings, 7);
	cr_assert_str_eq(str(json_object_get(doc, "error"), "code"), "not_supported");
	json_decref(doc);

	const char *down[] = {"discover", DOWN_ZONE, "--json", NULL};
	doc = run_json_code(e->h, down, 4);
	cr_assert_str_eq(str(json_object_get(doc, "error"), "code"), "unreachable");
	json_decref(doc);

	const char *invalid[] = {"discover", "not a domain", "--json", NULL};
	doc = run_json_code(e->h, invalid, 1);
	cr_assert_str_eq(str(json_object_get(doc, "error"), "code"), "usage");
	json_decref(doc);
	env_stop(e);
}

Test(dcctl_consent, async_not_supported)
{
	env *e = env_start();
	const char *show[] = {"discover", GAMMA_ZONE, "--json", NULL};
	json_t *doc = run_json_code(e->h, show, 0);
	cr_assert(json_is_false(json_object_get(doc, "async_supported")));
	cr_assert(json_is_null(json_object_get(doc, "url_async_ux")));
	json_decref(doc);

	const char *argv[] = {"consent-url", GAMMA_ZONE, "--discover", "--service-id", "web",
	                      "--redirect-uri", SBH_REDIRECT, "--json", NULL};
	doc = run_json_code(e->h, argv, 7);
	json_t *error = json_object_get(doc, "error");
	cr_assert_str_eq(str(error, "code"), "not_supported");
	cr_assert_not_null(strstr(str(error, "message"), "urlAsyncUX"), "%s", str(error, "message"));
	json_decref(doc);
	env_stop(e);
}

Test(dcctl_consent, normal_provider_url)
{
	env *e = env_start();
	const char *argv[] = {"consent-url", "www." ALPHA_ZONE, "--discover", "--service-id", "web",
	                      "--redirect-uri", SBH_REDIRECT, "--state", "s-42", "--param",
	                      "ip=192.0.2.7", "--client-id", SBH_CLIENT, "--json", NULL};
	json_t *doc = run_json_code(e->h, argv, 0);
	const char *url = str(doc, "url");

	cr_assert_not_null(url);
	cr_assert_str_eq(str(doc, "dns_provider"), "alpha");
	cr_assert(json_is_false(json_object_get(doc, "service_id_in_path")));
	cr_assert_not_null(strstr(url, "/consent/v2/domainTemplates/providers/" SBH_TPL_PROVIDER "?"),
	                   "%s", url);
	cr_assert_null(strstr(url, "/services/"), "%s", url);
	char *value = sbh_query_value(url, "domain");
	cr_assert_str_eq(value, ALPHA_ZONE);
	free(value);
	value = sbh_query_value(url, "host");
	cr_assert_str_eq(value, "www");
	free(value);
	value = sbh_query_value(url, "scope");
	cr_assert_str_eq(value, "web");
	free(value);
	value = sbh_query_value(url, "ip");
	cr_assert_str_eq(value, "192.0.2.7");
	free(value);
	value = sbh_query_value(url, "state");
	cr_assert_str_eq(value, "s-42");
	free(value);

	/* The sandbox accepts the URL and redirects with a code. */
	char *code = follow_consent(e->sandbox, url, SBH_ALPHA_HOST);
	free(code);
	json_decref(doc);

	/* Several service ids are joined into the scope. */
	const char *two[] = {"consent-url", ALPHA_ZONE, "--discover", "--service-id", "web",
	                     "--service-id", "mail", "--redirect-uri", SBH_REDIRECT, NULL};
	run_output r = harness_run(e->h, two);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "scope=web%20mail"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "client_id=" SBH_TPL_PROVIDER), "client_id defaults to "
	                   "the provider id: %s", r.out);
	run_output_free(&r);
	env_stop(e);
}

Test(dcctl_consent, service_id_in_path_provider)
{
	env *e = env_start();

	/* --discover finds beta by its provider id and applies its quirk. */
	const char *argv[] = {"consent-url", BETA_ZONE, "--discover", "--service-id", "web",
	                      "--redirect-uri", SBH_REDIRECT, "--client-id", SBH_CLIENT, "--json",
	                      NULL};
	json_t *doc = run_json_code(e->h, argv, 0);
	const char *url = str(doc, "url");
	cr_assert_str_eq(str(doc, "dns_provider"), "beta");
	cr_assert(json_is_true(json_object_get(doc, "service_id_in_path")));
	cr_assert_not_null(strstr(url, "/providers/" SBH_TPL_PROVIDER "/services/web?"), "%s", url);
	char *code = follow_consent(e->sandbox, url, SBH_BETA_HOST);
	free(code);
	json_decref(doc);

	/* Without discovery the quirk and the client id come from --dns-provider. */
	char ux[256];
	snprintf(ux, sizeof(ux), "https://%s:%d/consent", SBH_BETA_HOST, e->sandbox->port);
	const char *given[] = {"consent-url", BETA_ZONE, "--url-async-ux", ux, "--dns-provider",
	                       "beta", "--service-id", "mail", "--redirect-uri", SBH_REDIRECT,
	                       "--provider-name", "Example Service", "--service-name", "Mail", NULL};
	run_output r = harness_run(e->h, given);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "/services/mail?"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "client_id=beta-client"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "providerName=Example%20Service"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "serviceName=Mail"), "%s", r.out);
	run_output_free(&r);

	/* That provider takes one service per consent. */
	const char *two[] = {"consent-url", BETA_ZONE, "--url-async-ux", ux, "--dns-provider", "beta",
	                     "--service-id", "web", "--service-id", "mail", "--redirect-uri",
	                     SBH_REDIRECT, NULL};
	r = harness_run(e->h, two);
	cr_assert_eq(r.exit_code, 1, "stderr: %s", r.err);
	run_output_free(&r);

	const char *unknown[] = {"consent-url", BETA_ZONE, "--url-async-ux", ux, "--dns-provider",
	                         "gamma", "--service-id", "web", "--redirect-uri", SBH_REDIRECT,
	                         NULL};
	r = harness_run(e->h, unknown);
	cr_assert_eq(r.exit_code, 2, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "gamma"), "%s", r.err);
	run_output_free(&r);
	env_stop(e);
}

Test(dcctl_consent, reserved_param_rejected)
{
	harness *h = harness_start(false, "[worker]\ntemplate_provider_id = " SBH_TPL_PROVIDER "\n");
	cr_assert_not_null(h);
	const char *argv[] = {"consent-url", ALPHA_ZONE, "--url-async-ux",
	                      "https://" SBH_ALPHA_HOST "/consent", "--service-id", "web",
	                      "--redirect-uri", SBH_REDIRECT, "--param", "domain=evil.test", NULL};
	run_output r = harness_run(h, argv);
	cr_assert_eq(r.exit_code, 1, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "");
	cr_assert_not_null(strstr(r.err, "\"domain\""), "the message names the variable: %s", r.err);
	cr_assert_not_null(strstr(r.err, "reserved"), "%s", r.err);
	run_output_free(&r);

	const char *malformed[] = {"consent-url", ALPHA_ZONE, "--url-async-ux",
	                           "https://" SBH_ALPHA_HOST "/consent", "--service-id", "web",
	                           "--redirect-uri", SBH_REDIRECT, "--param", "novalue", NULL};
	r = harness_run(h, malformed);
	cr_assert_eq(r.exit_code, 1, "stderr: %s", r.err);
	run_output_free(&r);

	const char *both[] = {"consent-url", ALPHA_ZONE, "--discover", "--url-async-ux",
	                      "https://" SBH_ALPHA_HOST "/consent", "--service-id", "web",
	                      "--redirect-uri", SBH_REDIRECT, NULL};
	r = harness_run(h, both);
	cr_assert_eq(r.exit_code, 1, "stderr: %s", r.err);
	run_output_free(&r);

	const char *empty_ux[] = {"consent-url", ALPHA_ZONE, "--url-async-ux", "", "--service-id",
	                          "web", "--redirect-uri", SBH_REDIRECT, NULL};
	r = harness_run(h, empty_ux);
	cr_assert_eq(r.exit_code, 1, "stderr: %s", r.err);
	run_output_free(&r);
	harness_stop(h);
}

/* Runs dcctl and returns its exit code; stderr must name FRAGMENT. */
static int run_code_naming(const harness *h, const char *const *argv, const char *fragment)
{
	run_output r = harness_run(h, argv);
	int code = r.exit_code;

	cr_assert_not_null(strstr(r.err, fragment), "stderr does not name %s: %s", fragment, r.err);
	run_output_free(&r);
	return code;
}

Test(dcctl_discover, usage_errors)
{
	/* No [worker] template_provider_id in this config. */
	harness *h = harness_start(false, NULL);
	cr_assert_not_null(h);

	const char *no_provider_id[] = {"discover", ALPHA_ZONE, "--service-id", "web", NULL};
	cr_assert_eq(run_code_naming(h, no_provider_id, "--provider-id"), 1);

	const char *no_domain[] = {"discover", NULL};
	cr_assert_eq(run_code_naming(h, no_domain, "DOMAIN"), 1);

	const char *many[80] = {"discover", ALPHA_ZONE};
	size_t n = 2;
	for (int i = 0; i < 33; i++) {
		many[n++] = "--service-id";
		many[n++] = "web";
	}
	many[n] = NULL;
	cr_assert_eq(run_code_naming(h, many, "too many --service-id"), 1);

	const char *ux = "https://" SBH_ALPHA_HOST "/consent";
	const char *no_service[] = {"consent-url", ALPHA_ZONE, "--url-async-ux", ux,
	                            "--redirect-uri", SBH_REDIRECT, NULL};
	cr_assert_eq(run_code_naming(h, no_service, "--service-id"), 1);

	const char *no_redirect[] = {"consent-url", ALPHA_ZONE, "--url-async-ux", ux,
	                             "--service-id", "web", NULL};
	cr_assert_eq(run_code_naming(h, no_redirect, "--redirect-uri"), 1);

	const char *no_ux[] = {"consent-url", ALPHA_ZONE, "--service-id", "web", "--redirect-uri",
	                       SBH_REDIRECT, NULL};
	cr_assert_eq(run_code_naming(h, no_ux, "--url-async-ux"), 1);

	const char *no_template_provider[] = {"consent-url", ALPHA_ZONE, "--url-async-ux", ux,
	                                      "--service-id", "web", "--redirect-uri", SBH_REDIRECT,
	                                      NULL};
	cr_assert_eq(run_code_naming(h, no_template_provider, "--provider-id"), 1);

	/* With --provider-id the same request builds, and client_id defaults to it. */
	const char *with_id[] = {"consent-url", ALPHA_ZONE, "--url-async-ux", ux, "--service-id",
	                         "web", "--redirect-uri", SBH_REDIRECT, "--provider-id", "app.test",
	                         NULL};
	run_output r = harness_run(h, with_id);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.out, "/providers/app.test?"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "client_id=app.test"), "%s", r.out);
	run_output_free(&r);
	harness_stop(h);
}
