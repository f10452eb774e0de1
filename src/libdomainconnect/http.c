/*
 * The one HTTP request path: guard the URL, resolve its host with c-ares,
 * guard every address, pin the connection to those addresses, run the
 * transfer on the client's multi handle and capture status, body and
 * Retry-After.
 *
 * Why pinning closes DNS rebinding: the easy handle gets a CURLOPT_RESOLVE
 * entry for host:port holding exactly the checked addresses, so curl connects
 * to them without a lookup of its own. A resolver start callback rejects any
 * lookup curl would still attempt, so a missing entry fails the transfer
 * instead of reaching the system resolver. The URL API sets the host curl
 * connects to, so it is the name the guard checked.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "resolver.h"

#define RETRY_AFTER_MAX 86400L /* a day; longer values are clamped */
#define BODY_INITIAL_CAPACITY 1024
#define REDACTED "[redacted]"

struct dc_http {
	dc_client *client;
	dc_http *prev;
	dc_http *next;
	dc_http_cb cb;
	void *arg;

	char *method;
	char *host;
	int port;
	CURLU *url;
	char *body;
	size_t body_len;
	size_t max_body;
	char *what;
	char *headers[DC_HTTP_HEADERS_MAX];
	char *secrets[DC_HTTP_SECRETS_MAX];
	ev_tstamp started;

	dc_lookup *lookup;
	CURL *easy;
	struct curl_slist *header_list;
	struct curl_slist *resolve_list;
	char errbuf[CURL_ERROR_SIZE];

	dc_http_response resp;
	size_t resp_cap;
	bool too_large;
};

/* ---- Scrubbing secrets -------------------------------------------------- */

/*
 * A server can echo a secret in many spellings: raw, %XX in any case and for
 * any byte, '+' for a space, JSON \uXXXX or \/ escapes, or cut into pieces
 * spread over several fields. The matcher below decodes those escapes while
 * it compares, and a match counts when it covers the whole secret or at
 * least FRAGMENT_MIN bytes of it.
 */
#define FRAGMENT_MIN 8
/* Longer secrets are matched whole only, which bounds the work per byte. */
#define FRAGMENT_SECRET_MAX 1024

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Decodes one logical byte of text at *pos: a %XX or JSON \uXXXX escape of a
 * byte from 1 to 0x7f, a JSON \/, \\ or \" escape, or a plain byte. Stores
 * the byte in *out and returns the raw length consumed.
 */
static size_t decode_byte(const char *text, size_t len, size_t pos, unsigned char *out)
{
	const unsigned char *t = (const unsigned char *)text + pos;
	size_t left = len - pos;

	if (t[0] == '%' && left >= 3 && hex_value(t[1]) >= 0 && hex_value(t[2]) >= 0) {
		int v = hex_value(t[1]) * 16 + hex_value(t[2]);
		if (v != 0) {
			*out = (unsigned char)v;
			return 3;
		}
	}
	if (t[0] == '\\' && left >= 6 && t[1] == 'u' && t[2] == '0' && t[3] == '0' &&
	    hex_value(t[4]) >= 0 && hex_value(t[5]) >= 0) {
		int v = hex_value(t[4]) * 16 + hex_value(t[5]);
		if (v != 0 && v < 0x80) {
			*out = (unsigned char)v;
			return 6;
		}
	}
	if (t[0] == '\\' && left >= 2 && (t[1] == '/' || t[1] == '\\' || t[1] == '"')) {
		*out = t[1];
		return 2;
	}
	*out = t[0];
	return 1;
}

/*
 * Compares secret bytes from s[0] on with text at pos, literally or decoded.
 * Returns the number of secret bytes matched and stores the raw length they
 * cover in *raw_len.
 */
static size_t match_run(const char *text, size_t len, size_t pos, const char *s, size_t s_len,
                        bool decode, size_t *raw_len)
{
	size_t matched = 0;
	size_t p = pos;

	while (matched < s_len && p < len) {
		unsigned char c;
		size_t step = decode ? decode_byte(text, len, p, &c) : 1;

		if (!decode)
			c = (unsigned char)text[p];
		/* Form encoding writes a space as '+'. */
		if (c != (unsigned char)s[matched] && !(decode && c == '+' && s[matched] == ' '))
			break;
		matched++;
		p += step;
	}
	*raw_len = p - pos;
	return matched;
}

/*
 * Returns the raw length of the longest spelling of a secret, or with
 * fragments of a piece of one, that starts at pos, or 0 when none does.
 */
static size_t secret_at(const char *text, size_t len, size_t pos, const char *const *secrets,
                        size_t secrets_count, bool fragments)
{
	size_t best = 0;

	for (size_t i = 0; i < secrets_count; i++) {
		const char *s = secrets[i];
		if (s == NULL || s[0] == '\0')
			continue;
		size_t s_len = strlen(s);
		size_t starts = fragments && s_len <= FRAGMENT_SECRET_MAX && s_len > FRAGMENT_MIN
		                        ? s_len - FRAGMENT_MIN + 1
		                        : 1;

		for (size_t k = 0; k < starts; k++) {
			size_t need = starts == 1 ? s_len : FRAGMENT_MIN;
			for (int decode = 0; decode < 2; decode++) {
				size_t raw_len;
				size_t matched = match_run(text, len, pos, s + k, s_len - k, decode != 0,
				                           &raw_len);
				if (matched >= need && raw_len > best)
					best = raw_len;
			}
		}
	}
	return best;
}

/*
 * Copies src with every spelling of a secret replaced by REDACTED into a
 * malloc'd string, stopping once out_max bytes were written. With out_max 0
 * there is no limit, and only whole secrets are matched so that the work
 * stays linear in a large body. Sets *changed when something was replaced.
 * Returns NULL on ENOMEM.
 */
static char *scrub_copy(const char *src, size_t src_len, const char *const *secrets,
                        size_t secrets_count, size_t out_max, bool *changed)
{
	size_t cap = out_max != 0 ? out_max + sizeof(REDACTED) : src_len + sizeof(REDACTED);
	char *out = malloc(cap);
	size_t n = 0;

	if (changed != NULL)
		*changed = false;
	if (out == NULL)
		return NULL;
	for (size_t p = 0; p < src_len && src[p] != '\0' && (out_max == 0 || n < out_max);) {
		size_t hit = secret_at(src, src_len, p, secrets, secrets_count, out_max != 0);
		if (hit == 0) {
			out[n++] = src[p++];
		} else {
			if (n + sizeof(REDACTED) > cap) {
				char *grown = realloc(out, cap * 2 + sizeof(REDACTED));
				if (grown == NULL) {
					free(out);
					return NULL;
				}
				out = grown;
				cap = cap * 2 + sizeof(REDACTED);
			}
			memcpy(out + n, REDACTED, sizeof(REDACTED) - 1);
			n += sizeof(REDACTED) - 1;
			p += hit;
			if (changed != NULL)
				*changed = true;
		}
		if (n + 1 >= cap) {
			char *grown = realloc(out, cap * 2);
			if (grown == NULL) {
				free(out);
				return NULL;
			}
			out = grown;
			cap *= 2;
		}
	}
	out[n] = '\0';
	return out;
}

void dc_copy_scrubbed(char *dst, size_t dst_size, const char *src, size_t src_len,
                      const char *const *secrets, size_t secrets_count)
{
	if (dst_size == 0)
		return;
	dst[0] = '\0';

	/* Without memory to scrub, copy nothing rather than a secret. */
	char *text = scrub_copy(src, src_len, secrets, secrets_count, dst_size, NULL);
	if (text == NULL)
		return;
	dc_copy_sanitized(dst, dst_size, text, strlen(text));
	free(text);
}

void dc_error_scrub(dc_error *err, const char *const *secrets, size_t secrets_count)
{
	char copy[DC_MESSAGE_MAX];

	if (err == NULL)
		return;
	memcpy(copy, err->message, sizeof(copy));
	dc_copy_scrubbed(err->message, sizeof(err->message), copy, strnlen(copy, sizeof(copy)),
	                 secrets, secrets_count);
	memcpy(copy, err->oauth_error, sizeof(err->oauth_error));
	dc_copy_scrubbed(err->oauth_error, sizeof(err->oauth_error), copy,
	                 strnlen(copy, sizeof(err->oauth_error)), secrets, secrets_count);
	memcpy(copy, err->oauth_description, sizeof(err->oauth_description));
	dc_copy_scrubbed(err->oauth_description, sizeof(err->oauth_description), copy,
	                 strnlen(copy, sizeof(err->oauth_description)), secrets, secrets_count);
}

bool dc_json_scrub(json_t *value, const char *const *secrets, size_t secrets_count)
{
	if (json_is_string(value)) {
		bool changed;
		char *clean = scrub_copy(json_string_value(value), json_string_length(value), secrets,
		                         secrets_count, 0, &changed);
		if (clean == NULL)
			return false;
		bool ok = !changed || json_string_set(value, clean) == 0;
		free(clean);
		return ok;
	}
	if (json_is_array(value)) {
		for (size_t i = 0; i < json_array_size(value); i++)
			if (!dc_json_scrub(json_array_get(value, i), secrets, secrets_count))
				return false;
		return true;
	}
	if (json_is_object(value)) {
		const char *key;
		json_t *member;
		void *tmp;
		json_object_foreach_safe(value, tmp, key, member) {
			bool changed;
			char *clean = scrub_copy(key, strlen(key), secrets, secrets_count, 0, &changed);
			if (clean == NULL)
				return false;
			free(clean);
			/* A key that spells a secret goes with its value. */
			if (changed)
				json_object_del(value, key);
			else if (!dc_json_scrub(member, secrets, secrets_count))
				return false;
		}
	}
	return true;
}

char *dc_url_join(const char *base, const char *path)
{
	size_t base_len = strlen(base);
	char *url;

	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	if (asprintf(&url, "%.*s%s", (int)base_len, base, path) < 0)
		return NULL;
	return url;
}

/* ---- Status mapping ----------------------------------------------------- */

dc_status dc_http_classify(const dc_http_response *resp, const char *what, dc_error *err)
{
	long code = resp->status;
	dc_status st;

	if (code >= 200 && code < 300)
		return DC_OK;
	if (code == 401)
		st = DC_ERR_UNAUTHORIZED;
	else if (code == 429 || (code == 503 && resp->retry_after >= 0))
		st = DC_ERR_RATE_LIMITED;
	else if (code >= 500 && code < 600)
		st = DC_ERR_TRANSIENT;
	else
		st = DC_ERR_HTTP;

	dc_fail(err, st, "%s failed: HTTP status %ld", what, code);
	if (err != NULL) {
		err->http_status = code;
		err->retry_after = resp->retry_after;
	}
	return st;
}

/* ---- Transfer lifetime -------------------------------------------------- */

static void http_free(dc_http *h)
{
	dc_client *c = h->client;

	if (h->prev != NULL)
		h->prev->next = h->next;
	else if (c->transfers == h)
		c->transfers = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;

	dc_lookup_cancel(h->lookup);
	if (h->easy != NULL) {
		curl_multi_remove_handle(c->multi, h->easy);
		curl_easy_cleanup(h->easy);
	}
	curl_slist_free_all(h->header_list);
	curl_slist_free_all(h->resolve_list);
	curl_url_cleanup(h->url);
	for (size_t i = 0; i < DC_HTTP_HEADERS_MAX; i++)
		free(h->headers[i]);
	for (size_t i = 0; i < DC_HTTP_SECRETS_MAX; i++) {
		if (h->secrets[i] != NULL)
			explicit_bzero(h->secrets[i], strlen(h->secrets[i]));
		free(h->secrets[i]);
	}
	if (h->body != NULL)
		explicit_bzero(h->body, h->body_len);
	free(h->body);
	free(h->resp.body);
	free(h->method);
	free(h->host);
	free(h->what);
	free(h);
}

/* Reports the outcome once, then frees the transfer. */
static void finish(dc_http *h, const dc_http_response *resp, dc_error *err)
{
	dc_error_scrub(err, (const char *const *)h->secrets, DC_HTTP_SECRETS_MAX);
	h->cb(h->arg, resp, err);
	http_free(h);
}

/* Fails with "<what> to <host> <outcome>: <detail>". */
static void finish_error(dc_http *h, dc_status st, const char *outcome, const char *detail)
{
	dc_error err = {0};

	dc_error_clear(&err);
	dc_fail(&err, st, "%s to %s %s: %s", h->what, h->host, outcome, detail);
	finish(h, NULL, &err);
}

void dc_http_cancel(dc_http *h)
{
	if (h != NULL)
		http_free(h);
}

void dc_http_cancel_all(dc_client *c)
{
	while (c->transfers != NULL)
		http_free(c->transfers);
}

/* ---- Response capture --------------------------------------------------- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	dc_http *h = userp;
	size_t n = size * nmemb;

	if (n > h->max_body - h->resp.body_len) {
		h->too_large = true;
		return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
	}
	if (h->resp.body_len + n + 1 > h->resp_cap) {
		size_t cap = h->resp_cap ? h->resp_cap : BODY_INITIAL_CAPACITY;
		while (cap < h->resp.body_len + n + 1)
			cap *= 2;
		char *body = realloc(h->resp.body, cap);
		if (body == NULL)
			return 0;
		h->resp.body = body;
		h->resp_cap = cap;
	}
	memcpy(h->resp.body + h->resp.body_len, data, n);
	h->resp.body_len += n;
	h->resp.body[h->resp.body_len] = '\0';
	return n;
}

/* Parses Retry-After: delta-seconds or an HTTP-date. Returns -1 if invalid. */
static long parse_retry_after(const char *value, size_t len)
{
	char text[128];

	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' ||
	                   value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, value, len);
	text[len] = '\0';

	if (strspn(text, "0123456789") == len) {
		/* More than 18 digits could overflow; any such value is clamped. */
		if (len > 18)
			return RETRY_AFTER_MAX;
		long long seconds = strtoll(text, NULL, 10);
		return seconds > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (long)seconds;
	}

	time_t when = curl_getdate(text, NULL);
	if (when == -1)
		return -1;
	time_t now = time(NULL);
	if (when <= now)
		return 0;
	return when - now > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (long)(when - now);
}

static size_t header_cb(char *data, size_t size, size_t nitems, void *userp)
{
	static const char name[] = "retry-after:";
	dc_http *h = userp;
	size_t n = size * nitems;

	/* A status line starts a new response (after 100 Continue, say). */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		h->resp.retry_after = -1;
	else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0)
		h->resp.retry_after =
			parse_retry_after(data + sizeof(name) - 1, n - (sizeof(name) - 1));
	return n;
}

/* ---- Completion --------------------------------------------------------- */

static dc_status map_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
		return DC_ERR_HOST_REJECTED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_URL_MALFORMAT:
		return DC_ERR_INTERNAL;
	case CURLE_OUT_OF_MEMORY:
		return DC_ERR_NOMEM;
	default:
		/* Connection, TLS, timeouts, truncated or missing responses. A
		   certificate failure is counted here too: it is the provider's
		   outage, and the next attempt may succeed. */
		return DC_ERR_TRANSIENT;
	}
}

void dc_http_done(CURL *easy, CURLcode result)
{
	char *private = NULL;
	dc_error err = {0};

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private);
	dc_http *h = (dc_http *)private;
	if (h == NULL)
		return;
	dc_error_clear(&err);

	if (h->too_large || result == CURLE_FILESIZE_EXCEEDED) {
		dc_fail(&err, DC_ERR_TOO_LARGE, "%s to %s failed: response body over %zu bytes",
		        h->what, h->host, h->max_body);
		finish(h, NULL, &err);
		return;
	}
	if (result != CURLE_OK) {
		const char *detail = h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(result);
		const char *outcome = result == CURLE_OPERATION_TIMEDOUT ? "timed out" : "failed";
		finish_error(h, map_curl_error(result), outcome, detail);
		return;
	}

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &h->resp.status);
	if (h->resp.status >= 300 && h->resp.status < 400) {
		dc_fail(&err, DC_ERR_HTTP,
		        "%s to %s failed: HTTP status %ld is a redirect, and redirects are not "
		        "followed",
		        h->what, h->host, h->resp.status);
		err.http_status = h->resp.status;
		finish(h, NULL, &err);
		return;
	}
	/* An empty body still gets a NUL-terminated buffer. */
	if (h->resp.body == NULL) {
		h->resp.body = calloc(1, 1);
		if (h->resp.body == NULL) {
			finish_error(h, DC_ERR_NOMEM, "failed", "out of memory");
			return;
		}
	}
	finish(h, &h->resp, &err);
}

/* ---- Starting ----------------------------------------------------------- */

/* Refuses every lookup curl would start itself: all names are pinned. */
static int refuse_resolve(void *resolver_state, void *reserved, void *userdata)
{
	(void)resolver_state;
	(void)reserved;
	(void)userdata;
	return 1;
}

/* Builds "host:port:addr,addr" from the checked addresses. */
static bool build_resolve_entry(dc_http *h, const dc_addresses *addrs)
{
	char entry[1024];
	int n = snprintf(entry, sizeof(entry), "%s:%d:", h->host, h->port);

	for (size_t i = 0; i < addrs->count && n > 0 && (size_t)n < sizeof(entry); i++) {
		const struct sockaddr_storage *ss = &addrs->addr[i];
		char text[INET6_ADDRSTRLEN];
		const char *sep = i == 0 ? "" : ",";

		if (ss->ss_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, text, sizeof(text));
			n += snprintf(entry + n, sizeof(entry) - (size_t)n, "%s%s", sep, text);
		} else {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, text,
			          sizeof(text));
			n += snprintf(entry + n, sizeof(entry) - (size_t)n, "%s[%s]", sep, text);
		}
	}
	if (n <= 0 || (size_t)n >= sizeof(entry))
		return false;

	h->resolve_list = curl_slist_append(NULL, entry);
	return h->resolve_list != NULL;
}

static bool build_headers(dc_http *h)
{
	struct curl_slist *list = curl_slist_append(NULL, "Expect:");

	for (size_t i = 0; list != NULL && i < DC_HTTP_HEADERS_MAX && h->headers[i] != NULL; i++) {
		struct curl_slist *next = curl_slist_append(list, h->headers[i]);
		if (next == NULL) {
			curl_slist_free_all(list);
			list = NULL;
		}
		list = next;
	}
	h->header_list = list;
	return list != NULL;
}

/* Creates and configures the easy handle; the addresses are already checked. */
static dc_status setup_easy(dc_http *h, const dc_addresses *addrs)
{
	const dc_config *cfg = &h->client->cfg;
	long elapsed_ms = (long)((ev_now(h->client->loop) - h->started) * 1000.);
	long remaining_ms = cfg->total_timeout_ms - elapsed_ms;

	if (remaining_ms < 1)
		remaining_ms = 1;
	if (!build_resolve_entry(h, addrs) || !build_headers(h))
		return DC_ERR_NOMEM;
	h->easy = curl_easy_init();
	if (h->easy == NULL)
		return DC_ERR_NOMEM;

	CURL *e = h->easy;
	bool ok = curl_easy_setopt(e, CURLOPT_CURLU, h->url) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_PRIVATE, h) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_RESOLVE, h->resolve_list) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_RESOLVER_START_FUNCTION, refuse_resolve) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms) ==
	                  CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining_ms) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_body) ==
	                  CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_USERAGENT, cfg->user_agent) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->header_list) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_WRITEDATA, h) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_HEADERDATA, h) == CURLE_OK &&
	          curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf) == CURLE_OK;
	if (ok && cfg->ca_file != NULL)
		ok = curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file) == CURLE_OK;
	if (ok && strcmp(h->method, "POST") == 0)
		ok = curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)h->body_len) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body ? h->body : "") == CURLE_OK;
	if (!ok)
		return DC_ERR_INTERNAL;

	return dc_client_add_transfer(h->client, e);
}

static void addresses_cb(void *arg, const dc_addresses *result, const dc_error *lookup_err)
{
	dc_http *h = arg;
	dc_error err = {0};

	h->lookup = NULL;
	if (result == NULL) {
		dc_status st = lookup_err->status == DC_ERR_NOMEM ? DC_ERR_NOMEM : DC_ERR_TRANSIENT;
		finish_error(h, st, "failed", lookup_err->message);
		return;
	}

	/* Every address must pass, because a mixed result is a rebinding attempt. */
	for (size_t i = 0; i < result->count; i++) {
		dc_error_clear(&err);
		if (dc_guard_check_address(&h->client->cfg, (const struct sockaddr *)&result->addr[i],
		                           &err) != DC_OK) {
			finish_error(h, DC_ERR_HOST_REJECTED, "rejected", err.message);
			return;
		}
	}

	dc_status st = setup_easy(h, result);
	if (st != DC_OK) {
		finish_error(h, st, "failed", "could not set up the transfer");
		return;
	}
}

/* Copies the request into h and checks its URL with the guard. */
static dc_status copy_request(dc_http *h, const dc_http_request *r, dc_error *err)
{
	/* Secrets first, so a message from the URL check can be scrubbed. */
	for (size_t i = 0; i < DC_HTTP_SECRETS_MAX; i++)
		if (r->secrets[i] != NULL && (h->secrets[i] = strdup(r->secrets[i])) == NULL)
			return DC_ERR_NOMEM;

	dc_status st = dc_guard_check_url(&h->client->cfg, r->url, &h->host, &h->port, err);
	if (st != DC_OK)
		return st;

	h->method = strdup(r->method);
	h->what = strdup(r->what ? r->what : "request");
	if (h->method == NULL || h->what == NULL)
		return DC_ERR_NOMEM;
	for (size_t i = 0; i < DC_HTTP_HEADERS_MAX && r->headers[i] != NULL; i++)
		if ((h->headers[i] = strdup(r->headers[i])) == NULL)
			return DC_ERR_NOMEM;
	if (r->body != NULL && r->body_len > 0) {
		if ((h->body = malloc(r->body_len)) == NULL)
			return DC_ERR_NOMEM;
		memcpy(h->body, r->body, r->body_len);
		h->body_len = r->body_len;
	}

	/* curl connects to the host the guard checked, spelled as it checked it. */
	h->url = curl_url();
	if (h->url == NULL)
		return DC_ERR_NOMEM;
	if (curl_url_set(h->url, CURLUPART_URL, r->url, 0) != CURLUE_OK ||
	    curl_url_set(h->url, CURLUPART_HOST, h->host, 0) != CURLUE_OK)
		return dc_fail(err, DC_ERR_HOST_REJECTED, "%s: the URL could not be parsed",
		               h->what);
	return DC_OK;
}

dc_http *dc_http_start(dc_client *c, const dc_http_request *r, dc_http_cb cb, void *arg,
                       dc_error *err)
{
	dc_http *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		dc_fail(err, DC_ERR_NOMEM, "out of memory starting a request");
		return NULL;
	}
	h->client = c;
	h->cb = cb;
	h->arg = arg;
	h->max_body = r->max_body;
	h->resp.retry_after = -1;
	h->started = ev_now(c->loop);
	h->next = c->transfers;
	if (c->transfers != NULL)
		c->transfers->prev = h;
	c->transfers = h;

	dc_status st = copy_request(h, r, err);
	if (st != DC_OK) {
		if (st == DC_ERR_NOMEM)
			dc_fail(err, st, "out of memory starting a request");
		dc_error_scrub(err, (const char *const *)h->secrets, DC_HTTP_SECRETS_MAX);
		http_free(h);
		return NULL;
	}

	h->lookup = dc_resolve_addresses(c, h->host, addresses_cb, h, err);
	if (h->lookup == NULL) {
		http_free(h);
		return NULL;
	}
	return h;
}
