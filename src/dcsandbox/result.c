/* The sandbox's result names, error struct helper and clocks. */
#include "sandbox.h"

#include <stdio.h>
#include <time.h>

static const char *const result_names[SB_RESULT_COUNT] = {
	[SB_OK] = "SB_OK",
	[SB_ERR_NOMEM] = "SB_ERR_NOMEM",
	[SB_ERR_ARGS] = "SB_ERR_ARGS",
	[SB_ERR_CONFIG] = "SB_ERR_CONFIG",
	[SB_ERR_IO] = "SB_ERR_IO",
	[SB_ERR_TLS] = "SB_ERR_TLS",
	[SB_ERR_LISTEN] = "SB_ERR_LISTEN",
	[SB_ERR_DNS] = "SB_ERR_DNS",
	[SB_ERR_TEMPLATES] = "SB_ERR_TEMPLATES",
};

const char *sb_result_name(sb_result result)
{
	if ((unsigned)result >= SB_RESULT_COUNT)
		return "SB_ERR_UNKNOWN";
	return result_names[result];
}

sb_result sb_error_set(sb_error *err, sb_result code, const char *fmt, ...)
{
	if (err == NULL)
		return code;
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}

int64_t sb_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sb_wall_seconds(void)
{
	return (int64_t)time(NULL);
}
