/*
 * The supervisor: worker slots, fork, restart with backoff, and signal
 * forwarding. Signals are blocked and taken with sigtimedwait(2), so there
 * are no signal handlers and no races between a signal and the wait.
 */
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

/* Maximum wait of one sigtimedwait call, so that restarts and deadlines are checked. */
#define SUPERVISOR_TICK_MS 1000

typedef struct slot {
	pid_t pid;               /* 0 when not running */
	int64_t started_ms;
	int64_t restart_at_ms;   /* 0 when no restart is due */
	long restart_delay_ms;   /* delay used for the next restart */
} slot;

typedef struct supervisor {
	const char *config_path;
	const config *cfg;
	log_ctx *log;
	slot *slots;
	long count;
	sigset_t signals;
	bool stopping;
	int64_t kill_at_ms;
	int status;
} supervisor;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Runs in the child: a SIGTERM when the supervisor dies (so the worker
 * drains as on a normal stop instead of running on as an orphan), default
 * signal dispositions, nothing blocked, then the worker. PARENT is the
 * supervisor's pid read before the fork: when it died before prctl took
 * effect, the child has been re-parented already and stops at once.
 */
static void run_child(supervisor *s, int index, pid_t parent)
{
	sigset_t none;

	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		_exit(1);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	_exit(worker_run(s->config_path, index));
}

static bool spawn(supervisor *s, int index)
{
	slot *sl = &s->slots[index];
	log_fields f = {.action = "spawn"};
	pid_t parent = getpid();
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		log_write(s->log, LOG_LEVEL_ERROR, &f, "fork of worker %d failed: %s", index,
		          strerror(errno));
		return false;
	}
	if (pid == 0)
		run_child(s, index, parent);

	sl->pid = pid;
	sl->started_ms = now_ms();
	sl->restart_at_ms = 0;
	log_write(s->log, LOG_LEVEL_INFO, &f, "worker %d started with pid %ld", index, (long)pid);
	return true;
}

static void describe_exit(int wstatus, char *buf, size_t size)
{
	if (WIFEXITED(wstatus))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(buf, size, "was killed by signal %d", WTERMSIG(wstatus));
	else
		snprintf(buf, size, "stopped with wait status %d", wstatus);
}

/* Schedules the restart of slot INDEX, doubling the delay unless the worker ran long enough. */
static void plan_restart(supervisor *s, int index, const char *how)
{
	slot *sl = &s->slots[index];
	int64_t now = now_ms();
	log_fields f = {.action = "restart"};

	if (now - sl->started_ms >= SUPERVISOR_STABLE_S * 1000 || sl->restart_delay_ms == 0)
		sl->restart_delay_ms = SUPERVISOR_RESTART_MIN_MS;
	else if (sl->restart_delay_ms < SUPERVISOR_RESTART_MAX_MS)
		sl->restart_delay_ms *= 2;
	if (sl->restart_delay_ms > SUPERVISOR_RESTART_MAX_MS)
		sl->restart_delay_ms = SUPERVISOR_RESTART_MAX_MS;
	sl->restart_at_ms = now + sl->restart_delay_ms;
	log_write(s->log, LOG_LEVEL_ERROR, &f, "worker %d %s; restarting it in %ld ms", index, how,
	          sl->restart_delay_ms);
}

static void reap(supervisor *s)
{
	int wstatus;
	pid_t pid;
	char how[64];

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		for (long i = 0; i < s->count; i++) {
			if (s->slots[i].pid != pid)
				continue;
			s->slots[i].pid = 0;
			describe_exit(wstatus, how, sizeof(how));
			if (s->stopping) {
				log_fields f = {.action = "stop"};

				log_write(s->log, LOG_LEVEL_INFO, &f, "worker %ld %s", i, how);
				if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
					s->status = 1;
			} else {
				plan_restart(s, (int)i, how);
			}
		}
	}
}

static long running(const supervisor *s)
{
	long n = 0;

	for (long i = 0; i < s->count; i++)
		n += s->slots[i].pid != 0;
	return n;
}

static void forward(supervisor *s, int signum)
{
	for (long i = 0; i < s->count; i++) {
		if (s->slots[i].pid != 0)
			kill(s->slots[i].pid, signum);
	}
}

static void begin_stop(supervisor *s, int signum)
{
	log_fields f = {.action = "stop"};

	s->stopping = true;
	s->kill_at_ms = now_ms() + (s->cfg->worker.grace_period_s + SUPERVISOR_KILL_MARGIN_S) * 1000;
	log_write(s->log, LOG_LEVEL_INFO, &f, "signal %d: draining %ld workers", signum, running(s));
	forward(s, SIGTERM);
}

/* Validates the config file before the workers re-read it. */
static void reload(supervisor *s)
{
	common_error err = {0};
	config *fresh = config_load(s->config_path, NULL, &err);
	log_fields f = {.action = "reload"};

	if (fresh == NULL) {
		f.error = err.code;
		log_write(s->log, LOG_LEVEL_ERROR, &f, "config is invalid; not reloading: %s",
		          err.message);
		return;
	}
	/* The line goes out before a higher level would hide it. */
	if (fresh->log.level > LOG_LEVEL_INFO)
		log_write(s->log, LOG_LEVEL_INFO, &f, "config is valid; workers reload it");
	log_set_level(s->log, fresh->log.level);
	if (fresh->log.level <= LOG_LEVEL_INFO)
		log_write(s->log, LOG_LEVEL_INFO, &f, "config is valid; workers reload it");
	config_free(fresh);
	forward(s, SIGHUP);
}

/* Starts the workers whose restart is due; returns the ms until the next event. */
static long restart_due(supervisor *s)
{
	int64_t now = now_ms();
	long wait = SUPERVISOR_TICK_MS;

	for (long i = 0; i < s->count && !s->stopping; i++) {
		slot *sl = &s->slots[i];

		if (sl->pid != 0 || sl->restart_at_ms == 0)
			continue;
		if (sl->restart_at_ms <= now) {
			if (!spawn(s, (int)i))
				plan_restart(s, (int)i, "could not be forked");
			continue;
		}
		if (sl->restart_at_ms - now < wait)
			wait = (long)(sl->restart_at_ms - now);
	}
	return wait;
}

static void loop(supervisor *s)
{
	while (!s->stopping || running(s) > 0) {
		long wait = restart_due(s);
		struct timespec timeout = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
		siginfo_t info;
		int signum = sigtimedwait(&s->signals, &info, &timeout);

		if (signum == SIGCHLD)
			reap(s);
		else if ((signum == SIGTERM || signum == SIGINT) && !s->stopping)
			begin_stop(s, signum);
		else if (signum == SIGHUP && !s->stopping)
			reload(s);

		/* SIGCHLD may merge with another pending one; reaping again is cheap. */
		reap(s);
		if (s->stopping && running(s) > 0 && now_ms() >= s->kill_at_ms) {
			log_fields f = {.action = "stop"};

			log_write(s->log, LOG_LEVEL_ERROR, &f,
			          "%ld workers still running after the grace period; killing them",
			          running(s));
			forward(s, SIGKILL);
			s->status = 1;
			s->kill_at_ms = now_ms() + SUPERVISOR_TICK_MS;
		}
	}
}

int supervisor_run(const char *config_path, const config *cfg, log_ctx *log, long processes)
{
	supervisor s = {.config_path = config_path, .cfg = cfg, .log = log, .count = processes};
	sigset_t old;

	if (processes < 1 || processes > SUPERVISOR_PROCESSES_MAX)
		return 1;
	s.slots = calloc((size_t)processes, sizeof(*s.slots));
	if (s.slots == NULL)
		return 1;

	sigemptyset(&s.signals);
	sigaddset(&s.signals, SIGTERM);
	sigaddset(&s.signals, SIGINT);
	sigaddset(&s.signals, SIGHUP);
	sigaddset(&s.signals, SIGCHLD);
	sigprocmask(SIG_BLOCK, &s.signals, &old);

	for (long i = 0; i < processes; i++) {
		if (!spawn(&s, (int)i))
			plan_restart(&s, (int)i, "could not be forked");
	}
	loop(&s);

	log_fields f = {.action = "stop"};
	log_write(log, LOG_LEVEL_INFO, &f, "all workers stopped");
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(s.slots);
	return s.status;
}
