/*
 * dcctl migrate: applies the pending schema migrations (migrate_run), or
 * with --status lists every migration file and whether it is applied.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dcctl.h"
#include "migrate.h"

static const char migrate_help[] =
	"usage: dcctl migrate [--status] [--dir DIR]\n\n"
	"Applies the pending SQL migrations to the configured PostgreSQL database,\n"
	"each in its own transaction, under an advisory lock. Safe to run again.\n\n"
	"Options:\n"
	"  --status          list the migrations (applied, pending or changed) and apply nothing\n"
	"  --dir DIR         folder of NNNN_name.sql files (default: [worker] migrations_dir,\n"
	"                    else the installed folder, else the source tree)\n" DCCTL_COMMON_HELP;

/* A migration file found in the folder. */
typedef struct migration_file {
	int version;
	char name[256];
	char checksum[65];
} migration_file;

static int compare_files(const void *a, const void *b)
{
	return ((const migration_file *)a)->version - ((const migration_file *)b)->version;
}

/* Hex SHA-256 of a file, the checksum the migration runner records. */
static bool file_checksum(const char *path, char out[65])
{
	FILE *f = fopen(path, "rb");
	unsigned char buf[8192];
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	bool ok = false;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (f == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	for (size_t n; (n = fread(buf, 1, sizeof(buf), f)) > 0;) {
		if (EVP_DigestUpdate(md, buf, n) != 1)
			goto out;
	}
	if (ferror(f) || EVP_DigestFinal_ex(md, digest, &digest_len) != 1)
		goto out;
	for (unsigned int i = 0; i < digest_len && i < 32; i++)
		snprintf(out + i * 2, 3, "%02x", digest[i]);
	ok = true;
out:
	EVP_MD_CTX_free(md);
	if (f != NULL)
		fclose(f);
	return ok;
}

/* Lists NNNN_name.sql files of dir sorted by version; *count is set. */
static migration_file *list_files(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	migration_file *files = NULL;
	size_t n = 0;

	*count = 0;
	if (d == NULL)
		return NULL;
	files = calloc(MIGRATE_FILES_MAX, sizeof(*files));
	for (struct dirent *e; files != NULL && (e = readdir(d)) != NULL && n < MIGRATE_FILES_MAX;) {
		size_t len = strlen(e->d_name);
		long version;
		char digits[5];

		if (len < 10 || len >= sizeof(files[0].name) || strcmp(e->d_name + len - 4, ".sql") != 0 ||
		    e->d_name[4] != '_')
			continue;
		memcpy(digits, e->d_name, 4);
		digits[4] = '\0';
		if (!dcctl_parse_long(digits, 1, 9999, &version))
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		files[n].version = (int)version;
		snprintf(files[n].name, sizeof(files[n].name), "%.*s", (int)(len - 4), e->d_name);
		if (!file_checksum(path, files[n].checksum))
			files[n].checksum[0] = '\0';
		n++;
	}
	closedir(d);
	if (files != NULL)
		qsort(files, n, sizeof(*files), compare_files);
	*count = n;
	return files;
}

static int migrate_status(dcctl *ctx, PGconn *conn, const char *dir)
{
	size_t count = 0;
	migration_file *files = list_files(dir, &count);
	PGresult *res = PQexec(conn, "SELECT version, name, checksum, "
	                             "to_char(applied_at AT TIME ZONE 'UTC', "
	                             "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	                             "FROM dc_schema_migrations ORDER BY version");
	int code = DCCTL_EXIT_OK;
	bool table_missing = PQresultStatus(res) != PGRES_TUPLES_OK;
	json_t *list = json_array();
	int pending = 0;

	if (files == NULL) {
		code = out_error(ctx, DCCTL_EXIT_CONFIG, "cannot read the migrations folder %s", dir);
		goto out;
	}
	if (table_missing && strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL
	                                ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "", "42P01") != 0) {
		code = out_error(ctx, DCCTL_EXIT_FAILED, "reading dc_schema_migrations failed: %s",
		                 PQresultErrorMessage(res));
		goto out;
	}

	for (size_t i = 0; i < count; i++) {
		const char *state = "pending";
		const char *applied_at = NULL;

		for (int row = 0; !table_missing && row < PQntuples(res); row++) {
			long version;

			if (!dcctl_parse_long(PQgetvalue(res, row, 0), 0, 9999, &version) ||
			    version != files[i].version)
				continue;
			applied_at = PQgetvalue(res, row, 3);
			state = strcmp(PQgetvalue(res, row, 2), files[i].checksum) == 0 ? "applied" : "changed";
		}
		if (strcmp(state, "pending") == 0)
			pending++;
		json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:s?}", "version", files[i].version,
		                                      "name", files[i].name, "state", state, "applied_at",
		                                      applied_at));
	}

	if (ctx->json) {
		out_json(json_pack("{s:s, s:i, s:o}", "dir", dir, "pending", pending, "migrations", list));
		list = NULL;
		goto out;
	}
	const char *headers[] = {"VERSION", "NAME", "STATE", "APPLIED AT"};
	out_table *t = out_table_new(4, headers);
	size_t index;
	json_t *m;
	json_array_foreach(list, index, m) {
		char version[16];
		char applied[64];
		const char *cells[] = {out_scalar(json_object_get(m, "version"), version, sizeof(version)),
		                       json_string_value(json_object_get(m, "name")),
		                       json_string_value(json_object_get(m, "state")),
		                       out_scalar(json_object_get(m, "applied_at"), applied, sizeof(applied))};
		out_table_add(t, cells);
	}
	out_table_print(t, stdout);
	out_table_free(t);
	printf("%d pending in %s\n", pending, dir);
out:
	json_decref(list);
	PQclear(res);
	free(files);
	return code;
}

int cmd_migrate(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"status", no_argument, NULL, 's'},
		{"dir", required_argument, NULL, 'd'},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	bool status_only = false;
	const char *dir = NULL;
	PGconn *conn = NULL;
	int code;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		switch (opt) {
		case 's':
			status_only = true;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(migrate_help, stdout);
			return DCCTL_EXIT_OK;
		default:
			return out_usage(ctx, "migrate", "invalid option");
		}
	}
	if (optind != argc)
		return out_usage(ctx, "migrate", "unexpected argument \"%s\"", argv[optind]);

	code = dcctl_pg_connect(ctx, &conn);
	if (code != DCCTL_EXIT_OK)
		return code;
	if (dir == NULL)
		dir = ctx->cfg->worker.migrations_dir;
	if (dir == NULL || dir[0] == '\0')
		dir = migrate_default_dir();

	if (status_only) {
		code = migrate_status(ctx, conn, dir);
		goto out;
	}

	common_error err = {0};
	migrate_result result = {0};
	if (migrate_run(conn, dir, NULL, &result, &err) != COMMON_OK) {
		code = out_error(ctx, err.status == COMMON_ERR_IO ? DCCTL_EXIT_CONFIG : DCCTL_EXIT_FAILED,
		                 "%s", err.message);
		goto out;
	}
	if (ctx->json)
		out_json(json_pack("{s:s, s:i, s:i, s:i}", "dir", dir, "from_version", result.from_version,
		                   "to_version", result.to_version, "applied", result.applied));
	else if (result.applied == 0)
		printf("schema is up to date at version %d\n", result.to_version);
	else
		printf("applied %d migration%s: version %d -> %d\n", result.applied,
		       result.applied == 1 ? "" : "s", result.from_version, result.to_version);
out:
	PQfinish(conn);
	return code;
}
