/*
 * dcctl consent-url: the URL that sends a domain owner to the DNS
 * provider's consent page (dc_consent_url), with the consent UX URL from
 * discovery (--discover) or given (--url-async-ux).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl.h"

/* Maximum number of --service-id, --host or --param options in one run. */
#define CONSENT_LIST_MAX 64

static const char consent_help[] =
	"usage: dcctl consent-url DOMAIN --service-id ID --redirect-uri URL\n"
	"                         (--discover | --url-async-ux URL) [OPTIONS]\n\n"
	"Prints the consent URL for DOMAIN: the page at the DNS provider where the owner\n"
	"approves the templates, after which the provider redirects to --redirect-uri\n"
	"with an authorization code.\n\n"
	"Options:\n"
	"  --service-id ID       template id; repeatable, joined into the scope\n"
	"  --redirect-uri URL    where the provider sends the owner back (required)\n"
	"  --discover            read urlAsyncUX from the domain's settings (DNS and HTTPS)\n"
	"  --url-async-ux URL    urlAsyncUX of the DNS provider, without discovery\n"
	"  --host HOST           an extra host the consent covers; repeatable (\"\" is the apex)\n"
	"  --param NAME=VALUE    template variable; repeatable\n"
	"  --state TEXT          opaque value the provider returns with the code\n"
	"  --provider-id ID      the service provider id of the templates (default: [worker]\n"
	"                        template_provider_id)\n"
	"  --client-id ID        OAuth client id (default: client_id of the DNS provider's\n"
	"                        config section, else the provider id)\n"
	"  --dns-provider NAME   [provider.NAME] of the config: its client_id and whether it\n"
	"                        wants the service id in the path (default with --discover:\n"
	"                        the section whose provider_id matches the settings)\n"
	"  --provider-name NAME  providerName shown on the consent page\n"
	"  --service-name NAME   serviceName shown on the consent page\n" DCCTL_COMMON_HELP
	"\nExit codes: 0 printed, 1 invalid option or parameter (a reserved template variable\n"
	"name, several service ids where the provider takes one), 2 unknown --dns-provider,\n"
	"4 DNS or the provider did not respond, 5 invalid response, 7 no Domain Connect or no\n"
	"asynchronous flow for this domain.\n";

enum {
	OPT_SERVICE = 1,
	OPT_REDIRECT,
	OPT_DISCOVER,
	OPT_URL_ASYNC_UX,
	OPT_HOST,
	OPT_PARAM,
	OPT_STATE,
	OPT_PROVIDER_ID,
	OPT_CLIENT_ID,
	OPT_DNS_PROVIDER,
	OPT_PROVIDER_NAME,
	OPT_SERVICE_NAME,
};

/* The options as given; the arrays point into argv. */
typedef struct consent_args {
	const char *domain;
	const char *services[CONSENT_LIST_MAX];
	size_t services_count;
	const char *hosts[CONSENT_LIST_MAX];
	size_t hosts_count;
	dc_param params[CONSENT_LIST_MAX];
	char *param_names[CONSENT_LIST_MAX]; /* malloc'd copies of the NAME parts */
	size_t params_count;
	const char *redirect_uri;
	bool discover;
	const char *url_async_ux;
	const char *state;
	const char *provider_id;
	const char *client_id;
	const char *dns_provider;
	const char *provider_name;
	const char *service_name;
} consent_args;

static void consent_args_clear(consent_args *a)
{
	for (size_t i = 0; i < a->params_count; i++)
		free(a->param_names[i]);
}

/* Splits and checks one --param NAME=VALUE. Returns an exit code with the error printed. */
static dcctl_exit add_param(const dcctl *ctx, consent_args *a, const char *arg)
{
	const char *eq = strchr(arg, '=');
	dc_error err = {0};

	if (eq == NULL || eq == arg)
		return out_usage(ctx, "consent-url", "--param %s: expected NAME=VALUE", arg);
	if (a->params_count == CONSENT_LIST_MAX)
		return out_usage(ctx, "consent-url", "too many --param options (maximum %d)",
		                 CONSENT_LIST_MAX);
	char *name = strndup(arg, (size_t)(eq - arg));
	if (name == NULL)
		return out_error(ctx, DCCTL_EXIT_FAILED, "out of memory");

	/* Reserved names (domain, host, state, ...) are rejected before any request. */
	dc_status st = dc_check_param_name(name, &err);
	if (st != DC_OK) {
		dcctl_exit code = out_usage(ctx, "consent-url", "--param %s: %s", arg, err.message);

		free(name);
		dc_error_clear(&err);
		return code;
	}
	a->param_names[a->params_count] = name;
	a->params[a->params_count].name = name;
	a->params[a->params_count].value = eq + 1;
	a->params_count++;
	return DCCTL_EXIT_OK;
}

static dcctl_exit add_to_list(const dcctl *ctx, const char **list, size_t *count,
                              const char *option, const char *value)
{
	if (*count == CONSENT_LIST_MAX)
		return out_usage(ctx, "consent-url", "too many %s options (maximum %d)", option,
		                 CONSENT_LIST_MAX);
	list[(*count)++] = value;
	return DCCTL_EXIT_OK;
}

/* Applies one option. Returns DCCTL_EXIT_OK, or an exit code with the error printed. */
static dcctl_exit take_option(const dcctl *ctx, consent_args *a, int opt, const char *arg)
{
	switch (opt) {
	case OPT_SERVICE:
		return add_to_list(ctx, a->services, &a->services_count, "--service-id", arg);
	case OPT_HOST:
		return add_to_list(ctx, a->hosts, &a->hosts_count, "--host", arg);
	case OPT_PARAM:
		return add_param(ctx, a, arg);
	case OPT_REDIRECT: a->redirect_uri = arg; break;
	case OPT_DISCOVER: a->discover = true; break;
	case OPT_URL_ASYNC_UX: a->url_async_ux = arg; break;
	case OPT_STATE: a->state = arg; break;
	case OPT_PROVIDER_ID: a->provider_id = arg; break;
	case OPT_CLIENT_ID: a->client_id = arg; break;
	case OPT_DNS_PROVIDER: a->dns_provider = arg; break;
	case OPT_PROVIDER_NAME: a->provider_name = arg; break;
	case OPT_SERVICE_NAME: a->service_name = arg; break;
	default:
		return out_usage(ctx, "consent-url", "invalid option");
	}
	return DCCTL_EXIT_OK;
}

static dcctl_exit check_args(const dcctl *ctx, const consent_args *a)
{
	if (a->services_count == 0)
		return out_usage(ctx, "consent-url", "missing --service-id");
	if (a->redirect_uri == NULL)
		return out_usage(ctx, "consent-url", "missing --redirect-uri");
	if (a->discover == (a->url_async_ux != NULL))
		return out_usage(ctx, "consent-url", "expected either --discover or --url-async-ux URL");
	if (a->url_async_ux != NULL && a->url_async_ux[0] == '\0')
		return out_usage(ctx, "consent-url", "--url-async-ux is empty");
	return DCCTL_EXIT_OK;
}

/* Builds the request from the arguments, the config and the discovered settings (may be NULL). */
static void build_request(const dcctl *ctx, const consent_args *a, const config_provider *p,
                          const dc_discovery *d, dc_consent_request *req)
{
	memset(req, 0, sizeof(*req));
	req->url_async_ux = d != NULL ? d->settings.url_async_ux : a->url_async_ux;
	req->provider_id = a->provider_id != NULL ? a->provider_id
	                                          : ctx->cfg->worker.template_provider_id;
	req->service_ids = a->services;
	req->service_ids_count = a->services_count;
	req->domain = a->domain;
	req->hosts = a->hosts;
	req->hosts_count = a->hosts_count;
	req->client_id = a->client_id;
	if (req->client_id == NULL && p != NULL)
		req->client_id = p->client_id;
	req->redirect_uri = a->redirect_uri;
	req->state = a->state;
	req->params = a->params;
	req->params_count = a->params_count;
	req->provider_name = a->provider_name;
	req->service_name = a->service_name;
	req->service_id_in_path = p != NULL && p->service_id_in_path;
}

static void print_url(const dcctl *ctx, const char *url, const dc_consent_request *req,
                      const config_provider *p)
{
	if (!ctx->json) {
		printf("%s\n", url);
		return;
	}
	out_json(json_pack("{s:s, s:s, s:s, s:o, s:b}", "url", url, "domain", req->domain,
	                   "url_async_ux", req->url_async_ux, "dns_provider",
	                   p != NULL ? json_string(p->name) : json_null(), "service_id_in_path",
	                   req->service_id_in_path));
}

int cmd_consent_url(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"service-id", required_argument, NULL, OPT_SERVICE},
		{"redirect-uri", required_argument, NULL, OPT_REDIRECT},
		{"discover", no_argument, NULL, OPT_DISCOVER},
		{"url-async-ux", required_argument, NULL, OPT_URL_ASYNC_UX},
		{"host", required_argument, NULL, OPT_HOST},
		{"param", required_argument, NULL, OPT_PARAM},
		{"state", required_argument, NULL, OPT_STATE},
		{"provider-id", required_argument, NULL, OPT_PROVIDER_ID},
		{"client-id", required_argument, NULL, OPT_CLIENT_ID},
		{"dns-provider", required_argument, NULL, OPT_DNS_PROVIDER},
		{"provider-name", required_argument, NULL, OPT_PROVIDER_NAME},
		{"service-name", required_argument, NULL, OPT_SERVICE_NAME},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	consent_args a = {0};
	dc_discovery *d = NULL;
	dc_error err = {0};
	char *url = NULL;
	dcctl_exit code = DCCTL_EXIT_OK;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		if (opt == 'h') {
			fputs(consent_help, stdout);
			goto out;
		}
		code = take_option(ctx, &a, opt, optarg);
		if (code != DCCTL_EXIT_OK)
			goto out;
	}
	if (argc - optind != 1) {
		code = out_usage(ctx, "consent-url", "expected one DOMAIN");
		goto out;
	}
	a.domain = argv[optind];
	code = check_args(ctx, &a);
	if (code != DCCTL_EXIT_OK)
		goto out;
	code = dcctl_load_config(ctx);
	if (code != DCCTL_EXIT_OK)
		goto out;
	if (a.provider_id == NULL && ctx->cfg->worker.template_provider_id == NULL) {
		code = out_usage(ctx, "consent-url", "missing --provider-id (or [worker] "
		                 "template_provider_id in the config)");
		goto out;
	}

	const config_provider *p = NULL;
	if (a.dns_provider != NULL) {
		p = config_find_provider(ctx->cfg, a.dns_provider);
		if (p == NULL) {
			code = out_error(ctx, DCCTL_EXIT_CONFIG, "--dns-provider %s: the config has no "
			                 "[provider.%s] section", a.dns_provider, a.dns_provider);
			goto out;
		}
	}
	if (a.discover) {
		dc_config cfg;

		dcctl_dc_config(ctx, &cfg);
		dc_status st = dc_discover(&cfg, a.domain, &d, &err);
		if (st != DC_OK) {
			code = out_error(ctx, dcctl_exit_from_dc(st), "discovery of %s failed: %s (%s)",
			                 a.domain, err.message, dc_status_name(st));
			goto out;
		}
		if (d->settings.url_async_ux == NULL) {
			code = out_error(ctx, DCCTL_EXIT_NOT_SUPPORTED, "the DNS provider of %s (%s) does "
			                 "not support the asynchronous flow: its settings have no urlAsyncUX",
			                 a.domain, d->settings.provider_id != NULL ? d->settings.provider_id
			                                                           : d->txt_value);
			goto out;
		}
		if (p == NULL && d->settings.provider_id != NULL)
			p = config_find_provider_by_id(ctx->cfg, d->settings.provider_id);
	}

	dc_consent_request req;
	build_request(ctx, &a, p, d, &req);
	dc_status st = dc_consent_url(&req, &url, &err);
	if (st != DC_OK) {
		code = out_error(ctx, dcctl_exit_from_dc(st), "cannot build the consent URL for %s: %s (%s)",
		                 a.domain, err.message, dc_status_name(st));
		goto out;
	}
	print_url(ctx, url, &req, p);
out:
	free(url);
	dc_discovery_free(d);
	dc_error_clear(&err);
	consent_args_clear(&a);
	return code;
}
