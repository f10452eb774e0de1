/*
 * dcctl stats: per queue the stream length, the pending (in flight)
 * entries of the dcworker group and the jobs finished in the last minute.
 * Then the scheduled and dead counts, and per DNS provider the call
 * counters and the pacing state (stats_provider.c). --watch repeats every
 * --interval seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcctl.h"

static const char stats_help[] =
	"usage: dcctl stats [--watch] [--interval SECONDS]\n\n"
	"Prints per queue: length (XLEN), in flight (pending in group dcworker), jobs\n"
	"finished in the last minute (from PostgreSQL when configured); scheduled and dead\n"
	"jobs; per DNS provider of the config ([provider.NAME]) the calls by status, all\n"
	"time and this minute, and the pacing: effective/configured rate, penalty level\n"
	"after 429s, tokens in the bucket and requests in flight/maximum.\n\n"
	"Options:\n"
	"  --watch             print again every --interval seconds until interrupted\n"
	"  --interval SECONDS  seconds between prints with --watch (default 2)\n" DCCTL_COMMON_HELP;

static long long redis_int(redisContext *rc, const char *fmt, const char *arg)
{
	redisReply *reply = redisCommand(rc, fmt, arg);
	long long value = reply != NULL && reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;

	freeReplyObject(reply);
	return value;
}

/* Pending entries of the dcworker group on a stream (0 when the group is missing). */
static long long pending(redisContext *rc, const char *key)
{
	redisReply *reply = redisCommand(rc, "XPENDING %s %s", key, REDIS_GROUP);
	long long value = 0;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	    reply->element[0]->type == REDIS_REPLY_INTEGER)
		value = reply->element[0]->integer;
	freeReplyObject(reply);
	return value;
}

static json_t *collect(dcctl *ctx, redisContext *rc, PGconn *conn)
{
	json_t *queues = json_object();
	const config *cfg = ctx->cfg;

	for (size_t i = 0; i < cfg->worker.queues_count; i++) {
		char key[64];
		snprintf(key, sizeof(key), REDIS_KEY_QUEUE_PREFIX "%s", cfg->worker.queues[i]);
		json_object_set_new(queues, cfg->worker.queues[i],
		                    json_pack("{s:I, s:I}", "length", (json_int_t)redis_int(rc, "XLEN %s", key),
		                              "in_flight", (json_int_t)pending(rc, key)));
	}
	if (conn != NULL) {
		PGresult *res = PQexec(conn, "SELECT queue, state, count(*) FROM dc_jobs WHERE finished_at "
		                             "> now() - interval '1 minute' GROUP BY 1, 2");
		for (int row = 0; PQresultStatus(res) == PGRES_TUPLES_OK && row < PQntuples(res); row++) {
			json_t *q = json_object_get(queues, PQgetvalue(res, row, 0));

			if (q == NULL)
				continue;
			if (json_object_get(q, "finished_last_minute") == NULL)
				json_object_set_new(q, "finished_last_minute", json_object());
			json_object_set_new(json_object_get(q, "finished_last_minute"), PQgetvalue(res, row, 1),
			                    json_integer(strtoll(PQgetvalue(res, row, 2), NULL, 10)));
		}
		PQclear(res);
	}

	json_t *providers = json_object();
	int64_t now_ms = dcctl_now_ms();
	for (size_t i = 0; i < cfg->providers_count; i++)
		json_object_set_new(providers, cfg->providers[i].name,
		                    stats_provider(rc, &cfg->providers[i], now_ms));
	return json_pack("{s:o, s:I, s:I, s:o}", "queues", queues, "scheduled",
	                 (json_int_t)redis_int(rc, "ZCARD %s", REDIS_KEY_SCHEDULED), "dead",
	                 (json_int_t)redis_int(rc, "XLEN %s", REDIS_KEY_DEAD), "providers", providers);
}

static void print_stats(const json_t *stats)
{
	const char *headers[] = {"QUEUE", "LENGTH", "IN FLIGHT", "FINISHED/MIN"};
	out_table *t = out_table_new(4, headers);
	const char *name;
	json_t *q;

	json_object_foreach(json_object_get(stats, "queues"), name, q) {
		char length[24], flight[24], done[256] = "";
		const char *state;
		json_t *n;
		size_t used = 0;

		json_object_foreach(json_object_get(q, "finished_last_minute"), state, n) {
			used += (size_t)snprintf(done + used, used < sizeof(done) ? sizeof(done) - used : 0,
			                         "%s%s=%" JSON_INTEGER_FORMAT, used > 0 ? " " : "", state,
			                         json_integer_value(n));
		}
		const char *cells[] = {name, out_scalar(json_object_get(q, "length"), length, sizeof(length)),
		                       out_scalar(json_object_get(q, "in_flight"), flight, sizeof(flight)),
		                       done};
		out_table_add(t, cells);
	}
	out_table_print(t, stdout);
	out_table_free(t);
	printf("scheduled: %" JSON_INTEGER_FORMAT "  dead: %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(stats, "scheduled")),
	       json_integer_value(json_object_get(stats, "dead")));
	if (json_object_size(json_object_get(stats, "providers")) > 0) {
		printf("\n");
		stats_provider_print(json_object_get(stats, "providers"));
	}
}

int cmd_stats(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"watch", no_argument, NULL, 'w'},
		{"interval", required_argument, NULL, 'i'},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	bool watch = false;
	double interval = 2;
	redisContext *rc = NULL;
	PGconn *conn = NULL;
	int code;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		switch (opt) {
		case 'w': watch = true; break;
		case 'i':
			if (!dcctl_parse_seconds(optarg, 3600, &interval) || interval < 0.1)
				return out_usage(ctx, "stats", "--interval %s: expected 0.1 to 3600 seconds", optarg);
			break;
		case 'h':
			fputs(stats_help, stdout);
			return DCCTL_EXIT_OK;
		default:
			return out_usage(ctx, "stats", "invalid option");
		}
	}
	if (optind != argc)
		return out_usage(ctx, "stats", "unexpected argument \"%s\"", argv[optind]);
	code = dcctl_redis_connect(ctx, &rc);
	if (code != DCCTL_EXIT_OK)
		return code;
	if (dcctl_pg_configured(ctx)) {
		code = dcctl_pg_connect(ctx, &conn);
		if (code != DCCTL_EXIT_OK)
			goto out;
	}
	for (;;) {
		json_t *stats = collect(ctx, rc, conn);

		if (ctx->json) {
			/* With --watch, one compact document per line. */
			if (watch) {
				json_dumpf(stats, stdout, JSON_COMPACT);
				fputc('\n', stdout);
				fflush(stdout);
				json_decref(stats);
			} else {
				out_json(stats);
			}
		} else {
			if (watch && ctx->tty)
				printf("\033[H\033[2J");
			print_stats(stats);
			fflush(stdout);
			json_decref(stats);
		}
		if (!watch)
			break;
		struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
		nanosleep(&ts, NULL);
		if (rc->err != 0) {
			code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "lost the Redis connection: %s", rc->errstr);
			break;
		}
	}
out:
	PQfinish(conn);
	redisFree(rc);
	return code;
}
