/*
 * Rows of a bulk file as job JSON objects: CSV with a header row
 * (RFC 4180 quoting) or JSON Lines, with the line number of each row.
 */
#ifndef DCCTL_BULK_READER_H
#define DCCTL_BULK_READER_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

/* Largest row accepted, in bytes; the job itself is capped by job_spec. */
#define BULK_ROW_MAX (128 * 1024)
/* Columns accepted in a CSV header. */
#define BULK_COLUMNS_MAX 128
/* Maximum length of the reason a row was rejected. */
#define BULK_REASON_MAX 512

typedef struct bulk_reader bulk_reader;

/* What bulk_reader_next produced. */
typedef enum bulk_read {
	BULK_READ_ROW,  /* *job is a new object */
	BULK_READ_BAD,  /* the row is invalid; reason is filled, *job may hold what was parsed */
	BULK_READ_END,  /* no more rows */
	BULK_READ_FATAL /* the file cannot be read further (I/O error, bad header); reason filled */
} bulk_read;

/*
 * Opens PATH. FORMAT is "csv", "jsonl" or NULL (from the extension .csv,
 * .jsonl, .ndjson, else from the first byte: '{' is JSON Lines).
 * DEFAULT_TYPE fills "type" in rows without one (may be NULL). Returns NULL
 * with reason filled.
 */
bulk_reader *bulk_reader_open(const char *path, const char *format, const char *default_type,
                              char *reason, size_t reason_size);

/* Reads the next row; *line is the line number where it starts. */
bulk_read bulk_reader_next(bulk_reader *r, json_t **job, long *line, char *reason,
                           size_t reason_size);

/* Fraction of the file consumed, 0 to 1 (for the ETA). */
double bulk_reader_progress(const bulk_reader *r);

void bulk_reader_free(bulk_reader *r);

#endif
