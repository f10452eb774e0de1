/*
 * Metrics of a worker process: counter families with up to three labels, a
 * latency histogram, the text exposition, and the libmicrohttpd endpoint.
 *
 * The endpoint runs in the worker's own loop: libmicrohttpd's epoll
 * descriptor is watched by an ev_io, and a timer wakes it for its own
 * timeouts. Counters are therefore plain integers changed only on the loop.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#define METRICS_LABELS_MAX 3
/* Upper bounds of the provider call latency buckets, in seconds. */
static const double latency_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define METRICS_BUCKETS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))
/* Longest wait between two runs of libmicrohttpd, for its connection timeouts. */
#define METRICS_TICK_S 1.0
/* Idle connections to the endpoint are closed after this many seconds. */
#define METRICS_CONNECTION_TIMEOUT_S 10
#define METRICS_CONNECTIONS_MAX 32

static const char *const status_names[METRICS_STATUS_COUNT] = {
	[METRICS_OK] = "METRICS_OK",
	[METRICS_ERR_INVALID_ARGUMENT] = "METRICS_ERR_INVALID_ARGUMENT",
	[METRICS_ERR_LISTEN] = "METRICS_ERR_LISTEN",
	[METRICS_ERR_NOMEM] = "METRICS_ERR_NOMEM",
};

typedef struct series {
	char labels[METRICS_LABELS_MAX][METRICS_LABEL_MAX + 1];
	unsigned long long count;                  /* counter value, or histogram count */
	unsigned long long buckets[METRICS_BUCKETS]; /* histogram only, not cumulative */
	double sum;                                /* histogram only */
} series;

typedef struct family {
	const char *name;
	const char *help;
	bool histogram;
	int label_count;
	const char *label_names[METRICS_LABELS_MAX];
	series *series;
	size_t count;
	size_t capacity;
} family;

enum {
	FAMILY_JOBS,
	FAMILY_CALLS,
	FAMILY_CALL_SECONDS,
	FAMILY_REFRESHES,
	FAMILY_RECLAIMS,
	FAMILY_LEASES,
	FAMILY_COUNT
};

struct metrics {
	family families[FAMILY_COUNT];
	metrics_gauge_fn in_flight;
	metrics_ready_fn ready;
	void *probe_arg;

	struct ev_loop *loop;
	struct MHD_Daemon *daemon;
	int port;
	ev_io io;
	ev_timer tick;
};

const char *metrics_status_name(metrics_status status)
{
	if ((unsigned)status >= METRICS_STATUS_COUNT)
		return "METRICS_ERR_UNKNOWN";
	return status_names[status];
}

static metrics_status metrics_fail(metrics_error *err, metrics_status status, const char *fmt,
                                   ...) __attribute__((format(printf, 3, 4)));

static metrics_status metrics_fail(metrics_error *err, metrics_status status, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->status = status;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return status;
}

metrics *metrics_new(void)
{
	metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->families[FAMILY_JOBS] = (family){
		.name = "dcworker_jobs_total",
		.help = "Jobs that ended a run, by type and outcome (retried and rescheduled included).",
		.label_count = 2,
		.label_names = {"type", "outcome"},
	};
	m->families[FAMILY_CALLS] = (family){
		.name = "dcworker_provider_calls_total",
		.help = "Calls to DNS providers by provider, endpoint and HTTP status or error class.",
		.label_count = 3,
		.label_names = {"provider", "endpoint", "status"},
	};
	m->families[FAMILY_CALL_SECONDS] = (family){
		.name = "dcworker_provider_call_seconds",
		.help = "Duration of calls to DNS providers.",
		.histogram = true,
		.label_count = 2,
		.label_names = {"provider", "endpoint"},
	};
	m->families[FAMILY_REFRESHES] = (family){
		.name = "dcworker_token_refreshes_total",
		.help = "Access token refreshes by outcome.",
		.label_count = 1,
		.label_names = {"outcome"},
	};
	m->families[FAMILY_RECLAIMS] = (family){
		.name = "dcworker_reclaims_total",
		.help = "Entries reclaimed after the visibility timeout, by outcome.",
		.label_count = 1,
		.label_names = {"outcome"},
	};
	m->families[FAMILY_LEASES] = (family){
		.name = "dcworker_lease_renewals_total",
		.help = "Renewals of the claims of long jobs, by outcome.",
		.label_count = 1,
		.label_names = {"outcome"},
	};
	return m;
}

static void stop_serving(metrics *m)
{
	if (m->daemon == NULL)
		return;
	ev_io_stop(m->loop, &m->io);
	ev_timer_stop(m->loop, &m->tick);
	MHD_stop_daemon(m->daemon);
	m->daemon = NULL;
	m->port = 0;
}

void metrics_free(metrics *m)
{
	if (m == NULL)
		return;
	stop_serving(m);
	for (int i = 0; i < FAMILY_COUNT; i++)
		free(m->families[i].series);
	free(m);
}

/* Series */

static bool labels_match(const series *s, int count, const char *const *values)
{
	for (int i = 0; i < count; i++) {
		if (strncmp(s->labels[i], values[i], METRICS_LABEL_MAX) != 0)
			return false;
	}
	return true;
}

/*
 * Returns the series of F with VALUES, creating it. Past METRICS_SERIES_MAX
 * series, or when out of memory, the last series absorbs the rest; NULL only
 * when F has none at all.
 */
static series *find_series(family *f, const char *const *values)
{
	for (size_t i = 0; i < f->count; i++) {
		if (labels_match(&f->series[i], f->label_count, values))
			return &f->series[i];
	}
	if (f->count == f->capacity && f->count < METRICS_SERIES_MAX) {
		size_t capacity = f->capacity == 0 ? 16 : f->capacity * 2;
		series *grown = realloc(f->series, capacity * sizeof(*grown));

		if (grown != NULL) {
			f->series = grown;
			f->capacity = capacity;
		}
	}
	if (f->count == f->capacity || f->count == METRICS_SERIES_MAX)
		return f->count > 0 ? &f->series[f->count - 1] : NULL;

	series *s = &f->series[f->count++];

	memset(s, 0, sizeof(*s));
	for (int i = 0; i < f->label_count; i++)
		snprintf(s->labels[i], sizeof(s->labels[i]), "%s", values[i] != NULL ? values[i] : "");
	return s;
}

static void count(metrics *m, int which, const char *a, const char *b, const char *c)
{
	const char *values[METRICS_LABELS_MAX] = {a != NULL ? a : "", b != NULL ? b : "",
	                                          c != NULL ? c : ""};
	series *s;

	if (m == NULL)
		return;
	s = find_series(&m->families[which], values);
	if (s != NULL)
		s->count++;
}

void metrics_job(metrics *m, const char *type, const char *outcome)
{
	count(m, FAMILY_JOBS, type, outcome, NULL);
}

void metrics_provider_call(metrics *m, const char *provider, const char *endpoint,
                           const char *status, double seconds)
{
	const char *values[METRICS_LABELS_MAX] = {provider != NULL ? provider : "",
	                                          endpoint != NULL ? endpoint : "", ""};
	series *s;

	if (m == NULL)
		return;
	count(m, FAMILY_CALLS, provider, endpoint, status);
	s = find_series(&m->families[FAMILY_CALL_SECONDS], values);
	if (s == NULL)
		return;
	if (seconds < 0)
		seconds = 0;
	s->count++;
	s->sum += seconds;
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		if (seconds <= latency_bounds[i]) {
			s->buckets[i]++;
			break;
		}
	}
}

void metrics_refresh(metrics *m, const char *outcome)
{
	count(m, FAMILY_REFRESHES, outcome, NULL, NULL);
}

void metrics_reclaimed(metrics *m, size_t n, size_t dead)
{
	for (size_t i = 0; i < n; i++)
		count(m, FAMILY_RECLAIMS, i < dead ? "dead_lettered" : "reclaimed", NULL, NULL);
}

void metrics_lease(metrics *m, const char *outcome)
{
	count(m, FAMILY_LEASES, outcome, NULL, NULL);
}

void metrics_set_probes(metrics *m, metrics_gauge_fn in_flight, metrics_ready_fn ready, void *arg)
{
	if (m == NULL)
		return;
	m->in_flight = in_flight;
	m->ready = ready;
	m->probe_arg = arg;
}

/* Exposition */

/* Writes VALUE as a label value: backslash, double quote and newline escaped. */
static void put_label_value(FILE *out, const char *value)
{
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
}

/* Writes {a="x",b="y"[,le="..."]}. */
static void put_labels(FILE *out, const family *f, const series *s, const char *le)
{
	if (f->label_count == 0 && le == NULL)
		return;
	fputc('{', out);
	for (int i = 0; i < f->label_count; i++) {
		fprintf(out, "%s%s=\"", i > 0 ? "," : "", f->label_names[i]);
		put_label_value(out, s->labels[i]);
		fputc('"', out);
	}
	if (le != NULL)
		fprintf(out, "%sle=\"%s\"", f->label_count > 0 ? "," : "", le);
	fputc('}', out);
}

static void put_family(FILE *out, const family *f)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
	        f->histogram ? "histogram" : "counter");
	for (size_t i = 0; i < f->count; i++) {
		const series *s = &f->series[i];

		if (!f->histogram) {
			fputs(f->name, out);
			put_labels(out, f, s, NULL);
			fprintf(out, " %llu\n", s->count);
			continue;
		}
		unsigned long long cumulative = 0;
		char le[32];

		for (size_t b = 0; b < METRICS_BUCKETS; b++) {
			cumulative += s->buckets[b];
			snprintf(le, sizeof(le), "%g", latency_bounds[b]);
			fprintf(out, "%s_bucket", f->name);
			put_labels(out, f, s, le);
			fprintf(out, " %llu\n", cumulative);
		}
		fprintf(out, "%s_bucket", f->name);
		put_labels(out, f, s, "+Inf");
		fprintf(out, " %llu\n%s_sum", s->count, f->name);
		put_labels(out, f, s, NULL);
		fprintf(out, " %.6f\n%s_count", s->sum, f->name);
		put_labels(out, f, s, NULL);
		fprintf(out, " %llu\n", s->count);
	}
}

metrics_status metrics_render(metrics *m, char **out, size_t *out_len)
{
	FILE *f = open_memstream(out, out_len);

	if (f == NULL)
		return METRICS_ERR_NOMEM;
	for (int i = 0; i < FAMILY_COUNT; i++)
		put_family(f, &m->families[i]);
	fprintf(f, "# HELP dcworker_jobs_in_flight Jobs this process holds now.\n"
	           "# TYPE dcworker_jobs_in_flight gauge\ndcworker_jobs_in_flight %.0f\n",
	        m->in_flight != NULL ? m->in_flight(m->probe_arg) : 0.0);
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return METRICS_ERR_NOMEM;
	}
	return METRICS_OK;
}

/* HTTP endpoint */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int status,
                               const char *content_type, char *body, size_t len)
{
	struct MHD_Response *response =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (response == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	ret = MHD_queue_response(conn, status, response);
	MHD_destroy_response(response);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned int status,
                                    const char *text)
{
	char *body = strdup(text);

	if (body == NULL)
		return MHD_NO;
	return respond(conn, status, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	metrics *m = cls;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");

	if (strcmp(url, "/metrics") == 0) {
		char *body = NULL;
		size_t len = 0;

		if (metrics_render(m, &body, &len) != METRICS_OK)
			return MHD_NO;
		return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
	}
	if (strcmp(url, "/healthz") == 0)
		return respond_text(conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0) {
		char detail[200] = "";
		char text[256];

		if (m->ready == NULL || m->ready(m->probe_arg, detail, sizeof(detail)))
			return respond_text(conn, MHD_HTTP_OK, "ready\n");
		snprintf(text, sizeof(text), "not ready: %s\n", detail);
		return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text);
	}
	return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

/* Runs libmicrohttpd and sets the timer to its next deadline. */
static void run_daemon(metrics *m)
{
	MHD_UNSIGNED_LONG_LONG timeout_ms = 0;
	double wait = METRICS_TICK_S;

	MHD_run(m->daemon);
	if (MHD_get_timeout(m->daemon, &timeout_ms) == MHD_YES && timeout_ms / 1000.0 < wait)
		wait = (double)timeout_ms / 1000.0;
	ev_timer_stop(m->loop, &m->tick);
	ev_timer_set(&m->tick, wait, 0.0);
	ev_timer_start(m->loop, &m->tick);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	run_daemon(w->data);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	run_daemon(w->data);
}

/* Parses "IPv4:PORT" or "[IPv6]:PORT" into ADDR, adding OFFSET to the port. */
static metrics_status parse_listen(const char *listen, int offset, struct sockaddr_storage *addr,
                                   bool *ipv6, metrics_error *err)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	const char *start = listen;
	size_t host_len;
	char *end;
	long port;

	if (colon == NULL)
		goto bad;
	if (*start == '[') {
		start++;
		if (colon == listen || colon[-1] != ']')
			goto bad;
		host_len = (size_t)(colon - 1 - start);
	} else {
		host_len = (size_t)(colon - start);
	}
	if (host_len == 0 || host_len >= sizeof(host))
		goto bad;
	memcpy(host, start, host_len);
	host[host_len] = '\0';

	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
		goto bad;
	if (port != 0 && (offset < 0 || port + offset > 65535))
		return metrics_fail(err, METRICS_ERR_INVALID_ARGUMENT,
		                    "metrics port %ld + worker offset %d is over 65535", port, offset);
	if (port != 0)
		port += offset;

	memset(addr, 0, sizeof(*addr));
	struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;

	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*ipv6 = false;
		return METRICS_OK;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*ipv6 = true;
		return METRICS_OK;
	}
bad:
	return metrics_fail(err, METRICS_ERR_INVALID_ARGUMENT,
	                    "metrics listen address must be IP:PORT or [IPv6]:PORT with an IP literal");
}

metrics_status metrics_serve(metrics *m, struct ev_loop *loop, const char *listen,
                             int port_offset, metrics_error *err)
{
	struct sockaddr_storage addr;
	bool ipv6 = false;
	metrics_status status;
	const union MHD_DaemonInfo *info;

	if (m == NULL || loop == NULL || listen == NULL)
		return metrics_fail(err, METRICS_ERR_INVALID_ARGUMENT, "metrics, loop or address missing");
	status = parse_listen(listen, port_offset, &addr, &ipv6, err);
	if (status != METRICS_OK)
		return status;

	stop_serving(m);
	m->loop = loop;
	m->daemon = MHD_start_daemon(MHD_USE_EPOLL | (ipv6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, handle,
	                             m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	                             MHD_OPTION_CONNECTION_TIMEOUT,
	                             (unsigned int)METRICS_CONNECTION_TIMEOUT_S,
	                             MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_CONNECTIONS_MAX,
	                             MHD_OPTION_END);
	if (m->daemon == NULL)
		return metrics_fail(err, METRICS_ERR_LISTEN,
		                    "cannot serve metrics on %s with offset %d: the port is taken or the "
		                    "address is not local",
		                    listen, port_offset);

	info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		stop_serving(m);
		return metrics_fail(err, METRICS_ERR_LISTEN, "libmicrohttpd gave no epoll descriptor");
	}
	ev_io_init(&m->io, io_cb, info->epoll_fd, EV_READ);
	m->io.data = m;
	ev_io_start(loop, &m->io);
	ev_init(&m->tick, tick_cb);
	m->tick.data = m;
	info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info != NULL ? info->port : 0;
	run_daemon(m);
	return METRICS_OK;
}

int metrics_port(const metrics *m)
{
	return m != NULL ? m->port : 0;
}
