/*
 * JSON-lines logger with secret redaction and rate limiting of repeats.
 * The filter order (redact, then truncate, then repair UTF-8) is explained
 * in log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

/* Slots of the repeat counter; a collision only restarts a key's count. */
#define LOG_RATE_SLOTS 64
/* Bytes of a format string kept to tell two keys with one hash apart. */
#define LOG_RATE_KEY_MAX 96

static const char redacted[] = "[redacted]";

typedef struct rate_slot {
	bool used;
	log_level level;
	uint64_t hash;
	char key[LOG_RATE_KEY_MAX];
	int64_t window_start_ms;
	unsigned count;      /* lines seen in the current window */
	unsigned suppressed; /* lines dropped in the current window */
	char *sample;        /* the first dropped line, formatted; NULL when none */
} rate_slot;

struct log_ctx {
	FILE *out;
	log_level level;
	char **secrets;
	size_t secrets_count;
	size_t secrets_cap;
	log_clock_fn clock;
	void *clock_arg;
	rate_slot slots[LOG_RATE_SLOTS];
	size_t pending;      /* slots with suppressed > 0 */
};

static const char *const level_names[LOG_LEVEL_COUNT] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

/* Query and JSON keys whose values are always secrets. */
static const char *const secret_keys[] = {"client_secret", "refresh_token", "access_token",
                                          "code"};

static int64_t monotonic_ms(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *log_level_name(log_level level)
{
	if ((unsigned)level >= LOG_LEVEL_COUNT)
		return "unknown";
	return level_names[level];
}

common_status log_level_parse(const char *name, log_level *level)
{
	if (name == NULL)
		return COMMON_ERR_INVALID;
	for (int i = 0; i < LOG_LEVEL_COUNT; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level = (log_level)i;
			return COMMON_OK;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*level = LOG_LEVEL_WARN;
		return COMMON_OK;
	}
	return COMMON_ERR_INVALID;
}

log_ctx *log_ctx_new(FILE *out, log_level min_level)
{
	log_ctx *log = calloc(1, sizeof(*log));
	if (log == NULL)
		return NULL;
	log->out = out;
	log->level = min_level;
	log->clock = monotonic_ms;
	return log;
}

void log_ctx_free(log_ctx *log)
{
	if (log == NULL)
		return;
	log_flush_suppressed(log);
	for (size_t i = 0; i < log->secrets_count; i++) {
		OPENSSL_cleanse(log->secrets[i], strlen(log->secrets[i]));
		free(log->secrets[i]);
	}
	free(log->secrets);
	free(log);
}

void log_set_level(log_ctx *log, log_level level)
{
	log->level = level;
}

bool log_enabled(const log_ctx *log, log_level level)
{
	return log != NULL && level >= log->level && level < LOG_LEVEL_COUNT;
}

void log_set_clock(log_ctx *log, log_clock_fn clock, void *arg)
{
	log->clock = clock != NULL ? clock : monotonic_ms;
	log->clock_arg = arg;
}

common_status log_add_secret(log_ctx *log, const char *secret)
{
	if (secret == NULL || strlen(secret) < LOG_SECRET_MIN_LEN)
		return COMMON_ERR_INVALID;

	if (log->secrets_count == log->secrets_cap) {
		size_t cap = log->secrets_cap == 0 ? 8 : log->secrets_cap * 2;
		char **grown = realloc(log->secrets, cap * sizeof(*grown));
		if (grown == NULL)
			return COMMON_ERR_NOMEM;
		log->secrets = grown;
		log->secrets_cap = cap;
	}
	char *copy = strdup(secret);
	if (copy == NULL)
		return COMMON_ERR_NOMEM;
	log->secrets[log->secrets_count++] = copy;
	return COMMON_OK;
}

void log_remove_secret(log_ctx *log, const char *secret)
{
	if (log == NULL || secret == NULL)
		return;
	for (size_t i = 0; i < log->secrets_count; i++) {
		if (strcmp(log->secrets[i], secret) != 0)
			continue;
		OPENSSL_cleanse(log->secrets[i], strlen(log->secrets[i]));
		free(log->secrets[i]);
		log->secrets[i] = log->secrets[--log->secrets_count];
		return;
	}
}

/* A growable string; every append reports failure through ok. */
typedef struct strbuf {
	char *data;
	size_t len;
	size_t cap;
	bool ok;
} strbuf;

static void sb_append(strbuf *sb, const char *s, size_t n)
{
	if (!sb->ok)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap == 0 ? 64 : sb->cap;
		while (cap < sb->len + n + 1)
			cap *= 2;
		char *grown = realloc(sb->data, cap);
		if (grown == NULL) {
			sb->ok = false;
			return;
		}
		sb->data = grown;
		sb->cap = cap;
	}
	memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

/* Returns sb's string, or NULL (and frees it) when an append failed. */
static char *sb_finish(strbuf *sb)
{
	if (!sb->ok) {
		free(sb->data);
		return NULL;
	}
	if (sb->data == NULL)
		return strdup("");
	return sb->data;
}

/* Returns a copy of text with every occurrence of needle replaced by "[redacted]". */
static char *replace_all(char *text, const char *needle)
{
	size_t needle_len = strlen(needle);
	strbuf sb = {.ok = true};
	const char *p = text;
	const char *hit;
	while ((hit = strstr(p, needle)) != NULL) {
		sb_append(&sb, p, (size_t)(hit - p));
		sb_append(&sb, redacted, sizeof(redacted) - 1);
		p = hit + needle_len;
	}
	sb_append(&sb, p, strlen(p));
	return sb_finish(&sb);
}

static bool is_word_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Ends of a query value: separators, quotes, whitespace and markup. */
static bool ends_query_value(char c)
{
	return c == '\0' || strchr("&#;,\"'<> \t\r\n", c) != NULL;
}

static bool is_token68_byte(char c)
{
	return is_word_byte(c) || (c != '\0' && strchr("-.~+/=", c) != NULL);
}

/*
 * If a secret key starts at p (as key= in a query, or "key": in JSON) and
 * is not the tail of a longer word, returns the length of the key part
 * including the separator and sets *json for the JSON form; else 0.
 */
static size_t match_secret_key(const char *text, const char *p, bool *json)
{
	for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++) {
		const char *key = secret_keys[i];
		size_t key_len = strlen(key);

		/* Query form: key= after a non-word byte. */
		if ((p == text || !is_word_byte(p[-1])) && strncmp(p, key, key_len) == 0 &&
		    p[key_len] == '=') {
			*json = false;
			return key_len + 1;
		}

		/* JSON form: "key" then optional spaces, a colon, spaces and a quote. */
		if (p[0] == '"' && strncmp(p + 1, key, key_len) == 0 && p[key_len + 1] == '"') {
			const char *q = p + key_len + 2;
			while (*q == ' ')
				q++;
			if (*q != ':')
				continue;
			q++;
			while (*q == ' ')
				q++;
			if (*q != '"')
				continue;
			*json = true;
			return (size_t)(q + 1 - p);
		}
	}
	return 0;
}

/* Replaces the values of secret keys and bearer tokens with "[redacted]". */
static char *redact_keys(const char *text)
{
	strbuf sb = {.ok = true};
	const char *p = text;
	while (*p != '\0') {
		bool json = false;
		size_t key_len = match_secret_key(text, p, &json);
		if (key_len > 0) {
			sb_append(&sb, p, key_len);
			p += key_len;
			const char *end = p;
			if (json) {
				while (*end != '\0' && *end != '"')
					end += end[0] == '\\' && end[1] != '\0' ? 2 : 1;
			} else {
				while (!ends_query_value(*end))
					end++;
			}
			if (end > p)
				sb_append(&sb, redacted, sizeof(redacted) - 1);
			p = end;
			continue;
		}

		if (strncasecmp(p, "Bearer ", 7) == 0 && (p == text || !is_word_byte(p[-1]))) {
			sb_append(&sb, p, 7);
			p += 7;
			const char *end = p;
			while (is_token68_byte(*end))
				end++;
			if (end > p)
				sb_append(&sb, redacted, sizeof(redacted) - 1);
			p = end;
			continue;
		}

		sb_append(&sb, p, 1);
		p++;
	}
	return sb_finish(&sb);
}

char *log_redact(const log_ctx *log, const char *text)
{
	char *current = strdup(text != NULL ? text : "");
	if (current == NULL)
		return NULL;

	for (size_t i = 0; log != NULL && i < log->secrets_count; i++) {
		if (strstr(current, log->secrets[i]) == NULL)
			continue;
		char *next = replace_all(current, log->secrets[i]);
		OPENSSL_cleanse(current, strlen(current));
		free(current);
		if (next == NULL)
			return NULL;
		current = next;
	}

	char *result = redact_keys(current);
	OPENSSL_cleanse(current, strlen(current));
	free(current);
	return result;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid. */
static size_t utf8_sequence_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (p[0] == 0xe0 && p[1] < 0xa0)
			return 0; /* overlong */
		if (p[0] == 0xed && p[1] >= 0xa0)
			return 0; /* UTF-16 surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		if (p[0] == 0xf0 && p[1] < 0x90)
			return 0; /* overlong */
		if (p[0] == 0xf4 && p[1] >= 0x90)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0;
}

/*
 * Cuts text in place to at most max bytes of valid UTF-8, ending in "..."
 * when cut; invalid bytes become '?'.
 */
static void truncate_utf8(char *text, size_t max)
{
	unsigned char *p = (unsigned char *)text;
	size_t len = strlen(text);
	size_t limit = len > max ? max - 3 : len;
	size_t i = 0;
	while (i < len) {
		size_t n = utf8_sequence_len(p + i);
		if (n == 0) {
			p[i] = '?';
			n = 1;
		}
		if (i + n > limit)
			break;
		i += n;
	}
	if (i < len) {
		memcpy(text + i, "...", 4);
		return;
	}
	text[i] = '\0';
}

/* Adds key with a filtered copy of value to obj; skips NULL values. */
static void set_string(const log_ctx *log, json_t *obj, const char *key, const char *value,
                       size_t max)
{
	if (value == NULL)
		return;
	char *clean = log_redact(log, value);
	if (clean == NULL)
		return;
	truncate_utf8(clean, max);
	json_object_set_new(obj, key, json_string(clean));
	free(clean);
}

static void format_time(char *buf, size_t size)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Builds and writes one line; msg is the formatted, unfiltered message. */
static void emit(log_ctx *log, log_level level, const log_fields *fields, const char *msg)
{
	json_t *obj = json_object();
	if (obj == NULL)
		return;

	char now[40];
	format_time(now, sizeof(now));
	json_object_set_new(obj, "time", json_string(now));
	json_object_set_new(obj, "level", json_string(log_level_name(level)));
	set_string(log, obj, "msg", msg, LOG_MSG_MAX);

	if (fields != NULL) {
		set_string(log, obj, "job_id", fields->job_id, LOG_FIELD_MAX);
		set_string(log, obj, "action", fields->action, LOG_FIELD_MAX);
		set_string(log, obj, "type", fields->type, LOG_FIELD_MAX);
		set_string(log, obj, "domain", fields->domain, LOG_FIELD_MAX);
		set_string(log, obj, "dns_provider", fields->dns_provider, LOG_FIELD_MAX);
		if (fields->attempt > 0)
			json_object_set_new(obj, "attempt", json_integer(fields->attempt));
		if (fields->http_status > 0)
			json_object_set_new(obj, "http_status", json_integer(fields->http_status));
		if (fields->has_duration)
			json_object_set_new(obj, "duration_ms", json_integer(fields->duration_ms));
		set_string(log, obj, "error", fields->error, LOG_FIELD_MAX);
	}

	char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (line == NULL)
		return;
	size_t len = strlen(line);
	line[len] = '\n';
	fwrite(line, 1, len + 1, log->out);
	fflush(log->out);
	line[len] = '\0';
	free(line);
}

static uint64_t hash_key(log_level level, const char *fmt)
{
	uint64_t h = 14695981039346656037ULL ^ (uint64_t)level;
	for (const unsigned char *p = (const unsigned char *)fmt; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h;
}

/* Writes the summary of SLOT's dropped lines, quoting the first of them, and resets it. */
static void emit_suppressed(log_ctx *log, rate_slot *slot)
{
	char *msg = NULL;
	int n = asprintf(&msg, "suppressed %u similar lines like: %s", slot->suppressed,
	                 slot->sample != NULL ? slot->sample : "(no memory for the line)");

	if (n >= 0) {
		emit(log, slot->level, NULL, msg);
		OPENSSL_cleanse(msg, (size_t)n);
		free(msg);
	}
	if (slot->sample != NULL) {
		OPENSSL_cleanse(slot->sample, strlen(slot->sample));
		free(slot->sample);
		slot->sample = NULL;
	}
	slot->suppressed = 0;
	log->pending--;
}

/* Writes the summaries whose interval has passed. log_write calls it first. */
static void flush_due(log_ctx *log)
{
	if (log->pending == 0)
		return;
	int64_t now = log->clock(log->clock_arg);
	for (size_t i = 0; i < LOG_RATE_SLOTS && log->pending > 0; i++) {
		rate_slot *slot = &log->slots[i];

		if (!slot->used || slot->suppressed == 0 ||
		    now - slot->window_start_ms < LOG_RATE_INTERVAL_MS)
			continue;
		emit_suppressed(log, slot);
		slot->window_start_ms = now;
		slot->count = 0;
	}
}

/* Counts line MSG of (level, fmt); returns false when it must be dropped. */
static bool rate_allow(log_ctx *log, log_level level, const char *fmt, const char *msg)
{
	uint64_t hash = hash_key(level, fmt);
	rate_slot *slot = &log->slots[hash % LOG_RATE_SLOTS];
	int64_t now = log->clock(log->clock_arg);

	bool same_key = slot->used && slot->hash == hash && slot->level == level &&
	                strncmp(slot->key, fmt, sizeof(slot->key) - 1) == 0;
	if (!same_key) {
		if (slot->used && slot->suppressed > 0)
			emit_suppressed(log, slot);
		slot->used = true;
		slot->hash = hash;
		slot->level = level;
		snprintf(slot->key, sizeof(slot->key), "%s", fmt);
		slot->window_start_ms = now;
		slot->count = 0;
		slot->suppressed = 0;
	}

	if (now - slot->window_start_ms >= LOG_RATE_INTERVAL_MS) {
		if (slot->suppressed > 0)
			emit_suppressed(log, slot);
		slot->window_start_ms = now;
		slot->count = 0;
	}

	slot->count++;
	if (slot->count > LOG_RATE_BURST) {
		if (slot->suppressed++ == 0) {
			slot->sample = strdup(msg);
			log->pending++;
		}
		return false;
	}
	return true;
}

void log_flush_suppressed(log_ctx *log)
{
	if (log == NULL)
		return;
	for (size_t i = 0; i < LOG_RATE_SLOTS; i++) {
		if (log->slots[i].used && log->slots[i].suppressed > 0)
			emit_suppressed(log, &log->slots[i]);
	}
}

void log_write(log_ctx *log, log_level level, const log_fields *fields, const char *fmt, ...)
{
	if (log == NULL)
		return;
	flush_due(log);
	if (!log_enabled(log, level))
		return;

	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;

	if (rate_allow(log, level, fmt, msg))
		emit(log, level, fields, msg);
	OPENSSL_cleanse(msg, (size_t)n);
	free(msg);
}
