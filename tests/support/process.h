/*
 * Child processes for the test servers: fork and exec with output sent to a
 * log file, death signal tied to the starting thread, and stop with a
 * deadline. Internal to the support library.
 */
#ifndef DC_TESTS_SUPPORT_PROCESS_H
#define DC_TESTS_SUPPORT_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

/* Which user a child runs as; a zeroed struct keeps the caller's user. */
typedef struct ts_proc_user {
	bool switch_user;
	uid_t uid;
	gid_t gid;
} ts_proc_user;

/*
 * Look up NAME in the user database and fill USER. Returns false and prints
 * why when the user does not exist.
 */
bool ts_proc_user_lookup(const char *name, ts_proc_user *user);

/*
 * Find PROGRAM in $PATH (or take it as is when it contains '/'). Returns a
 * malloc'd absolute path, or NULL when no executable file matches.
 */
char *ts_proc_find(const char *program);

/*
 * Start ARGV[0] (an absolute path) with stdin from /dev/null and stdout and
 * stderr appended to LOG_PATH (NULL means /dev/null). The child gets
 * SIGKILL when the calling thread exits. USER may be NULL. Returns the pid,
 * or -1 after printing why.
 */
pid_t ts_proc_spawn(char *const argv[], const char *log_path, const ts_proc_user *user);

/*
 * Reap PID if it has exited. Returns true while it still runs; on exit
 * stores the wait status in STATUS (may be NULL).
 */
bool ts_proc_running(pid_t pid, int *status);

/*
 * Wait up to TIMEOUT_MS for PID to exit. Returns true and stores the wait
 * status in STATUS (may be NULL) once it has been reaped.
 */
bool ts_proc_wait(pid_t pid, long timeout_ms, int *status);

/*
 * Send SIG to PID, wait up to TIMEOUT_MS, then send SIGKILL and reap it.
 * Accepts pid <= 0 and does nothing then.
 */
void ts_proc_stop(pid_t pid, int sig, long timeout_ms);

/* Print the last lines of the log at PATH to stderr, prefixed by WHAT. */
void ts_proc_print_log(const char *what, const char *path);

/* Sleep for MS milliseconds. */
void ts_sleep_ms(long ms);

/* Return a monotonic clock reading in milliseconds. */
long long ts_now_ms(void);

#endif
