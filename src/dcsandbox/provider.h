/*
 * Simulated DNS providers: the config file format (one JSON object with a
 * "providers" list), each provider's identity, zones, template folder,
 * registered clients, token settings, quirks and faults, and the zones'
 * run-time state.
 */
#ifndef DC_SANDBOX_PROVIDER_H
#define DC_SANDBOX_PROVIDER_H

#include "faults.h"
#include "sandbox.h"
#include "template_store.h"
#include "zone.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A service provider registered with a DNS provider (onboarding). */
typedef struct sb_client {
	char *client_id;
	char *client_secret; /* NULL for a secret-less registration */
	char **redirect_uris;
	size_t redirect_uri_count;
} sb_client;

/* Deviations from the specification that real providers show. */
typedef struct sb_quirks {
	bool service_id_in_path;           /* consent needs /services/<sid>, one service */
	bool refresh_credentials_in_query; /* refresh needs client_id/secret in the query */
	bool plain_text_token_errors;      /* token errors as text/plain, not JSON */
} sb_quirks;

/* One zone hosted by a provider, with its seed and per-zone statistics. */
typedef struct sb_zone {
	char *name;       /* lower case, no trailing dot */
	zone *records;    /* current records */
	zone *seed;       /* records from the config, restored by a reset */
	int in_flight;    /* apply/revert calls being handled now */
	int max_in_flight;
	long changes;     /* successful apply and revert calls */
} sb_zone;

/* One simulated DNS provider. */
typedef struct sb_provider {
	char *id;          /* providerId in the settings */
	char *name;        /* providerName */
	char *host;        /* API host name, e.g. api.alpha.sandbox.test (lower case) */
	char *templates_dir;
	tstore *templates;
	sb_zone **zones;        /* each zone allocated on its own, so pointers stay valid */
	zone *redirect_records; /* A/AAAA records that back REDIR301/REDIR302 */
	size_t zone_count;
	sb_client *clients;
	size_t client_count;
	sb_quirks quirks;
	long access_token_lifetime_s;
	long code_lifetime_s;
	bool rotate_refresh_tokens;
	bool auto_approve;
	bool async_supported;   /* settings carry urlAsyncUX */
	bool revert_supported;  /* revert returns 501 when false */
	int apply_status;       /* 200, 202 or 204 on success */
	sb_faults faults;
	sb_rng rng;             /* fault draws, seeded from --seed and the provider index */
	unsigned token_generation; /* bumped to expire every access token at once */
} sb_provider;

/* Everything the config file sets. */
typedef struct sb_config {
	sb_provider *providers;
	size_t provider_count;
	bool auto_approve; /* every provider approves consent without a page */
} sb_config;

/*
 * Load the config file at PATH into a new config stored in *OUT. Relative
 * "templates_dir" paths are taken relative to the file's folder; a provider
 * without one uses DEFAULT_TEMPLATES (may be NULL, which is then an error).
 * Returns SB_OK, or SB_ERR_CONFIG / SB_ERR_IO / SB_ERR_TEMPLATES with ERR
 * naming the provider and key at fault.
 */
sb_result sb_config_load(const char *path, const char *default_templates, sb_config **out, sb_error *err);

/* Parse a config from the JSON object ROOT; BASE_DIR resolves relative paths. */
sb_result sb_config_from_json(const json_t *root, const char *base_dir,
	const char *default_templates, sb_config **out, sb_error *err);

/* Free CONFIG and everything it owns. Accepts NULL. */
void sb_config_free(sb_config *config);

/* Return the provider whose id equals ID (ignoring case), or NULL. */
sb_provider *sb_config_provider_by_id(const sb_config *config, const char *id);

/* Return the provider whose API host equals HOST (ignoring case, no port), or NULL. */
sb_provider *sb_config_provider_by_host(const sb_config *config, const char *host, size_t host_len);

/* Return the provider's zone named NAME (ignoring case), or NULL. */
sb_zone *sb_provider_zone(const sb_provider *provider, const char *name);

/*
 * Add an empty zone NAME to PROVIDER and return it, or NULL when out of
 * memory or when NAME is not a valid domain name.
 */
sb_zone *sb_provider_add_zone(sb_provider *provider, const char *name);

/* Return the registered client CLIENT_ID, or NULL. */
const sb_client *sb_provider_client(const sb_provider *provider, const char *client_id);

/*
 * Return true when REDIRECT_URI is registered for CLIENT: equal to a
 * registered URI, or equal to one up to a query that the request adds.
 * A REDIRECT_URI holding any byte <= 0x20 (control characters and the
 * space) or 0x7f is rejected, registered or not, because it goes into a
 * Location header as it is.
 */
bool sb_client_redirect_allowed(const sb_client *client, const char *redirect_uri);

/* Return true when NAME is a syntactically valid DNS name (no trailing dot). */
bool sb_valid_domain_name(const char *name);

#endif
