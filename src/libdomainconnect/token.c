/*
 * The token endpoint: code exchange and refresh.
 *
 * Both calls go to the provider's pinned urlAPI + /v2/oauth/access_token,
 * never to a discovered one, because the request carries the client secret.
 * Where the parameters go is the provider's dc_token_placement. Every string
 * copied into a dc_error is scrubbed of the client secret, the code or
 * refresh token sent, and the tokens received, in case a server echoes them.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define TOKEN_PATH "/v2/oauth/access_token"
#define EXPIRES_IN_MAX 315360000L /* ten years in seconds; more is a broken response */
#define BODY_EXCERPT_MAX 200      /* bytes of a non-JSON error body kept in a message */

enum { SECRET_CLIENT, SECRET_GRANT, SECRET_ACCESS, SECRET_REFRESH, SECRET_COUNT };

typedef struct token_state {
	dc_token_cb cb;
	void *arg;
	char *provider;                /* name used in messages */
	char *secrets[SECRET_COUNT];   /* scrubbed from every message */
} token_state;

static void wipe_string(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static void token_state_free(void *p)
{
	token_state *s = p;

	if (s == NULL)
		return;
	for (size_t i = 0; i < SECRET_COUNT; i++)
		wipe_string(s->secrets[i]);
	free(s->provider);
	free(s);
}

void dc_token_free(dc_token *t)
{
	if (t == NULL)
		return;
	wipe_string(t->access_token);
	wipe_string(t->refresh_token);
	free(t->token_type);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

/* ---- Response parsing --------------------------------------------------- */

/* Reads expires_in as a JSON integer, an integral real or a numeric string. */
static bool parse_expires_in(json_t *v, long *out)
{
	long long n;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != (double)(long long)d || d < 0 || d > (double)EXPIRES_IN_MAX)
			return false;
		n = (long long)d;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = strlen(s);
		if (len == 0 || len > 10 || strspn(s, "0123456789") != len)
			return false;
		n = strtoll(s, NULL, 10);
	} else {
		return false;
	}
	if (n < 0 || n > EXPIRES_IN_MAX)
		return false;
	*out = (long)n;
	return true;
}

/* Parses a 2xx body into a dc_token. */
static dc_status parse_token(token_state *s, const dc_http_response *resp, dc_token **out,
                             dc_error *err)
{
	dc_token *t = NULL;
	dc_status st = DC_ERR_INVALID_RESPONSE;
	json_t *root = json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL);

	if (!json_is_object(root)) {
		dc_fail(err, st, "token response from %s is not a JSON object", s->provider);
		goto out;
	}

	json_t *access = json_object_get(root, "access_token");
	json_t *type = json_object_get(root, "token_type");
	json_t *expires = json_object_get(root, "expires_in");
	json_t *refresh = json_object_get(root, "refresh_token");
	if (!json_is_string(access) || json_string_length(access) == 0) {
		dc_fail(err, st, "token response from %s has no access_token", s->provider);
		goto out;
	}
	/* Known before any message below, so none of them can carry it. */
	s->secrets[SECRET_ACCESS] = strdup(json_string_value(access));
	if (json_is_string(refresh))
		s->secrets[SECRET_REFRESH] = strdup(json_string_value(refresh));

	if (!json_is_string(type) || strcasecmp(json_string_value(type), "bearer") != 0) {
		dc_fail(err, st, "token response from %s: token_type is missing or not bearer",
		        s->provider);
		goto out;
	}
	long expires_in = 0;
	if (!parse_expires_in(expires, &expires_in)) {
		dc_fail(err, st,
		        "token response from %s: expires_in is missing or not a number of seconds "
		        "from 0 to %ld",
		        s->provider, EXPIRES_IN_MAX);
		goto out;
	}
	if (refresh != NULL && !json_is_null(refresh) && !json_is_string(refresh)) {
		dc_fail(err, st, "token response from %s: refresh_token is not a string", s->provider);
		goto out;
	}

	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->access_token = strdup(json_string_value(access))) == NULL ||
	    (t->token_type = strdup("bearer")) == NULL) {
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory reading a token response");
		goto out;
	}
	t->expires_in = expires_in;
	if (json_is_string(refresh) && json_string_length(refresh) > 0 &&
	    (t->refresh_token = strdup(json_string_value(refresh))) == NULL) {
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory reading a token response");
		goto out;
	}
	*out = t;
	t = NULL;
	st = DC_OK;

out:
	dc_token_free(t);
	json_decref(root);
	return st;
}

/* Fills err for a non-2xx token response. */
static void parse_token_error(token_state *s, const dc_http_response *resp, dc_error *err)
{
	const char *const *secrets = (const char *const *)s->secrets;
	long code = resp->status;
	char text[BODY_EXCERPT_MAX + 1];
	json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
	json_t *error = json_object_get(root, "error");
	json_t *description = json_object_get(root, "error_description");
	bool oauth = json_is_string(error);

	/* Status first; the OAuth fields, when present, refine the message. */
	dc_status st = dc_http_classify(resp, "token request", err);
	if (st == DC_ERR_HTTP || st == DC_ERR_UNAUTHORIZED) {
		if (oauth || code == 400 || code == 401)
			st = DC_ERR_OAUTH;
		else
			st = DC_ERR_HTTP;
	}

	if (oauth) {
		const char *e = json_string_value(error);
		dc_copy_scrubbed(err->oauth_error, sizeof(err->oauth_error), e, strlen(e), secrets,
		                 SECRET_COUNT);
		if (json_is_string(description)) {
			const char *d = json_string_value(description);
			dc_copy_scrubbed(err->oauth_description, sizeof(err->oauth_description), d,
			                 strlen(d), secrets, SECRET_COUNT);
		}
		dc_fail(err, st, "token request to %s failed: HTTP status %ld, error %s: %s",
		        s->provider, code, err->oauth_error, err->oauth_description);
	} else {
		/* A plain-text body, as some providers send: scrubbed, then cut. */
		dc_copy_scrubbed(text, sizeof(text), resp->body, resp->body_len, secrets,
		                 SECRET_COUNT);
		dc_fail(err, st, "token request to %s failed: HTTP status %ld: %s", s->provider, code,
		        text[0] != '\0' ? text : "(empty body)");
	}
	json_decref(root);
}

static void token_cb(void *arg, const dc_http_response *resp, const dc_error *http_err)
{
	dc_request *req = arg;
	token_state *s = req->state;
	dc_token *token = NULL;
	dc_error err = {0};

	req->http = NULL;
	dc_error_clear(&err);
	if (resp == NULL) {
		err = *http_err;
	} else if (resp->status >= 200 && resp->status < 300) {
		parse_token(s, resp, &token, &err);
		err.http_status = resp->status;
	} else {
		parse_token_error(s, resp, &err);
	}
	dc_error_scrub(&err, (const char *const *)s->secrets, SECRET_COUNT);

	dc_request_finish(req);
	s->cb(s->arg, token, &err);
	dc_request_destroy(req);
}

/* ---- Request building --------------------------------------------------- */

typedef struct token_param {
	const char *name;
	const char *value;
	bool credential; /* client_id or client_secret */
} token_param;

typedef struct token_body {
	char *query;        /* without '?', may be "" */
	char *body;         /* NULL for an empty body */
	const char *content_type;
} token_body;

static void token_body_clear(token_body *b)
{
	wipe_string(b->query);
	wipe_string(b->body);
}

static bool add_all(dc_query *q, const token_param *params, size_t n, bool credentials,
                    bool others)
{
	for (size_t i = 0; i < n; i++) {
		if (params[i].value == NULL)
			continue;
		if ((params[i].credential && !credentials) || (!params[i].credential && !others))
			continue;
		if (dc_query_add(q, params[i].name, params[i].value) != DC_OK)
			return false;
	}
	return true;
}

static char *json_body(const token_param *params, size_t n, bool credentials, bool others)
{
	json_t *obj = json_object();
	char *out = NULL;

	if (obj == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (params[i].value == NULL)
			continue;
		if ((params[i].credential && !credentials) || (!params[i].credential && !others))
			continue;
		if (json_object_set_new(obj, params[i].name, json_string(params[i].value)) != 0)
			goto out;
	}
	out = json_dumps(obj, JSON_COMPACT);
out:
	/* NOTE: jansson frees the string copies without wiping them. */
	json_decref(obj);
	return out;
}

/* Places the parameters as the provider expects; see dc_token_placement. */
static dc_status build_token_body(dc_token_placement placement, bool refresh,
                                  const token_param *params, size_t n, token_body *b)
{
	dc_query *q = dc_query_new();
	bool ok = q != NULL;

	switch (placement) {
	case DC_TOKEN_PARAMS_DEFAULT:
		ok = ok && add_all(q, params, n, refresh, true);
		ok = ok && (b->body = json_body(params, n, true, false)) != NULL;
		b->content_type = "Content-Type: application/json";
		break;
	case DC_TOKEN_PARAMS_QUERY:
		ok = ok && add_all(q, params, n, true, true);
		break;
	case DC_TOKEN_PARAMS_JSON:
		ok = ok && (b->body = json_body(params, n, true, true)) != NULL;
		b->content_type = "Content-Type: application/json";
		break;
	case DC_TOKEN_PARAMS_FORM: {
		dc_query *form = dc_query_new();
		ok = ok && form != NULL && add_all(form, params, n, true, true);
		ok = ok && (b->body = strdup(dc_query_str(form))) != NULL;
		if (form != NULL)
			OPENSSL_cleanse((char *)dc_query_str(form), dc_query_len(form));
		dc_query_free(form);
		b->content_type = "Content-Type: application/x-www-form-urlencoded";
		break;
	}
	default:
		dc_query_free(q);
		return DC_ERR_INVALID_ARGUMENT;
	}

	ok = ok && (b->query = strdup(dc_query_str(q))) != NULL;
	if (q != NULL)
		OPENSSL_cleanse((char *)dc_query_str(q), dc_query_len(q));
	dc_query_free(q);
	return ok ? DC_OK : DC_ERR_NOMEM;
}

/* Shared start of the code exchange and the refresh. */
static dc_status token_start(dc_client *c, const dc_provider *p, bool refresh, const char *grant,
                             const char *redirect_uri, dc_token_cb cb, void *arg,
                             dc_request **req, dc_error *err)
{
	const char *grant_name = refresh ? "refresh_token" : "code";
	dc_error scratch = {0};
	dc_status st;

	if (err == NULL)
		err = &scratch;
	if (c == NULL || p == NULL || cb == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "token request: missing client, provider or callback");
	if (p->url_api == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "token request: provider %s has no pinned urlAPI",
		               p->name ? p->name : "(unnamed)");
	if ((st = dc_check_base_url("pinned urlAPI", p->url_api, DC_ERR_INVALID_ARGUMENT, err)) !=
	    DC_OK)
		return st;
	/* The header's "NULL: the template provider id" cannot apply here: the
	   token calls do not receive a provider id. */
	if (p->client_id == NULL || p->client_id[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "token request: provider %s has no client_id configured",
		               p->name ? p->name : "(unnamed)");
	if (grant == NULL || grant[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "token request: missing %s",
		               grant_name);
	if ((unsigned)p->token_placement > DC_TOKEN_PARAMS_FORM)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "token request: provider %s has an unknown token placement %d",
		               p->name ? p->name : "(unnamed)", (int)p->token_placement);
	if (!refresh && (redirect_uri == NULL || redirect_uri[0] == '\0'))
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "code exchange: missing redirect_uri (it must equal the one used for "
		               "consent)");

	token_param params[] = {
		{grant_name, grant, false},
		{"grant_type", refresh ? "refresh_token" : "authorization_code", false},
		{"redirect_uri", redirect_uri, false},
		{"client_id", p->client_id, true},
		{"client_secret", p->client_secret, true},
	};
	token_body b = {0};
	char *url = NULL;
	token_state *s = calloc(1, sizeof(*s));
	dc_request *r = NULL;

	st = DC_ERR_NOMEM;
	if (s == NULL)
		goto fail;
	s->cb = cb;
	s->arg = arg;
	if ((s->provider = strdup(p->name ? p->name : "the provider")) == NULL ||
	    (p->client_secret != NULL && (s->secrets[SECRET_CLIENT] = strdup(p->client_secret)) == NULL) ||
	    (s->secrets[SECRET_GRANT] = strdup(grant)) == NULL)
		goto fail;

	st = build_token_body(p->token_placement, refresh, params, sizeof(params) / sizeof(params[0]),
	                      &b);
	if (st != DC_OK)
		goto fail;
	url = dc_url_join(p->url_api, TOKEN_PATH);
	if (url == NULL)
		goto fail;
	if (b.query[0] != '\0') {
		char *full = NULL;
		if (asprintf(&full, "%s?%s", url, b.query) < 0)
			goto fail;
		free(url);
		url = full;
	}

	r = dc_request_new(c, s, token_state_free);
	s = NULL; /* owned by the request now, even when that failed */
	if (r == NULL)
		goto fail;

	dc_http_request hr = {
		.method = "POST",
		.url = url,
		.headers = {"Accept: application/json", b.content_type},
		.body = b.body,
		.body_len = b.body ? strlen(b.body) : 0,
		.max_body = c->cfg.max_body_bytes,
		.what = refresh ? "token refresh request" : "code exchange request",
		.secrets = {p->client_secret, grant},
	};
	r->http = dc_http_start(c, &hr, token_cb, r, err);
	if (r->http == NULL) {
		st = err->status;
		dc_request_destroy(r);
		r = NULL;
		goto fail_reported;
	}
	token_body_clear(&b);
	wipe_string(url);
	if (req != NULL)
		*req = r;
	return DC_OK;

fail:
	dc_fail(err, st, "%s: out of memory building the request",
	        refresh ? "token refresh" : "code exchange");
fail_reported:
	token_body_clear(&b);
	wipe_string(url);
	token_state_free(s);
	return st;
}

dc_status dc_exchange_code_start(dc_client *c, const dc_provider *p, const char *code,
                                 const char *redirect_uri, dc_token_cb cb, void *arg,
                                 dc_request **req, dc_error *err)
{
	return token_start(c, p, false, code, redirect_uri, cb, arg, req, err);
}

dc_status dc_refresh_start(dc_client *c, const dc_provider *p, const char *refresh_token,
                           const char *redirect_uri, dc_token_cb cb, void *arg,
                           dc_request **req, dc_error *err)
{
	return token_start(c, p, true, refresh_token, redirect_uri, cb, arg, req, err);
}
