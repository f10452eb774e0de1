/*
 * The HTTPS daemon and request routing: provider by Host header or by a
 * "/p/<provider id>" path prefix, endpoint by path, fault injection before
 * the handler, the response (with slow or oversized bodies) after it, and
 * one log line per request.
 */
#include "grant.h"
#include "server.h"
#include "stats.h"
#include "timer.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Bytes sent per pause when the slow-body fault is on. */
#define SLOW_BODY_CHUNK 16
/* Idle keep-alive connections are closed after this many seconds. */
#define CONNECTION_TIMEOUT_S 60
#define CONNECTION_LIMIT 4096
#define PATH_PREFIX "/p/"

static const char API_PREFIX[] = "/v2/domainTemplates/providers/";
static const char CONSENT_PREFIX[] = "/consent/v2/domainTemplates/providers/";

/* Request helpers */

const char *sb_request_query(sb_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *sb_request_header(sb_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode [S, S+LEN) with '+' as a space, as form bodies use. */
static char *form_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[n++] = ' ';
		} else if (s[i] == '%' && i + 2 < len && hex_value((unsigned char)s[i + 1]) >= 0 &&
			hex_value((unsigned char)s[i + 2]) >= 0) {
			out[n++] = (char)(hex_value((unsigned char)s[i + 1]) * 16 + hex_value((unsigned char)s[i + 2]));
			i += 2;
		} else {
			out[n++] = s[i];
		}
	}
	out[n] = '\0';
	return out;
}

static json_t *parse_form(const char *body, size_t len)
{
	json_t *obj = json_object();
	const char *p = body, *end = body + len;
	while (obj != NULL && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *item_end = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(item_end - p));
		const char *key_end = eq != NULL ? eq : item_end;
		char *key = form_decode(p, (size_t)(key_end - p));
		char *value = eq != NULL ? form_decode(eq + 1, (size_t)(item_end - eq - 1)) : strdup("");
		if (key != NULL && value != NULL && *key != '\0' && json_object_get(obj, key) == NULL)
			json_object_set_new(obj, key, json_string(value));
		free(key);
		free(value);
		p = item_end + 1;
	}
	return obj;
}

/* Parse the body once, as JSON when it looks like an object, else as a form. */
static json_t *body_params(sb_request *req)
{
	if (req->body_params_done)
		return req->body_params;
	req->body_params_done = true;
	if (req->body_len == 0)
		return NULL;

	const char *type = sb_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	bool json = (type != NULL && strstr(type, "json") != NULL) || req->body[0] == '{';
	if (json) {
		json_t *obj = json_loadb(req->body, req->body_len, 0, NULL);
		if (json_is_object(obj))
			req->body_params = obj;
		else
			json_decref(obj);
	} else {
		req->body_params = parse_form(req->body, req->body_len);
	}
	return req->body_params;
}

const char *sb_request_param(sb_request *req, const char *name)
{
	const char *v = sb_request_query(req, name);
	if (v != NULL)
		return v;
	return json_string_value(json_object_get(body_params(req), name));
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	json_t *obj = cls;
	if (key != NULL && json_object_get(obj, key) == NULL)
		json_object_set_new(obj, key, json_string(value != NULL ? value : ""));
	return MHD_YES;
}

json_t *sb_request_params(sb_request *req)
{
	json_t *obj = json_object();
	if (obj == NULL)
		return NULL;
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_arg, obj);

	const char *key;
	json_t *value;
	json_object_foreach(body_params(req), key, value) {
		if (json_object_get(obj, key) != NULL)
			continue;
		if (json_is_string(value))
			json_object_set(obj, key, value);
		else if (json_is_integer(value))
			json_object_set_new(obj, key, json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(value)));
	}
	return obj;
}

/* Responses */

void sb_response_json(sb_response *resp, int status, json_t *json)
{
	resp->status = status;
	resp->content_type = "application/json";
	free(resp->body);
	resp->body = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;
	resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
	json_decref(json);
}

void sb_response_error(sb_response *resp, int status, const char *message)
{
	char code[8];
	snprintf(code, sizeof(code), "%d", status);
	sb_response_json(resp, status, json_pack("{s:s, s:s}", "code", code, "message", message));
}

void sb_response_text(sb_response *resp, int status, const char *content_type, const char *text)
{
	resp->status = status;
	resp->content_type = content_type;
	free(resp->body);
	resp->body = strdup(text);
	resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
}

void sb_response_redirect(sb_response *resp, const char *location)
{
	resp->status = 302;
	resp->content_type = "text/plain";
	free(resp->location);
	resp->location = strdup(location);
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

/* Routing */

/* Copy the path segment starting at *P up to the next '/' into OUT. */
static bool take_segment(const char **p, char *out, size_t cap)
{
	size_t len = strcspn(*p, "/");
	if (len == 0 || len >= cap)
		return false;
	memcpy(out, *p, len);
	out[len] = '\0';
	*p += len;
	return true;
}

/* Find the provider by Host header, else by "/p/<id>" prefix; set base_url. */
static void resolve_provider(sb_request *req)
{
	sb_config *config = req->server->config;
	const char *host = sb_request_header(req, MHD_HTTP_HEADER_HOST);
	char host_buf[256] = "localhost";
	if (host != NULL && strlen(host) < sizeof(host_buf) &&
		strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") == strlen(host))
		snprintf(host_buf, sizeof(host_buf), "%s", host);

	req->path = req->url;
	req->provider = NULL;
	req->provider_index = -1;
	size_t name_len = host_buf[0] == '[' ? strcspn(host_buf, "]") + 1 : strcspn(host_buf, ":");
	/* Without the closing bracket, the "+ 1" would point past the string's end. */
	if (name_len > strlen(host_buf))
		name_len = strlen(host_buf);
	sb_provider *p = sb_config_provider_by_host(config, host_buf, name_len);
	if (p != NULL) {
		req->provider = p;
		if (strchr(host_buf + name_len, ':') != NULL)
			snprintf(req->base_url, sizeof(req->base_url), "https://%s", host_buf);
		else
			snprintf(req->base_url, sizeof(req->base_url), "https://%s:%d", host_buf, req->server->port);
	} else if (strncmp(req->url, PATH_PREFIX, strlen(PATH_PREFIX)) == 0) {
		const char *rest = req->url + strlen(PATH_PREFIX);
		char id[128];
		if (take_segment(&rest, id, sizeof(id)) && (p = sb_config_provider_by_id(config, id)) != NULL) {
			req->provider = p;
			req->path = rest;
			if (strchr(host_buf + name_len, ':') != NULL)
				snprintf(req->base_url, sizeof(req->base_url), "https://%s%s%s", host_buf, PATH_PREFIX, p->id);
			else
				snprintf(req->base_url, sizeof(req->base_url), "https://%s:%d%s%s", host_buf,
					req->server->port, PATH_PREFIX, p->id);
		}
	}
	if (req->provider != NULL)
		req->provider_index = (int)(req->provider - config->providers);
}

/* Classify PATH as an endpoint and copy the ids it carries into A and B. */
static sb_endpoint classify(const char *method, const char *path, char *a, char *b, size_t cap)
{
	a[0] = b[0] = '\0';
	if (strncmp(path, "/admin/", 7) == 0 || strcmp(path, "/admin") == 0)
		return SB_EP_ADMIN;
	if (strcmp(path, "/v2/oauth/access_token") == 0)
		return SB_EP_TOKEN;

	bool consent = strncmp(path, CONSENT_PREFIX, sizeof(CONSENT_PREFIX) - 1) == 0;
	if (consent || strncmp(path, API_PREFIX, sizeof(API_PREFIX) - 1) == 0) {
		const char *p = path + (consent ? sizeof(CONSENT_PREFIX) : sizeof(API_PREFIX)) - 1;
		if (!take_segment(&p, a, cap))
			return SB_EP_OTHER;
		if (consent && *p == '\0')
			return SB_EP_CONSENT;
		if (strncmp(p, "/services/", 10) != 0)
			return SB_EP_OTHER;
		p += 10;
		if (!take_segment(&p, b, cap))
			return SB_EP_OTHER;
		if (consent)
			return *p == '\0' ? SB_EP_CONSENT : SB_EP_OTHER;
		if (*p == '\0')
			return strcmp(method, "GET") == 0 ? SB_EP_TEMPLATE : SB_EP_OTHER;
		if (strcmp(p, "/apply") == 0)
			return SB_EP_APPLY;
		if (strcmp(p, "/revert") == 0)
			return SB_EP_REVERT;
		return SB_EP_OTHER;
	}

	/* /v2/<zone>/settings */
	if (strncmp(path, "/v2/", 4) == 0) {
		const char *p = path + 4;
		if (take_segment(&p, a, cap) && strcmp(p, "/settings") == 0)
			return SB_EP_SETTINGS;
	}
	return SB_EP_OTHER;
}

static bool method_allowed(sb_endpoint ep, const char *method)
{
	switch (ep) {
	case SB_EP_SETTINGS:
	case SB_EP_TEMPLATE:
		return strcmp(method, "GET") == 0;
	case SB_EP_CONSENT:
		return strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0;
	case SB_EP_TOKEN:
	case SB_EP_APPLY:
	case SB_EP_REVERT:
		return strcmp(method, "POST") == 0;
	default:
		return true;
	}
}

static void dispatch(sb_request *req, sb_response *resp)
{
	char a[256], b[256];
	sb_endpoint ep = classify(req->method, req->path, a, b, sizeof(a));
	if (ep == SB_EP_ADMIN) {
		sb_handle_admin(req, req->path, resp);
		return;
	}
	if (req->provider == NULL) {
		sb_response_error(resp, 404, "no provider for this host name; use a provider's host or the /p/<provider id> prefix");
		return;
	}
	if (!method_allowed(ep, req->method)) {
		sb_response_error(resp, 405, "method not allowed on this path");
		return;
	}

	switch (ep) {
	case SB_EP_SETTINGS:
		sb_handle_settings(req, a, resp);
		break;
	case SB_EP_TEMPLATE:
		sb_handle_template(req, a, b, resp);
		break;
	case SB_EP_CONSENT:
		sb_handle_consent(req, a, b[0] != '\0' ? b : NULL, resp);
		break;
	case SB_EP_TOKEN:
		sb_handle_token(req, resp);
		break;
	case SB_EP_APPLY:
		sb_handle_apply(req, a, b, resp);
		break;
	case SB_EP_REVERT:
		sb_handle_revert(req, a, b, resp);
		break;
	default:
		sb_response_error(resp, 404, "not found");
		break;
	}
}

/* Sending */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	sb_request *req = cls;
	if (pos >= req->stream_len)
		return MHD_CONTENT_READER_END_OF_STREAM;

	if (req->stream_pause) {
		req->stream_pause = false;
		MHD_suspend_connection(req->conn);
		sb_timer_resume_later(req->server->timer, req->conn, req->plan.slow_body_ms);
		return 0;
	}

	size_t n = req->stream_len - (size_t)pos;
	if (n > max)
		n = max;
	if (req->plan.slow_body_ms > 0 && n > SLOW_BODY_CHUNK)
		n = SLOW_BODY_CHUNK;
	if (req->stream_fill)
		memset(buf, 'x', n);
	else
		memcpy(buf, req->stream_body + pos, n);
	req->stream_pause = req->plan.slow_body_ms > 0;
	return (ssize_t)n;
}

/* Replace the body with {"padding":"xxx..."} of the oversize fault's size. */
static void make_oversized(sb_request *req, sb_response *resp)
{
	size_t size = req->plan.oversize_bytes;
	free(resp->body);
	resp->body = NULL;
	resp->body_len = size;
	resp->content_type = "application/json";
	req->stream_fill = true;
	req->stream_len = size;
}


/*
 * Counts a request and ends its in-flight mark once. Called when its response
 * is queued, so a client that reads the counters right after the response
 * sees it, and again on completion for requests that never got one.
 */
static void count_request(sb_request *req)
{
	sb_server *srv = req->server;

	if (req->counted)
		return;
	pthread_mutex_lock(&srv->lock);
	if (req->overlap_zone != NULL) {
		sb_overlap_leave(req->overlap_zone);
		req->overlap_zone = NULL;
	}
	sb_stats_count(srv->stats, req->provider_index, req->endpoint, req->status);
	pthread_mutex_unlock(&srv->lock);
	req->counted = true;
}
static enum MHD_Result send_response(sb_request *req, sb_response *resp)
{
	struct MHD_Response *r;
	bool stream = req->plan.slow_body_ms > 0 || req->plan.oversize;
	if (req->plan.oversize)
		make_oversized(req, resp);

	if (stream) {
		if (!req->stream_fill) {
			req->stream_body = resp->body;
			req->stream_len = resp->body_len;
			resp->body = NULL;
		}
		r = MHD_create_response_from_callback(req->stream_len, 4096, stream_reader, req, NULL);
	} else {
		r = MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_FREE);
		resp->body = NULL;
	}
	if (r == NULL)
		return MHD_NO;

	if (resp->content_type != NULL && (resp->body_len > 0 || stream))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	if (resp->location != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
	if (resp->retry_after_s > 0) {
		char value[16];
		snprintf(value, sizeof(value), "%d", resp->retry_after_s);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, value);
	}
	if (resp->www_authenticate)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");

	req->status = resp->status;
	req->phase = SB_PHASE_ANSWERED;
	count_request(req);
	enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	return rc;
}

static void response_clear(sb_response *resp)
{
	free(resp->body);
	free(resp->location);
}

/* Fill RESP with an injected redirect or error. Returns true when one applied. */
static bool injected_answer(sb_request *req, sb_response *resp)
{
	if (req->plan.redirect != 0) {
		sb_response_redirect(resp, req->plan.redirect_location);
		return true;
	}
	if (req->plan.error_status != 0) {
		sb_response_error(resp, req->plan.error_status, "injected fault");
		if (req->plan.error_status == 429 || req->plan.error_status == 503)
			resp->retry_after_s = (int)req->plan.retry_after_s;
		return true;
	}
	return false;
}

static enum MHD_Result handle_ready(sb_request *req)
{
	sb_response resp = {.status = 500, .content_type = "application/json"};
	if (req->body_too_large) {
		sb_response_error(&resp, 413, "request body larger than 64 KiB");
	} else if (req->provider == NULL || !injected_answer(req, &resp)) {
		dispatch(req, &resp);
	}

	if (req->overlap_zone != NULL) {
		pthread_mutex_lock(&req->server->lock);
		sb_overlap_leave(req->overlap_zone);
		pthread_mutex_unlock(&req->server->lock);
		req->overlap_zone = NULL;
	}

	enum MHD_Result rc = send_response(req, &resp);
	response_clear(&resp);
	return rc;
}

/* First full call: route, draw faults, maybe drop or wait. */
static enum MHD_Result handle_new(sb_request *req)
{
	char a[256], b[256];
	resolve_provider(req);
	req->endpoint = classify(req->method, req->path, a, b, sizeof(a));
	if (req->endpoint == SB_EP_ADMIN || req->provider == NULL) {
		req->phase = SB_PHASE_READY;
		return handle_ready(req);
	}

	sb_server *srv = req->server;
	pthread_mutex_lock(&srv->lock);
	sb_faults_plan(&req->provider->faults, req->endpoint, &req->provider->rng, &req->plan);
	if ((req->endpoint == SB_EP_APPLY || req->endpoint == SB_EP_REVERT) && !req->plan.drop) {
		const char *domain = sb_request_param(req, "domain");
		req->overlap_zone = domain != NULL ? sb_provider_zone(req->provider, domain) : NULL;
		if (req->overlap_zone != NULL)
			sb_overlap_enter(req->overlap_zone);
	}
	pthread_mutex_unlock(&srv->lock);

	if (req->plan.drop) {
		req->status = 0;
		return MHD_NO;
	}
	if (req->plan.latency_ms > 0) {
		req->phase = SB_PHASE_WAITING;
		MHD_suspend_connection(req->conn);
		sb_timer_resume_later(srv->timer, req->conn, req->plan.latency_ms);
		return MHD_YES;
	}
	req->phase = SB_PHASE_READY;
	return handle_ready(req);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)version;
	sb_server *srv = cls;
	sb_request *req = *con_cls;
	if (req == NULL) {
		req = calloc(1, sizeof(*req));
		if (req == NULL)
			return MHD_NO;
		req->server = srv;
		req->conn = conn;
		req->url = url;
		req->method = method;
		req->start_ms = sb_monotonic_ms();
		req->provider_index = -1;
		req->endpoint = SB_EP_OTHER;
		*con_cls = req;
		return MHD_YES;
	}

	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (req->body_too_large || req->body_len + n > SB_BODY_MAX) {
			req->body_too_large = true;
			return MHD_YES;
		}
		char *body = realloc(req->body, req->body_len + n + 1);
		if (body == NULL)
			return MHD_NO;
		memcpy(body + req->body_len, upload_data, n);
		req->body = body;
		req->body_len += n;
		req->body[req->body_len] = '\0';
		return MHD_YES;
	}

	switch (req->phase) {
	case SB_PHASE_NEW:
		return handle_new(req);
	case SB_PHASE_WAITING:
		req->phase = SB_PHASE_READY;
		return handle_ready(req);
	default:
		return MHD_YES;
	}
}

static void log_request(const sb_request *req, enum MHD_RequestTerminationCode toe)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	const char *provider = req->provider != NULL ? req->provider->id : "-";
	/* Only the path is logged: queries and bodies carry codes, tokens and secrets. */
	fprintf(stderr, "%s dcsandbox %s %s %s %d %lldms%s\n", when, provider, req->method, req->url,
		req->status, (long long)(sb_monotonic_ms() - req->start_ms),
		toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	sb_server *srv = cls;
	sb_request *req = *con_cls;
	if (req == NULL)
		return;

	count_request(req);
	if (srv->opts.log_requests)
		log_request(req, toe);
	json_decref(req->body_params);
	free(req->body);
	free(req->stream_body);
	free(req);
	*con_cls = NULL;
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fprintf(stderr, "dcsandbox: libmicrohttpd: ");
	vfprintf(stderr, fmt, ap);
}

void sb_overlap_enter(sb_zone *z)
{
	z->in_flight++;
	if (z->in_flight > z->max_in_flight)
		z->max_in_flight = z->in_flight;
}

void sb_overlap_leave(sb_zone *z)
{
	if (z->in_flight > 0)
		z->in_flight--;
}

static bool fill_address(const char *listen, int port, struct sockaddr_storage *ss, bool *ipv6)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, listen, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*ipv6 = false;
		return true;
	}
	if (inet_pton(AF_INET6, listen, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*ipv6 = true;
		return true;
	}
	return false;
}

sb_result sb_server_start(sb_config *config, sb_tls *tls, const sb_server_opts *opts,
	sb_server **out, sb_error *err)
{
	*out = NULL;
	sb_result rc = SB_OK;
	sb_server *srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		sb_config_free(config);
		sb_tls_clear(tls);
		return sb_error_set(err, SB_ERR_NOMEM, "out of memory");
	}
	srv->config = config;
	srv->tls = *tls;
	memset(tls, 0, sizeof(*tls));
	srv->opts = *opts;
	pthread_mutex_init(&srv->lock, NULL);
	srv->tokens = sb_tokens_new();
	srv->stats = sb_stats_new(config->provider_count);
	srv->timer = sb_timer_new();
	if (srv->tokens == NULL || srv->stats == NULL || srv->timer == NULL) {
		rc = sb_error_set(err, SB_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < config->provider_count; i++)
		sb_rng_seed(&config->providers[i].rng, opts->seed * 1000003u + i);

	struct sockaddr_storage ss;
	bool ipv6 = false;
	if (!fill_address(opts->listen, opts->port, &ss, &ipv6)) {
		rc = sb_error_set(err, SB_ERR_LISTEN, "invalid listen address \"%s\": give an IPv4 or IPv6 literal",
			opts->listen);
		goto out;
	}

	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (ipv6)
		flags |= MHD_USE_IPv6;
	struct MHD_OptionItem thread_opt[] = {
		{MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)opts->threads, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv,
		MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_HTTPS_MEM_CERT, srv->tls.cert_pem,
		MHD_OPTION_HTTPS_MEM_KEY, srv->tls.key_pem,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
		MHD_OPTION_ARRAY, opts->threads > 1 ? thread_opt : &thread_opt[1],
		MHD_OPTION_END);
	if (srv->daemon == NULL) {
		rc = sb_error_set(err, SB_ERR_LISTEN, "cannot listen on %s port %d (address in use or not local?)",
			opts->listen, opts->port);
		goto out;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info != NULL ? info->port : opts->port;

	*out = srv;
	srv = NULL;
out:
	sb_server_stop(srv);
	return rc;
}

void sb_server_stop(sb_server *server)
{
	if (server == NULL)
		return;
	sb_timer_flush(server->timer);
	if (server->daemon != NULL)
		MHD_stop_daemon(server->daemon);
	sb_timer_free(server->timer);
	sb_tokens_free(server->tokens);
	sb_stats_free(server->stats);
	sb_config_free(server->config);
	sb_tls_clear(&server->tls);
	pthread_mutex_destroy(&server->lock);
	free(server);
}
