/*
 * Tests of the test support library against real clients: libcurl for
 * HTTPS, c-ares for DNS, hiredis for Redis and libpq for PostgreSQL.
 */
#include "support/support.h"

#include <arpa/inet.h>
#include <ares.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Helpers: clock and libcurl */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct buffer {
	char data[4096];
	size_t len;
} buffer;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	buffer *b = userdata;
	size_t n = size * nmemb;
	size_t room = sizeof b->data - 1 - b->len;
	size_t take = n < room ? n : room;
	memcpy(b->data + b->len, ptr, take);
	b->len += take;
	b->data[b->len] = '\0';
	return n;
}

typedef struct fetch {
	const char *url;
	const char *ca_file;   /* NULL: libcurl's default bundle */
	const char *resolve;   /* "host:port:127.0.0.1" or NULL */
	const char *post_body; /* NULL: GET */
	size_t post_len;
	const char *header;    /* one extra request header or NULL */
	CURLcode rc;
	long status;
	long elapsed_ms;
	buffer body;
	buffer headers;
} fetch;

static void run_fetch_with(CURL *curl, fetch *f)
{
	struct curl_slist *resolve = NULL;
	struct curl_slist *headers = NULL;

	curl_easy_setopt(curl, CURLOPT_URL, f->url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &f->body);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &f->headers);
	curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	if (f->ca_file != NULL)
		curl_easy_setopt(curl, CURLOPT_CAINFO, f->ca_file);
	if (f->resolve != NULL) {
		resolve = curl_slist_append(NULL, f->resolve);
		curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
	}
	if (f->post_body != NULL) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, f->post_body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->post_len);
	}
	if (f->header != NULL) {
		headers = curl_slist_append(NULL, f->header);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	}

	long long start = now_ms();
	f->rc = curl_easy_perform(curl);
	f->elapsed_ms = (long)(now_ms() - start);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &f->status);
	curl_slist_free_all(resolve);
	curl_slist_free_all(headers);
}

static void run_fetch(fetch *f)
{
	CURL *curl = curl_easy_init();
	cr_assert_not_null(curl);
	run_fetch_with(curl, f);
	curl_easy_cleanup(curl);
}

static char *url_for(const ts_https *s, const char *host, const char *path)
{
	char *url = NULL;
	cr_assert_geq(asprintf(&url, "https://%s:%d%s", host, ts_https_port(s), path), 0);
	return url;
}

/* A handler whose behavior depends on the path. */
static void scripted_handler(void *arg, const ts_request *req, ts_response *resp)
{
	(void)arg;
	if (strcmp(req->path, "/delay") == 0) {
		resp->delay_ms = 1500;
		resp->body = "{\"slow\":true}";
	} else if (strcmp(req->path, "/drop") == 0) {
		resp->drop_connection = true;
	} else if (strcmp(req->path, "/trickle") == 0) {
		resp->slow_body_ms = 100;
		resp->body = "12345";
	} else if (strcmp(req->path, "/custom") == 0) {
		resp->status = 418;
		resp->content_type = "text/plain";
		resp->body = "teapot\0tail";
		resp->body_len = 11;
		resp->headers[0] = "X-Test: one";
		resp->headers[1] = "Retry-After:  7";
	} else {
		resp->body = "{\"ok\":true}";
	}
}

static ts_tls *tls;
static ts_https *server;

static void https_setup(void)
{
	static const char *const names[] = {"api.test.example", "*.wild.test.example"};
	tls = ts_tls_new(names, 2);
	cr_assert_not_null(tls);
	server = ts_https_start(tls, NULL, scripted_handler, NULL);
	cr_assert_not_null(server);
}

static void https_teardown(void)
{
	ts_https_stop(server);
	ts_tls_free(tls);
}

/* Temporary directories */

Test(tempdir, create_and_remove)
{
	char *dir = ts_tempdir("dctest-self");
	cr_assert_not_null(dir);
	struct stat st;
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);

	char *nested = NULL;
	cr_assert_geq(asprintf(&nested, "%s/a", dir), 0);
	cr_assert_eq(mkdir(nested, 0700), 0);
	char *file = NULL;
	cr_assert_geq(asprintf(&file, "%s/f", nested), 0);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fclose(f);

	ts_rmtree(dir);
	cr_assert_neq(stat(dir, &st), 0, "%s still exists", dir);
	ts_rmtree(NULL);
	free(file);
	free(nested);
	free(dir);
}

Test(tempdir, prefix_too_long)
{
	char prefix[400];
	memset(prefix, 'p', sizeof prefix - 1);
	prefix[sizeof prefix - 1] = '\0';
	cr_assert_null(ts_tempdir(prefix));
}

Test(shared_dir, env_order)
{
	setenv("DC_SHARED_DIR", "/explicit", 1);
	cr_assert_str_eq(ts_shared_dir(), "/explicit");

	unsetenv("DC_SHARED_DIR");
	setenv("DC_SHARED_DIR_DEFAULT", "/tmp", 1);
	cr_assert_str_eq(ts_shared_dir(), "/tmp");

	setenv("DC_SHARED_DIR_DEFAULT", "/nonexistent/dctest", 1);
	cr_assert_null(ts_shared_dir());
}

Test(free_port, loopback_port)
{
	int port = ts_free_port();
	cr_assert_gt(port, 0);
	cr_assert_lt(port, 65536);
}

/* TLS and HTTPS */

Test(https, get_verifies_with_ca, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "localhost", "/any/path");
	fetch f = {.url = url, .ca_file = tls->ca_file};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK, "curl: %s", curl_easy_strerror(f.rc));
	cr_assert_eq(f.status, 200);
	cr_assert_str_eq(f.body.data, "{\"ok\":true}");
	cr_assert_not_null(strstr(f.headers.data, "Content-Type: application/json"));
	free(url);
}

Test(https, ip_literal_in_san, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "127.0.0.1", "/");
	fetch f = {.url = url, .ca_file = tls->ca_file};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK, "curl: %s", curl_easy_strerror(f.rc));
	free(url);
}

Test(https, extra_and_wildcard_names, .init = https_setup, .fini = https_teardown)
{
	char resolve[128];
	snprintf(resolve, sizeof resolve, "api.test.example:%d:127.0.0.1", ts_https_port(server));
	char *url = url_for(server, "api.test.example", "/");
	fetch f = {.url = url, .ca_file = tls->ca_file, .resolve = resolve};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK, "curl: %s", curl_easy_strerror(f.rc));
	free(url);

	snprintf(resolve, sizeof resolve, "x.wild.test.example:%d:127.0.0.1", ts_https_port(server));
	url = url_for(server, "x.wild.test.example", "/");
	fetch g = {.url = url, .ca_file = tls->ca_file, .resolve = resolve};
	run_fetch(&g);
	cr_assert_eq(g.rc, CURLE_OK, "curl: %s", curl_easy_strerror(g.rc));
	free(url);

	snprintf(resolve, sizeof resolve, "other.test.example:%d:127.0.0.1", ts_https_port(server));
	url = url_for(server, "other.test.example", "/");
	fetch h = {.url = url, .ca_file = tls->ca_file, .resolve = resolve};
	run_fetch(&h);
	cr_assert_eq(h.rc, CURLE_PEER_FAILED_VERIFICATION, "curl: %s", curl_easy_strerror(h.rc));
	free(url);
}

Test(https, get_fails_without_ca, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "localhost", "/");
	fetch f = {.url = url};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_PEER_FAILED_VERIFICATION, "curl: %d %s", f.rc, curl_easy_strerror(f.rc));
	cr_assert_eq((int)f.rc, 60);
	free(url);
}

Test(https, records_request_fields, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "localhost", "/v2/x%20y?a=1&b=%2F");
	fetch f = {.url = url, .ca_file = tls->ca_file, .post_body = "k=v&z", .post_len = 5,
		.header = "Authorization: Bearer test-token"};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK, "curl: %s", curl_easy_strerror(f.rc));
	cr_assert_eq(ts_https_request_count(server), 1);

	ts_request *r = ts_https_request_copy(server, 0);
	cr_assert_not_null(r);
	cr_assert_str_eq(r->method, "POST");
	cr_assert_str_eq(r->path, "/v2/x%20y");
	cr_assert_str_eq(r->query, "a=1&b=%2F");
	cr_assert_eq(r->body_len, 5);
	cr_assert_str_eq(r->body, "k=v&z");
	cr_assert_not(r->body_truncated);
	cr_assert_str_eq(r->authorization, "Bearer test-token");
	cr_assert_str_eq(r->content_type, "application/x-www-form-urlencoded");
	char host[64];
	snprintf(host, sizeof host, "localhost:%d", ts_https_port(server));
	cr_assert_str_eq(r->host, host);
	ts_request_free(r);
	free(url);
}

Test(https, get_without_query_or_body, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "localhost", "/plain");
	fetch f = {.url = url, .ca_file = tls->ca_file};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK);

	ts_request *r = ts_https_request_copy(server, 0);
	cr_assert_not_null(r);
	cr_assert_str_eq(r->method, "GET");
	cr_assert_null(r->query);
	cr_assert_eq(r->body_len, 0);
	cr_assert_str_eq(r->body, "");
	cr_assert_null(r->authorization);
	cr_assert_null(ts_https_request_copy(server, 1));
	ts_request_free(r);
	free(url);
}

Test(https, body_over_cap_truncated, .init = https_setup, .fini = https_teardown)
{
	size_t len = TS_HTTPS_BODY_MAX + 100;
	char *body = malloc(len);
	cr_assert_not_null(body);
	memset(body, 'b', len);
	char *url = url_for(server, "localhost", "/big");
	fetch f = {.url = url, .ca_file = tls->ca_file, .post_body = body, .post_len = len};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK, "curl: %s", curl_easy_strerror(f.rc));

	ts_request *r = ts_https_request_copy(server, 0);
	cr_assert_not_null(r);
	cr_assert_eq(r->body_len, TS_HTTPS_BODY_MAX);
	cr_assert(r->body_truncated);
	ts_request_free(r);
	free(url);
	free(body);
}

Test(https, custom_status_and_headers, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "localhost", "/custom");
	fetch f = {.url = url, .ca_file = tls->ca_file};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK);
	cr_assert_eq(f.status, 418);
	cr_assert_eq(f.body.len, 11);
	cr_assert_eq(memcmp(f.body.data, "teapot\0tail", 11), 0);
	cr_assert_not_null(strstr(f.headers.data, "X-Test: one"));
	cr_assert_not_null(strstr(f.headers.data, "Retry-After: 7"));
	cr_assert_not_null(strstr(f.headers.data, "Content-Type: text/plain"));
	free(url);
}

static void *fetch_thread(void *arg)
{
	run_fetch(arg);
	return NULL;
}

Test(https, delay_does_not_block_others, .init = https_setup, .fini = https_teardown)
{
	char *slow_url = url_for(server, "localhost", "/delay");
	fetch slow = {.url = slow_url, .ca_file = tls->ca_file};
	pthread_t thread;
	long long start = now_ms();
	cr_assert_eq(pthread_create(&thread, NULL, fetch_thread, &slow), 0);

	/* Wait until the delayed request has reached the handler. */
	while (ts_https_request_count(server) < 1 && now_ms() - start < 5000)
		usleep(5000);
	cr_assert_eq(ts_https_request_count(server), 1);

	char *fast_url = url_for(server, "localhost", "/fast");
	fetch fast = {.url = fast_url, .ca_file = tls->ca_file};
	run_fetch(&fast);
	long long fast_done = now_ms() - start;
	pthread_join(thread, NULL);

	cr_assert_eq(fast.rc, CURLE_OK);
	cr_assert_eq(slow.rc, CURLE_OK);
	cr_assert_lt(fast_done, 1200, "fast request finished after %lld ms", fast_done);
	cr_assert_geq(slow.elapsed_ms, 1500);
	cr_assert_str_eq(slow.body.data, "{\"slow\":true}");
	free(slow_url);
	free(fast_url);
}

Test(https, keep_alive_reuses_connection, .init = https_setup, .fini = https_teardown)
{
	CURL *curl = curl_easy_init();
	cr_assert_not_null(curl);
	char *url = url_for(server, "localhost", "/first");
	fetch f = {.url = url, .ca_file = tls->ca_file};
	run_fetch_with(curl, &f);
	cr_assert_eq(f.rc, CURLE_OK);

	fetch g = {.url = url, .ca_file = tls->ca_file};
	run_fetch_with(curl, &g);
	cr_assert_eq(g.rc, CURLE_OK);
	long connects = -1;
	curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
	cr_assert_eq(connects, 0, "second request opened %ld new connections", connects);
	cr_assert_eq(ts_https_request_count(server), 2);
	curl_easy_cleanup(curl);
	free(url);
}

Test(https, drop_connection_sends_nothing, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "localhost", "/drop");
	fetch f = {.url = url, .ca_file = tls->ca_file};
	run_fetch(&f);
	cr_assert_neq(f.rc, CURLE_OK);
	cr_assert_neq(f.rc, CURLE_OPERATION_TIMEDOUT);
	cr_assert_eq(f.status, 0);
	cr_assert_eq(f.headers.len, 0);
	cr_assert_eq(ts_https_request_count(server), 1);
	free(url);
}

Test(https, slow_body_trickles, .init = https_setup, .fini = https_teardown)
{
	char *url = url_for(server, "localhost", "/trickle");
	fetch f = {.url = url, .ca_file = tls->ca_file};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK);
	cr_assert_str_eq(f.body.data, "12345");
	cr_assert_geq(f.elapsed_ms, 450, "body arrived after %ld ms", f.elapsed_ms);
	free(url);
}

Test(https, stop_during_delay_returns)
{
	ts_tls *t = ts_tls_new(NULL, 0);
	cr_assert_not_null(t);
	ts_https *s = ts_https_start(t, "127.0.0.1", scripted_handler, NULL);
	cr_assert_not_null(s);
	char *url = url_for(s, "localhost", "/delay");
	fetch f = {.url = url, .ca_file = t->ca_file};
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, fetch_thread, &f), 0);
	long long start = now_ms();
	while (ts_https_request_count(s) < 1 && now_ms() - start < 5000)
		usleep(5000);

	ts_https_stop(s);
	long long stopped = now_ms() - start;
	pthread_join(thread, NULL);
	cr_assert_lt(stopped, 1000, "stop took %lld ms", stopped);
	cr_assert_neq(f.rc, CURLE_OK);
	ts_tls_free(t);
	free(url);
}

Test(https, default_handler_and_ipv6)
{
	ts_tls *t = ts_tls_new(NULL, 0);
	cr_assert_not_null(t);
	ts_https *s = ts_https_start(t, "::1", NULL, NULL);
	if (s == NULL) {
		ts_tls_free(t);
		cr_skip_test("::1 is not available here");
	}
	char *url = url_for(s, "[::1]", "/");
	fetch f = {.url = url, .ca_file = t->ca_file};
	run_fetch(&f);
	cr_assert_eq(f.rc, CURLE_OK, "curl: %s", curl_easy_strerror(f.rc));
	cr_assert_str_eq(f.body.data, "{}");
	ts_https_stop(s);
	ts_tls_free(t);
	free(url);
}

Test(https, invalid_bind_address)
{
	ts_tls *t = ts_tls_new(NULL, 0);
	cr_assert_not_null(t);
	cr_assert_null(ts_https_start(t, "localhost", NULL, NULL));
	cr_assert_null(ts_https_start(NULL, NULL, NULL, NULL));
	ts_tls_free(t);
	ts_https_stop(NULL);
	ts_tls_free(NULL);
	ts_request_free(NULL);
}

Test(tls, files_removed_on_free)
{
	ts_tls *t = ts_tls_new(NULL, 0);
	cr_assert_not_null(t);
	cr_assert_not_null(strstr(t->cert_pem, "BEGIN CERTIFICATE"));
	cr_assert_not_null(strstr(t->key_pem, "PRIVATE KEY"));
	char *dir = strdup(t->dir);
	struct stat st;
	cr_assert_eq(stat(t->ca_file, &st), 0);
	ts_tls_free(t);
	cr_assert_neq(stat(dir, &st), 0);
	free(dir);
}

/* DNS through c-ares */

typedef struct txt_result {
	int status;
	int strings;
	int records;
	char joined[2048];
	size_t first_len;
} txt_result;

static void on_txt(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	txt_result *res = arg;
	res->status = status;
	if (status != ARES_SUCCESS)
		return;

	struct ares_txt_ext *txt = NULL;
	res->status = ares_parse_txt_reply_ext(abuf, alen, &txt);
	for (struct ares_txt_ext *t = txt; t != NULL; t = t->next) {
		if (t->record_start)
			res->records++;
		if (res->strings == 0)
			res->first_len = t->length;
		res->strings++;
		size_t used = strlen(res->joined);
		if (used + t->length < sizeof res->joined)
			memcpy(res->joined + used, t->txt, t->length);
	}
	ares_free_data(txt);
}

static txt_result query_txt(const ts_dnsmasq *d, const char *name)
{
	txt_result res = {.status = -1};
	ares_channel channel;
	cr_assert_eq(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
	struct ares_options opts = {.flags = ARES_FLAG_NOSEARCH, .timeout = 2000, .tries = 2};
	cr_assert_eq(ares_init_options(&channel, &opts, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES), ARES_SUCCESS);
	cr_assert_eq(ares_set_servers_ports_csv(channel, ts_dnsmasq_servers(d)), ARES_SUCCESS);

	ares_query(channel, name, 1 /* C_IN */, 16 /* T_TXT */, on_txt, &res);
	for (;;) {
		fd_set readers;
		fd_set writers;
		FD_ZERO(&readers);
		FD_ZERO(&writers);
		int nfds = ares_fds(channel, &readers, &writers);
		if (nfds == 0)
			break;
		struct timeval tv;
		struct timeval *tvp = ares_timeout(channel, NULL, &tv);
		select(nfds, &readers, &writers, NULL, tvp);
		ares_process(channel, &readers, &writers);
	}
	ares_destroy(channel);
	ares_library_cleanup();
	return res;
}

Test(dnsmasq, txt_record_answered)
{
	const char *args[] = {"--txt-record=_domainconnect.shop.test.example,api.test.example"};
	ts_dnsmasq *d = ts_dnsmasq_start(args, 1);
	cr_assert_not_null(d);
	cr_assert_gt(ts_dnsmasq_port(d), 0);

	txt_result res = query_txt(d, "_domainconnect.shop.test.example");
	cr_assert_eq(res.status, ARES_SUCCESS, "c-ares: %s", ares_strerror(res.status));
	cr_assert_eq(res.records, 1);
	cr_assert_str_eq(res.joined, "api.test.example");
	ts_dnsmasq_stop(d);
}

Test(dnsmasq, long_txt_split_in_strings)
{
	char value[301];
	for (size_t i = 0; i < sizeof value - 1; i++)
		value[i] = (char)('a' + i % 26);
	value[sizeof value - 1] = '\0';
	char *arg = NULL;
	cr_assert_geq(asprintf(&arg, "--txt-record=long.test.example,%s", value), 0);
	const char *args[] = {arg};
	ts_dnsmasq *d = ts_dnsmasq_start(args, 1);
	cr_assert_not_null(d);

	txt_result res = query_txt(d, "long.test.example");
	cr_assert_eq(res.status, ARES_SUCCESS, "c-ares: %s", ares_strerror(res.status));
	cr_assert_eq(res.records, 1);
	cr_assert_eq(res.strings, 2);
	cr_assert_eq(res.first_len, 255);
	cr_assert_str_eq(res.joined, value);
	ts_dnsmasq_stop(d);
	free(arg);
}

Test(dnsmasq, unknown_name_nxdomain)
{
	const char *args[] = {"--txt-record=known.test.example,v"};
	ts_dnsmasq *d = ts_dnsmasq_start(args, 1);
	cr_assert_not_null(d);

	txt_result local = query_txt(d, "unknown.test.example");
	cr_assert_eq(local.status, ARES_ENOTFOUND, "c-ares: %s", ares_strerror(local.status));
	txt_result outside = query_txt(d, "example.com");
	cr_assert_eq(outside.status, ARES_ENOTFOUND, "c-ares: %s", ares_strerror(outside.status));
	ts_dnsmasq_stop(d);
}

Test(dnsmasq, dig_over_tcp)
{
	const char *args[] = {"--txt-record=tcp.test.example,over-tcp"};
	ts_dnsmasq *d = ts_dnsmasq_start(args, 1);
	cr_assert_not_null(d);

	char cmd[256];
	snprintf(cmd, sizeof cmd, "dig +tcp +short +time=2 +tries=1 -p %d @127.0.0.1 tcp.test.example TXT", ts_dnsmasq_port(d));
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	char line[256] = "";
	char *got = fgets(line, sizeof line, p);
	int rc = pclose(p);
	cr_assert_not_null(got);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(line, "\"over-tcp\"\n");
	ts_dnsmasq_stop(d);
}

Test(dnsmasq, invalid_argument_fails)
{
	const char *args[] = {"--no-such-option"};
	cr_assert_null(ts_dnsmasq_start(args, 1));
	ts_dnsmasq_stop(NULL);
}

/* Counting listener */

static bool connect_tcp(const char *addr, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	cr_assert_eq(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

Test(listener, counts_connections)
{
	ts_listener *l = ts_listener_start("127.0.0.2");
	cr_assert_not_null(l);
	cr_assert_eq(ts_listener_accepted(l), 0);

	cr_assert(connect_tcp("127.0.0.2", ts_listener_port(l)));
	cr_assert(connect_tcp("127.0.0.2", ts_listener_port(l)));
	long long start = now_ms();
	while (ts_listener_accepted(l) < 2 && now_ms() - start < 5000)
		usleep(5000);
	cr_assert_eq(ts_listener_accepted(l), 2);
	ts_listener_stop(l);
}

Test(listener, invalid_address)
{
	cr_assert_null(ts_listener_start("not-an-address"));
	cr_assert_null(ts_listener_start(NULL));
	/* 192.0.2.1 is not a local address, so bind fails. */
	cr_assert_null(ts_listener_start("192.0.2.1"));
	ts_listener_stop(NULL);
}

/* Redis */

static redisReply *redis_command(int port, const char *cmd)
{
	redisContext *c = redisConnect("127.0.0.1", port);
	cr_assert_not_null(c);
	cr_assert_eq(c->err, 0, "hiredis: %s", c->errstr);
	redisReply *reply = redisCommand(c, cmd);
	redisFree(c);
	return reply;
}

Test(redis, ping_answers_pong)
{
	ts_redis *r = ts_redis_start(false);
	cr_assert_not_null(r);
	redisReply *reply = redis_command(ts_redis_port(r), "PING");
	cr_assert_not_null(reply);
	cr_assert_eq(reply->type, REDIS_REPLY_STATUS);
	cr_assert_str_eq(reply->str, "PONG");
	freeReplyObject(reply);
	ts_redis_stop(r);
	ts_redis_stop(NULL);
}

static void check_redis_restart(bool aof)
{
	ts_redis *r = ts_redis_start(aof);
	cr_assert_not_null(r);
	int port = ts_redis_port(r);
	freeReplyObject(redis_command(port, "SET selftest:key kept"));

	cr_assert(ts_redis_restart(r));
	cr_assert_eq(ts_redis_port(r), port);
	redisReply *reply = redis_command(port, "GET selftest:key");
	cr_assert_not_null(reply);
	cr_assert_eq(reply->type, REDIS_REPLY_STRING, "key lost after restart");
	cr_assert_str_eq(reply->str, "kept");
	freeReplyObject(reply);
	ts_redis_stop(r);
}

Test(redis, restart_keeps_data)
{
	check_redis_restart(false);
}

Test(redis, aof_crash_keeps_data)
{
	check_redis_restart(true);
}

/* PostgreSQL */

static PGresult *pg_exec(const char *conninfo, const char *sql, ExecStatusType expected)
{
	PGconn *conn = PQconnectdb(conninfo);
	cr_assert_eq(PQstatus(conn), CONNECTION_OK, "libpq: %s", PQerrorMessage(conn));
	PGresult *res = PQexec(conn, sql);
	cr_assert_eq(PQresultStatus(res), expected, "%s: %s", sql, PQerrorMessage(conn));
	PQfinish(conn);
	return res;
}

Test(postgres, select_one_and_restart)
{
	ts_postgres *p = ts_postgres_start();
	cr_assert_not_null(p);
	const char *conninfo = ts_postgres_conninfo(p);
	char expected[128];
	snprintf(expected, sizeof expected, "host=127.0.0.1 port=%d user=postgres dbname=postgres", ts_postgres_port(p));
	cr_assert_str_eq(conninfo, expected);

	PGresult *res = pg_exec(conninfo, "SELECT 1", PGRES_TUPLES_OK);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "1");
	PQclear(res);
	PQclear(pg_exec(conninfo, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('row')", PGRES_COMMAND_OK));

	int port = ts_postgres_port(p);
	cr_assert(ts_postgres_restart(p));
	cr_assert_eq(ts_postgres_port(p), port);
	res = pg_exec(ts_postgres_conninfo(p), "SELECT v FROM kept", PGRES_TUPLES_OK);
	cr_assert_eq(PQntuples(res), 1);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "row");
	PQclear(res);
	ts_postgres_stop(p);
	ts_postgres_stop(NULL);
}

Test(postgres, missing_bindir_fails)
{
	setenv("DC_TEST_PG_BINDIR", "/nonexistent/pg/bin", 1);
	cr_assert_null(ts_postgres_start());
}

/* Child processes die with the test */

typedef enum server_kind { SERVER_REDIS, SERVER_POSTGRES, SERVER_DNSMASQ } server_kind;

/* What the forked process reports about the server it started. */
typedef struct started_server {
	int port;
	char dir[256];
} started_server;

/*
 * Start a server in a forked process that exits without stopping it, and
 * return the server's port and directory once that process has been reaped.
 */
static started_server start_in_exiting_process(server_kind kind)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		started_server info = {.port = -1};
		if (kind == SERVER_REDIS) {
			ts_redis *r = ts_redis_start(false);
			if (r != NULL) {
				info.port = ts_redis_port(r);
				snprintf(info.dir, sizeof info.dir, "%s", ts_redis_dir(r));
			}
		} else if (kind == SERVER_DNSMASQ) {
			ts_dnsmasq *d = ts_dnsmasq_start(NULL, 0);
			if (d != NULL) {
				info.port = ts_dnsmasq_port(d);
				snprintf(info.dir, sizeof info.dir, "%s", ts_dnsmasq_dir(d));
			}
		} else {
			ts_postgres *p = ts_postgres_start();
			if (p != NULL) {
				info.port = ts_postgres_port(p);
				snprintf(info.dir, sizeof info.dir, "%s", ts_postgres_dir(p));
			}
		}
		ssize_t n = write(fds[1], &info, sizeof info);
		_exit(n == (ssize_t)sizeof info ? 0 : 1);
	}
	close(fds[1]);
	started_server info = {.port = -1};
	cr_assert_eq(read(fds[0], &info, sizeof info), (ssize_t)sizeof info);
	close(fds[0]);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_gt(info.port, 0);
	return info;
}

static void check_server_dies_with_parent(server_kind kind)
{
	started_server info = start_in_exiting_process(kind);
	long long start = now_ms();
	while (connect_tcp("127.0.0.1", info.port) && now_ms() - start < 5000)
		usleep(20000);
	bool alive = connect_tcp("127.0.0.1", info.port);
	if (info.dir[0] != '\0')
		ts_rmtree(info.dir);
	cr_assert_not(alive, "server on port %d outlived its parent", info.port);
}

Test(process, redis_dies_with_parent)
{
	check_server_dies_with_parent(SERVER_REDIS);
}

Test(process, postgres_dies_with_parent)
{
	check_server_dies_with_parent(SERVER_POSTGRES);
}

/* dnsmasq switches to its group at start, which clears a parent-death signal unless the group is kept. */
Test(process, dnsmasq_dies_with_parent)
{
	check_server_dies_with_parent(SERVER_DNSMASQ);
}
