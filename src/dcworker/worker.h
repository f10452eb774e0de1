/*
 * One worker process: a libev loop with the protocol client (curl multi and
 * c-ares), the Redis connection and the PostgreSQL pool on it, and many jobs
 * in flight. Nothing in it blocks.
 *
 * The loop fetches new entries while fewer than [worker] in_flight jobs run,
 * reclaims entries other consumers left pending past the visibility timeout,
 * promotes due scheduled jobs to their queues, enqueues keep-alive refreshes
 * for authorizations idle for [worker] keepalive_days, and re-enqueues jobs
 * whose PostgreSQL row is overdue but which Redis no longer holds (the
 * reconciler, every [worker] reconcile_interval_s).
 *
 * Signals: SIGTERM and SIGINT stop fetching and let the jobs in flight finish
 * within [worker] grace_period_s; jobs still running then are abandoned
 * unacknowledged, so another worker reclaims them. SIGHUP re-reads the config
 * file and applies the settings that are safe to change in a running
 * process: the log level and the in-flight limit.
 */
#ifndef DCWORKER_WORKER_H
#define DCWORKER_WORKER_H

/* Interval of the promoter timer, which moves due scheduled jobs to their queues. */
#define WORKER_PROMOTE_INTERVAL_MS 250
/* Wait before fetching again after a fetch that returned nothing. */
#define WORKER_IDLE_POLL_MS 50
/* Wait before fetching again after a failed fetch. */
#define WORKER_FETCH_ERROR_DELAY_MS 500
/*
 * The keep-alive (keepalive.h) runs first this long after start, then at
 * this interval. It marks each authorization once per day, so every worker
 * may run it and each idle authorization still gets one refresh job.
 */
#define WORKER_KEEPALIVE_FIRST_MS 2000
#define WORKER_KEEPALIVE_INTERVAL_S 600.0
/* Most scheduled jobs moved per promoter run. */
#define WORKER_PROMOTE_BATCH 100

/*
 * Runs worker number INDEX with the config file CONFIG_PATH until a
 * SIGTERM or SIGINT drain ends. Returns the process exit status: 0 after a
 * drain, 1 when start-up failed (config, token keys, client, connections).
 */
int worker_run(const char *config_path, int index);

#endif
