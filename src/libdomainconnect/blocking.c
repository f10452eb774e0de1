/*
 * Blocking wrappers for command-line use. Each call creates a private libev
 * loop and client, starts the asynchronous call, runs the loop until its
 * callback has run, and frees both.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct blocking_call {
	bool done;
	dc_error err;
	dc_discovery *discovery;
	dc_token *token;
	dc_response response;
} blocking_call;

static void keep_error(blocking_call *b, const dc_error *err)
{
	b->done = true;
	b->err = *err;
	json_incref(b->err.conflicts); /* the callback's copy is released after it returns */
}

static void discover_done(void *arg, dc_discovery *result, const dc_error *err)
{
	blocking_call *b = arg;

	keep_error(b, err);
	b->discovery = result;
}

static void token_done(void *arg, dc_token *result, const dc_error *err)
{
	blocking_call *b = arg;

	keep_error(b, err);
	b->token = result;
}

static void response_done(void *arg, const dc_response *result, const dc_error *err)
{
	blocking_call *b = arg;

	keep_error(b, err);
	if (result != NULL)
		b->response = *result;
}

/* One private loop and client around one call. */
typedef struct blocking_env {
	struct ev_loop *loop;
	dc_client *client;
} blocking_env;

static dc_status env_open(blocking_env *env, const dc_config *cfg, blocking_call *b,
                          dc_error *err)
{
	memset(b, 0, sizeof(*b));
	dc_error_clear(&b->err);
	env->client = NULL;
	env->loop = ev_loop_new(EVFLAG_AUTO);
	if (env->loop == NULL)
		return dc_fail(err, DC_ERR_INTERNAL, "could not create an event loop");
	env->client = dc_client_new(env->loop, cfg, err);
	if (env->client == NULL) {
		ev_loop_destroy(env->loop);
		return err != NULL ? err->status : DC_ERR_INVALID_ARGUMENT;
	}
	return DC_OK;
}

/* Runs the loop until the call reports, then hands its error to err. */
static dc_status env_run(blocking_env *env, dc_status started, blocking_call *b, dc_error *err)
{
	dc_status st = started;

	if (started == DC_OK) {
		while (!b->done)
			ev_run(env->loop, EVRUN_ONCE);
		st = b->err.status;
		/* err is overwritten, not cleared: it may be uninitialized. */
		if (err != NULL) {
			*err = b->err;
		} else {
			dc_error_clear(&b->err);
		}
	}
	dc_client_free(env->client);
	ev_loop_destroy(env->loop);
	return st;
}

dc_status dc_discover(const dc_config *cfg, const char *domain, dc_discovery **out, dc_error *err)
{
	blocking_env env;
	blocking_call b;
	dc_status st;

	if (out == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "discovery: missing output pointer");
	*out = NULL;
	if ((st = env_open(&env, cfg, &b, err)) != DC_OK)
		return st;
	st = dc_discover_start(env.client, domain, discover_done, &b, NULL, err);
	st = env_run(&env, st, &b, err);
	*out = b.discovery;
	return st;
}

dc_status dc_template_supported(const dc_config *cfg, const char *url_api, const char *provider_id,
                                const char *service_id, dc_error *err)
{
	blocking_env env;
	blocking_call b;
	dc_status st;

	if ((st = env_open(&env, cfg, &b, err)) != DC_OK)
		return st;
	st = dc_template_supported_start(env.client, url_api, provider_id, service_id, response_done,
	                                 &b, NULL, err);
	return env_run(&env, st, &b, err);
}

/* Shared body of the two token calls. */
static dc_status run_token(const dc_config *cfg, const dc_provider *p, bool refresh,
                           const char *grant, const char *redirect_uri, dc_token **out,
                           dc_error *err)
{
	blocking_env env;
	blocking_call b;
	dc_status st;

	if (out == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "token request: missing output pointer");
	*out = NULL;
	if ((st = env_open(&env, cfg, &b, err)) != DC_OK)
		return st;
	if (refresh)
		st = dc_refresh_start(env.client, p, grant, redirect_uri, token_done, &b, NULL, err);
	else
		st = dc_exchange_code_start(env.client, p, grant, redirect_uri, token_done, &b, NULL,
		                            err);
	st = env_run(&env, st, &b, err);
	*out = b.token;
	return st;
}

dc_status dc_exchange_code(const dc_config *cfg, const dc_provider *p, const char *code,
                           const char *redirect_uri, dc_token **out, dc_error *err)
{
	return run_token(cfg, p, false, code, redirect_uri, out, err);
}

dc_status dc_refresh(const dc_config *cfg, const dc_provider *p, const char *refresh_token,
                     const char *redirect_uri, dc_token **out, dc_error *err)
{
	return run_token(cfg, p, true, refresh_token, redirect_uri, out, err);
}

/* Shared body of apply and revert. */
static dc_status run_apply(const dc_config *cfg, const dc_provider *p, const dc_apply_request *ar,
                           bool revert, dc_response *out, dc_error *err)
{
	blocking_env env;
	blocking_call b;
	dc_status st;

	if ((st = env_open(&env, cfg, &b, err)) != DC_OK)
		return st;
	if (revert)
		st = dc_revert_start(env.client, p, ar, response_done, &b, NULL, err);
	else
		st = dc_apply_start(env.client, p, ar, response_done, &b, NULL, err);
	st = env_run(&env, st, &b, err);
	if (out != NULL)
		out->http_status = b.response.http_status != 0 ? b.response.http_status
		                                              : (err ? err->http_status : 0);
	return st;
}

dc_status dc_apply(const dc_config *cfg, const dc_provider *p, const dc_apply_request *ar,
                   dc_response *out, dc_error *err)
{
	return run_apply(cfg, p, ar, false, out, err);
}

dc_status dc_revert(const dc_config *cfg, const dc_provider *p, const dc_apply_request *ar,
                    dc_response *out, dc_error *err)
{
	return run_apply(cfg, p, ar, true, out, err);
}
