/*
 * dcworker: the Domain Connect job daemon. Parses the command line, loads
 * and checks the config, checks the database schema, then hands over to
 * the supervisor, which forks the worker processes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "config.h"
#include "log.h"
#include "migrate.h"
#include "supervisor.h"
#include "token_crypto.h"

static void usage(FILE *out)
{
	fputs("usage: dcworker --config FILE [--check-config] [--processes N]\n"
	      "       dcworker --check-config FILE\n"
	      "Runs Domain Connect jobs from Redis Streams; PostgreSQL holds their outcome.\n"
	      "\n"
	      "  --config FILE     INI config (see config/dcworker.ini.example); every key can\n"
	      "                    be overridden with DCWORKER_<SECTION>_<KEY>\n"
	      "  --check-config    validate the config, print the effective values with\n"
	      "                    secrets masked and the id of the token key that encrypts,\n"
	      "                    and exit 0 when valid, 1 when not; the file may follow it\n"
	      "                    instead of --config\n"
	      "  --processes N     worker processes, 1 to 1024 (default: [worker] processes)\n"
	      "  --help            print this text\n",
	      out);
}

static bool parse_processes(const char *text, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || n < 1 || n > SUPERVISOR_PROCESSES_MAX)
		return false;
	*out = n;
	return true;
}

/* True when LISTEN ("IP:PORT" or "[IPv6]:PORT") names a loopback address. */
static bool listen_is_loopback(const char *listen)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	size_t len;
	unsigned char addr[16];

	if (colon == NULL)
		return false;
	len = (size_t)(colon - listen);
	if (len >= 2 && listen[0] == '[' && colon[-1] == ']') {
		listen++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(host))
		return false;
	memcpy(host, listen, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, addr) == 1)
		return addr[0] == 127;
	if (inet_pton(AF_INET6, host, addr) == 1) {
		static const unsigned char loopback6[16] = {[15] = 1};

		return memcmp(addr, loopback6, sizeof(loopback6)) == 0;
	}
	return false;
}

/*
 * Checks what config_load cannot: the token keys load and a template
 * provider id is set. Errors and warnings go to stderr as plain
 * "dcworker: ..." lines; with VERBOSE, the encrypting key id goes to stdout
 * (never key material).
 */
static bool check_runtime(const config *cfg, bool verbose)
{
	common_error err = {0};
	token_crypto *crypto = token_crypto_new_from_env_or_file(cfg->worker.token_key_file, &err);

	if (crypto == NULL) {
		fprintf(stderr, "dcworker: token keys: %s\n", err.message);
		return false;
	}
	if (verbose)
		printf("token keys: loaded from %s; key id %s encrypts\n",
		       getenv(TOKEN_CRYPTO_KEYS_ENV) != NULL ? TOKEN_CRYPTO_KEYS_ENV
		                                             : cfg->worker.token_key_file,
		       token_crypto_current_key_id(crypto));
	token_crypto_free(crypto);
	if (cfg->metrics.listen != NULL && !listen_is_loopback(cfg->metrics.listen))
		fprintf(stderr,
		        "dcworker: warning: [metrics] listen = %s is not a loopback address; the "
		        "metrics endpoint has no authentication, so keep it on 127.0.0.1 or ::1 or "
		        "behind a firewall\n",
		        cfg->metrics.listen);
	if (cfg->worker.template_provider_id == NULL) {
		fputs("dcworker: [worker] template_provider_id is missing (it has no default): set "
		      "it to the providerId of your templates\n",
		      stderr);
		return false;
	}
	return true;
}

/* Refuses to run on a schema older than this build's; blocking, before any fork. */
static bool check_schema(const config *cfg, log_ctx *log)
{
	common_error err = {0};
	log_fields f = {.action = "check_schema"};
	PGconn *conn;
	bool ok = false;

	if (cfg->postgres.password != NULL)
		setenv("PGPASSWORD", cfg->postgres.password, 1);
	conn = PQconnectdb(cfg->postgres.conninfo != NULL ? cfg->postgres.conninfo : "");
	if (PQstatus(conn) != CONNECTION_OK) {
		char message[256];

		snprintf(message, sizeof(message), "%s", PQerrorMessage(conn));
		message[strcspn(message, "\n")] = '\0';
		log_write(log, LOG_LEVEL_ERROR, &f, "cannot connect to PostgreSQL: %s", message);
		goto out;
	}
	if (migrate_check(conn, MIGRATE_REQUIRED_VERSION, &err) != COMMON_OK) {
		f.error = err.code;
		log_write(log, LOG_LEVEL_ERROR, &f, "%s", err.message);
		goto out;
	}
	ok = true;
out:
	PQfinish(conn);
	return ok;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'k'},
		{"processes", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	bool check_only = false;
	long processes = 0;
	common_error err = {0};
	config *cfg = NULL;
	log_ctx *log = NULL;
	int status = 1;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 'p':
			if (!parse_processes(optarg, &processes)) {
				fprintf(stderr, "dcworker: invalid --processes \"%s\": give 1 to %d\n",
				        optarg, SUPERVISOR_PROCESSES_MAX);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "dcworker: unknown option or missing value: %s\n",
			        argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	/* The form "--check-config FILE" names the file without --config. */
	if (check_only && config_path == NULL && optind == argc - 1)
		config_path = argv[optind++];
	if (optind < argc || config_path == NULL) {
		fprintf(stderr, "dcworker: %s\n",
		        config_path == NULL ? "--config FILE is required" : "unexpected argument");
		usage(stderr);
		return 2;
	}

	log = log_ctx_new(stderr, LOG_LEVEL_INFO);
	if (log == NULL)
		return 1;
	cfg = config_load(config_path, log, &err);
	if (cfg == NULL) {
		fprintf(stderr, "dcworker: %s\n", err.message);
		goto out;
	}
	log_set_level(log, cfg->log.level);

	if (check_only) {
		config_print(cfg, stdout);
		status = check_runtime(cfg, true) ? 0 : 1;
		goto out;
	}
	if (!check_runtime(cfg, false) || !check_schema(cfg, log))
		goto out;

	status = supervisor_run(config_path, cfg, log, processes > 0 ? processes : cfg->worker.processes);
out:
	config_free(cfg);
	log_ctx_free(log);
	return status;
}
