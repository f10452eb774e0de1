/*
 * The _domainconnect TXT records: a dnsmasq config file that maps
 * _domainconnect.<zone> to each provider's "host:port" and the provider host
 * names to 127.0.0.1, and optionally a dnsmasq child process serving it on
 * loopback.
 */
#ifndef DC_SANDBOX_DNS_H
#define DC_SANDBOX_DNS_H

#include "provider.h"
#include "sandbox.h"

#include <sys/types.h>

/*
 * Write the dnsmasq config for CONFIG, with the HTTPS port PORT in the TXT
 * values (left out when 443), to PATH. Returns SB_OK or SB_ERR_DNS.
 */
sb_result sb_dns_write_conf(const char *path, const sb_config *config, int port, sb_error *err);

/*
 * Start dnsmasq on 127.0.0.1:DNS_PORT (UDP and TCP) with CONF_PATH and no
 * upstream server: names it does not define get NXDOMAIN. The child dies
 * with this process. Stores its pid in *PID. Returns SB_OK or SB_ERR_DNS.
 */
sb_result sb_dns_start(const char *conf_path, int dns_port, pid_t *pid, sb_error *err);

/* Stop the dnsmasq child PID (SIGTERM, then reap). Accepts pid <= 0. */
void sb_dns_stop(pid_t pid);

#endif
