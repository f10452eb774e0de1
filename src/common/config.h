/*
 * The INI configuration of dcworker and dcctl (libinih), with an
 * environment override for every key.
 *
 * Sections and keys are listed with their defaults and units in
 * config/dcworker.ini.example. Parsing is strict: an unknown section or
 * key, an integer out of range, a bad enum or list value is an error naming
 * file:line (or the environment variable), the key, the value and the valid
 * range.
 *
 * Environment overrides: DCWORKER_<SECTION>_<KEY>, upper-cased, e.g.
 * DCWORKER_WORKER_IN_FLIGHT=64. Provider keys use
 * DCWORKER_PROVIDER_<NAME>_<KEY> with NAME upper-cased and '-' written as
 * '_', e.g. DCWORKER_PROVIDER_IONOS_URL_API; such a variable also defines a
 * provider the file does not mention. Overrides win over the file.
 *
 * Secrets never come from the file: client secrets are read from the
 * environment variable or file named by client_secret_env/client_secret_file,
 * and the PostgreSQL and Redis passwords likewise from password_env or
 * password_file. A secret key in the file is rejected with an error naming
 * the key.
 */
#ifndef DC_COMMON_CONFIG_H
#define DC_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common_error.h"
#include "domainconnect.h"
#include "log.h"

/* Longest line of the config file, newline included (libinih's line buffer is 200 bytes). */
#define CONFIG_LINE_MAX 199
#define CONFIG_PROVIDERS_MAX 64
#define CONFIG_QUEUES_MAX 8
/* Largest secret file read (client secrets, passwords). */
#define CONFIG_SECRET_FILE_MAX 4096
/* Prefix of every environment override. */
#define CONFIG_ENV_PREFIX "DCWORKER_"

/* One [provider.NAME] section: a DNS provider the service provider is onboarded with. */
typedef struct config_provider {
	char *name;                /* NAME of the section, [a-z0-9_-] */
	char *provider_id;         /* the DNS provider's providerId from its settings */
	char *url_api;             /* pinned urlAPI; tokens and secrets go only here */
	char *client_id;           /* NULL: [worker] template_provider_id */
	char *client_secret_env;   /* environment variable holding the client secret */
	char *client_secret_file;  /* or a file holding it */
	char *client_secret;       /* loaded secret, NULL when neither is set */
	dc_token_placement token_placement;
	bool service_id_in_path;
	double rate;               /* requests per second, shared by all workers */
	long burst;                /* token bucket size */
	long max_concurrency;      /* calls in flight at this provider, across all workers */
	long connect_timeout_ms;
	long total_timeout_ms;
} config_provider;

/* The effective configuration. Strings are malloc'd; NULL means unset. */
typedef struct config {
	char *path; /* file it was read from, NULL when none */

	struct {
		char *url;   /* redis://host:port/db; overrides host, port, db when set */
		char *host;
		long port;
		long db;
		char *password_env;
		char *password_file;
		char *password;
	} redis;

	struct {
		char *conninfo; /* libpq connection string without a password */
		char *password_env;
		char *password_file;
		char *password;
	} postgres;

	struct {
		char *template_provider_id; /* the service provider's providerId of its templates */
		long processes;
		long in_flight;
		long visibility_timeout_s;
		long max_reclaims;
		long grace_period_s;
		long result_ttl_s;
		long dead_letter_max;
		char *queues[CONFIG_QUEUES_MAX]; /* read in this order */
		size_t queues_count;
		long max_attempts;
		long backoff_base_ms;
		long backoff_cap_ms;
		long refresh_skew_s;
		long keepalive_days;
		long reconcile_interval_s; /* 0: the reconciler is off */
		long reconcile_grace_s;
		char *token_key_file;
		char *migrations_dir;
	} worker;

	struct {
		log_level level;
	} log;

	struct {
		char *listen; /* host:port, NULL: no metrics endpoint */
	} metrics;

	struct {
		char *servers; /* "127.0.0.1:5353,[::1]:53"; NULL: the system resolver */
		long timeout_ms;
	} dns;

	struct {
		char *allow_networks;
		char *allow_ports;
		char *ca_file;
	} guard;

	config_provider providers[CONFIG_PROVIDERS_MAX];
	size_t providers_count;
} config;

/*
 * Reads path (NULL: defaults and environment only), applies the environment
 * overrides, loads the secrets, validates, and registers every loaded
 * secret with log (may be NULL). Returns NULL and fills err, with code
 * "invalid_config", on the first error.
 */
config *config_load(const char *path, log_ctx *log, common_error *err);

/* Wipes the secrets and frees everything. Accepts NULL. */
void config_free(config *cfg);

/* Returns the provider section named name, or NULL. */
const config_provider *config_find_provider(const config *cfg, const char *name);

/* Returns the provider whose provider_id matches (case-insensitive), or NULL. */
const config_provider *config_find_provider_by_id(const config *cfg, const char *provider_id);

/*
 * Prints the effective configuration as INI to out, every key with its
 * value; secrets are shown as "********" with their source.
 */
void config_print(const config *cfg, FILE *out);

#endif /* DC_COMMON_CONFIG_H */
