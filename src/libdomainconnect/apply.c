/*
 * Apply and revert of a template with an access token (the async flow).
 *
 * POST {pinned urlAPI}/v2/domainTemplates/providers/{pid}/services/{sid}/apply
 * (or /revert) with every parameter in the query, an empty body and
 * "Authorization: Bearer". All input is checked before a request is made:
 * ids, reserved variable names, display names, domain and host.
 *
 * Outcomes: any 2xx is success and the body is ignored; 409 is a conflict
 * with the body's "records" array in err->conflicts when there is one; 401
 * unauthorized; 429, and 503 with Retry-After, rate limited; other 5xx
 * transient; for revert 501 not implemented and 410 not applied; any other
 * status an HTTP error.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define DOMAIN_MAX 253
#define BODY_EXCERPT_MAX 200 /* bytes of an error body kept in a message */

typedef struct apply_state {
	dc_response_cb cb;
	void *arg;
	bool revert;
	char *provider;     /* name used in messages */
	char *access_token; /* scrubbed from every message */
} apply_state;

static void apply_state_free(void *p)
{
	apply_state *s = p;

	if (s == NULL)
		return;
	if (s->access_token != NULL) {
		OPENSSL_cleanse(s->access_token, strlen(s->access_token));
		free(s->access_token);
	}
	free(s->provider);
	free(s);
}

/* ---- Outcome ------------------------------------------------------------ */

/* Keeps the "records" array of a 409 body; any other body gives NULL. */
static json_t *conflict_records(const dc_http_response *resp)
{
	json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
	json_t *records = json_incref(json_object_get(root, "records"));

	json_decref(root);
	if (!json_is_array(records)) {
		json_decref(records);
		return NULL;
	}
	return records;
}

static void classify_response(apply_state *s, const dc_http_response *resp, dc_error *err)
{
	const char *what = s->revert ? "revert" : "apply";
	const char *secrets[] = {s->access_token};
	char excerpt[BODY_EXCERPT_MAX + 1];
	long code = resp->status;

	if (code >= 200 && code < 300)
		return;

	dc_copy_scrubbed(excerpt, sizeof(excerpt), resp->body, resp->body_len, secrets, 1);
	if (code == 409) {
		dc_fail(err, DC_ERR_CONFLICT,
		        "%s at %s failed: HTTP status 409, the template conflicts with existing "
		        "records (apply with force to replace them)",
		        what, s->provider);
		err->conflicts = conflict_records(resp);
		/* A provider may echo the bearer token inside the records. */
		if (err->conflicts != NULL && !dc_json_scrub(err->conflicts, secrets, 1)) {
			json_decref(err->conflicts);
			err->conflicts = NULL;
		}
	} else if (s->revert && code == 501) {
		dc_fail(err, DC_ERR_NOT_IMPLEMENTED,
		        "revert at %s failed: HTTP status 501, the provider does not implement revert",
		        s->provider);
	} else if (s->revert && code == 410) {
		dc_fail(err, DC_ERR_NOT_APPLIED,
		        "revert at %s failed: HTTP status 410, the template is not applied there",
		        s->provider);
	} else {
		dc_status st = dc_http_classify(resp, what, err);
		dc_fail(err, st, "%s at %s failed: HTTP status %ld%s%s", what, s->provider, code,
		        excerpt[0] != '\0' ? ": " : "", excerpt);
	}
	err->http_status = code;
	err->retry_after = resp->retry_after;
}

static void apply_cb(void *arg, const dc_http_response *resp, const dc_error *http_err)
{
	dc_request *req = arg;
	apply_state *s = req->state;
	const char *secrets[] = {s->access_token};
	dc_response result = {0};
	dc_error err = {0};

	req->http = NULL;
	dc_error_clear(&err);
	if (resp == NULL) {
		err = *http_err;
		err.conflicts = NULL;
	} else {
		result.http_status = resp->status;
		classify_response(s, resp, &err);
	}
	dc_error_scrub(&err, secrets, 1);

	dc_request_finish(req);
	s->cb(s->arg, err.status == DC_OK ? &result : NULL, &err);
	dc_request_destroy(req);
	dc_error_clear(&err); /* the callback keeps conflicts only with json_incref */
}

/* ---- Input checks ------------------------------------------------------- */

/* Checks a DNS name made of [A-Za-z0-9._-], empty only when allow_empty. */
static dc_status check_name(const char *what, const char *name, bool allow_empty, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];
	size_t len = name ? strlen(name) : 0;

	if (len == 0 && allow_empty)
		return DC_OK;
	if (len > 0 && len <= DOMAIN_MAX &&
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == len &&
	    name[0] != '.' && name[len - 1] != '.' && strstr(name, "..") == NULL)
		return DC_OK;

	dc_escape_value(shown, sizeof(shown), name);
	return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
	               "invalid %s \"%s\": expected a DNS name of letters, digits, '-', '_' and "
	               "dots, at most %d bytes",
	               what, shown, DOMAIN_MAX);
}

static dc_status check_request(const dc_provider *p, const dc_apply_request *ar, bool revert,
                               dc_error *err)
{
	dc_status st;

	if (p->url_api == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "provider %s has no pinned urlAPI",
		               p->name ? p->name : "(unnamed)");
	if ((st = dc_check_base_url("pinned urlAPI", p->url_api, DC_ERR_INVALID_ARGUMENT, err)) !=
	    DC_OK)
		return st;
	if (ar->access_token == NULL || ar->access_token[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "missing access token");
	if ((st = dc_check_id("provider id", ar->provider_id, err)) != DC_OK ||
	    (st = dc_check_id("service id", ar->service_id, err)) != DC_OK ||
	    (st = check_name("domain", ar->domain, false, err)) != DC_OK ||
	    (st = check_name("host", ar->host, true, err)) != DC_OK)
		return st;
	if (ar->instance_id != NULL && (st = dc_check_id("instance id", ar->instance_id, err)) != DC_OK)
		return st;
	if (revert)
		return DC_OK;

	/* The same checks as consent and sync: names, values, no name twice. */
	if ((st = dc_check_params(ar->params, ar->params_count, err)) != DC_OK)
		return st;
	if (ar->group_ids_count > 0 && ar->group_ids == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "group ids are missing");
	for (size_t i = 0; i < ar->group_ids_count; i++)
		if ((st = dc_check_id("group id", ar->group_ids[i], err)) != DC_OK)
			return st;
	if (ar->provider_name != NULL &&
	    (st = dc_check_display_name("providerName", ar->provider_name, err)) != DC_OK)
		return st;
	if (ar->service_name != NULL &&
	    (st = dc_check_display_name("serviceName", ar->service_name, err)) != DC_OK)
		return st;
	return DC_OK;
}

/* ---- Request building --------------------------------------------------- */

/* Joins the group ids with ','; malloc'd, NULL on ENOMEM. */
static char *join_group_ids(const dc_apply_request *ar)
{
	size_t len = 1;

	for (size_t i = 0; i < ar->group_ids_count; i++)
		len += strlen(ar->group_ids[i]) + 1; /* each at most DC_ID_MAX: no overflow */
	char *out = calloc(1, len);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < ar->group_ids_count; i++) {
		if (i > 0)
			strcat(out, ",");
		strcat(out, ar->group_ids[i]);
	}
	return out;
}

static dc_status build_query(const dc_apply_request *ar, bool revert, dc_query *q)
{
	dc_status st = DC_OK;

	if ((st = dc_query_add(q, "domain", ar->domain)) != DC_OK ||
	    (st = dc_query_add(q, "host", ar->host ? ar->host : "")) != DC_OK)
		return st;
	if (!revert) {
		for (size_t i = 0; i < ar->params_count; i++)
			if ((st = dc_query_add(q, ar->params[i].name, ar->params[i].value)) != DC_OK)
				return st;
		if (ar->group_ids_count > 0) {
			char *groups = join_group_ids(ar);
			if (groups == NULL)
				return DC_ERR_NOMEM;
			st = dc_query_add(q, "groupId", groups);
			free(groups);
			if (st != DC_OK)
				return st;
		}
		if (ar->force && (st = dc_query_add(q, "force", "1")) != DC_OK)
			return st;
	}
	if (ar->instance_id != NULL && (st = dc_query_add(q, "instanceId", ar->instance_id)) != DC_OK)
		return st;
	if (!revert && ar->provider_name != NULL &&
	    (st = dc_query_add(q, "providerName", ar->provider_name)) != DC_OK)
		return st;
	if (!revert && ar->service_name != NULL &&
	    (st = dc_query_add(q, "serviceName", ar->service_name)) != DC_OK)
		return st;
	return DC_OK;
}

static dc_status apply_start(dc_client *c, const dc_provider *p, const dc_apply_request *ar,
                             bool revert, dc_response_cb cb, void *arg, dc_request **req,
                             dc_error *err)
{
	const char *what = revert ? "revert" : "apply";
	char path[sizeof("/v2/domainTemplates/providers//services//revert?") + 2 * DC_ID_MAX];
	char *url = NULL;
	char *auth = NULL;
	dc_query *q = NULL;
	dc_error scratch = {0};
	dc_status st;

	if (err == NULL)
		err = &scratch;
	if (c == NULL || p == NULL || ar == NULL || cb == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "%s: missing client, provider, request or callback", what);
	if ((st = check_request(p, ar, revert, err)) != DC_OK)
		return st;

	st = DC_ERR_NOMEM;
	q = dc_query_new();
	if (q == NULL || build_query(ar, revert, q) != DC_OK)
		goto out;
	snprintf(path, sizeof(path), "/v2/domainTemplates/providers/%s/services/%s/%s?",
	         ar->provider_id, ar->service_id, what);
	char *base = dc_url_join(p->url_api, path);
	if (base == NULL)
		goto out;
	int n = asprintf(&url, "%s%s", base, dc_query_str(q));
	free(base);
	if (n < 0) {
		url = NULL;
		goto out;
	}
	if (asprintf(&auth, "Authorization: Bearer %s", ar->access_token) < 0) {
		auth = NULL;
		goto out;
	}

	apply_state *s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto out;
	s->cb = cb;
	s->arg = arg;
	s->revert = revert;
	s->provider = strdup(p->name ? p->name : "the provider");
	s->access_token = strdup(ar->access_token);
	dc_request *r = dc_request_new(c, s, apply_state_free);
	if (r == NULL)
		goto out;
	if (s->provider == NULL || s->access_token == NULL) {
		dc_request_destroy(r);
		goto out;
	}

	dc_http_request hr = {
		.method = "POST",
		.url = url,
		.headers = {"Accept: application/json", auth},
		.max_body = c->cfg.max_body_bytes,
		.what = revert ? "revert request" : "apply request",
		.secrets = {ar->access_token},
	};
	r->http = dc_http_start(c, &hr, apply_cb, r, err);
	if (r->http == NULL) {
		dc_request_destroy(r);
		st = err->status;
		goto out_reported;
	}
	if (req != NULL)
		*req = r;
	st = DC_OK;
	goto out_reported;

out:
	dc_fail(err, st, "%s: out of memory building the request", what);
out_reported:
	dc_query_free(q);
	free(url);
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	return st;
}

dc_status dc_apply_start(dc_client *c, const dc_provider *p, const dc_apply_request *ar,
                         dc_response_cb cb, void *arg, dc_request **req, dc_error *err)
{
	return apply_start(c, p, ar, false, cb, arg, req, err);
}

dc_status dc_revert_start(dc_client *c, const dc_provider *p, const dc_apply_request *ar,
                          dc_response_cb cb, void *arg, dc_request **req, dc_error *err)
{
	return apply_start(c, p, ar, true, cb, arg, req, err);
}
