/*
 * The asynchronous consent UX at urlAsyncUX: validates the client and its
 * redirect URI, then shows an Approve/Deny page (or approves at once in
 * auto-approve mode) and redirects back with a code or an error.
 */
#include "grant.h"
#include "server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest consent page; the echoed parameters are bounded by the request size. */
#define CONSENT_PAGE_MAX (256 * 1024)
#define CONSENT_REDIRECT_MAX 8192

typedef struct page {
	char *buf;
	size_t len;
	size_t cap;
	bool failed;
} page;

static void put(page *pg, const char *s, size_t n)
{
	if (pg->failed)
		return;
	if (pg->len + n + 1 > pg->cap) {
		size_t cap = pg->cap == 0 ? 4096 : pg->cap;
		while (cap < pg->len + n + 1)
			cap *= 2;
		char *buf = cap <= CONSENT_PAGE_MAX ? realloc(pg->buf, cap) : NULL;
		if (buf == NULL) {
			pg->failed = true;
			return;
		}
		pg->buf = buf;
		pg->cap = cap;
	}
	memcpy(pg->buf + pg->len, s, n);
	pg->len += n;
	pg->buf[pg->len] = '\0';
}

static void put_str(page *pg, const char *s)
{
	put(pg, s, strlen(s));
}

/* Append S with the five HTML-special characters escaped. */
static void put_escaped(page *pg, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		switch (*s) {
		case '&': put_str(pg, "&amp;"); break;
		case '<': put_str(pg, "&lt;"); break;
		case '>': put_str(pg, "&gt;"); break;
		case '"': put_str(pg, "&quot;"); break;
		case '\'': put_str(pg, "&#39;"); break;
		default: put(pg, s, 1); break;
		}
	}
}

/* Append S percent-encoded per RFC 3986 (unreserved characters kept). */
static void put_encoded(page *pg, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			put(pg, s, 1);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			put(pg, esc, 3);
		}
	}
}

static void html_error(sb_response *resp, int status, const char *message)
{
	page pg = {0};
	put_str(&pg, "<!doctype html><html><head><meta charset=\"utf-8\"><title>Domain Connect error</title></head>"
		"<body><h1>This request cannot be authorized</h1><p>");
	put_escaped(&pg, message);
	put_str(&pg, "</p></body></html>\n");
	resp->status = status;
	resp->content_type = "text/html; charset=utf-8";
	free(resp->body);
	resp->body = pg.buf;
	resp->body_len = pg.len;
}

/* Redirect to REDIRECT_URI with NAME=VALUE, optional error_description and the state. */
static void redirect_back(sb_request *req, sb_response *resp, const char *redirect_uri, const char *name,
	const char *value, const char *description)
{
	page pg = {0};
	put_str(&pg, redirect_uri);
	put_str(&pg, strchr(redirect_uri, '?') != NULL ? "&" : "?");
	put_str(&pg, name);
	put_str(&pg, "=");
	put_encoded(&pg, value);
	if (description != NULL) {
		put_str(&pg, "&error_description=");
		put_encoded(&pg, description);
	}
	const char *state = sb_request_param(req, "state");
	if (state != NULL) {
		put_str(&pg, "&state=");
		put_encoded(&pg, state);
	}
	if (pg.failed || pg.len > CONSENT_REDIRECT_MAX) {
		free(pg.buf);
		html_error(resp, 400, "the redirect URL would be too long");
		return;
	}
	sb_response_redirect(resp, pg.buf);
	free(pg.buf);
}

/* Return true when every comma-separated host is empty or a valid relative name. */
static bool hosts_valid(const char *hosts)
{
	if (hosts == NULL)
		return true;
	char buf[1024];
	if (strlen(hosts) >= sizeof(buf))
		return false;
	const char *p = hosts;
	for (;;) {
		size_t n = strcspn(p, ",");
		const char *a = p, *b = p + n;
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		memcpy(buf, a, (size_t)(b - a));
		buf[b - a] = '\0';
		if (buf[0] != '\0' && strcmp(buf, "@") != 0 && !sb_valid_domain_name(buf))
			return false;
		if (p[n] == '\0')
			return true;
		p += n + 1;
	}
}

/*
 * Work out the services of this consent into SCOPE_OUT. Returns NULL on
 * success, or the OAuth error code with *WHY set.
 */
static const char *check_scope(sb_request *req, const char *provider_id, const char *path_service,
	char *scope_out, size_t cap, const char **why)
{
	const sb_provider *p = req->provider;
	const char *scope = sb_request_param(req, "scope");

	if (p->quirks.service_id_in_path) {
		if (path_service == NULL) {
			*why = "this provider needs /services/<serviceId> in the consent path";
			return "invalid_request";
		}
		if (scope != NULL && *scope != '\0' && strcmp(scope, path_service) != 0) {
			*why = "this provider grants one service per consent, named in the path";
			return "invalid_scope";
		}
		scope = path_service;
	} else if (path_service != NULL) {
		scope = scope != NULL && *scope != '\0' ? scope : path_service;
	}
	if (scope == NULL || *scope == '\0' || strlen(scope) >= cap) {
		*why = "scope is missing or too long";
		return "invalid_scope";
	}
	snprintf(scope_out, cap, "%s", scope);

	char copy[1024];
	snprintf(copy, sizeof(copy), "%s", scope);
	char *save = NULL;
	for (char *sid = strtok_r(copy, " +", &save); sid != NULL; sid = strtok_r(NULL, " +", &save)) {
		if (tstore_find(p->templates, provider_id, sid) == NULL) {
			*why = "a requested template is not supported by this provider";
			return "invalid_scope";
		}
	}
	return NULL;
}

static enum MHD_Result add_hidden(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	page *pg = cls;
	put_str(pg, "<input type=\"hidden\" name=\"");
	put_escaped(pg, key);
	put_str(pg, "\" value=\"");
	put_escaped(pg, value != NULL ? value : "");
	put_str(pg, "\">\n");
	return MHD_YES;
}

static void show_page(sb_request *req, sb_response *resp, const char *provider_id, const char *domain,
	const char *hosts, const char *scope, const char *client_id)
{
	page pg = {0};
	put_str(&pg, "<!doctype html><html><head><meta charset=\"utf-8\"><title>");
	put_escaped(&pg, req->provider->name);
	put_str(&pg, ": connect your domain</title></head><body>\n<h1>");
	put_escaped(&pg, req->provider->name);
	put_str(&pg, "</h1>\n<p>The service <strong>");
	put_escaped(&pg, provider_id);
	put_str(&pg, "</strong> (client <code>");
	put_escaped(&pg, client_id);
	put_str(&pg, "</code>) asks to change DNS records of <strong>");
	put_escaped(&pg, domain);
	put_str(&pg, "</strong>.</p>\n<p>Hosts: <code>");
	put_escaped(&pg, hosts != NULL && *hosts != '\0' ? hosts : "@ (the apex)");
	put_str(&pg, "</code></p>\n<p>Templates: <code>");
	put_escaped(&pg, scope);
	put_str(&pg, "</code></p>\n<form method=\"post\" action=\"");
	put_escaped(&pg, req->url);
	put_str(&pg, "\">\n");
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, add_hidden, &pg);
	put_str(&pg, "<button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\n"
		"<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>\n</body></html>\n");
	if (pg.failed) {
		free(pg.buf);
		html_error(resp, 500, "out of memory");
		return;
	}
	resp->status = 200;
	resp->content_type = "text/html; charset=utf-8";
	free(resp->body);
	resp->body = pg.buf;
	resp->body_len = pg.len;
}

void sb_handle_consent(sb_request *req, const char *provider_id, const char *service_id, sb_response *resp)
{
	sb_provider *p = req->provider;
	if (!p->async_supported) {
		html_error(resp, 404, "this provider does not support the asynchronous flow");
		return;
	}

	/* Without a known client and a registered redirect URI, never redirect. */
	const char *client_id = sb_request_param(req, "client_id");
	const char *redirect_uri = sb_request_param(req, "redirect_uri");
	const sb_client *client = client_id != NULL ? sb_provider_client(p, client_id) : NULL;
	if (client == NULL) {
		html_error(resp, 400, "unknown or missing client_id");
		return;
	}
	if (redirect_uri == NULL || !sb_client_redirect_allowed(client, redirect_uri)) {
		html_error(resp, 400, "redirect_uri is missing or not registered for this client");
		return;
	}

	const char *response_type = sb_request_param(req, "response_type");
	if (response_type != NULL && strcmp(response_type, "code") != 0) {
		redirect_back(req, resp, redirect_uri, "error", "unsupported_response_type", NULL);
		return;
	}
	const char *domain = sb_request_param(req, "domain");
	pthread_mutex_lock(&req->server->lock);
	bool hosted = domain != NULL && sb_provider_zone(p, domain) != NULL;
	pthread_mutex_unlock(&req->server->lock);
	if (!hosted) {
		redirect_back(req, resp, redirect_uri, "error", "invalid_request", "domain is missing or not hosted here");
		return;
	}
	const char *hosts = sb_request_param(req, "host");
	if (!hosts_valid(hosts)) {
		redirect_back(req, resp, redirect_uri, "error", "invalid_request", "invalid host list");
		return;
	}
	char scope[1024];
	const char *why = NULL;
	const char *scope_error = check_scope(req, provider_id, service_id, scope, sizeof(scope), &why);
	if (scope_error != NULL) {
		redirect_back(req, resp, redirect_uri, "error", scope_error, why);
		return;
	}

	bool post = strcmp(req->method, "POST") == 0;
	const char *decision = post ? sb_request_param(req, "decision") : NULL;
	bool approve = post ? decision != NULL && strcmp(decision, "approve") == 0
			    : req->server->opts.auto_approve || req->server->config->auto_approve || p->auto_approve;
	if (post && !approve) {
		redirect_back(req, resp, redirect_uri, "error", "access_denied", "user_cancel: the owner denied access");
		return;
	}
	if (!approve) {
		show_page(req, resp, provider_id, domain, hosts, scope, client_id);
		return;
	}

	char code[SB_TOKEN_CHARS + 1];
	pthread_mutex_lock(&req->server->lock);
	bool issued = sb_tokens_issue_code(req->server->tokens, p, domain, hosts, provider_id, scope,
		client_id, redirect_uri, code);
	pthread_mutex_unlock(&req->server->lock);
	if (!issued) {
		redirect_back(req, resp, redirect_uri, "error", "server_error", NULL);
		return;
	}
	redirect_back(req, resp, redirect_uri, "code", code, NULL);
}
