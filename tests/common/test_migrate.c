/* Migrations against a real PostgreSQL: idempotence, concurrency, rollback, version check. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "common/migrate.h"
#include "support/support.h"

static ts_postgres *pg;
static char *tmpdir;

static void setup(void)
{
	pg = ts_postgres_start();
	cr_assert_not_null(pg, "PostgreSQL did not start");
	tmpdir = ts_tempdir("dc-migrate");
	cr_assert_not_null(tmpdir);
}

static void teardown(void)
{
	ts_postgres_stop(pg);
	ts_rmtree(tmpdir);
	free(tmpdir);
}

TestSuite(migrate, .init = setup, .fini = teardown, .timeout = 60);

/* Connects with search_path set to schema, creating the schema first. */
static PGconn *connect_schema(const char *schema)
{
	char conninfo[512];
	snprintf(conninfo, sizeof(conninfo), "%s options='-c search_path=%s'",
	         ts_postgres_conninfo(pg), schema);
	PGconn *conn = PQconnectdb(conninfo);
	cr_assert_eq(PQstatus(conn), CONNECTION_OK, "%s", PQerrorMessage(conn));
	char sql[128];
	snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", schema);
	PGresult *res = PQexec(conn, sql);
	PQclear(res);
	return conn;
}

static long query_long(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(res));
	long value = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return value;
}

static bool table_exists(PGconn *conn, const char *table)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_tables WHERE schemaname = "
	                           "current_schema() AND tablename = '%s'",
	                           table);
	return query_long(conn, sql) == 1;
}

static void write_migration(const char *name, const char *sql)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(sql, f);
	fclose(f);
}

Test(migrate, run_twice_is_idempotent)
{
	PGconn *conn = connect_schema("twice");
	migrate_result result;
	common_error err;
	cr_assert_eq(migrate_run(conn, migrate_default_dir(), NULL, &result, &err), COMMON_OK, "%s",
	             err.message);
	cr_assert_eq(result.from_version, 0);
	cr_assert_eq(result.to_version, MIGRATE_REQUIRED_VERSION);
	cr_assert_eq(result.applied, MIGRATE_REQUIRED_VERSION);
	cr_assert(table_exists(conn, "dc_authorizations"));
	cr_assert(table_exists(conn, "dc_jobs"));
	cr_assert(table_exists(conn, "dc_job_events"));

	cr_assert_eq(migrate_run(conn, NULL, NULL, &result, &err), COMMON_OK, "%s", err.message);
	cr_assert_eq(result.applied, 0);
	cr_assert_eq(result.from_version, MIGRATE_REQUIRED_VERSION);
	cr_assert_eq(query_long(conn, "SELECT count(*) FROM dc_schema_migrations"),
	             MIGRATE_REQUIRED_VERSION);
	PQfinish(conn);
}

Test(migrate, schema_accepts_rows)
{
	PGconn *conn = connect_schema("rows");
	common_error err;
	cr_assert_eq(migrate_run(conn, NULL, NULL, NULL, &err), COMMON_OK, "%s", err.message);
	PGresult *res = PQexec(conn,
	                       "INSERT INTO dc_authorizations (dns_provider, zone, hosts) "
	                       "VALUES ('ionos', 'example.com', '{\"\",www}') RETURNING id;"
	                       "INSERT INTO dc_jobs (id, type, queue, payload) "
	                       "VALUES ('j1', 'apply', 'bulk', '{}');"
	                       "INSERT INTO dc_job_events (job_id, event) VALUES ('j1', 'enqueued')");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);

	res = PQexec(conn, "UPDATE dc_jobs SET state = 'lost' WHERE id = 'j1'");
	cr_assert_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "an invalid state was accepted");
	PQclear(res);
	res = PQexec(conn, "UPDATE dc_authorizations SET status = 'paused'");
	cr_assert_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "an invalid status was accepted");
	PQclear(res);
	PQfinish(conn);
}

typedef struct runner {
	char conninfo[512];
	common_status status;
	migrate_result result;
	char message[COMMON_MESSAGE_MAX];
} runner;

static void *run_concurrently(void *arg)
{
	runner *r = arg;
	PGconn *conn = PQconnectdb(r->conninfo);
	common_error err;
	common_error_clear(&err);
	r->status = migrate_run(conn, NULL, NULL, &r->result, &err);
	snprintf(r->message, sizeof(r->message), "%s", err.message);
	PQfinish(conn);
	return NULL;
}

Test(migrate, concurrent_runners_apply_once)
{
	PGconn *conn = connect_schema("concurrent");
	enum { RUNNERS = 4 };
	runner runners[RUNNERS];
	pthread_t threads[RUNNERS];
	for (int i = 0; i < RUNNERS; i++) {
		memset(&runners[i], 0, sizeof(runners[i]));
		snprintf(runners[i].conninfo, sizeof(runners[i].conninfo),
		         "%s options='-c search_path=concurrent'", ts_postgres_conninfo(pg));
		cr_assert_eq(pthread_create(&threads[i], NULL, run_concurrently, &runners[i]), 0);
	}

	int applied = 0;
	for (int i = 0; i < RUNNERS; i++) {
		pthread_join(threads[i], NULL);
		cr_assert_eq(runners[i].status, COMMON_OK, "runner %d: %s", i, runners[i].message);
		cr_assert_eq(runners[i].result.to_version, MIGRATE_REQUIRED_VERSION);
		applied += runners[i].result.applied;
	}
	cr_assert_eq(applied, MIGRATE_REQUIRED_VERSION);
	cr_assert_eq(query_long(conn, "SELECT count(*) FROM dc_schema_migrations"),
	             MIGRATE_REQUIRED_VERSION);
	PQfinish(conn);
}

Test(migrate, check_rejects_old_schema)
{
	PGconn *conn = connect_schema("version_check");
	common_error err;
	cr_assert_eq(migrate_check(conn, MIGRATE_REQUIRED_VERSION, &err), COMMON_ERR_SCHEMA);
	cr_assert_str_eq(err.code, "schema_too_old");
	cr_assert_not_null(strstr(err.message, "at version 0"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "dcctl migrate"), "%s", err.message);

	cr_assert_eq(migrate_run(conn, NULL, NULL, NULL, &err), COMMON_OK, "%s", err.message);
	cr_assert_eq(migrate_check(conn, MIGRATE_REQUIRED_VERSION, &err), COMMON_OK, "%s",
	             err.message);
	cr_assert_eq(migrate_check(conn, MIGRATE_REQUIRED_VERSION + 1, &err), COMMON_ERR_SCHEMA);
	char needle[128];
	snprintf(needle, sizeof(needle), "at version %d, this build needs version %d",
	         MIGRATE_REQUIRED_VERSION, MIGRATE_REQUIRED_VERSION + 1);
	cr_assert_not_null(strstr(err.message, needle), "%s", err.message);
	PQfinish(conn);
}

Test(migrate, failing_file_rolls_back)
{
	write_migration("0001_first.sql", "CREATE TABLE first_table (id int);");
	write_migration("0002_broken.sql", "CREATE TABLE second_table (id int);\nSELECT nonsense(;");
	write_migration("0003_later.sql", "CREATE TABLE third_table (id int);");
	write_migration("README.txt", "not a migration");
	PGconn *conn = connect_schema("broken");
	migrate_result result;
	common_error err;
	cr_assert_eq(migrate_run(conn, tmpdir, NULL, &result, &err), COMMON_ERR_DB);
	cr_assert_not_null(strstr(err.message, "migration 0002_broken.sql failed: ERROR:"), "%s",
	                   err.message);
	cr_assert_eq(result.applied, 1);
	cr_assert(table_exists(conn, "first_table"));
	cr_assert_not(table_exists(conn, "second_table"));
	cr_assert_not(table_exists(conn, "third_table"));
	cr_assert_eq(query_long(conn, "SELECT max(version) FROM dc_schema_migrations"), 1);

	/* The lock was released: a fixed file applies on the next run. */
	write_migration("0002_broken.sql", "CREATE TABLE second_table (id int);");
	cr_assert_eq(migrate_run(conn, tmpdir, NULL, &result, &err), COMMON_OK, "%s", err.message);
	cr_assert_eq(result.applied, 2);
	cr_assert_eq(result.to_version, 3);
	PQfinish(conn);
}

Test(migrate, changed_file_detected)
{
	write_migration("0001_first.sql", "CREATE TABLE first_table (id int);");
	PGconn *conn = connect_schema("changed");
	common_error err;
	cr_assert_eq(migrate_run(conn, tmpdir, NULL, NULL, &err), COMMON_OK, "%s", err.message);
	write_migration("0001_first.sql", "CREATE TABLE first_table (id bigint);");
	cr_assert_eq(migrate_run(conn, tmpdir, NULL, NULL, &err), COMMON_ERR_INVALID);
	cr_assert_not_null(strstr(err.message, "0001_first.sql changed after it was applied"), "%s",
	                   err.message);
	PQfinish(conn);
}

Test(migrate, bad_folders_rejected)
{
	PGconn *conn = connect_schema("names");
	common_error err;
	write_migration("1_short.sql", "SELECT 1;");
	cr_assert_eq(migrate_run(conn, tmpdir, NULL, NULL, &err), COMMON_ERR_INVALID);
	cr_assert_not_null(strstr(err.message, "1_short.sql has an invalid name"), "%s", err.message);

	char path[512];
	snprintf(path, sizeof(path), "%s/1_short.sql", tmpdir);
	remove(path);
	write_migration("0001_a.sql", "SELECT 1;");
	write_migration("0001_b.sql", "SELECT 1;");
	cr_assert_eq(migrate_run(conn, tmpdir, NULL, NULL, &err), COMMON_ERR_INVALID);
	cr_assert_not_null(strstr(err.message, "have the same version"), "%s", err.message);

	cr_assert_eq(migrate_run(conn, "/nonexistent/migrations", NULL, NULL, &err), COMMON_ERR_IO);
	cr_assert_not_null(strstr(err.message, "/nonexistent/migrations"), "%s", err.message);
	PQfinish(conn);
}
