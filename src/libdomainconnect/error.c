/*
 * Status names and the caller-owned error struct.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const status_names[DC_STATUS_COUNT] = {
	[DC_OK] = "DC_OK",
	[DC_ERR_INVALID_ARGUMENT] = "DC_ERR_INVALID_ARGUMENT",
	[DC_ERR_NOT_SUPPORTED] = "DC_ERR_NOT_SUPPORTED",
	[DC_ERR_TRANSIENT] = "DC_ERR_TRANSIENT",
	[DC_ERR_INVALID_RESPONSE] = "DC_ERR_INVALID_RESPONSE",
	[DC_ERR_AMBIGUOUS] = "DC_ERR_AMBIGUOUS",
	[DC_ERR_HOST_REJECTED] = "DC_ERR_HOST_REJECTED",
	[DC_ERR_API_MISMATCH] = "DC_ERR_API_MISMATCH",
	[DC_ERR_ASYNC_NOT_SUPPORTED] = "DC_ERR_ASYNC_NOT_SUPPORTED",
	[DC_ERR_CONFLICT] = "DC_ERR_CONFLICT",
	[DC_ERR_UNAUTHORIZED] = "DC_ERR_UNAUTHORIZED",
	[DC_ERR_RATE_LIMITED] = "DC_ERR_RATE_LIMITED",
	[DC_ERR_NOT_IMPLEMENTED] = "DC_ERR_NOT_IMPLEMENTED",
	[DC_ERR_NOT_APPLIED] = "DC_ERR_NOT_APPLIED",
	[DC_ERR_OAUTH] = "DC_ERR_OAUTH",
	[DC_ERR_HTTP] = "DC_ERR_HTTP",
	[DC_ERR_TOO_LARGE] = "DC_ERR_TOO_LARGE",
	[DC_ERR_TEMPLATE_NOT_SUPPORTED] = "DC_ERR_TEMPLATE_NOT_SUPPORTED",
	[DC_ERR_NOMEM] = "DC_ERR_NOMEM",
	[DC_ERR_INTERNAL] = "DC_ERR_INTERNAL",
};

const char *dc_status_name(dc_status status)
{
	if ((unsigned)status >= DC_STATUS_COUNT || status_names[status] == NULL)
		return "DC_ERR_UNKNOWN";
	return status_names[status];
}

bool dc_status_is_transient(dc_status status)
{
	return status == DC_ERR_TRANSIENT || status == DC_ERR_RATE_LIMITED;
}

void dc_error_clear(dc_error *err)
{
	if (err == NULL)
		return;
	json_decref(err->conflicts);
	memset(err, 0, sizeof(*err));
	err->retry_after = -1;
}

void dc_copy_sanitized(char *dst, size_t dst_size, const char *src, size_t src_len)
{
	size_t n = 0;

	if (dst_size == 0)
		return;
	for (size_t i = 0; i < src_len && n + 1 < dst_size; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '\0')
			break;
		dst[n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	dst[n] = '\0';
}

dc_status dc_fail(dc_error *err, dc_status status, const char *fmt, ...)
{
	char raw[DC_MESSAGE_MAX];
	va_list ap;

	if (err == NULL)
		return status;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);

	err->status = status;
	dc_copy_sanitized(err->message, sizeof(err->message), raw, sizeof(raw));
	return status;
}
