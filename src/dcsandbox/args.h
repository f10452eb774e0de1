/* Command-line flags of the dcsandbox program. */
#ifndef DC_SANDBOX_ARGS_H
#define DC_SANDBOX_ARGS_H

#include "sandbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest number of --fault flags. */
#define SB_ARGS_FAULTS_MAX 32

typedef struct sb_args {
	const char *config_path;
	const char *listen;      /* default 127.0.0.1 */
	bool listen_explicit;    /* --listen was given */
	int port;                /* default 8443; 0 = ephemeral */
	const char *state_dir;   /* default ./dcsandbox-state */
	const char *cert_file;
	const char *key_file;
	const char *templates;   /* default templates folder */
	bool auto_approve;
	uint64_t seed;
	unsigned threads;        /* default 2 */
	const char *faults[SB_ARGS_FAULTS_MAX]; /* "[provider:]key=value" */
	size_t fault_count;
	const char *dnsmasq_conf;
	int dnsmasq_port;        /* 0 = do not start dnsmasq */
	bool quiet;
	bool help;
} sb_args;

/*
 * Parse ARGV into ARGS (strings point into ARGV). Returns SB_OK or
 * SB_ERR_ARGS with the flag at fault in ERR.
 */
sb_result sb_args_parse(int argc, char **argv, sb_args *args, sb_error *err);

/* Print the usage text to stdout. */
void sb_args_usage(void);

/* Return true when ADDRESS is an IPv4 loopback (127.0.0.0/8) or ::1 literal. */
bool sb_args_is_loopback(const char *address);

#endif
