/*
 * INI config loading. Every key is described once in a table (section,
 * name, kind, member offset, range); the file parser, the environment
 * overrides and config_print all walk the same tables.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

extern char **environ;

#define ERROR_CODE "invalid_config"
/* (section, key) pairs remembered to reject a key set twice. */
#define SEEN_MAX 512
/* Characters of a value quoted in error messages. */
#define QUOTE_CHARS 80

typedef enum key_kind {
	KIND_STRING,
	KIND_LONG,
	KIND_DOUBLE,
	KIND_BOOL,
	KIND_LEVEL,
	KIND_PLACEMENT,
	KIND_QUEUES,
	KIND_SECRET, /* only from the environment; an error in the file */
} key_kind;

typedef struct key_def {
	const char *name;
	key_kind kind;
	size_t offset; /* in config, or in config_provider for provider keys */
	long min;
	long max;
	const char *secret_env_key;  /* KIND_SECRET: the key naming its variable */
	const char *secret_file_key; /* KIND_SECRET: the key naming its file */
} key_def;

typedef struct section_def {
	const char *name;
	const key_def *keys;
	size_t count;
} section_def;

#define C(member) offsetof(config, member)
#define P(member) offsetof(config_provider, member)

static const key_def redis_keys[] = {
	{"url", KIND_STRING, C(redis.url), 0, 0, NULL, NULL},
	{"host", KIND_STRING, C(redis.host), 0, 0, NULL, NULL},
	{"port", KIND_LONG, C(redis.port), 1, 65535, NULL, NULL},
	{"db", KIND_LONG, C(redis.db), 0, 15, NULL, NULL},
	{"password_env", KIND_STRING, C(redis.password_env), 0, 0, NULL, NULL},
	{"password_file", KIND_STRING, C(redis.password_file), 0, 0, NULL, NULL},
	{"password", KIND_SECRET, C(redis.password), 0, 0, "password_env", "password_file"},
};

static const key_def postgres_keys[] = {
	{"conninfo", KIND_STRING, C(postgres.conninfo), 0, 0, NULL, NULL},
	{"password_env", KIND_STRING, C(postgres.password_env), 0, 0, NULL, NULL},
	{"password_file", KIND_STRING, C(postgres.password_file), 0, 0, NULL, NULL},
	{"password", KIND_SECRET, C(postgres.password), 0, 0, "password_env", "password_file"},
};

static const key_def worker_keys[] = {
	{"template_provider_id", KIND_STRING, C(worker.template_provider_id), 0, 0, NULL, NULL},
	{"processes", KIND_LONG, C(worker.processes), 1, 1024, NULL, NULL},
	{"in_flight", KIND_LONG, C(worker.in_flight), 1, 100000, NULL, NULL},
	{"visibility_timeout_s", KIND_LONG, C(worker.visibility_timeout_s), 5, 86400, NULL, NULL},
	{"max_reclaims", KIND_LONG, C(worker.max_reclaims), 1, 1000, NULL, NULL},
	{"grace_period_s", KIND_LONG, C(worker.grace_period_s), 0, 3600, NULL, NULL},
	{"result_ttl_s", KIND_LONG, C(worker.result_ttl_s), 60, 31536000, NULL, NULL},
	{"dead_letter_max", KIND_LONG, C(worker.dead_letter_max), 1, 100000000, NULL, NULL},
	{"queues", KIND_QUEUES, 0, 0, 0, NULL, NULL},
	{"max_attempts", KIND_LONG, C(worker.max_attempts), 1, 100, NULL, NULL},
	{"backoff_base_ms", KIND_LONG, C(worker.backoff_base_ms), 1, 3600000, NULL, NULL},
	{"backoff_cap_ms", KIND_LONG, C(worker.backoff_cap_ms), 1, 86400000, NULL, NULL},
	{"refresh_skew_s", KIND_LONG, C(worker.refresh_skew_s), 0, 86400, NULL, NULL},
	{"keepalive_days", KIND_LONG, C(worker.keepalive_days), 0, 3650, NULL, NULL},
	{"reconcile_interval_s", KIND_LONG, C(worker.reconcile_interval_s), 0, 86400, NULL, NULL},
	{"reconcile_grace_s", KIND_LONG, C(worker.reconcile_grace_s), 1, 86400, NULL, NULL},
	{"token_key_file", KIND_STRING, C(worker.token_key_file), 0, 0, NULL, NULL},
	{"migrations_dir", KIND_STRING, C(worker.migrations_dir), 0, 0, NULL, NULL},
};

static const key_def log_keys[] = {
	{"level", KIND_LEVEL, C(log.level), 0, 0, NULL, NULL},
};

static const key_def metrics_keys[] = {
	{"listen", KIND_STRING, C(metrics.listen), 0, 0, NULL, NULL},
};

static const key_def dns_keys[] = {
	{"servers", KIND_STRING, C(dns.servers), 0, 0, NULL, NULL},
	{"timeout_ms", KIND_LONG, C(dns.timeout_ms), 100, 60000, NULL, NULL},
};

static const key_def guard_keys[] = {
	{"allow_networks", KIND_STRING, C(guard.allow_networks), 0, 0, NULL, NULL},
	{"allow_ports", KIND_STRING, C(guard.allow_ports), 0, 0, NULL, NULL},
	{"ca_file", KIND_STRING, C(guard.ca_file), 0, 0, NULL, NULL},
};

static const key_def provider_keys[] = {
	{"provider_id", KIND_STRING, P(provider_id), 0, 0, NULL, NULL},
	{"url_api", KIND_STRING, P(url_api), 0, 0, NULL, NULL},
	{"client_id", KIND_STRING, P(client_id), 0, 0, NULL, NULL},
	{"client_secret_env", KIND_STRING, P(client_secret_env), 0, 0, NULL, NULL},
	{"client_secret_file", KIND_STRING, P(client_secret_file), 0, 0, NULL, NULL},
	{"client_secret", KIND_SECRET, P(client_secret), 0, 0, "client_secret_env",
	 "client_secret_file"},
	{"token_placement", KIND_PLACEMENT, P(token_placement), 0, 0, NULL, NULL},
	{"service_id_in_path", KIND_BOOL, P(service_id_in_path), 0, 0, NULL, NULL},
	/* 0 turns the shared rate limit off for this provider. */
	{"rate", KIND_DOUBLE, P(rate), 0, 100000, NULL, NULL},
	{"burst", KIND_LONG, P(burst), 1, 100000, NULL, NULL},
	{"max_concurrency", KIND_LONG, P(max_concurrency), 1, 100000, NULL, NULL},
	{"connect_timeout_ms", KIND_LONG, P(connect_timeout_ms), 100, 300000, NULL, NULL},
	{"total_timeout_ms", KIND_LONG, P(total_timeout_ms), 100, 3600000, NULL, NULL},
};

#define SECTION(name, keys) {name, keys, sizeof(keys) / sizeof(keys[0])}

static const section_def sections[] = {
	SECTION("redis", redis_keys),     SECTION("postgres", postgres_keys),
	SECTION("worker", worker_keys),   SECTION("log", log_keys),
	SECTION("metrics", metrics_keys), SECTION("dns", dns_keys),
	SECTION("guard", guard_keys),
};

static const section_def provider_section = SECTION("provider", provider_keys);

#define SECTIONS_COUNT (sizeof(sections) / sizeof(sections[0]))

static const char *const placement_names[] = {"default", "query", "json", "form"};

/* Parser state shared by the line reader and the key handler. */
typedef struct parse_state {
	config *cfg;
	FILE *file;
	const char *path;
	int line;                /* line last returned by the reader */
	bool failed;
	common_error *err;
	char *seen[SEEN_MAX];    /* "section\nkey" of every key set from the file */
	int seen_line[SEEN_MAX];
	size_t seen_count;
} parse_state;

/* ---- Helpers ------------------------------------------------------------ */

static const section_def *find_section(const char *name)
{
	for (size_t i = 0; i < SECTIONS_COUNT; i++) {
		if (strcmp(sections[i].name, name) == 0)
			return &sections[i];
	}
	return NULL;
}

static const key_def *find_key(const section_def *section, const char *name)
{
	for (size_t i = 0; i < section->count; i++) {
		if (strcmp(section->keys[i].name, name) == 0)
			return &section->keys[i];
	}
	return NULL;
}

static bool valid_provider_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 64)
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_' && *p != '-')
			return false;
	}
	return true;
}

static void provider_defaults(config_provider *p)
{
	p->token_placement = DC_TOKEN_PARAMS_DEFAULT;
	p->rate = 10;
	p->burst = 20;
	p->max_concurrency = 16;
	p->connect_timeout_ms = 5000;
	p->total_timeout_ms = 15000;
}

/* Returns the provider called name, creating it; NULL when the table is full. */
static config_provider *get_provider(config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->providers_count; i++) {
		if (strcmp(cfg->providers[i].name, name) == 0)
			return &cfg->providers[i];
	}
	if (cfg->providers_count == CONFIG_PROVIDERS_MAX)
		return NULL;
	config_provider *p = &cfg->providers[cfg->providers_count];
	memset(p, 0, sizeof(*p));
	p->name = strdup(name);
	if (p->name == NULL)
		return NULL;
	provider_defaults(p);
	cfg->providers_count++;
	return p;
}

static void set_defaults(config *cfg)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	cfg->redis.port = 6379;
	cfg->worker.processes = cores > 0 ? cores : 1;
	cfg->worker.in_flight = 256;
	cfg->worker.visibility_timeout_s = 300;
	cfg->worker.max_reclaims = 5;
	cfg->worker.grace_period_s = 30;
	cfg->worker.result_ttl_s = 86400;
	cfg->worker.dead_letter_max = 100000;
	cfg->worker.max_attempts = 8;
	cfg->worker.backoff_base_ms = 1000;
	cfg->worker.backoff_cap_ms = 300000;
	cfg->worker.refresh_skew_s = 300;
	cfg->worker.keepalive_days = 20;
	cfg->worker.reconcile_interval_s = 60;
	cfg->worker.reconcile_grace_s = 60;
	cfg->log.level = LOG_LEVEL_INFO;
	cfg->dns.timeout_ms = 5000;
}

/* Replaces a config string member with a copy of value ("" unsets it). */
static bool set_string(char **member, const char *value)
{
	char *copy = NULL;
	if (*value != '\0') {
		copy = strdup(value);
		if (copy == NULL)
			return false;
	}
	free(*member);
	*member = copy;
	return true;
}

/* Fills err with "ORIGIN: [SECTION] KEY = "VALUE": PROBLEM". */
static common_status value_error(common_error *err, const char *origin, const char *section,
                                 const char *key, const char *value, const char *problem)
{
	char quoted[QUOTE_CHARS * 4 + 8];
	common_quote(value, QUOTE_CHARS, quoted, sizeof(quoted));
	return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE, "%s: [%s] %s = \"%s\": %s",
	                        origin, section, key, quoted, problem);
}

static common_status set_queues(config *cfg, const char *origin, const char *section,
                                const char *value, common_error *err)
{
	char *copy = strdup(value);
	if (copy == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");

	char *names[CONFIG_QUEUES_MAX];
	size_t count = 0;
	common_status status = COMMON_OK;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		size_t len = strlen(tok);
		while (len > 0 && isspace((unsigned char)tok[len - 1]))
			tok[--len] = '\0';
		bool ok = len > 0 && len <= 32 && valid_provider_name(tok);
		for (size_t i = 0; ok && i < count; i++)
			ok = strcmp(names[i], tok) != 0;
		if (!ok || count == CONFIG_QUEUES_MAX) {
			status = value_error(err, origin, section, "queues", value,
			                     "must be 1 to 8 distinct names of 1 to 32 of a-z 0-9 _ -, "
			                     "comma-separated, e.g. interactive,bulk");
			goto out;
		}
		names[count++] = tok;
	}
	if (count == 0) {
		status = value_error(err, origin, section, "queues", value,
		                     "must list at least one queue, e.g. interactive,bulk");
		goto out;
	}

	for (size_t i = 0; i < cfg->worker.queues_count; i++)
		free(cfg->worker.queues[i]);
	cfg->worker.queues_count = 0;
	for (size_t i = 0; i < count; i++) {
		cfg->worker.queues[i] = strdup(names[i]);
		if (cfg->worker.queues[i] == NULL) {
			status = common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
			goto out;
		}
		cfg->worker.queues_count = i + 1;
	}

out:
	free(copy);
	return status;
}

/*
 * Stores value for key of section into base (config or config_provider).
 * origin is "FILE:LINE" or "environment NAME"; from_env allows secrets.
 */
static common_status set_value(config *cfg, void *base, const char *section, const key_def *key,
                               const char *value, const char *origin, bool from_env,
                               common_error *err)
{
	char *member = (char *)base + key->offset;
	char problem[160];

	switch (key->kind) {
	case KIND_STRING:
		if (strlen(value) > 4096)
			return value_error(err, origin, section, key->name, value,
			                   "is longer than 4096 bytes");
		if (!set_string((char **)member, value))
			return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
		return COMMON_OK;

	case KIND_SECRET:
		if (!from_env)
			return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
			                        "%s: [%s] %s: secrets must not be in the config file; set "
			                        "%s to the name of an environment variable, or %s to a "
			                        "file, that holds it",
			                        origin, section, key->name, key->secret_env_key,
			                        key->secret_file_key);
		if (!set_string((char **)member, value))
			return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
		return COMMON_OK;

	case KIND_LONG: {
		errno = 0;
		char *end = NULL;
		long long n = strtoll(value, &end, 10);
		if (*value == '\0' || *end != '\0' || errno == ERANGE || n < key->min || n > key->max) {
			snprintf(problem, sizeof(problem), "must be an integer from %ld to %ld", key->min,
			         key->max);
			return value_error(err, origin, section, key->name, value, problem);
		}
		*(long *)member = (long)n;
		return COMMON_OK;
	}

	case KIND_DOUBLE: {
		errno = 0;
		char *end = NULL;
		double d = strtod(value, &end);
		if (*value == '\0' || *end != '\0' || errno == ERANGE || !isfinite(d) || d < key->min ||
		    d > key->max) {
			snprintf(problem, sizeof(problem), "must be a number from %ld to %ld", key->min,
			         key->max);
			return value_error(err, origin, section, key->name, value, problem);
		}
		*(double *)member = d;
		return COMMON_OK;
	}

	case KIND_BOOL:
		if (strcasecmp(value, "true") == 0 || strcasecmp(value, "yes") == 0 ||
		    strcmp(value, "1") == 0) {
			*(bool *)member = true;
		} else if (strcasecmp(value, "false") == 0 || strcasecmp(value, "no") == 0 ||
		           strcmp(value, "0") == 0) {
			*(bool *)member = false;
		} else {
			return value_error(err, origin, section, key->name, value,
			                   "must be true or false (also yes/no, 1/0)");
		}
		return COMMON_OK;

	case KIND_LEVEL:
		if (log_level_parse(value, (log_level *)member) != COMMON_OK)
			return value_error(err, origin, section, key->name, value,
			                   "must be one of debug, info, warn, error");
		return COMMON_OK;

	case KIND_PLACEMENT:
		for (size_t i = 0; i < sizeof(placement_names) / sizeof(placement_names[0]); i++) {
			if (strcmp(value, placement_names[i]) == 0) {
				*(dc_token_placement *)member = (dc_token_placement)i;
				return COMMON_OK;
			}
		}
		return value_error(err, origin, section, key->name, value,
		                   "must be one of default, query, json, form");

	case KIND_QUEUES:
		return set_queues(cfg, origin, section, value, err);
	}
	return common_error_set(err, COMMON_ERR_INTERNAL, "", "key kind %d unhandled", (int)key->kind);
}

/* ---- The file ------------------------------------------------------------ */

/* Checks a "[name]" header line; creates provider sections so empty ones are validated. */
static bool check_section_header(parse_state *st, const char *line)
{
	const char *end = strchr(line, ']');
	if (end == NULL) {
		/* inih would go on and blame the next key for being outside a section. */
		common_error_set(st->err, COMMON_ERR_INVALID, ERROR_CODE,
		                 "%s:%d: unterminated section header: a [section] line needs its "
		                 "closing ]",
		                 st->path, st->line);
		return false;
	}
	size_t len = (size_t)(end - line - 1);
	char name[CONFIG_LINE_MAX + 1];
	memcpy(name, line + 1, len);
	name[len] = '\0';

	if (find_section(name) != NULL)
		return true;
	if (strncmp(name, "provider.", 9) == 0 && valid_provider_name(name + 9)) {
		if (get_provider(st->cfg, name + 9) == NULL) {
			common_error_set(st->err, COMMON_ERR_INVALID, ERROR_CODE,
			                 "%s:%d: [%s]: more than %d provider sections", st->path, st->line,
			                 name, CONFIG_PROVIDERS_MAX);
			return false;
		}
		return true;
	}

	char quoted[QUOTE_CHARS * 4 + 8];
	common_quote(name, QUOTE_CHARS, quoted, sizeof(quoted));
	common_error_set(st->err, COMMON_ERR_INVALID, ERROR_CODE,
	                 "%s:%d: unknown section [%s]; valid sections: redis, postgres, worker, log, "
	                 "metrics, dns, guard, provider.NAME (NAME of 1 to 64 of a-z 0-9 _ -)",
	                 st->path, st->line, quoted);
	return false;
}

/* fgets-style reader for inih that counts lines and checks their length and sections. */
static char *read_line(char *str, int num, void *stream)
{
	parse_state *st = stream;
	if (st->failed)
		return NULL;

	int size = num < CONFIG_LINE_MAX + 2 ? num : CONFIG_LINE_MAX + 2;
	if (fgets(str, size, st->file) == NULL)
		return NULL;
	st->line++;

	size_t len = strlen(str);
	if (len > 0 && str[len - 1] != '\n' && !feof(st->file)) {
		common_error_set(st->err, COMMON_ERR_INVALID, ERROR_CODE,
		                 "%s:%d: line is longer than %d bytes; shorten it", st->path, st->line,
		                 CONFIG_LINE_MAX);
		st->failed = true;
		return NULL;
	}

	const char *p = str;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '[' && !check_section_header(st, p)) {
		st->failed = true;
		return NULL;
	}
	return str;
}

/* Rejects a key the file sets twice; remembers it otherwise. */
static bool check_duplicate(parse_state *st, const char *section, const char *name)
{
	char id[256];
	snprintf(id, sizeof(id), "%s\n%s", section, name);
	for (size_t i = 0; i < st->seen_count; i++) {
		if (strcmp(st->seen[i], id) == 0) {
			common_error_set(st->err, COMMON_ERR_INVALID, ERROR_CODE,
			                 "%s:%d: [%s] %s is set twice (first on line %d); keep one",
			                 st->path, st->line, section, name, st->seen_line[i]);
			return false;
		}
	}
	if (st->seen_count < SEEN_MAX) {
		st->seen[st->seen_count] = strdup(id);
		st->seen_line[st->seen_count] = st->line;
		if (st->seen[st->seen_count] != NULL)
			st->seen_count++;
	}
	return true;
}

static int handle_key(void *user, const char *section, const char *name, const char *value)
{
	parse_state *st = user;
	if (st->failed)
		return 0;

	char origin[300];
	snprintf(origin, sizeof(origin), "%s:%d", st->path, st->line);

	const section_def *def = find_section(section);
	void *base = st->cfg;
	if (def == NULL && strncmp(section, "provider.", 9) == 0) {
		def = &provider_section;
		base = get_provider(st->cfg, section + 9);
	}
	if (def == NULL || base == NULL) {
		common_error_set(st->err, COMMON_ERR_INVALID, ERROR_CODE,
		                 "%s: key %s is outside a section; put it under its [section]", origin,
		                 name);
		st->failed = true;
		return 0;
	}

	const key_def *key = find_key(def, name);
	if (key == NULL) {
		char quoted[QUOTE_CHARS * 4 + 8];
		common_quote(name, QUOTE_CHARS, quoted, sizeof(quoted));
		char valid[512];
		size_t used = 0;
		valid[0] = '\0';
		for (size_t i = 0; i < def->count && used < sizeof(valid); i++) {
			if (def->keys[i].kind == KIND_SECRET)
				continue;
			int n = snprintf(valid + used, sizeof(valid) - used, "%s%s", used > 0 ? ", " : "",
			                 def->keys[i].name);
			used += n > 0 ? (size_t)n : 0;
		}
		common_error_set(st->err, COMMON_ERR_INVALID, ERROR_CODE,
		                 "%s: unknown key \"%s\" in [%s]; valid keys: %s", origin, quoted,
		                 section, valid);
		st->failed = true;
		return 0;
	}

	if (!check_duplicate(st, section, name) ||
	    set_value(st->cfg, base, section, key, value, origin, false, st->err) != COMMON_OK) {
		st->failed = true;
		return 0;
	}
	return 1;
}

static common_status parse_file(config *cfg, const char *path, common_error *err)
{
	parse_state st = {.cfg = cfg, .path = path, .err = err};
	st.file = fopen(path, "re");
	if (st.file == NULL)
		return common_error_set(err, COMMON_ERR_IO, ERROR_CODE, "cannot open config file %s: %s",
		                        path, strerror(errno));

	int rc = ini_parse_stream(read_line, &st, handle_key, &st);
	fclose(st.file);
	for (size_t i = 0; i < st.seen_count; i++)
		free(st.seen[i]);

	if (st.failed)
		return COMMON_ERR_INVALID;
	if (rc == -2)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
	if (rc != 0)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "%s:%d: syntax error: expected [section], key = value or a "
		                        "comment starting with ; or #",
		                        path, rc);
	return COMMON_OK;
}

/* ---- The environment ----------------------------------------------------- */

/* Writes the upper-case environment form of text ('-' and '.' become '_'). */
static void env_form(const char *text, char *buf, size_t size)
{
	size_t i = 0;
	for (; text[i] != '\0' && i + 1 < size; i++) {
		char c = text[i];
		buf[i] = (c == '-' || c == '.') ? '_' : (char)toupper((unsigned char)c);
	}
	buf[i] = '\0';
}

/* Variables under the prefix that are not config keys. */
static bool env_reserved(const char *rest)
{
	return strncmp(rest, "TOKEN_KEYS=", 11) == 0 || strncmp(rest, "CONFIG=", 7) == 0;
}

/* Applies one DCWORKER_PROVIDER_<NAME>_<KEY>=value variable. */
static common_status apply_provider_env(config *cfg, const char *var, const char *rest,
                                        const char *value, common_error *err)
{
	/* rest is "<NAME>_<KEY>"; find the key by its suffix, the longest first. */
	const key_def *key = NULL;
	size_t name_len = 0;
	for (size_t i = 0; i < provider_section.count; i++) {
		char suffix[64];
		suffix[0] = '_';
		env_form(provider_section.keys[i].name, suffix + 1, sizeof(suffix) - 1);
		size_t rest_len = strlen(rest);
		size_t suffix_len = strlen(suffix);
		if (rest_len > suffix_len && strcmp(rest + rest_len - suffix_len, suffix) == 0 &&
		    (key == NULL || strlen(key->name) < strlen(provider_section.keys[i].name))) {
			key = &provider_section.keys[i];
			name_len = rest_len - suffix_len;
		}
	}
	if (key == NULL)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "environment %s: no provider key matches; use "
		                        "DCWORKER_PROVIDER_<NAME>_<KEY> with KEY one of provider_id, "
		                        "url_api, client_id, client_secret, token_placement, ...",
		                        var);

	/* Match the name to a provider from the file, else create one in lower case. */
	char env_name[128];
	snprintf(env_name, sizeof(env_name), "%.*s", (int)name_len, rest);
	config_provider *provider = NULL;
	for (size_t i = 0; i < cfg->providers_count; i++) {
		char form[128];
		env_form(cfg->providers[i].name, form, sizeof(form));
		if (strcmp(form, env_name) == 0)
			provider = &cfg->providers[i];
	}
	if (provider == NULL) {
		char lower[128];
		for (size_t i = 0; i <= strlen(env_name); i++)
			lower[i] = (char)tolower((unsigned char)env_name[i]);
		if (!valid_provider_name(lower))
			return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
			                        "environment %s: provider name %s is invalid; use 1 to 64 "
			                        "of A-Z 0-9 _",
			                        var, env_name);
		provider = get_provider(cfg, lower);
		if (provider == NULL)
			return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
			                        "environment %s: more than %d providers", var,
			                        CONFIG_PROVIDERS_MAX);
	}

	char origin[300];
	snprintf(origin, sizeof(origin), "environment %s", var);
	char section[80];
	snprintf(section, sizeof(section), "provider.%s", provider->name);
	return set_value(cfg, provider, section, key, value, origin, true, err);
}

/* Applies one DCWORKER_ variable; unrelated names are ignored. */
static common_status apply_env(config *cfg, const char *entry, common_error *err)
{
	const char *rest = entry + strlen(CONFIG_ENV_PREFIX);
	const char *eq = strchr(rest, '=');
	if (eq == NULL || env_reserved(rest))
		return COMMON_OK;

	char var[256];
	snprintf(var, sizeof(var), "%.*s", (int)(eq - entry), entry);
	char name[256];
	snprintf(name, sizeof(name), "%.*s", (int)(eq - rest), rest);
	const char *value = eq + 1;

	if (strncmp(name, "PROVIDER_", 9) == 0)
		return apply_provider_env(cfg, var, name + 9, value, err);

	for (size_t i = 0; i < SECTIONS_COUNT; i++) {
		char prefix[64];
		env_form(sections[i].name, prefix, sizeof(prefix));
		size_t prefix_len = strlen(prefix);
		if (strncmp(name, prefix, prefix_len) != 0 || name[prefix_len] != '_')
			continue;

		for (size_t k = 0; k < sections[i].count; k++) {
			char form[64];
			env_form(sections[i].keys[k].name, form, sizeof(form));
			if (strcmp(name + prefix_len + 1, form) != 0)
				continue;
			char origin[300];
			snprintf(origin, sizeof(origin), "environment %s", var);
			return set_value(cfg, cfg, sections[i].name, &sections[i].keys[k], value, origin,
			                 true, err);
		}
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "environment %s: [%s] has no such key; see "
		                        "config/dcworker.ini.example for the keys",
		                        var, sections[i].name);
	}
	return COMMON_OK; /* e.g. a variable an operator named for a secret */
}

static common_status apply_environment(config *cfg, common_error *err)
{
	for (char **env = environ; env != NULL && *env != NULL; env++) {
		if (strncmp(*env, CONFIG_ENV_PREFIX, strlen(CONFIG_ENV_PREFIX)) != 0)
			continue;
		common_status status = apply_env(cfg, *env, err);
		if (status != COMMON_OK)
			return status;
	}
	return COMMON_OK;
}

/* ---- Secrets and validation ---------------------------------------------- */

/* Reads a secret file: at most CONFIG_SECRET_FILE_MAX bytes, one trailing newline dropped. */
static common_status read_secret_file(const char *path, const char *what, char **out,
                                      common_error *err)
{
	FILE *file = fopen(path, "re");
	if (file == NULL)
		return common_error_set(err, COMMON_ERR_IO, ERROR_CODE,
		                        "cannot open %s file %s: %s", what, path, strerror(errno));
	char buf[CONFIG_SECRET_FILE_MAX + 2];
	size_t n = fread(buf, 1, sizeof(buf) - 1, file);
	fclose(file);
	common_status status = COMMON_OK;
	if (n > CONFIG_SECRET_FILE_MAX) {
		status = common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                          "%s file %s is larger than %d bytes", what, path,
		                          CONFIG_SECRET_FILE_MAX);
		goto out;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0 || strlen(buf) != n) {
		status = common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                          "%s file %s is empty or contains a NUL byte", what, path);
		goto out;
	}
	*out = strdup(buf);
	if (*out == NULL)
		status = common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");

out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return status;
}

/*
 * Loads one secret into *secret from the variable named by env_name or the
 * file, unless an environment override already set it. what names it in
 * messages ("[provider.ionos] client secret").
 */
static common_status load_secret(char **secret, const char *env_name, const char *file,
                                 const char *what, common_error *err)
{
	if (env_name != NULL && file != NULL)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "%s: both an environment variable and a file are set; keep "
		                        "one",
		                        what);
	if (*secret != NULL)
		return COMMON_OK;
	if (file != NULL)
		return read_secret_file(file, what, secret, err);
	if (env_name == NULL)
		return COMMON_OK;

	const char *value = getenv(env_name);
	if (value == NULL || *value == '\0')
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "%s: environment variable %s is not set or empty; export it "
		                        "or name another variable",
		                        what, env_name);
	*secret = strdup(value);
	if (*secret == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
	return COMMON_OK;
}

/* Parses redis://[host][:port][/db] into the redis members. */
static common_status apply_redis_url(config *cfg, common_error *err)
{
	const char *url = cfg->redis.url;
	if (url == NULL)
		return COMMON_OK;
	static const char problem[] = "[redis] url = \"%s\": must be redis://HOST[:PORT][/DB] "
	                              "without a password (use password_env or password_file)";
	char quoted[QUOTE_CHARS * 4 + 8];
	common_quote(url, QUOTE_CHARS, quoted, sizeof(quoted));

	if (strncmp(url, "redis://", 8) != 0 || strchr(url, '@') != NULL)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE, problem, quoted);
	const char *host = url + 8;
	size_t host_len = strcspn(host, ":/");
	if (host_len == 0)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE, problem, quoted);
	const char *p = host + host_len;

	long port = 6379;
	long db = 0;
	if (*p == ':') {
		char *end = NULL;
		errno = 0;
		port = strtol(p + 1, &end, 10);
		if (end == p + 1 || errno != 0 || port < 1 || port > 65535 || (*end != '/' && *end != '\0'))
			return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE, problem, quoted);
		p = end;
	}
	if (*p == '/' && p[1] != '\0') {
		char *end = NULL;
		errno = 0;
		db = strtol(p + 1, &end, 10);
		if (errno != 0 || *end != '\0' || db < 0 || db > 15)
			return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE, problem, quoted);
	}

	char *host_copy = strndup(host, host_len);
	if (host_copy == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
	free(cfg->redis.host);
	cfg->redis.host = host_copy;
	cfg->redis.port = port;
	cfg->redis.db = db;
	return COMMON_OK;
}

static common_status validate_provider(config *cfg, config_provider *p, common_error *err)
{
	char what[128];
	snprintf(what, sizeof(what), "[provider.%s] client secret", p->name);
	common_status status =
		load_secret(&p->client_secret, p->client_secret_env, p->client_secret_file, what, err);
	if (status != COMMON_OK)
		return status;

	if (p->url_api == NULL)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "[provider.%s] url_api is missing; set the urlAPI pinned at "
		                        "onboarding, e.g. https://api.provider.example",
		                        p->name);
	if (strncmp(p->url_api, "https://", 8) != 0 || strlen(p->url_api) <= 8) {
		char section[80];

		snprintf(section, sizeof(section), "provider.%s", p->name);
		return value_error(err, "config", section, "url_api", p->url_api,
		                   "must be an https:// URL, e.g. https://api.provider.example");
	}
	if (p->provider_id == NULL && !set_string(&p->provider_id, p->name))
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
	if (p->client_id == NULL && cfg->worker.template_provider_id == NULL)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "[provider.%s] client_id is missing and [worker] "
		                        "template_provider_id, its default, is not set; set one of them",
		                        p->name);
	return COMMON_OK;
}

/* True when a libpq connection string carries a password (key=value or URI form). */
static bool conninfo_has_password(const char *conninfo)
{
	if (conninfo == NULL)
		return false;
	for (const char *p = strstr(conninfo, "password"); p != NULL; p = strstr(p + 1, "password")) {
		const char *q = p + 8;
		while (*q == ' ')
			q++;
		if (*q == '=')
			return true;
	}

	/* URI: postgresql://user:password@host */
	const char *scheme_end = strstr(conninfo, "://");
	if (scheme_end == NULL)
		return false;
	const char *at = strchr(scheme_end + 3, '@');
	const char *colon = strchr(scheme_end + 3, ':');
	return at != NULL && colon != NULL && colon < at;
}

static common_status validate(config *cfg, common_error *err)
{
	common_status status = apply_redis_url(cfg, err);
	if (status != COMMON_OK)
		return status;
	if (cfg->redis.host == NULL && !set_string(&cfg->redis.host, "127.0.0.1"))
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");

	status = load_secret(&cfg->redis.password, cfg->redis.password_env,
	                     cfg->redis.password_file, "[redis] password", err);
	if (status != COMMON_OK)
		return status;
	status = load_secret(&cfg->postgres.password, cfg->postgres.password_env,
	                     cfg->postgres.password_file, "[postgres] password", err);
	if (status != COMMON_OK)
		return status;

	if (conninfo_has_password(cfg->postgres.conninfo))
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "[postgres] conninfo must not contain a password; use "
		                        "password_env or password_file");

	if (cfg->worker.backoff_base_ms > cfg->worker.backoff_cap_ms)
		return common_error_set(err, COMMON_ERR_INVALID, ERROR_CODE,
		                        "[worker] backoff_base_ms (%ld) is larger than backoff_cap_ms "
		                        "(%ld); raise the cap or lower the base",
		                        cfg->worker.backoff_base_ms, cfg->worker.backoff_cap_ms);

	if (cfg->worker.queues_count == 0) {
		status = set_queues(cfg, "default", "worker", "interactive,bulk", err);
		if (status != COMMON_OK)
			return status;
	}

	for (size_t i = 0; i < cfg->providers_count; i++) {
		status = validate_provider(cfg, &cfg->providers[i], err);
		if (status != COMMON_OK)
			return status;
	}
	return COMMON_OK;
}

static void register_secret(log_ctx *log, const char *secret)
{
	if (log != NULL && secret != NULL)
		log_add_secret(log, secret);
}

config *config_load(const char *path, log_ctx *log, common_error *err)
{
	config *cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
		return NULL;
	}
	set_defaults(cfg);

	common_status status = COMMON_OK;
	if (path != NULL) {
		if (!set_string(&cfg->path, path)) {
			status = common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory reading config");
			goto out;
		}
		status = parse_file(cfg, path, err);
		if (status != COMMON_OK)
			goto out;
	}
	status = apply_environment(cfg, err);
	if (status != COMMON_OK)
		goto out;
	status = validate(cfg, err);
	if (status != COMMON_OK)
		goto out;

	register_secret(log, cfg->redis.password);
	register_secret(log, cfg->postgres.password);
	for (size_t i = 0; i < cfg->providers_count; i++)
		register_secret(log, cfg->providers[i].client_secret);

out:
	if (status != COMMON_OK) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

static void free_secret(char *secret)
{
	if (secret == NULL)
		return;
	OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
}

void config_free(config *cfg)
{
	if (cfg == NULL)
		return;

	/* Free every string member through the key tables, wiping secrets. */
	for (size_t s = 0; s < SECTIONS_COUNT; s++) {
		for (size_t k = 0; k < sections[s].count; k++) {
			const key_def *key = &sections[s].keys[k];
			char **member = (char **)((char *)cfg + key->offset);
			if (key->kind == KIND_SECRET)
				free_secret(*member);
			else if (key->kind == KIND_STRING)
				free(*member);
		}
	}
	for (size_t i = 0; i < cfg->providers_count; i++) {
		config_provider *p = &cfg->providers[i];
		for (size_t k = 0; k < provider_section.count; k++) {
			const key_def *key = &provider_section.keys[k];
			char **member = (char **)((char *)p + key->offset);
			if (key->kind == KIND_SECRET)
				free_secret(*member);
			else if (key->kind == KIND_STRING)
				free(*member);
		}
		free(p->name);
	}
	for (size_t i = 0; i < cfg->worker.queues_count; i++)
		free(cfg->worker.queues[i]);
	free(cfg->path);
	free(cfg);
}

const config_provider *config_find_provider(const config *cfg, const char *name)
{
	for (size_t i = 0; name != NULL && i < cfg->providers_count; i++) {
		if (strcmp(cfg->providers[i].name, name) == 0)
			return &cfg->providers[i];
	}
	return NULL;
}

const config_provider *config_find_provider_by_id(const config *cfg, const char *provider_id)
{
	for (size_t i = 0; provider_id != NULL && i < cfg->providers_count; i++) {
		if (strcasecmp(cfg->providers[i].provider_id, provider_id) == 0)
			return &cfg->providers[i];
	}
	return NULL;
}

/* ---- Printing -------------------------------------------------------------- */

static void print_key(const config *cfg, const void *base, const key_def *key,
                      const char *env_key_value, const char *file_key_value, FILE *out)
{
	const char *member = (const char *)base + key->offset;
	switch (key->kind) {
	case KIND_STRING: {
		const char *s = *(char *const *)member;
		fprintf(out, "%s = %s\n", key->name, s != NULL ? s : "");
		break;
	}
	case KIND_SECRET:
		if (*(char *const *)member == NULL)
			fprintf(out, "; %s: not set\n", key->name);
		else if (file_key_value != NULL)
			fprintf(out, "; %s = ******** (from file %s)\n", key->name, file_key_value);
		else if (env_key_value != NULL)
			fprintf(out, "; %s = ******** (from environment %s)\n", key->name, env_key_value);
		else
			fprintf(out, "; %s = ******** (from a DCWORKER_ override)\n", key->name);
		break;
	case KIND_LONG:
		fprintf(out, "%s = %ld\n", key->name, *(const long *)member);
		break;
	case KIND_DOUBLE:
		fprintf(out, "%s = %g\n", key->name, *(const double *)member);
		break;
	case KIND_BOOL:
		fprintf(out, "%s = %s\n", key->name, *(const bool *)member ? "true" : "false");
		break;
	case KIND_LEVEL:
		fprintf(out, "%s = %s\n", key->name, log_level_name(*(const log_level *)member));
		break;
	case KIND_PLACEMENT: {
		unsigned placement = (unsigned)*(const dc_token_placement *)member;
		fprintf(out, "%s = %s\n", key->name,
		        placement < 4 ? placement_names[placement] : "default");
		break;
	}
	case KIND_QUEUES:
		fprintf(out, "%s = ", key->name);
		for (size_t i = 0; i < cfg->worker.queues_count; i++)
			fprintf(out, "%s%s", i > 0 ? "," : "", cfg->worker.queues[i]);
		fputc('\n', out);
		break;
	}
}

/* Prints every key of one section; secret sources are looked up by key name. */
static void print_section(const config *cfg, const void *base, const section_def *def,
                          const char *title, FILE *out)
{
	fprintf(out, "[%s]\n", title);
	for (size_t k = 0; k < def->count; k++) {
		const key_def *key = &def->keys[k];
		const char *env_value = NULL;
		const char *file_value = NULL;
		if (key->kind == KIND_SECRET) {
			env_value = *(char *const *)((const char *)base +
			                             find_key(def, key->secret_env_key)->offset);
			file_value = *(char *const *)((const char *)base +
			                              find_key(def, key->secret_file_key)->offset);
		}
		print_key(cfg, base, key, env_value, file_value, out);
	}
	fputc('\n', out);
}

void config_print(const config *cfg, FILE *out)
{
	fprintf(out, "; effective configuration from %s and the environment\n\n",
	        cfg->path != NULL ? cfg->path : "defaults");
	for (size_t s = 0; s < SECTIONS_COUNT; s++)
		print_section(cfg, cfg, &sections[s], sections[s].name, out);
	for (size_t i = 0; i < cfg->providers_count; i++) {
		char title[80];
		snprintf(title, sizeof(title), "provider.%s", cfg->providers[i].name);
		print_section(cfg, &cfg->providers[i], &provider_section, title, out);
	}
}
