/* A TCP listener that accepts, counts and closes every connection. */
#include "support/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct ts_listener {
	int fd;
	int stop_fd; /* eventfd written by ts_listener_stop */
	int port;
	atomic_size_t accepted;
	pthread_t thread;
	bool thread_started;
};

static void *accept_loop(void *arg)
{
	ts_listener *l = arg;
	struct pollfd fds[2] = {{.fd = l->fd, .events = POLLIN}, {.fd = l->stop_fd, .events = POLLIN}};

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "support: listener: poll failed: %s\n", strerror(errno));
			break;
		}
		if (fds[1].revents != 0)
			break;
		int conn = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn >= 0) {
			atomic_fetch_add(&l->accepted, 1);
			close(conn);
		}
	}
	return NULL;
}

/* Bind and listen on ADDR and an ephemeral port; returns the socket or -1. */
static int listen_on(const char *addr, int *port)
{
	struct sockaddr_storage sa = {0};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&sa;
	socklen_t len;

	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		len = sizeof *v4;
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		len = sizeof *v6;
	} else {
		fprintf(stderr, "support: listener: address %s is not an IP literal\n", addr);
		return -1;
	}

	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 64) != 0 ||
		getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		fprintf(stderr, "support: listener: cannot listen on %s: %s\n", addr, strerror(errno));
		close(fd);
		return -1;
	}
	*port = ntohs(sa.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
	return fd;
}

ts_listener *ts_listener_start(const char *addr)
{
	if (addr == NULL) {
		fprintf(stderr, "support: listener: no address given\n");
		return NULL;
	}
	ts_listener *l = calloc(1, sizeof *l);
	if (l == NULL)
		return NULL;
	l->stop_fd = -1;
	atomic_init(&l->accepted, 0);

	l->fd = listen_on(addr, &l->port);
	if (l->fd < 0)
		goto fail;
	l->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (l->stop_fd < 0)
		goto fail;
	if (pthread_create(&l->thread, NULL, accept_loop, l) != 0) {
		fprintf(stderr, "support: listener: cannot start its thread\n");
		goto fail;
	}
	l->thread_started = true;
	return l;

fail:
	ts_listener_stop(l);
	return NULL;
}

int ts_listener_port(const ts_listener *l)
{
	return l->port;
}

size_t ts_listener_accepted(const ts_listener *l)
{
	return atomic_load(&((ts_listener *)l)->accepted);
}

void ts_listener_stop(ts_listener *l)
{
	if (l == NULL)
		return;
	if (l->thread_started) {
		uint64_t one = 1;
		if (write(l->stop_fd, &one, sizeof one) != (ssize_t)sizeof one)
			fprintf(stderr, "support: listener: cannot signal its thread to stop\n");
		pthread_join(l->thread, NULL);
	}
	if (l->fd >= 0)
		close(l->fd);
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	free(l);
}
