/*
 * dcctl entry point: global options, the subcommand table and the top-level
 * help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcctl.h"

typedef struct command {
	const char *name;
	int (*run)(dcctl *ctx, int argc, char **argv);
	const char *summary;
} command;

static const command commands[] = {
	{"migrate", cmd_migrate, "apply pending database migrations (--status lists them)"},
	{"discover", cmd_discover, "discover a domain's DNS provider and its Domain Connect settings"},
	{"consent-url", cmd_consent_url, "build the consent URL to send a domain owner to"},
	{"enqueue", cmd_enqueue, "enqueue one job, or a CSV or JSON Lines file of jobs (--bulk)"},
	{"job", cmd_job, "show one job: state, result, attempts and events"},
	{"jobs", cmd_jobs, "list jobs filtered by status, type, domain and time"},
	{"dead", cmd_dead, "list, show, retry or purge dead letters"},
	{"authorizations", cmd_authorizations, "list, show or revoke stored authorizations"},
	{"stats", cmd_stats, "queue depths, in-flight, scheduled and dead jobs, provider calls"},
};

static void print_help(FILE *out)
{
	fprintf(out, "usage: dcctl [--config FILE] [--json] COMMAND [OPTIONS] [ARGS]\n\n"
	             "The command line of dcworker, the Domain Connect job engine.\n\n"
	             "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nOptions (also accepted after COMMAND):\n" DCCTL_COMMON_HELP
	             "  --version         print the version and exit\n\n"
	             "Run 'dcctl COMMAND --help' for the options of a command.\n\n"
	             "Exit codes: 0 ok, 1 usage error, 2 invalid config, 3 not found,\n"
	             "4 service unreachable, 5 operation failed, 6 wait timed out,\n"
	             "7 Domain Connect, the template or the asynchronous flow not supported.\n");
}

int main(int argc, char **argv)
{
	dcctl ctx = {0};
	int code = DCCTL_EXIT_USAGE;
	int i = 1;

	ctx.tty = isatty(STDOUT_FILENO) == 1;
	ctx.stderr_tty = isatty(STDERR_FILENO) == 1;
	ctx.config_path = getenv("DCCTL_CONFIG");
	if (ctx.config_path != NULL && ctx.config_path[0] == '\0')
		ctx.config_path = NULL;

	/* Global options before the command. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			print_help(stdout);
			return DCCTL_EXIT_OK;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("dcctl " DCCTL_VERSION "\n");
			return DCCTL_EXIT_OK;
		}
		if (strcmp(arg, "--json") == 0) {
			ctx.json = true;
		} else if (strcmp(arg, "--config") == 0 && i + 1 < argc) {
			ctx.config_path = argv[++i];
		} else if (strncmp(arg, "--config=", 9) == 0) {
			ctx.config_path = arg + 9;
		} else {
			out_usage(&ctx, NULL, "unknown option %s", arg);
			return DCCTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		print_help(stderr);
		return DCCTL_EXIT_USAGE;
	}

	const command *cmd = NULL;
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(commands[k].name, argv[i]) == 0)
			cmd = &commands[k];
	}
	if (cmd == NULL) {
		out_usage(&ctx, NULL, "unknown command \"%s\"", argv[i]);
		return DCCTL_EXIT_USAGE;
	}

	/* getopt expects argv[0] to be the program name, so the subcommand gets its own name there. */
	optind = 1;
	code = cmd->run(&ctx, argc - i, argv + i);

	config_free(ctx.cfg);
	log_ctx_free(ctx.log);
	return code;
}
