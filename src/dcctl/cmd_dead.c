/*
 * dcctl dead: the dead letter stream {dc}:dead (entries with fields queue,
 * entry_id, job, error, deliveries, time_ms): list, show, retry, purge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl.h"

/* Default and largest --limit of `dcctl dead list`. */
#define DEAD_LIMIT_DEFAULT 100
#define DEAD_LIMIT_MAX 100000
/* Entries moved per round trip by `retry --all`. */
#define DEAD_RETRY_BATCH 100

static const char dead_help[] =
	"usage: dcctl dead list [--limit N]\n"
	"       dcctl dead show ID\n"
	"       dcctl dead retry ID | --all\n"
	"       dcctl dead purge [ID]\n\n"
	"Dead letters are jobs the worker gave up on ({dc}:dead).\n"
	"  list              newest first, at most --limit N entries (default 100)\n"
	"  show ID           one entry with its job and last error\n"
	"  retry ID          move the job back to the queue it came from\n"
	"  retry --all       move every dead letter back\n"
	"  purge [ID]        delete one entry, or all of them\n\n"
	"Options:\n" DCCTL_COMMON_HELP
	"\nExit codes: 0 done, 3 no such entry, 4 Redis unreachable, 5 failed.\n";

/*
 * Moves one dead letter back to its queue and deletes it, atomically.
 * KEYS[1]: dead stream. ARGV: entry id, queue key prefix.
 * Returns the new entry id, or false when the dead letter does not exist.
 */
static const char retry_script[] =
	"local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])\n"
	"if #e == 0 then return false end\n"
	"local f = e[1][2]\n"
	"local queue, job = nil, nil\n"
	"for i = 1, #f, 2 do\n"
	"  if f[i] == 'queue' then queue = f[i + 1] end\n"
	"  if f[i] == 'job' then job = f[i + 1] end\n"
	"end\n"
	"if not queue or queue == '' or not job then return redis.error_reply('entry has no queue or job') end\n"
	"local id = redis.call('XADD', ARGV[2] .. queue, '*', 'job', job)\n"
	"redis.call('XDEL', KEYS[1], ARGV[1])\n"
	"return id\n";

static json_t *entry_json(const redisReply *entry)
{
	json_t *obj = json_pack("{s:s}", "id", entry->element[0]->str);
	const redisReply *fields = entry->element[1];

	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const char *name = fields->element[i]->str;
		const char *value = fields->element[i + 1]->str;
		json_error_t error;
		json_t *job;

		if (strcmp(name, "job") == 0 && (job = json_loads(value, 0, &error)) != NULL) {
			/* The code of an exchange_code job is a secret. */
			if (json_object_get(job, "code") != NULL)
				json_object_set_new(job, "code", json_string("********"));
			json_object_set_new(obj, name, job);
		} else {
			json_object_set_new(obj, name, json_string(value));
		}
	}
	return obj;
}

static int dead_list(dcctl *ctx, redisContext *rc, const char *id, long limit)
{
	redisReply *reply = id != NULL
		? redisCommand(rc, "XRANGE " REDIS_KEY_DEAD " %s %s", id, id)
		: redisCommand(rc, "XREVRANGE " REDIS_KEY_DEAD " + - COUNT %ld", limit);
	int code = DCCTL_EXIT_OK;

	if (reply == NULL) {
		code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "reading dead letters failed: %s",
		                 rc->errstr);
		goto out;
	}
	if (reply->type != REDIS_REPLY_ARRAY) {
		code = out_error(ctx, DCCTL_EXIT_USAGE, "reading dead letters failed: %s",
		                 reply->str != NULL ? reply->str : "");
		goto out;
	}
	if (id != NULL && reply->elements == 0) {
		code = out_error(ctx, DCCTL_EXIT_NOT_FOUND, "no dead letter %s", id);
		goto out;
	}
	json_t *list = json_array();
	for (size_t i = 0; i < reply->elements; i++)
		json_array_append_new(list, entry_json(reply->element[i]));
	if (ctx->json) {
		out_json(id != NULL ? json_incref(json_array_get(list, 0)) : json_pack("{s:O}", "dead", list));
	} else if (id != NULL) {
		const char *key;
		json_t *value;
		json_object_foreach(json_array_get(list, 0), key, value) {
			char buf[4096];
			out_field(key, "%s", out_scalar(value, buf, sizeof(buf)));
		}
	} else {
		const char *headers[] = {"ID", "QUEUE", "JOB ID", "TYPE", "ERROR"};
		out_table *t = out_table_new(5, headers);
		size_t i;
		json_t *e;
		json_array_foreach(list, i, e) {
			json_t *job = json_object_get(e, "job");
			const char *cells[] = {json_string_value(json_object_get(e, "id")),
			                       json_string_value(json_object_get(e, "queue")),
			                       json_string_value(json_object_get(job, "id")),
			                       json_string_value(json_object_get(job, "type")),
			                       json_string_value(json_object_get(e, "error"))};
			out_table_add(t, cells);
		}
		out_table_print(t, stdout);
		out_table_free(t);
	}
	json_decref(list);
out:
	freeReplyObject(reply);
	return code;
}

/* Retries one entry; *found is false when it does not exist. */
static dcctl_exit retry_one(dcctl *ctx, redisContext *rc, const char *id, bool *found)
{
	redisReply *reply = redisCommand(rc, "EVAL %s 1 %s %s %s", retry_script, REDIS_KEY_DEAD, id,
	                                 REDIS_KEY_QUEUE_PREFIX);
	dcctl_exit code = DCCTL_EXIT_OK;

	*found = false;
	if (reply == NULL)
		code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "Redis connection failed: %s", rc->errstr);
	else if (reply->type == REDIS_REPLY_ERROR)
		code = out_error(ctx, DCCTL_EXIT_FAILED, "retrying dead letter %s failed: %s", id, reply->str);
	else
		*found = reply->type == REDIS_REPLY_STRING;
	freeReplyObject(reply);
	return code;
}

static int dead_retry(dcctl *ctx, redisContext *rc, const char *id)
{
	long retried = 0;
	bool found = false;
	dcctl_exit code;

	if (id != NULL) {
		code = retry_one(ctx, rc, id, &found);
		if (code != DCCTL_EXIT_OK)
			return code;
		if (!found)
			return out_error(ctx, DCCTL_EXIT_NOT_FOUND, "no dead letter %s", id);
		retried = 1;
	} else {
		for (;;) {
			redisReply *reply = redisCommand(rc, "XRANGE " REDIS_KEY_DEAD " - + COUNT %d",
			                                 DEAD_RETRY_BATCH);
			if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
				freeReplyObject(reply);
				return out_error(ctx, DCCTL_EXIT_UNREACHABLE, "reading dead letters failed");
			}
			size_t n = reply->elements;
			for (size_t i = 0; i < n; i++) {
				code = retry_one(ctx, rc, reply->element[i]->element[0]->str, &found);
				if (code != DCCTL_EXIT_OK) {
					freeReplyObject(reply);
					return code;
				}
				retried += found ? 1 : 0;
			}
			freeReplyObject(reply);
			if (n == 0)
				break;
		}
	}
	if (ctx->json)
		out_json(json_pack("{s:I}", "retried", (json_int_t)retried));
	else
		printf("moved %ld dead letter%s back to their queues\n", retried, retried == 1 ? "" : "s");
	return DCCTL_EXIT_OK;
}

static int dead_purge(dcctl *ctx, redisContext *rc, const char *id)
{
	redisReply *reply = id != NULL ? redisCommand(rc, "XDEL " REDIS_KEY_DEAD " %s", id)
	                               : redisCommand(rc, "XLEN " REDIS_KEY_DEAD);
	long long purged = reply != NULL && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;

	freeReplyObject(reply);
	if (purged < 0)
		return out_error(ctx, DCCTL_EXIT_FAILED, "purging dead letters failed: %s", rc->errstr);
	if (id != NULL && purged == 0)
		return out_error(ctx, DCCTL_EXIT_NOT_FOUND, "no dead letter %s", id);
	if (id == NULL) {
		reply = redisCommand(rc, "DEL " REDIS_KEY_DEAD);
		freeReplyObject(reply);
	}
	if (ctx->json)
		out_json(json_pack("{s:I}", "purged", (json_int_t)purged));
	else
		printf("deleted %lld dead letter%s\n", purged, purged == 1 ? "" : "s");
	return DCCTL_EXIT_OK;
}

int cmd_dead(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"limit", required_argument, NULL, 'l'},
		{"all", no_argument, NULL, 'a'},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	long limit = DEAD_LIMIT_DEFAULT;
	bool all = false;
	redisContext *rc = NULL;
	int code;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		switch (opt) {
		case 'l':
			if (!dcctl_parse_long(optarg, 1, DEAD_LIMIT_MAX, &limit))
				return out_usage(ctx, "dead", "--limit %s: expected 1 to %d", optarg, DEAD_LIMIT_MAX);
			break;
		case 'a': all = true; break;
		case 'h':
			fputs(dead_help, stdout);
			return DCCTL_EXIT_OK;
		default:
			return out_usage(ctx, "dead", "invalid option");
		}
	}
	const char *action = optind < argc ? argv[optind] : "list";
	const char *id = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (optind + 2 < argc)
		return out_usage(ctx, "dead", "unexpected argument \"%s\"", argv[optind + 2]);
	bool needs_id = strcmp(action, "show") == 0 || (strcmp(action, "retry") == 0 && !all);
	if (needs_id && id == NULL)
		return out_usage(ctx, "dead", "%s needs an entry ID%s", action,
		                 strcmp(action, "retry") == 0 ? " or --all" : "");

	code = dcctl_redis_connect(ctx, &rc);
	if (code != DCCTL_EXIT_OK)
		return code;
	if (strcmp(action, "list") == 0 && id == NULL)
		code = dead_list(ctx, rc, NULL, limit);
	else if (strcmp(action, "show") == 0)
		code = dead_list(ctx, rc, id, 1);
	else if (strcmp(action, "retry") == 0)
		code = dead_retry(ctx, rc, all ? NULL : id);
	else if (strcmp(action, "purge") == 0)
		code = dead_purge(ctx, rc, id);
	else
		code = out_usage(ctx, "dead", "unknown action \"%s\": expected list, show, retry or purge",
		                 action);
	redisFree(rc);
	return code;
}
