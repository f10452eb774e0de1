/* Temporary directories, the shared input folder and free ports. */
#include "support/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

char *ts_tempdir(const char *prefix)
{
	char template[256];
	int n = snprintf(template, sizeof template, "/tmp/%s.XXXXXX", prefix != NULL ? prefix : "dctest");
	if (n < 0 || (size_t)n >= sizeof template) {
		fprintf(stderr, "support: temporary directory prefix too long (%zu bytes)\n", strlen(prefix));
		return NULL;
	}
	if (mkdtemp(template) == NULL) {
		fprintf(stderr, "support: mkdtemp %s failed: %s\n", template, strerror(errno));
		return NULL;
	}
	char *path = strdup(template);
	if (path == NULL)
		rmdir(template);
	return path;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		fprintf(stderr, "support: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

void ts_rmtree(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return;
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *ts_shared_dir(void)
{
	const char *dir = getenv("DC_SHARED_DIR");
	if (dir != NULL && dir[0] != '\0')
		return dir;

	dir = getenv("DC_SHARED_DIR_DEFAULT");
	struct stat st;
	if (dir != NULL && dir[0] != '\0' && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return dir;
	return NULL;
}

int ts_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}
