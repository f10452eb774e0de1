/*
 * dcctl discover: a domain's zone and host, its DNS provider and the
 * provider's Domain Connect settings (dc_discover), and with --service-id
 * whether the provider supports each template (dc_template_supported).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl.h"

/* Maximum number of --service-id options in one run. */
#define DISCOVER_SERVICES_MAX 32

static const char discover_help[] =
	"usage: dcctl discover DOMAIN [--service-id ID]... [--provider-id ID]\n\n"
	"Looks up the TXT record _domainconnect.ZONE, reads the DNS provider's settings\n"
	"and prints the zone, host, provider, settings URLs and whether the provider\n"
	"supports the asynchronous (OAuth) flow. DNS goes to the [dns] servers of the\n"
	"config, HTTPS requests through the [guard] settings.\n\n"
	"Options:\n"
	"  --service-id ID   also check that the provider supports template ID of\n"
	"                    --provider-id; repeatable, at most 32\n"
	"  --provider-id ID  the service provider id of the templates (default: [worker]\n"
	"                    template_provider_id)\n" DCCTL_COMMON_HELP
	"\nExit codes: 0 supported, 1 invalid domain or option, 4 DNS or the provider did not\n"
	"respond (try again later), 5 invalid or ambiguous response, 7 no Domain Connect\n"
	"for this domain, or a template not supported.\n";

enum { OPT_SERVICE = 1, OPT_PROVIDER_ID };

static json_t *json_string_or_null(const char *value)
{
	return value != NULL ? json_string(value) : json_null();
}

/* Builds the document printed by discover; templates is stolen. */
static json_t *discovery_json(const dcctl *ctx, const dc_discovery *d, json_t *templates)
{
	const dc_settings *s = &d->settings;
	json_t *name_servers = json_array();

	for (size_t i = 0; i < s->name_servers_count; i++)
		json_array_append_new(name_servers, json_string(s->name_servers[i]));

	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:i,"
	                        " s:b, s:b}",
	                        "domain", d->domain, "zone", d->zone, "host", d->host, "txt_value",
	                        d->txt_value, "provider_id", json_string_or_null(s->provider_id),
	                        "provider_name", json_string_or_null(s->provider_name),
	                        "provider_display_name", json_string_or_null(s->provider_display_name),
	                        "url_sync_ux", json_string_or_null(s->url_sync_ux), "url_async_ux",
	                        json_string_or_null(s->url_async_ux), "url_api",
	                        json_string_or_null(s->url_api), "url_control_panel",
	                        json_string_or_null(s->url_control_panel), "name_servers", name_servers,
	                        "width", s->width, "height", s->height, "sync_supported",
	                        s->url_sync_ux != NULL, "async_supported", s->url_async_ux != NULL);
	if (doc == NULL) {
		json_decref(templates);
		return NULL;
	}

	/* The [provider.NAME] section onboarded with this DNS provider, if any. */
	const config_provider *p =
		s->provider_id != NULL ? config_find_provider_by_id(ctx->cfg, s->provider_id) : NULL;
	json_object_set_new(doc, "dns_provider", json_string_or_null(p != NULL ? p->name : NULL));
	if (templates != NULL)
		json_object_set_new(doc, "templates", templates);
	return doc;
}

static void print_discovery(const json_t *doc)
{
	static const char *const keys[] = {
		"domain", "zone", "host", "txt_value", "provider_id", "provider_name",
		"provider_display_name", "dns_provider", "url_api", "url_async_ux", "url_sync_ux",
		"url_control_panel", "async_supported", "sync_supported",
	};
	char buf[1024];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const json_t *value = json_object_get(doc, keys[i]);

		if (value == NULL || json_is_null(value))
			continue;
		out_field(keys[i], "%s", out_scalar(value, buf, sizeof(buf)));
	}
	size_t i;
	json_t *ns;
	json_array_foreach(json_object_get(doc, "name_servers"), i, ns)
		out_field("name_server", "%s", json_string_value(ns));

	const char *service;
	json_t *supported;
	json_object_foreach(json_object_get(doc, "templates"), service, supported) {
		char label[96];

		snprintf(label, sizeof(label), "template %s", service);
		out_field(label, "%s", json_is_true(supported) ? "supported" : "not supported");
	}
}

/*
 * Checks each service id at the discovered urlAPI. Returns the object
 * service id -> supported in *out, or an exit code with the error printed.
 */
static dcctl_exit check_templates(const dcctl *ctx, const dc_config *cfg, const dc_discovery *d,
                                  const char *provider_id, const char *const *services,
                                  size_t count, json_t **out)
{
	json_t *templates = json_object();

	*out = NULL;
	for (size_t i = 0; i < count; i++) {
		dc_error err = {0};
		dc_status st = dc_template_supported(cfg, d->settings.url_api, provider_id, services[i],
		                                     &err);

		if (st != DC_OK && st != DC_ERR_TEMPLATE_NOT_SUPPORTED) {
			dcctl_exit code = out_error(ctx, dcctl_exit_from_dc(st),
			                            "template check of %s/%s at %s failed: %s (%s)",
			                            provider_id, services[i], d->settings.url_api,
			                            err.message, dc_status_name(st));
			dc_error_clear(&err);
			json_decref(templates);
			return code;
		}
		json_object_set_new(templates, services[i], json_boolean(st == DC_OK));
		dc_error_clear(&err);
	}
	*out = templates;
	return DCCTL_EXIT_OK;
}

/*
 * Returns the exit status of a successful discovery: 7 when a requested
 * template is not supported, each one named on stderr.
 */
static dcctl_exit templates_exit(const json_t *templates, const char *provider_id,
                                 const dc_discovery *d)
{
	const char *service;
	json_t *supported;
	dcctl_exit code = DCCTL_EXIT_OK;

	json_object_foreach((json_t *)templates, service, supported) {
		if (json_is_true(supported))
			continue;
		fprintf(stderr, "dcctl: the DNS provider of %s (%s) does not support template %s/%s\n",
		        d->domain, d->settings.provider_id != NULL ? d->settings.provider_id
		                                                   : d->txt_value,
		        provider_id, service);
		code = DCCTL_EXIT_NOT_SUPPORTED;
	}
	return code;
}

int cmd_discover(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"service-id", required_argument, NULL, OPT_SERVICE},
		{"provider-id", required_argument, NULL, OPT_PROVIDER_ID},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *services[DISCOVER_SERVICES_MAX];
	size_t services_count = 0;
	const char *provider_id = NULL;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		switch (opt) {
		case OPT_SERVICE:
			if (services_count == DISCOVER_SERVICES_MAX)
				return out_usage(ctx, "discover", "too many --service-id options (maximum %d)",
				                 DISCOVER_SERVICES_MAX);
			services[services_count++] = optarg;
			break;
		case OPT_PROVIDER_ID:
			provider_id = optarg;
			break;
		case 'h':
			fputs(discover_help, stdout);
			return DCCTL_EXIT_OK;
		default:
			return out_usage(ctx, "discover", "invalid option");
		}
	}
	if (argc - optind != 1)
		return out_usage(ctx, "discover", "expected one DOMAIN");
	const char *domain = argv[optind];

	dcctl_exit code = dcctl_load_config(ctx);
	if (code != DCCTL_EXIT_OK)
		return code;
	if (provider_id == NULL)
		provider_id = ctx->cfg->worker.template_provider_id;
	if (services_count > 0 && provider_id == NULL)
		return out_usage(ctx, "discover", "--service-id needs --provider-id or [worker] "
		                 "template_provider_id in the config");

	dc_config cfg;
	dc_error err = {0};
	dc_discovery *d = NULL;
	json_t *templates = NULL;

	dcctl_dc_config(ctx, &cfg);
	dc_status st = dc_discover(&cfg, domain, &d, &err);
	if (st != DC_OK) {
		code = out_error(ctx, dcctl_exit_from_dc(st), "discovery of %s failed: %s (%s)", domain,
		                 err.message, dc_status_name(st));
		goto out;
	}
	if (services_count > 0) {
		code = check_templates(ctx, &cfg, d, provider_id, services, services_count, &templates);
		if (code != DCCTL_EXIT_OK)
			goto out;
		code = templates_exit(templates, provider_id, d);
	}

	json_t *doc = discovery_json(ctx, d, templates);
	if (doc == NULL) {
		code = out_error(ctx, DCCTL_EXIT_FAILED, "out of memory");
		goto out;
	}
	if (ctx->json) {
		out_json(doc);
	} else {
		print_discovery(doc);
		json_decref(doc);
	}
out:
	dc_discovery_free(d);
	dc_error_clear(&err);
	return code;
}
