/*
 * sandbox_apply: a load generator for dcsandbox's apply endpoint.
 *
 * It writes a one-provider config and a two-record template to a temporary
 * folder and starts the dcsandbox binary on 127.0.0.1, pinned to one CPU
 * with sched_setaffinity (the call taskset makes). It obtains an access
 * token through consent and the code exchange. Then a libcurl multi handle
 * keeps a fixed number of keep-alive HTTPS connections busy until a request
 * count or a time limit is reached. It reports requests per second and latency
 * percentiles for apply, and for GET settings as a baseline (the cost of
 * TLS and HTTP alone on the same server).
 *
 * Everything stays on loopback: the program only ever connects to the
 * sandbox it started.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_HOST "api.bench.sandbox.test"
#define BENCH_ZONE "bench.sandbox.test"
#define BENCH_CLIENT "bench.client"
#define BENCH_SECRET "bench-secret"
#define BENCH_REDIRECT "https://app.sandbox.test/callback"
/* The redirect URI percent-encoded, written for use inside a printf format. */
#define BENCH_REDIRECT_FMT "https%%3A%%2F%%2Fapp.sandbox.test%%2Fcallback"
#define BENCH_MAX_CONNECTIONS 256
#define BENCH_MAX_REQUESTS 10000000L
#define BENCH_MAX_SECONDS 600L

static const char TEMPLATE[] =
	"{\"providerId\":\"bench.service\",\"providerName\":\"Bench\",\"serviceId\":\"site\","
	"\"serviceName\":\"Site\",\"version\":1,\"records\":["
	"{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"%ip%\",\"ttl\":600},"
	"{\"type\":\"TXT\",\"host\":\"_verify\",\"data\":\"v=%token%\",\"ttl\":600}]}";

typedef struct options {
	const char *sandbox;  /* dcsandbox binary */
	long requests;        /* per phase */
	long seconds;         /* time limit per phase */
	int connections;
	int server_cpu;       /* -1 = no pinning */
	int client_cpu;
	unsigned threads;     /* sandbox --threads */
} options;

typedef struct phase_result {
	double server_cpu_s; /* dcsandbox user+system CPU time during the phase */
	long done;
	long ok;
	long other;
	double seconds;
	double p50_ms;
	double p99_ms;
} phase_result;

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool parse_long(const char *text, long min, long max, long *out)
{
	errno = 0;
	char *end = NULL;
	long v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static void usage(void)
{
	fputs("usage: sandbox_apply --sandbox PATH [--requests N] [--seconds S] [--connections C]\n"
	      "                     [--server-cpu N] [--client-cpu N] [--threads N]\n"
	      "Measures dcsandbox apply requests per second over keep-alive HTTPS on 127.0.0.1.\n"
	      "  --requests N     requests per phase (default 50000)\n"
	      "  --seconds S      time limit per phase (default 30)\n"
	      "  --connections C  keep-alive connections (default 16)\n"
	      "  --server-cpu N   pin dcsandbox to CPU N (default 0; -1 = no pinning)\n"
	      "  --client-cpu N   pin this program to CPU N (default 1; -1 = no pinning)\n"
	      "  --threads N      dcsandbox server threads (default 1)\n",
		stderr);
}

static bool parse_options(int argc, char **argv, options *o)
{
	*o = (options){.requests = 50000, .seconds = 30, .connections = 16, .server_cpu = 0, .client_cpu = 1,
		.threads = 1};
	static const struct option longopts[] = {
		{"sandbox", required_argument, NULL, 's'}, {"requests", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 't'}, {"connections", required_argument, NULL, 'c'},
		{"server-cpu", required_argument, NULL, 'S'}, {"client-cpu", required_argument, NULL, 'C'},
		{"threads", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0},
	};
	int c;
	long v = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 's': o->sandbox = optarg; break;
		case 'n': ok = parse_long(optarg, 1, BENCH_MAX_REQUESTS, &o->requests); break;
		case 't': ok = parse_long(optarg, 1, BENCH_MAX_SECONDS, &o->seconds); break;
		case 'c': ok = parse_long(optarg, 1, BENCH_MAX_CONNECTIONS, &v); o->connections = (int)v; break;
		case 'S': ok = parse_long(optarg, -1, 1023, &v); o->server_cpu = (int)v; break;
		case 'C': ok = parse_long(optarg, -1, 1023, &v); o->client_cpu = (int)v; break;
		case 'T': ok = parse_long(optarg, 1, 64, &v); o->threads = (unsigned)v; break;
		default: ok = false; break;
		}
		if (!ok) {
			usage();
			return false;
		}
	}
	if (o->sandbox == NULL) {
		usage();
		return false;
	}
	return true;
}

static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		fprintf(stderr, "sandbox_apply: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	fputs(text, f);
	return fclose(f) == 0;
}

/* Start dcsandbox; return its pid and fill PORT and CA_FILE from its "ready" output. */
static pid_t start_sandbox(const options *o, const char *dir, int *port, char *ca_file, size_t cap)
{
	char config[1024], state[1024], templates[1024], path[1200], threads[16];
	snprintf(templates, sizeof(templates), "%s/templates", dir);
	snprintf(config, sizeof(config), "%s/config.json", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(threads, sizeof(threads), "%u", o->threads);
	mkdir(templates, 0700);
	snprintf(path, sizeof(path), "%s/bench.service.site.json", templates);
	char text[2048];
	snprintf(text, sizeof(text),
		"{\"providers\":[{\"id\":\"bench.sandbox.test\",\"name\":\"Bench DNS\",\"host\":\"" BENCH_HOST "\","
		"\"templates_dir\":\"%s\",\"auto_approve\":true,\"clients\":[{\"client_id\":\"" BENCH_CLIENT "\","
		"\"client_secret\":\"" BENCH_SECRET "\",\"redirect_uris\":[\"" BENCH_REDIRECT "\"]}],"
		"\"zones\":{\"" BENCH_ZONE "\":[{\"type\":\"MX\",\"name\":\"@\",\"data\":\"mx.example.net\","
		"\"priority\":10,\"ttl\":600}]}}]}",
		templates);
	if (!write_file(path, TEMPLATE) || !write_file(config, text))
		return -1;

	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin(o->server_cpu);
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(o->sandbox, o->sandbox, "--config", config, "--port", "0", "--state-dir", state, "--quiet",
			"--threads", threads, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);

	char buf[4096];
	size_t len = 0;
	double deadline = now_seconds() + 15;
	bool ready = false;
	while (!ready && now_seconds() < deadline && len < sizeof(buf) - 1) {
		struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		ssize_t n = read(fds[0], buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		ready = strstr(buf, "\nready\n") != NULL;
	}
	close(fds[0]);
	const char *listen = strstr(buf, "listening on https://127.0.0.1:");
	const char *ca = strstr(buf, "ca_file: ");
	if (!ready || listen == NULL || ca == NULL) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	*port = (int)strtol(listen + strlen("listening on https://127.0.0.1:"), NULL, 10);
	ca += strlen("ca_file: ");
	size_t ca_len = strcspn(ca, "\n");
	snprintf(ca_file, cap, "%.*s", (int)ca_len, ca);
	return pid;
}

typedef struct body {
	char data[4096];
	size_t len;
} body;

static size_t keep_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	body *b = arg;
	size_t n = size * nmemb;
	size_t room = sizeof(b->data) - 1 - b->len;
	size_t take = n < room ? n : room;
	memcpy(b->data + b->len, ptr, take);
	b->len += take;
	b->data[b->len] = '\0';
	return n;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

static CURL *make_handle(int port, const char *ca_file, struct curl_slist *resolve)
{
	(void)port;
	CURL *e = curl_easy_init();
	curl_easy_setopt(e, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	return e;
}

/* Consent (auto-approved) and the code exchange; the access token goes to TOKEN. */
static bool get_token(int port, const char *ca_file, struct curl_slist *resolve, char *token, size_t cap)
{
	char url[1024];
	snprintf(url, sizeof(url), "https://" BENCH_HOST ":%d/consent/v2/domainTemplates/providers/bench.service"
		"?domain=" BENCH_ZONE "&host=&client_id=" BENCH_CLIENT "&redirect_uri=" BENCH_REDIRECT_FMT
		"&scope=site&state=b", port);
	CURL *e = make_handle(port, ca_file, resolve);
	body b = {.len = 0};
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	char *location = NULL;
	bool ok = curl_easy_perform(e) == CURLE_OK && curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
		location != NULL && strstr(location, "code=") != NULL;
	char code[128] = "";
	if (ok)
		snprintf(code, sizeof(code), "%.*s", (int)strcspn(strstr(location, "code=") + 5, "&"),
			strstr(location, "code=") + 5);
	curl_easy_cleanup(e);
	if (!ok)
		return false;

	snprintf(url, sizeof(url), "https://" BENCH_HOST ":%d/v2/oauth/access_token?grant_type=authorization_code"
		"&code=%s&redirect_uri=" BENCH_REDIRECT_FMT "&client_id=" BENCH_CLIENT "&client_secret=" BENCH_SECRET,
		port, code);
	e = make_handle(port, ca_file, resolve);
	b.len = 0;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	ok = curl_easy_perform(e) == CURLE_OK;
	curl_easy_cleanup(e);
	const char *at = ok ? strstr(b.data, "\"access_token\":\"") : NULL;
	if (at == NULL)
		return false;
	at += strlen("\"access_token\":\"");
	snprintf(token, cap, "%.*s", (int)strcspn(at, "\""), at);
	return true;
}

/* Return the user+system CPU seconds of PID from /proc, or -1. */
static double process_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15 (utime, stime) follow the ")" that ends the command name. */
	const char *p = strrchr(buf, ')');
	unsigned long utime = 0, stime = 0;
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct slot {
	CURL *easy;
	double started;
} slot;

/* Run one phase: METHOD URL over the connections until the count or the time limit. */
static void run_phase(const options *o, pid_t server, int port, const char *ca_file, struct curl_slist *resolve,
	struct curl_slist *headers, const char *url, bool post, phase_result *out)
{
	memset(out, 0, sizeof(*out));
	CURLM *multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->connections);
	double *latency = malloc(sizeof(double) * (size_t)o->requests);
	slot *slots = calloc((size_t)o->connections, sizeof(slot));

	long started = 0;
	double cpu_begin = process_cpu_seconds(server);
	double begin = now_seconds();
	double deadline = begin + (double)o->seconds;
	for (int i = 0; i < o->connections && started < o->requests; i++) {
		slots[i].easy = make_handle(port, ca_file, resolve);
		curl_easy_setopt(slots[i].easy, CURLOPT_URL, url);
		curl_easy_setopt(slots[i].easy, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(slots[i].easy, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, &slots[i]);
		if (post)
			curl_easy_setopt(slots[i].easy, CURLOPT_POSTFIELDS, "");
		slots[i].started = now_seconds();
		curl_multi_add_handle(multi, slots[i].easy);
		started++;
	}

	int running = 1;
	while (running > 0) {
		curl_multi_perform(multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			slot *s = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			long status = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			double t = now_seconds();
			latency[out->done++] = (t - s->started) * 1000.0;
			if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
				out->ok++;
			else
				out->other++;
			curl_multi_remove_handle(multi, s->easy);
			if (started < o->requests && t < deadline) {
				s->started = t;
				curl_multi_add_handle(multi, s->easy);
				started++;
				running++;
			}
		}
		if (running > 0)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	out->seconds = now_seconds() - begin;
	out->server_cpu_s = process_cpu_seconds(server) - cpu_begin;

	qsort(latency, (size_t)out->done, sizeof(double), compare_doubles);
	if (out->done > 0) {
		out->p50_ms = latency[out->done / 2];
		out->p99_ms = latency[(size_t)((double)out->done * 0.99)];
	}
	for (int i = 0; i < o->connections; i++)
		curl_easy_cleanup(slots[i].easy);
	free(slots);
	free(latency);
	curl_multi_cleanup(multi);
}

static void print_phase(const char *name, const phase_result *r)
{
	printf("%-9s requests=%ld ok=%ld other=%ld seconds=%.2f rate=%.0f/s p50=%.2fms p99=%.2fms "
	       "server_cpu=%.2fs (%.0f%% of one core) per_server_cpu_second=%.0f\n",
		name, r->done, r->ok, r->other, r->seconds, r->seconds > 0 ? (double)r->done / r->seconds : 0, r->p50_ms,
		r->p99_ms, r->server_cpu_s, r->seconds > 0 ? 100.0 * r->server_cpu_s / r->seconds : 0,
		r->server_cpu_s > 0 ? (double)r->done / r->server_cpu_s : 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	options o;
	if (!parse_options(argc, argv, &o))
		return 2;
	pin(o.client_cpu);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	char dir[] = "/tmp/sandbox_apply.XXXXXX";
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	int port = 0;
	char ca_file[1024];
	pid_t pid = start_sandbox(&o, dir, &port, ca_file, sizeof(ca_file));
	if (pid < 0) {
		fprintf(stderr, "sandbox_apply: dcsandbox did not start (%s)\n", o.sandbox);
		return 1;
	}

	int status = 1;
	char resolve_entry[128], token[128], auth[256], url[1024];
	snprintf(resolve_entry, sizeof(resolve_entry), BENCH_HOST ":%d:127.0.0.1", port);
	struct curl_slist *resolve = curl_slist_append(NULL, resolve_entry);
	if (!get_token(port, ca_file, resolve, token, sizeof(token))) {
		fprintf(stderr, "sandbox_apply: consent or code exchange failed\n");
		goto out;
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	struct curl_slist *headers = curl_slist_append(NULL, auth);

	printf("sandbox_apply: connections=%d requests=%ld seconds=%ld server_cpu=%d client_cpu=%d threads=%u\n",
		o.connections, o.requests, o.seconds, o.server_cpu, o.client_cpu, o.threads);
	phase_result settings, apply;
	snprintf(url, sizeof(url), "https://" BENCH_HOST ":%d/v2/" BENCH_ZONE "/settings", port);
	run_phase(&o, pid, port, ca_file, resolve, NULL, url, false, &settings);
	print_phase("settings", &settings);
	snprintf(url, sizeof(url), "https://" BENCH_HOST ":%d/v2/domainTemplates/providers/bench.service/services/site/apply"
		"?domain=" BENCH_ZONE "&host=&ip=192.0.2.44&token=abc&force=1", port);
	run_phase(&o, pid, port, ca_file, resolve, headers, url, true, &apply);
	print_phase("apply", &apply);
	if (settings.done > 0 && apply.seconds > 0 && settings.seconds > 0)
		printf("ratio     apply/settings=%.2f\n",
			((double)apply.done / apply.seconds) / ((double)settings.done / settings.seconds));
	fflush(stdout);
	curl_slist_free_all(headers);
	status = apply.other == 0 && settings.other == 0 ? 0 : 1;
out:
	curl_slist_free_all(resolve);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	curl_global_cleanup();
	return status;
}
