/* Test harness for dcsandbox: child process, config and HTTPS requests. */
#include "test_sandbox_harness.h"

#include "support/support.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SBH_READY_TIMEOUT_MS 15000
#define SBH_BODY_CAP (16 * 1024 * 1024)

static const char WEB_TEMPLATE[] =
	"{\"providerId\":\"exampleservice.test\",\"providerName\":\"Example Service\","
	"\"serviceId\":\"web\",\"serviceName\":\"Website\",\"version\":1,"
	"\"records\":[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"%ip%\",\"ttl\":600},"
	"{\"type\":\"CNAME\",\"host\":\"www\",\"pointsTo\":\"@\",\"ttl\":600},"
	"{\"type\":\"TXT\",\"host\":\"_verify\",\"data\":\"token=%token%\",\"ttl\":600}]}";

static const char MAIL_TEMPLATE[] =
	"{\"providerId\":\"exampleservice.test\",\"providerName\":\"Example Service\","
	"\"serviceId\":\"mail\",\"serviceName\":\"Mail\",\"version\":1,"
	"\"records\":[{\"type\":\"MX\",\"host\":\"@\",\"pointsTo\":\"mx.mail.example.net\",\"priority\":10,\"ttl\":600}]}";

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool write_text(const char *dir, const char *name, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	fputs(text, f);
	return fclose(f) == 0;
}

static json_t *provider_json(const char *id, const char *name, const char *host, const char *templates, bool quirks)
{
	json_t *zone_records = json_pack("[{s:s, s:s, s:s, s:i}, {s:s, s:s, s:s, s:i}]",
		"type", "A", "name", "@", "data", "192.0.2.1", "ttl", 3600,
		"type", "CNAME", "name", "www", "data", "@", "ttl", 3600);
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:{s:b, s:b, s:b}, s:[{s:s, s:s, s:[s]}], s:{s:o, s:[]}}",
		"id", id, "name", name, "host", host, "templates_dir", templates, "auto_approve", 1,
		"rotate_refresh_tokens", !quirks,
		"quirks", "service_id_in_path", quirks, "refresh_credentials_in_query", quirks,
		"plain_text_token_errors", quirks,
		"clients", "client_id", SBH_CLIENT, "client_secret", SBH_SECRET, "redirect_uris", SBH_REDIRECT,
		"zones", SBH_ZONE, zone_records, "other.sandbox.test");
}

json_t *sbh_default_config(const char *templates)
{
	return json_pack("{s:[o, o]}", "providers",
		provider_json(SBH_ALPHA_ID, "Alpha DNS", SBH_ALPHA_HOST, templates, false),
		provider_json(SBH_BETA_ID, "Beta Domains", SBH_BETA_HOST, templates, true));
}

sbh *sbh_new(void)
{
	sbh *h = calloc(1, sizeof(*h));
	h->pid = -1;
	h->dir = ts_tempdir("dcsandbox-test");
	if (h->dir == NULL) {
		free(h);
		return NULL;
	}
	size_t len = strlen(h->dir) + 32;
	h->templates = malloc(len);
	snprintf(h->templates, len, "%s/templates", h->dir);
	h->log_path = malloc(len);
	snprintf(h->log_path, len, "%s/sandbox.log", h->dir);
	mkdir(h->templates, 0700);
	write_text(h->templates, "exampleservice.test.web.json", WEB_TEMPLATE);
	write_text(h->templates, "exampleservice.test.mail.json", MAIL_TEMPLATE);
	return h;
}

static void print_log(const sbh *h)
{
	FILE *f = fopen(h->log_path, "r");
	if (f == NULL)
		return;
	char line[1024];
	fprintf(stderr, "--- dcsandbox log (%s)\n", h->log_path);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

/* Handle one stdout line: record the port and the CA path. Returns true on "ready". */
static bool take_line(sbh *h, const char *line)
{
	if (strstr(line, "listening on https://") != NULL) {
		const char *colon = strrchr(line, ':');
		h->port = (int)strtol(colon + 1, NULL, 10);
	}
	if (strncmp(line, "ca_file: ", 9) == 0) {
		free(h->ca_file);
		h->ca_file = strdup(line + 9);
	}
	return strcmp(line, "ready") == 0;
}

/* Read stdout until the "ready" line, with a deadline. */
static bool wait_ready(sbh *h, int fd)
{
	double deadline = now_seconds() + SBH_READY_TIMEOUT_MS / 1000.0;
	char buf[8192];
	size_t len = 0;
	bool ready = false;
	while (!ready && now_seconds() < deadline && len < sizeof(buf) - 1) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		char *nl;
		while (!ready && (nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			ready = take_line(h, buf);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len - used + 1);
			len -= used;
		}
	}
	close(fd);
	return ready && h->port > 0;
}

bool sbh_start(sbh *h, const json_t *config, const char *const *args, size_t count)
{
	char config_path[1024], state_dir[1024], binary[1024];
	snprintf(config_path, sizeof(config_path), "%s/config.json", h->dir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", h->dir);
	const char *bin_dir = getenv("DC_BINARY_DIR");
	snprintf(binary, sizeof(binary), "%s/src/dcsandbox/dcsandbox", bin_dir != NULL ? bin_dir : ".");
	if (json_dump_file(config, config_path, JSON_INDENT(1)) != 0)
		return false;

	const char *argv[64] = {binary, "--config", config_path, "--port", "0", "--state-dir", state_dir, "--seed", "7"};
	size_t argc = 9;
	for (size_t i = 0; i < count && argc < 62; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;

	int pipefd[2];
	if (pipe(pipefd) != 0)
		return false;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		int log = open(h->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(pipefd[1], STDOUT_FILENO);
		if (log >= 0)
			dup2(log, STDERR_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		execv(binary, (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	h->pid = pid;
	if (!wait_ready(h, pipefd[0])) {
		fprintf(stderr, "dcsandbox did not become ready\n");
		print_log(h);
		return false;
	}
	return true;
}

sbh *sbh_start_default(const char *const *args, size_t count)
{
	sbh *h = sbh_new();
	if (h == NULL)
		return NULL;
	json_t *config = sbh_default_config(h->templates);
	bool ok = sbh_start(h, config, args, count);
	json_decref(config);
	if (!ok) {
		sbh_free(h);
		return NULL;
	}
	return h;
}

int sbh_stop_process(sbh *h)
{
	if (h->pid <= 0)
		return -1;
	kill(h->pid, SIGTERM);
	int status = -1;
	for (int i = 0; i < 100; i++) {
		if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
			h->pid = -1;
			return status;
		}
		usleep(50000);
	}
	kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
	h->pid = -1;
	return -1;
}

/* Fail the test when the sanitizers reported anything in the sandbox's log. */
static void check_log(const sbh *h)
{
	FILE *f = fopen(h->log_path, "r");
	if (f == NULL)
		return;
	char line[1024];
	bool clean = true;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, "Sanitizer") != NULL || strstr(line, "runtime error:") != NULL)
			clean = false;
	}
	fclose(f);
	if (!clean)
		print_log(h);
	/* An assert, not an expect: a failed expect in a suite's fini is not reported. */
	cr_assert(clean, "dcsandbox reported a sanitizer error (log above)");
}

void sbh_free(sbh *h)
{
	if (h == NULL)
		return;
	if (h->pid > 0)
		sbh_stop_process(h);
	check_log(h);
	ts_rmtree(h->dir);
	free(h->dir);
	free(h->ca_file);
	free(h->log_path);
	free(h->templates);
	free(h);
}

typedef struct buffer {
	char *data;
	size_t len;
} buffer;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	buffer *b = arg;
	size_t n = size * nmemb;
	if (b->len + n > SBH_BODY_CAP)
		return 0;
	char *data = realloc(b->data, b->len + n + 1);
	if (data == NULL)
		return 0;
	memcpy(data + b->len, ptr, n);
	b->data = data;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	sbh_resp *r = arg;
	size_t n = size * nmemb;
	char line[4096];
	size_t len = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
	memcpy(line, ptr, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	char *colon = strchr(line, ':');
	if (colon == NULL)
		return n;
	*colon = '\0';
	const char *value = colon + 1;
	while (*value == ' ')
		value++;
	if (strcasecmp(line, "Retry-After") == 0)
		r->retry_after = strdup(value);
	else if (strcasecmp(line, "WWW-Authenticate") == 0)
		r->www_authenticate = strdup(value);
	return n;
}

void sbh_request(sbh *h, const char *method, const char *host, const char *path, const char *bearer,
	const char *content_type, const char *body, sbh_resp *out)
{
	memset(out, 0, sizeof(*out));
	CURL *curl = curl_easy_init();
	char url[8192], resolve[256], auth[512], ctype[256];
	snprintf(url, sizeof(url), "https://%s:%d%s", host, h->port, path);
	snprintf(resolve, sizeof(resolve), "%s:%d:127.0.0.1", host, h->port);
	struct curl_slist *resolves = curl_slist_append(NULL, resolve);
	struct curl_slist *headers = NULL;
	if (bearer != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
		headers = curl_slist_append(headers, auth);
	}
	if (content_type != NULL) {
		snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
		headers = curl_slist_append(headers, ctype);
	}
	buffer b = {0};
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_RESOLVE, resolves);
	curl_easy_setopt(curl, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body != NULL ? body : "");
	}

	double start = now_seconds();
	out->curl_code = (int)curl_easy_perform(curl);
	out->seconds = now_seconds() - start;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
	char *location = NULL, *type = NULL;
	curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &location);
	curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
	out->location = location != NULL ? strdup(location) : NULL;
	out->content_type = type != NULL ? strdup(type) : NULL;
	out->body = b.data != NULL ? b.data : strdup("");
	out->body_len = b.len;
	curl_slist_free_all(headers);
	curl_slist_free_all(resolves);
	curl_easy_cleanup(curl);
}

void sbh_resp_clear(sbh_resp *r)
{
	free(r->body);
	free(r->location);
	free(r->content_type);
	free(r->retry_after);
	free(r->www_authenticate);
	memset(r, 0, sizeof(*r));
}

char *sbh_query_value(const char *url, const char *name)
{
	const char *q = url != NULL ? strchr(url, '?') : NULL;
	size_t nlen = strlen(name);
	while (q != NULL) {
		q++;
		if (strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
			const char *v = q + nlen + 1;
			size_t len = strcspn(v, "&");
			CURL *curl = curl_easy_init();
			int outlen = 0;
			char *dec = curl_easy_unescape(curl, v, (int)len, &outlen);
			char *copy = dec != NULL ? strdup(dec) : NULL;
			curl_free(dec);
			curl_easy_cleanup(curl);
			return copy;
		}
		q = strchr(q, '&');
	}
	return NULL;
}

json_t *sbh_authorize(sbh *h, const char *host, const char *tpl_provider, const char *scope, const char *hosts)
{
	char path[2048];
	snprintf(path, sizeof(path),
		"/consent/v2/domainTemplates/providers/%s?domain=%s&host=%s&client_id=%s"
		"&redirect_uri=https%%3A%%2F%%2Fapp.sandbox.test%%2Fcallback&scope=%s&state=s1",
		tpl_provider, SBH_ZONE, hosts, SBH_CLIENT, scope);
	sbh_resp r;
	sbh_request(h, "GET", host, path, NULL, NULL, NULL, &r);
	char *code = sbh_query_value(r.location, "code");
	sbh_resp_clear(&r);
	if (code == NULL)
		return NULL;

	char query[1024];
	snprintf(query, sizeof(query),
		"/v2/oauth/access_token?grant_type=authorization_code&code=%s"
		"&redirect_uri=https%%3A%%2F%%2Fapp.sandbox.test%%2Fcallback&client_id=%s&client_secret=%s",
		code, SBH_CLIENT, SBH_SECRET);
	free(code);
	sbh_request(h, "POST", host, query, NULL, NULL, NULL, &r);
	json_t *tokens = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
	sbh_resp_clear(&r);
	return tokens;
}

json_t *sbh_zone(sbh *h, const char *provider_id, const char *zone_name)
{
	char path[512];
	snprintf(path, sizeof(path), "/admin/providers/%s/zones/%s", provider_id, zone_name);
	sbh_resp r;
	sbh_request(h, "GET", "localhost", path, NULL, NULL, NULL, &r);
	json_t *body = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
	sbh_resp_clear(&r);
	json_t *records = json_incref(json_object_get(body, "records"));
	json_decref(body);
	return records;
}
