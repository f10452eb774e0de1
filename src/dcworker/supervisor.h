/*
 * The supervisor process: forks the worker processes, restarts one that
 * exits unexpectedly with a capped exponential backoff, and passes signals
 * on. It runs no event loop and touches neither Redis nor PostgreSQL, so a
 * fork never copies a live connection.
 *
 * Signals: SIGTERM and SIGINT are forwarded to every worker, which drains;
 * workers still running grace_period_s + SUPERVISOR_KILL_MARGIN_S later get
 * SIGKILL. SIGHUP validates the config file and, when it is valid, is
 * forwarded so each worker reloads its safe settings.
 */
#ifndef DCWORKER_SUPERVISOR_H
#define DCWORKER_SUPERVISOR_H

#include "config.h"
#include "log.h"

/* First restart delay after a worker exits unexpectedly. */
#define SUPERVISOR_RESTART_MIN_MS 100
/* Restart delay cap. */
#define SUPERVISOR_RESTART_MAX_MS 30000
/* A worker that ran at least this long restarts after the minimum delay again. */
#define SUPERVISOR_STABLE_S 30
/* Time after the grace period before workers that still run are killed. */
#define SUPERVISOR_KILL_MARGIN_S 5
#define SUPERVISOR_PROCESSES_MAX 1024

/*
 * Runs PROCESSES workers (1 to SUPERVISOR_PROCESSES_MAX) of CONFIG_PATH
 * until SIGTERM or SIGINT and every worker has exited. CFG is the config
 * already loaded by the caller (its grace period bounds the shutdown).
 * Returns the exit status: 0 after a clean stop, 1 when a worker had to be
 * killed or the supervisor could not start.
 */
int supervisor_run(const char *config_path, const config *cfg, log_ctx *log, long processes);

#endif
