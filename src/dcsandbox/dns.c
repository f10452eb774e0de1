/* dnsmasq config and child process for the _domainconnect records. */
#include "dns.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long dnsmasq gets to fail on start (bad config, port in use). */
#define DNS_START_CHECK_MS 300

sb_result sb_dns_write_conf(const char *path, const sb_config *config, int port, sb_error *err)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return sb_error_set(err, SB_ERR_DNS, "cannot write %s: %s", path, strerror(errno));

	fprintf(f, "# dnsmasq records for dcsandbox; generated, do not edit.\n");
	for (size_t i = 0; i < config->provider_count; i++) {
		const sb_provider *p = &config->providers[i];
		char value[300];
		if (port == 443)
			snprintf(value, sizeof(value), "%s", p->host);
		else
			snprintf(value, sizeof(value), "%s:%d", p->host, port);

		fprintf(f, "# provider %s\naddress=/%s/127.0.0.1\n", p->id, p->host);
		for (size_t j = 0; j < p->zone_count; j++)
			fprintf(f, "txt-record=_domainconnect.%s,%s\n", p->zones[j]->name, value);
	}
	if (fclose(f) != 0)
		return sb_error_set(err, SB_ERR_DNS, "cannot write %s: %s", path, strerror(errno));
	return SB_OK;
}

static const char *find_dnsmasq(void)
{
	static const char *const candidates[] = {"/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq",
		"/usr/local/sbin/dnsmasq"};
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (access(candidates[i], X_OK) == 0)
			return candidates[i];
	}
	return NULL;
}

sb_result sb_dns_start(const char *conf_path, int dns_port, pid_t *pid, sb_error *err)
{
	*pid = -1;
	const char *bin = find_dnsmasq();
	if (bin == NULL)
		return sb_error_set(err, SB_ERR_DNS, "dnsmasq not found (install the dnsmasq-base package)");

	char conf_arg[4200], port_arg[32];
	snprintf(conf_arg, sizeof(conf_arg), "--conf-file=%s", conf_path);
	snprintf(port_arg, sizeof(port_arg), "--port=%d", dns_port);
	char *argv[] = {(char *)bin, "--keep-in-foreground", conf_arg, "--no-resolv", "--no-hosts",
		"--listen-address=127.0.0.1", "--bind-interfaces", port_arg, "--pid-file=", "--local=/#/",
		geteuid() == 0 ? "--user=root" : NULL,
		/* Without it dnsmasq changes group, which clears the parent-death signal. */
		"--group=root", NULL};

	pid_t child = fork();
	if (child < 0)
		return sb_error_set(err, SB_ERR_DNS, "fork failed: %s", strerror(errno));
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(bin, argv);
		_exit(127);
	}

	struct timespec pause = {.tv_sec = 0, .tv_nsec = DNS_START_CHECK_MS * 1000000L};
	nanosleep(&pause, NULL);
	int status = 0;
	if (waitpid(child, &status, WNOHANG) == child)
		return sb_error_set(err, SB_ERR_DNS, "dnsmasq exited at start (status %d); is port %d in use?",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1, dns_port);
	*pid = child;
	return SB_OK;
}

void sb_dns_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}
