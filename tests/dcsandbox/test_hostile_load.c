/*
 * Load-shaped attacks on a running dcsandbox: 16 connections applying to
 * one zone at once, and many slow clients holding connections open.
 */
#include "test_sandbox_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define APPLY_WEB "/v2/domainTemplates/providers/exampleservice.test/services/web/apply"
#define WORKERS 16
#define APPLIES_PER_WORKER 10
#define SLOW_CLIENTS 200

static sbh *h;

static void start(void)
{
	static const char *const args[] = {"--quiet"};
	h = sbh_start_default(args, 1);
	cr_assert_not_null(h, "dcsandbox did not start");
}

static void stop(void)
{
	sbh_free(h);
	h = NULL;
}

TestSuite(hostile_load, .init = start, .fini = stop, .timeout = 120);

typedef struct worker {
	pthread_t thread;
	const char *token;
	int index;
	int ok;
	int failed;
} worker;

static void *apply_loop(void *arg)
{
	worker *w = arg;
	for (int i = 0; i < APPLIES_PER_WORKER; i++) {
		char path[512];
		snprintf(path, sizeof(path), APPLY_WEB "?domain=" SBH_ZONE "&force=1&ip=192.0.2.%d&token=w%d",
			w->index + 1, w->index);
		sbh_resp r;
		sbh_request(h, "POST", SBH_ALPHA_HOST, path, w->token, NULL, NULL, &r);
		if (r.status == 200)
			w->ok++;
		else
			w->failed++;
		sbh_resp_clear(&r);
	}
	return NULL;
}

Test(hostile_load, concurrent_applies_keep_zone_consistent)
{
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, SBH_TPL_PROVIDER, "web", "");
	cr_assert_not_null(tokens);
	const char *token = json_string_value(json_object_get(tokens, "access_token"));

	worker workers[WORKERS];
	for (int i = 0; i < WORKERS; i++) {
		workers[i] = (worker){.token = token, .index = i};
		cr_assert_eq(pthread_create(&workers[i].thread, NULL, apply_loop, &workers[i]), 0);
	}
	int ok = 0;
	for (int i = 0; i < WORKERS; i++) {
		pthread_join(workers[i].thread, NULL);
		ok += workers[i].ok;
		cr_expect_eq(workers[i].failed, 0, "worker %d had %d failed applies", i, workers[i].failed);
	}
	cr_expect_eq(ok, WORKERS * APPLIES_PER_WORKER);
	json_decref(tokens);

	/* Every apply replaced the earlier instance: one A, one CNAME and one TXT remain. */
	json_t *zone = sbh_zone(h, SBH_ALPHA_ID, SBH_ZONE);
	cr_assert_not_null(zone);
	size_t index;
	json_t *rec;
	int a = 0, cname = 0, txt = 0;
	json_array_foreach(zone, index, rec) {
		const char *type = json_string_value(json_object_get(rec, "type"));
		a += strcmp(type, "A") == 0;
		cname += strcmp(type, "CNAME") == 0;
		txt += strcmp(type, "TXT") == 0;
	}
	cr_expect_eq(json_array_size(zone), 3, "zone has %zu records", json_array_size(zone));
	cr_expect_eq(a, 1);
	cr_expect_eq(cname, 1);
	cr_expect_eq(txt, 1);
	json_decref(zone);

	sbh_resp r;
	sbh_request(h, "GET", "localhost", "/admin/overlap", NULL, NULL, NULL, &r);
	json_t *overlap = json_loads(r.body, 0, NULL);
	json_t *z = json_object_get(json_object_get(overlap, SBH_ALPHA_ID), SBH_ZONE);
	cr_expect_eq(json_integer_value(json_object_get(z, "in_flight")), 0, "in_flight did not return to 0");
	cr_expect_eq(json_integer_value(json_object_get(z, "changes")), WORKERS * APPLIES_PER_WORKER);
	json_decref(overlap);
	sbh_resp_clear(&r);
}

static int connect_loopback(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(hostile_load, slow_clients_do_not_block_others)
{
	/* Each slow client opens a connection and sends the first bytes of a TLS record, then stalls. */
	int fds[SLOW_CLIENTS];
	int opened = 0;
	static const unsigned char partial[] = {0x16, 0x03, 0x01, 0x02};
	for (int i = 0; i < SLOW_CLIENTS; i++) {
		fds[i] = connect_loopback(h->port);
		if (fds[i] >= 0) {
			opened++;
			cr_expect_eq(write(fds[i], partial, sizeof(partial)), (ssize_t)sizeof(partial));
		}
	}
	cr_expect_eq(opened, SLOW_CLIENTS);

	for (int i = 0; i < 5; i++) {
		double t0 = now_seconds();
		sbh_resp r;
		sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
		double took = now_seconds() - t0;
		cr_expect_eq(r.status, 200, "request %d failed behind slow clients (curl %d)", i, r.curl_code);
		cr_expect(took < 2.0, "request %d took %.2f s behind slow clients", i, took);
		sbh_resp_clear(&r);
	}
	for (int i = 0; i < SLOW_CLIENTS; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
}
