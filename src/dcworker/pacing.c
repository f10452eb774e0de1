/*
 * Pacing per DNS provider in Redis: the Lua scripts, their arguments and the
 * parsing of their replies. See pacing.h for the keys and the contract.
 */
#include "pacing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis/hiredis.h>

#include "queue_conn.h"
#include "redis_keys.h"

/* Floor of the rate under penalties, as a divisor of the configured rate. */
#define PACING_DEFAULT_FLOOR_DIVISOR 16.0
#define PACING_DEFAULT_PENALTY_MS 60000L
/* Maximum key length: "{dc}:pace:" + provider + ":inflight". */
#define PACING_KEY_MAX (16 + PACING_PROVIDER_MAX + 16)
/* Maximum lease of an in-flight slot: one day. */
#define PACING_LEASE_MAX_MS 86400000L

/*
 * Token bucket. KEYS: bucket, penalty. ARGV: rate, burst, min_rate.
 * The effective rate is rate / 2^level, at least min_rate; the bucket size
 * shrinks in the same ratio (at least 1) so a penalized provider gets no
 * full burst. Returns {granted, wait_ms, effective rate as a string, level}.
 */
static const char script_take[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
	"local rate = tonumber(ARGV[1])\n"
	"local burst = tonumber(ARGV[2])\n"
	"local floor = tonumber(ARGV[3])\n"
	"local level = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
	"local eff = rate / (2 ^ level)\n"
	"if eff < floor then eff = floor end\n"
	"local cap = burst * eff / rate\n"
	"if cap < 1 then cap = 1 end\n"
	"local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
	"local tokens = tonumber(b[1])\n"
	"local ts = tonumber(b[2])\n"
	"if tokens == nil or ts == nil then tokens = cap; ts = now end\n"
	"if now > ts then\n"
	"  tokens = tokens + (now - ts) * eff / 1000\n"
	"  ts = now\n"
	"end\n"
	"if tokens > cap then tokens = cap end\n"
	"local granted = 0\n"
	"local wait = 0\n"
	"if tokens >= 1 then\n"
	"  tokens = tokens - 1\n"
	"  granted = 1\n"
	"else\n"
	"  wait = math.ceil((1 - tokens) * 1000 / eff)\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))\n"
	"redis.call('PEXPIRE', KEYS[1], math.ceil(cap * 1000 / eff) + 1000)\n"
	"return {granted, wait, tostring(eff), level}\n";

/*
 * Penalty after a 429. KEYS: bucket, penalty. ARGV: rate, min_rate,
 * penalty_ms, max level. Raises the level while the rate is above the
 * floor, restarts the expiry and empties the bucket. Returns {level,
 * effective rate as a string}.
 */
static const char script_penalize[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
	"local rate = tonumber(ARGV[1])\n"
	"local floor = tonumber(ARGV[2])\n"
	"local level = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
	"if rate / (2 ^ level) > floor and level < tonumber(ARGV[4]) then level = level + 1 end\n"
	"redis.call('SET', KEYS[2], level, 'PX', ARGV[3])\n"
	"redis.call('HSET', KEYS[1], 'tokens', '0', 'ts', tostring(now))\n"
	"redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
	"local eff = rate / (2 ^ level)\n"
	"if eff < floor then eff = floor end\n"
	"return {level, tostring(eff)}\n";

/*
 * In-flight slot. KEYS: inflight set. ARGV: holder, max, lease_ms.
 * Returns {granted, slots held, ms until the oldest lease runs out}.
 */
static const char script_acquire[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local lease = tonumber(ARGV[3])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"local count = redis.call('ZCARD', KEYS[1])\n"
	"if redis.call('ZSCORE', KEYS[1], ARGV[1]) or count < tonumber(ARGV[2]) then\n"
	"  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])\n"
	"  if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end\n"
	"  return {1, redis.call('ZCARD', KEYS[1]), 0}\n"
	"end\n"
	"local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
	"return {0, count, tonumber(first[2]) - now}\n";

/* Slot renewal. KEYS: inflight set. ARGV: holder, lease_ms. Returns 1 when renewed. */
static const char script_renew[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local lease = tonumber(ARGV[2])\n"
	"local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))\n"
	"if expiry == nil then return 0 end\n"
	"if expiry <= now then\n"
	"  redis.call('ZREM', KEYS[1], ARGV[1])\n"
	"  return 0\n"
	"end\n"
	"redis.call('ZADD', KEYS[1], now + lease, ARGV[1])\n"
	"if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end\n"
	"return 1\n";

/* What a call needs once its reply is parsed. */
typedef struct pacing_call {
	pacing_cb cb;
	void *arg;
} pacing_call;

/*
 * Replies are parsed into the queue's result and copied into a
 * pacing_result by call_done. Field use: value = granted, next_due_ms =
 * wait_ms, moved = effective rate in requests per 1000 s, dead_lettered =
 * penalty level, now_ms = slots in flight.
 */
static void call_done(void *arg, queue_result *qr)
{
	pacing_call *call = arg;
	pacing_cb cb = call->cb;
	void *cb_arg = call->arg;
	pacing_result result;

	free(call);
	memset(&result, 0, sizeof(result));
	result.error = qr->error;
	if (qr->error.status == QUEUE_OK) {
		result.granted = qr->value == 1;
		result.wait_ms = qr->next_due_ms;
		result.rate = (double)qr->moved / 1000.0;
		result.penalty_level = qr->dead_lettered;
		result.in_flight = qr->now_ms;
	}
	cb(cb_arg, &result);
}

/* Argument checks and keys */

static bool name_valid(const char *s, size_t max, const char *extra)
{
	size_t len = s != NULL ? strlen(s) : 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && strchr(extra, c) == NULL)
			return false;
	}
	return true;
}

static bool provider_valid(const char *provider)
{
	return name_valid(provider, PACING_PROVIDER_MAX, "_.-");
}

static bool holder_valid(const char *holder)
{
	return name_valid(holder, PACING_HOLDER_MAX, "_.:-");
}

static bool limits_valid(const pacing_limits *limits)
{
	return limits != NULL && isfinite(limits->rate) && limits->rate > 0 &&
	       limits->rate <= 1e6 && limits->burst >= 1 && limits->burst <= 1000000 &&
	       limits->max_concurrency >= 1 && isfinite(limits->min_rate) &&
	       limits->min_rate >= 0 && limits->min_rate <= limits->rate &&
	       limits->penalty_ms >= 0 && limits->penalty_ms <= PACING_LEASE_MAX_MS;
}

static double floor_rate(const pacing_limits *limits)
{
	if (limits->min_rate > 0)
		return limits->min_rate;
	return limits->rate / PACING_DEFAULT_FLOOR_DIVISOR;
}

static long penalty_ms(const pacing_limits *limits)
{
	return limits->penalty_ms > 0 ? limits->penalty_ms : PACING_DEFAULT_PENALTY_MS;
}

static void make_key(char key[PACING_KEY_MAX], const char *provider, const char *suffix)
{
	snprintf(key, PACING_KEY_MAX, REDIS_KEY_PACE_PREFIX "%s%s", provider, suffix);
}

/* Reply parsing */

static bool reply_number(const redisReply *r, long long *out)
{
	char *end;

	if (r->type == REDIS_REPLY_INTEGER) {
		*out = r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
		return false;
	*out = strtoll(r->str, &end, 10);
	return end == r->str + r->len;
}

/* Parse a rate sent as a Lua number string into requests per 1000 s. */
static bool reply_rate(const redisReply *r, long long *out)
{
	char text[64];
	char *end;
	double rate;

	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(text))
		return false;
	memcpy(text, r->str, r->len);
	text[r->len] = '\0';
	rate = strtod(text, &end);
	if (*end != '\0' || !isfinite(rate) || rate < 0 || rate > 1e9)
		return false;
	*out = (long long)(rate * 1000.0 + 0.5); /* no libm: dcworker_core does not link it */
	return true;
}

/* Return true when REPLY is an error or not an array of COUNT elements. */
static bool reply_bad(queue *q, const redisReply *reply, size_t count, queue_result *result)
{
	if (reply->type == REDIS_REPLY_ERROR) {
		queue_fail(&result->error, QUEUE_ERR_REDIS,
		           "Redis at %s:%d returned an error to a pacing script: %.160s", q->host,
		           q->port, reply->str);
		return true;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != count) {
		queue_fail(&result->error, QUEUE_ERR_PROTOCOL,
		           "unexpected reply from Redis at %s:%d to a pacing script", q->host, q->port);
		return true;
	}
	return false;
}

static void protocol_error(queue *q, queue_result *result)
{
	queue_fail(&result->error, QUEUE_ERR_PROTOCOL,
	           "unexpected value in the reply from Redis at %s:%d to a pacing script", q->host,
	           q->port);
}

static void parse_take(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply_bad(q, reply, 4, result))
		return;
	if (!reply_number(reply->element[0], &result->value) ||
	    !reply_number(reply->element[1], &result->next_due_ms) ||
	    !reply_rate(reply->element[2], &result->moved) ||
	    !reply_number(reply->element[3], &result->dead_lettered))
		protocol_error(q, result);
}

static void parse_penalize(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply_bad(q, reply, 2, result))
		return;
	if (!reply_number(reply->element[0], &result->dead_lettered) ||
	    !reply_rate(reply->element[1], &result->moved))
		protocol_error(q, result);
}

static void parse_acquire(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply_bad(q, reply, 3, result))
		return;
	if (!reply_number(reply->element[0], &result->value) ||
	    !reply_number(reply->element[1], &result->now_ms) ||
	    !reply_number(reply->element[2], &result->next_due_ms))
		protocol_error(q, result);
}

static void parse_flag(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply->type == REDIS_REPLY_ERROR) {
		queue_fail(&result->error, QUEUE_ERR_REDIS,
		           "Redis at %s:%d returned an error to a pacing command: %.160s", q->host,
		           q->port, reply->str);
		return;
	}
	if (!reply_number(reply, &result->value))
		protocol_error(q, result);
}

/* Sending */

/* Send ARGV for a pacing call; on failure CB is never called. */
static queue_status send_call(queue *q, int argc, const char **argv, queue_parse_fn parse,
                              pacing_cb cb, void *arg, queue_error *err)
{
	size_t len[12];
	pacing_call *call;
	queue_status status;

	if (q == NULL || cb == NULL)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "queue or callback is missing");
	call = malloc(sizeof(*call));
	if (call == NULL)
		return queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
	call->cb = cb;
	call->arg = arg;
	for (int i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);

	status = queue_conn_send(q, argc, argv, len, parse, call_done, call, err);
	if (status != QUEUE_OK)
		free(call);
	return status;
}

static queue_status invalid(queue_error *err, const char *what)
{
	return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "%s is missing or invalid", what);
}

/* Operations */

pacing_limits pacing_limits_from_config(const config_provider *p)
{
	pacing_limits limits = {
		.rate = p->rate,
		.burst = p->burst,
		.max_concurrency = p->max_concurrency,
		.min_rate = 0,
		.penalty_ms = 0,
	};

	return limits;
}

queue_status pacing_take(queue *q, const char *provider, const pacing_limits *limits,
                         pacing_cb cb, void *arg, queue_error *err)
{
	char bucket[PACING_KEY_MAX];
	char penalty[PACING_KEY_MAX];
	char rate[32];
	char burst[24];
	char floor[32];

	if (!provider_valid(provider))
		return invalid(err, "provider name");
	if (!limits_valid(limits))
		return invalid(err, "pacing limits");

	make_key(bucket, provider, "");
	make_key(penalty, provider, ":penalty");
	snprintf(rate, sizeof(rate), "%.17g", limits->rate);
	snprintf(burst, sizeof(burst), "%ld", limits->burst);
	snprintf(floor, sizeof(floor), "%.17g", floor_rate(limits));
	const char *argv[] = {"EVAL", script_take, "2", bucket, penalty, rate, burst, floor};
	return send_call(q, 8, argv, parse_take, cb, arg, err);
}

queue_status pacing_penalize(queue *q, const char *provider, const pacing_limits *limits,
                             pacing_cb cb, void *arg, queue_error *err)
{
	char bucket[PACING_KEY_MAX];
	char penalty[PACING_KEY_MAX];
	char rate[32];
	char floor[32];
	char ms[24];
	char level_max[8];

	if (!provider_valid(provider))
		return invalid(err, "provider name");
	if (!limits_valid(limits))
		return invalid(err, "pacing limits");

	make_key(bucket, provider, "");
	make_key(penalty, provider, ":penalty");
	snprintf(rate, sizeof(rate), "%.17g", limits->rate);
	snprintf(floor, sizeof(floor), "%.17g", floor_rate(limits));
	snprintf(ms, sizeof(ms), "%ld", penalty_ms(limits));
	snprintf(level_max, sizeof(level_max), "%d", PACING_PENALTY_LEVEL_MAX);
	const char *argv[] = {"EVAL", script_penalize, "2", bucket, penalty, rate, floor, ms,
	                      level_max};
	return send_call(q, 9, argv, parse_penalize, cb, arg, err);
}

queue_status pacing_acquire(queue *q, const char *provider, const pacing_limits *limits,
                            const char *holder, long lease_ms, pacing_cb cb, void *arg,
                            queue_error *err)
{
	char key[PACING_KEY_MAX];
	char max[24];
	char lease[24];

	if (!provider_valid(provider))
		return invalid(err, "provider name");
	if (!limits_valid(limits))
		return invalid(err, "pacing limits");
	if (!holder_valid(holder))
		return invalid(err, "in-flight holder");
	if (lease_ms <= 0 || lease_ms > PACING_LEASE_MAX_MS)
		return invalid(err, "in-flight lease");

	make_key(key, provider, ":inflight");
	snprintf(max, sizeof(max), "%ld", limits->max_concurrency);
	snprintf(lease, sizeof(lease), "%ld", lease_ms);
	const char *argv[] = {"EVAL", script_acquire, "1", key, holder, max, lease};
	return send_call(q, 7, argv, parse_acquire, cb, arg, err);
}

queue_status pacing_renew(queue *q, const char *provider, const char *holder, long lease_ms,
                          pacing_cb cb, void *arg, queue_error *err)
{
	char key[PACING_KEY_MAX];
	char lease[24];

	if (!provider_valid(provider))
		return invalid(err, "provider name");
	if (!holder_valid(holder))
		return invalid(err, "in-flight holder");
	if (lease_ms <= 0 || lease_ms > PACING_LEASE_MAX_MS)
		return invalid(err, "in-flight lease");

	make_key(key, provider, ":inflight");
	snprintf(lease, sizeof(lease), "%ld", lease_ms);
	const char *argv[] = {"EVAL", script_renew, "1", key, holder, lease};
	return send_call(q, 6, argv, parse_flag, cb, arg, err);
}

queue_status pacing_release(queue *q, const char *provider, const char *holder, pacing_cb cb,
                            void *arg, queue_error *err)
{
	char key[PACING_KEY_MAX];

	if (!provider_valid(provider))
		return invalid(err, "provider name");
	if (!holder_valid(holder))
		return invalid(err, "in-flight holder");

	make_key(key, provider, ":inflight");
	const char *argv[] = {"ZREM", key, holder};
	return send_call(q, 3, argv, parse_flag, cb, arg, err);
}

bool pacing_new_holder(char holder[PACING_HOLDER_RANDOM_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[PACING_HOLDER_RANDOM_LEN / 2];

	if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
		return false;
	for (size_t i = 0; i < sizeof(bytes); i++) {
		holder[2 * i] = hex[bytes[i] >> 4];
		holder[2 * i + 1] = hex[bytes[i] & 0x0f];
	}
	holder[PACING_HOLDER_RANDOM_LEN] = '\0';
	return true;
}
