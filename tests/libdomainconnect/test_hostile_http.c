/*
 * Hostile HTTP responses that a well-behaved server library cannot send:
 * an endless chunked body, a header flood, a close in the middle of the
 * body, a status line sent one byte at a time, every 3xx status, and a
 * gzip body. A small OpenSSL server on 127.0.0.1 writes them byte for byte.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_fixture.h"

typedef enum raw_mode {
	RAW_CHUNKED_ENDLESS,
	RAW_HEADER_FLOOD,
	RAW_CLOSE_MID_BODY,
	RAW_SLOW_STATUS,
	RAW_REDIRECT,
	RAW_GZIP,
} raw_mode;

typedef struct raw_server {
	int fd;
	int port;
	SSL_CTX *ctx;
	pthread_t thread;
	raw_mode mode;
	int redirect_status;
	atomic_int requests;
	atomic_bool stop;
	char request[4096]; /* the last request head */
} raw_server;

static net_fixture f;
static raw_server raw;

static bool write_all(SSL *ssl, const char *data, size_t len)
{
	while (len > 0) {
		if (atomic_load(&raw.stop))
			return false;
		int n = SSL_write(ssl, data, (int)len);
		if (n <= 0)
			return false;
		data += n;
		len -= (size_t)n;
	}
	return true;
}

static void respond(SSL *ssl)
{
	char buf[8192];

	switch (raw.mode) {
	case RAW_CHUNKED_ENDLESS: {
		static char chunk[4096 + 16];
		int head = snprintf(chunk, sizeof(chunk), "1000\r\n");
		memset(chunk + head, 'x', 4096);
		memcpy(chunk + head + 4096, "\r\n", 2);
		const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
		if (!write_all(ssl, h, strlen(h)))
			return;
		while (write_all(ssl, chunk, (size_t)head + 4096 + 2))
			;
		return;
	}
	case RAW_HEADER_FLOOD: {
		const char *h = "HTTP/1.1 200 OK\r\n";
		if (!write_all(ssl, h, strlen(h)))
			return;
		/* 64 MiB of headers at most, unless the client gives up first. */
		memset(buf, 0, sizeof(buf));
		for (size_t i = 0; i + 12 < sizeof(buf); i += 12)
			memcpy(buf + i, "X-Flood: 1\r\n", 12);
		for (int i = 0; i < 64 * 128; i++)
			if (!write_all(ssl, buf, sizeof(buf) / 12 * 12))
				return;
		write_all(ssl, "Content-Length: 0\r\n\r\n", 21);
		return;
	}
	case RAW_CLOSE_MID_BODY: {
		const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"version\":";
		write_all(ssl, h, strlen(h));
		return;
	}
	case RAW_SLOW_STATUS: {
		const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
		for (const char *p = h; *p != '\0' && !atomic_load(&raw.stop); p++) {
			if (!write_all(ssl, p, 1))
				return;
			usleep(300 * 1000);
		}
		return;
	}
	case RAW_REDIRECT: {
		int n = snprintf(buf, sizeof(buf),
		                 "HTTP/1.1 %d Moved\r\nLocation: https://api.provider.test:%d/x\r\n"
		                 "Content-Length: 0\r\n\r\n",
		                 raw.redirect_status, raw.port);
		write_all(ssl, buf, (size_t)n);
		return;
	}
	case RAW_GZIP: {
		/* The gzip header and a deflate block of zeros: a tiny bomb start. */
		static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03,
		                                   0xed, 0xc1, 0x01, 0x0d, 0, 0, 0};
		int n = snprintf(buf, sizeof(buf),
		                 "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n",
		                 sizeof(gz));
		if (write_all(ssl, buf, (size_t)n))
			write_all(ssl, (const char *)gz, sizeof(gz));
		return;
	}
	}
}

static void *serve(void *arg)
{
	(void)arg;
	while (!atomic_load(&raw.stop)) {
		int conn = accept(raw.fd, NULL, NULL);
		if (conn < 0)
			continue;
		SSL *ssl = SSL_new(raw.ctx);
		SSL_set_fd(ssl, conn);
		if (SSL_accept(ssl) == 1) {
			char head[sizeof(raw.request)];
			size_t len = 0;
			while (len + 1 < sizeof(head)) {
				int n = SSL_read(ssl, head + len, (int)(sizeof(head) - 1 - len));
				if (n <= 0)
					break;
				len += (size_t)n;
				head[len] = '\0';
				if (strstr(head, "\r\n\r\n") != NULL)
					break;
			}
			head[len] = '\0';
			memcpy(raw.request, head, len + 1);
			atomic_fetch_add(&raw.requests, 1);
			respond(ssl);
			SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		close(conn);
	}
	return NULL;
}

static void start(raw_mode mode)
{
	cr_assert(nf_start(&f, NULL, 0), "test servers did not start");

	raw.mode = mode;
	raw.ctx = SSL_CTX_new(TLS_server_method());
	cr_assert_not_null(raw.ctx);
	cr_assert_eq(SSL_CTX_use_certificate_chain_file(raw.ctx, f.tls->cert_file), 1);
	cr_assert_eq(SSL_CTX_use_PrivateKey_file(raw.ctx, f.tls->key_file, SSL_FILETYPE_PEM), 1);

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	raw.fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(raw.fd >= 0);
	cr_assert_eq(bind(raw.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(raw.fd, 16), 0);
	cr_assert_eq(getsockname(raw.fd, (struct sockaddr *)&sa, &sl), 0);
	raw.port = ntohs(sa.sin_port);
	cr_assert_eq(pthread_create(&raw.thread, NULL, serve, NULL), 0);

	snprintf(f.allow_ports, sizeof(f.allow_ports), "%d", raw.port);
	f.cfg.total_timeout_ms = 3000;
	cr_assert(nf_restart_client(&f));
}

static void teardown(void)
{
	nf_stop(&f); /* the client goes first, so the server's writes fail */
	atomic_store(&raw.stop, true);
	shutdown(raw.fd, SHUT_RDWR);
	pthread_join(raw.thread, NULL);
	close(raw.fd);
	SSL_CTX_free(raw.ctx);
	memset(&raw, 0, sizeof(raw));
}

typedef struct outcome {
	int calls;
	dc_error err;
	long http_status;
} outcome;

static void response_cb(void *arg, const dc_response *result, const dc_error *err)
{
	outcome *o = arg;

	o->calls++;
	o->err = *err;
	o->http_status = result ? result->http_status : 0;
}

static outcome template_check(double timeout_s)
{
	char url_api[128];
	outcome o = {0};
	dc_error err = {0};

	snprintf(url_api, sizeof(url_api), "https://api.provider.test:%d", raw.port);
	dc_error_clear(&err);
	cr_assert_eq(dc_template_supported_start(f.client, url_api, "example.org", "web",
	                                         response_cb, &o, NULL, &err),
	             DC_OK, "%s", err.message);
	cr_assert(nf_run_until(&f, &o.calls, 1, timeout_s), "the request did not finish in time");
	return o;
}

Test(hostile_http, chunked_endless_body, .fini = teardown)
{
	start(RAW_CHUNKED_ENDLESS);
	outcome o = template_check(10.);
	cr_assert_eq(o.err.status, DC_ERR_TOO_LARGE, "%s: %s", dc_status_name(o.err.status),
	             o.err.message);
}

Test(hostile_http, header_flood_ends, .fini = teardown)
{
	start(RAW_HEADER_FLOOD);
	outcome o = template_check(10.);
	cr_assert_neq(o.err.status, DC_OK, "a 64 MiB header block was accepted");
}

Test(hostile_http, close_mid_body, .fini = teardown)
{
	start(RAW_CLOSE_MID_BODY);
	outcome o = template_check(10.);
	cr_assert_eq(o.err.status, DC_ERR_TRANSIENT, "%s: %s", dc_status_name(o.err.status),
	             o.err.message);
}

Test(hostile_http, slow_status_line_times_out, .fini = teardown)
{
	start(RAW_SLOW_STATUS);
	outcome o = template_check(10.);
	cr_assert_eq(o.err.status, DC_ERR_TRANSIENT, "%s: %s", dc_status_name(o.err.status),
	             o.err.message);
	cr_assert(nf_contains(o.err.message, "timed out"), "%s", o.err.message);
}

Test(hostile_http, every_redirect_not_followed, .fini = teardown)
{
	static const int codes[] = {300, 301, 302, 303, 304, 305, 306, 307, 308, 399};
	start(RAW_REDIRECT);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		raw.redirect_status = codes[i];
		int before = atomic_load(&raw.requests);
		outcome o = template_check(10.);
		cr_expect_eq(o.err.status, DC_ERR_HTTP, "%d: %s", codes[i], o.err.message);
		cr_expect_eq(o.err.http_status, codes[i]);
		cr_expect_eq(atomic_load(&raw.requests), before + 1, "%d was followed", codes[i]);
	}
}

Test(hostile_http, gzip_body_not_decoded, .fini = teardown)
{
	start(RAW_GZIP);
	outcome o = template_check(10.);
	cr_assert_eq(o.err.status, DC_OK, "%s", o.err.message);
	cr_assert_null(strcasestr(raw.request, "Accept-Encoding"),
	               "the request offers an encoding: %s", raw.request);
}
