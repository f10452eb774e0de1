/*
 * Percent-encoding (RFC 3986) and the query-string builder.
 *
 * Every name and value that reaches a provider URL passes through
 * dc_percent_encode: the unreserved characters A-Za-z0-9-._~ are kept and
 * every other byte, UTF-8 included, becomes %XX in upper-case hex. Spaces are
 * %20, never '+', because signature verifiers compare the bytes of the query.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Initial capacity of a query buffer, which doubles when full. */
#define QUERY_INITIAL_CAPACITY 256

struct dc_query {
	char *buf;   /* NUL-terminated query, never NULL */
	size_t len;  /* bytes before the NUL */
	size_t cap;  /* bytes allocated */
};

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Returns the encoded length of src, or SIZE_MAX when it would overflow. */
static size_t encoded_length(const char *src)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
		size_t add = is_unreserved(*p) ? 1 : 3;

		if (n > SIZE_MAX - 1 - add)
			return SIZE_MAX;
		n += add;
	}
	return n;
}

/* Writes the encoding of src into dst, which has room for encoded_length(src) + 1 bytes. */
static void encode_into(char *dst, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
		if (is_unreserved(*p)) {
			*dst++ = (char)*p;
			continue;
		}
		*dst++ = '%';
		*dst++ = hex[*p >> 4];
		*dst++ = hex[*p & 0x0f];
	}
	*dst = '\0';
}

char *dc_percent_encode(const char *src)
{
	if (src == NULL)
		src = "";

	size_t n = encoded_length(src);
	if (n == SIZE_MAX)
		return NULL;

	char *out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	encode_into(out, src);
	return out;
}

dc_query *dc_query_new(void)
{
	dc_query *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;

	q->buf = malloc(QUERY_INITIAL_CAPACITY);
	if (q->buf == NULL) {
		free(q);
		return NULL;
	}
	q->buf[0] = '\0';
	q->cap = QUERY_INITIAL_CAPACITY;
	return q;
}

/* Grows the buffer so that extra more bytes and the NUL fit. */
static bool query_reserve(dc_query *q, size_t extra)
{
	if (extra > SIZE_MAX - 1 - q->len)
		return false;

	size_t need = q->len + extra + 1;
	if (need <= q->cap)
		return true;

	size_t cap = q->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;

	char *buf = realloc(q->buf, cap);
	if (buf == NULL)
		return false;
	q->buf = buf;
	q->cap = cap;
	return true;
}

dc_status dc_query_add(dc_query *q, const char *name, const char *value)
{
	if (q == NULL || name == NULL || name[0] == '\0')
		return DC_ERR_INVALID_ARGUMENT;
	if (value == NULL)
		value = "";

	size_t name_len = encoded_length(name);
	size_t value_len = encoded_length(value);
	if (name_len == SIZE_MAX || value_len == SIZE_MAX || name_len > SIZE_MAX - 2 - value_len)
		return DC_ERR_NOMEM;

	/* Room for an optional '&', the name, '=' and the value. */
	if (!query_reserve(q, name_len + value_len + 2))
		return DC_ERR_NOMEM;

	char *p = q->buf + q->len;
	if (q->len > 0)
		*p++ = '&';
	encode_into(p, name);
	p += name_len;
	*p++ = '=';
	encode_into(p, value);
	p += value_len;
	q->len = (size_t)(p - q->buf);
	return DC_OK;
}

const char *dc_query_str(const dc_query *q)
{
	return q == NULL ? "" : q->buf;
}

size_t dc_query_len(const dc_query *q)
{
	return q == NULL ? 0 : q->len;
}

void dc_query_free(dc_query *q)
{
	if (q == NULL)
		return;
	free(q->buf);
	free(q);
}

char *dc_build_url(const char *base, const char *path, const dc_query *q)
{
	size_t base_len = strlen(base);
	if (base_len > 0 && base[base_len - 1] == '/')
		base_len--;

	size_t path_len = strlen(path);
	size_t query_len = dc_query_len(q);
	if (path_len > SIZE_MAX / 4 || query_len > SIZE_MAX / 4 || base_len > SIZE_MAX / 4)
		return NULL;

	char *url = malloc(base_len + path_len + query_len + 2);
	if (url == NULL)
		return NULL;

	char *p = url;
	memcpy(p, base, base_len);
	p += base_len;
	memcpy(p, path, path_len);
	p += path_len;
	if (query_len > 0) {
		*p++ = '?';
		memcpy(p, dc_query_str(q), query_len);
		p += query_len;
	}
	*p = '\0';
	return url;
}
