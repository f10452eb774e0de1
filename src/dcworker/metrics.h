/*
 * The metrics of one worker process, and the HTTP endpoint that serves them
 * (libmicrohttpd driven by the worker's libev loop, so no thread and no
 * lock): GET /metrics in the Prometheus text format, GET /healthz (the
 * process runs its loop) and GET /readyz (Redis and PostgreSQL reachable).
 *
 * Every worker process serves its own endpoint: [metrics] listen is the
 * address of worker 0 and worker N listens on its port + N, so a scraper
 * lists one target per worker and sums them. Label values are job types,
 * outcomes, configured DNS provider names, endpoint names and HTTP statuses:
 * never a job id, a domain, a token or any other value a job carries.
 */
#ifndef DCWORKER_METRICS_H
#define DCWORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

/* Result of the metrics calls that can fail. Values are stable; OK is 0. */
typedef enum metrics_status {
	METRICS_OK = 0,
	METRICS_ERR_INVALID_ARGUMENT, /* listen address is not IP:PORT, or the port overflows */
	METRICS_ERR_LISTEN,           /* the endpoint could not bind or start */
	METRICS_ERR_NOMEM,
	METRICS_STATUS_COUNT
} metrics_status;

/* Return the stable name of a status ("METRICS_ERR_LISTEN"); never NULL. */
const char *metrics_status_name(metrics_status status);

#define METRICS_MESSAGE_MAX 256
/* Most label sets of one counter family; further ones are counted under "other". */
#define METRICS_SERIES_MAX 512
/* Longest label value kept; longer ones are cut. */
#define METRICS_LABEL_MAX 48

/* Error detail, owned by the caller. */
typedef struct metrics_error {
	metrics_status status;
	char message[METRICS_MESSAGE_MAX];
} metrics_error;

typedef struct metrics metrics;

/*
 * Readiness probe: true when the process can run jobs. On false it writes
 * the reason (no secret) into DETAIL.
 */
typedef bool (*metrics_ready_fn)(void *arg, char *detail, size_t size);

/* Gauge read when /metrics is served. */
typedef double (*metrics_gauge_fn)(void *arg);

/* Create an empty set of metrics; NULL when out of memory. */
metrics *metrics_new(void);

/* Stop the endpoint and free M; accepts NULL. */
void metrics_free(metrics *m);

/* Count a job outcome: TYPE ("apply", "invalid") and OUTCOME ("succeeded", "retried", ...). */
void metrics_job(metrics *m, const char *type, const char *outcome);

/*
 * Count a call to DNS provider PROVIDER ("" when none is configured, as in
 * discovery) at ENDPOINT ("apply", "token", ...) that ended with STATUS
 * (an HTTP status or an error class) after SECONDS.
 */
void metrics_provider_call(metrics *m, const char *provider, const char *endpoint,
                           const char *status, double seconds);

/* Count a token refresh with OUTCOME ("stored", "failed", "lost_race"). */
void metrics_refresh(metrics *m, const char *outcome);

/* Count COUNT entries reclaimed, of which DEAD went to the dead letters. */
void metrics_reclaimed(metrics *m, size_t count, size_t dead);

/* Count a lease renewal with OUTCOME ("renewed", "lost", "failed"). */
void metrics_lease(metrics *m, const char *outcome);

/*
 * Set the gauge of jobs in flight and the readiness probe. ARG is passed
 * to both; any may be NULL.
 */
void metrics_set_probes(metrics *m, metrics_gauge_fn in_flight, metrics_ready_fn ready,
                        void *arg);

/*
 * Write the text exposition of M into a malloc'd string (*OUT, *OUT_LEN).
 * Returns METRICS_ERR_NOMEM when out of memory.
 */
metrics_status metrics_render(metrics *m, char **out, size_t *out_len);

/*
 * Serve M on LOOP at LISTEN ("127.0.0.1:9464" or "[::1]:9464"; the host
 * must be an IP literal) with PORT_OFFSET added to the port. Port 0 picks a
 * free port; metrics_port returns it. Fails with METRICS_ERR_LISTEN when
 * the port is taken.
 */
metrics_status metrics_serve(metrics *m, struct ev_loop *loop, const char *listen,
                             int port_offset, metrics_error *err);

/* Port the endpoint listens on, 0 when it is not serving. */
int metrics_port(const metrics *m);

#endif
