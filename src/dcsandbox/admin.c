/*
 * The admin API under /admin/ (same server, any host name): zone records,
 * counters, per-zone overlap, reset, token expiry and run-time faults. It
 * has no authentication, which is one reason the server binds to loopback
 * unless --listen names another address.
 */
#include "grant.h"
#include "server.h"
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_method(sb_request *req, const char *method)
{
	return strcmp(req->method, method) == 0;
}

static json_t *overlap_json(const sb_config *config)
{
	json_t *root = json_object();
	for (size_t i = 0; i < config->provider_count; i++) {
		const sb_provider *p = &config->providers[i];
		json_t *zones = json_object();
		for (size_t j = 0; j < p->zone_count; j++) {
			const sb_zone *z = p->zones[j];
			json_object_set_new(zones, z->name, json_pack("{s:i, s:i, s:I}", "in_flight", z->in_flight,
				"max_in_flight", z->max_in_flight, "changes", (json_int_t)z->changes));
		}
		json_object_set_new(root, p->id, zones);
	}
	return root;
}

static json_t *providers_json(const sb_server *srv)
{
	json_t *list = json_array();
	for (size_t i = 0; i < srv->config->provider_count; i++) {
		const sb_provider *p = &srv->config->providers[i];
		json_t *zones = json_array();
		for (size_t j = 0; j < p->zone_count; j++)
			json_array_append_new(zones, json_string(p->zones[j]->name));
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", p->id, "name", p->name,
			"host", p->host, "zones", zones, "faults", sb_faults_to_json(&p->faults)));
	}
	return list;
}

/* Copy SRC's records into a new zone (deep copy). */
static zone *zone_copy(const zone *src)
{
	zone *copy = zone_new();
	for (size_t i = 0; copy != NULL && i < zone_count(src); i++) {
		if (zone_append(copy, zone_get(src, i)) != ZONE_OK) {
			zone_free(copy);
			return NULL;
		}
	}
	return copy;
}

/* Reset counters, overlap records and every zone to its seed. Lock held. */
static bool reset_all(sb_server *srv)
{
	sb_stats_reset(srv->stats);
	for (size_t i = 0; i < srv->config->provider_count; i++) {
		sb_provider *p = &srv->config->providers[i];
		for (size_t j = 0; j < p->zone_count; j++) {
			sb_zone *z = p->zones[j];
			zone *fresh = zone_copy(z->seed);
			if (fresh == NULL)
				return false;
			zone_free(z->records);
			z->records = fresh;
			z->max_in_flight = z->in_flight;
			z->changes = 0;
		}
	}
	return true;
}

/* Send 400 with the zone engine's status name and ERR's message. */
static void zone_error_response(sb_response *resp, const zone_error *err)
{
	sb_response_json(resp, 400, json_pack("{s:s, s:s, s:s}", "code", "400", "error",
		zone_status_name(err->status), "message", err->message));
}

/*
 * PUT replaces the zone's records and POST appends to them. The zone is
 * created when missing. Every record must pass the zone engine's checks
 * (zone_check_records), and a POST may not put a CNAME beside a record
 * already at its name. A rejected request changes nothing.
 */
static void write_zone(sb_request *req, sb_provider *p, const char *name, bool replace, sb_response *resp)
{
	json_t *body = req->body_len > 0 ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
	json_t *records = json_is_object(body) ? json_object_get(body, "records") : body;
	zone *parsed = NULL;
	zone_error zerr = {0};
	if (!json_is_array(records) || zone_from_json(records, &parsed, &zerr) != ZONE_OK) {
		json_decref(body);
		if (zerr.message[0] != '\0') {
			zone_error_response(resp, &zerr);
			return;
		}
		sb_response_error(resp, 400, "the body must be a JSON list of records or {\"records\": [...]}");
		return;
	}
	json_decref(body);

	pthread_mutex_lock(&req->server->lock);
	sb_zone *z = sb_provider_zone(p, name);
	zone_status checked = zone_check_records(parsed, z != NULL && !replace ? z->records : NULL, name, &zerr);
	if (checked != ZONE_OK) {
		pthread_mutex_unlock(&req->server->lock);
		zone_free(parsed);
		zone_error_response(resp, &zerr);
		return;
	}
	if (z == NULL)
		z = sb_provider_add_zone(p, name);
	bool ok = z != NULL;
	if (ok && replace) {
		zone_free(z->records);
		z->records = parsed;
		parsed = NULL;
	}
	for (size_t i = 0; ok && parsed != NULL && i < zone_count(parsed); i++)
		ok = zone_append(z->records, zone_get(parsed, i)) == ZONE_OK;
	json_t *out = ok ? zone_to_json(z->records) : NULL;
	pthread_mutex_unlock(&req->server->lock);
	zone_free(parsed);

	if (!ok) {
		sb_response_error(resp, 400, "invalid zone name or out of memory");
		return;
	}
	sb_response_json(resp, 200, json_pack("{s:s, s:o}", "zone", name, "records", out));
}

static void zone_endpoint(sb_request *req, sb_provider *p, const char *name, sb_response *resp)
{
	if (is_method(req, "PUT") || is_method(req, "POST")) {
		write_zone(req, p, name, is_method(req, "PUT"), resp);
		return;
	}
	if (!is_method(req, "GET")) {
		sb_response_error(resp, 405, "use GET, PUT or POST on a zone");
		return;
	}
	pthread_mutex_lock(&req->server->lock);
	sb_zone *z = sb_provider_zone(p, name);
	json_t *records = z != NULL ? zone_to_json(z->records) : NULL;
	pthread_mutex_unlock(&req->server->lock);
	if (records == NULL) {
		sb_response_error(resp, 404, "zone not found");
		return;
	}
	sb_response_json(resp, 200, json_pack("{s:s, s:o}", "zone", name, "records", records));
}

static void faults_endpoint(sb_request *req, sb_provider *p, sb_response *resp)
{
	if (is_method(req, "PUT")) {
		json_t *body = req->body_len > 0 ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
		sb_faults faults;
		sb_faults_init(&faults);
		sb_error err = {0};
		if (body == NULL || sb_faults_from_json(&faults, body, &err) != SB_OK) {
			json_decref(body);
			sb_response_error(resp, 400, err.message[0] != '\0' ? err.message : "the body must be a JSON object");
			return;
		}
		json_decref(body);
		pthread_mutex_lock(&req->server->lock);
		p->faults = faults;
		pthread_mutex_unlock(&req->server->lock);
	} else if (!is_method(req, "GET")) {
		sb_response_error(resp, 405, "use GET or PUT on faults");
		return;
	}
	pthread_mutex_lock(&req->server->lock);
	json_t *out = sb_faults_to_json(&p->faults);
	pthread_mutex_unlock(&req->server->lock);
	sb_response_json(resp, 200, out);
}

/* /admin/providers/<id>/... */
static void provider_endpoint(sb_request *req, const char *rest, sb_response *resp)
{
	char id[128];
	size_t len = strcspn(rest, "/");
	if (len == 0 || len >= sizeof(id)) {
		sb_response_error(resp, 404, "provider not found");
		return;
	}
	memcpy(id, rest, len);
	id[len] = '\0';
	sb_provider *p = sb_config_provider_by_id(req->server->config, id);
	if (p == NULL) {
		sb_response_error(resp, 404, "provider not found");
		return;
	}
	rest += len;

	if (strncmp(rest, "/zones/", 7) == 0 && rest[7] != '\0' && strchr(rest + 7, '/') == NULL) {
		zone_endpoint(req, p, rest + 7, resp);
	} else if (strcmp(rest, "/faults") == 0) {
		faults_endpoint(req, p, resp);
	} else if (strcmp(rest, "/expire-tokens") == 0 && is_method(req, "POST")) {
		pthread_mutex_lock(&req->server->lock);
		p->token_generation++;
		pthread_mutex_unlock(&req->server->lock);
		sb_response_json(resp, 200, json_pack("{s:s}", "expired", p->id));
	} else {
		sb_response_error(resp, 404, "unknown admin path");
	}
}

void sb_handle_admin(sb_request *req, const char *path, sb_response *resp)
{
	sb_server *srv = req->server;
	if (strcmp(path, "/admin/counters") == 0 && is_method(req, "GET")) {
		pthread_mutex_lock(&srv->lock);
		json_t *out = json_pack("{s:o, s:o, s:I, s:I}", "requests", sb_stats_to_json(srv->stats, srv->config),
			"zones", overlap_json(srv->config), "access_tokens", (json_int_t)sb_tokens_access_count(srv->tokens),
			"grants", (json_int_t)sb_tokens_grant_count(srv->tokens));
		pthread_mutex_unlock(&srv->lock);
		sb_response_json(resp, 200, out);
	} else if (strcmp(path, "/admin/overlap") == 0 && is_method(req, "GET")) {
		pthread_mutex_lock(&srv->lock);
		json_t *out = overlap_json(srv->config);
		pthread_mutex_unlock(&srv->lock);
		sb_response_json(resp, 200, out);
	} else if (strcmp(path, "/admin/reset") == 0 && is_method(req, "POST")) {
		pthread_mutex_lock(&srv->lock);
		bool ok = reset_all(srv);
		pthread_mutex_unlock(&srv->lock);
		if (ok)
			sb_response_json(resp, 200, json_pack("{s:b}", "reset", 1));
		else
			sb_response_error(resp, 500, "out of memory");
	} else if (strcmp(path, "/admin/providers") == 0 && is_method(req, "GET")) {
		pthread_mutex_lock(&srv->lock);
		json_t *out = providers_json(srv);
		pthread_mutex_unlock(&srv->lock);
		sb_response_json(resp, 200, out);
	} else if (strncmp(path, "/admin/providers/", 17) == 0) {
		provider_endpoint(req, path + 17, resp);
	} else {
		sb_response_error(resp, 404, "unknown admin path");
	}
}
