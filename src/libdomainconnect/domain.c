/*
 * Domain normalization and the zone/host split.
 *
 * A name typed by a user is converted to A-labels with libidn2 (UTS #46
 * non-transitional mapping, which also lower-cases). The public suffix list
 * (libpsl) then splits it into the registrable domain and the labels in
 * front of it. The registrable domain is the zone that discovery queries.
 *
 * The PSL comes from psl_builtin(): the list compiled into libpsl, private
 * section included (so "foo.github.io" is its own zone, as in the Python
 * and Go reference libraries). It needs no file, no allocation and no
 * network, and is safe to share between threads. When libpsl was built
 * without a built-in list, psl_latest(NULL) loads the system's copy instead.
 * NOTE: either list is only as recent as the installed libpsl or
 * publicsuffix package, so a suffix added later is split as an unknown one.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>
#include <libpsl.h>

#include "internal.h"

/* RFC 1035 limits, for the name without its trailing dot. */
#define LABEL_MAX 63
#define NAME_MAX_LENGTH 253

/* Inputs longer than this are rejected before any parsing. */
#define DOMAIN_INPUT_MAX 1024

/*
 * Copies domain without surrounding spaces and one trailing dot, ASCII
 * letters lower-cased. Returns NULL on ENOMEM.
 */
static char *trim_and_lower(const char *domain)
{
	const char *start = domain;
	while (*start == ' ' || *start == '\t')
		start++;

	size_t len = strlen(start);
	while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
		len--;
	if (len > 0 && start[len - 1] == '.')
		len--;

	char *out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)start[i];

		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
	}
	out[len] = '\0';
	return out;
}

/* Converts a lower-cased name to A-labels. *ace is malloc'd on success. */
static dc_status to_ace(const char *name, const char *shown, char **ace, dc_error *err)
{
	char *converted = NULL;
	int rc = idn2_lookup_u8((const uint8_t *)name, (uint8_t **)&converted,
	                        IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);

	if (rc == IDN2_MALLOC)
		return dc_fail(err, DC_ERR_NOMEM, "out of memory converting a domain name");
	if (rc != IDN2_OK)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" is not a valid internationalized name (%s): check its "
		               "spelling",
		               shown, idn2_strerror(rc));

	/* idn2 allocates with its own allocator, so copy into a malloc'd string. */
	*ace = strdup(converted);
	idn2_free(converted);
	if (*ace == NULL)
		return dc_fail(err, DC_ERR_NOMEM, "out of memory converting a domain name");
	return DC_OK;
}

static bool is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Checks one label of an A-label name: 1..63 bytes of [a-z0-9_-], no '-' at either end. */
static dc_status check_label(const char *label, size_t len, const char *shown, dc_error *err)
{
	if (len == 0)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" has an empty label: remove the extra dot", shown);
	if (len > LABEL_MAX)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" has a label of %zu bytes: the maximum is %d", shown, len,
		               LABEL_MAX);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)label[i];

		if (!is_ldh(c) && c != '_')
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "domain \"%s\" contains an invalid character: use letters, digits, "
			               "'-' and '.' only",
			               shown);
	}

	if (label[0] == '-' || label[len - 1] == '-')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" has a label starting or ending with '-'", shown);
	return DC_OK;
}

static dc_status check_labels(const char *name, const char *shown, dc_error *err)
{
	const char *p = name;

	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);

		dc_status st = check_label(p, len, shown, err);
		if (st != DC_OK)
			return st;
		if (dot == NULL)
			return DC_OK;
		p = dot + 1;
	}
}

static bool has_space_or_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == 0x7f)
			return true;
	}
	return false;
}

static bool is_ascii(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p >= 0x80)
			return false;
	}
	return true;
}

/* Checks the length of an A-label name and each of its labels. */
static dc_status check_syntax(const char *name, const char *shown, dc_error *err)
{
	size_t len = strlen(name);

	if (len > NAME_MAX_LENGTH)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" is %zu bytes long as A-labels: the maximum is %d", shown,
		               len, NAME_MAX_LENGTH);
	return check_labels(name, shown, err);
}

/*
 * Rejects IP literals. A top-level label is never all digits, so a name whose
 * last label is numeric is an IPv4 address in some spelling, such as "127.1",
 * "10.0.0.1" or "0x7f.1". The character check already rejects IPv6 literals.
 */
static dc_status check_not_ip(const char *name, const char *shown, dc_error *err)
{
	const char *last = strrchr(name, '.');
	last = last != NULL ? last + 1 : name;

	bool numeric = last[0] != '\0';
	for (const char *p = last; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			numeric = false;
	}
	if (numeric || strncmp(last, "0x", 2) == 0)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" is an IP address: give a domain name", shown);
	return DC_OK;
}

/* Returns the registrable domain of name, or NULL when name is a public suffix. */
static const char *registrable_domain(const char *name)
{
	const psl_ctx_t *builtin = psl_builtin();
	if (builtin != NULL)
		return psl_registrable_domain(builtin, name);

	psl_ctx_t *loaded = psl_latest(NULL);
	if (loaded == NULL)
		return NULL;

	/* The result points into name, so it outlives the context. */
	const char *zone = psl_registrable_domain(loaded, name);
	psl_free(loaded);
	return zone;
}

/* Splits an A-label name into *zone and *host (both malloc'd). */
static dc_status split(const char *name, const char *shown, char **zone, char **host,
                       dc_error *err)
{
	const char *apex = registrable_domain(name);
	if (apex == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" is a public suffix: give a registered domain such as "
		               "example.%s",
		               shown, name);

	/* Host labels may contain '_', as in _dmarc, but registered names may not. */
	if (strchr(apex, '_') != NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "domain \"%s\" has an underscore in its registered part: only host "
		               "labels may contain '_'",
		               shown);

	size_t host_len = apex > name ? (size_t)(apex - name) - 1 : 0;

	*zone = strdup(apex);
	*host = strndup(name, host_len);
	if (*zone == NULL || *host == NULL) {
		free(*zone);
		free(*host);
		*zone = NULL;
		*host = NULL;
		return dc_fail(err, DC_ERR_NOMEM, "out of memory splitting a domain name");
	}
	return DC_OK;
}

dc_status dc_split_domain(const char *domain, char **zone, char **host, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];
	char *trimmed = NULL;
	char *ace = NULL;
	dc_status st;

	if (zone == NULL || host == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "dc_split_domain: zone and host are required");
	*zone = NULL;
	*host = NULL;
	if (domain == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "domain is missing");

	dc_escape_value(shown, sizeof(shown), domain);
	if (strlen(domain) > DOMAIN_INPUT_MAX)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "domain \"%s\" is too long", shown);

	trimmed = trim_and_lower(domain);
	if (trimmed == NULL) {
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory normalizing a domain name");
		goto out;
	}
	if (trimmed[0] == '\0') {
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT, "domain \"%s\" is empty", shown);
		goto out;
	}

	/* libidn2 passes whitespace and control bytes through, so reject them first. */
	if (has_space_or_control(trimmed)) {
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		             "domain \"%s\" contains whitespace or a control character", shown);
		goto out;
	}

	/*
	 * ASCII names are checked before the conversion so that the messages
	 * name the exact rule. libidn2 then validates any xn-- label.
	 */
	if (is_ascii(trimmed)) {
		st = check_syntax(trimmed, shown, err);
		if (st != DC_OK)
			goto out;
	}

	st = to_ace(trimmed, shown, &ace, err);
	if (st != DC_OK)
		goto out;

	st = check_syntax(ace, shown, err);
	if (st != DC_OK)
		goto out;

	st = check_not_ip(ace, shown, err);
	if (st != DC_OK)
		goto out;

	st = split(ace, shown, zone, host, err);

out:
	free(trimmed);
	free(ace);
	return st;
}

dc_status dc_normalize_zone(const char *domain, char **out, dc_error *err)
{
	char *zone = NULL;
	char *host = NULL;

	*out = NULL;
	dc_status st = dc_split_domain(domain, &zone, &host, err);
	if (st != DC_OK)
		return st;

	if (host[0] != '\0') {
		char shown[DC_ESCAPED_MAX];

		dc_escape_value(shown, sizeof(shown), domain);
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		             "domain \"%s\" is not a zone: pass the zone \"%s\" and the host \"%s\"",
		             shown, zone, host);
		free(zone);
		free(host);
		return st;
	}
	free(host);
	*out = zone;
	return DC_OK;
}

dc_status dc_normalize_host(const char *zone, const char *host, char **out, dc_error *err)
{
	char *full = NULL;
	char *split_zone = NULL;
	char *split_host = NULL;
	char shown[DC_ESCAPED_MAX];
	dc_status st;

	*out = NULL;
	if (host == NULL || host[0] == '\0') {
		*out = strdup("");
		return *out != NULL ? DC_OK : dc_fail(err, DC_ERR_NOMEM, "out of memory");
	}

	dc_escape_value(shown, sizeof(shown), host);
	if (strlen(host) > DOMAIN_INPUT_MAX || zone == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "host \"%s\" is invalid", shown);

	/* A host is written without a trailing dot, so one here would hide an empty label. */
	size_t len = strlen(host);
	if (host[len - 1] == '.' || host[0] == ' ' || host[len - 1] == ' ')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "host \"%s\" is invalid: give labels without surrounding dots or spaces",
		               shown);

	if (asprintf(&full, "%s.%s", host, zone) < 0) {
		full = NULL;
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory");
		goto out;
	}

	st = dc_split_domain(full, &split_zone, &split_host, err);
	if (st != DC_OK) {
		/* Name the host, since the caller never wrote the joined name. */
		if (err != NULL)
			dc_fail(err, st, "host \"%s\" is invalid: %s", shown, err->message);
		goto out;
	}

	/* The host must not change the zone, as "co" would for the zone "uk". */
	if (strcmp(split_zone, zone) != 0 || split_host[0] == '\0') {
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		             "host \"%s\" does not belong to the zone \"%s\"", shown, zone);
		goto out;
	}
	*out = split_host;
	split_host = NULL;

out:
	free(full);
	free(split_zone);
	free(split_host);
	return st;
}
