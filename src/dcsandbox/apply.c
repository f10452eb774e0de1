/*
 * Apply and revert (POST .../services/<sid>/apply and .../revert): bearer
 * token checks (401), scope checks against the consent (403), the zone
 * engine, 409 with the conflicting records unless force=1, and 501/410 for
 * revert.
 */
#include "grant.h"
#include "server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Largest number of group ids in one request. */
#define APPLY_GROUPS_MAX 32
/* Longest groupId parameter in bytes (1 KiB). */
#define APPLY_GROUPS_TEXT_MAX 1024

/* Parameter names that are not template variables. */
static const char *const RESERVED[] = {
	"domain", "host", "groupId", "force", "providerName", "serviceName", "instanceId", "sig", "key",
	"state", "redirect_uri", "client_id", "scope", "response_type", "code", "grant_type", "error",
	"error_description", "fqdn",
};

/* A request that passed the token and scope checks; lock held while it lives. */
typedef struct apply_ctx {
	const char *domain;
	const char *host;
	sb_zone *zone;
	const json_t *template;
} apply_ctx;

static const char *bearer_token(sb_request *req)
{
	const char *auth = sb_request_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	auth += 7;
	while (*auth == ' ')
		auth++;
	return *auth != '\0' ? auth : NULL;
}

static bool valid_id(const char *id)
{
	size_t len = strlen(id);
	if (len == 0 || len > 63)
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

/*
 * Check the token and the consent. On success, return true with the server
 * lock held and CTX filled. Otherwise fill RESP with the error and return
 * false with the lock released.
 */
static bool authorize(sb_request *req, const char *provider_id, const char *service_id, apply_ctx *ctx,
	sb_response *resp)
{
	const char *token = bearer_token(req);
	ctx->domain = sb_request_param(req, "domain");
	ctx->host = sb_request_param(req, "host");
	if (ctx->host != NULL && strcmp(ctx->host, "@") == 0)
		ctx->host = "";
	if (token == NULL) {
		sb_response_error(resp, 401, "missing bearer token");
		resp->www_authenticate = true;
		return false;
	}
	if (ctx->domain == NULL || *ctx->domain == '\0') {
		sb_response_error(resp, 400, "domain is missing");
		return false;
	}
	if (ctx->host != NULL && *ctx->host != '\0' && !sb_valid_domain_name(ctx->host)) {
		sb_response_error(resp, 400, "invalid host");
		return false;
	}

	pthread_mutex_lock(&req->server->lock);
	const sb_access *access = sb_tokens_access(req->server->tokens, token);
	const char *denied = NULL;
	int status = 403;
	if (access == NULL || access->grant->provider != req->provider) {
		denied = "invalid or expired access token";
		status = 401;
	} else if (strcasecmp(access->grant->zone, ctx->domain) != 0) {
		denied = "the token does not cover this domain";
	} else if (!sb_grant_has_host(access->grant, ctx->host)) {
		denied = "the token does not cover this host";
	} else if (!sb_grant_has_service(access->grant, provider_id, service_id)) {
		denied = "the token does not cover this template";
	}
	if (denied == NULL) {
		ctx->zone = sb_provider_zone(req->provider, ctx->domain);
		const tstore_template *tpl = tstore_find(req->provider->templates, provider_id, service_id);
		ctx->template = tpl != NULL ? tpl->json : NULL;
		if (ctx->zone == NULL || ctx->template == NULL) {
			denied = ctx->zone == NULL ? "zone not found" : "template not supported by this provider";
			status = 404;
		}
	}
	if (denied != NULL) {
		pthread_mutex_unlock(&req->server->lock);
		sb_response_error(resp, status, denied);
		resp->www_authenticate = status == 401;
		return false;
	}
	return true;
}

/*
 * Split TEXT ("a,b") into IDS pointing into BUF (APPLY_GROUPS_TEXT_MAX + 1
 * bytes) and store their number in *COUNT. Returns NULL, or the reason
 * when TEXT is longer than APPLY_GROUPS_TEXT_MAX bytes or names more than
 * APPLY_GROUPS_MAX ids.
 */
static const char *split_groups(const char *text, char *buf, const char **ids, size_t *count)
{
	*count = 0;
	if (strlen(text) > APPLY_GROUPS_TEXT_MAX)
		return "groupId is longer than 1024 bytes; apply the groups in several calls";
	memcpy(buf, text, strlen(text) + 1);
	char *save = NULL;
	for (char *id = strtok_r(buf, ",", &save); id != NULL; id = strtok_r(NULL, ",", &save)) {
		if (*count == APPLY_GROUPS_MAX)
			return "groupId names more than 32 groups; apply the groups in several calls";
		ids[(*count)++] = id;
	}
	return NULL;
}

/* The records the apply would delete, without those of an earlier instance of the same template. */
static json_t *conflicts(const zone *deleted, const char *provider_id, const char *service_id, const char *host)
{
	json_t *list = json_array();
	for (size_t i = 0; i < zone_count(deleted); i++) {
		const zone_record *r = zone_get(deleted, i);
		bool same = r->has_dc && r->dc.provider_id != NULL && r->dc.service_id != NULL &&
			strcasecmp(r->dc.provider_id, provider_id) == 0 &&
			strcasecmp(r->dc.service_id, service_id) == 0 &&
			strcasecmp(r->dc.host != NULL ? r->dc.host : "", host != NULL ? host : "") == 0;
		if (!same)
			json_array_append_new(list, zone_record_to_json(r));
	}
	return list;
}

static json_t *variables(sb_request *req)
{
	json_t *params = sb_request_params(req);
	for (size_t i = 0; params != NULL && i < sizeof(RESERVED) / sizeof(RESERVED[0]); i++)
		json_object_del(params, RESERVED[i]);
	return params;
}

static void success(sb_request *req, sb_response *resp, sb_zone *z, zone_result *result)
{
	zone *old = z->records;
	z->records = result->final;
	result->final = old;
	z->changes++;
	size_t added = zone_count(result->added);
	size_t deleted = zone_count(result->deleted);
	pthread_mutex_unlock(&req->server->lock);

	int status = req->provider->apply_status;
	if (status == 204) {
		resp->status = 204;
		return;
	}
	sb_response_json(resp, status, json_pack("{s:I, s:I}", "added", (json_int_t)added, "deleted", (json_int_t)deleted));
}

void sb_handle_apply(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp)
{
	const char *force_text = sb_request_param(req, "force");
	bool force = force_text != NULL && (strcmp(force_text, "1") == 0 || strcmp(force_text, "true") == 0);
	if (force_text != NULL && !force && strcmp(force_text, "0") != 0 && strcmp(force_text, "false") != 0) {
		sb_response_error(resp, 400, "force must be 0 or 1");
		return;
	}
	const char *instance = sb_request_param(req, "instanceId");
	if (instance != NULL && !valid_id(instance)) {
		sb_response_error(resp, 400, "invalid instanceId");
		return;
	}
	const char *groups_text = sb_request_param(req, "groupId");
	const char *groups[APPLY_GROUPS_MAX];
	char groups_buf[APPLY_GROUPS_TEXT_MAX + 1];
	size_t group_count = 0;
	const char *groups_invalid = groups_text != NULL ? split_groups(groups_text, groups_buf, groups, &group_count)
		: NULL;
	if (groups_invalid != NULL) {
		sb_response_error(resp, 400, groups_invalid);
		return;
	}
	json_t *params = variables(req);
	if (params == NULL) {
		sb_response_error(resp, 500, "out of memory");
		return;
	}

	apply_ctx ctx = {0};
	if (!authorize(req, provider_id, service_id, &ctx, resp)) {
		json_decref(params);
		return;
	}

	zone_apply_opts opts = {
		.domain = ctx.domain,
		.host = ctx.host,
		.params = params,
		.group_ids = group_count > 0 ? groups : NULL,
		.group_id_count = group_count,
		.multi_aware = true,
		.unique_id = instance,
		.redirect_records = req->provider->redirect_records,
	};
	zone_result result = {0};
	zone_error zerr = {0};
	zone_status zs = zone_apply_template(ctx.zone->records, ctx.template, &opts, &result, &zerr);
	json_decref(params);
	if (zs != ZONE_OK) {
		pthread_mutex_unlock(&req->server->lock);
		if (zs == ZONE_ERR_NOMEM) {
			sb_response_error(resp, 500, "out of memory");
			return;
		}
		sb_response_json(resp, 400, json_pack("{s:s, s:s, s:s}", "code", "400", "error", zone_status_name(zs),
			"message", zerr.message));
		return;
	}

	json_t *conflicting = force ? NULL : conflicts(result.deleted, provider_id, service_id, ctx.host);
	if (conflicting != NULL && json_array_size(conflicting) > 0) {
		pthread_mutex_unlock(&req->server->lock);
		zone_result_clear(&result);
		sb_response_json(resp, 409, json_pack("{s:s, s:s, s:o}", "code", "409", "message",
			"the template conflicts with existing records; apply with force=1 to replace them",
			"records", conflicting));
		return;
	}
	json_decref(conflicting);
	success(req, resp, ctx.zone, &result);
	zone_result_clear(&result);
}

void sb_handle_revert(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp)
{
	if (!req->provider->revert_supported) {
		sb_response_error(resp, 501, "this provider does not implement revert");
		return;
	}
	const char *instance = sb_request_param(req, "instanceId");
	if (instance != NULL && !valid_id(instance)) {
		sb_response_error(resp, 400, "invalid instanceId");
		return;
	}

	apply_ctx ctx = {0};
	if (!authorize(req, provider_id, service_id, &ctx, resp))
		return;

	zone_result result = {0};
	zone_error zerr = {0};
	zone_status zs = zone_revert(ctx.zone->records, provider_id, service_id, ctx.host, instance, &result, &zerr);
	if (zs != ZONE_OK) {
		pthread_mutex_unlock(&req->server->lock);
		sb_response_error(resp, 500, "out of memory");
		return;
	}
	if (zone_count(result.deleted) == 0) {
		pthread_mutex_unlock(&req->server->lock);
		zone_result_clear(&result);
		sb_response_error(resp, 410, "the template is not applied to this domain and host");
		return;
	}
	success(req, resp, ctx.zone, &result);
	zone_result_clear(&result);
}
