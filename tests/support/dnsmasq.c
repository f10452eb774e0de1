/* dnsmasq on 127.0.0.1 and a free port, resolving only the names the test defines. */
#include "support/support.h"
#include "process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Ports tried before giving up, because a free port can be taken meanwhile. */
#define DNSMASQ_START_ATTEMPTS 5
/* How long dnsmasq may take to answer its first query. */
#define DNSMASQ_READY_TIMEOUT_MS 5000
/* Arguments the library passes besides the caller's. */
#define DNSMASQ_FIXED_ARGS 13

struct ts_dnsmasq {
	pid_t pid;
	int port;
	char servers[32];
	char *dir;
	char *log_path;
};

/* Return true when PORT is free on 127.0.0.1 for both TCP and UDP. */
static bool port_free_for_udp(int port)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

/*
 * Send one query for "ready.invalid" to PORT and wait up to WAIT_MS for any
 * answer with the same id. Any rcode counts: dnsmasq is up.
 */
static bool dns_answers(int port, long wait_ms)
{
	static const unsigned char query[] = {
		0x4a, 0x17, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		5, 'r', 'e', 'a', 'd', 'y', 7, 'i', 'n', 'v', 'a', 'l', 'i', 'd', 0,
		0x00, 0x01, 0x00, 0x01,
	};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = false;
	if (sendto(fd, query, sizeof query, 0, (struct sockaddr *)&sa, sizeof sa) == (ssize_t)sizeof query) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		unsigned char reply[512];
		if (poll(&pfd, 1, (int)wait_ms) == 1) {
			ssize_t n = recv(fd, reply, sizeof reply, 0);
			ok = n >= 12 && reply[0] == query[0] && reply[1] == query[1];
		}
	}
	close(fd);
	return ok;
}

/* Start dnsmasq once on PORT; returns its pid or -1. */
static pid_t spawn_dnsmasq(ts_dnsmasq *d, const char *program, int port, const char *const *args, size_t count)
{
	char port_arg[32];
	snprintf(port_arg, sizeof port_arg, "--port=%d", port);

	char **argv = calloc(DNSMASQ_FIXED_ARGS + count + 1, sizeof *argv);
	if (argv == NULL)
		return -1;
	size_t n = 0;
	argv[n++] = (char *)program;
	argv[n++] = "--keep-in-foreground";
	argv[n++] = "--conf-file=/dev/null";
	argv[n++] = "--no-resolv";
	argv[n++] = "--no-hosts";
	argv[n++] = "--no-poll";
	argv[n++] = "--listen-address=127.0.0.1";
	argv[n++] = "--bind-interfaces";
	argv[n++] = port_arg;
	argv[n++] = "--user=root";
	/*
	 * Keep group root too: dnsmasq otherwise switches to its default group,
	 * and the kernel clears the parent-death signal on that change.
	 */
	argv[n++] = "--group=root";
	argv[n++] = "--pid-file=";
	/* With no upstream server, "#" matches every name not defined locally. */
	argv[n++] = "--local=/#/";
	for (size_t i = 0; i < count; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;

	pid_t pid = ts_proc_spawn(argv, d->log_path, NULL);
	free(argv);
	return pid;
}

/* How a start attempt ended. */
typedef enum start_result {
	START_READY,     /* dnsmasq answers queries */
	START_PORT_USED, /* another process took the port first */
	START_FAILED,    /* dnsmasq exited or never answered */
} start_result;

/* Return true when the log at PATH reports a port already in use. */
static bool log_reports_port_in_use(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	char line[512];
	bool found = false;
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = strstr(line, "in use") != NULL;
	fclose(f);
	return found;
}

/* Wait until the child answers, exits or the deadline passes. */
static start_result wait_ready(const ts_dnsmasq *d, pid_t pid, int port)
{
	long long deadline = ts_now_ms() + DNSMASQ_READY_TIMEOUT_MS;

	while (ts_now_ms() < deadline) {
		int status = 0;
		if (!ts_proc_running(pid, &status)) {
			if (log_reports_port_in_use(d->log_path))
				return START_PORT_USED;
			fprintf(stderr, "support: dnsmasq exited with status %d before answering\n",
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			return START_FAILED;
		}
		if (dns_answers(port, 50))
			return START_READY;
	}
	fprintf(stderr, "support: dnsmasq did not answer within %d ms\n", DNSMASQ_READY_TIMEOUT_MS);
	return START_FAILED;
}

ts_dnsmasq *ts_dnsmasq_start(const char *const *args, size_t count)
{
	ts_dnsmasq *d = calloc(1, sizeof *d);
	char *program = ts_proc_find("dnsmasq");
	bool ok = false;

	if (d == NULL)
		goto out;
	d->pid = -1;
	if (program == NULL) {
		fprintf(stderr, "support: dnsmasq not found; install dnsmasq-base\n");
		goto out;
	}
	d->dir = ts_tempdir("dctest-dnsmasq");
	if (d->dir == NULL || asprintf(&d->log_path, "%s/dnsmasq.log", d->dir) < 0) {
		d->log_path = NULL;
		goto out;
	}

	start_result result = START_PORT_USED;
	for (int attempt = 0; attempt < DNSMASQ_START_ATTEMPTS && result == START_PORT_USED; attempt++) {
		int port = ts_free_port();
		if (port < 0 || !port_free_for_udp(port))
			continue;
		d->pid = spawn_dnsmasq(d, program, port, args, count);
		if (d->pid < 0)
			goto out;
		result = wait_ready(d, d->pid, port);
		if (result == START_READY) {
			d->port = port;
		} else {
			ts_proc_stop(d->pid, SIGKILL, 0);
			d->pid = -1;
		}
	}
	if (result != START_READY) {
		if (result == START_PORT_USED)
			fprintf(stderr, "support: dnsmasq found no free port in %d attempts\n", DNSMASQ_START_ATTEMPTS);
		ts_proc_print_log("dnsmasq", d->log_path);
		goto out;
	}
	ok = true;
	snprintf(d->servers, sizeof d->servers, "127.0.0.1:%d", d->port);

out:
	free(program);
	if (!ok) {
		ts_dnsmasq_stop(d);
		return NULL;
	}
	return d;
}

const char *ts_dnsmasq_servers(const ts_dnsmasq *d)
{
	return d->servers;
}

int ts_dnsmasq_port(const ts_dnsmasq *d)
{
	return d->port;
}

const char *ts_dnsmasq_dir(const ts_dnsmasq *d)
{
	return d->dir;
}

void ts_dnsmasq_stop(ts_dnsmasq *d)
{
	if (d == NULL)
		return;
	ts_proc_stop(d->pid, SIGKILL, 0);
	ts_rmtree(d->dir);
	free(d->dir);
	free(d->log_path);
	free(d);
}
