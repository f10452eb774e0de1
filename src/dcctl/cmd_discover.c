/*
 * Placeholders for the commands that call the protocol library.
 * TODO: implement discover and consent-url on dc_discover, dc_template_supported
 * and dc_consent_url; they exit 5 until then.
 */
#include "dcctl.h"

int cmd_discover(dcctl *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return out_error(ctx, DCCTL_EXIT_FAILED, "discover is not implemented yet");
}

int cmd_consent_url(dcctl *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return out_error(ctx, DCCTL_EXIT_FAILED, "consent-url is not implemented yet");
}
