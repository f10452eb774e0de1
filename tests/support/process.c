/* Child processes for the test servers. */
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes of a server log shown when the server fails to start. */
#define LOG_TAIL_MAX 2048

bool ts_proc_user_lookup(const char *name, ts_proc_user *user)
{
	struct passwd pw_buf;
	struct passwd *pw = NULL;
	char buf[4096];

	int rc = getpwnam_r(name, &pw_buf, buf, sizeof buf, &pw);
	if (rc != 0 || pw == NULL) {
		fprintf(stderr, "support: user %s not found; install the package that creates it\n", name);
		return false;
	}
	user->switch_user = true;
	user->uid = pw->pw_uid;
	user->gid = pw->pw_gid;
	return true;
}

char *ts_proc_find(const char *program)
{
	if (strchr(program, '/') != NULL)
		return access(program, X_OK) == 0 ? strdup(program) : NULL;

	const char *path = getenv("PATH");
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	/* Daemons such as dnsmasq live in sbin, which a test's PATH may lack. */
	const char *extra = "/usr/local/sbin:/usr/sbin:/sbin";

	for (int pass = 0; pass < 2; pass++) {
		const char *p = pass == 0 ? path : extra;
		while (*p != '\0') {
			size_t len = strcspn(p, ":");
			char candidate[4096];
			int n = snprintf(candidate, sizeof candidate, "%.*s/%s", (int)len, p, program);
			if (len > 0 && n > 0 && (size_t)n < sizeof candidate && access(candidate, X_OK) == 0)
				return strdup(candidate);
			p += len;
			if (*p == ':')
				p++;
		}
	}
	return NULL;
}

/* Runs in the forked child: only async-signal-safe calls until exec. */
static void exec_child(char *const argv[], int log_fd, const ts_proc_user *user, pid_t parent)
{
	int null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0)
		_exit(126);
	if (dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0)
		_exit(126);

	if (user != NULL && user->switch_user) {
		gid_t gid = user->gid;
		if (setgroups(1, &gid) != 0 || setgid(user->gid) != 0 || setuid(user->uid) != 0)
			_exit(126);
	}

	/* Set after the user switch, because changing credentials clears it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		_exit(126);
	if (getppid() != parent)
		_exit(126);

	/* Keep the test's sockets and pipes out of the server. */
	close_range(3, ~0U, 0);

	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);

	execv(argv[0], argv);

	/* stderr is the log file now; write(2) is safe after fork. */
	static const char prefix[] = "support: cannot execute ";
	ssize_t ignored = write(STDERR_FILENO, prefix, sizeof prefix - 1);
	ignored = write(STDERR_FILENO, argv[0], strlen(argv[0]));
	ignored = write(STDERR_FILENO, "\n", 1);
	(void)ignored;
	_exit(127);
}

pid_t ts_proc_spawn(char *const argv[], const char *log_path, const ts_proc_user *user)
{
	const char *target = log_path != NULL ? log_path : "/dev/null";
	int log_fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		fprintf(stderr, "support: cannot open log %s: %s\n", target, strerror(errno));
		return -1;
	}
	if (user != NULL && user->switch_user && log_path != NULL && fchown(log_fd, user->uid, user->gid) != 0) {
		fprintf(stderr, "support: cannot chown log %s: %s\n", target, strerror(errno));
		close(log_fd);
		return -1;
	}

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "support: fork for %s failed: %s\n", argv[0], strerror(errno));
		close(log_fd);
		return -1;
	}
	if (pid == 0)
		exec_child(argv, log_fd, user, parent);

	close(log_fd);
	return pid;
}

bool ts_proc_running(pid_t pid, int *status)
{
	int st = 0;
	pid_t rc;

	do {
		rc = waitpid(pid, &st, WNOHANG);
	} while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return true;
	if (status != NULL)
		*status = rc == pid ? st : 0;
	return false;
}

bool ts_proc_wait(pid_t pid, long timeout_ms, int *status)
{
	long long deadline = ts_now_ms() + timeout_ms;

	for (;;) {
		if (!ts_proc_running(pid, status))
			return true;
		if (ts_now_ms() >= deadline)
			return false;
		ts_sleep_ms(5);
	}
}

void ts_proc_stop(pid_t pid, int sig, long timeout_ms)
{
	if (pid <= 0)
		return;

	kill(pid, sig);
	if (sig == SIGKILL || !ts_proc_wait(pid, timeout_ms, NULL)) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

void ts_proc_print_log(const char *what, const char *path)
{
	if (path == NULL)
		return;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;

	char buf[LOG_TAIL_MAX + 1];
	if (fseek(f, 0, SEEK_END) == 0) {
		long size = ftell(f);
		if (size > LOG_TAIL_MAX)
			fseek(f, size - LOG_TAIL_MAX, SEEK_SET);
		else
			rewind(f);
	}
	size_t n = fread(buf, 1, LOG_TAIL_MAX, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "support: %s log %s ends with:\n%s\n", what, path, buf);
}

void ts_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

long long ts_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
