/*
 * Serialization per (DNS provider, zone) with a Redis lease lock. See
 * zone_lock.h for the key and the contract.
 */
#include "zone_lock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis/hiredis.h>

#include "queue_conn.h"

/* "{dc}:zone:" + provider + ":" + zone. */
#define ZONE_LOCK_KEY_MAX (16 + ZONE_LOCK_PROVIDER_MAX + ZONE_LOCK_ZONE_MAX)

struct zone_lock {
	char key[ZONE_LOCK_KEY_MAX];
	char token[ZONE_LOCK_TOKEN_LEN + 1];
};

/*
 * Take the lock. KEYS: lock. ARGV: token, lease_ms. A holder that already
 * has the lock gets its lease restarted. Returns {1, 0} when held, else
 * {0, remaining lease of the holder in ms}.
 */
static const char script_acquire[] =
	"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end\n"
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
	"  return {1, 0}\n"
	"end\n"
	"return {0, redis.call('PTTL', KEYS[1])}\n";

/* Extend the lock. KEYS: lock. ARGV: token, lease_ms. Returns 1 when extended. */
static const char script_renew[] =
	"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
	"return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n";

/* Release the lock. KEYS: lock. ARGV: token. Returns 1 when deleted. */
static const char script_release[] =
	"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
	"return redis.call('DEL', KEYS[1])\n";

typedef struct lock_call {
	zone_lock_cb cb;
	void *arg;
} lock_call;

/* Field use of the queue result: value = held, next_due_ms = wait_ms. */
static void call_done(void *arg, queue_result *qr)
{
	lock_call *call = arg;
	zone_lock_cb cb = call->cb;
	void *cb_arg = call->arg;
	zone_lock_result result;

	free(call);
	memset(&result, 0, sizeof(result));
	result.error = qr->error;
	if (qr->error.status == QUEUE_OK) {
		result.held = qr->value == 1;
		result.wait_ms = qr->next_due_ms;
	}
	cb(cb_arg, &result);
}

static bool name_valid(const char *s, size_t max)
{
	size_t len = s != NULL ? strlen(s) : 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && c != '.' && c != '-' && c != '_')
			return false;
	}
	return true;
}

static bool random_token(char token[ZONE_LOCK_TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[ZONE_LOCK_TOKEN_LEN / 2];

	if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
		return false;
	for (size_t i = 0; i < sizeof(bytes); i++) {
		token[2 * i] = hex[bytes[i] >> 4];
		token[2 * i + 1] = hex[bytes[i] & 0x0f];
	}
	token[ZONE_LOCK_TOKEN_LEN] = '\0';
	return true;
}

zone_lock *zone_lock_new(const char *provider, const char *zone, queue_error *err)
{
	zone_lock *lock;

	if (!name_valid(provider, ZONE_LOCK_PROVIDER_MAX)) {
		queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "provider name is missing or invalid");
		return NULL;
	}
	if (!name_valid(zone, ZONE_LOCK_ZONE_MAX)) {
		queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		           "zone is missing or invalid; pass a lower-case A-label name");
		return NULL;
	}
	lock = calloc(1, sizeof(*lock));
	if (lock == NULL) {
		queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (!random_token(lock->token)) {
		free(lock);
		queue_fail(err, QUEUE_ERR_NOMEM, "getrandom failed; no owner token for the zone lock");
		return NULL;
	}
	snprintf(lock->key, sizeof(lock->key), "{dc}:zone:%s:%s", provider, zone);
	return lock;
}

void zone_lock_free(zone_lock *lock)
{
	free(lock);
}

const char *zone_lock_key(const zone_lock *lock)
{
	return lock->key;
}

/* Reply parsing */

static bool reply_number(const redisReply *r, long long *out)
{
	if (r->type != REDIS_REPLY_INTEGER)
		return false;
	*out = r->integer;
	return true;
}

static void reply_fail(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply->type == REDIS_REPLY_ERROR)
		queue_fail(&result->error, QUEUE_ERR_REDIS,
		           "Redis at %s:%d returned an error to a zone lock script: %.160s", q->host,
		           q->port, reply->str);
	else
		queue_fail(&result->error, QUEUE_ERR_PROTOCOL,
		           "unexpected reply from Redis at %s:%d to a zone lock script", q->host,
		           q->port);
}

static void parse_acquire(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    !reply_number(reply->element[0], &result->value) ||
	    !reply_number(reply->element[1], &result->next_due_ms))
		reply_fail(q, reply, result);
}

static void parse_flag(queue *q, const redisReply *reply, queue_result *result)
{
	if (!reply_number(reply, &result->value))
		reply_fail(q, reply, result);
}

/* Sending */

static queue_status send_script(queue *q, const char *script, const zone_lock *lock,
                                long lease_ms, queue_parse_fn parse, zone_lock_cb cb, void *arg,
                                queue_error *err)
{
	char lease[24];
	const char *argv[6] = {"EVAL", script, "1", NULL, NULL, lease};
	size_t len[6];
	int argc = lease_ms > 0 ? 6 : 5;
	lock_call *call;
	queue_status status;

	if (q == NULL || lock == NULL || cb == NULL)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "queue, lock or callback is missing");
	call = malloc(sizeof(*call));
	if (call == NULL)
		return queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
	call->cb = cb;
	call->arg = arg;

	argv[3] = lock->key;
	argv[4] = lock->token;
	snprintf(lease, sizeof(lease), "%ld", lease_ms);
	for (int i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);
	status = queue_conn_send(q, argc, argv, len, parse, call_done, call, err);
	if (status != QUEUE_OK)
		free(call);
	return status;
}

static bool lease_valid(long lease_ms)
{
	return lease_ms > 0 && lease_ms <= ZONE_LOCK_LEASE_MAX_MS;
}

queue_status zone_lock_acquire(queue *q, const zone_lock *lock, long lease_ms, zone_lock_cb cb,
                               void *arg, queue_error *err)
{
	if (!lease_valid(lease_ms))
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "zone lock lease %ld ms is outside 1 to %ld", lease_ms,
		                  ZONE_LOCK_LEASE_MAX_MS);
	return send_script(q, script_acquire, lock, lease_ms, parse_acquire, cb, arg, err);
}

queue_status zone_lock_renew(queue *q, const zone_lock *lock, long lease_ms, zone_lock_cb cb,
                             void *arg, queue_error *err)
{
	if (!lease_valid(lease_ms))
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "zone lock lease %ld ms is outside 1 to %ld", lease_ms,
		                  ZONE_LOCK_LEASE_MAX_MS);
	return send_script(q, script_renew, lock, lease_ms, parse_flag, cb, arg, err);
}

queue_status zone_lock_release(queue *q, const zone_lock *lock, zone_lock_cb cb, void *arg,
                               queue_error *err)
{
	return send_script(q, script_release, lock, 0, parse_flag, cb, arg, err);
}
