/*
 * JSON-lines logger: one object per line, written to a FILE * (stderr in the
 * daemon) with one fwrite and a flush, so lines of concurrent processes on
 * one pipe stay whole up to PIPE_BUF bytes.
 *
 * Each line has "time" (RFC 3339, UTC, milliseconds), "level" and "msg", and
 * the optional fields of log_fields. Every string field passes through the
 * same filter before jansson escapes it:
 *   1. registered secrets are replaced with "[redacted]";
 *   2. values of the query keys client_secret=, refresh_token=, access_token=
 *      and code=, and the word after "Bearer ", are replaced with "[redacted]";
 *   3. the result is cut to LOG_FIELD_MAX bytes (LOG_MSG_MAX for msg), and
 *      bytes that are not valid UTF-8 become '?'.
 * Redaction runs before truncation so that a cut cannot split a secret into
 * a part the registry no longer matches.
 *
 * Repeats are rate-limited: when lines with the same level and format string
 * pass LOG_RATE_BURST within LOG_RATE_INTERVAL_MS, the rest of that interval
 * is dropped and counted, and one "suppressed N similar lines like: <first
 * dropped line>" line follows: at the first log_write call of any kind
 * (any level, any format) once the interval has passed, when the slot is
 * taken by another format, or at log_flush_suppressed.
 *
 * A log_ctx is not thread-safe; a worker process owns one and passes it
 * around. There is no global logger.
 */
#ifndef DC_COMMON_LOG_H
#define DC_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common_error.h"

/* Severity, in increasing order. (LOG_INFO and friends belong to syslog.h.) */
typedef enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_COUNT
} log_level;

/* Maximum bytes of the formatted "msg" field after redaction. */
#define LOG_MSG_MAX 1024
/* Maximum bytes of every other string field after redaction. */
#define LOG_FIELD_MAX 256
/* Lines with the same level and format allowed per interval before suppression. */
#define LOG_RATE_BURST 20
#define LOG_RATE_INTERVAL_MS 10000
/* Registered secrets shorter than this are rejected: they would mangle ordinary text. */
#define LOG_SECRET_MIN_LEN 6

/*
 * Optional context of a line. Zero-initialize it: NULL strings, attempt 0,
 * http_status 0 and has_duration false are left out of the line.
 */
typedef struct log_fields {
	const char *job_id;
	const char *action;       /* what the process was doing: "claim", "apply", "refresh" */
	const char *type;         /* job type */
	const char *domain;
	const char *dns_provider;
	const char *error;        /* error code or message */
	int attempt;
	long http_status;
	long duration_ms;
	bool has_duration;
} log_fields;

typedef struct log_ctx log_ctx;

/* Monotonic clock in milliseconds, replaceable for tests. */
typedef int64_t (*log_clock_fn)(void *arg);

/*
 * Creates a logger writing to out (not closed by log_ctx_free) that drops
 * lines below min_level. Returns NULL when out of memory.
 */
log_ctx *log_ctx_new(FILE *out, log_level min_level);

/* Writes pending suppression counts, wipes the secret registry, frees. Accepts NULL. */
void log_ctx_free(log_ctx *log);

/* Sets the minimum level (used by SIGHUP reloads). */
void log_set_level(log_ctx *log, log_level level);

/* Returns true when a line at level would be written; check before costly formatting. */
bool log_enabled(const log_ctx *log, log_level level);

/* Replaces the monotonic clock used for rate limiting (tests). */
void log_set_clock(log_ctx *log, log_clock_fn clock, void *arg);

/*
 * Adds a secret value to redact from every later line. The logger keeps its
 * own copy and wipes it on removal or free. Returns COMMON_ERR_INVALID for
 * values shorter than LOG_SECRET_MIN_LEN, COMMON_ERR_NOMEM on allocation
 * failure. Adding a value twice keeps one copy per call; remove it as often.
 */
common_status log_add_secret(log_ctx *log, const char *secret);

/* Removes one copy of a registered secret; unknown values are ignored. */
void log_remove_secret(log_ctx *log, const char *secret);

/*
 * Writes one line if level passes the filter and the rate limit. fields may
 * be NULL. msg is formatted printf-style, then redacted and truncated.
 */
void log_write(log_ctx *log, log_level level, const log_fields *fields, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Writes the pending "suppressed N similar lines" lines now and resets their
 * counts. Call it at shutdown or from a periodic timer; log_ctx_free calls it.
 */
void log_flush_suppressed(log_ctx *log);

/*
 * Applies steps 1 and 2 of the filter (secrets and query keys) to text and
 * returns a malloc'd copy, or NULL when out of memory. Used by callers that
 * put text into results or metrics.
 */
char *log_redact(const log_ctx *log, const char *text);

/* Returns "debug", "info", "warn" or "error"; never NULL. */
const char *log_level_name(log_level level);

/* Parses a level name (case-insensitive; "warning" is accepted). */
common_status log_level_parse(const char *name, log_level *level);

#endif /* DC_COMMON_LOG_H */
