/*
 * Declarations shared by the library's own files; not part of the public API.
 */
#ifndef DC_INTERNAL_H
#define DC_INTERNAL_H

#include "domainconnect.h"

/*
 * Sets err->status and formats err->message. Control bytes in the result are
 * replaced with '?', so provider bytes passed through %s cannot forge lines.
 * Never pass a secret as an argument. Returns status, for "return dc_fail(...)".
 * Accepts err == NULL.
 */
dc_status dc_fail(dc_error *err, dc_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Copies at most dst_size - 1 bytes of untrusted src into dst, replacing
 * control and non-ASCII bytes with '?'.
 */
void dc_copy_sanitized(char *dst, size_t dst_size, const char *src, size_t src_len);

#endif /* DC_INTERNAL_H */
