#include "enqueue.h"
int bulk_run(dcctl *ctx, const bulk_options *opts) { (void)opts; return out_error(ctx, DCCTL_EXIT_FAILED, "not built"); }
