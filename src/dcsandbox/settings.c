/* The settings endpoint (GET /v2/<zone>/settings) and the template check. */
#include "server.h"

#include <stdio.h>
#include <string.h>

/* Popup size advertised in the settings, the protocol's default. */
#define SETTINGS_POPUP_SIZE 750

void sb_handle_settings(sb_request *req, const char *zone_name, sb_response *resp)
{
	sb_provider *p = req->provider;
	pthread_mutex_lock(&req->server->lock);
	bool hosted = sb_provider_zone(p, zone_name) != NULL;
	pthread_mutex_unlock(&req->server->lock);
	if (!hosted) {
		sb_response_error(resp, 404, "this provider does not host the zone");
		return;
	}

	char sync_ux[sizeof(req->base_url) + 16];
	char async_ux[sizeof(req->base_url) + 16];
	snprintf(sync_ux, sizeof(sync_ux), "%s/sync", req->base_url);
	snprintf(async_ux, sizeof(async_ux), "%s/consent", req->base_url);

	json_t *settings = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}",
		"providerId", p->id, "providerName", p->name, "providerDisplayName", p->name,
		"urlSyncUX", sync_ux, "urlAPI", req->base_url,
		"width", SETTINGS_POPUP_SIZE, "height", SETTINGS_POPUP_SIZE);
	/* NOTE: the sync UX is advertised for clients that read it, but not served. */
	if (settings != NULL && p->async_supported)
		json_object_set_new(settings, "urlAsyncUX", json_string(async_ux));
	sb_response_json(resp, 200, settings);
}

void sb_handle_template(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp)
{
	const tstore_template *tpl = tstore_find(req->provider->templates, provider_id, service_id);
	if (tpl == NULL) {
		sb_response_error(resp, 404, "template not supported by this provider");
		return;
	}
	sb_response_json(resp, 200, json_incref(tpl->json));
}
