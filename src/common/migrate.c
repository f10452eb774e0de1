/* Schema migration runner; the rules are in migrate.h. */
#include "migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#define ERROR_CODE "migration_failed"
#define CHECKSUM_HEX (EVP_MAX_MD_SIZE * 2 + 1)

typedef struct migration {
	int version;
	char *name;     /* file name */
	char *path;
	char checksum[CHECKSUM_HEX];
	char *sql;
} migration;

typedef struct migration_set {
	migration items[MIGRATE_FILES_MAX];
	size_t count;
} migration_set;

const char *migrate_default_dir(void)
{
	struct stat st;
	if (stat(DC_MIGRATIONS_INSTALL_DIR, &st) == 0 && S_ISDIR(st.st_mode))
		return DC_MIGRATIONS_INSTALL_DIR;
	return DC_MIGRATIONS_SOURCE_DIR;
}

static void set_free(migration_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->count; i++) {
		free(set->items[i].name);
		free(set->items[i].path);
		free(set->items[i].sql);
	}
	free(set);
}

/* Parses NNNN_name.sql into *version; false for any other .sql name. */
static bool parse_name(const char *name, int *version)
{
	size_t len = strlen(name);
	if (len < 10 || strcmp(name + len - 4, ".sql") != 0)
		return false;
	for (int i = 0; i < 4; i++) {
		if (!isdigit((unsigned char)name[i]))
			return false;
	}
	if (name[4] != '_')
		return false;
	for (size_t i = 5; i < len - 4; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!islower(c) && !isdigit(c) && c != '_')
			return false;
	}
	*version = (name[0] - '0') * 1000 + (name[1] - '0') * 100 + (name[2] - '0') * 10 +
	           (name[3] - '0');
	return *version > 0;
}

static common_status read_file(migration *m, common_error *err)
{
	FILE *file = fopen(m->path, "re");
	if (file == NULL)
		return common_error_set(err, COMMON_ERR_IO, ERROR_CODE, "cannot open migration %s: %s",
		                        m->path, strerror(errno));
	m->sql = malloc(MIGRATE_FILE_MAX + 1);
	size_t n = m->sql != NULL ? fread(m->sql, 1, MIGRATE_FILE_MAX + 1, file) : 0;
	bool failed = ferror(file) != 0;
	fclose(file);
	if (m->sql == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading migrations");
	if (failed || n > MIGRATE_FILE_MAX)
		return common_error_set(err, COMMON_ERR_IO, ERROR_CODE,
		                        "cannot read migration %s: read error or larger than %d bytes",
		                        m->path, MIGRATE_FILE_MAX);
	m->sql[n] = '\0';

	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	if (EVP_Digest(m->sql, n, digest, &digest_len, EVP_sha256(), NULL) != 1)
		return common_error_set(err, COMMON_ERR_INTERNAL, "", "SHA-256 of %s failed", m->path);
	for (unsigned int i = 0; i < digest_len; i++)
		snprintf(m->checksum + i * 2, 3, "%02x", digest[i]);
	return COMMON_OK;
}

static int compare_versions(const void *a, const void *b)
{
	const migration *ma = a;
	const migration *mb = b;
	return (ma->version > mb->version) - (ma->version < mb->version);
}

/* Lists and reads the migration files of dir, sorted by version. */
static common_status load_set(const char *dir, migration_set **out, common_error *err)
{
	migration_set *set = calloc(1, sizeof(*set));
	if (set == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading migrations");
	common_status status = COMMON_OK;

	DIR *d = opendir(dir);
	if (d == NULL) {
		status = common_error_set(err, COMMON_ERR_IO, ERROR_CODE,
		                          "cannot open migrations folder %s: %s; set [worker] "
		                          "migrations_dir",
		                          dir, strerror(errno));
		goto out;
	}
	struct dirent *entry;
	while ((entry = readdir(d)) != NULL) {
		size_t len = strlen(entry->d_name);
		if (len < 4 || strcmp(entry->d_name + len - 4, ".sql") != 0)
			continue;
		int version = 0;
		if (!parse_name(entry->d_name, &version)) {
			status = common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
			                          "migration file %s/%s has an invalid name; use "
			                          "NNNN_name.sql with a version from 0001 and a-z 0-9 _",
			                          dir, entry->d_name);
			break;
		}
		if (set->count == MIGRATE_FILES_MAX) {
			status = common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
			                          "more than %d migration files in %s", MIGRATE_FILES_MAX,
			                          dir);
			break;
		}
		migration *m = &set->items[set->count++];
		m->version = version;
		m->name = strdup(entry->d_name);
		if (m->name == NULL || asprintf(&m->path, "%s/%s", dir, entry->d_name) < 0) {
			m->path = NULL;
			status = common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory");
			break;
		}
	}
	closedir(d);
	if (status != COMMON_OK)
		goto out;

	qsort(set->items, set->count, sizeof(set->items[0]), compare_versions);
	for (size_t i = 0; i < set->count; i++) {
		if (i > 0 && set->items[i].version == set->items[i - 1].version) {
			status = common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
			                          "migrations %s and %s have the same version; renumber "
			                          "one",
			                          set->items[i - 1].name, set->items[i].name);
			goto out;
		}
		status = read_file(&set->items[i], err);
		if (status != COMMON_OK)
			goto out;
	}

out:
	if (status != COMMON_OK) {
		set_free(set);
		return status;
	}
	*out = set;
	return COMMON_OK;
}

/* Runs sql; returns COMMON_ERR_DB with context and PostgreSQL's message on failure. */
static common_status exec_simple(PGconn *conn, const char *sql, const char *context,
                                 common_error *err)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType rc = PQresultStatus(res);
	common_status status = COMMON_OK;
	if (rc != PGRES_COMMAND_OK && rc != PGRES_TUPLES_OK) {
		char *msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn);
		size_t len = strcspn(msg, "\n");
		status = common_error_set(err, COMMON_ERR_DB, ERROR_CODE, "%s failed: %.*s", context,
		                          (int)len, msg);
	}
	PQclear(res);
	return status;
}

/* Runs under the lock, so checking first cannot race (and PostgreSQL sends no notice). */
static const char create_table_sql[] =
	"DO $$ BEGIN IF to_regclass('dc_schema_migrations') IS NULL THEN "
	"CREATE TABLE dc_schema_migrations ("
	" version integer PRIMARY KEY,"
	" name text NOT NULL,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now()); END IF; END $$";

static const char lock_sql[] =
	"SELECT pg_advisory_lock(1684240242, hashtext(coalesce(current_schema(), '')))";
static const char unlock_sql[] =
	"SELECT pg_advisory_unlock(1684240242, hashtext(coalesce(current_schema(), '')))";

_Static_assert(MIGRATE_LOCK_CLASS == 1684240242, "lock_sql must use MIGRATE_LOCK_CLASS");

/* Checks that an applied version still has the same file content. */
static common_status check_applied(PGresult *applied, const migration *m, bool *is_applied,
                                   common_error *err)
{
	*is_applied = false;
	for (int row = 0; row < PQntuples(applied); row++) {
		if (strtol(PQgetvalue(applied, row, 0), NULL, 10) != m->version)
			continue;
		*is_applied = true;
		if (strcmp(PQgetvalue(applied, row, 1), m->checksum) != 0)
			return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
			                        "migration %s changed after it was applied; restore it and "
			                        "put the change in a new migration file",
			                        m->name);
	}
	return COMMON_OK;
}

static common_status apply_one(PGconn *conn, const migration *m, common_error *err)
{
	common_status status = exec_simple(conn, "BEGIN", "BEGIN", err);
	if (status != COMMON_OK)
		return status;

	char context[300];
	snprintf(context, sizeof(context), "migration %s", m->name);
	status = exec_simple(conn, m->sql, context, err);
	if (status == COMMON_OK) {
		char version[16];
		snprintf(version, sizeof(version), "%d", m->version);
		const char *params[3] = {version, m->name, m->checksum};
		PGresult *res = PQexecParams(conn,
		                             "INSERT INTO dc_schema_migrations (version, name, checksum) "
		                             "VALUES ($1::integer, $2, $3)",
		                             3, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			status = common_error_set(err, COMMON_ERR_DB, ERROR_CODE,
			                          "recording migration %s failed: %s", m->name,
			                          PQresultErrorMessage(res));
		PQclear(res);
	}
	if (status == COMMON_OK)
		return exec_simple(conn, "COMMIT", context, err);

	PGresult *res = PQexec(conn, "ROLLBACK");
	PQclear(res);
	return status;
}

common_status migrate_run(PGconn *conn, const char *dir, log_ctx *log, migrate_result *result,
                          common_error *err)
{
	if (dir == NULL)
		dir = migrate_default_dir();
	migrate_result local = {0, 0, 0};
	migration_set *set = NULL;
	PGresult *applied = NULL;

	common_status status = load_set(dir, &set, err);
	if (status != COMMON_OK)
		return status;
	status = exec_simple(conn, lock_sql, "taking the migration lock", err);
	if (status != COMMON_OK)
		goto out_unlocked;

	status = exec_simple(conn, create_table_sql, "creating dc_schema_migrations", err);
	if (status != COMMON_OK)
		goto out;
	applied = PQexec(conn, "SELECT version, checksum FROM dc_schema_migrations ORDER BY version");
	if (PQresultStatus(applied) != PGRES_TUPLES_OK) {
		status = common_error_set(err, COMMON_ERR_DB, ERROR_CODE,
		                          "reading dc_schema_migrations failed: %s",
		                          PQresultErrorMessage(applied));
		goto out;
	}
	int rows = PQntuples(applied);
	local.from_version = rows > 0 ? (int)strtol(PQgetvalue(applied, rows - 1, 0), NULL, 10) : 0;
	local.to_version = local.from_version;

	for (size_t i = 0; i < set->count; i++) {
		const migration *m = &set->items[i];
		bool is_applied = false;
		status = check_applied(applied, m, &is_applied, err);
		if (status != COMMON_OK)
			goto out;
		if (is_applied)
			continue;

		status = apply_one(conn, m, err);
		if (status != COMMON_OK)
			goto out;
		local.applied++;
		if (m->version > local.to_version)
			local.to_version = m->version;
		if (log != NULL)
			log_write(log, LOG_LEVEL_INFO, &(log_fields){.action = "migrate"},
			          "applied migration %s", m->name);
	}

out:
	PQclear(applied);
	{
		/* Unlock with a fresh error so an earlier error message survives. */
		common_error unlock_err;
		if (exec_simple(conn, unlock_sql, "releasing the migration lock", &unlock_err) !=
		        COMMON_OK &&
		    status == COMMON_OK) {
			*err = unlock_err;
			status = unlock_err.status;
		}
	}
out_unlocked:
	set_free(set);
	if (result != NULL)
		*result = local;
	return status;
}

common_status migrate_current_version(PGconn *conn, int *version, common_error *err)
{
	PGresult *res = PQexec(conn, "SELECT CASE WHEN to_regclass('dc_schema_migrations') IS NULL "
	                             "THEN 0 ELSE -1 END");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		common_status status = common_error_set(err, COMMON_ERR_DB, ERROR_CODE,
		                                        "reading the schema version failed: %s",
		                                        PQresultErrorMessage(res));
		PQclear(res);
		return status;
	}
	bool missing = strcmp(PQgetvalue(res, 0, 0), "0") == 0;
	PQclear(res);
	if (missing) {
		*version = 0;
		return COMMON_OK;
	}

	res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM dc_schema_migrations");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		common_status status = common_error_set(err, COMMON_ERR_DB, ERROR_CODE,
		                                        "reading the schema version failed: %s",
		                                        PQresultErrorMessage(res));
		PQclear(res);
		return status;
	}
	char *end = NULL;
	long value = strtol(PQgetvalue(res, 0, 0), &end, 10);
	bool valid = *end == '\0' && value >= 0 && value <= 9999;
	PQclear(res);
	if (!valid)
		return common_error_set(err, COMMON_ERR_DB, ERROR_CODE, "schema version is invalid");
	*version = (int)value;
	return COMMON_OK;
}

common_status migrate_check(PGconn *conn, int required_version, common_error *err)
{
	int version = 0;
	common_status status = migrate_current_version(conn, &version, err);
	if (status != COMMON_OK)
		return status;
	if (version < required_version)
		return common_error_set(err, COMMON_ERR_SCHEMA, "schema_too_old",
		                        "database schema is at version %d, this build needs version %d; "
		                        "run `dcctl migrate` first",
		                        version, required_version);
	return COMMON_OK;
}
