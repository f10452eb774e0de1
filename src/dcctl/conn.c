/*
 * The config, the connections to Redis and PostgreSQL, and small parsers
 * shared by the subcommands.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcctl.h"

bool dcctl_common_option(dcctl *ctx, int opt, const char *arg)
{
	if (opt == DCCTL_OPT_CONFIG) {
		ctx->config_path = arg;
		return true;
	}
	if (opt == DCCTL_OPT_JSON) {
		ctx->json = true;
		return true;
	}
	return false;
}

dcctl_exit dcctl_load_config(dcctl *ctx)
{
	common_error err = {0};

	if (ctx->cfg != NULL)
		return DCCTL_EXIT_OK;
	if (ctx->log == NULL) {
		ctx->log = log_ctx_new(stderr, LOG_LEVEL_WARN);
		if (ctx->log == NULL)
			return out_error(ctx, DCCTL_EXIT_FAILED, "out of memory");
	}
	ctx->cfg = config_load(ctx->config_path, ctx->log, &err);
	if (ctx->cfg == NULL)
		return out_error(ctx, DCCTL_EXIT_CONFIG, "%s", err.message);
	return DCCTL_EXIT_OK;
}

/* Runs one connection setup command (AUTH or SELECT) and reports a failure. */
static dcctl_exit redis_check(dcctl *ctx, redisContext *rc, const char *command_format)
{
	redisReply *reply = redisCommand(rc, command_format, ctx->cfg->redis.password);
	dcctl_exit code = DCCTL_EXIT_OK;

	if (reply == NULL)
		code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "Redis at %s:%ld: %s", ctx->cfg->redis.host,
		                 ctx->cfg->redis.port, rc->errstr);
	else if (reply->type == REDIS_REPLY_ERROR)
		code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "Redis at %s:%ld rejected the connection "
		                 "setup: %.200s", ctx->cfg->redis.host, ctx->cfg->redis.port, reply->str);
	freeReplyObject(reply);
	return code;
}

dcctl_exit dcctl_redis_connect(dcctl *ctx, redisContext **out)
{
	dcctl_exit code = dcctl_load_config(ctx);
	struct timeval timeout = {DCCTL_CONNECT_TIMEOUT_MS / 1000, (DCCTL_CONNECT_TIMEOUT_MS % 1000) * 1000};
	redisContext *rc = NULL;

	*out = NULL;
	if (code != DCCTL_EXIT_OK)
		return code;
	rc = redisConnectWithTimeout(ctx->cfg->redis.host, (int)ctx->cfg->redis.port, timeout);
	if (rc == NULL || rc->err != 0) {
		code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "cannot connect to Redis at %s:%ld: %s",
		                 ctx->cfg->redis.host, ctx->cfg->redis.port,
		                 rc != NULL ? rc->errstr : "out of memory");
		goto out;
	}

	/* Commands may wait on a slow server, but never forever. */
	struct timeval command_timeout = {30, 0};
	redisSetTimeout(rc, command_timeout);
	if (ctx->cfg->redis.password != NULL) {
		code = redis_check(ctx, rc, "AUTH %s");
		if (code != DCCTL_EXIT_OK)
			goto out;
	}
	if (ctx->cfg->redis.db != 0) {
		char select[48];

		snprintf(select, sizeof(select), "SELECT %ld", ctx->cfg->redis.db);
		code = redis_check(ctx, rc, select);
		if (code != DCCTL_EXIT_OK)
			goto out;
	}
	*out = rc;
	rc = NULL;
out:
	if (rc != NULL)
		redisFree(rc);
	return code;
}

bool dcctl_pg_configured(const dcctl *ctx)
{
	return ctx->cfg != NULL && ctx->cfg->postgres.conninfo != NULL &&
	       ctx->cfg->postgres.conninfo[0] != '\0';
}

dcctl_exit dcctl_pg_connect(dcctl *ctx, PGconn **out)
{
	dcctl_exit code = dcctl_load_config(ctx);
	char timeout[16];

	*out = NULL;
	if (code != DCCTL_EXIT_OK)
		return code;
	if (!dcctl_pg_configured(ctx))
		return out_error(ctx, DCCTL_EXIT_CONFIG, "no PostgreSQL configured: set [postgres] "
		                 "conninfo in the config file or DCWORKER_POSTGRES_CONNINFO");

	/* The conninfo is expanded first; the password and timeout are added to it. */
	snprintf(timeout, sizeof(timeout), "%d", (DCCTL_CONNECT_TIMEOUT_MS + 999) / 1000);
	const char *keys[] = {"dbname", "password", "connect_timeout", "application_name", NULL};
	const char *values[] = {ctx->cfg->postgres.conninfo, ctx->cfg->postgres.password, timeout,
	                        "dcctl", NULL};
	if (ctx->cfg->postgres.password == NULL) {
		keys[1] = "connect_timeout";
		values[1] = timeout;
		keys[2] = "application_name";
		values[2] = "dcctl";
		keys[3] = NULL;
	}
	PGconn *conn = PQconnectdbParams(keys, values, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "cannot connect to PostgreSQL: %s",
		                 conn != NULL ? PQerrorMessage(conn) : "out of memory");
		PQfinish(conn);
		return code;
	}
	PGresult *res = PQexec(conn, "SET client_min_messages = warning");
	PQclear(res);
	*out = conn;
	return DCCTL_EXIT_OK;
}

bool dcctl_parse_long(const char *text, long min, long max, long *out)
{
	char *end = NULL;

	if (text == NULL || text[0] == '\0')
		return false;
	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return false;
	*out = value;
	return true;
}

bool dcctl_parse_seconds(const char *text, double max, double *out)
{
	char *end = NULL;

	if (text == NULL || text[0] == '\0')
		return false;
	errno = 0;
	double value = strtod(text, &end);
	if (errno != 0 || *end != '\0' || !isfinite(value) || value < 0 || value > max)
		return false;
	*out = value;
	return true;
}

int64_t dcctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double dcctl_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool dcctl_valid_queue_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 32)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

void dcctl_dc_config(const dcctl *ctx, dc_config *out)
{
	const config *cfg = ctx->cfg;

	memset(out, 0, sizeof(*out));
	out->dns_servers = cfg->dns.servers;
	out->dns_timeout_ms = cfg->dns.timeout_ms;
	out->allow_networks = cfg->guard.allow_networks;
	out->allow_ports = cfg->guard.allow_ports;
	out->ca_file = cfg->guard.ca_file;
	out->user_agent = "dcctl/" DCCTL_VERSION;
}

dcctl_exit dcctl_exit_from_dc(dc_status status)
{
	switch (status) {
	case DC_OK:
		return DCCTL_EXIT_OK;
	case DC_ERR_INVALID_ARGUMENT:
		return DCCTL_EXIT_USAGE;
	case DC_ERR_NOT_SUPPORTED:
	case DC_ERR_ASYNC_NOT_SUPPORTED:
	case DC_ERR_TEMPLATE_NOT_SUPPORTED:
		return DCCTL_EXIT_NOT_SUPPORTED;
	default:
		break;
	}
	if (dc_status_is_transient(status))
		return DCCTL_EXIT_UNREACHABLE;
	return DCCTL_EXIT_FAILED;
}
