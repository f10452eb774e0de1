/*
 * Authorizations granted through the consent page, and the codes, access
 * tokens and refresh tokens that stand for them. Codes are single-use and
 * short-lived. Access tokens expire after the provider's lifetime or the
 * token-expiry fault. Refresh tokens rotate when the provider's config sets
 * rotate_refresh_tokens.
 * Every call runs with the server lock held.
 */
#ifndef DC_SANDBOX_GRANT_H
#define DC_SANDBOX_GRANT_H

#include "provider.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of generated codes and tokens (hex characters). */
#define SB_TOKEN_CHARS 40

/* What the domain owner approved. */
typedef struct sb_grant {
	sb_provider *provider;   /* the DNS provider that issued it */
	char *zone;
	char **hosts;            /* "" is the apex */
	size_t host_count;
	char *template_provider_id;
	char **services;
	size_t service_count;
	char *client_id;
	char *redirect_uri;      /* as sent at consent; the code exchange must repeat it */
	char refresh_token[SB_TOKEN_CHARS + 1]; /* current one; "" before the code exchange */
	bool orphaned; /* its code expired unexchanged; freed at the next sweep */
} sb_grant;

/* An access token's view of its grant. */
typedef struct sb_access {
	sb_grant *grant;
	int64_t issued_s;
	long lifetime_s;
	unsigned generation; /* provider->token_generation at issue */
} sb_access;

typedef struct sb_tokens sb_tokens;

/* Allocate an empty store. Returns NULL when out of memory. */
sb_tokens *sb_tokens_new(void);

/* Free the store, its grants and tokens. Accepts NULL. */
void sb_tokens_free(sb_tokens *tokens);

/*
 * Create a grant from the consent parameters and a code for it, written to
 * CODE (SB_TOKEN_CHARS + 1 bytes). HOSTS_CSV is the consent's comma list
 * (NULL = apex only); SCOPE is space-separated. Returns false when out of
 * memory or when the randomness source fails.
 */
bool sb_tokens_issue_code(sb_tokens *tokens, sb_provider *provider, const char *zone_name, const char *hosts_csv,
	const char *template_provider_id, const char *scope, const char *client_id,
	const char *redirect_uri, char *code);

/*
 * Take the code CODE: the grant is returned and the code is spent, whether
 * or not the caller then accepts the exchange. Returns NULL for an unknown,
 * spent or expired code.
 */
sb_grant *sb_tokens_take_code(sb_tokens *tokens, const char *code);

/*
 * Issue an access token for GRANT (written to ACCESS_TOKEN, SB_TOKEN_CHARS +
 * 1 bytes) and, when ROTATE is set or the grant has none yet, a new refresh
 * token that replaces (spends) the old one. Stores the lifetime in
 * *EXPIRES_IN. Returns false when out of memory.
 */
bool sb_tokens_issue_access(sb_tokens *tokens, sb_grant *grant, bool rotate, char *access_token,
	long *expires_in);

/* Return the grant of the live refresh token TOKEN, or NULL. */
sb_grant *sb_tokens_refresh_grant(sb_tokens *tokens, const char *token);

/*
 * Return the live access token TOKEN, or NULL when unknown or expired
 * (lifetime, token-expiry fault or an admin expiry).
 */
const sb_access *sb_tokens_access(sb_tokens *tokens, const char *token);

/* Return the number of live access tokens (for the admin API). */
size_t sb_tokens_access_count(const sb_tokens *tokens);

/* Returns the number of grants held: pending codes plus exchanged ones. */
size_t sb_tokens_grant_count(const sb_tokens *tokens);

/* Return true when GRANT covers HOST ("" or NULL is the apex). */
bool sb_grant_has_host(const sb_grant *grant, const char *host);

/* Return true when GRANT covers the template PROVIDER_ID / SERVICE_ID. */
bool sb_grant_has_service(const sb_grant *grant, const char *provider_id, const char *service_id);

#endif
