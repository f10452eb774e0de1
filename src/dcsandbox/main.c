/*
 * dcsandbox: start-up and shutdown. Loads the config, applies --fault
 * flags, prepares TLS, starts the HTTPS server and the DNS records, prints
 * where everything is, and stops cleanly on SIGTERM or SIGINT.
 */
#include "args.h"
#include "dns.h"
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Apply one "[provider:]key=value" flag to the named provider or to all. */
static sb_result apply_fault_flag(sb_config *config, const char *flag, sb_error *err)
{
	char buf[512];
	if (strlen(flag) >= sizeof(buf))
		return sb_error_set(err, SB_ERR_ARGS, "--fault value too long");
	strcpy(buf, flag);

	char *eq = strchr(buf, '=');
	if (eq == NULL)
		return sb_error_set(err, SB_ERR_ARGS, "invalid --fault \"%s\": expected [PROVIDER:]KEY=VALUE", flag);
	*eq = '\0';
	char *key = buf;
	const char *value = eq + 1;
	sb_provider *only = NULL;
	char *colon = strchr(buf, ':');
	if (colon != NULL) {
		*colon = '\0';
		key = colon + 1;
		only = sb_config_provider_by_id(config, buf);
		if (only == NULL)
			return sb_error_set(err, SB_ERR_ARGS, "--fault names unknown provider \"%s\"", buf);
	}

	for (size_t i = 0; i < config->provider_count; i++) {
		sb_provider *p = &config->providers[i];
		if (only != NULL && p != only)
			continue;
		sb_result rc = sb_faults_set(&p->faults, key, value, err);
		if (rc != SB_OK)
			return rc;
	}
	return SB_OK;
}

static sb_result prepare_tls(const sb_args *args, const sb_config *config, sb_tls *tls, sb_error *err)
{
	if (args->cert_file != NULL)
		return sb_tls_load(tls, args->cert_file, args->key_file, err);

	const char *names[64];
	size_t count = 0;
	for (size_t i = 0; i < config->provider_count && count < 64; i++)
		names[count++] = config->providers[i].host;
	return sb_tls_generate(tls, args->state_dir, names, count, err);
}

static void print_summary(const sb_server *srv, const sb_args *args, const char *dns_conf)
{
	printf("dcsandbox: listening on https://%s:%d\n", args->listen, srv->port);
	if (srv->tls.ca_file != NULL)
		printf("ca_file: %s\n", srv->tls.ca_file);
	for (size_t i = 0; i < srv->config->provider_count; i++) {
		const sb_provider *p = &srv->config->providers[i];
		printf("provider %s: https://%s:%d (or https://%s:%d/p/%s), %zu zones, %zu templates\n", p->id,
			p->host, srv->port, args->listen, srv->port, p->id, p->zone_count, tstore_count(p->templates));
	}
	if (dns_conf != NULL)
		printf("dnsmasq_conf: %s\n", dns_conf);
	if (args->dnsmasq_port > 0)
		printf("dns: 127.0.0.1:%d\n", args->dnsmasq_port);
	printf("ready\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	sb_args args;
	sb_error err = {0};
	if (sb_args_parse(argc, argv, &args, &err) != SB_OK) {
		fprintf(stderr, "dcsandbox: %s\n", err.message);
		return 2;
	}
	if (args.help) {
		sb_args_usage();
		return 0;
	}

	/* Block the stop signals before any thread starts, then wait for them here. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	int status = 1;
	sb_config *config = NULL;
	sb_tls tls = {0};
	sb_server *srv = NULL;
	pid_t dns_pid = -1;
	char dns_conf_buf[4096];
	const char *dns_conf = args.dnsmasq_conf;

	if (sb_config_load(args.config_path, args.templates, &config, &err) != SB_OK)
		goto out;
	for (size_t i = 0; i < args.fault_count; i++) {
		if (apply_fault_flag(config, args.faults[i], &err) != SB_OK)
			goto out;
	}
	if (prepare_tls(&args, config, &tls, &err) != SB_OK)
		goto out;

	sb_server_opts opts = {
		.listen = args.listen,
		.port = args.port,
		.threads = args.threads,
		.auto_approve = args.auto_approve,
		.log_requests = !args.quiet,
		.seed = args.seed,
	};
	sb_result rc = sb_server_start(config, &tls, &opts, &srv, &err);
	config = NULL; /* owned by the server from here, also on failure */
	if (rc != SB_OK)
		goto out;
	if (!sb_args_is_loopback(args.listen))
		fprintf(stderr, "dcsandbox: warning: listening on %s, which is not loopback; the admin API has no authentication\n",
			args.listen);

	if (dns_conf == NULL && args.dnsmasq_port > 0) {
		snprintf(dns_conf_buf, sizeof(dns_conf_buf), "%s/dnsmasq.conf", args.state_dir);
		dns_conf = dns_conf_buf;
	}
	/* The admin API may add zones from now on, so read them under the lock. */
	pthread_mutex_lock(&srv->lock);
	rc = dns_conf != NULL ? sb_dns_write_conf(dns_conf, srv->config, srv->port, &err) : SB_OK;
	pthread_mutex_unlock(&srv->lock);
	if (rc != SB_OK)
		goto out;
	if (args.dnsmasq_port > 0 && sb_dns_start(dns_conf, args.dnsmasq_port, &dns_pid, &err) != SB_OK)
		goto out;

	pthread_mutex_lock(&srv->lock);
	print_summary(srv, &args, dns_conf);
	pthread_mutex_unlock(&srv->lock);
	int sig = 0;
	sigwait(&stop, &sig);
	fprintf(stderr, "dcsandbox: stopping on signal %d\n", sig);
	status = 0;
out:
	if (status != 0)
		fprintf(stderr, "dcsandbox: %s\n", err.message);
	sb_dns_stop(dns_pid);
	sb_server_stop(srv);
	sb_config_free(config);
	sb_tls_clear(&tls);
	return status;
}
