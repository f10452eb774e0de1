/*
 * dcctl authorizations: list, show and revoke stored OAuth authorizations
 * (dc_authorizations). Token columns are never read: only whether a token
 * is stored is shown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl.h"

#define AUTH_LIMIT_DEFAULT 100
#define AUTH_LIMIT_MAX 100000

static const char auth_help[] =
	"usage: dcctl authorizations list [--status S] [--provider NAME] [--limit N]\n"
	"       dcctl authorizations show ID\n"
	"       dcctl authorizations revoke ID\n\n"
	"Stored OAuth authorizations. Tokens are never printed.\n"
	"  --status S        active, reauthorization_required or revoked\n"
	"  --provider NAME   [provider.NAME] of the config\n"
	"  --limit N         rows to print, 1 to 100000 (default 100)\n"
	"  revoke ID         mark the authorization revoked: jobs using it fail\n\n"
	"Options:\n" DCCTL_COMMON_HELP
	"\nExit codes: 0 done, 3 no such authorization, 4 unreachable.\n";

/* Every column but the tokens; token presence as booleans. */
static const char columns[] =
	"id::text AS id, dns_provider, zone, array_to_json(hosts)::text AS hosts, "
	"array_to_json(service_ids)::text AS service_ids, status, token_type, "
	"access_token IS NOT NULL AS has_access_token, refresh_token IS NOT NULL AS has_refresh_token, "
	"token_key_id, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS expires_at, "
	"version, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS updated_at";

static json_t *auth_json(const PGresult *res, int row)
{
	json_t *obj = json_object();

	for (int col = 0; col < PQnfields(res); col++) {
		const char *name = PQfname(res, col);
		const char *value = PQgetvalue(res, row, col);
		json_error_t error;
		json_t *v;

		if (PQgetisnull(res, row, col))
			v = json_null();
		else if (strncmp(name, "has_", 4) == 0)
			v = json_boolean(value[0] == 't');
		else if (strcmp(name, "version") == 0)
			v = json_integer(strtoll(value, NULL, 10));
		else if (strcmp(name, "hosts") == 0 || strcmp(name, "service_ids") == 0)
			v = json_loads(value, 0, &error);
		else
			v = json_string(value);
		json_object_set_new(obj, name, v != NULL ? v : json_null());
	}
	return obj;
}

static bool valid_uuid(const char *id)
{
	if (strlen(id) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? id[i] != '-' : strchr("0123456789abcdefABCDEF", id[i]) == NULL)
			return false;
	}
	return true;
}

int cmd_authorizations(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"status", required_argument, NULL, 's'},
		{"provider", required_argument, NULL, 'p'},
		{"limit", required_argument, NULL, 'l'},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *status = NULL;
	const char *provider = NULL;
	long limit = AUTH_LIMIT_DEFAULT;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int code;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		switch (opt) {
		case 's': status = optarg; break;
		case 'p': provider = optarg; break;
		case 'l':
			if (!dcctl_parse_long(optarg, 1, AUTH_LIMIT_MAX, &limit))
				return out_usage(ctx, "authorizations", "--limit %s: expected 1 to %d", optarg,
				                 AUTH_LIMIT_MAX);
			break;
		case 'h':
			fputs(auth_help, stdout);
			return DCCTL_EXIT_OK;
		default:
			return out_usage(ctx, "authorizations", "invalid option");
		}
	}
	const char *action = optind < argc ? argv[optind] : "list";
	const char *id = optind + 1 < argc ? argv[optind + 1] : NULL;
	bool list = strcmp(action, "list") == 0;
	if (!list && strcmp(action, "show") != 0 && strcmp(action, "revoke") != 0)
		return out_usage(ctx, "authorizations", "unknown action \"%s\": expected list, show or "
		                 "revoke", action);
	if (!list && id == NULL)
		return out_usage(ctx, "authorizations", "%s needs an authorization ID", action);
	if (id != NULL && !valid_uuid(id))
		return out_usage(ctx, "authorizations", "\"%.64s\" is not an authorization id (a UUID)", id);

	code = dcctl_pg_connect(ctx, &conn);
	if (code != DCCTL_EXIT_OK)
		return code;

	char sql[2048];
	if (list) {
		char limit_text[24];
		snprintf(limit_text, sizeof(limit_text), "%ld", limit);
		const char *params[] = {status, provider, limit_text};
		snprintf(sql, sizeof(sql), "SELECT %s FROM dc_authorizations WHERE ($1::text IS NULL OR "
		         "status = $1) AND ($2::text IS NULL OR dns_provider = $2) "
		         "ORDER BY updated_at DESC LIMIT $3::integer", columns);
		res = PQexecParams(conn, sql, 3, NULL, params, NULL, NULL, 0);
	} else if (strcmp(action, "show") == 0) {
		const char *params[] = {id};
		snprintf(sql, sizeof(sql), "SELECT %s FROM dc_authorizations WHERE id = $1::uuid", columns);
		res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	} else {
		const char *params[] = {id};
		snprintf(sql, sizeof(sql), "UPDATE dc_authorizations SET status = 'revoked', "
		         "version = version + 1, lease_owner = NULL, lease_until = NULL, updated_at = now() "
		         "WHERE id = $1::uuid RETURNING %s", columns);
		res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		code = out_error(ctx, DCCTL_EXIT_FAILED, "%s of dc_authorizations failed: %s", action,
		                 PQresultErrorMessage(res));
		goto out;
	}
	if (!list && PQntuples(res) == 0) {
		code = out_error(ctx, DCCTL_EXIT_NOT_FOUND, "no authorization %s", id);
		goto out;
	}

	if (ctx->json) {
		json_t *rows = json_array();
		for (int row = 0; row < PQntuples(res); row++)
			json_array_append_new(rows, auth_json(res, row));
		out_json(list ? json_pack("{s:o}", "authorizations", rows)
		              : json_incref(json_array_get(rows, 0)));
		if (!list)
			json_decref(rows);
	} else if (!list) {
		json_t *obj = auth_json(res, 0);
		const char *key;
		json_t *value;
		json_object_foreach(obj, key, value) {
			char buf[1024];
			out_field(key, "%s", out_scalar(value, buf, sizeof(buf)));
		}
		json_decref(obj);
	} else {
		const char *headers[] = {"ID", "DNS PROVIDER", "ZONE", "STATUS", "EXPIRES", "VERSION"};
		out_table *t = out_table_new(6, headers);
		for (int row = 0; row < PQntuples(res); row++) {
			const char *cells[] = {PQgetvalue(res, row, 0), PQgetvalue(res, row, 1),
			                       PQgetvalue(res, row, 2), PQgetvalue(res, row, 5),
			                       PQgetvalue(res, row, 10), PQgetvalue(res, row, 11)};
			out_table_add(t, cells);
		}
		out_table_print(t, stdout);
		out_table_free(t);
	}
out:
	PQclear(res);
	PQfinish(conn);
	return code;
}
