/* The config file: providers, their zones, clients, quirks and faults. */
#include "provider.h"

#include <ctype.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Limits on config values; a config is written by hand, so keep them loose. */
#define CONFIG_LIFETIME_MAX_S (365L * 86400)
#define CONFIG_PROVIDERS_MAX 64

static char *dup_lower(const char *s)
{
	char *copy = strdup(s);
	if (copy == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return copy;
}

bool sb_valid_domain_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 253 || name[len - 1] == '.' || name[0] == '.')
		return false;

	size_t label = 0;
	for (const char *p = name; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

static void client_clear(sb_client *client)
{
	free(client->client_id);
	free(client->client_secret);
	for (size_t i = 0; i < client->redirect_uri_count; i++)
		free(client->redirect_uris[i]);
	free(client->redirect_uris);
}

static void zone_entry_free(sb_zone *z)
{
	if (z == NULL)
		return;
	free(z->name);
	zone_free(z->records);
	zone_free(z->seed);
	free(z);
}

static void provider_clear(sb_provider *p)
{
	free(p->id);
	free(p->name);
	free(p->host);
	free(p->templates_dir);
	tstore_free(p->templates);
	zone_free(p->redirect_records);
	for (size_t i = 0; i < p->zone_count; i++)
		zone_entry_free(p->zones[i]);
	free(p->zones);
	for (size_t i = 0; i < p->client_count; i++)
		client_clear(&p->clients[i]);
	free(p->clients);
}

void sb_config_free(sb_config *config)
{
	if (config == NULL)
		return;
	for (size_t i = 0; i < config->provider_count; i++)
		provider_clear(&config->providers[i]);
	free(config->providers);
	free(config);
}

sb_provider *sb_config_provider_by_id(const sb_config *config, const char *id)
{
	for (size_t i = 0; i < config->provider_count; i++) {
		if (strcasecmp(config->providers[i].id, id) == 0)
			return &config->providers[i];
	}
	return NULL;
}

sb_provider *sb_config_provider_by_host(const sb_config *config, const char *host, size_t host_len)
{
	for (size_t i = 0; i < config->provider_count; i++) {
		const char *h = config->providers[i].host;
		if (strlen(h) == host_len && strncasecmp(h, host, host_len) == 0)
			return &config->providers[i];
	}
	return NULL;
}

sb_zone *sb_provider_zone(const sb_provider *provider, const char *name)
{
	for (size_t i = 0; i < provider->zone_count; i++) {
		if (strcasecmp(provider->zones[i]->name, name) == 0)
			return provider->zones[i];
	}
	return NULL;
}

sb_zone *sb_provider_add_zone(sb_provider *provider, const char *name)
{
	if (!sb_valid_domain_name(name))
		return NULL;
	sb_zone **zones = realloc(provider->zones, (provider->zone_count + 1) * sizeof(*zones));
	if (zones == NULL)
		return NULL;
	provider->zones = zones;

	sb_zone *z = calloc(1, sizeof(*z));
	if (z == NULL)
		return NULL;
	z->name = dup_lower(name);
	z->records = zone_new();
	z->seed = zone_new();
	if (z->name == NULL || z->records == NULL || z->seed == NULL) {
		zone_entry_free(z);
		return NULL;
	}
	zones[provider->zone_count++] = z;
	return z;
}

const sb_client *sb_provider_client(const sb_provider *provider, const char *client_id)
{
	for (size_t i = 0; i < provider->client_count; i++) {
		if (strcmp(provider->clients[i].client_id, client_id) == 0)
			return &provider->clients[i];
	}
	return NULL;
}

bool sb_client_redirect_allowed(const sb_client *client, const char *redirect_uri)
{
	/*
	 * The URI goes into a Location header as it is. A control character or a
	 * space in an appended query would make the header invalid (libmicrohttpd
	 * then drops it, leaving a 302 without Location), so reject them.
	 */
	for (const unsigned char *c = (const unsigned char *)redirect_uri; *c != '\0'; c++) {
		if (*c <= 0x20 || *c == 0x7f)
			return false;
	}
	for (size_t i = 0; i < client->redirect_uri_count; i++) {
		const char *reg = client->redirect_uris[i];
		size_t len = strlen(reg);
		if (strncmp(reg, redirect_uri, len) != 0)
			continue;
		if (redirect_uri[len] == '\0')
			return true;
		/* The service provider may add its own query to a registered URI. */
		if (redirect_uri[len] == '?' && strchr(reg, '?') == NULL)
			return true;
	}
	return false;
}

/* Read an optional boolean; a present value of another type is an error. */
static bool get_bool(const json_t *obj, const char *key, bool *out, sb_error *err, const char *where)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return true;
	if (!json_is_boolean(v)) {
		sb_error_set(err, SB_ERR_CONFIG, "%s: \"%s\" must be true or false", where, key);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

static bool get_long(const json_t *obj, const char *key, long min, long max, long *out,
	sb_error *err, const char *where)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		sb_error_set(err, SB_ERR_CONFIG, "%s: \"%s\" must be an integer from %ld to %ld",
			where, key, min, max);
		return false;
	}
	*out = (long)json_integer_value(v);
	return true;
}

static const char *get_string(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static sb_result parse_client(const json_t *obj, sb_client *client, sb_error *err, const char *where)
{
	const char *id = get_string(obj, "client_id");
	const char *secret = get_string(obj, "client_secret");
	json_t *uris = json_object_get(obj, "redirect_uris");
	if (id == NULL || *id == '\0')
		return sb_error_set(err, SB_ERR_CONFIG, "%s: a client needs a \"client_id\" string", where);
	if (!json_is_array(uris) || json_array_size(uris) == 0)
		return sb_error_set(err, SB_ERR_CONFIG, "%s: client %s needs a non-empty \"redirect_uris\" list",
			where, id);

	client->client_id = strdup(id);
	client->client_secret = secret != NULL ? strdup(secret) : NULL;
	client->redirect_uris = calloc(json_array_size(uris), sizeof(char *));
	if (client->client_id == NULL || client->redirect_uris == NULL)
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");

	size_t i;
	json_t *uri;
	json_array_foreach(uris, i, uri) {
		const char *s = json_string_value(uri);
		if (s == NULL || strncmp(s, "http", 4) != 0)
			return sb_error_set(err, SB_ERR_CONFIG, "%s: client %s: redirect URI %zu must be an http(s) URL",
				where, id, i);
		client->redirect_uris[i] = strdup(s);
		if (client->redirect_uris[i] == NULL)
			return sb_error_set(err, SB_ERR_NOMEM, "out of memory");
		client->redirect_uri_count++;
	}
	return SB_OK;
}

static sb_result parse_zones(const json_t *zones, sb_provider *p, sb_error *err)
{
	if (zones == NULL)
		return SB_OK;
	if (!json_is_object(zones))
		return sb_error_set(err, SB_ERR_CONFIG, "provider %s: \"zones\" must be an object of zone name to records",
			p->id);

	const char *name;
	json_t *records;
	json_object_foreach((json_t *)zones, name, records) {
		if (sb_provider_zone(p, name) != NULL)
			return sb_error_set(err, SB_ERR_CONFIG, "provider %s: zone %s is listed twice", p->id, name);
		sb_zone *z = sb_provider_add_zone(p, name);
		if (z == NULL)
			return sb_error_set(err, SB_ERR_CONFIG, "provider %s: invalid zone name \"%s\"", p->id, name);

		zone_error zerr = {0};
		zone *seed = NULL;
		zone *current = NULL;
		if (zone_from_json(records, &seed, &zerr) != ZONE_OK)
			return sb_error_set(err, SB_ERR_CONFIG, "provider %s: zone %s: %s", p->id, name, zerr.message);
		if (zone_from_json(records, &current, &zerr) != ZONE_OK) {
			zone_free(seed);
			return sb_error_set(err, SB_ERR_NOMEM, "out of memory");
		}
		zone_free(z->seed);
		zone_free(z->records);
		z->seed = seed;
		z->records = current;
	}
	return SB_OK;
}

/* The records behind template redirects; by default one documentation-range address. */
static sb_result parse_redirect_records(const json_t *records, sb_provider *p, sb_error *err)
{
	json_t *fallback = NULL;
	if (records == NULL) {
		fallback = json_pack("[{s:s, s:s, s:s, s:i}]", "type", "A", "name", "@", "data", "192.0.2.80", "ttl", 600);
		records = fallback;
	}
	zone_error zerr = {0};
	zone_status zs = zone_from_json(records, &p->redirect_records, &zerr);
	json_decref(fallback);
	if (zs != ZONE_OK)
		return sb_error_set(err, SB_ERR_CONFIG, "provider %s: redirect_records: %s", p->id, zerr.message);
	return SB_OK;
}

static sb_result parse_quirks(const json_t *obj, sb_provider *p, sb_error *err)
{
	if (obj == NULL)
		return SB_OK;
	char where[160];
	snprintf(where, sizeof(where), "provider %s: quirks", p->id);
	if (!json_is_object(obj))
		return sb_error_set(err, SB_ERR_CONFIG, "%s must be an object", where);
	if (!get_bool(obj, "service_id_in_path", &p->quirks.service_id_in_path, err, where) ||
		!get_bool(obj, "refresh_credentials_in_query", &p->quirks.refresh_credentials_in_query, err, where) ||
		!get_bool(obj, "plain_text_token_errors", &p->quirks.plain_text_token_errors, err, where))
		return SB_ERR_CONFIG;
	return SB_OK;
}

static char *resolve_path(const char *base_dir, const char *path)
{
	if (path[0] == '/' || base_dir == NULL)
		return strdup(path);
	size_t len = strlen(base_dir) + strlen(path) + 2;
	char *full = malloc(len);
	if (full != NULL)
		snprintf(full, len, "%s/%s", base_dir, path);
	return full;
}

static sb_result parse_provider(const json_t *obj, const char *base_dir, const char *default_templates,
	sb_provider *p, sb_error *err)
{
	const char *id = get_string(obj, "id");
	const char *name = get_string(obj, "name");
	const char *host = get_string(obj, "host");
	if (id == NULL || name == NULL || host == NULL)
		return sb_error_set(err, SB_ERR_CONFIG, "each provider needs \"id\", \"name\" and \"host\" strings");
	if (!sb_valid_domain_name(host))
		return sb_error_set(err, SB_ERR_CONFIG, "provider %s: invalid host name \"%s\"", id, host);

	p->id = strdup(id);
	p->name = strdup(name);
	p->host = dup_lower(host);
	p->access_token_lifetime_s = 3600;
	p->code_lifetime_s = 300;
	p->rotate_refresh_tokens = true;
	p->async_supported = true;
	p->revert_supported = true;
	p->apply_status = 200;
	sb_faults_init(&p->faults);
	if (p->id == NULL || p->name == NULL || p->host == NULL)
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");

	char where[160];
	snprintf(where, sizeof(where), "provider %s", id);
	long apply_status = p->apply_status;
	if (!get_long(obj, "access_token_lifetime", 1, CONFIG_LIFETIME_MAX_S, &p->access_token_lifetime_s, err, where) ||
		!get_long(obj, "code_lifetime", 1, CONFIG_LIFETIME_MAX_S, &p->code_lifetime_s, err, where) ||
		!get_long(obj, "apply_status", 200, 299, &apply_status, err, where) ||
		!get_bool(obj, "rotate_refresh_tokens", &p->rotate_refresh_tokens, err, where) ||
		!get_bool(obj, "auto_approve", &p->auto_approve, err, where) ||
		!get_bool(obj, "async", &p->async_supported, err, where) ||
		!get_bool(obj, "revert", &p->revert_supported, err, where))
		return SB_ERR_CONFIG;
	p->apply_status = (int)apply_status;

	const char *dir = get_string(obj, "templates_dir");
	if (dir == NULL && default_templates == NULL)
		return sb_error_set(err, SB_ERR_CONFIG,
			"provider %s: no \"templates_dir\" and no --templates default", id);
	p->templates_dir = dir != NULL ? resolve_path(base_dir, dir) : strdup(default_templates);
	if (p->templates_dir == NULL)
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");

	sb_result rc = parse_quirks(json_object_get(obj, "quirks"), p, err);
	if (rc != SB_OK)
		return rc;
	rc = parse_zones(json_object_get(obj, "zones"), p, err);
	if (rc != SB_OK)
		return rc;
	rc = parse_redirect_records(json_object_get(obj, "redirect_records"), p, err);
	if (rc != SB_OK)
		return rc;
	json_t *faults = json_object_get(obj, "faults");
	if (faults != NULL) {
		sb_error inner = {0};
		if (sb_faults_from_json(&p->faults, faults, &inner) != SB_OK)
			return sb_error_set(err, SB_ERR_CONFIG, "provider %s: %s", id, inner.message);
	}

	json_t *clients = json_object_get(obj, "clients");
	if (clients != NULL && !json_is_array(clients))
		return sb_error_set(err, SB_ERR_CONFIG, "provider %s: \"clients\" must be a list", id);
	p->clients = calloc(json_array_size(clients) + 1, sizeof(*p->clients));
	if (p->clients == NULL)
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");
	size_t i;
	json_t *client;
	json_array_foreach(clients, i, client) {
		rc = parse_client(client, &p->clients[i], err, where);
		p->client_count = i + 1;
		if (rc != SB_OK)
			return rc;
	}
	return SB_OK;
}

static sb_result load_templates(sb_provider *p, sb_error *err)
{
	tstore_error terr = {0};
	p->templates = tstore_new();
	if (p->templates == NULL)
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");
	if (tstore_load_dir(p->templates, p->templates_dir, &terr) != TSTORE_OK)
		return sb_error_set(err, SB_ERR_TEMPLATES, "provider %s: templates in %s: %s",
			p->id, p->templates_dir, terr.message);
	return SB_OK;
}

sb_result sb_config_from_json(const json_t *root, const char *base_dir,
	const char *default_templates, sb_config **out, sb_error *err)
{
	*out = NULL;
	json_t *providers = json_object_get(root, "providers");
	if (!json_is_array(providers) || json_array_size(providers) == 0 ||
		json_array_size(providers) > CONFIG_PROVIDERS_MAX)
		return sb_error_set(err, SB_ERR_CONFIG, "the config needs a \"providers\" list of 1 to %d providers",
			CONFIG_PROVIDERS_MAX);

	sb_result rc = SB_OK;
	sb_config *config = calloc(1, sizeof(*config));
	if (config == NULL)
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");
	config->providers = calloc(json_array_size(providers), sizeof(*config->providers));
	if (config->providers == NULL) {
		rc = sb_error_set(err, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!get_bool(root, "auto_approve", &config->auto_approve, err, "config")) {
		rc = SB_ERR_CONFIG;
		goto out;
	}

	size_t i;
	json_t *obj;
	json_array_foreach(providers, i, obj) {
		sb_provider *p = &config->providers[i];
		config->provider_count = i + 1;
		if (!json_is_object(obj)) {
			rc = sb_error_set(err, SB_ERR_CONFIG, "provider %zu is not an object", i);
			goto out;
		}
		rc = parse_provider(obj, base_dir, default_templates, p, err);
		if (rc != SB_OK)
			goto out;
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(config->providers[j].id, p->id) == 0 ||
				strcasecmp(config->providers[j].host, p->host) == 0) {
				rc = sb_error_set(err, SB_ERR_CONFIG, "providers %s and %s share an id or a host",
					config->providers[j].id, p->id);
				goto out;
			}
		}
		rc = load_templates(p, err);
		if (rc != SB_OK)
			goto out;
	}

	*out = config;
	config = NULL;
out:
	sb_config_free(config);
	return rc;
}

sb_result sb_config_load(const char *path, const char *default_templates, sb_config **out, sb_error *err)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return sb_error_set(err, SB_ERR_CONFIG, "config %s line %d: %s", path, jerr.line, jerr.text);

	char *copy = strdup(path);
	if (copy == NULL) {
		json_decref(root);
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");
	}
	sb_result rc = sb_config_from_json(root, dirname(copy), default_templates, out, err);
	free(copy);
	json_decref(root);
	return rc;
}
