/*
 * A programmable HTTPS server for tests, built on libmicrohttpd with one
 * thread per connection: a handler that delays or trickles its response only
 * holds up its own connection.
 */
#include "support/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ts_https {
	struct MHD_Daemon *daemon;
	ts_handler handler;
	void *arg;
	int port;
	char *cert_pem;
	char *key_pem;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t wake;  /* broadcast when stopping turns true */
	bool stopping;
	ts_request **requests;
	size_t count;
	size_t cap;
};

/* One request while it arrives; created by the URI callback. */
typedef struct pending {
	char *uri; /* raw request target, before libmicrohttpd decodes it */
	bool headers_seen;
	char *body;
	size_t body_len;
	size_t body_cap;
	bool body_truncated;
} pending;

/* A body sent one byte at a time. */
typedef struct slow_body {
	ts_https *server;
	char *data;
	size_t len;
	long interval_ms;
} slow_body;

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/*
 * Wait up to MS milliseconds or until the server stops. Returns false when
 * the server is stopping.
 */
static bool wait_unless_stopping(ts_https *s, long ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&s->lock);
	int rc = 0;
	while (!s->stopping && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&s->wake, &s->lock, &deadline);
	bool running = !s->stopping;
	pthread_mutex_unlock(&s->lock);
	return running;
}

void ts_request_free(ts_request *r)
{
	if (r == NULL)
		return;
	free(r->method);
	free(r->path);
	free(r->query);
	free(r->body);
	free(r->authorization);
	free(r->content_type);
	free(r->host);
	free(r);
}

static ts_request *copy_request(const ts_request *src)
{
	ts_request *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;

	r->method = dup_or_null(src->method);
	r->path = dup_or_null(src->path);
	r->query = dup_or_null(src->query);
	r->body = malloc(src->body_len + 1);
	r->body_len = src->body_len;
	r->body_truncated = src->body_truncated;
	r->authorization = dup_or_null(src->authorization);
	r->content_type = dup_or_null(src->content_type);
	r->host = dup_or_null(src->host);
	if (r->method == NULL || r->path == NULL || r->body == NULL) {
		ts_request_free(r);
		return NULL;
	}
	memcpy(r->body, src->body, src->body_len);
	r->body[src->body_len] = '\0';
	return r;
}

/* Store a copy of REQ in the server's list. */
static void record_request(ts_https *s, const ts_request *req)
{
	ts_request *copy = copy_request(req);
	if (copy == NULL) {
		fprintf(stderr, "support: https: out of memory recording a request\n");
		return;
	}

	pthread_mutex_lock(&s->lock);
	if (s->count == s->cap) {
		size_t cap = s->cap == 0 ? 16 : s->cap * 2;
		ts_request **grown = realloc(s->requests, cap * sizeof *grown);
		if (grown == NULL) {
			pthread_mutex_unlock(&s->lock);
			ts_request_free(copy);
			fprintf(stderr, "support: https: out of memory recording a request\n");
			return;
		}
		s->requests = grown;
		s->cap = cap;
	}
	s->requests[s->count++] = copy;
	pthread_mutex_unlock(&s->lock);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	(void)conn;
	pending *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->uri = strdup(uri);
	p->body = malloc(1);
	if (p->uri == NULL || p->body == NULL) {
		free(p->uri);
		free(p->body);
		free(p);
		return NULL;
	}
	p->body[0] = '\0';
	return p;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode code)
{
	(void)cls;
	(void)conn;
	(void)code;
	pending *p = *con_cls;
	if (p == NULL)
		return;
	free(p->uri);
	free(p->body);
	free(p);
	*con_cls = NULL;
}

/* Keep up to TS_HTTPS_BODY_MAX bytes of the body; drop the rest. */
static bool append_body(pending *p, const char *data, size_t len)
{
	size_t room = TS_HTTPS_BODY_MAX - p->body_len;
	if (len > room) {
		p->body_truncated = true;
		len = room;
	}
	if (len == 0)
		return true;

	if (p->body_len + len + 1 > p->body_cap) {
		size_t cap = p->body_cap < 4096 ? 4096 : p->body_cap;
		while (cap < p->body_len + len + 1)
			cap *= 2;
		char *grown = realloc(p->body, cap);
		if (grown == NULL)
			return false;
		p->body = grown;
		p->body_cap = cap;
	}
	memcpy(p->body + p->body_len, data, len);
	p->body_len += len;
	p->body[p->body_len] = '\0';
	return true;
}

static ssize_t read_slow_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	slow_body *sb = cls;
	if (pos >= sb->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (max == 0)
		return 0;
	if (!wait_unless_stopping(sb->server, sb->interval_ms))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	buf[0] = sb->data[pos];
	return 1;
}

static void free_slow_body(void *cls)
{
	slow_body *sb = cls;
	free(sb->data);
	free(sb);
}

static struct MHD_Response *make_body(ts_https *s, const ts_response *out)
{
	const char *body = out->body != NULL ? out->body : "";
	size_t len = out->body_len != 0 ? out->body_len : strlen(body);

	if (out->slow_body_ms <= 0 || len == 0)
		return MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

	slow_body *sb = calloc(1, sizeof *sb);
	if (sb == NULL)
		return NULL;
	sb->server = s;
	sb->len = len;
	sb->interval_ms = out->slow_body_ms;
	sb->data = malloc(len);
	if (sb->data == NULL) {
		free(sb);
		return NULL;
	}
	memcpy(sb->data, body, len);
	struct MHD_Response *resp = MHD_create_response_from_callback(len, 1, read_slow_body, sb, free_slow_body);
	if (resp == NULL)
		free_slow_body(sb);
	return resp;
}

/* Build the libmicrohttpd response from the handler's ts_response. */
static struct MHD_Response *make_response(ts_https *s, const ts_response *out)
{
	struct MHD_Response *resp = make_body(s, out);
	if (resp == NULL)
		return NULL;

	const char *type = out->content_type != NULL ? out->content_type : "application/json";
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	for (size_t i = 0; i < sizeof out->headers / sizeof out->headers[0] && out->headers[i] != NULL; i++) {
		const char *line = out->headers[i];
		const char *colon = strchr(line, ':');
		if (colon == NULL || colon == line) {
			fprintf(stderr, "support: https: header line without a name: %s\n", line);
			continue;
		}
		char name[256];
		size_t name_len = (size_t)(colon - line);
		if (name_len >= sizeof name)
			continue;
		memcpy(name, line, name_len);
		name[name_len] = '\0';
		const char *value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		MHD_add_response_header(resp, name, value);
	}
	return resp;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* Split the raw target into path and query, record the request and respond. */
static enum MHD_Result answer(ts_https *s, struct MHD_Connection *conn, const char *method, pending *p)
{
	char *query = strchr(p->uri, '?');
	if (query != NULL)
		*query++ = '\0';

	ts_request req = {
		.method = (char *)method,
		.path = p->uri,
		.query = query,
		.body = p->body,
		.body_len = p->body_len,
		.body_truncated = p->body_truncated,
		.authorization = (char *)header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
		.content_type = (char *)header(conn, MHD_HTTP_HEADER_CONTENT_TYPE),
		.host = (char *)header(conn, MHD_HTTP_HEADER_HOST),
	};
	record_request(s, &req);

	ts_response out = {0};
	if (s->handler != NULL)
		s->handler(s->arg, &req, &out);
	else
		out.body = "{}";

	if (out.delay_ms > 0 && !wait_unless_stopping(s, out.delay_ms))
		return MHD_NO;
	if (out.drop_connection)
		return MHD_NO;

	struct MHD_Response *resp = make_response(s, &out);
	if (resp == NULL)
		return MHD_NO;
	enum MHD_Result rc = MHD_queue_response(conn, out.status != 0 ? (unsigned)out.status : MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)url;
	(void)version;
	ts_https *s = cls;
	pending *p = *con_cls;
	if (p == NULL)
		return MHD_NO;

	/* The first call carries only the headers. */
	if (!p->headers_seen) {
		p->headers_seen = true;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		bool ok = append_body(p, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return ok ? MHD_YES : MHD_NO;
	}
	return answer(s, conn, method, p);
}

/* Fill SA for ADDR and port 0; returns the address family or -1. */
static int parse_bind_addr(const char *addr, struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof *sa);
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;

	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return AF_INET;
	}
	if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		return AF_INET6;
	}
	return -1;
}

ts_https *ts_https_start(const ts_tls *tls, const char *bind_addr, ts_handler handler, void *arg)
{
	if (tls == NULL) {
		fprintf(stderr, "support: https: no certificate given\n");
		return NULL;
	}
	const char *addr = bind_addr != NULL ? bind_addr : "127.0.0.1";
	struct sockaddr_storage sa;
	int family = parse_bind_addr(addr, &sa);
	if (family < 0) {
		fprintf(stderr, "support: https: bind address %s is not an IP literal\n", addr);
		return NULL;
	}

	/* libmicrohttpd sends with MSG_NOSIGNAL, but a client library may not. */
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);

	ts_https *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	s->handler = handler;
	s->arg = arg;
	s->cert_pem = strdup(tls->cert_pem);
	s->key_pem = strdup(tls->key_pem);
	if (s->cert_pem == NULL || s->key_pem == NULL) {
		ts_https_stop(s);
		return NULL;
	}

	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_TLS;
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_HTTPS_MEM_KEY, s->key_pem,
		MHD_OPTION_HTTPS_MEM_CERT, s->cert_pem,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_END);
	if (s->daemon == NULL) {
		fprintf(stderr, "support: https: libmicrohttpd failed to start on %s\n", addr);
		ts_https_stop(s);
		return NULL;
	}

	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info != NULL ? info->port : 0;
	if (s->port == 0) {
		fprintf(stderr, "support: https: cannot read the bound port\n");
		ts_https_stop(s);
		return NULL;
	}
	return s;
}

int ts_https_port(const ts_https *s)
{
	return s->port;
}

size_t ts_https_request_count(const ts_https *s)
{
	ts_https *m = (ts_https *)s;
	pthread_mutex_lock(&m->lock);
	size_t n = m->count;
	pthread_mutex_unlock(&m->lock);
	return n;
}

ts_request *ts_https_request_copy(const ts_https *s, size_t index)
{
	ts_https *m = (ts_https *)s;
	ts_request *copy = NULL;

	pthread_mutex_lock(&m->lock);
	if (index < m->count)
		copy = copy_request(m->requests[index]);
	pthread_mutex_unlock(&m->lock);
	return copy;
}

void ts_https_stop(ts_https *s)
{
	if (s == NULL)
		return;

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	if (s->daemon != NULL)
		MHD_stop_daemon(s->daemon);

	for (size_t i = 0; i < s->count; i++)
		ts_request_free(s->requests[i]);
	free(s->requests);
	free(s->cert_pem);
	free(s->key_pem);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
