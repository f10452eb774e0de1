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

/* ---- Query strings (encode.c) ------------------------------------------- */

/*
 * A query string built from name=value pairs kept in the order they were
 * added, each name and value percent-encoded per RFC 3986 and the pairs
 * joined with '&'. Used for the consent, apply, revert and token queries.
 */
typedef struct dc_query dc_query;

/* Creates an empty query. Returns NULL on ENOMEM. */
dc_query *dc_query_new(void);

/*
 * Appends name=value, both percent-encoded. A NULL value is sent as an empty
 * one ("name="). Returns DC_OK or DC_ERR_NOMEM. A NULL or empty name returns
 * DC_ERR_INVALID_ARGUMENT and leaves q unchanged.
 */
dc_status dc_query_add(dc_query *q, const char *name, const char *value);

/* Returns the query built so far, without a leading '?' and owned by q. */
const char *dc_query_str(const dc_query *q);

/* Returns the length of dc_query_str(q) in bytes. */
size_t dc_query_len(const dc_query *q);

/* Frees q. Accepts NULL. */
void dc_query_free(dc_query *q);

/*
 * Builds base + path + "?" + query into a malloc'd string. One trailing '/'
 * of base is dropped so "https://api.example/" + "/v2/..." has one slash.
 * path is appended as given, so the caller encodes its segments. The '?' is
 * left out when q is NULL or empty. Returns NULL on ENOMEM.
 */
char *dc_build_url(const char *base, const char *path, const dc_query *q);

/* ---- Syntax checks (params.c) -------------------------------------------- */

#define DC_ID_MAX 63            /* dc-id: providerId, serviceId, groupId, instanceId */
#define DC_PARAM_NAME_MAX 64    /* template variable names */
#define DC_DISPLAY_NAME_MAX 255 /* providerName, serviceName, in characters */
#define DC_ESCAPED_MAX 160      /* buffer for a value quoted in an error message */

/*
 * Copies src into dst for an error message: printable ASCII is kept, every
 * other byte and '\\' become \xNN, and a value that does not fit ends in
 * "...". A NULL src is shown as "(null)". Never pass a secret.
 */
void dc_escape_value(char *dst, size_t dst_size, const char *src);

/*
 * Checks a dc-id (1..63 of [A-Za-z0-9._-]). what names the field in the
 * message ("provider id"). Returns DC_OK or DC_ERR_INVALID_ARGUMENT.
 */
dc_status dc_check_id(const char *what, const char *id, dc_error *err);

/*
 * Checks a state value: printable ASCII 0x20..0x7E only (VSCHAR), may be
 * empty. Returns DC_OK or DC_ERR_INVALID_ARGUMENT.
 */
dc_status dc_check_state(const char *state, dc_error *err);

/*
 * Checks a display name (providerName, serviceName): 1..255 characters of
 * valid UTF-8 without control bytes. Returns DC_OK or DC_ERR_INVALID_ARGUMENT.
 */
dc_status dc_check_display_name(const char *what, const char *name, dc_error *err);

/*
 * Checks template variables: every name with dc_check_param_name, no name
 * twice, no NULL value. Returns DC_OK or DC_ERR_INVALID_ARGUMENT.
 */
dc_status dc_check_params(const dc_param *params, size_t count, dc_error *err);

/*
 * Checks a redirect_uri: an absolute URI (scheme ":" rest) of printable
 * ASCII without a fragment, at most 2048 bytes. Returns DC_OK or
 * DC_ERR_INVALID_ARGUMENT.
 */
dc_status dc_check_redirect_uri(const char *uri, dc_error *err);

/* ---- Domains (domain.c) -------------------------------------------------- */

/*
 * Normalizes a host relative to zone (as dc_split_domain does for a full
 * name) into *out, malloc'd. NULL or "" is the apex and gives "". Fails
 * with DC_ERR_INVALID_ARGUMENT when host.zone is not a valid name or does
 * not split back into zone and a host.
 */
dc_status dc_normalize_host(const char *zone, const char *host, char **out, dc_error *err);

/*
 * Checks that domain is a zone (a registrable domain, no host labels) and
 * stores its normalized form in *out, malloc'd.
 */
dc_status dc_normalize_zone(const char *domain, char **out, dc_error *err);

/* ---- URLs (settings.c) --------------------------------------------------- */

/*
 * Checks a base URL such as urlAPI or urlAsyncUX: "https://" followed by a
 * non-empty authority, an optional path, and no query or fragment. what
 * names the field in the message. Returns DC_OK or the given status.
 */
dc_status dc_check_base_url(const char *what, const char *url, dc_status status,
                            dc_error *err);

/* ---- Host guard (host_guard.c) ------------------------------------------- */

/*
 * Checks cfg->allow_networks and cfg->allow_ports strictly, so a client
 * rejects a malformed list when it starts. Returns DC_OK or
 * DC_ERR_INVALID_ARGUMENT naming the bad entry. Accepts cfg == NULL.
 */
dc_status dc_guard_config_check(const dc_config *cfg, dc_error *err);

#endif /* DC_INTERNAL_H */
