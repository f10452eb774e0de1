/*
 * The settings document a DNS provider serves at
 * GET https://{_domainconnect TXT value}/v2/{zone}/settings.
 *
 * Only the ten registered fields are read, and unknown ones are ignored as
 * the protocol requires. "redirectSupported" is not a Domain Connect field,
 * so it is ignored like any other. A field of the wrong type is an error
 * naming the field, but JSON null counts as absent.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Maximum length of a URL in settings and provider configuration. */
#define URL_MAX 2048

/* Popup size when the provider does not give one, and the accepted range. */
#define POPUP_DEFAULT 750
#define POPUP_MIN 1
#define POPUP_MAX 100000

/* Maximum length of a name server name and maximum number of entries. */
#define NAME_SERVER_MAX 253
#define NAME_SERVERS_MAX 64

static bool is_url_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

dc_status dc_check_base_url(const char *what, const char *url, dc_status status, dc_error *err)
{
	static const char scheme[] = "https://";
	char shown[DC_ESCAPED_MAX];

	if (url == NULL || url[0] == '\0')
		return dc_fail(err, status, "%s is missing or empty", what);

	dc_escape_value(shown, sizeof(shown), url);
	size_t len = strlen(url);
	if (len > URL_MAX)
		return dc_fail(err, status, "%s \"%s\" is %zu bytes long: the maximum is %d", what,
		               shown, len, URL_MAX);
	if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
		return dc_fail(err, status, "%s \"%s\" is not an https:// URL", what, shown);

	for (size_t i = 0; i < len; i++) {
		if (!is_url_byte((unsigned char)url[i]))
			return dc_fail(err, status,
			               "%s \"%s\" contains whitespace, a control byte or non-ASCII", what,
			               shown);
	}
	if (strpbrk(url, "?#") != NULL)
		return dc_fail(err, status, "%s \"%s\" has a query or fragment: only a path is allowed",
		               what, shown);

	const char *authority = url + sizeof(scheme) - 1;
	size_t authority_len = strcspn(authority, "/");
	if (authority_len == 0)
		return dc_fail(err, status, "%s \"%s\" has no host", what, shown);
	if (memchr(authority, '@', authority_len) != NULL)
		return dc_fail(err, status, "%s \"%s\" contains user information", what, shown);
	return DC_OK;
}

static dc_status fail_type(dc_error *err, const char *field, const char *type)
{
	return dc_fail(err, DC_ERR_INVALID_RESPONSE, "settings field \"%s\" is not %s", field, type);
}

/*
 * Reads an optional string field into *out (malloc'd, NULL when absent or
 * null). Returns DC_ERR_INVALID_RESPONSE when the field has another type.
 */
static dc_status read_string(json_t *root, const char *field, char **out, dc_error *err)
{
	json_t *value = json_object_get(root, field);

	*out = NULL;
	if (value == NULL || json_is_null(value))
		return DC_OK;
	if (!json_is_string(value))
		return fail_type(err, field, "a string");

	/* json_loadb rejects \u0000 without JSON_ALLOW_NUL, so strings have no NUL inside. */
	*out = strdup(json_string_value(value));
	if (*out == NULL)
		return dc_fail(err, DC_ERR_NOMEM, "out of memory reading settings field \"%s\"", field);
	return DC_OK;
}

/* Reads an optional URL field and checks it with dc_check_base_url. */
static dc_status read_url(json_t *root, const char *field, char **out, dc_error *err)
{
	dc_status st = read_string(root, field, out, err);
	if (st != DC_OK || *out == NULL)
		return st;

	char what[64];
	snprintf(what, sizeof(what), "settings field \"%s\"", field);
	return dc_check_base_url(what, *out, DC_ERR_INVALID_RESPONSE, err);
}

/* Reads width or height: a JSON integer, an integral real or a numeric string. */
static dc_status read_popup_size(json_t *root, const char *field, int *out, dc_error *err)
{
	json_t *value = json_object_get(root, field);
	long long n;

	*out = POPUP_DEFAULT;
	if (value == NULL || json_is_null(value))
		return DC_OK;

	if (json_is_integer(value)) {
		n = json_integer_value(value);
	} else if (json_is_real(value)) {
		double d = json_real_value(value);

		if (!(d >= POPUP_MIN && d <= POPUP_MAX) || d != (double)(long long)d)
			return dc_fail(err, DC_ERR_INVALID_RESPONSE,
			               "settings field \"%s\" is not a whole number from %d to %d", field,
			               POPUP_MIN, POPUP_MAX);
		n = (long long)d;
	} else if (json_is_string(value)) {
		const char *s = json_string_value(value);
		char *end = NULL;

		errno = 0;
		n = strtoll(s, &end, 10);
		if (!isdigit((unsigned char)s[0]) || *end != '\0' || errno != 0)
			return dc_fail(err, DC_ERR_INVALID_RESPONSE,
			               "settings field \"%s\" is a string but not a whole number", field);
	} else {
		return fail_type(err, field, "a number");
	}

	if (n < POPUP_MIN || n > POPUP_MAX)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE,
		               "settings field \"%s\" is %lld: expected %d to %d", field, n, POPUP_MIN,
		               POPUP_MAX);
	*out = (int)n;
	return DC_OK;
}

static dc_status read_name_servers(json_t *root, dc_settings *out, dc_error *err)
{
	static const char field[] = "nameServers";
	json_t *list = json_object_get(root, field);

	if (list == NULL || json_is_null(list))
		return DC_OK;
	if (!json_is_array(list))
		return fail_type(err, field, "a list");

	size_t count = json_array_size(list);
	if (count > NAME_SERVERS_MAX)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE,
		               "settings field \"%s\" has %zu entries: the maximum is %d", field, count,
		               NAME_SERVERS_MAX);
	if (count == 0)
		return DC_OK;

	out->name_servers = calloc(count, sizeof(*out->name_servers));
	if (out->name_servers == NULL)
		return dc_fail(err, DC_ERR_NOMEM, "out of memory reading settings field \"%s\"", field);

	for (size_t i = 0; i < count; i++) {
		json_t *entry = json_array_get(list, i);

		if (!json_is_string(entry))
			return dc_fail(err, DC_ERR_INVALID_RESPONSE,
			               "settings field \"%s\" entry %zu is not a string", field, i);

		const char *name = json_string_value(entry);
		size_t len = json_string_length(entry);
		if (len == 0 || len > NAME_SERVER_MAX)
			return dc_fail(err, DC_ERR_INVALID_RESPONSE,
			               "settings field \"%s\" entry %zu is empty or longer than %d bytes", field, i,
			               NAME_SERVER_MAX);

		out->name_servers[i] = strdup(name);
		if (out->name_servers[i] == NULL)
			return dc_fail(err, DC_ERR_NOMEM, "out of memory reading settings field \"%s\"",
			               field);
		out->name_servers_count = i + 1;
	}
	return DC_OK;
}

/* Reads providerId and providerName, the identity fields. */
static dc_status read_provider(json_t *root, bool strict, dc_settings *out, dc_error *err)
{
	dc_status st = read_string(root, "providerId", &out->provider_id, err);
	if (st != DC_OK)
		return st;
	if (out->provider_id == NULL && strict)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE,
		               "settings field \"providerId\" is missing, and strict settings require "
		               "it: turn strict settings off to accept this provider");
	if (out->provider_id != NULL &&
	    dc_check_id("settings field \"providerId\"", out->provider_id, err) != DC_OK)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE, "%s", err != NULL ? err->message : "");

	st = read_string(root, "providerName", &out->provider_name, err);
	if (st != DC_OK)
		return st;
	if (out->provider_name == NULL)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE,
		               "settings field \"providerName\" is missing");
	if (dc_check_display_name("settings field \"providerName\"", out->provider_name, err) !=
	    DC_OK)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE, "%s", err != NULL ? err->message : "");

	return read_string(root, "providerDisplayName", &out->provider_display_name, err);
}

static dc_status read_fields(json_t *root, bool strict, dc_settings *out, dc_error *err)
{
	dc_status st = read_provider(root, strict, out, err);
	if (st != DC_OK)
		return st;

	st = read_url(root, "urlAPI", &out->url_api, err);
	if (st != DC_OK)
		return st;
	if (out->url_api == NULL)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE, "settings field \"urlAPI\" is missing");

	st = read_url(root, "urlSyncUX", &out->url_sync_ux, err);
	if (st != DC_OK)
		return st;
	st = read_url(root, "urlAsyncUX", &out->url_async_ux, err);
	if (st != DC_OK)
		return st;

	/* urlControlPanel may carry a query with %domain%, so only its type is checked. */
	st = read_string(root, "urlControlPanel", &out->url_control_panel, err);
	if (st != DC_OK)
		return st;

	st = read_popup_size(root, "width", &out->width, err);
	if (st != DC_OK)
		return st;
	st = read_popup_size(root, "height", &out->height, err);
	if (st != DC_OK)
		return st;

	return read_name_servers(root, out, err);
}

dc_status dc_settings_parse(const char *body, size_t len, bool strict, dc_settings *out,
                            dc_error *err)
{
	json_error_t jerr;
	json_t *root = NULL;
	dc_status st;

	if (out == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "dc_settings_parse: out is required");
	memset(out, 0, sizeof(*out));
	out->width = POPUP_DEFAULT;
	out->height = POPUP_DEFAULT;
	if (body == NULL)
		return dc_fail(err, DC_ERR_INVALID_RESPONSE, "settings body is empty");

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		st = dc_fail(err, DC_ERR_INVALID_RESPONSE,
		             "settings body is not valid JSON (line %d, column %d): %s", jerr.line,
		             jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		st = dc_fail(err, DC_ERR_INVALID_RESPONSE, "settings body is not a JSON object");
		goto out;
	}

	st = read_fields(root, strict, out, err);

out:
	json_decref(root);
	if (st != DC_OK)
		dc_settings_free(out);
	return st;
}

void dc_settings_free(dc_settings *settings)
{
	if (settings == NULL)
		return;

	free(settings->provider_id);
	free(settings->provider_name);
	free(settings->provider_display_name);
	free(settings->url_sync_ux);
	free(settings->url_async_ux);
	free(settings->url_api);
	free(settings->url_control_panel);
	for (size_t i = 0; i < settings->name_servers_count; i++)
		free(settings->name_servers[i]);
	free(settings->name_servers);
	memset(settings, 0, sizeof(*settings));
}
