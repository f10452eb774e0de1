/*
 * The token endpoint, POST /v2/oauth/access_token: the authorization_code
 * and refresh_token grants, with parameters in the query, a JSON body or a
 * form body, and the provider quirks for credentials and error bodies.
 */
#include "grant.h"
#include "server.h"

#include <stdio.h>
#include <string.h>

/* Send an OAuth error: JSON, or one line of plain text for the quirk. */
static void token_error(sb_request *req, sb_response *resp, int status, const char *error, const char *description)
{
	if (req->provider->quirks.plain_text_token_errors) {
		char text[256];
		if (strcmp(error, "invalid_grant") == 0)
			snprintf(text, sizeof(text), "Provided token doesn't match the registered one\n");
		else
			snprintf(text, sizeof(text), "%s: %s\n", error, description);
		sb_response_text(resp, status, "text/plain; charset=utf-8", text);
		return;
	}
	sb_response_json(resp, status, json_pack("{s:s, s:s}", "error", error, "error_description", description));
}

/* Check client_id and client_secret. Returns the client, or NULL after filling RESP with the error. */
static const sb_client *authenticate(sb_request *req, sb_response *resp, bool from_query)
{
	const char *client_id = from_query ? sb_request_query(req, "client_id") : sb_request_param(req, "client_id");
	const char *secret = from_query ? sb_request_query(req, "client_secret") : sb_request_param(req, "client_secret");
	if (client_id == NULL) {
		token_error(req, resp, from_query ? 400 : 401, from_query ? "invalid_request" : "invalid_client",
			from_query ? "this provider needs client_id and client_secret in the query on refresh"
				   : "client_id is missing");
		return NULL;
	}
	const sb_client *client = sb_provider_client(req->provider, client_id);
	bool ok = client != NULL;
	if (ok && client->client_secret != NULL)
		ok = secret != NULL && strcmp(secret, client->client_secret) == 0;
	if (!ok) {
		token_error(req, resp, 401, "invalid_client", "unknown client or wrong client secret");
		return NULL;
	}
	return client;
}

static void send_tokens(sb_request *req, sb_response *resp, sb_grant *grant, bool rotate)
{
	char access[SB_TOKEN_CHARS + 1];
	char refresh[SB_TOKEN_CHARS + 1];
	long expires_in = 0;
	bool issued = sb_tokens_issue_access(req->server->tokens, grant, rotate, access, &expires_in);
	memcpy(refresh, grant->refresh_token, sizeof(refresh));
	pthread_mutex_unlock(&req->server->lock);

	if (!issued) {
		token_error(req, resp, 500, "server_error", "out of memory");
		return;
	}
	sb_response_json(resp, 200, json_pack("{s:s, s:s, s:I, s:s}", "access_token", access,
		"token_type", "bearer", "expires_in", (json_int_t)expires_in, "refresh_token", refresh));
}

static void exchange_code(sb_request *req, sb_response *resp, const sb_client *client)
{
	const char *code = sb_request_param(req, "code");
	const char *redirect_uri = sb_request_param(req, "redirect_uri");
	if (code == NULL) {
		token_error(req, resp, 400, "invalid_request", "code is missing");
		return;
	}

	pthread_mutex_lock(&req->server->lock);
	sb_grant *grant = sb_tokens_take_code(req->server->tokens, code);
	const char *why = NULL;
	if (grant == NULL)
		why = "unknown, expired or already used code";
	else if (grant->provider != req->provider || strcmp(grant->client_id, client->client_id) != 0)
		why = "the code was issued to another client";
	else if (redirect_uri == NULL || strcmp(redirect_uri, grant->redirect_uri) != 0)
		why = "redirect_uri differs from the one sent at consent";
	if (why != NULL) {
		pthread_mutex_unlock(&req->server->lock);
		token_error(req, resp, 400, "invalid_grant", why);
		return;
	}
	send_tokens(req, resp, grant, true);
}

static void refresh(sb_request *req, sb_response *resp, const sb_client *client)
{
	const char *token = sb_request_param(req, "refresh_token");
	if (token == NULL) {
		token_error(req, resp, 400, "invalid_request", "refresh_token is missing");
		return;
	}

	pthread_mutex_lock(&req->server->lock);
	sb_grant *grant = sb_tokens_refresh_grant(req->server->tokens, token);
	if (grant == NULL || grant->provider != req->provider || strcmp(grant->client_id, client->client_id) != 0) {
		pthread_mutex_unlock(&req->server->lock);
		token_error(req, resp, 400, "invalid_grant", "unknown or spent refresh token");
		return;
	}
	send_tokens(req, resp, grant, req->provider->rotate_refresh_tokens);
}

void sb_handle_token(sb_request *req, sb_response *resp)
{
	const char *grant_type = sb_request_param(req, "grant_type");
	bool has_code = sb_request_param(req, "code") != NULL;
	bool has_refresh = sb_request_param(req, "refresh_token") != NULL;
	if (grant_type == NULL) {
		token_error(req, resp, 400, "invalid_request", "grant_type is missing");
		return;
	}
	if (has_code && has_refresh) {
		token_error(req, resp, 400, "invalid_request", "code and refresh_token must not be sent together");
		return;
	}

	bool is_refresh = strcmp(grant_type, "refresh_token") == 0;
	if (!is_refresh && strcmp(grant_type, "authorization_code") != 0) {
		token_error(req, resp, 400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token");
		return;
	}
	bool query_only = is_refresh && req->provider->quirks.refresh_credentials_in_query;
	const sb_client *client = authenticate(req, resp, query_only);
	if (client == NULL)
		return;

	if (is_refresh)
		refresh(req, resp, client);
	else
		exchange_code(req, resp, client);
}
