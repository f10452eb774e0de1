/* Fixture of the daemon tests: servers on loopback and the dcworker binary. */
#include "test_daemon_env.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "migrate.h"

/* A fixed test key (32 bytes of 0x01..0x20, base64), never used outside tests. */
#define DD_TOKEN_KEYS "test1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define DD_SECRET_ENV "DD_ALPHA_CLIENT_SECRET"

long long dd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static bool migrate(dd_env *env)
{
	common_error err = {0};
	char dir[1024];
	const char *source = getenv("DC_SOURCE_DIR");

	snprintf(dir, sizeof(dir), "%s/migrations", source != NULL ? source : ".");
	if (migrate_run(env->db, dir, NULL, NULL, &err) != COMMON_OK) {
		fprintf(stderr, "migrations failed: %s\n", err.message);
		return false;
	}
	return true;
}

static bool write_config(dd_env *env, const char *extra)
{
	FILE *f;

	if (asprintf(&env->config_path, "%s/dcworker.ini", env->dir) < 0)
		return false;
	f = fopen(env->config_path, "w");
	if (f == NULL)
		return false;
	fprintf(f,
	        "[redis]\nhost = 127.0.0.1\nport = %d\n\n"
	        "[postgres]\nconninfo = %s\n\n"
	        "[worker]\ntemplate_provider_id = %s\nin_flight = 16\nvisibility_timeout_s = 5\n"
	        "grace_period_s = 10\nmax_attempts = 3\nbackoff_base_ms = 100\n"
	        "backoff_cap_ms = 400\nrefresh_skew_s = 0\n%s\n\n"
	        "[log]\nlevel = debug\n\n"
	        "[dns]\nservers = %s\ntimeout_ms = 2000\n\n"
	        "[guard]\nallow_networks = 127.0.0.1/32\nallow_ports = %d\nca_file = %s\n\n"
	        "[provider.%s]\nprovider_id = %s\nurl_api = https://%s:%d\nclient_id = %s\n"
	        "client_secret_env = %s\n",
	        ts_redis_port(env->redis), ts_postgres_conninfo(env->postgres), SBH_TPL_PROVIDER,
	        extra != NULL ? extra : "", ts_dnsmasq_servers(env->dns), env->sandbox->port,
	        env->sandbox->ca_file, DD_PROVIDER, SBH_ALPHA_ID, SBH_ALPHA_HOST, env->sandbox->port,
	        SBH_CLIENT, DD_SECRET_ENV);
	return fclose(f) == 0;
}

/* Starts the sandbox with the harness's config: its zone renamed to DD_BUSY_ZONE, DD_ZONE empty. */
static sbh *start_sandbox(const char *const *args, size_t count)
{
	sbh *h = sbh_new();
	json_t *config;
	size_t i;
	json_t *provider;

	if (h == NULL)
		return NULL;
	config = sbh_default_config(h->templates);
	json_array_foreach(json_object_get(config, "providers"), i, provider) {
		json_t *zones = json_object_get(provider, "zones");

		json_object_set(zones, DD_BUSY_ZONE, json_object_get(zones, SBH_ZONE));
		json_object_set_new(zones, DD_ZONE, json_array());
		json_object_del(zones, SBH_ZONE);
	}
	bool ok = sbh_start(h, config, args, count);

	json_decref(config);
	if (!ok) {
		sbh_free(h);
		return NULL;
	}
	return h;
}

static dd_env *env_new(const char *extra_worker_ini, const char *const *sandbox_args,
                       size_t sandbox_arg_count, bool aof)
{
	dd_env *env = calloc(1, sizeof(*env));
	char txt[256];

	if (env == NULL)
		return NULL;
	setenv("DCWORKER_TOKEN_KEYS", DD_TOKEN_KEYS, 1);
	setenv(DD_SECRET_ENV, SBH_SECRET, 1);

	env->dir = ts_tempdir("dcworker-daemon");
	env->redis = ts_redis_start(aof);
	env->postgres = ts_postgres_start();
	env->sandbox = start_sandbox(sandbox_args, sandbox_arg_count);
	if (env->dir == NULL || env->redis == NULL || env->postgres == NULL || env->sandbox == NULL)
		goto fail;

	snprintf(txt, sizeof(txt), "--txt-record=_domainconnect.%s,%s:%d", DD_ZONE, SBH_ALPHA_HOST,
	         env->sandbox->port);
	const char *dns_args[] = {"--local=/test/", "--address=/" SBH_ALPHA_HOST "/127.0.0.1",
	                          "--address=/" SBH_BETA_HOST "/127.0.0.1", txt};
	env->dns = ts_dnsmasq_start(dns_args, 4);
	if (env->dns == NULL)
		goto fail;

	env->db = PQconnectdb(ts_postgres_conninfo(env->postgres));
	if (PQstatus(env->db) != CONNECTION_OK || !migrate(env))
		goto fail;
	env->redis_conn = redisConnect("127.0.0.1", ts_redis_port(env->redis));
	if (env->redis_conn == NULL || env->redis_conn->err != 0)
		goto fail;
	if (asprintf(&env->log_path, "%s/dcworker.log", env->dir) < 0 ||
	    !write_config(env, extra_worker_ini))
		goto fail;
	return env;
fail:
	dd_env_free(env, false);
	return NULL;
}

dd_env *dd_env_new(const char *extra_worker_ini, const char *const *sandbox_args,
                   size_t sandbox_arg_count)
{
	return env_new(extra_worker_ini, sandbox_args, sandbox_arg_count, false);
}

dd_env *dd_env_new_aof(const char *extra_worker_ini, const char *const *sandbox_args,
                       size_t sandbox_arg_count)
{
	return env_new(extra_worker_ini, sandbox_args, sandbox_arg_count, true);
}

bool dd_daemon_start(dd_env *env, int processes)
{
	char binary[1024];
	char count[16];
	const char *build = getenv("DC_BINARY_DIR");
	pid_t pid;

	snprintf(binary, sizeof(binary), "%s/src/dcworker/dcworker", build != NULL ? build : ".");
	snprintf(count, sizeof(count), "%d", processes);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		int fd = open(env->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execl(binary, binary, "--config", env->config_path, "--processes", count, (char *)NULL);
		_exit(127);
	}
	env->pid = pid;

	/* Give it time to fail fast (bad config, old schema). */
	sleep_ms(300);
	int status;
	if (waitpid(pid, &status, WNOHANG) == pid) {
		env->pid = 0;
		return false;
	}
	return true;
}

int dd_daemon_stop(dd_env *env, int signum, long timeout_ms)
{
	long long deadline = dd_now_ms() + timeout_ms;
	int status;

	if (env->pid == 0)
		return -1;
	kill(env->pid, signum);
	while (dd_now_ms() < deadline) {
		if (waitpid(env->pid, &status, WNOHANG) == env->pid) {
			env->pid = 0;
			return status;
		}
		sleep_ms(20);
	}
	return -1;
}

char *dd_log(dd_env *env)
{
	FILE *f = fopen(env->log_path, "r");
	char *text = NULL;
	size_t size = 0;

	if (f == NULL)
		return strdup("");
	FILE *mem = open_memstream(&text, &size);
	char buf[4096];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, mem);
	fclose(f);
	fclose(mem);
	return text;
}

long dd_log_count(dd_env *env, const char *text)
{
	char *log = dd_log(env);
	long count = 0;

	for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n"))
		count += strstr(line, text) != NULL;
	free(log);
	return count;
}

void dd_env_free(dd_env *env, bool print_log)
{
	if (env == NULL)
		return;
	if (env->pid != 0 && dd_daemon_stop(env, SIGTERM, 15000) < 0) {
		kill(env->pid, SIGKILL);
		waitpid(env->pid, NULL, 0);
	}
	if (print_log && env->log_path != NULL) {
		char *log = dd_log(env);

		fprintf(stderr, "---- dcworker log ----\n%s---- end ----\n", log);
		free(log);
	}
	if (env->redis_conn != NULL)
		redisFree(env->redis_conn);
	PQfinish(env->db);
	sbh_free(env->sandbox);
	ts_dnsmasq_stop(env->dns);
	ts_postgres_stop(env->postgres);
	ts_redis_stop(env->redis);
	ts_rmtree(env->dir);
	free(env->dir);
	free(env->config_path);
	free(env->log_path);
	free(env);
}

bool dd_enqueue(dd_env *env, const char *job)
{
	redisReply *r = redisCommand(env->redis_conn, "XADD {dc}:queue:interactive * job %s", job);
	bool ok = r != NULL && r->type == REDIS_REPLY_STRING;

	if (r != NULL)
		freeReplyObject(r);
	return ok;
}

char *dd_query(dd_env *env, const char *sql, const char *param)
{
	const char *params[] = {param};
	PGresult *res = PQexecParams(env->db, sql, param != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
	char *value = NULL;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		value = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return value;
}

json_t *dd_wait_result(dd_env *env, const char *id, long timeout_ms, char **state)
{
	long long deadline = dd_now_ms() + timeout_ms;

	while (dd_now_ms() < deadline) {
		const char *params[] = {id};
		PGresult *res = PQexecParams(env->db,
		                             "SELECT state, result::text FROM dc_jobs WHERE id = $1"
		                             " AND state NOT IN ('queued', 'running')",
		                             1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			json_t *result = json_loads(PQgetvalue(res, 0, 1), 0, NULL);

			if (state != NULL)
				*state = strdup(PQgetvalue(res, 0, 0));
			PQclear(res);
			return result;
		}
		PQclear(res);
		sleep_ms(50);
	}
	return NULL;
}

char *dd_consent_code(dd_env *env, const char *zone)
{
	sbh_resp r;
	char *code;
	char path[512];

	snprintf(path, sizeof(path),
	         "/consent/v2/domainTemplates/providers/" SBH_TPL_PROVIDER
	         "?domain=%s&host=&client_id=" SBH_CLIENT
	         "&redirect_uri=https%%3A%%2F%%2Fapp.sandbox.test%%2Fcallback&scope=web&state=s1",
	         zone);
	sbh_request(env->sandbox, "GET", SBH_ALPHA_HOST, path, NULL, NULL, NULL, &r);
	code = r.location != NULL ? sbh_query_value(r.location, "code") : NULL;
	sbh_resp_clear(&r);
	return code;
}

char *dd_authorize(dd_env *env, const char *id, const char *zone)
{
	char *code = dd_consent_code(env, zone);
	json_t *job;
	char *text;
	char *authorization = NULL;

	if (code == NULL)
		return NULL;
	job = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "type", "exchange_code",
	                "dns_provider", DD_PROVIDER, "code", code, "redirect_uri", SBH_REDIRECT,
	                "domain", zone);
	text = json_dumps(job, JSON_COMPACT);
	json_decref(job);
	free(code);
	if (dd_enqueue(env, text)) {
		json_t *result = dd_wait_result(env, id, 20000, NULL);
		const char *value = json_string_value(json_object_get(result, "authorization_id"));

		authorization = value != NULL ? strdup(value) : NULL;
		json_decref(result);
	}
	free(text);
	return authorization;
}

long dd_sandbox_count(dd_env *env, const char *endpoint)
{
	sbh_resp r;
	json_t *body;
	json_t *per_status;
	const char *key;
	json_t *value;
	long total = 0;

	sbh_request(env->sandbox, "GET", "localhost", "/admin/counters", NULL, NULL, NULL, &r);
	body = json_loads(r.body, 0, NULL);
	sbh_resp_clear(&r);
	per_status = json_object_get(json_object_get(json_object_get(body, "requests"), SBH_ALPHA_ID),
	                             endpoint);
	json_object_foreach(per_status, key, value)
		total += (long)json_integer_value(value);
	json_decref(body);
	return total;
}

bool dd_sandbox_faults(dd_env *env, const char *faults_json)
{
	sbh_resp r;
	bool ok;

	sbh_request(env->sandbox, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/faults",
	            NULL, "application/json", faults_json, &r);
	ok = r.status == 200;
	if (!ok)
		fprintf(stderr, "faults rejected: %ld %s\n", r.status, r.body);
	sbh_resp_clear(&r);
	return ok;
}

char *dd_apply_text(const char *id, const char *authorization, const char *ip)
{
	json_t *job = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "apply",
	                        "authorization_id", authorization, "service_id", "web", "params",
	                        "ip", ip, "token", "verify-1");
	char *text = json_dumps(job, JSON_COMPACT);

	json_decref(job);
	return text;
}

pid_t dd_last_worker_pid(dd_env *env)
{
	static const char marker[] = "started with pid ";
	char *log = dd_log(env);
	pid_t pid = 0;

	for (char *p = strstr(log, marker); p != NULL; p = strstr(p + 1, marker))
		pid = (pid_t)strtol(p + strlen(marker), NULL, 10);
	free(log);
	return pid;
}

bool dd_wait_running(dd_env *env, const char *id, long timeout_ms)
{
	long long deadline = dd_now_ms() + timeout_ms;

	while (dd_now_ms() < deadline) {
		char *state = dd_query(env, "SELECT state FROM dc_jobs WHERE id = $1", id);
		bool running = state != NULL && strcmp(state, "running") == 0;

		free(state);
		if (running)
			return true;
		sleep_ms(20);
	}
	return false;
}

int dd_http_get(int port, const char *path, char **body)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char request[512];
	char *text = NULL;
	size_t size = 0;
	int status = 0;

	if (body != NULL)
		*body = NULL;
	if (fd < 0)
		return 0;
	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		close(fd);
		return 0;
	}
	snprintf(request, sizeof(request),
	         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	if (write(fd, request, strlen(request)) < 0) {
		close(fd);
		return 0;
	}
	FILE *mem = open_memstream(&text, &size);
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, mem);
	fclose(mem);
	close(fd);
	if (text != NULL && strncmp(text, "HTTP/1.", 7) == 0)
		status = (int)strtol(text + 9, NULL, 10);
	char *start = text != NULL ? strstr(text, "\r\n\r\n") : NULL;

	if (body != NULL)
		*body = strdup(start != NULL ? start + 4 : "");
	free(text);
	return status;
}

int dd_free_port(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = 0;

	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
		port = ntohs(addr.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}
