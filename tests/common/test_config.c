/* Config: defaults, the file, every error with its origin, environment overrides, secrets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/config.h"

static char *tmpdir;

static void setup(void)
{
	tmpdir = strdup("/tmp/dc-config.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	/* Criterion forks per test, so variables set here stay in this test. */
	for (char **env = environ; *env != NULL;) {
		if (strncmp(*env, "DCWORKER_", 9) == 0) {
			char name[256];
			snprintf(name, sizeof(name), "%.*s", (int)(strchr(*env, '=') - *env), *env);
			unsetenv(name);
			continue;
		}
		env++;
	}
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
	free(tmpdir);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Writes text to a file in the temp dir and returns its path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static config *load_ok(const char *text)
{
	const char *path = text != NULL ? write_file("ok.ini", text) : NULL;
	common_error err;
	common_error_clear(&err);
	config *cfg = config_load(path, NULL, &err);
	cr_assert_not_null(cfg, "rejected: %s", err.message);
	return cfg;
}

/* Asserts that text fails to load with a message containing needle. */
static void load_bad(const char *text, const char *needle)
{
	const char *path = write_file("bad.ini", text);
	common_error err;
	common_error_clear(&err);
	config *cfg = config_load(path, NULL, &err);
	cr_assert_null(cfg, "accepted:\n%s", text);
	cr_assert_str_eq(err.code, "invalid_config");
	/* A "%s" in needle stands for the file's path. */
	char expected[1024];
	const char *mark = strstr(needle, "%s");
	if (mark != NULL)
		snprintf(expected, sizeof(expected), "%.*s%s%s", (int)(mark - needle), needle, path,
		         mark + 2);
	else
		snprintf(expected, sizeof(expected), "%s", needle);
	cr_assert_not_null(strstr(err.message, expected), "message \"%s\" lacks \"%s\"", err.message,
	                   expected);
}

static const char provider_ok[] = "[worker]\ntemplate_provider_id = example.app\n"
                                  "[provider.ionos]\nurl_api = https://api.ionos.example\n";

Test(config, defaults_without_file)
{
	config *cfg = load_ok(NULL);
	cr_assert_str_eq(cfg->redis.host, "127.0.0.1");
	cr_assert_eq(cfg->redis.port, 6379);
	cr_assert_eq(cfg->worker.processes, sysconf(_SC_NPROCESSORS_ONLN));
	cr_assert_eq(cfg->worker.in_flight, 256);
	cr_assert_eq(cfg->worker.queues_count, 2);
	cr_assert_str_eq(cfg->worker.queues[0], "interactive");
	cr_assert_str_eq(cfg->worker.queues[1], "bulk");
	cr_assert_eq(cfg->log.level, LOG_LEVEL_INFO);
	cr_assert_null(cfg->dns.servers);
	cr_assert_null(cfg->guard.allow_networks);
	cr_assert_eq(cfg->providers_count, 0);
	config_free(cfg);
}

Test(config, full_file_parses)
{
	config *cfg = load_ok("; comment\n# another\n"
	                      "[redis]\nhost = 127.0.0.2\nport = 6380\ndb = 3\n"
	                      "[postgres]\nconninfo = host=127.0.0.1 dbname=dc\n"
	                      "[worker]\ntemplate_provider_id = example.app\nprocesses = 3\n"
	                      "in_flight = 64\nvisibility_timeout_s = 60\nmax_reclaims = 2\n"
	                      "grace_period_s = 10\nresult_ttl_s = 3600\ndead_letter_max = 10\n"
	                      "queues = fast, slow ,bulk\nmax_attempts = 4\nbackoff_base_ms = 50\n"
	                      "backoff_cap_ms = 500\nrefresh_skew_s = 30\nkeepalive_days = 7\n"
	                      "[log]\nlevel = DEBUG\n[metrics]\nlisten = 127.0.0.1:9100\n"
	                      "[dns]\nservers = 127.0.0.1:5353\ntimeout_ms = 800\n"
	                      "[guard]\nallow_networks = 127.0.0.0/8\nallow_ports = 8443\n"
	                      "ca_file = /tmp/ca.pem\n"
	                      "[provider.ionos]\nprovider_id = ionos.de\n"
	                      "url_api = https://api.ionos.example\nclient_id = cid\n"
	                      "token_placement = form\nservice_id_in_path = yes\nrate = 2.5\n"
	                      "burst = 5\nmax_concurrency = 3\nconnect_timeout_ms = 1000\n"
	                      "total_timeout_ms = 2000\n");
	cr_assert_str_eq(cfg->redis.host, "127.0.0.2");
	cr_assert_eq(cfg->redis.port, 6380);
	cr_assert_eq(cfg->redis.db, 3);
	cr_assert_str_eq(cfg->postgres.conninfo, "host=127.0.0.1 dbname=dc");
	cr_assert_eq(cfg->worker.processes, 3);
	cr_assert_eq(cfg->worker.in_flight, 64);
	cr_assert_eq(cfg->worker.queues_count, 3);
	cr_assert_str_eq(cfg->worker.queues[1], "slow");
	cr_assert_eq(cfg->worker.backoff_cap_ms, 500);
	cr_assert_eq(cfg->worker.keepalive_days, 7);
	cr_assert_eq(cfg->log.level, LOG_LEVEL_DEBUG);
	cr_assert_str_eq(cfg->metrics.listen, "127.0.0.1:9100");
	cr_assert_eq(cfg->dns.timeout_ms, 800);
	cr_assert_str_eq(cfg->guard.ca_file, "/tmp/ca.pem");
	cr_assert_eq(cfg->providers_count, 1);
	const config_provider *p = config_find_provider(cfg, "ionos");
	cr_assert_not_null(p);
	cr_assert_str_eq(p->provider_id, "ionos.de");
	cr_assert_eq(config_find_provider_by_id(cfg, "IONOS.de"), p);
	cr_assert_null(config_find_provider(cfg, "godaddy"));
	cr_assert_eq(p->token_placement, DC_TOKEN_PARAMS_FORM);
	cr_assert(p->service_id_in_path);
	cr_assert_float_eq(p->rate, 2.5, 1e-9);
	cr_assert_eq(p->burst, 5);
	cr_assert_eq(p->max_concurrency, 3);
	cr_assert_eq(p->total_timeout_ms, 2000);
	cr_assert_null(p->client_secret);
	config_free(cfg);
}

Test(config, errors_name_file_and_line)
{
	load_bad("[redis]\nport = 6379\n\n[queue]\n", "%s:4: unknown section [queue]");
	load_bad("[provider.Bad Name]\n", "%s:1: unknown section [provider.Bad Name]");
	load_bad("[worker]\nthreads = 4\n",
	         "%s:2: unknown key \"threads\" in [worker]; valid keys: template_provider_id, processes");
	load_bad("[worker]\nin_flight = 12abc\n",
	         "%s:2: [worker] in_flight = \"12abc\": must be an integer from 1 to 100000");
	load_bad("[worker]\nin_flight = 0\n", "%s:2: [worker] in_flight = \"0\": must be an integer");
	load_bad("[worker]\nin_flight = 99999999999999999999999\n", "must be an integer from 1 to 100000");
	load_bad("[worker]\nin_flight =\n", "%s:2: [worker] in_flight = \"\": must be an integer");
	load_bad("[redis]\nport = 70000\n", "%s:2: [redis] port = \"70000\": must be an integer from 1 to 65535");
	load_bad("[log]\nlevel = loud\n", "%s:2: [log] level = \"loud\": must be one of debug, info, warn, error");
	load_bad("[provider.x]\ntoken_placement = header\n",
	         "%s:2: [provider.x] token_placement = \"header\": must be one of default, query, json, form");
	load_bad("[provider.x]\nservice_id_in_path = maybe\n", "must be true or false");
	load_bad("[provider.x]\nrate = -1\n", "%s:2: [provider.x] rate = \"-1\": must be a number from 0 to 100000");
	load_bad("[provider.x]\nrate = nan\n", "rate = \"nan\": must be a number");
	load_bad("[worker]\nqueues = a,,a\n", "%s:2: [worker] queues = \"a,,a\": must be 1 to 8 distinct");
	load_bad("[worker]\nqueues = Fast\n", "must be 1 to 8 distinct names");
	load_bad("in_flight = 3\n", "%s:1: key in_flight is outside a section");
	load_bad("[worker]\nin_flight\n", "%s:2: syntax error: expected [section], key = value");
	load_bad("[worker]\nin_flight = 3\nprocesses = 2\nin_flight = 4\n",
	         "%s:4: [worker] in_flight is set twice (first on line 2)");
	load_bad("[worker]\nin_flight = 3\n  4\n", "is set twice");
}

Test(config, long_line_rejected)
{
	char text[512];
	char value[300];
	memset(value, 'a', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	snprintf(text, sizeof(text), "[guard]\nca_file = %s\n", value);
	load_bad(text, "%s:2: line is longer than 199 bytes");
}

Test(config, secret_in_file_rejected)
{
	load_bad("[provider.ionos]\nclient_secret = hunter22\n",
	         "%s:2: [provider.ionos] client_secret: secrets must not be in the config file; set "
	         "client_secret_env");
	load_bad("[postgres]\npassword = pw\n", "%s:2: [postgres] password: secrets must not be");
	load_bad("[redis]\npassword = pw\n", "[redis] password: secrets must not be");

	const char *path = write_file("s.ini", "[provider.ionos]\nclient_secret = hunter22\n");
	common_error err;
	cr_assert_null(config_load(path, NULL, &err));
	cr_assert_null(strstr(err.message, "hunter22"), "%s", err.message);
}

Test(config, validation_errors)
{
	load_bad("[worker]\ntemplate_provider_id = a\n[provider.ionos]\n",
	         "[provider.ionos] url_api is missing");
	load_bad("[worker]\ntemplate_provider_id = a\n[provider.ionos]\nurl_api = http://x\n",
	         "url_api = \"http://x\": must be an https:// URL");
	load_bad("[provider.ionos]\nurl_api = https://x\n",
	         "[provider.ionos] client_id is missing and [worker] template_provider_id");
	load_bad("[worker]\nbackoff_base_ms = 5000\nbackoff_cap_ms = 1000\n",
	         "[worker] backoff_base_ms (5000) is larger than backoff_cap_ms (1000)");
	load_bad("[postgres]\nconninfo = host=db password = x\n",
	         "[postgres] conninfo must not contain a password");
	load_bad("[postgres]\nconninfo = postgresql://u:pw@db/x\n", "must not contain a password");
	load_bad("[redis]\nurl = redis://:pw@127.0.0.1\n", "without a password");
	load_bad("[redis]\nurl = http://127.0.0.1\n", "must be redis://HOST[:PORT][/DB]");
	load_bad("[redis]\nurl = redis://127.0.0.1:0\n", "must be redis://HOST");
	load_bad("[redis]\nurl = redis://127.0.0.1/99\n", "must be redis://HOST");
}

Test(config, missing_file_is_io_error)
{
	common_error err;
	cr_assert_null(config_load("/nonexistent/dcworker.ini", NULL, &err));
	cr_assert_eq(err.status, COMMON_ERR_IO);
	cr_assert_not_null(strstr(err.message, "/nonexistent/dcworker.ini"));
}

Test(config, redis_url_sets_fields)
{
	config *cfg = load_ok("[redis]\nurl = redis://cache.local:6390/2\nport = 1\n");
	cr_assert_str_eq(cfg->redis.host, "cache.local");
	cr_assert_eq(cfg->redis.port, 6390);
	cr_assert_eq(cfg->redis.db, 2);
	config_free(cfg);
}

Test(config, env_overrides_file)
{
	setenv("DCWORKER_WORKER_IN_FLIGHT", "17", 1);
	setenv("DCWORKER_LOG_LEVEL", "error", 1);
	setenv("DCWORKER_PROVIDER_IONOS_RATE", "0.5", 1);
	setenv("DCWORKER_PROVIDER_IONOS_TOKEN_PLACEMENT", "json", 1);
	setenv("DCWORKER_UNRELATED_SECRET", "ignored", 1);
	config *cfg = load_ok("[worker]\nin_flight = 3\ntemplate_provider_id = a\n"
	                      "[provider.ionos]\nurl_api = https://x\nrate = 9\n");
	cr_assert_eq(cfg->worker.in_flight, 17);
	cr_assert_eq(cfg->log.level, LOG_LEVEL_ERROR);
	cr_assert_float_eq(cfg->providers[0].rate, 0.5, 1e-9);
	cr_assert_eq(cfg->providers[0].token_placement, DC_TOKEN_PARAMS_JSON);
	config_free(cfg);
}

Test(config, env_defines_provider)
{
	setenv("DCWORKER_WORKER_TEMPLATE_PROVIDER_ID", "example.app", 1);
	setenv("DCWORKER_PROVIDER_MY_DNS_URL_API", "https://api.my.example", 1);
	setenv("DCWORKER_PROVIDER_MY_DNS_CLIENT_SECRET", "env-secret-value", 1);
	config *cfg = load_ok(NULL);
	const config_provider *p = config_find_provider(cfg, "my_dns");
	cr_assert_not_null(p);
	cr_assert_str_eq(p->url_api, "https://api.my.example");
	cr_assert_str_eq(p->client_secret, "env-secret-value");
	cr_assert_str_eq(p->provider_id, "my_dns");
	config_free(cfg);
}

Test(config, env_matches_dashed_provider)
{
	setenv("DCWORKER_PROVIDER_MY_DNS_BURST", "7", 1);
	config *cfg = load_ok("[worker]\ntemplate_provider_id = a\n"
	                      "[provider.my-dns]\nurl_api = https://x\n");
	cr_assert_eq(cfg->providers_count, 1);
	cr_assert_eq(cfg->providers[0].burst, 7);
	config_free(cfg);
}

Test(config, env_errors_name_variable)
{
	common_error err;
	setenv("DCWORKER_WORKER_THREADS", "4", 1);
	cr_assert_null(config_load(NULL, NULL, &err));
	cr_assert_not_null(strstr(err.message, "environment DCWORKER_WORKER_THREADS: [worker] has no "
	                                       "such key"),
	                   "%s", err.message);
	unsetenv("DCWORKER_WORKER_THREADS");

	setenv("DCWORKER_REDIS_PORT", "http", 1);
	cr_assert_null(config_load(NULL, NULL, &err));
	cr_assert_not_null(strstr(err.message, "environment DCWORKER_REDIS_PORT: [redis] port = "
	                                       "\"http\": must be an integer from 1 to 65535"),
	                   "%s", err.message);
	unsetenv("DCWORKER_REDIS_PORT");

	setenv("DCWORKER_PROVIDER_IONOS_COLOR", "red", 1);
	cr_assert_null(config_load(NULL, NULL, &err));
	cr_assert_not_null(strstr(err.message, "DCWORKER_PROVIDER_IONOS_COLOR: no provider key"),
	                   "%s", err.message);
}

Test(config, secret_from_env_variable)
{
	setenv("IONOS_SECRET", "from-env-secret", 1);
	log_ctx *log = log_ctx_new(stderr, LOG_LEVEL_ERROR);
	const char *path = write_file("p.ini", "[worker]\ntemplate_provider_id = a\n"
	                                       "[provider.ionos]\nurl_api = https://x\n"
	                                       "client_secret_env = IONOS_SECRET\n");
	common_error err;
	config *cfg = config_load(path, log, &err);
	cr_assert_not_null(cfg, "%s", err.message);
	cr_assert_str_eq(cfg->providers[0].client_secret, "from-env-secret");

	/* The loaded secret is registered with the logger. */
	char *redacted = log_redact(log, "value from-env-secret here");
	cr_assert_str_eq(redacted, "value [redacted] here");
	free(redacted);
	config_free(cfg);
	log_ctx_free(log);
}

Test(config, secret_from_file)
{
	const char *secret_path = write_file("secret", "file-secret-value\n");
	char text[1024];
	snprintf(text, sizeof(text),
	         "[worker]\ntemplate_provider_id = a\n[provider.ionos]\nurl_api = https://x\n"
	         "client_secret_file = %s\n[postgres]\npassword_file = %s\n",
	         secret_path, secret_path);
	config *cfg = load_ok(text);
	cr_assert_str_eq(cfg->providers[0].client_secret, "file-secret-value");
	cr_assert_str_eq(cfg->postgres.password, "file-secret-value");
	config_free(cfg);
}

Test(config, secret_source_errors)
{
	unsetenv("NOT_SET_ANYWHERE");
	load_bad("[worker]\ntemplate_provider_id = a\n[provider.ionos]\nurl_api = https://x\n"
	         "client_secret_env = NOT_SET_ANYWHERE\n",
	         "[provider.ionos] client secret: environment variable NOT_SET_ANYWHERE is not set");
	load_bad("[worker]\ntemplate_provider_id = a\n[provider.ionos]\nurl_api = https://x\n"
	         "client_secret_env = A\nclient_secret_file = /b\n",
	         "both an environment variable and a file are set");
	load_bad("[postgres]\npassword_file = /nonexistent/pw\n", "cannot open [postgres] password file");
	write_file("empty", "");
	char text[512];
	snprintf(text, sizeof(text), "[redis]\npassword_file = %s/empty\n", tmpdir);
	load_bad(text, "is empty");
}

Test(config, print_masks_secrets)
{
	setenv("IONOS_SECRET", "printed-secret", 1);
	setenv("DCWORKER_POSTGRES_PASSWORD", "pg-secret-pw", 1);
	config *cfg = load_ok("[worker]\ntemplate_provider_id = a\n[provider.ionos]\n"
	                      "url_api = https://x\nclient_secret_env = IONOS_SECRET\n");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	config_print(cfg, out);
	fclose(out);
	cr_assert_null(strstr(buf, "printed-secret"), "%s", buf);
	cr_assert_null(strstr(buf, "pg-secret-pw"), "%s", buf);
	cr_assert_not_null(strstr(buf, "; client_secret = ******** (from environment IONOS_SECRET)"),
	                   "%s", buf);
	cr_assert_not_null(strstr(buf, "; password = ******** (from a DCWORKER_ override)"), "%s",
	                   buf);
	cr_assert_not_null(strstr(buf, "[provider.ionos]\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "queues = interactive,bulk\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "token_placement = default\n"), "%s", buf);

	/* The printed config loads again to the same values. */
	const char *again_path = write_file("again.ini", buf);
	common_error err;
	config *again = config_load(again_path, NULL, &err);
	cr_assert_not_null(again, "%s", err.message);
	cr_assert_eq(again->worker.in_flight, cfg->worker.in_flight);
	config_free(again);
	free(buf);
	config_free(cfg);
}

Test(config, provider_ok_loads)
{
	config *cfg = load_ok(provider_ok);
	cr_assert_eq(cfg->providers_count, 1);
	cr_assert_null(cfg->providers[0].client_id);
	config_free(cfg);
}

Test(config, example_file_loads)
{
	setenv("EXAMPLE_DNS_CLIENT_SECRET", "example-secret", 1);
	const char *source = getenv("DC_SOURCE_DIR");
	cr_assert_not_null(source, "DC_SOURCE_DIR is not set; run the test through ctest");
	char path[1024];
	snprintf(path, sizeof(path), "%s/config/dcworker.ini.example", source);
	common_error err;
	config *cfg = config_load(path, NULL, &err);
	cr_assert_not_null(cfg, "%s", err.message);
	cr_assert_eq(cfg->worker.in_flight, 256);
	const config_provider *p = config_find_provider(cfg, "example");
	cr_assert_not_null(p);
	cr_assert_str_eq(p->client_secret, "example-secret");
	config_free(cfg);
}

Test(config, unterminated_section_header_named)
{
	load_bad("[worker\na = 1\n", "%s:1: unterminated section header");
	load_bad("[redis]\nport = 6379\n  [worker\n", "%s:3: unterminated section header");
}

Test(config, zero_rate_disables_limit)
{
	config *cfg = load_ok("[worker]\ntemplate_provider_id = a\n"
	                      "[provider.ionos]\nurl_api = https://x\nrate = 0\n");
	cr_assert_float_eq(cfg->providers[0].rate, 0.0, 1e-9);
	config_free(cfg);
}
