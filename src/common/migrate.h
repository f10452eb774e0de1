/*
 * Versioned schema migrations for PostgreSQL (blocking libpq; used by
 * `dcctl migrate` and at worker start-up).
 *
 * A migrations folder holds files named NNNN_name.sql (four digits, then
 * a-z 0-9 _), applied in version order, each in its own transaction and
 * recorded with its SHA-256 in dc_schema_migrations. Files must not contain
 * BEGIN or COMMIT. The runner holds a PostgreSQL advisory lock, keyed by
 * the current schema, while it works, so concurrent runners apply every
 * file once, and a second run applies nothing. An applied file whose
 * content changed is an error.
 */
#ifndef DC_COMMON_MIGRATE_H
#define DC_COMMON_MIGRATE_H

#include <libpq-fe.h>

#include "common_error.h"
#include "log.h"

/* Schema version this build reads and writes. */
#define MIGRATE_REQUIRED_VERSION 3
/* Files accepted in one migrations folder. */
#define MIGRATE_FILES_MAX 1000
/* Largest migration file, in bytes. */
#define MIGRATE_FILE_MAX (1024 * 1024)
/* First key of the advisory lock (the second is a hash of the schema name). */
#define MIGRATE_LOCK_CLASS 0x64637772

/* What a run did. */
typedef struct migrate_result {
	int from_version; /* highest version before the run, 0 for an empty database */
	int to_version;   /* highest version after it */
	int applied;      /* files applied by this run */
} migrate_result;

/*
 * Returns the migrations folder to use when none is configured: the
 * installed one if it exists, else the one in the source tree.
 */
const char *migrate_default_dir(void);

/*
 * Applies the pending migrations of dir (NULL: migrate_default_dir()) on
 * conn, which must not be inside a transaction. Logs each applied file when
 * log is not NULL. result may be NULL. On failure the failing file is rolled
 * back, the ones before it stay applied, and err names the file and the
 * PostgreSQL error.
 */
common_status migrate_run(PGconn *conn, const char *dir, log_ctx *log, migrate_result *result,
                          common_error *err);

/* Reads the highest applied version into *version (0 when none). */
common_status migrate_current_version(PGconn *conn, int *version, common_error *err);

/*
 * Returns COMMON_OK when the schema is at required_version or newer, else
 * COMMON_ERR_SCHEMA with a message naming both versions and `dcctl migrate`.
 */
common_status migrate_check(PGconn *conn, int required_version, common_error *err);

#endif /* DC_COMMON_MIGRATE_H */
