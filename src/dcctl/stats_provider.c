/*
 * The per-provider part of dcctl stats: the call counters the worker keeps
 * per DNS provider and the current state of its shared pacing (token
 * bucket, 429 penalty, requests in flight), read from the keys described in
 * redis_keys.h.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcctl.h"

/*
 * Rate floor under penalties, as a divisor of the configured rate. The
 * worker uses the same default (PACING_DEFAULT_FLOOR_DIVISOR in
 * src/dcworker/pacing.c) because the config has no key for the floor.
 */
#define STATS_PACE_FLOOR_DIVISOR 16.0

/* Maximum key length: prefix, provider name (config allows 1 to 64 bytes) and suffix. */
#define STATS_KEY_MAX 160

/*
 * Reads a pacing snapshot without changing it. KEYS: bucket, penalty,
 * in-flight set. ARGV: rate, burst, floor. Applies the worker's refill rule
 * (the effective rate is rate / 2^level, at least the floor, and the bucket
 * size shrinks in the same ratio) to the stored tokens at Redis TIME.
 * Returns {level, effective rate, tokens now or "" when no bucket exists,
 * live in-flight leases, penalty ms left or -2 when none}; numbers that may
 * be fractions are strings.
 */
static const char pace_script[] =
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
	"local shown = ''\n"
	"if tokens ~= nil and ts ~= nil then\n"
	"  if now > ts then tokens = tokens + (now - ts) * eff / 1000 end\n"
	"  if tokens > cap then tokens = cap end\n"
	"  shown = tostring(tokens)\n"
	"end\n"
	"local inflight = redis.call('ZCOUNT', KEYS[3], '(' .. math.floor(now), '+inf')\n"
	"return {level, tostring(eff), shown, inflight, redis.call('PTTL', KEYS[2])}\n";

/* Reads HASH KEY (status -> count) into a JSON object; NULL when the key does not exist. */
static json_t *read_counts(redisContext *rc, const char *key)
{
	redisReply *reply = redisCommand(rc, "HGETALL %s", key);
	json_t *counts = NULL;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
		counts = json_object();
		for (size_t k = 0; k + 1 < reply->elements; k += 2) {
			long count = 0;

			if (reply->element[k]->type != REDIS_REPLY_STRING ||
			    reply->element[k + 1]->type != REDIS_REPLY_STRING ||
			    !dcctl_parse_long(reply->element[k + 1]->str, 0, LONG_MAX, &count))
				continue;
			json_object_set_new(counts, reply->element[k]->str, json_integer(count));
		}
	}
	freeReplyObject(reply);
	return counts;
}

static double reply_double(const redisReply *r)
{
	if (r->type == REDIS_REPLY_INTEGER)
		return (double)r->integer;
	if (r->type == REDIS_REPLY_STRING && r->len > 0)
		return strtod(r->str, NULL);
	return -1;
}

/* Runs pace_script for provider P; NULL when Redis returned an error or P has no rate. */
static json_t *read_pacing(redisContext *rc, const config_provider *p)
{
	char bucket[STATS_KEY_MAX], penalty[STATS_KEY_MAX], inflight[STATS_KEY_MAX];
	char rate[32], burst[32], floor_rate[32];
	json_t *pacing = NULL;

	/* The worker requires a rate above 0 (pacing_limits); the script divides by it. */
	if (p->rate <= 0)
		return NULL;
	snprintf(bucket, sizeof(bucket), REDIS_KEY_PACE_PREFIX "%s", p->name);
	snprintf(penalty, sizeof(penalty), REDIS_KEY_PACE_PREFIX "%s" REDIS_KEY_PACE_PENALTY_SUFFIX,
	         p->name);
	snprintf(inflight, sizeof(inflight), REDIS_KEY_PACE_PREFIX "%s" REDIS_KEY_PACE_INFLIGHT_SUFFIX,
	         p->name);
	snprintf(rate, sizeof(rate), "%.17g", p->rate);
	snprintf(burst, sizeof(burst), "%ld", p->burst);
	snprintf(floor_rate, sizeof(floor_rate), "%.17g", p->rate / STATS_PACE_FLOOR_DIVISOR);

	const char *argv[] = {"EVAL", pace_script, "3", bucket, penalty, inflight, rate, burst,
	                      floor_rate};
	redisReply *reply = redisCommandArgv(rc, 9, argv, NULL);
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
		goto out;

	redisReply **e = reply->element;
	double tokens = reply_double(e[2]);
	double penalty_ms = reply_double(e[4]);
	pacing = json_pack("{s:f, s:f, s:I, s:o, s:I, s:I, s:o}", "rate", p->rate, "effective_rate",
	                   reply_double(e[1]), "penalty_level", (json_int_t)reply_double(e[0]),
	                   "tokens", tokens >= 0 ? json_real(tokens) : json_null(), "burst",
	                   (json_int_t)p->burst, "in_flight", (json_int_t)reply_double(e[3]),
	                   "penalty_ms_left", penalty_ms >= 0 ? json_integer((json_int_t)penalty_ms)
	                                                      : json_null());
	if (pacing != NULL)
		json_object_set_new(pacing, "max_concurrency", json_integer(p->max_concurrency));
out:
	freeReplyObject(reply);
	return pacing;
}

json_t *stats_provider(redisContext *rc, const config_provider *p, int64_t now_ms)
{
	char key[STATS_KEY_MAX];

	snprintf(key, sizeof(key), REDIS_KEY_PROVIDER_CALLS_PREFIX "%s", p->name);
	json_t *calls = read_counts(rc, key);

	/* The worker counts per minute under the Unix time at which the minute started. */
	snprintf(key, sizeof(key), REDIS_KEY_PROVIDER_CALLS_PREFIX "%s:%lld", p->name,
	         (long long)(now_ms / 60000 * 60));
	json_t *minute = read_counts(rc, key);
	json_t *pacing = read_pacing(rc, p);

	return json_pack("{s:o, s:o, s:o}", "calls", calls != NULL ? calls : json_object(),
	                 "calls_this_minute", minute != NULL ? minute : json_object(), "pacing",
	                 pacing != NULL ? pacing : json_null());
}

/* Formats a status -> count object as "200=5 429=1" into buf. */
static const char *counts_text(const json_t *counts, char *buf, size_t size)
{
	const char *status;
	json_t *n;
	size_t used = 0;

	buf[0] = '\0';
	json_object_foreach((json_t *)counts, status, n) {
		int written = snprintf(buf + used, size - used, "%s%s=%" JSON_INTEGER_FORMAT,
		                       used > 0 ? " " : "", status, json_integer_value(n));

		if (written < 0 || (size_t)written >= size - used)
			break;
		used += (size_t)written;
	}
	return used > 0 ? buf : "-";
}

void stats_provider_print(const json_t *providers)
{
	const char *headers[] = {"PROVIDER", "CALLS", "THIS MINUTE", "RATE/S", "PENALTY", "TOKENS",
	                         "IN FLIGHT"};
	out_table *t = out_table_new(7, headers);
	const char *name;
	json_t *p;

	json_object_foreach((json_t *)providers, name, p) {
		char calls[256], minute[256], rate[48], penalty[24], tokens[48], flight[48];
		const json_t *pacing = json_object_get(p, "pacing");

		if (!json_is_object(pacing)) {
			const char *cells[] = {name,
			                       counts_text(json_object_get(p, "calls"), calls, sizeof(calls)),
			                       counts_text(json_object_get(p, "calls_this_minute"), minute,
			                                   sizeof(minute)),
			                       "-", "-", "-", "-"};
			out_table_add(t, cells);
			continue;
		}
		snprintf(rate, sizeof(rate), "%.3g/%.3g",
		         json_real_value(json_object_get(pacing, "effective_rate")),
		         json_real_value(json_object_get(pacing, "rate")));
		snprintf(penalty, sizeof(penalty), "%" JSON_INTEGER_FORMAT,
		         json_integer_value(json_object_get(pacing, "penalty_level")));
		const json_t *tokens_value = json_object_get(pacing, "tokens");
		if (json_is_real(tokens_value))
			snprintf(tokens, sizeof(tokens), "%.1f", json_real_value(tokens_value));
		else
			snprintf(tokens, sizeof(tokens), "full");
		snprintf(flight, sizeof(flight), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
		         json_integer_value(json_object_get(pacing, "in_flight")),
		         json_integer_value(json_object_get(pacing, "max_concurrency")));
		const char *cells[] = {name,
		                       counts_text(json_object_get(p, "calls"), calls, sizeof(calls)),
		                       counts_text(json_object_get(p, "calls_this_minute"), minute,
		                                   sizeof(minute)),
		                       rate, penalty, tokens, flight};
		out_table_add(t, cells);
	}
	out_table_print(t, stdout);
	out_table_free(t);
}
