/* Result names and error helpers shared by the dccommon modules. */
#include "common_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[COMMON_STATUS_COUNT] = {
	[COMMON_OK] = "COMMON_OK",
	[COMMON_ERR_INVALID] = "COMMON_ERR_INVALID",
	[COMMON_ERR_IO] = "COMMON_ERR_IO",
	[COMMON_ERR_DB] = "COMMON_ERR_DB",
	[COMMON_ERR_SCHEMA] = "COMMON_ERR_SCHEMA",
	[COMMON_ERR_CRYPTO] = "COMMON_ERR_CRYPTO",
	[COMMON_ERR_NOMEM] = "COMMON_ERR_NOMEM",
	[COMMON_ERR_INTERNAL] = "COMMON_ERR_INTERNAL",
};

const char *common_status_name(common_status status)
{
	if ((unsigned)status >= COMMON_STATUS_COUNT)
		return "COMMON_STATUS_UNKNOWN";
	return status_names[status];
}

void common_error_clear(common_error *err)
{
	if (err == NULL)
		return;
	err->status = COMMON_OK;
	err->code = "";
	err->message[0] = '\0';
}

common_status common_error_set(common_error *err, common_status status, const char *code,
                               const char *fmt, ...)
{
	if (err == NULL)
		return status;

	err->status = status;
	err->code = code != NULL ? code : "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return status;
}

char *common_quote(const char *value, size_t max_chars, char *buf, size_t size)
{
	static const char ellipsis[] = "...";

	if (size == 0)
		return buf;
	if (value == NULL)
		value = "";

	/* Leave room for the longest escape (4 bytes), the ellipsis and the NUL. */
	size_t out = 0;
	size_t chars = 0;
	const unsigned char *p = (const unsigned char *)value;
	for (; *p != '\0'; p++) {
		if (chars >= max_chars || out + 4 + sizeof(ellipsis) > size)
			break;
		if (*p < 0x20 || *p > 0x7e) {
			snprintf(buf + out, 5, "\\x%02x", *p);
			out += 4;
		} else if (*p == '\\' || *p == '"') {
			buf[out++] = '\\';
			buf[out++] = (char)*p;
		} else {
			buf[out++] = (char)*p;
		}
		chars++;
	}
	if (*p != '\0' && out + sizeof(ellipsis) <= size) {
		memcpy(buf + out, ellipsis, sizeof(ellipsis) - 1);
		out += sizeof(ellipsis) - 1;
	}
	buf[out] = '\0';
	return buf;
}
