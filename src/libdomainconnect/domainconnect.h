/*
 * libdomainconnect: the service provider's side of Domain Connect v2.
 *
 * Discovery, template check, consent URL, code exchange, refresh, apply,
 * revert, sync apply URL with signing, and the host guard that every
 * server-side request passes through.
 *
 * The library has no globals. Network calls run on a caller's libev loop
 * through a dc_client, which drives both curl multi and c-ares from that
 * loop. Each call also has a blocking wrapper for command-line use.
 *
 * Ownership: strings passed in are copied when the call needs them after it
 * returns. Results handed to a callback belong to the callback, which frees
 * them with the matching _free function. A call that fails before starting
 * returns the error and never calls its callback.
 *
 * Secrets: client secrets, authorization codes and tokens never appear in a
 * dc_error message, in an oauth_error string or in anything this library
 * logs (it logs nothing).
 */
#ifndef DOMAINCONNECT_H
#define DOMAINCONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <ev.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result of every library call. Values are stable, and DC_OK is 0. */
typedef enum dc_status {
	DC_OK = 0,
	DC_ERR_INVALID_ARGUMENT,   /* the caller's input is invalid (bad domain, reserved name, ...) */
	DC_ERR_NOT_SUPPORTED,      /* no Domain Connect here: NXDOMAIN, NODATA, settings 404 */
	DC_ERR_TRANSIENT,          /* SERVFAIL, DNS or HTTP timeout, connection error, 5xx */
	DC_ERR_INVALID_RESPONSE,   /* garbage TXT, bad JSON, missing required field */
	DC_ERR_AMBIGUOUS,          /* several distinct valid _domainconnect values */
	DC_ERR_HOST_REJECTED,      /* the host guard rejected the URL or its addresses */
	DC_ERR_API_MISMATCH,       /* discovered urlAPI differs from the pinned one */
	DC_ERR_ASYNC_NOT_SUPPORTED,/* settings have no urlAsyncUX */
	DC_ERR_CONFLICT,           /* apply: 409, conflicting records in dc_error.conflicts */
	DC_ERR_UNAUTHORIZED,       /* 401 */
	DC_ERR_RATE_LIMITED,       /* 429, or 503 with Retry-After; see dc_error.retry_after */
	DC_ERR_NOT_IMPLEMENTED,    /* revert: 501 */
	DC_ERR_NOT_APPLIED,        /* revert: 410 */
	DC_ERR_OAUTH,              /* token endpoint error: dc_error.oauth_error */
	DC_ERR_HTTP,               /* any other non-2xx status, not retryable */
	DC_ERR_TOO_LARGE,          /* response body over its cap */
	DC_ERR_TEMPLATE_NOT_SUPPORTED, /* template check: 404 */
	DC_ERR_NOMEM,
	DC_ERR_INTERNAL,
	DC_STATUS_COUNT
} dc_status;

/* Returns the stable name of a status ("DC_ERR_CONFLICT"); never NULL. */
const char *dc_status_name(dc_status status);

/* True for statuses a caller may retry later with the same input. */
bool dc_status_is_transient(dc_status status);

#define DC_MESSAGE_MAX 512
#define DC_OAUTH_ERROR_MAX 64
#define DC_OAUTH_DESCRIPTION_MAX 256

/*
 * Error detail, owned by the caller. Strings are NUL-terminated, truncated to
 * their buffers and stripped of control bytes. Initialize with
 * `dc_error err = {0};` before the first call and release with
 * dc_error_clear(): clearing an uninitialized struct frees a garbage pointer.
 * In a dc_response_cb, err->conflicts belongs to the library and lives only
 * during the callback (json_incref() it to keep it); the blocking wrappers
 * hand it over to the caller's struct.
 */
typedef struct dc_error {
	dc_status status;
	long http_status;  /* 0 when no HTTP response was received */
	long retry_after;  /* seconds from Retry-After, -1 when absent */
	char oauth_error[DC_OAUTH_ERROR_MAX];             /* provider "error", or "" */
	char oauth_description[DC_OAUTH_DESCRIPTION_MAX]; /* provider "error_description", or "" */
	char message[DC_MESSAGE_MAX];                     /* never contains a secret */
	json_t *conflicts; /* 409: the "records" array from the body, or NULL */
} dc_error;

/* Resets an error to DC_OK and frees its conflicts. Accepts NULL. */
void dc_error_clear(dc_error *err);

/*
 * Where the token endpoint's parameters go.
 * DEFAULT: code/refresh_token, grant_type and redirect_uri in the query,
 * client_id and client_secret in a JSON body, and on refresh the credentials
 * in the query as well.
 */
typedef enum dc_token_placement {
	DC_TOKEN_PARAMS_DEFAULT = 0,
	DC_TOKEN_PARAMS_QUERY,  /* everything in the query, empty body */
	DC_TOKEN_PARAMS_JSON,   /* everything in a JSON body */
	DC_TOKEN_PARAMS_FORM    /* everything in an application/x-www-form-urlencoded body */
} dc_token_placement;

/* A DNS provider as the service provider was onboarded with it. */
typedef struct dc_provider {
	const char *name;          /* local name used in messages, e.g. "ionos" */
	const char *url_api;       /* pinned urlAPI: https://authority[/path], no trailing slash needed */
	const char *client_id;     /* required for the token calls */
	const char *client_secret; /* may be NULL for secret-less deployments */
	dc_token_placement token_placement;
	bool service_id_in_path;   /* consent path ends in /services/<id>; one service only */
} dc_provider;

/* Options of a dc_client. Zero values mean the documented default. */
typedef struct dc_config {
	const char *dns_servers;    /* "127.0.0.1:5353,[::1]:53"; NULL: system resolver config */
	const char *ca_file;        /* CA bundle for TLS verification; NULL: system bundle */
	const char *allow_networks; /* CIDRs the host guard lets through despite the deny list,
	                               e.g. "127.0.0.0/8,::1/128"; NULL: none */
	const char *allow_ports;    /* ports allowed in URLs, e.g. "8443,9443"; NULL: only 443 */
	long dns_timeout_ms;        /* per DNS query; default 5000 */
	long connect_timeout_ms;    /* default 5000 */
	long total_timeout_ms;      /* whole HTTP request; default 15000 */
	size_t max_body_bytes;      /* API responses; default 1 MiB */
	size_t max_settings_bytes;  /* settings responses; default 64 KiB */
	const char *user_agent;     /* default "libdomainconnect/<version>" */
	bool strict_settings;       /* require providerId in settings */
} dc_config;

/* One name=value template variable. */
typedef struct dc_param {
	const char *name;
	const char *value;
} dc_param;

/* ---- Pure functions (no network) --------------------------------------- */

/*
 * Percent-encodes src per RFC 3986: unreserved A-Za-z0-9-._~ kept, every
 * other byte %XX in upper-case hex. Returns a malloc'd string, NULL on ENOMEM.
 */
char *dc_percent_encode(const char *src);

/*
 * Checks a template variable name: 1..64 of [A-Za-z0-9_-] and not a reserved
 * protocol name (domain, host, groupId, force, ...). Fills err on failure.
 */
dc_status dc_check_param_name(const char *name, dc_error *err);

/*
 * Normalizes a domain (trim, one trailing dot, lower-case, IDN to A-labels)
 * and splits it into zone (registrable domain per the public suffix list,
 * private section included) and host (labels in front, "" at the apex).
 * *zone and *host are malloc'd on success.
 */
dc_status dc_split_domain(const char *domain, char **zone, char **host, dc_error *err);

/* Provider settings from GET {txt}/v2/{zone}/settings. */
typedef struct dc_settings {
	char *provider_id;           /* may be NULL unless strict_settings */
	char *provider_name;
	char *provider_display_name; /* NULL when absent */
	char *url_sync_ux;           /* NULL: sync not supported */
	char *url_async_ux;          /* NULL: async not supported */
	char *url_api;
	char *url_control_panel;     /* NULL when absent */
	int width, height;           /* 750 when absent */
	char **name_servers;
	size_t name_servers_count;
} dc_settings;

/* Parses and validates a settings body. Unknown fields are ignored. */
dc_status dc_settings_parse(const char *body, size_t len, bool strict, dc_settings *out,
                            dc_error *err);
void dc_settings_free(dc_settings *settings); /* frees members; accepts NULL */

/* Options of a consent URL. */
typedef struct dc_consent_request {
	const char *url_async_ux;       /* from settings */
	const char *provider_id;        /* template (service provider) id */
	const char *const *service_ids; /* one or many, joined with %20 into scope */
	size_t service_ids_count;
	const char *domain;             /* full name; the zone and host are derived from it */
	const char *const *hosts;       /* optional extra hosts; "" is the apex */
	size_t hosts_count;
	const char *client_id;          /* NULL: provider_id */
	const char *redirect_uri;
	const char *state;              /* optional, VSCHAR only */
	const dc_param *params;         /* optional template variables */
	size_t params_count;
	const char *provider_name;      /* optional providerName */
	const char *service_name;       /* optional serviceName */
	bool service_id_in_path;        /* per-provider quirk; requires exactly one service id */
} dc_consent_request;

/* Builds the consent URL into *url (malloc'd). */
dc_status dc_consent_url(const dc_consent_request *req, char **url, dc_error *err);

/* Options of a synchronous apply URL. */
typedef struct dc_sync_request {
	const char *url_sync_ux;
	const char *provider_id;
	const char *service_id;
	const char *domain;             /* zone */
	const char *host;               /* NULL or "" for the apex */
	const dc_param *params;
	size_t params_count;
	const char *redirect_uri;       /* optional */
	const char *state;              /* optional */
	const char *const *group_ids;   /* optional */
	size_t group_ids_count;
	const char *provider_name;      /* optional */
	const char *service_name;       /* optional */
	const char *instance_id;        /* optional */
	const char *private_key_pem;    /* optional: sign with RSA-SHA256 */
	const char *key_id;             /* required with private_key_pem */
} dc_sync_request;

/* Builds a sync apply URL; when a key is given the query ends in &key=..&sig=.. */
dc_status dc_sync_apply_url(const dc_sync_request *req, char **url, dc_error *err);

/* Signs msg with RSA-SHA256 (PKCS#1 v1.5); *sig_base64 is standard base64, malloc'd. */
dc_status dc_sign(const char *private_key_pem, const char *msg, size_t len, char **sig_base64,
                  dc_error *err);

/* ---- Host guard --------------------------------------------------------- */

/*
 * Checks a URL before any resolution: https only, a syntactically valid host
 * name (no IP literal, userinfo, whitespace), no port unless allow_ports lists
 * it. On success *host is the lower-cased host name and *port the port.
 */
dc_status dc_guard_check_url(const dc_config *cfg, const char *url, char **host, int *port,
                             dc_error *err);

/*
 * Checks one resolved address against the deny list (loopback, RFC 1918,
 * link-local, CGNAT, ULA, multicast, reserved, 0.0.0.0/8, metadata,
 * IPv4-mapped forms) minus cfg->allow_networks.
 */
dc_status dc_guard_check_address(const dc_config *cfg, const struct sockaddr *addr,
                                 dc_error *err);

/* ---- The client and asynchronous calls ---------------------------------- */

typedef struct dc_client dc_client;
typedef struct dc_request dc_request;

/* Creates a client on loop. cfg is copied. Returns NULL and fills err on failure. */
dc_client *dc_client_new(struct ev_loop *loop, const dc_config *cfg, dc_error *err);

/* Cancels every pending request without calling callbacks, then frees. Accepts NULL. */
void dc_client_free(dc_client *client);

/* Number of requests in flight. */
size_t dc_client_pending(const dc_client *client);

/* Cancels one pending request; its callback is not called. Accepts NULL. */
void dc_request_cancel(dc_request *req);

/* Discovery result. */
typedef struct dc_discovery {
	char *domain;    /* normalized input */
	char *zone;
	char *host;      /* "" at the apex */
	char *txt_value; /* authority[/path] from _domainconnect.<zone> */
	dc_settings settings;
} dc_discovery;
void dc_discovery_free(dc_discovery *d); /* accepts NULL */

/* Token endpoint result. */
typedef struct dc_token {
	char *access_token;
	char *refresh_token; /* NULL when the provider sent none (keep the old one) */
	char *token_type;    /* lower-cased; always "bearer" on success */
	long expires_in;     /* seconds */
} dc_token;
void dc_token_free(dc_token *t); /* wipes and frees; accepts NULL */

/* Apply or revert request. */
typedef struct dc_apply_request {
	const char *access_token;
	const char *provider_id; /* template (service provider) id */
	const char *service_id;
	const char *domain;      /* zone */
	const char *host;        /* NULL or "" for the apex */
	const dc_param *params;
	size_t params_count;
	const char *const *group_ids;
	size_t group_ids_count;
	bool force;              /* apply only: force=1 */
	const char *instance_id; /* optional */
	const char *provider_name;
	const char *service_name;
} dc_apply_request;

/* HTTP outcome of apply, revert and the template check. */
typedef struct dc_response {
	long http_status;
} dc_response;

/* Callbacks. result is NULL when err->status != DC_OK. */
typedef void (*dc_discover_cb)(void *arg, dc_discovery *result, const dc_error *err);
typedef void (*dc_token_cb)(void *arg, dc_token *result, const dc_error *err);
typedef void (*dc_response_cb)(void *arg, const dc_response *result, const dc_error *err);

dc_status dc_discover_start(dc_client *c, const char *domain, dc_discover_cb cb, void *arg,
                            dc_request **req, dc_error *err);

/* url_api may be the discovered one: the call carries no secret. */
dc_status dc_template_supported_start(dc_client *c, const char *url_api, const char *provider_id,
                                      const char *service_id, dc_response_cb cb, void *arg,
                                      dc_request **req, dc_error *err);

/* redirect_uri must be byte-identical to the one used for consent. */
dc_status dc_exchange_code_start(dc_client *c, const dc_provider *p, const char *code,
                                 const char *redirect_uri, dc_token_cb cb, void *arg,
                                 dc_request **req, dc_error *err);

/* redirect_uri may be NULL. */
dc_status dc_refresh_start(dc_client *c, const dc_provider *p, const char *refresh_token,
                           const char *redirect_uri, dc_token_cb cb, void *arg,
                           dc_request **req, dc_error *err);

dc_status dc_apply_start(dc_client *c, const dc_provider *p, const dc_apply_request *ar,
                         dc_response_cb cb, void *arg, dc_request **req, dc_error *err);

dc_status dc_revert_start(dc_client *c, const dc_provider *p, const dc_apply_request *ar,
                          dc_response_cb cb, void *arg, dc_request **req, dc_error *err);

/*
 * Checks a discovered urlAPI against the pinned one of provider p.
 * Returns DC_ERR_API_MISMATCH (a possible hijack) when they differ.
 */
dc_status dc_check_pinned_api(const dc_provider *p, const char *discovered_url_api,
                              dc_error *err);

/* ---- Blocking wrappers (each runs a private loop) ----------------------- */

dc_status dc_discover(const dc_config *cfg, const char *domain, dc_discovery **out, dc_error *err);
dc_status dc_template_supported(const dc_config *cfg, const char *url_api, const char *provider_id,
                                const char *service_id, dc_error *err);
dc_status dc_exchange_code(const dc_config *cfg, const dc_provider *p, const char *code,
                           const char *redirect_uri, dc_token **out, dc_error *err);
dc_status dc_refresh(const dc_config *cfg, const dc_provider *p, const char *refresh_token,
                     const char *redirect_uri, dc_token **out, dc_error *err);
dc_status dc_apply(const dc_config *cfg, const dc_provider *p, const dc_apply_request *ar,
                   dc_response *out, dc_error *err);
dc_status dc_revert(const dc_config *cfg, const dc_provider *p, const dc_apply_request *ar,
                    dc_response *out, dc_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DOMAINCONNECT_H */
