/*
 * Syntax checks for the names and values a caller passes to the library:
 * template variable names, dc-ids, state and display names.
 *
 * The rules are the ABNF of the Domain Connect IETF draft: variable-name is
 * 1*(ALPHA / DIGIT / "-" / "_"), dc-id is 1..63 of [A-Za-z0-9._-], state is
 * VSCHAR (0x20..0x7E). Every check runs before a URL is built or a request
 * is sent, so a bad input never reaches a provider.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/*
 * Names the protocol itself uses in a consent, apply, revert, sync or token
 * query, plus the built-in template variables. A template variable with one
 * of these names would collide with, or override, a protocol parameter.
 * Compared case-sensitively, as the protocol compares query names.
 */
static const char *const reserved_names[] = {
	"domain",       "host",       "groupId",     "force",     "providerName",
	"serviceName",  "instanceId", "sig",         "key",       "state",
	"redirect_uri", "client_id",  "scope",       "response_type", "code",
	"grant_type",   "error",      "error_description", "fqdn",
};

static bool is_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

void dc_escape_value(char *dst, size_t dst_size, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	static const char ellipsis[] = "...";

	if (dst_size == 0)
		return;
	if (src == NULL)
		src = "(null)";

	/* Reserve room for the ellipsis only when the whole value does not fit. */
	size_t total = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++)
		total += is_plain(*p) ? 1 : 4;
	bool fits = total < dst_size || dst_size < sizeof(ellipsis);
	size_t limit = fits ? dst_size : dst_size - (sizeof(ellipsis) - 1);

	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
		size_t need = is_plain(*p) ? 1 : 4;

		if (n + need >= limit)
			break;
		if (is_plain(*p)) {
			dst[n++] = (char)*p;
			continue;
		}
		dst[n++] = '\\';
		dst[n++] = 'x';
		dst[n++] = hex[*p >> 4];
		dst[n++] = hex[*p & 0x0f];
	}
	dst[n] = '\0';
	if (total >= dst_size && dst_size >= sizeof(ellipsis))
		memcpy(dst + n, ellipsis, sizeof(ellipsis));
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_reserved_name(const char *name)
{
	for (size_t i = 0; i < sizeof(reserved_names) / sizeof(reserved_names[0]); i++) {
		if (strcmp(name, reserved_names[i]) == 0)
			return true;
	}
	return false;
}

dc_status dc_check_param_name(const char *name, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];

	if (name == NULL || name[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "template variable name is empty: give each variable a name");

	dc_escape_value(shown, sizeof(shown), name);
	size_t len = strlen(name);
	if (len > DC_PARAM_NAME_MAX)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "template variable name \"%s\" is %zu bytes long: the maximum is %d",
		               shown, len, DC_PARAM_NAME_MAX);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!is_alnum(c) && c != '-' && c != '_')
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "template variable name \"%s\" is invalid: use only letters, "
			               "digits, '-' and '_'",
			               shown);
	}

	if (is_reserved_name(name))
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "template variable name \"%s\" is reserved by the protocol: rename "
		               "the variable in the template and the job",
		               shown);
	return DC_OK;
}

dc_status dc_check_id(const char *what, const char *id, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];

	if (id == NULL || id[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "%s is missing or empty", what);

	dc_escape_value(shown, sizeof(shown), id);
	size_t len = strlen(id);
	if (len > DC_ID_MAX)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "%s \"%s\" is %zu bytes long: the maximum is %d", what, shown, len,
		               DC_ID_MAX);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "%s \"%s\" is invalid: use only letters, digits, '.', '_' and '-'",
			               what, shown);
	}
	return DC_OK;
}

dc_status dc_check_state(const char *state, dc_error *err)
{
	if (state == NULL)
		return DC_OK;

	for (const unsigned char *p = (const unsigned char *)state; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			char shown[DC_ESCAPED_MAX];

			dc_escape_value(shown, sizeof(shown), state);
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "state \"%s\" is invalid: use only printable ASCII (0x20 to 0x7E), "
			               "e.g. base64url of random bytes",
			               shown);
		}
	}
	return DC_OK;
}

/* Returns the number of UTF-8 code points in s, or -1 for a malformed sequence. */
static long count_utf8_chars(const unsigned char *s)
{
	long count = 0;

	while (*s != '\0') {
		size_t extra;

		if (*s < 0x80)
			extra = 0;
		else if (*s >= 0xc2 && *s <= 0xdf)
			extra = 1;
		else if (*s >= 0xe0 && *s <= 0xef)
			extra = 2;
		else if (*s >= 0xf0 && *s <= 0xf4)
			extra = 3;
		else
			return -1;

		s++;
		for (size_t i = 0; i < extra; i++, s++) {
			if ((*s & 0xc0) != 0x80)
				return -1;
		}
		count++;
	}
	return count;
}

dc_status dc_check_display_name(const char *what, const char *name, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];

	if (name == NULL || name[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "%s is missing or empty", what);

	dc_escape_value(shown, sizeof(shown), name);
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "%s \"%s\" contains a control character: remove it", what, shown);
	}

	long chars = count_utf8_chars((const unsigned char *)name);
	if (chars < 0)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "%s \"%s\" is not valid UTF-8", what,
		               shown);
	if (chars > DC_DISPLAY_NAME_MAX)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "%s \"%s\" is %ld characters long: the maximum is %d", what, shown,
		               chars, DC_DISPLAY_NAME_MAX);
	return DC_OK;
}

dc_status dc_check_params(const dc_param *params, size_t count, dc_error *err)
{
	if (count > 0 && params == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "template variables are missing");

	for (size_t i = 0; i < count; i++) {
		dc_status st = dc_check_param_name(params[i].name, err);
		if (st != DC_OK)
			return st;

		char shown[DC_ESCAPED_MAX];
		dc_escape_value(shown, sizeof(shown), params[i].name);
		if (params[i].value == NULL)
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "template variable \"%s\" has no value: pass \"\" for an empty one",
			               shown);

		/* Quadratic, but templates have a handful of variables. */
		for (size_t j = 0; j < i; j++) {
			if (strcmp(params[i].name, params[j].name) == 0)
				return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
				               "template variable \"%s\" is given twice: pass it once", shown);
		}
	}
	return DC_OK;
}

/* Maximum length of a redirect_uri. */
#define REDIRECT_URI_MAX 2048

dc_status dc_check_redirect_uri(const char *uri, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];

	if (uri == NULL || uri[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "redirect_uri is missing or empty");

	dc_escape_value(shown, sizeof(shown), uri);
	if (strlen(uri) > REDIRECT_URI_MAX)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "redirect_uri \"%s\" is longer than %d bytes",
		               shown, REDIRECT_URI_MAX);

	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':' (RFC 3986). */
	size_t i = 0;
	bool scheme_ok = isalpha((unsigned char)uri[0]);
	while (scheme_ok && uri[i] != ':' && uri[i] != '\0') {
		unsigned char c = (unsigned char)uri[i];

		scheme_ok = is_alnum(c) || c == '+' || c == '-' || c == '.';
		i++;
	}
	if (!scheme_ok || uri[i] != ':' || uri[i + 1] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "redirect_uri \"%s\" is not an absolute URI: start it with a scheme "
		               "such as https://",
		               shown);

	for (const unsigned char *p = (const unsigned char *)uri; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f)
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "redirect_uri \"%s\" contains whitespace, a control byte or "
			               "non-ASCII: percent-encode it",
			               shown);
	}
	if (strchr(uri, '#') != NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "redirect_uri \"%s\" has a fragment, which OAuth does not allow", shown);
	return DC_OK;
}
