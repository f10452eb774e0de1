/*
 * The consent URL of the asynchronous (OAuth) flow:
 * {urlAsyncUX}/v2/domainTemplates/providers/{providerId}[/services/{id}]?...
 *
 * The query reproduces the layout of the Python reference library, whose
 * URLs providers have accepted for years: client_id, scope, domain and host
 * come first, host even when empty. The optional providerName and
 * serviceName follow, then the template variables sorted by name, then
 * redirect_uri and state. NOTE: the reference URLs fix the order of every
 * parameter except providerName and serviceName, whose place here is our
 * choice. Every input is checked before anything is built.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Maximum length of the scope and of the host list, which bounds the URL. */
#define LIST_MAX 4096

static int compare_params(const void *a, const void *b)
{
	const dc_param *pa = *(const dc_param *const *)a;
	const dc_param *pb = *(const dc_param *const *)b;

	return strcmp(pa->name, pb->name);
}

/*
 * Checks the provider id, the service ids and the flags that depend on
 * them, then joins the ids with spaces into *scope (malloc'd).
 */
static dc_status build_scope(const dc_consent_request *req, char **scope, dc_error *err)
{
	dc_status st = dc_check_id("provider id", req->provider_id, err);
	if (st != DC_OK)
		return st;

	if (req->service_ids_count == 0 || req->service_ids == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "no service id given: pass at least one template service id");
	if (req->service_id_in_path && req->service_ids_count != 1)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "this provider takes the service id in the consent path, so it accepts "
		               "one service id per consent, not %zu: request consent per service",
		               req->service_ids_count);

	size_t len = 0;
	for (size_t i = 0; i < req->service_ids_count; i++) {
		st = dc_check_id("service id", req->service_ids[i], err);
		if (st != DC_OK)
			return st;

		/* Each id is at most 63 bytes, so the sum cannot overflow before this check. */
		len += strlen(req->service_ids[i]) + 1;
		if (len > LIST_MAX)
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "the service ids add up to more than %d bytes: request consent "
			               "for fewer services",
			               LIST_MAX);
	}

	*scope = malloc(len);
	if (*scope == NULL)
		return dc_fail(err, DC_ERR_NOMEM, "out of memory building the consent URL");
	(*scope)[0] = '\0';
	for (size_t i = 0; i < req->service_ids_count; i++) {
		if (i > 0)
			strcat(*scope, " ");
		strcat(*scope, req->service_ids[i]);
	}
	return DC_OK;
}

/* Appends a normalized host to the comma-separated list unless it is there already. */
static dc_status append_host(char *list, size_t list_size, size_t *count, const char *host,
                             dc_error *err)
{
	/* Look for host as a whole entry of the list. */
	const char *entry = list;
	for (size_t i = 0; i < *count; i++) {
		size_t entry_len = strcspn(entry, ",");

		if (entry_len == strlen(host) && strncmp(entry, host, entry_len) == 0)
			return DC_OK;
		entry += entry_len + 1;
	}

	size_t used = strlen(list);
	size_t need = used + (*count > 0 ? 1 : 0) + strlen(host) + 1;
	if (need > list_size)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "host list is longer than %d bytes: request consent for fewer hosts",
		               LIST_MAX);
	if (*count > 0)
		strcat(list, ",");
	strcat(list, host);
	(*count)++;
	return DC_OK;
}

/*
 * Builds the host list: the host part of the request's domain first, then
 * each extra host, normalized and without duplicates. "" stands for the apex.
 */
static dc_status build_hosts(const dc_consent_request *req, const char *zone, const char *host,
                             char *list, size_t list_size, dc_error *err)
{
	size_t count = 0;

	list[0] = '\0';
	dc_status st = append_host(list, list_size, &count, host, err);
	if (st != DC_OK)
		return st;
	if (req->hosts_count > 0 && req->hosts == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "host list is missing");

	for (size_t i = 0; i < req->hosts_count; i++) {
		char *normalized = NULL;

		st = dc_normalize_host(zone, req->hosts[i], &normalized, err);
		if (st != DC_OK)
			return st;
		st = append_host(list, list_size, &count, normalized, err);
		free(normalized);
		if (st != DC_OK)
			return st;
	}
	return DC_OK;
}

/* Checks the optional fields that are copied into the query as they are. */
static dc_status check_optional(const dc_consent_request *req, dc_error *err)
{
	dc_status st = dc_check_params(req->params, req->params_count, err);
	if (st != DC_OK)
		return st;

	if (req->client_id != NULL) {
		st = dc_check_state(req->client_id, err);
		if (st != DC_OK || req->client_id[0] == '\0')
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "client_id is empty or not printable ASCII: use the client_id "
			               "received at onboarding");
	}

	st = dc_check_redirect_uri(req->redirect_uri, err);
	if (st != DC_OK)
		return st;
	st = dc_check_state(req->state, err);
	if (st != DC_OK)
		return st;
	if (req->provider_name != NULL) {
		st = dc_check_display_name("providerName", req->provider_name, err);
		if (st != DC_OK)
			return st;
	}
	if (req->service_name != NULL) {
		st = dc_check_display_name("serviceName", req->service_name, err);
		if (st != DC_OK)
			return st;
	}
	return DC_OK;
}

/* Adds the sorted template variables to q. */
static dc_status add_sorted_params(dc_query *q, const dc_param *params, size_t count)
{
	if (count == 0)
		return DC_OK;

	const dc_param **sorted = malloc(count * sizeof(*sorted));
	if (sorted == NULL)
		return DC_ERR_NOMEM;
	for (size_t i = 0; i < count; i++)
		sorted[i] = &params[i];
	qsort(sorted, count, sizeof(*sorted), compare_params);

	dc_status st = DC_OK;
	for (size_t i = 0; i < count && st == DC_OK; i++)
		st = dc_query_add(q, sorted[i]->name, sorted[i]->value);
	free(sorted);
	return st;
}

static dc_status build_query(const dc_consent_request *req, const char *scope, const char *zone,
                             const char *hosts, dc_query *q)
{
	const char *client_id = req->client_id != NULL ? req->client_id : req->provider_id;

	dc_status st = dc_query_add(q, "client_id", client_id);
	if (st == DC_OK)
		st = dc_query_add(q, "scope", scope);
	if (st == DC_OK)
		st = dc_query_add(q, "domain", zone);
	if (st == DC_OK)
		st = dc_query_add(q, "host", hosts);
	if (st == DC_OK && req->provider_name != NULL)
		st = dc_query_add(q, "providerName", req->provider_name);
	if (st == DC_OK && req->service_name != NULL)
		st = dc_query_add(q, "serviceName", req->service_name);
	if (st == DC_OK)
		st = add_sorted_params(q, req->params, req->params_count);
	if (st == DC_OK)
		st = dc_query_add(q, "redirect_uri", req->redirect_uri);
	if (st == DC_OK && req->state != NULL)
		st = dc_query_add(q, "state", req->state);
	return st;
}

dc_status dc_consent_url(const dc_consent_request *req, char **url, dc_error *err)
{
	char *scope = NULL;
	char *zone = NULL;
	char *host = NULL;
	char *path = NULL;
	dc_query *q = NULL;
	char hosts[LIST_MAX + 1];
	dc_status st;

	if (req == NULL || url == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "dc_consent_url: req and url are required");
	*url = NULL;

	/* Reserved variable names are rejected before anything else is looked at. */
	st = check_optional(req, err);
	if (st != DC_OK)
		return st;

	if (req->url_async_ux == NULL)
		return dc_fail(err, DC_ERR_ASYNC_NOT_SUPPORTED,
		               "the DNS provider's settings have no urlAsyncUX, so it does not "
		               "support the asynchronous flow: use the synchronous flow instead");
	st = dc_check_base_url("urlAsyncUX", req->url_async_ux, DC_ERR_INVALID_ARGUMENT, err);
	if (st != DC_OK)
		return st;

	st = build_scope(req, &scope, err);
	if (st != DC_OK)
		goto out;
	st = dc_split_domain(req->domain, &zone, &host, err);
	if (st != DC_OK)
		goto out;
	st = build_hosts(req, zone, host, hosts, sizeof(hosts), err);
	if (st != DC_OK)
		goto out;

	/* Provider and service ids are dc-ids, all unreserved characters, so need no encoding. */
	int n = req->service_id_in_path
	                ? asprintf(&path, "/v2/domainTemplates/providers/%s/services/%s",
	                           req->provider_id, req->service_ids[0])
	                : asprintf(&path, "/v2/domainTemplates/providers/%s", req->provider_id);
	if (n < 0)
		path = NULL;
	q = dc_query_new();
	if (path == NULL || q == NULL) {
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory building the consent URL");
		goto out;
	}

	if (build_query(req, scope, zone, hosts, q) != DC_OK) {
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory building the consent URL");
		goto out;
	}
	*url = dc_build_url(req->url_async_ux, path, q);
	if (*url == NULL)
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory building the consent URL");

out:
	free(scope);
	free(zone);
	free(host);
	free(path);
	dc_query_free(q);
	return st;
}
