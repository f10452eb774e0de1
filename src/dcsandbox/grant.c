/* Grants, codes, access tokens and refresh tokens. */
#include "grant.h"
#include "map.h"
#include "sandbox.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Sweep expired access tokens once this many have been issued since the last
 * sweep, and expired codes (with the grants nobody exchanged) once this many
 * codes have been issued.
 */
#define TOKENS_SWEEP_EVERY 1024

typedef struct code_entry {
	sb_grant *grant;
	int64_t expires_ms;
} code_entry;

typedef struct grant_list {
	struct grant_list *next;
	sb_grant grant;
} grant_list;

struct sb_tokens {
	sb_map *codes;   /* code -> code_entry */
	sb_map *access;  /* token -> sb_access */
	sb_map *refresh; /* token -> sb_grant */
	grant_list *grants;
	size_t grant_count;
	size_t issued_since_sweep;
	size_t codes_since_sweep;
};

static bool random_token(char *out)
{
	unsigned char raw[SB_TOKEN_CHARS / 2];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[SB_TOKEN_CHARS] = '\0';
	return true;
}

sb_tokens *sb_tokens_new(void)
{
	sb_tokens *tokens = calloc(1, sizeof(*tokens));
	if (tokens == NULL)
		return NULL;
	tokens->codes = sb_map_new();
	tokens->access = sb_map_new();
	tokens->refresh = sb_map_new();
	if (tokens->codes == NULL || tokens->access == NULL || tokens->refresh == NULL) {
		sb_tokens_free(tokens);
		return NULL;
	}
	return tokens;
}

static bool free_value(void *arg, const char *key, void *value)
{
	(void)arg;
	(void)key;
	free(value);
	return true;
}

static void free_strings(char **list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(list[i]);
	free(list);
}

static void grant_clear(sb_grant *g)
{
	free(g->zone);
	free_strings(g->hosts, g->host_count);
	free(g->template_provider_id);
	free_strings(g->services, g->service_count);
	free(g->client_id);
	free(g->redirect_uri);
}

void sb_tokens_free(sb_tokens *tokens)
{
	if (tokens == NULL)
		return;
	if (tokens->codes != NULL)
		sb_map_sweep(tokens->codes, free_value, NULL);
	if (tokens->access != NULL)
		sb_map_sweep(tokens->access, free_value, NULL);
	sb_map_free(tokens->codes);
	sb_map_free(tokens->access);
	sb_map_free(tokens->refresh);
	while (tokens->grants != NULL) {
		grant_list *next = tokens->grants->next;
		grant_clear(&tokens->grants->grant);
		free(tokens->grants);
		tokens->grants = next;
	}
	free(tokens);
}

/* Split TEXT at any of SEPS into trimmed strings; empty items are kept when KEEP_EMPTY. */
static char **split_list(const char *text, const char *seps, bool keep_empty, bool lower, size_t *count)
{
	*count = 0;
	size_t cap = 1;
	for (const char *p = text; *p != '\0'; p++)
		if (strchr(seps, *p) != NULL)
			cap++;
	char **list = calloc(cap, sizeof(char *));
	if (list == NULL)
		return NULL;

	const char *start = text;
	for (;;) {
		const char *end = start + strcspn(start, seps);
		const char *a = start, *b = end;
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (b > a || keep_empty) {
			char *item = strndup(a, (size_t)(b - a));
			if (item == NULL) {
				free_strings(list, *count);
				return NULL;
			}
			for (char *c = item; lower && *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			list[(*count)++] = item;
		}
		if (*end == '\0')
			break;
		start = end + 1;
	}
	return list;
}

static bool sweep_expired_code(void *arg, const char *key, void *value)
{
	code_entry *entry = value;

	(void)key;
	if (entry->expires_ms > *(const int64_t *)arg)
		return false;
	entry->grant->orphaned = true;
	free(entry);
	return true;
}

/* Drops expired codes, then frees every grant whose code expired unexchanged. */
static void sweep_codes(sb_tokens *tokens)
{
	int64_t now = sb_monotonic_ms();

	sb_map_sweep(tokens->codes, sweep_expired_code, &now);
	for (grant_list **link = &tokens->grants; *link != NULL;) {
		grant_list *node = *link;

		if (!node->grant.orphaned) {
			link = &node->next;
			continue;
		}
		*link = node->next;
		grant_clear(&node->grant);
		free(node);
		tokens->grant_count--;
	}
	tokens->codes_since_sweep = 0;
}

bool sb_tokens_issue_code(sb_tokens *tokens, sb_provider *provider, const char *zone_name, const char *hosts_csv,
	const char *template_provider_id, const char *scope, const char *client_id,
	const char *redirect_uri, char *code)
{
	if (++tokens->codes_since_sweep >= TOKENS_SWEEP_EVERY)
		sweep_codes(tokens);

	grant_list *node = calloc(1, sizeof(*node));
	code_entry *entry = calloc(1, sizeof(*entry));
	if (node == NULL || entry == NULL)
		goto fail;

	sb_grant *g = &node->grant;
	g->provider = provider;
	g->zone = strdup(zone_name);
	g->hosts = split_list(hosts_csv != NULL ? hosts_csv : "", ",", true, true, &g->host_count);
	g->template_provider_id = strdup(template_provider_id);
	g->services = split_list(scope, " +", false, false, &g->service_count);
	g->client_id = strdup(client_id);
	g->redirect_uri = strdup(redirect_uri);
	if (g->zone == NULL || g->hosts == NULL || g->template_provider_id == NULL || g->services == NULL ||
		g->client_id == NULL || g->redirect_uri == NULL || !random_token(code)) {
		grant_clear(g);
		goto fail;
	}

	entry->grant = g;
	entry->expires_ms = sb_monotonic_ms() + provider->code_lifetime_s * 1000;
	if (!sb_map_put(tokens->codes, code, entry)) {
		grant_clear(g);
		goto fail;
	}
	node->next = tokens->grants;
	tokens->grants = node;
	tokens->grant_count++;
	return true;
fail:
	free(node);
	free(entry);
	return false;
}

sb_grant *sb_tokens_take_code(sb_tokens *tokens, const char *code)
{
	code_entry *entry = sb_map_remove(tokens->codes, code);
	if (entry == NULL)
		return NULL;
	sb_grant *grant = entry->grant;
	bool expired = entry->expires_ms <= sb_monotonic_ms();

	free(entry);
	if (expired) {
		grant->orphaned = true;
		return NULL;
	}
	return grant;
}

static bool access_expired(const sb_access *a, int64_t now)
{
	const sb_provider *p = a->grant->provider;
	long lifetime = a->lifetime_s;
	if (p->faults.token_expiry_s > 0 && p->faults.token_expiry_s < lifetime)
		lifetime = p->faults.token_expiry_s;
	return a->generation != p->token_generation || now >= a->issued_s + lifetime;
}

static bool sweep_expired(void *arg, const char *key, void *value)
{
	(void)key;
	if (!access_expired(value, *(const int64_t *)arg))
		return false;
	free(value);
	return true;
}

bool sb_tokens_issue_access(sb_tokens *tokens, sb_grant *grant, bool rotate, char *access_token,
	long *expires_in)
{
	const sb_provider *p = grant->provider;
	if (++tokens->issued_since_sweep >= TOKENS_SWEEP_EVERY) {
		int64_t now = sb_wall_seconds();
		sb_map_sweep(tokens->access, sweep_expired, &now);
		tokens->issued_since_sweep = 0;
	}

	sb_access *a = calloc(1, sizeof(*a));
	if (a == NULL || !random_token(access_token))
		goto fail;
	a->grant = grant;
	a->issued_s = sb_wall_seconds();
	a->lifetime_s = p->access_token_lifetime_s;
	if (p->faults.token_expiry_s > 0 && p->faults.token_expiry_s < a->lifetime_s)
		a->lifetime_s = p->faults.token_expiry_s;
	a->generation = p->token_generation;

	if (rotate || grant->refresh_token[0] == '\0') {
		char next[SB_TOKEN_CHARS + 1];
		if (!random_token(next) || !sb_map_put(tokens->refresh, next, grant))
			goto fail;
		/* The old refresh token is spent from now on. */
		if (grant->refresh_token[0] != '\0')
			sb_map_remove(tokens->refresh, grant->refresh_token);
		memcpy(grant->refresh_token, next, sizeof(next));
	}
	if (!sb_map_put(tokens->access, access_token, a))
		goto fail;
	*expires_in = a->lifetime_s;
	return true;
fail:
	free(a);
	return false;
}

sb_grant *sb_tokens_refresh_grant(sb_tokens *tokens, const char *token)
{
	return sb_map_get(tokens->refresh, token);
}

const sb_access *sb_tokens_access(sb_tokens *tokens, const char *token)
{
	sb_access *a = sb_map_get(tokens->access, token);
	if (a == NULL)
		return NULL;
	if (access_expired(a, sb_wall_seconds())) {
		free(sb_map_remove(tokens->access, token));
		return NULL;
	}
	return a;
}

size_t sb_tokens_grant_count(const sb_tokens *tokens)
{
	return tokens->grant_count;
}

size_t sb_tokens_access_count(const sb_tokens *tokens)
{
	return sb_map_count(tokens->access);
}

bool sb_grant_has_host(const sb_grant *grant, const char *host)
{
	const char *h = host != NULL ? host : "";
	if (strcmp(h, "@") == 0)
		h = "";
	for (size_t i = 0; i < grant->host_count; i++) {
		if (strcasecmp(grant->hosts[i], h) == 0)
			return true;
	}
	return false;
}

bool sb_grant_has_service(const sb_grant *grant, const char *provider_id, const char *service_id)
{
	if (strcmp(grant->template_provider_id, provider_id) != 0)
		return false;
	for (size_t i = 0; i < grant->service_count; i++) {
		if (strcmp(grant->services[i], service_id) == 0)
			return true;
	}
	return false;
}
