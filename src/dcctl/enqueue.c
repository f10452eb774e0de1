/*
 * The atomic enqueue step, job validation and deterministic ids, and the
 * results subscription used by --wait.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "enqueue.h"
#include "job_spec.h"

/*
 * KEYS[1]: queue stream, KEYS[2]: result hash, KEYS[3]: marker.
 * ARGV: job JSON, marker TTL in seconds.
 * Returns {1, entry id} when added, {0, "has_result"} or {0, "already_queued"}.
 */
static const char enqueue_script[] =
	"if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 'has_result'} end\n"
	"if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 'already_queued'} end\n"
	"local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])\n"
	"redis.call('SET', KEYS[3], id, 'EX', ARGV[2])\n"
	"return {1, id}\n";

const char *enqueue_outcome_name(enqueue_outcome outcome)
{
	switch (outcome) {
	case ENQUEUE_ADDED:
		return "enqueued";
	case ENQUEUE_HAS_RESULT:
		return "has_result";
	case ENQUEUE_ALREADY_QUEUED:
		return "already_queued";
	case ENQUEUE_KNOWN:
		return "known";
	}
	return "unknown";
}

static bool derive_id(json_t *job, const char *prefix)
{
	char *canonical = json_dumps(job, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char id[JOB_SPEC_ID_MAX + 1];
	size_t used;

	if (canonical == NULL)
		return false;
	bool ok = EVP_Digest(canonical, strlen(canonical), digest, &len, EVP_sha256(), NULL) == 1;
	free(canonical);
	if (!ok)
		return false;
	used = (size_t)snprintf(id, sizeof(id), "%s", prefix);
	for (unsigned int i = 0; i < 16 && used + 2 < sizeof(id); i++)
		used += (size_t)snprintf(id + used, sizeof(id) - used, "%02x", digest[i]);
	return json_object_set_new(job, "id", json_string(id)) == 0;
}

bool enqueue_prepare(const dcctl *ctx, json_t *job, const char *prefix, common_error *err)
{
	job_spec *spec = NULL;
	bool ok = false;

	if (!json_is_object(job)) {
		common_error_set(err, COMMON_ERR_INVALID, "invalid_json", "a job must be a JSON object");
		return false;
	}
	if (json_object_get(job, "id") == NULL && !derive_id(job, prefix)) {
		common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory deriving the job id");
		return false;
	}

	char *text = json_dumps(job, JSON_COMPACT);
	if (text == NULL) {
		common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory");
		return false;
	}
	if (job_spec_parse(text, strlen(text), dcctl_now_ms(), &spec, err) != COMMON_OK)
		goto out;

	/* The worker rejects a dns_provider missing from its provider table, so reject it here first. */
	if (spec->dns_provider != NULL && ctx->cfg != NULL &&
	    config_find_provider(ctx->cfg, spec->dns_provider) == NULL) {
		char quoted[80];

		common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
		                 "dns_provider \"%s\" is not a [provider.NAME] section of the config",
		                 common_quote(spec->dns_provider, 64, quoted, sizeof(quoted)));
		goto out;
	}
	ok = true;
out:
	job_spec_free(spec);
	free(text);
	return ok;
}

long enqueue_marker_ttl(const dcctl *ctx)
{
	long ttl = ctx->cfg != NULL ? ctx->cfg->worker.result_ttl_s : 0;

	return ttl > ENQUEUE_MARKER_TTL_MIN_S ? ttl : ENQUEUE_MARKER_TTL_MIN_S;
}

bool enqueue_append(redisContext *rc, const char *queue, const char *id, const char *job_json,
                    long marker_ttl_s)
{
	char stream[64];
	char result[256];
	char marker[256];
	char ttl[24];

	snprintf(stream, sizeof(stream), REDIS_KEY_QUEUE_PREFIX "%s", queue);
	snprintf(result, sizeof(result), REDIS_KEY_RESULT_PREFIX "%s", id);
	snprintf(marker, sizeof(marker), REDIS_KEY_ENQUEUED_PREFIX "%s", id);
	snprintf(ttl, sizeof(ttl), "%ld", marker_ttl_s);
	const char *argv[] = {"EVAL", enqueue_script, "3", stream, result, marker, job_json, ttl};
	return redisAppendCommandArgv(rc, 8, argv, NULL) == REDIS_OK;
}

dcctl_exit enqueue_read(redisContext *rc, enqueue_outcome *outcome, char *entry_id,
                        size_t entry_id_size, char *message, size_t message_size)
{
	redisReply *reply = NULL;
	dcctl_exit code = DCCTL_EXIT_OK;

	entry_id[0] = '\0';
	if (redisGetReply(rc, (void **)&reply) != REDIS_OK || reply == NULL) {
		snprintf(message, message_size, "Redis connection failed: %s", rc->errstr);
		return DCCTL_EXIT_UNREACHABLE;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(message, message_size, "Redis rejected the enqueue: %.200s", reply->str);
		code = DCCTL_EXIT_FAILED;
	} else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	           reply->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(message, message_size, "unexpected reply to the enqueue step");
		code = DCCTL_EXIT_FAILED;
	} else if (reply->element[0]->integer == 1) {
		*outcome = ENQUEUE_ADDED;
		snprintf(entry_id, entry_id_size, "%s", reply->element[1]->str);
	} else {
		*outcome = strcmp(reply->element[1]->str, "has_result") == 0 ? ENQUEUE_HAS_RESULT
		                                                             : ENQUEUE_ALREADY_QUEUED;
	}
	freeReplyObject(reply);
	return code;
}

bool result_is_terminal(const char *status)
{
	static const char *const terminal[] = {"succeeded", "conflict", "reauthorization_required",
	                                       "failed", "dead"};

	for (size_t i = 0; status != NULL && i < sizeof(terminal) / sizeof(terminal[0]); i++) {
		if (strcmp(status, terminal[i]) == 0)
			return true;
	}
	return false;
}

static json_t *parse_result(const char *text, size_t len)
{
	json_error_t error;
	json_t *result = json_loadb(text, len, 0, &error);

	if (result == NULL || !result_is_terminal(json_string_value(json_object_get(result, "status")))) {
		json_decref(result);
		return NULL;
	}
	return result;
}

json_t *result_fetch(redisContext *rc, const char *id)
{
	redisReply *reply = redisCommand(rc, "HGET " REDIS_KEY_RESULT_PREFIX "%s result", id);
	json_t *result = NULL;

	if (reply != NULL && reply->type == REDIS_REPLY_STRING)
		result = parse_result(reply->str, reply->len);
	freeReplyObject(reply);
	return result;
}

struct waiter {
	redisContext *rc;
};

dcctl_exit waiter_new(dcctl *ctx, waiter **out)
{
	waiter *w = calloc(1, sizeof(*w));
	dcctl_exit code;

	*out = NULL;
	if (w == NULL)
		return out_error(ctx, DCCTL_EXIT_FAILED, "out of memory");
	code = dcctl_redis_connect(ctx, &w->rc);
	if (code != DCCTL_EXIT_OK) {
		free(w);
		return code;
	}

	redisReply *reply = redisCommand(w->rc, "SUBSCRIBE %s", REDIS_RESULT_CHANNEL);
	bool ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY;
	freeReplyObject(reply);
	if (!ok) {
		code = out_error(ctx, DCCTL_EXIT_UNREACHABLE, "subscribing to %s failed: %s",
		                 REDIS_RESULT_CHANNEL, w->rc->errstr);
		waiter_free(w);
		return code;
	}
	*out = w;
	return DCCTL_EXIT_OK;
}

/* Takes a published message off a pub/sub reply; NULL for anything else. */
static json_t *message_result(const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(reply->element[0]->str, "message") != 0 ||
	    reply->element[2]->type != REDIS_REPLY_STRING)
		return NULL;
	return parse_result(reply->element[2]->str, reply->element[2]->len);
}

json_t *waiter_next(waiter *w, double timeout_s, dcctl_exit *code)
{
	double deadline = dcctl_mono() + timeout_s;

	*code = DCCTL_EXIT_OK;
	for (;;) {
		void *raw = NULL;

		/* Replies already buffered come first; poll only when none is left. */
		if (redisReaderGetReply(w->rc->reader, &raw) != REDIS_OK) {
			*code = DCCTL_EXIT_UNREACHABLE;
			return NULL;
		}
		if (raw != NULL) {
			json_t *result = message_result(raw);

			freeReplyObject(raw);
			if (result != NULL)
				return result;
			continue;
		}

		double left = deadline - dcctl_mono();
		if (left <= 0)
			return NULL;
		struct pollfd pfd = {.fd = w->rc->fd, .events = POLLIN};
		int ready = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0 || (ready > 0 && redisBufferRead(w->rc) != REDIS_OK)) {
			*code = DCCTL_EXIT_UNREACHABLE;
			return NULL;
		}
	}
}

void waiter_free(waiter *w)
{
	if (w == NULL)
		return;
	if (w->rc != NULL)
		redisFree(w->rc);
	free(w);
}

void result_print(const json_t *result)
{
	const char *key;
	const json_t *value;

	json_object_foreach((json_t *)result, key, value) {
		char buf[1024];

		out_field(key, "%s", out_scalar(value, buf, sizeof(buf)));
	}
}
