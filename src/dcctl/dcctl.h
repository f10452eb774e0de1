/*
 * Shared declarations of dcctl: exit codes, the command context, the
 * subcommand entry points and the connections to Redis and PostgreSQL.
 *
 * Every subcommand parses its own options (getopt_long), loads the config
 * only when it needs a service, writes its result to stdout (a table or
 * key: value lines on a terminal, one JSON document with --json) and its
 * errors to stderr, and returns one of the exit codes below.
 */
#ifndef DCCTL_H
#define DCCTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "config.h"
#include "domainconnect.h"
#include "log.h"
#include "redis_keys.h"

/* Exit status of dcctl; stable, documented in docs/cli.md. */
typedef enum dcctl_exit {
	DCCTL_EXIT_OK = 0,
	DCCTL_EXIT_USAGE = 1,       /* unknown command or option, missing or invalid argument */
	DCCTL_EXIT_CONFIG = 2,      /* the config file or an override is invalid */
	DCCTL_EXIT_NOT_FOUND = 3,   /* the job, dead letter or authorization does not exist */
	DCCTL_EXIT_UNREACHABLE = 4, /* Redis, PostgreSQL, DNS or the provider did not respond */
	DCCTL_EXIT_FAILED = 5,      /* the operation ran and failed (rejected job, failed result) */
	DCCTL_EXIT_TIMEOUT = 6,     /* --wait ended before the result arrived */
	DCCTL_EXIT_NOT_SUPPORTED = 7 /* the domain has no Domain Connect, or a template or the
	                                asynchronous flow is not supported there */
} dcctl_exit;

/* Returns the stable name of an exit code ("not_found"); never NULL. */
const char *dcctl_exit_name(dcctl_exit code);

/* State shared by all subcommands of one run. */
typedef struct dcctl {
	const char *config_path; /* --config, else $DCCTL_CONFIG, else NULL (defaults only) */
	bool json;               /* --json: one JSON document on stdout */
	bool tty;                /* stdout is a terminal */
	bool stderr_tty;         /* stderr is a terminal (progress bars) */
	config *cfg;             /* loaded by dcctl_load_config */
	log_ctx *log;            /* registry of loaded secrets, writes to stderr */
} dcctl;

/* Options every subcommand accepts; append to each getopt_long table. */
#define DCCTL_OPT_CONFIG 1000
#define DCCTL_OPT_JSON 1001
#define DCCTL_COMMON_OPTIONS                                                          \
	{"config", required_argument, NULL, DCCTL_OPT_CONFIG},                        \
	{"json", no_argument, NULL, DCCTL_OPT_JSON},                                  \
	{"help", no_argument, NULL, 'h'}

/* Help lines of the common options, appended to each subcommand's help. */
#define DCCTL_COMMON_HELP                                                             \
	"  --config FILE     read the dcworker INI file FILE (default: $DCCTL_CONFIG;\n"  \
	"                    DCWORKER_<SECTION>_<KEY> variables override its keys)\n"     \
	"  --json            print one JSON document on stdout instead of text\n"      \
	"  -h, --help        print this help and exit\n"

/*
 * Handles a common option returned by getopt_long. Returns true when OPT
 * was one of them (and was applied to CTX).
 */
bool dcctl_common_option(dcctl *ctx, int opt, const char *arg);

/* Loads ctx->cfg once. Returns DCCTL_EXIT_CONFIG with the error printed. */
dcctl_exit dcctl_load_config(dcctl *ctx);

/*
 * Connects to the configured Redis (AUTH and SELECT included), timing out
 * after DCCTL_CONNECT_TIMEOUT_MS. Loads the config first. On failure prints
 * the reason and returns DCCTL_EXIT_UNREACHABLE (or _CONFIG).
 */
dcctl_exit dcctl_redis_connect(dcctl *ctx, redisContext **out);

/*
 * Connects to the configured PostgreSQL. Returns DCCTL_EXIT_CONFIG when no
 * [postgres] conninfo is set, DCCTL_EXIT_UNREACHABLE when it fails.
 */
dcctl_exit dcctl_pg_connect(dcctl *ctx, PGconn **out);

/* True when [postgres] conninfo is set (config must be loaded). */
bool dcctl_pg_configured(const dcctl *ctx);

#define DCCTL_CONNECT_TIMEOUT_MS 3000

/* Version printed by --version and sent in the User-Agent. */
#define DCCTL_VERSION "0.1.0"

/*
 * Fills OUT with the protocol library options from the loaded config: the
 * [dns] servers and timeout and the [guard] allow_networks, allow_ports and
 * ca_file. The strings stay owned by ctx->cfg.
 */
void dcctl_dc_config(const dcctl *ctx, dc_config *out);

/*
 * Maps a protocol library status to an exit code: DCCTL_EXIT_USAGE for
 * invalid input, DCCTL_EXIT_NOT_SUPPORTED for no Domain Connect, no
 * template or no asynchronous flow, DCCTL_EXIT_UNREACHABLE for transient
 * failures, DCCTL_EXIT_FAILED for the rest.
 */
dcctl_exit dcctl_exit_from_dc(dc_status status);

/* Parses a whole decimal integer in [min, max]; false when invalid. */
bool dcctl_parse_long(const char *text, long min, long max, long *out);

/* Parses a non-negative decimal number of seconds (e.g. "2.5"); false when invalid. */
bool dcctl_parse_seconds(const char *text, double max, double *out);

/* Wall clock in milliseconds since the epoch. */
int64_t dcctl_now_ms(void);

/* Monotonic clock in seconds. */
double dcctl_mono(void);

/* True when NAME is a valid queue name ([A-Za-z0-9_-], 1 to 32 bytes). */
bool dcctl_valid_queue_name(const char *name);

/* ---- Output (output.c) ------------------------------------------------- */

/*
 * Prints "dcctl: MESSAGE" to stderr and, with --json, {"error": {...}} to
 * stdout. Returns CODE.
 */
dcctl_exit out_error(const dcctl *ctx, dcctl_exit code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prints a usage error with a pointer to --help. Returns DCCTL_EXIT_USAGE. */
dcctl_exit out_usage(const dcctl *ctx, const char *command, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prints VALUE as indented JSON with a newline on stdout; steals the reference. */
void out_json(json_t *value);

/* Prints "KEY: VALUE" with KEY padded to a column, for human output. */
void out_field(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A text table; cells are copied. */
typedef struct out_table out_table;
out_table *out_table_new(size_t columns, const char *const *headers);
void out_table_add(out_table *t, const char *const *cells);
void out_table_print(const out_table *t, FILE *out);
void out_table_free(out_table *t);

/* Formats Unix ms as RFC 3339 UTC into buf; returns buf. */
char *out_time(int64_t ms, char *buf, size_t size);

/* Returns a printable value of a JSON scalar ("" for null) in buf. */
const char *out_scalar(const json_t *value, char *buf, size_t size);

/* ---- Provider statistics (stats_provider.c) ---------------------------- */

/*
 * Reads the worker's call counters of DNS provider P (all time and the
 * minute that contains NOW_MS) and a snapshot of its pacing. Returns
 * {"calls": {status: n}, "calls_this_minute": {...}, "pacing": {...} or
 * null when Redis returned an error}, a new reference.
 */
json_t *stats_provider(redisContext *rc, const config_provider *p, int64_t now_ms);

/* Prints the "providers" object of stats as a table on stdout. */
void stats_provider_print(const json_t *providers);

/* ---- Subcommands ------------------------------------------------------- */

int cmd_migrate(dcctl *ctx, int argc, char **argv);
int cmd_discover(dcctl *ctx, int argc, char **argv);
int cmd_consent_url(dcctl *ctx, int argc, char **argv);
int cmd_enqueue(dcctl *ctx, int argc, char **argv);
int cmd_job(dcctl *ctx, int argc, char **argv);
int cmd_jobs(dcctl *ctx, int argc, char **argv);
int cmd_dead(dcctl *ctx, int argc, char **argv);
int cmd_authorizations(dcctl *ctx, int argc, char **argv);
int cmd_stats(dcctl *ctx, int argc, char **argv);

#endif
