#include "dcctl.h"
int cmd_discover(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
int cmd_consent_url(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
int cmd_job(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
int cmd_jobs(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
int cmd_dead(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
int cmd_authorizations(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
int cmd_stats(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
