/*
 * dctest_https_server: an HTTPS server for manual tests and
 * scripts/services.sh. It serves one static JSON document on every path,
 * prints its port on stdout and exits on SIGTERM or SIGINT.
 *
 * Usage: dctest_https_server [--bind ADDR] [--body-file FILE]
 *                            [--name NAME]... [--ca-out PATH]
 */
#include "support/support.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Extra certificate names accepted on the command line. */
#define NAMES_MAX 16

typedef struct options {
	const char *bind_addr;
	const char *body_file;
	const char *ca_out;
	const char *names[NAMES_MAX];
	size_t name_count;
} options;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dctest_https_server [--bind ADDR] [--body-file FILE] [--name NAME]... [--ca-out PATH]\n"
		"  --bind ADDR       IP address to listen on (default 127.0.0.1); the port is ephemeral\n"
		"  --body-file FILE  JSON document served on every path (default {\"status\": \"ok\"})\n"
		"  --name NAME       extra DNS name or IP address for the certificate (up to %d)\n"
		"  --ca-out PATH     write the test CA certificate (PEM) to PATH\n"
		"Prints the port on stdout, logs one line per request on stderr, exits on SIGTERM.\n",
		NAMES_MAX);
}

static bool parse_options(int argc, char **argv, options *opts)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "dctest_https_server: invalid or incomplete option %s\n", arg);
			return false;
		}
		const char *value = argv[++i];
		if (strcmp(arg, "--bind") == 0) {
			opts->bind_addr = value;
		} else if (strcmp(arg, "--body-file") == 0) {
			opts->body_file = value;
		} else if (strcmp(arg, "--ca-out") == 0) {
			opts->ca_out = value;
		} else if (strcmp(arg, "--name") == 0 && opts->name_count < NAMES_MAX) {
			opts->names[opts->name_count++] = value;
		} else {
			fprintf(stderr, "dctest_https_server: invalid option %s (or more than %d names)\n", arg, NAMES_MAX);
			return false;
		}
	}
	return true;
}

/* Load and compact the JSON body; returns a malloc'd string or NULL. */
static char *load_body(const char *path)
{
	if (path == NULL)
		return strdup("{\"status\":\"ok\"}");

	json_error_t error;
	json_t *doc = json_load_file(path, JSON_DECODE_ANY, &error);
	if (doc == NULL) {
		fprintf(stderr, "dctest_https_server: invalid JSON in %s line %d: %s\n", path, error.line, error.text);
		return NULL;
	}
	char *body = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(doc);
	return body;
}

static bool copy_ca(const ts_tls *tls, const char *path)
{
	FILE *in = fopen(tls->ca_file, "r");
	FILE *out = fopen(path, "w");
	bool ok = in != NULL && out != NULL;
	char buf[4096];
	size_t n;

	while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
		ok = fwrite(buf, 1, n, out) == n;
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "dctest_https_server: cannot write the CA certificate to %s\n", path);
	return ok;
}

static void serve_static(void *arg, const ts_request *req, ts_response *resp)
{
	/* Only the method and path: the request may carry credentials. */
	fprintf(stderr, "dctest_https_server: %s %.200s\n", req->method, req->path);
	resp->body = arg;
}

int main(int argc, char **argv)
{
	options opts = {.bind_addr = "127.0.0.1"};
	if (!parse_options(argc, argv, &opts)) {
		usage(stderr);
		return 2;
	}

	/* Block the stop signals before libmicrohttpd starts its threads, so
	 * that only sigwait below receives them. */
	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

	int rc = 1;
	ts_tls *tls = NULL;
	ts_https *server = NULL;
	char *body = load_body(opts.body_file);
	if (body == NULL)
		goto out;
	tls = ts_tls_new(opts.names, opts.name_count);
	if (tls == NULL)
		goto out;
	if (opts.ca_out != NULL && !copy_ca(tls, opts.ca_out))
		goto out;
	server = ts_https_start(tls, opts.bind_addr, serve_static, body);
	if (server == NULL)
		goto out;

	printf("%d\n", ts_https_port(server));
	fflush(stdout);

	int sig = 0;
	sigwait(&stop_signals, &sig);
	fprintf(stderr, "dctest_https_server: stopping on signal %d after %zu requests\n", sig,
		ts_https_request_count(server));
	rc = 0;

out:
	ts_https_stop(server);
	ts_tls_free(tls);
	free(body);
	return rc;
}
