/*
 * The provider states of a job: loading the authorization, refreshing its
 * tokens, the provider call of each job type, and the classification of
 * every outcome with retry_classify().
 *
 * Every call to a configured provider passes the gate first (job_gate.h):
 * apply and revert take the zone lock, and all calls are paced.
 */
#include "job_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_store_conn.h"

static void classify(job *j, const dc_error *err);
static void decide(job *j, const retry_input *in);
static void use_authorization(job *j);
static void release_then_decide(job *j, const retry_input *in);

/* Provider call accounting */

/* Writes the HTTP status of a call, or its error class ("transient") when there was none. */
static void call_status(const dc_error *err, long http_status, char *buf, size_t size)
{
	const char *name;
	size_t i = 0;

	if (http_status > 0) {
		snprintf(buf, size, "%ld", http_status);
		return;
	}
	if (err == NULL || err->status == DC_OK) {
		snprintf(buf, size, "ok");
		return;
	}
	name = dc_status_name(err->status);
	if (strncmp(name, "DC_ERR_", 7) == 0)
		name += 7;
	for (; name[i] != '\0' && i + 1 < size; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
}

/* Marks the start of a provider call, for its latency. */
static void call_started(job *j)
{
	j->call_started_ms = job_now_ms();
}

/*
 * Counts the provider call that just ended at ENDPOINT, in this process's
 * metrics and in Redis for dcctl stats. A call that never reached the
 * network (host guard, bad input) is counted too, under its error class.
 */
static void call_ended(job *j, const char *endpoint, const dc_error *err, long http_status)
{
	char status[QUEUE_NAME_MAX + 1];
	const char *provider = j->provider != NULL ? j->provider->name : "";
	double seconds = (double)(job_now_ms() - j->call_started_ms) / 1000.0;
	queue_error qerr = {0};

	call_status(err, http_status, status, sizeof(status));
	metrics_provider_call(j->env->metrics, provider, endpoint, status, seconds);
	if (provider[0] != '\0')
		(void)queue_count_call(j->env->queue, provider, status, job_now_ms(), NULL, NULL, &qerr);
}

static bool type_uses_authorization(job_type type)
{
	return type == JOB_TYPE_APPLY || type == JOB_TYPE_REVERT || type == JOB_TYPE_REFRESH;
}

void job_begin_work(job *j)
{
	if (type_uses_authorization(j->spec->type)) {
		job_transition(j, JOB_STATE_LOAD_AUTH);
		return;
	}
	job_record_domain(j);
	job_transition(j, JOB_STATE_CALL);
}

/* Fills j->dcp from the provider section P. */
static void use_provider(job *j, const config_provider *p)
{
	j->provider = p;
	j->dcp.name = p->name;
	j->dcp.url_api = p->url_api;
	j->dcp.client_id =
		p->client_id != NULL ? p->client_id : j->env->cfg->worker.template_provider_id;
	j->dcp.client_secret = p->client_secret;
	j->dcp.token_placement = p->token_placement;
	j->dcp.service_id_in_path = p->service_id_in_path;
}

static void fail_store(job *j, const char *what, const job_store_error *err)
{
	job_finish(j, "failed", "store_error", "%s failed: %s (%s)", what, err->message,
	           job_store_status_name(err->status));
}

static bool store_error_transient(job_store_status status)
{
	return status == JOB_STORE_ERR_DISCONNECTED || status == JOB_STORE_ERR_TIMEOUT ||
	       status == JOB_STORE_ERR_BUSY || status == JOB_STORE_ERR_CLOSED;
}

/* Load the authorization */

/* Uses the authorization just read: status, provider, access token, expiry. */
static void use_authorization(job *j)
{
	job_authorization *auth = j->auth;
	const config *cfg = j->env->cfg;
	const config_provider *p;
	common_error cerr = {0};
	char *plain = NULL;

	if (strcmp(auth->status, "active") != 0) {
		if (strcmp(auth->status, "reauthorization_required") == 0)
			job_finish(j, "reauthorization_required", "reauthorization_required",
			           "authorization %s needs the owner's consent again", auth->id);
		else
			job_finish(j, "failed", "authorization_inactive", "authorization %s is %s",
			           auth->id, auth->status);
		return;
	}
	p = config_find_provider(cfg, auth->dns_provider);
	if (p == NULL) {
		job_finish(j, "failed", "unknown_dns_provider",
		           "authorization %s names DNS provider \"%s\", which has no [provider.%s] "
		           "section in the config",
		           auth->id, auth->dns_provider, auth->dns_provider);
		return;
	}
	use_provider(j, p);

	if (authz_decrypt(j->env->crypto, auth->id, AUTHZ_ACCESS_TOKEN, auth->access_token,
	                  auth->access_token_len, &plain, &cerr) != COMMON_OK) {
		job_finish(j, "failed", "token_decrypt_failed", "%s", cerr.message);
		return;
	}
	token_crypto_free_plaintext(j->access_token);
	j->access_token = plain;

	/* A refresh job always refreshes; other jobs refresh a token about to expire. */
	long long skew_ms = (long long)cfg->worker.refresh_skew_s * 1000;
	bool expiring = auth->expires_at_ms >= 0 && auth->expires_at_ms - job_now_ms() <= skew_ms;

	if (j->spec->type == JOB_TYPE_REFRESH ||
	    (expiring && j->refresh_rounds < JOB_REFRESH_ROUNDS_MAX)) {
		if (auth->refresh_token == NULL) {
			job_finish(j, "reauthorization_required", "no_refresh_token",
			           "authorization %s has no refresh token", auth->id);
			return;
		}
		j->refresh_rounds++;
		job_transition(j, JOB_STATE_REFRESH);
		return;
	}
	job_transition(j, JOB_STATE_CALL);
}

static void load_auth_cb(void *arg, job_store_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_retry_step(j, "load authorization", result->error.message);
		return;
	}
	if (result->error.status == JOB_STORE_ERR_NOT_FOUND) {
		job_finish(j, "failed", "authorization_not_found", "authorization %s not found",
		           j->spec->authorization_id);
		return;
	}
	if (result->error.status != JOB_STORE_OK) {
		fail_store(j, "loading the authorization", &result->error);
		return;
	}

	job_authorization_free(j->auth);
	j->auth = result->authorization;
	result->authorization = NULL;
	job_record_domain(j);
	use_authorization(j);
}

static void refresh_poll(job *j);

void job_state_load_auth(job *j)
{
	job_store_error err = {0};

	if (j->reread) {
		/* After invalid_grant: wait out any refresh in flight, then compare versions. */
		refresh_poll(j);
		return;
	}

	if (job_store_get_authorization(j->env->store, j->spec->authorization_id, load_auth_cb, j,
	                                &err) != JOB_STORE_OK) {
		job_retry_step(j, "load authorization", err.message);
		return;
	}
	job_callback_expect(j);
}

/* Refresh */

/*
 * Race-free refresh (refresh_lease.h): claim the lease, call the token
 * endpoint with no transaction open, store the new tokens fenced on the
 * lease and the version, and only then use the new access token. A job
 * that finds the lease taken waits and re-reads the row instead.
 */

static void refresh_poll(job *j);

/* The refresh lease outlives the token call: its timeout plus a margin for the gate. */
static long refresh_lease_ms(const job *j)
{
	long ms = job_gate_call_timeout_ms(j) + JOB_REFRESH_LEASE_MARGIN_MS;

	return ms > REFRESH_LEASE_MAX_MS ? REFRESH_LEASE_MAX_MS : ms;
}

/* Takes the row of a lease call as the job's authorization. */
static void adopt_row(job *j, refresh_lease_result *result)
{
	if (result->authorization == NULL)
		return;
	job_authorization_free(j->auth);
	j->auth = result->authorization;
	result->authorization = NULL;
}

/* Another job stored newer tokens: use them (a refresh job is done, its token was just used). */
static void use_rotated_row(job *j)
{
	metrics_refresh(j->env->metrics, "lost_race");
	if (j->spec->type == JOB_TYPE_REFRESH && strcmp(j->auth->status, "active") == 0) {
		job_finish(j, "succeeded", NULL, NULL);
		return;
	}
	use_authorization(j);
}

static void release_cb(void *arg, job_store_result *result)
{
	job *j = arg;
	retry_input in;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != JOB_STORE_OK) {
		/* The lease then ends by itself after refresh_lease_ms. */
		log_fields f = job_log_fields(j, "refresh");

		f.error = job_store_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_WARN, &f, "releasing the refresh lease failed: %s",
		          result->error.message);
	}
	in = j->pending_input;
	decide(j, &in);
}

static void release_lease_cb(void *arg, refresh_lease_result *result)
{
	job_store_result r = {.error = result->error};

	release_cb(arg, &r);
}

/*
 * After a failed token call: gives the lease back without touching the
 * tokens, then decides on IN. The release runs before the decision, so a
 * re-read after invalid_grant never finds this job's own lease.
 */
static void release_then_decide(job *j, const retry_input *in)
{
	job_store_error err = {0};

	j->pending_input = *in;
	j->lease_held = false;
	if (refresh_lease_release(j->env->store, j->auth->id, j->lease_owner, release_lease_cb, j,
	                          &err) != JOB_STORE_OK) {
		retry_input copy = j->pending_input;

		decide(j, &copy);
		return;
	}
	job_callback_expect(j);
}

/* Encrypts the tokens of j->token for authorization ID into j->access_ct and j->refresh_ct. */
static bool encrypt_tokens(job *j, const char *id)
{
	common_error cerr = {0};

	free(j->access_ct);
	free(j->refresh_ct);
	j->access_ct = NULL;
	j->refresh_ct = NULL;
	j->refresh_ct_len = 0;
	if (authz_encrypt(j->env->crypto, id, AUTHZ_ACCESS_TOKEN, j->token->access_token,
	                  &j->access_ct, &j->access_ct_len, &cerr) != COMMON_OK)
		goto fail;
	if (j->token->refresh_token != NULL &&
	    authz_encrypt(j->env->crypto, id, AUTHZ_REFRESH_TOKEN, j->token->refresh_token,
	                  &j->refresh_ct, &j->refresh_ct_len, &cerr) != COMMON_OK)
		goto fail;
	return true;
fail:
	/* A refresh lease still held ends by itself after refresh_lease_ms. */
	j->lease_held = false;
	job_finish(j, "failed", "token_encrypt_failed", "%s", cerr.message);
	return false;
}

static void refresh_cb(void *arg, dc_token *result, const dc_error *err)
{
	job *j = arg;

	j->request = NULL;
	job_gate_leave(j);
	call_ended(j, "token", err, err->http_status);
	if (err->status != DC_OK) {
		metrics_refresh(j->env->metrics, "failed");
		dc_token_free(result);
		classify(j, err);
		return;
	}
	dc_token_free(j->token);
	j->token = result;
	if (encrypt_tokens(j, j->auth->id))
		job_transition(j, JOB_STATE_STORE_TOKENS);
}

/* The gate is open: call the token endpoint with the refresh token of the claimed row. */
static void refresh_call(job *j)
{
	common_error cerr = {0};
	dc_error derr = {0};
	char *refresh = NULL;

	if (j->auth->refresh_token == NULL) {
		/* A 401 after a refresh: the policy's way to ask for consent again. */
		retry_input in = {.status = DC_ERR_UNAUTHORIZED, .http_status = 401,
		                  .retry_after_s = -1, .refreshed = true};

		job_gate_leave(j);
		snprintf(j->message, sizeof(j->message), "authorization %s has no refresh token",
		         j->auth->id);
		release_then_decide(j, &in);
		return;
	}
	if (authz_decrypt(j->env->crypto, j->auth->id, AUTHZ_REFRESH_TOKEN, j->auth->refresh_token,
	                  j->auth->refresh_token_len, &refresh, &cerr) != COMMON_OK) {
		job_gate_leave(j);
		job_finish(j, "failed", "token_decrypt_failed", "%s", cerr.message);
		return;
	}
	call_started(j);
	dc_status status = dc_refresh_start(j->env->client, &j->dcp, refresh, NULL, refresh_cb, j,
	                                    &j->request, &derr);
	token_crypto_free_plaintext(refresh);
	if (status != DC_OK) {
		job_gate_leave(j);
		call_ended(j, "token", &derr, 0);
		classify(j, &derr);
		dc_error_clear(&derr);
	}
}

static void claim_lease_cb(void *arg, refresh_lease_result *result)
{
	job *j = arg;
	log_fields f;

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_retry_step(j, "claim refresh lease", result->error.message);
		return;
	}
	if (result->error.status == JOB_STORE_ERR_NOT_FOUND) {
		job_finish(j, "failed", "authorization_not_found", "authorization %s not found",
		           j->auth->id);
		return;
	}
	if (result->error.status != JOB_STORE_OK) {
		fail_store(j, "claiming the refresh lease", &result->error);
		return;
	}
	switch (result->outcome) {
	case REFRESH_LEASE_ACQUIRED:
		adopt_row(j, result);
		j->lease_held = true;
		job_gate_enter(j, false, refresh_call);
		return;
	case REFRESH_LEASE_CHANGED:
		adopt_row(j, result);
		use_rotated_row(j);
		return;
	case REFRESH_LEASE_INACTIVE:
		adopt_row(j, result);
		use_authorization(j);
		return;
	case REFRESH_LEASE_BUSY:
		f = job_log_fields(j, "refresh");
		log_write(j->env->log, LOG_LEVEL_DEBUG, &f,
		          "another job refreshes authorization %s; waiting for its tokens", j->auth->id);
		job_wait(j, JOB_REFRESH_POLL_MS, refresh_poll);
		return;
	default:
		break;
	}
	fail_store(j, "claiming the refresh lease", &result->error);
}

void job_state_refresh(job *j)
{
	job_store_error err = {0};
	char holder[PACING_HOLDER_RANDOM_LEN + 1];

	if (j->lease_owner[0] == '\0') {
		if (!pacing_new_holder(holder)) {
			job_retry_step(j, "claim refresh lease", "no random bytes for the lease owner");
			return;
		}
		snprintf(j->lease_owner, sizeof(j->lease_owner), "%s:%s", j->env->owner, holder);
	}
	if (refresh_lease_claim(j->env->store, j->auth->id, j->lease_owner, j->auth->version,
	                        refresh_lease_ms(j), claim_lease_cb, j, &err) != JOB_STORE_OK) {
		job_retry_step(j, "claim refresh lease", err.message);
		return;
	}
	job_callback_expect(j);
}

/*
 * Re-read for a job that waits on another job's refresh, or that got
 * invalid_grant (j->reread): a newer version means the tokens were rotated
 * and are used; a lease still held means wait more; a free lease on the
 * same version means claim it (waiter) or the grant is dead (re-read).
 */
static void read_lease_cb(void *arg, refresh_lease_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_wait(j, JOB_REFRESH_POLL_MS, refresh_poll);
		return;
	}
	if (result->error.status == JOB_STORE_ERR_NOT_FOUND) {
		job_finish(j, "failed", "authorization_not_found", "authorization %s not found",
		           j->auth->id);
		return;
	}
	if (result->error.status != JOB_STORE_OK || result->authorization == NULL) {
		fail_store(j, "reading the authorization", &result->error);
		return;
	}
	long long before = j->reread ? j->reread_version : j->auth->version;

	if (result->authorization->version != before) {
		bool reread = j->reread;

		j->reread = false;
		adopt_row(j, result);
		if (reread && j->spec->type == JOB_TYPE_REFRESH) {
			job_finish(j, "succeeded", NULL, NULL);
			return;
		}
		use_rotated_row(j);
		return;
	}
	if (result->outcome == REFRESH_LEASE_BUSY) {
		job_wait(j, JOB_REFRESH_POLL_MS, refresh_poll);
		return;
	}
	if (j->reread) {
		/* No job holds the lease and the version is the one refused: the grant is dead. */
		retry_input in = j->pending_input;

		in.authorization_unchanged = true;
		decide(j, &in);
		return;
	}
	adopt_row(j, result);
	job_transition(j, JOB_STATE_REFRESH);
}

static void refresh_poll(job *j)
{
	job_store_error err = {0};

	if (refresh_lease_read(j->env->store, j->auth->id, read_lease_cb, j, &err) !=
	    JOB_STORE_OK) {
		job_wait(j, JOB_REFRESH_POLL_MS, refresh_poll);
		return;
	}
	job_callback_expect(j);
}

static void refreshed_event_cb(void *arg, job_store_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != JOB_STORE_OK) {
		log_fields f = job_log_fields(j, "refresh");

		f.error = job_store_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_WARN, &f, "appending the refreshed event failed: %s",
		          result->error.message);
	}
	if (j->spec->type == JOB_TYPE_REFRESH)
		job_finish(j, "succeeded", NULL, NULL);
	else
		job_transition(j, JOB_STATE_CALL);
}

/* Records in the job's history that it refreshed the tokens, then goes on. */
static void append_refreshed(job *j)
{
	job_store_error err = {0};
	char detail[96];

	snprintf(detail, sizeof(detail), "{\"version\":%lld}", j->auth->version);
	if (job_store_append_event(j->env->store, j->id, "refreshed", detail, refreshed_event_cb, j,
	                           &err) != JOB_STORE_OK) {
		job_store_result r = {.error = err};

		job_callback_expect(j);
		refreshed_event_cb(j, &r);
		return;
	}
	job_callback_expect(j);
}

static void store_tokens_cb(void *arg, refresh_lease_result *result)
{
	job *j = arg;
	log_fields f;

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_retry_step(j, "store refreshed tokens", result->error.message);
		return;
	}
	if (result->error.status == JOB_STORE_ERR_VERSION_CONFLICT ||
	    result->error.status == JOB_STORE_ERR_LEASE_LOST) {
		/* Our lease ran out and another job stored first: read its tokens. */
		j->lease_held = false;
		f = job_log_fields(j, "refresh");
		f.error = job_store_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_WARN, &f,
		          "refreshed tokens not stored: another job took the lease; using its tokens");
		metrics_refresh(j->env->metrics, "lost_race");
		dc_token_free(j->token);
		j->token = NULL;
		j->reread = false;
		job_transition(j, JOB_STATE_LOAD_AUTH);
		return;
	}
	if (result->error.status != JOB_STORE_OK) {
		fail_store(j, "storing refreshed tokens", &result->error);
		return;
	}

	j->lease_held = false;
	j->auth->version = result->version;
	metrics_refresh(j->env->metrics, "stored");
	token_crypto_free_plaintext(j->access_token);
	j->access_token = strdup(j->token->access_token);
	dc_token_free(j->token);
	j->token = NULL;
	f = job_log_fields(j, "refresh");
	log_write(j->env->log, LOG_LEVEL_INFO, &f,
	          "access token refreshed; authorization %s at version %lld", j->auth->id,
	          j->auth->version);
	if (j->access_token == NULL) {
		job_retry_step(j, "store refreshed tokens", "out of memory");
		return;
	}
	append_refreshed(j);
}

void job_state_store_tokens(job *j)
{
	job_store_error err = {0};
	refresh_lease_tokens tokens = {
		.token_type = j->token->token_type != NULL ? j->token->token_type : "bearer",
		.access_token = j->access_ct,
		.access_token_len = j->access_ct_len,
		.refresh_token = j->refresh_ct,
		.refresh_token_len = j->refresh_ct_len,
		.expires_at_ms = job_now_ms() + (long long)j->token->expires_in * 1000,
	};

	if (refresh_lease_store(j->env->store, j->auth->id, j->lease_owner, j->auth->version,
	                        &tokens, store_tokens_cb, j, &err) != JOB_STORE_OK) {
		job_retry_step(j, "store refreshed tokens", err.message);
		return;
	}
	job_callback_expect(j);
}

/* Exchange a code and store the new authorization */

static void exchange_cb(void *arg, dc_token *result, const dc_error *err)
{
	job *j = arg;

	j->request = NULL;
	job_gate_leave(j);
	call_ended(j, "token", err, err->http_status);
	if (err->status != DC_OK) {
		dc_token_free(result);
		classify(j, err);
		return;
	}
	dc_token_free(j->token);
	j->token = result;
	if (!authz_new_id(j->authorization_id)) {
		job_finish(j, "failed", "internal_error", "no random bytes for the authorization id");
		return;
	}
	if (encrypt_tokens(j, j->authorization_id))
		job_transition(j, JOB_STATE_STORE_AUTH);
}

static void exchange_call(job *j);

static void start_exchange(job *j)
{
	const config_provider *p = config_find_provider(j->env->cfg, j->spec->dns_provider);

	if (p == NULL) {
		job_finish(j, "failed", "unknown_dns_provider",
		           "dns_provider \"%s\" has no [provider.%s] section in the config",
		           j->spec->dns_provider, j->spec->dns_provider);
		return;
	}
	use_provider(j, p);
	job_gate_enter(j, false, exchange_call);
}

/* The gate is open: exchange the code. */
static void exchange_call(job *j)
{
	dc_error derr = {0};

	call_started(j);
	if (dc_exchange_code_start(j->env->client, &j->dcp, j->spec->code, j->spec->redirect_uri,
	                           exchange_cb, j, &j->request, &derr) != DC_OK) {
		job_gate_leave(j);
		call_ended(j, "token", &derr, 0);
		classify(j, &derr);
		dc_error_clear(&derr);
	}
}

static void store_auth_cb(void *arg, job_store_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_retry_step(j, "store authorization", result->error.message);
		return;
	}
	if (result->error.status != JOB_STORE_OK) {
		j->authorization_id[0] = '\0';
		fail_store(j, "storing the authorization", &result->error);
		return;
	}
	dc_token_free(j->token);
	j->token = NULL;
	job_finish(j, "succeeded", NULL, NULL);
}

void job_state_store_auth(job *j)
{
	job_store_error err = {0};
	json_t *hosts = json_array();
	char *hosts_json;

	for (size_t i = 0; i < j->spec->hosts_count; i++)
		json_array_append_new(hosts, json_string(j->spec->hosts[i]));
	if (j->spec->hosts_count == 0)
		json_array_append_new(hosts, json_string(j->spec->domain_host));
	hosts_json = json_dumps(hosts, JSON_COMPACT);
	json_decref(hosts);
	if (hosts_json == NULL) {
		job_retry_step(j, "store authorization", "out of memory");
		return;
	}

	authz_insert_args args = {
		.id = j->authorization_id,
		.dns_provider = j->spec->dns_provider,
		.zone = j->spec->zone,
		.hosts_json = hosts_json,
		.token_type = j->token->token_type != NULL ? j->token->token_type : "bearer",
		.access_token = j->access_ct,
		.access_token_len = j->access_ct_len,
		.refresh_token = j->refresh_ct,
		.refresh_token_len = j->refresh_ct_len,
		.expires_at_ms = job_now_ms() + (long long)j->token->expires_in * 1000,
		.job_id = j->id,
	};
	job_store_status status = authz_insert(j->env->store, &args, store_auth_cb, j, &err);

	free(hosts_json);
	if (status != JOB_STORE_OK) {
		job_retry_step(j, "store authorization", err.message);
		return;
	}
	job_callback_expect(j);
}

/* Apply and revert */

static void apply_cb(void *arg, const dc_response *result, const dc_error *err)
{
	job *j = arg;

	j->request = NULL;
	job_gate_leave(j);
	call_ended(j, job_type_name(j->spec->type), err,
	           err->status == DC_OK ? result->http_status : err->http_status);
	if (err->status != DC_OK) {
		classify(j, err);
		return;
	}
	j->http_status = result->http_status;
	job_finish(j, "succeeded", NULL, NULL);
}

static void start_apply(job *j)
{
	const job_spec *spec = j->spec;
	dc_param *params = NULL;
	dc_error derr = {0};
	dc_status status;

	if (spec->params_count > 0) {
		params = calloc(spec->params_count, sizeof(*params));
		if (params == NULL) {
			job_gate_leave(j);
			job_retry_step(j, "call provider", "out of memory");
			return;
		}
	}
	for (size_t i = 0; i < spec->params_count; i++) {
		params[i].name = spec->params[i].name;
		params[i].value = spec->params[i].value;
	}

	dc_apply_request ar = {
		.access_token = j->access_token,
		.provider_id = j->env->cfg->worker.template_provider_id,
		.service_id = spec->service_id,
		.domain = j->auth->zone,
		.host = spec->host,
		.params = params,
		.params_count = spec->params_count,
		.group_ids = (const char *const *)spec->group_ids,
		.group_ids_count = spec->group_ids_count,
		.force = j->force_used,
	};
	call_started(j);
	if (spec->type == JOB_TYPE_APPLY)
		status = dc_apply_start(j->env->client, &j->dcp, &ar, apply_cb, j, &j->request, &derr);
	else
		status = dc_revert_start(j->env->client, &j->dcp, &ar, apply_cb, j, &j->request, &derr);
	free(params);
	if (status != DC_OK) {
		job_gate_leave(j);
		call_ended(j, job_type_name(spec->type), &derr, 0);
		classify(j, &derr);
		dc_error_clear(&derr);
	}
}

/* Discover */

static void discover_finish(job *j);

static void template_cb(void *arg, const dc_response *result, const dc_error *err)
{
	job *j = arg;
	json_t *templates = json_object_get(j->discovery, "templates");
	const char *service_id = j->spec->service_ids[j->template_index];

	j->request = NULL;
	call_ended(j, "template", err,
	           err->status == DC_OK && result != NULL ? result->http_status : err->http_status);
	if (err->status == DC_OK || err->status == DC_ERR_TEMPLATE_NOT_SUPPORTED) {
		json_object_set_new(templates, service_id, json_boolean(err->status == DC_OK));
	} else {
		classify(j, err);
		return;
	}
	j->template_index++;
	discover_finish(j);
}

/* Checks the next template, or builds the consent URL and finishes when all are checked. */
static void discover_finish(job *j)
{
	const job_spec *spec = j->spec;
	const dc_settings *settings = &j->discovered->settings;
	dc_error derr = {0};

	if (j->template_index < spec->service_ids_count) {
		call_started(j);
		if (dc_template_supported_start(j->env->client, settings->url_api,
		                                j->env->cfg->worker.template_provider_id,
		                                spec->service_ids[j->template_index], template_cb, j,
		                                &j->request, &derr) != DC_OK) {
			call_ended(j, "template", &derr, 0);
			classify(j, &derr);
			dc_error_clear(&derr);
		}
		return;
	}

	if (spec->redirect_uri != NULL && settings->url_async_ux != NULL) {
		dc_param *params = calloc(spec->params_count + 1, sizeof(*params));
		char *url = NULL;

		for (size_t i = 0; params != NULL && i < spec->params_count; i++) {
			params[i].name = spec->params[i].name;
			params[i].value = spec->params[i].value;
		}
		dc_consent_request req = {
			.url_async_ux = settings->url_async_ux,
			.provider_id = j->env->cfg->worker.template_provider_id,
			.service_ids = (const char *const *)spec->service_ids,
			.service_ids_count = spec->service_ids_count,
			.domain = spec->domain,
			.client_id = j->provider != NULL ? j->dcp.client_id : NULL,
			.redirect_uri = spec->redirect_uri,
			.state = spec->state,
			.params = params,
			.params_count = params != NULL ? spec->params_count : 0,
			.service_id_in_path = j->provider != NULL && j->provider->service_id_in_path,
		};
		if (dc_consent_url(&req, &url, &derr) == DC_OK)
			json_object_set_new(j->discovery, "consent_url", json_string(url));
		else
			json_object_set_new(j->discovery, "consent_error", json_string(derr.message));
		free(url);
		free(params);
		dc_error_clear(&derr);
	}
	job_finish(j, "succeeded", NULL, NULL);
}

static void discover_cb(void *arg, dc_discovery *result, const dc_error *err)
{
	job *j = arg;
	const config_provider *p;
	dc_error derr = {0};

	j->request = NULL;
	call_ended(j, "discover", err, err->http_status);
	if (err->status == DC_ERR_NOT_SUPPORTED) {
		j->discovery = json_pack("{s:b, s:s}", "supported", 0, "reason", err->message);
		job_finish(j, "succeeded", NULL, NULL);
		return;
	}
	if (err->status != DC_OK) {
		classify(j, err);
		return;
	}

	dc_discovery_free(j->discovered);
	j->discovered = result;
	const dc_settings *s = &result->settings;
	j->discovery = json_pack("{s:b, s:s, s:s, s:s?, s:s?, s:s?, s:b, s:o}", "supported", 1,
	                         "zone", result->zone, "host", result->host, "provider_id",
	                         s->provider_id, "provider_name", s->provider_name, "url_api",
	                         s->url_api, "async_supported", s->url_async_ux != NULL,
	                         "templates", json_object());

	/* A provider in the config must return its pinned API URL in the settings. */
	p = s->provider_id != NULL ? config_find_provider_by_id(j->env->cfg, s->provider_id) : NULL;
	if (p != NULL) {
		use_provider(j, p);
		json_object_set_new(j->discovery, "dns_provider", json_string(p->name));
		if (dc_check_pinned_api(&j->dcp, s->url_api, &derr) != DC_OK) {
			classify(j, &derr);
			dc_error_clear(&derr);
			return;
		}
	}
	j->template_index = 0;
	discover_finish(j);
}

static void start_discover(job *j)
{
	dc_error derr = {0};

	call_started(j);
	if (dc_discover_start(j->env->client, j->spec->domain, discover_cb, j, &j->request,
	                      &derr) != DC_OK) {
		call_ended(j, "discover", &derr, 0);
		classify(j, &derr);
		dc_error_clear(&derr);
	}
}

void job_state_call(job *j)
{
	switch (j->spec->type) {
	case JOB_TYPE_DISCOVER:
		start_discover(j);
		return;
	case JOB_TYPE_EXCHANGE_CODE:
		start_exchange(j);
		return;
	case JOB_TYPE_APPLY:
	case JOB_TYPE_REVERT:
		job_gate_enter(j, true, start_apply);
		return;
	case JOB_TYPE_REFRESH:
		job_transition(j, JOB_STATE_REFRESH);
		return;
	case JOB_TYPE_COUNT:
		break;
	}
	job_finish(j, "failed", "invalid_job", "unknown job type");
}

/* Classification */

static void classify(job *j, const dc_error *err)
{
	retry_input in = {
		.status = err->status,
		.http_status = err->http_status,
		.retry_after_s = err->retry_after,
		/* A copy: the error is gone when a saved input is classified again. */
		.oauth_error = err->oauth_error[0] != '\0' ? j->oauth_error : NULL,
		.attempt = j->attempts + 1,
		.max_attempts = j->max_attempts,
		.reschedules = j->reschedules,
		.force_allowed = j->spec->on_conflict == JOB_ON_CONFLICT_FORCE,
		.force_used = j->force_used,
		.refreshed = j->refreshed,
	};

	snprintf(j->oauth_error, sizeof(j->oauth_error), "%s", err->oauth_error);
	j->http_status = err->http_status;
	snprintf(j->message, sizeof(j->message), "%s", err->message);
	if (err->status == DC_ERR_CONFLICT && err->conflicts != NULL) {
		json_decref(j->conflicts);
		j->conflicts = json_incref(err->conflicts);
	}
	if (err->http_status == 429)
		job_gate_penalize(j);
	if (j->lease_held) {
		release_then_decide(j, &in);
		return;
	}
	decide(j, &in);
}

/* Ends the job with STATUS, keeping the provider's message already in j->message. */
static void finish_with_message(job *j, const char *status, const char *code)
{
	char message[JOB_MESSAGE_MAX];

	snprintf(message, sizeof(message), "%s", j->message);
	job_finish(j, status, code, "%s", message);
}

static void queue_retry(job *j, const retry_decision *d, bool counts_attempt)
{
	j->status = "queued";
	j->event = counts_attempt ? "retried" : "rescheduled";
	j->counts_attempt = counts_attempt;
	j->delay_ms = d->delay_ms;
	snprintf(j->error_code, sizeof(j->error_code), "%s", d->reason);
	job_transition(j, JOB_STATE_COMMIT);
}

static void decide(job *j, const retry_input *in)
{
	retry_decision d = retry_classify(in, &j->env->backoff);
	log_fields f = job_log_fields(j, "classify");

	f.error = d.reason;
	log_write(j->env->log, LOG_LEVEL_DEBUG, &f, "provider outcome %s: %s",
	          dc_status_name(in->status), retry_action_name(d.action));

	switch (d.action) {
	case RETRY_SUCCEED:
		job_finish(j, "succeeded", NULL, NULL);
		return;
	case RETRY_CONFLICT:
		finish_with_message(j, "conflict", d.reason);
		return;
	case RETRY_FORCE_RETRY:
		j->force_used = true;
		job_transition(j, JOB_STATE_CALL);
		return;
	case RETRY_REFRESH_AND_RETRY:
		if (j->auth == NULL) {
			finish_with_message(j, "failed", d.reason);
			return;
		}
		j->refreshed = true;
		job_transition(j, JOB_STATE_REFRESH);
		return;
	case RETRY_REREAD_AUTHORIZATION:
		if (j->auth == NULL || j->reread) {
			/* A code exchange has no row to re-read: the code itself was refused. */
			finish_with_message(j, "failed", d.reason);
			return;
		}
		j->reread = true;
		j->reread_version = j->auth->version;
		j->pending_input = *in;
		job_transition(j, JOB_STATE_LOAD_AUTH);
		return;
	case RETRY_RESCHEDULE_NO_ATTEMPT:
		if (!j->reschedules_known) {
			j->pending_input = *in;
			job_transition(j, JOB_STATE_COUNT_RESCHEDULES);
			return;
		}
		queue_retry(j, &d, false);
		return;
	case RETRY_BACKOFF:
		queue_retry(j, &d, true);
		return;
	case RETRY_FAIL:
		finish_with_message(j, "failed", d.reason);
		return;
	case RETRY_REAUTHORIZE:
		snprintf(j->error_code, sizeof(j->error_code), "%s", d.reason);
		if (j->auth != NULL) {
			job_transition(j, JOB_STATE_MARK_REAUTH);
			return;
		}
		finish_with_message(j, "reauthorization_required", d.reason);
		return;
	case RETRY_ACTION_COUNT:
		break;
	}
	finish_with_message(j, "failed", "internal_error");
}

/* Mark the authorization as needing consent again */

static void mark_reauth_cb(void *arg, job_store_result *result)
{
	job *j = arg;
	char code[JOB_ERROR_CODE_MAX];

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_retry_step(j, "mark reauthorization", result->error.message);
		return;
	}
	if (result->error.status != JOB_STORE_OK) {
		log_fields f = job_log_fields(j, "mark_reauthorization");

		f.error = job_store_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_ERROR, &f, "marking the authorization failed: %s",
		          result->error.message);
	}
	snprintf(code, sizeof(code), "%s", j->error_code);
	finish_with_message(j, "reauthorization_required", code);
}

void job_state_mark_reauth(job *j)
{
	job_store_error err = {0};

	if (authz_set_status(j->env->store, j->auth->id, "reauthorization_required", mark_reauth_cb,
	                     j, &err) != JOB_STORE_OK) {
		job_retry_step(j, "mark reauthorization", err.message);
		return;
	}
	job_callback_expect(j);
}

/* Count the reschedules used so far */

static const char sql_count_reschedules[] =
	"SELECT count(*) FROM dc_job_events WHERE job_id = $1 AND event = 'rescheduled'";

static void parse_count(const PGresult *res, job_store_result *result)
{
	char *end;
	long count;

	if (PQntuples(res) != 1) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL, "count returned no row");
		return;
	}
	count = strtol(PQgetvalue(res, 0, 0), &end, 10);
	if (*end != '\0' || count < 0 || count > 1000000) {
		job_store_fail(&result->error, JOB_STORE_ERR_PROTOCOL, "count is out of range");
		return;
	}
	result->attempts = (int)count;
}

static void count_reschedules_cb(void *arg, job_store_result *result)
{
	job *j = arg;
	retry_input in;

	if (!job_callback_enter(j))
		return;
	if (store_error_transient(result->error.status)) {
		job_retry_step(j, "count reschedules", result->error.message);
		return;
	}
	if (result->error.status != JOB_STORE_OK) {
		fail_store(j, "counting reschedules", &result->error);
		return;
	}
	j->reschedules = result->attempts;
	j->reschedules_known = true;
	in = j->pending_input;
	in.reschedules = j->reschedules;
	decide(j, &in);
}

void job_state_count_reschedules(job *j)
{
	job_store_error err = {0};
	const char *params[] = {j->id};

	if (job_store_submit(j->env->store, sql_count_reschedules, 1, params, parse_count,
	                     count_reschedules_cb, j, &err) != JOB_STORE_OK) {
		job_retry_step(j, "count reschedules", err.message);
		return;
	}
	job_callback_expect(j);
}
