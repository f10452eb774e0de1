/*
 * Enqueueing jobs and waiting for their results, shared by `dcctl enqueue`
 * and `dcctl enqueue --bulk`.
 *
 * A job is added with one atomic Lua step: when {dc}:result:<id> or the
 * marker {dc}:enqueued:<id> exists the job is skipped, else it is appended
 * to {dc}:queue:<name> (XADD, field "job") and the marker is set with a
 * TTL. So running the same enqueue twice, or re-running an interrupted bulk
 * file, never adds a job id twice while its marker or result lives.
 */
#ifndef DCCTL_ENQUEUE_H
#define DCCTL_ENQUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "common_error.h"
#include "dcctl.h"

/* Shortest lifetime of an enqueue marker, in seconds (7 days). */
#define ENQUEUE_MARKER_TTL_MIN_S (7L * 86400)

/* What the enqueue step did with one job. */
typedef enum enqueue_outcome {
	ENQUEUE_ADDED = 0,       /* appended to the stream */
	ENQUEUE_HAS_RESULT,      /* skipped: {dc}:result:<id> exists */
	ENQUEUE_ALREADY_QUEUED,  /* skipped: dcctl enqueued this id before */
	ENQUEUE_KNOWN,           /* skipped: dc_jobs has a row with this id */
} enqueue_outcome;

/* Returns "enqueued", "has_result", "already_queued" or "known". */
const char *enqueue_outcome_name(enqueue_outcome outcome);

/*
 * Validates JOB (a JSON object) with job_spec and the config's provider
 * table. When it has no id, sets "id" to a value derived from the content:
 * PREFIX followed by 32 hex digits of the SHA-256 of the canonical JSON,
 * so the same row always gets the same id. Returns false and fills err.
 */
bool enqueue_prepare(const dcctl *ctx, json_t *job, const char *prefix, common_error *err);

/* Appends the enqueue step for one job to RC's pipeline (redisAppendCommandArgv). */
bool enqueue_append(redisContext *rc, const char *queue, const char *id, const char *job_json,
                    long marker_ttl_s);

/*
 * Reads the reply of one appended enqueue step. Fills *outcome and, for
 * ENQUEUE_ADDED, entry_id. Returns DCCTL_EXIT_OK, or DCCTL_EXIT_UNREACHABLE
 * / _FAILED with message filled.
 */
dcctl_exit enqueue_read(redisContext *rc, enqueue_outcome *outcome, char *entry_id,
                        size_t entry_id_size, char *message, size_t message_size);

/* TTL for markers: the configured result TTL, at least ENQUEUE_MARKER_TTL_MIN_S. */
long enqueue_marker_ttl(const dcctl *ctx);

/* True for result statuses that end a job (succeeded, conflict, ..., dead). */
bool result_is_terminal(const char *status);

/*
 * Reads {dc}:result:<id> and returns its parsed result JSON, or NULL when
 * absent or not a terminal result.
 */
json_t *result_fetch(redisContext *rc, const char *id);

/* A subscription to the results channel. */
typedef struct waiter waiter;

/* Connects a second Redis connection and subscribes to dc:results. */
dcctl_exit waiter_new(dcctl *ctx, waiter **out);

/*
 * Returns the next published terminal result (new reference), or NULL when
 * TIMEOUT_S passed (*code DCCTL_EXIT_OK) or the connection failed (*code
 * DCCTL_EXIT_UNREACHABLE).
 */
json_t *waiter_next(waiter *w, double timeout_s, dcctl_exit *code);

void waiter_free(waiter *w);

/* Prints one result for people (key: value lines). */
void result_print(const json_t *result);


/* Options of `dcctl enqueue --bulk`. */
typedef struct bulk_options {
	const char *file;
	const char *queue;          /* default "bulk" */
	const char *format;         /* "csv", "jsonl" or NULL: from the extension or content */
	const char *default_type;   /* job type for rows without one, or NULL */
	double rate;                /* rows per second, 0: no pacing */
	bool strict;                /* stop at the first bad row */
	bool wait;                  /* wait for every result and print a summary */
	double timeout_s;           /* --wait limit */
	const char *failed_out;     /* file for rows that did not succeed, or NULL */
	double progress_interval_s; /* plain progress lines when stderr is not a terminal */
} bulk_options;

/* Runs a bulk enqueue; returns a dcctl exit code. */
int bulk_run(dcctl *ctx, const bulk_options *opts);

#endif
