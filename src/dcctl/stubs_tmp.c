#include "dcctl.h"
int cmd_discover(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
int cmd_consent_url(dcctl *ctx, int argc, char **argv) { (void)argc; (void)argv; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
