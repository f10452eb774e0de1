/*
 * Discovery and the template check.
 *
 * Discovery splits the name into zone and host, reads TXT _domainconnect.<zone>,
 * validates every resource record on its own (authority[/path], no scheme,
 * query, fragment or whitespace), and continues only when exactly one distinct
 * valid value remains. It then fetches https://<value>/v2/<zone>/settings
 * through the host guard and parses it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "resolver.h"

#define TXT_HOST_MAX 253
#define TXT_LABEL_MAX 63

typedef struct discovery_state {
	dc_discover_cb cb;
	void *arg;
	dc_discovery *result; /* handed to the callback on success */
} discovery_state;

static void discovery_state_free(void *p)
{
	discovery_state *s = p;

	if (s == NULL)
		return;
	dc_discovery_free(s->result);
	free(s);
}

void dc_discovery_free(dc_discovery *d)
{
	if (d == NULL)
		return;
	free(d->domain);
	free(d->zone);
	free(d->host);
	free(d->txt_value);
	dc_settings_free(&d->settings);
	free(d);
}

/* Reports the outcome and ends the request. */
static void discovery_complete(dc_request *req, const dc_error *err)
{
	discovery_state *s = req->state;
	dc_discovery *result = NULL;

	if (err->status == DC_OK) {
		result = s->result;
		s->result = NULL;
	}
	dc_request_finish(req);
	s->cb(s->arg, result, err);
	dc_request_destroy(req);
}

static void discovery_fail(dc_request *req, dc_status st, const char *msg)
{
	dc_error err = {0};

	dc_error_clear(&err);
	dc_fail(&err, st, "%s", msg);
	discovery_complete(req, &err);
}

/* ---- TXT value validation ----------------------------------------------- */

/* Checks a host name: LDH labels of 1..63, at least two, last not numeric. */
static bool valid_host(const char *host, size_t len)
{
	size_t label_len = 0;
	size_t labels = 1;
	bool label_numeric = true;

	if (len == 0 || len > TXT_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)host[i];

		if (ch == '.') {
			if (label_len == 0 || host[i - 1] == '-')
				return false;
			labels++;
			label_len = 0;
			label_numeric = true;
			continue;
		}
		if (!isalnum(ch) && ch != '-')
			return false;
		if (ch == '-' && label_len == 0)
			return false;
		if (++label_len > TXT_LABEL_MAX)
			return false;
		if (!isdigit(ch))
			label_numeric = false;
	}
	/* The last label, a top-level domain, is never all digits: no IPv4 literal. */
	return label_len > 0 && host[len - 1] != '-' && labels >= 2 && !label_numeric;
}

/* Checks a path: RFC 3986 pchar and '/', with well-formed %XX escapes. */
/*
 * True when PATH is empty or a plain absolute path: RFC 3986 path characters
 * only, and no "." or ".." segment, because a dot segment in a value the
 * zone owner controls could step out of the provider's API prefix.
 */
static bool valid_path(const char *path)
{
	for (const char *segment = path; segment != NULL && *segment == '/';) {
		const char *next = strchr(segment + 1, '/');
		size_t length = (next != NULL ? (size_t)(next - segment) : strlen(segment)) - 1;

		if ((length == 1 && segment[1] == '.') ||
		    (length == 2 && segment[1] == '.' && segment[2] == '.'))
			return false;
		segment = next;
	}
	for (const char *p = path; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '%') {
			if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
				return false;
			p += 2;
			continue;
		}
		if (isalnum(ch) || strchr("-._~!$&'()*+,;=:@/", ch) != NULL)
			continue;
		return false;
	}
	return true;
}

/*
 * Validates one TXT value as authority[/path] and returns its normalized form
 * (host lower-cased, trailing slashes dropped), malloc'd, or NULL if invalid.
 * A port is kept, because whether it is allowed is the host guard's decision.
 */
static char *normalize_txt_value(const char *value)
{
	if (value[0] == '\0' || strstr(value, "://") != NULL)
		return NULL;

	size_t authority_len = strcspn(value, "/");
	const char *path = value + authority_len;
	const char *colon = memchr(value, ':', authority_len);
	size_t host_len = colon ? (size_t)(colon - value) : authority_len;

	if (!valid_host(value, host_len) || !valid_path(path))
		return NULL;
	if (colon != NULL) {
		size_t digits = authority_len - host_len - 1;
		if (digits == 0 || digits > 5 || strspn(colon + 1, "0123456789") != digits)
			return NULL;
		long port = strtol(colon + 1, NULL, 10);
		if (port < 1 || port > 65535)
			return NULL;
	}

	char *out = strdup(value);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < host_len; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
	size_t len = strlen(out);
	while (len > authority_len && out[len - 1] == '/')
		out[--len] = '\0';
	return out;
}

/* ---- Steps -------------------------------------------------------------- */

static void settings_cb(void *arg, const dc_http_response *resp, const dc_error *http_err)
{
	dc_request *req = arg;
	discovery_state *s = req->state;
	dc_client *c = req->client;
	dc_error err = {0};

	req->http = NULL;
	if (resp == NULL) {
		discovery_complete(req, http_err);
		return;
	}

	dc_error_clear(&err);
	if (resp->status == 404) {
		dc_fail(&err, DC_ERR_NOT_SUPPORTED,
		        "settings request for %s returned 404: the DNS provider at %s does not host "
		        "this zone",
		        s->result->zone, s->result->txt_value);
		err.http_status = resp->status;
	} else if (dc_http_classify(resp, "settings request", &err) == DC_OK) {
		dc_settings_parse(resp->body, resp->body_len, c->cfg.strict_settings,
		                  &s->result->settings, &err);
		err.http_status = resp->status;
	}
	discovery_complete(req, &err);
}

static void start_settings(dc_request *req, const char *txt_value)
{
	discovery_state *s = req->state;
	dc_client *c = req->client;
	dc_http_request r = {
		.method = "GET",
		.headers = {"Accept: application/json"},
		.max_body = c->cfg.max_settings_bytes,
		.what = "settings request",
	};
	char *url = NULL;
	dc_error err = {0};

	dc_error_clear(&err);
	s->result->txt_value = strdup(txt_value);
	if (s->result->txt_value == NULL ||
	    asprintf(&url, "https://%s/v2/%s/settings", txt_value, s->result->zone) < 0) {
		discovery_fail(req, DC_ERR_NOMEM, "out of memory building the settings URL");
		return;
	}
	r.url = url;
	req->http = dc_http_start(c, &r, settings_cb, req, &err);
	free(url);
	if (req->http == NULL)
		discovery_complete(req, &err);
}

static void txt_cb(void *arg, const dc_txt_records *txt, const dc_error *lookup_err)
{
	dc_request *req = arg;
	discovery_state *s = req->state;
	char *chosen = NULL;
	size_t valid = 0;
	bool ambiguous = false;
	char msg[DC_MESSAGE_MAX];

	req->lookup = NULL;
	if (txt == NULL) {
		discovery_complete(req, lookup_err);
		return;
	}

	for (size_t i = 0; i < txt->count; i++) {
		char *value = normalize_txt_value(txt->value[i]);
		if (value == NULL)
			continue;
		valid++;
		if (chosen == NULL)
			chosen = value;
		else {
			if (strcmp(chosen, value) != 0)
				ambiguous = true;
			free(value);
		}
	}

	if (ambiguous) {
		snprintf(msg, sizeof(msg),
		         "_domainconnect.%s has several distinct valid TXT values; refusing to pick one",
		         s->result->zone);
		discovery_fail(req, DC_ERR_AMBIGUOUS, msg);
	} else if (chosen == NULL) {
		snprintf(msg, sizeof(msg),
		         "_domainconnect.%s has %zu TXT records and none is a valid authority[/path]",
		         s->result->zone, txt->count);
		discovery_fail(req, DC_ERR_INVALID_RESPONSE, msg);
	} else {
		start_settings(req, chosen);
	}
	free(chosen);
}

/* ---- Public calls ------------------------------------------------------- */

/* Fills result's domain, zone and host from the caller's name. */
static dc_status split_into(dc_discovery *result, const char *domain, dc_error *err)
{
	dc_status st = dc_split_domain(domain, &result->zone, &result->host, err);
	if (st != DC_OK)
		return st;

	int n = result->host[0] == '\0' ? asprintf(&result->domain, "%s", result->zone)
	                                : asprintf(&result->domain, "%s.%s", result->host,
	                                           result->zone);
	if (n < 0) {
		result->domain = NULL;
		return dc_fail(err, DC_ERR_NOMEM, "out of memory splitting a domain");
	}
	return DC_OK;
}

dc_status dc_discover_start(dc_client *c, const char *domain, dc_discover_cb cb, void *arg,
                            dc_request **req, dc_error *err)
{
	dc_error scratch = {0};
	char *name = NULL;
	dc_status st;

	if (err == NULL)
		err = &scratch;
	if (c == NULL || domain == NULL || cb == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "discovery: missing client, domain or callback");

	discovery_state *s = calloc(1, sizeof(*s));
	if (s == NULL || (s->result = calloc(1, sizeof(*s->result))) == NULL) {
		free(s);
		return dc_fail(err, DC_ERR_NOMEM, "out of memory starting discovery");
	}
	s->cb = cb;
	s->arg = arg;

	if ((st = split_into(s->result, domain, err)) != DC_OK) {
		discovery_state_free(s);
		return st;
	}
	if (asprintf(&name, "_domainconnect.%s", s->result->zone) < 0) {
		discovery_state_free(s);
		return dc_fail(err, DC_ERR_NOMEM, "out of memory starting discovery");
	}

	dc_request *r = dc_request_new(c, s, discovery_state_free);
	if (r == NULL) {
		free(name);
		return dc_fail(err, DC_ERR_NOMEM, "out of memory starting discovery");
	}
	r->lookup = dc_resolve_txt(c, name, txt_cb, r, err);
	free(name);
	if (r->lookup == NULL) {
		dc_request_destroy(r);
		return err->status;
	}
	if (req != NULL)
		*req = r;
	return DC_OK;
}

/* ---- Template check ----------------------------------------------------- */

typedef struct template_state {
	dc_response_cb cb;
	void *arg;
} template_state;

static void template_cb(void *arg, const dc_http_response *resp, const dc_error *http_err)
{
	dc_request *req = arg;
	template_state *s = req->state;
	dc_response result = {0};
	dc_error err = {0};

	req->http = NULL;
	dc_error_clear(&err);
	if (resp == NULL) {
		err = *http_err;
	} else if (resp->status == 404) {
		dc_fail(&err, DC_ERR_TEMPLATE_NOT_SUPPORTED,
		        "template check returned 404: the DNS provider does not support this template");
		err.http_status = resp->status;
	} else {
		dc_http_classify(resp, "template check", &err);
		result.http_status = resp->status;
	}

	dc_request_finish(req);
	s->cb(s->arg, err.status == DC_OK ? &result : NULL, &err);
	dc_request_destroy(req);
}

dc_status dc_template_supported_start(dc_client *c, const char *url_api, const char *provider_id,
                                      const char *service_id, dc_response_cb cb, void *arg,
                                      dc_request **req, dc_error *err)
{
	char path[sizeof("/v2/domainTemplates/providers//services/") + 2 * DC_ID_MAX];
	dc_error scratch = {0};
	dc_status st;

	if (err == NULL)
		err = &scratch;
	if (c == NULL || url_api == NULL || cb == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "template check: missing client, urlAPI or callback");
	if ((st = dc_check_base_url("urlAPI", url_api, DC_ERR_INVALID_ARGUMENT, err)) != DC_OK ||
	    (st = dc_check_id("provider id", provider_id, err)) != DC_OK ||
	    (st = dc_check_id("service id", service_id, err)) != DC_OK)
		return st;

	snprintf(path, sizeof(path), "/v2/domainTemplates/providers/%s/services/%s", provider_id,
	         service_id);
	char *url = dc_url_join(url_api, path);
	template_state *s = calloc(1, sizeof(*s));
	if (url == NULL || s == NULL) {
		free(url);
		free(s);
		return dc_fail(err, DC_ERR_NOMEM, "out of memory starting a template check");
	}
	s->cb = cb;
	s->arg = arg;
	dc_request *r = dc_request_new(c, s, free);
	if (r == NULL) {
		free(url);
		return dc_fail(err, DC_ERR_NOMEM, "out of memory starting a template check");
	}

	dc_http_request hr = {
		.method = "GET",
		.url = url,
		.headers = {"Accept: application/json"},
		.max_body = c->cfg.max_body_bytes,
		.what = "template check",
	};
	r->http = dc_http_start(c, &hr, template_cb, r, err);
	free(url);
	if (r->http == NULL) {
		dc_request_destroy(r);
		return err->status;
	}
	if (req != NULL)
		*req = r;
	return DC_OK;
}
