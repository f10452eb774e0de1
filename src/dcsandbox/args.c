/* Command-line parsing for dcsandbox. */
#include "args.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGS_THREADS_MAX 64

void sb_args_usage(void)
{
	fputs("usage: dcsandbox --config FILE [options]\n"
	      "A local Domain Connect DNS provider over HTTPS, for tests, demos and integrators.\n"
	      "\n"
	      "  --config FILE         providers, zones, clients, quirks and faults (JSON)\n"
	      "  --listen ADDR         listen address (default 127.0.0.1); the only way to bind\n"
	      "                        anything but loopback\n"
	      "  --port N              HTTPS port (default 8443; 0 picks a free one)\n"
	      "  --state-dir DIR       where the generated CA and certificate go (default ./dcsandbox-state)\n"
	      "  --cert FILE --key FILE  serve this certificate instead of generating one\n"
	      "  --templates DIR       templates folder for providers without \"templates_dir\"\n"
	      "  --auto-approve        approve every consent at once (302 with a code)\n"
	      "  --fault [PROVIDER:]KEY=VALUE  inject a fault, e.g. errors=500:0.1,503:0.05,\n"
	      "                        latency_ms=200, drop_rate=0.1 (repeatable; see docs/sandbox.md)\n"
	      "  --seed N              seed for the fault draws (default 1)\n"
	      "  --threads N           server threads (default 2)\n"
	      "  --dnsmasq-conf FILE   write the _domainconnect TXT and A records as dnsmasq config\n"
	      "  --dnsmasq-port N      start dnsmasq on 127.0.0.1:N serving those records\n"
	      "  --quiet               no per-request log lines\n"
	      "  --help                print this text\n",
		stdout);
}

static bool parse_int(const char *text, long min, long max, long *out)
{
	errno = 0;
	char *end = NULL;
	long v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool sb_args_is_loopback(const char *address)
{
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, address, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, address, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6);
	return false;
}

sb_result sb_args_parse(int argc, char **argv, sb_args *args, sb_error *err)
{
	enum { O_CONFIG = 256, O_LISTEN, O_PORT, O_STATE, O_CERT, O_KEY, O_TEMPLATES, O_AUTO, O_FAULT,
		O_SEED, O_THREADS, O_DNS_CONF, O_DNS_PORT, O_QUIET, O_HELP };
	static const struct option options[] = {
		{"config", required_argument, NULL, O_CONFIG}, {"listen", required_argument, NULL, O_LISTEN},
		{"port", required_argument, NULL, O_PORT}, {"state-dir", required_argument, NULL, O_STATE},
		{"cert", required_argument, NULL, O_CERT}, {"key", required_argument, NULL, O_KEY},
		{"templates", required_argument, NULL, O_TEMPLATES}, {"auto-approve", no_argument, NULL, O_AUTO},
		{"fault", required_argument, NULL, O_FAULT}, {"seed", required_argument, NULL, O_SEED},
		{"threads", required_argument, NULL, O_THREADS},
		{"dnsmasq-conf", required_argument, NULL, O_DNS_CONF},
		{"dnsmasq-port", required_argument, NULL, O_DNS_PORT}, {"quiet", no_argument, NULL, O_QUIET},
		{"help", no_argument, NULL, O_HELP}, {NULL, 0, NULL, 0},
	};

	memset(args, 0, sizeof(*args));
	args->listen = "127.0.0.1";
	args->port = 8443;
	args->state_dir = "dcsandbox-state";
	args->seed = 1;
	args->threads = 2;

	optind = 1;
	opterr = 0;
	int c;
	long n = 0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case O_CONFIG: args->config_path = optarg; break;
		case O_LISTEN: args->listen = optarg; args->listen_explicit = true; break;
		case O_PORT:
			if (!parse_int(optarg, 0, 65535, &n))
				return sb_error_set(err, SB_ERR_ARGS, "invalid --port \"%s\": give 0 to 65535", optarg);
			args->port = (int)n;
			break;
		case O_STATE: args->state_dir = optarg; break;
		case O_CERT: args->cert_file = optarg; break;
		case O_KEY: args->key_file = optarg; break;
		case O_TEMPLATES: args->templates = optarg; break;
		case O_AUTO: args->auto_approve = true; break;
		case O_FAULT:
			if (args->fault_count == SB_ARGS_FAULTS_MAX)
				return sb_error_set(err, SB_ERR_ARGS, "too many --fault flags (at most %d)", SB_ARGS_FAULTS_MAX);
			args->faults[args->fault_count++] = optarg;
			break;
		case O_SEED: {
			errno = 0;
			char *end = NULL;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-')
				return sb_error_set(err, SB_ERR_ARGS, "invalid --seed \"%s\": give a non-negative integer", optarg);
			args->seed = v;
			break;
		}
		case O_THREADS:
			if (!parse_int(optarg, 1, ARGS_THREADS_MAX, &n))
				return sb_error_set(err, SB_ERR_ARGS, "invalid --threads \"%s\": give 1 to %d", optarg, ARGS_THREADS_MAX);
			args->threads = (unsigned)n;
			break;
		case O_DNS_CONF: args->dnsmasq_conf = optarg; break;
		case O_DNS_PORT:
			if (!parse_int(optarg, 1, 65535, &n))
				return sb_error_set(err, SB_ERR_ARGS, "invalid --dnsmasq-port \"%s\": give 1 to 65535", optarg);
			args->dnsmasq_port = (int)n;
			break;
		case O_QUIET: args->quiet = true; break;
		case O_HELP: args->help = true; return SB_OK;
		default:
			return sb_error_set(err, SB_ERR_ARGS, "unknown flag or missing value: %s (see --help)",
				argv[optind - 1]);
		}
	}
	if (optind < argc)
		return sb_error_set(err, SB_ERR_ARGS, "unexpected argument \"%s\"", argv[optind]);
	if (args->config_path == NULL)
		return sb_error_set(err, SB_ERR_ARGS, "--config FILE is required (see config/dcsandbox.example.json)");
	if ((args->cert_file == NULL) != (args->key_file == NULL))
		return sb_error_set(err, SB_ERR_ARGS, "--cert and --key go together");
	if (!args->listen_explicit && !sb_args_is_loopback(args->listen))
		return sb_error_set(err, SB_ERR_ARGS, "refusing to listen on %s without --listen", args->listen);
	return SB_OK;
}
