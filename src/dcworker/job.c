/*
 * The job state machine: the transition function and the transport states
 * (parse, claim, commit, publish, acknowledge, schedule). The provider
 * states live in job_call.c.
 *
 * Ordering: the outcome is committed in PostgreSQL first, then published,
 * then the entry is acknowledged. A crash after the commit leaves the entry
 * pending; its redelivery finds the row finished and is only acknowledged.
 * Publishing before the acknowledgment means such a crash can at worst
 * leave the Redis result missing, never the PostgreSQL one.
 */
#include "job_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

static const char *const state_names[JOB_STATE_COUNT] = {
	[JOB_STATE_NEW] = "new",
	[JOB_STATE_PARSE] = "parse",
	[JOB_STATE_CLAIM] = "claim",
	[JOB_STATE_LOAD_AUTH] = "load_authorization",
	[JOB_STATE_REFRESH] = "refresh",
	[JOB_STATE_STORE_TOKENS] = "store_tokens",
	[JOB_STATE_CALL] = "call_provider",
	[JOB_STATE_STORE_AUTH] = "store_authorization",
	[JOB_STATE_MARK_REAUTH] = "mark_reauthorization",
	[JOB_STATE_COUNT_RESCHEDULES] = "count_reschedules",
	[JOB_STATE_COMMIT] = "commit",
	[JOB_STATE_DEFER] = "defer",
	[JOB_STATE_PUBLISH] = "publish",
	[JOB_STATE_ACK] = "ack",
	[JOB_STATE_SCHEDULE] = "schedule",
	[JOB_STATE_DEAD_LETTER] = "dead_letter",
	[JOB_STATE_DONE] = "done",
};

static void state_parse(job *j);
static void state_claim(job *j);
static void state_commit(job *j);
static void state_publish(job *j);
static void state_ack(job *j);
static void state_schedule(job *j);
static void state_dead_letter(job *j);
static void job_done(job *j);

int64_t job_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *job_id(const job *j)
{
	return j->id[0] != '\0' ? j->id : j->msg.entry_id;
}

log_fields job_log_fields(const job *j, const char *action)
{
	log_fields f = {0};

	f.job_id = job_id(j);
	f.action = action;
	f.type = j->type_name;
	if (j->spec != NULL) {
		f.domain = j->spec->domain;
		f.dns_provider = j->spec->dns_provider;
	}
	if (j->auth != NULL) {
		f.domain = j->auth->zone;
		f.dns_provider = j->auth->dns_provider;
	}
	f.attempt = j->attempts + 1;
	f.http_status = j->http_status;
	return f;
}

job *job_new(const job_env *env, queue_message *msg)
{
	job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->env = env;
	j->msg = *msg;
	msg->job = NULL;
	j->type_name = "invalid";
	j->started_ms = job_now_ms();
	ev_init(&j->timer, NULL);
	j->timer.data = j;
	ev_init(&j->renew_timer, NULL);
	j->renew_timer.data = j;
	ev_init(&j->wait_timer, NULL);
	j->wait_timer.data = j;
	ev_init(&j->gate.renew_timer, NULL);
	j->gate.renew_timer.data = j;
	return j;
}

static void job_free(job *j)
{
	ev_timer_stop(j->env->loop, &j->timer);
	ev_timer_stop(j->env->loop, &j->renew_timer);
	ev_timer_stop(j->env->loop, &j->wait_timer);
	job_gate_stop(j);
	dc_request_cancel(j->request);
	free(j->msg.job);
	job_spec_free(j->spec);
	job_authorization_free(j->auth);
	token_crypto_free_plaintext(j->access_token);
	dc_token_free(j->token);
	free(j->access_ct);
	free(j->refresh_ct);
	json_decref(j->conflicts);
	json_decref(j->discovery);
	dc_discovery_free(j->discovered);
	free(j);
}

void job_start(job *j)
{
	job_transition(j, JOB_STATE_PARSE);
}

void job_cancel(job *j)
{
	if (j->cancelled)
		return;
	j->cancelled = true;
	ev_timer_stop(j->env->loop, &j->timer);
	ev_timer_stop(j->env->loop, &j->renew_timer);
	ev_timer_stop(j->env->loop, &j->wait_timer);
	job_gate_stop(j);
	dc_request_cancel(j->request);
	j->request = NULL;
	if (j->outstanding == 0)
		job_done(j);
}

void job_callback_expect(job *j)
{
	j->outstanding++;
}

bool job_callback_enter(job *j)
{
	j->outstanding--;
	if (!j->cancelled)
		return true;
	if (j->outstanding == 0)
		job_done(j);
	return false;
}

/* Reports J to the worker and frees it. */
static void job_done(job *j)
{
	j->state = JOB_STATE_DONE;
	if (j->env->on_done != NULL)
		j->env->on_done(j->env->done_arg, j);
	job_free(j);
}

void job_transition(job *j, job_state state)
{
	log_fields f = job_log_fields(j, state_names[state]);

	if (log_enabled(j->env->log, LOG_LEVEL_DEBUG))
		log_write(j->env->log, LOG_LEVEL_DEBUG, &f, "state %s -> %s", state_names[j->state],
		          state_names[state]);
	j->state = state;
	j->step_failures = 0;

	switch (state) {
	case JOB_STATE_PARSE:
		state_parse(j);
		break;
	case JOB_STATE_CLAIM:
		state_claim(j);
		break;
	case JOB_STATE_LOAD_AUTH:
		job_state_load_auth(j);
		break;
	case JOB_STATE_REFRESH:
		job_state_refresh(j);
		break;
	case JOB_STATE_STORE_TOKENS:
		job_state_store_tokens(j);
		break;
	case JOB_STATE_CALL:
		job_state_call(j);
		break;
	case JOB_STATE_STORE_AUTH:
		job_state_store_auth(j);
		break;
	case JOB_STATE_MARK_REAUTH:
		job_state_mark_reauth(j);
		break;
	case JOB_STATE_COUNT_RESCHEDULES:
		job_state_count_reschedules(j);
		break;
	case JOB_STATE_COMMIT:
		state_commit(j);
		break;
	case JOB_STATE_DEFER:
		job_state_defer(j);
		break;
	case JOB_STATE_PUBLISH:
		state_publish(j);
		break;
	case JOB_STATE_ACK:
		state_ack(j);
		break;
	case JOB_STATE_SCHEDULE:
		state_schedule(j);
		break;
	case JOB_STATE_DEAD_LETTER:
		state_dead_letter(j);
		break;
	case JOB_STATE_DONE:
		if (j->outstanding > 0) {
			/* A renewal reply is still due: free the job when it arrives. */
			job_cancel(j);
			break;
		}
		job_done(j);
		break;
	case JOB_STATE_NEW:
	case JOB_STATE_COUNT:
		break;
	}
}

void job_finish(job *j, const char *status, const char *code, const char *fmt, ...)
{
	va_list ap;

	j->status = status;
	j->event = status;
	j->counts_attempt = true;
	snprintf(j->error_code, sizeof(j->error_code), "%s", code != NULL ? code : "");
	j->message[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(j->message, sizeof(j->message), fmt, ap);
		va_end(ap);
	}
	job_transition(j, JOB_STATE_COMMIT);
}

static void step_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	job *j = w->data;

	(void)loop;
	(void)revents;
	job_transition(j, j->state);
}

void job_retry_step(job *j, const char *what, const char *detail)
{
	log_fields f = job_log_fields(j, state_names[j->state]);
	int failures = j->step_failures + 1;
	long delay = JOB_STEP_RETRY_MIN_MS;

	for (int i = 1; i < failures && delay < JOB_STEP_RETRY_MAX_MS; i++)
		delay *= 2;
	if (delay > JOB_STEP_RETRY_MAX_MS)
		delay = JOB_STEP_RETRY_MAX_MS;

	f.error = detail;
	log_write(j->env->log, LOG_LEVEL_WARN, &f, "%s failed; retrying the step in %ld ms", what,
	          delay);
	ev_timer_stop(j->env->loop, &j->timer);
	ev_timer_init(&j->timer, step_timer_cb, (double)delay / 1000.0, 0.0);
	j->timer.data = j;
	ev_timer_start(j->env->loop, &j->timer);

	/* job_transition resets the count, so keep it across the re-entry. */
	j->step_failures = failures;
}

static void wait_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	job *j = w->data;
	job_gate_fn then = j->wait_then;

	(void)loop;
	(void)revents;
	j->wait_then = NULL;
	if (!j->cancelled && then != NULL)
		then(j);
}

void job_wait(job *j, long delay_ms, job_gate_fn then)
{
	ev_timer_stop(j->env->loop, &j->wait_timer);
	ev_init(&j->wait_timer, wait_timer_cb);
	j->wait_timer.data = j;
	ev_timer_set(&j->wait_timer, (double)(delay_ms > 0 ? delay_ms : 0) / 1000.0, 0.0);
	j->wait_then = then;
	ev_timer_start(j->env->loop, &j->wait_timer);
}

/* True for job store errors that come from the connection, not from the job. */
static bool store_error_transient(job_store_status status)
{
	return status == JOB_STORE_ERR_DISCONNECTED || status == JOB_STORE_ERR_TIMEOUT ||
	       status == JOB_STORE_ERR_BUSY || status == JOB_STORE_ERR_CLOSED;
}

static bool queue_error_transient(queue_status status)
{
	return status == QUEUE_ERR_DISCONNECTED || status == QUEUE_ERR_TIMEOUT ||
	       status == QUEUE_ERR_CLOSED;
}

/* Parse */

static void set_generated_id(job *j)
{
	snprintf(j->id, sizeof(j->id), "%s:%s", j->msg.queue, j->msg.entry_id);
}

/*
 * Takes the id and type of an invalid job when its JSON has well-formed
 * ones, so the client finds the result and the row can be written.
 */
static void salvage_id(job *j)
{
	json_t *root;
	const char *id;
	job_type type;

	set_generated_id(j);
	if (j->msg.job == NULL)
		return;
	root = json_loadb(j->msg.job, strlen(j->msg.job), JSON_REJECT_DUPLICATES, NULL);
	id = json_string_value(json_object_get(root, "id"));
	if (id != NULL && strlen(id) >= 1 && strlen(id) <= JOB_SPEC_ID_MAX &&
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") ==
	        strlen(id))
		snprintf(j->id, sizeof(j->id), "%s", id);
	id = json_string_value(json_object_get(root, "type"));
	if (id != NULL && job_type_parse(id, &type) == COMMON_OK) {
		j->type_name = job_type_name(type);
		j->type_known = true;
	}
	json_decref(root);
}

/* Records an invalid job: as a failed row when its type is known, else as a dead letter. */
static void reject_job(job *j)
{
	job_transition(j, j->type_known ? JOB_STATE_CLAIM : JOB_STATE_DEAD_LETTER);
}

static void state_parse(job *j)
{
	common_error err = {0};
	int64_t now = job_now_ms();

	if (j->msg.dead_lettered) {
		salvage_id(j);
		j->status = "dead";
		j->event = "dead";
		snprintf(j->error_code, sizeof(j->error_code), "poison_job");
		snprintf(j->message, sizeof(j->message),
		         "the entry was delivered %ld times without an outcome and moved to the dead "
		         "letters",
		         j->msg.deliveries);
		j->event = "dead";
		job_transition(j, j->type_known ? JOB_STATE_CLAIM : JOB_STATE_PUBLISH);
		return;
	}
	if (j->msg.job == NULL) {
		salvage_id(j);
		j->status = "failed";
		j->event = "failed";
		snprintf(j->error_code, sizeof(j->error_code), "too_large");
		if (j->msg.job_len > 0)
			snprintf(j->message, sizeof(j->message),
			         "the job is %zu bytes, over the limit of %d bytes; split it or "
			         "shorten its params",
			         j->msg.job_len, JOB_SPEC_MAX_BYTES);
		else
			snprintf(j->message, sizeof(j->message),
			         "the stream entry has no \"job\" field; enqueue with "
			         "XADD <queue> * job <json>");
		reject_job(j);
		return;
	}
	if (job_spec_parse(j->msg.job, strlen(j->msg.job), now, &j->spec, &err) != COMMON_OK) {
		salvage_id(j);
		j->status = "failed";
		j->event = "failed";
		snprintf(j->error_code, sizeof(j->error_code), "%s",
		         err.code != NULL && err.code[0] != '\0' ? err.code : "invalid_job");
		snprintf(j->message, sizeof(j->message), "%s", err.message);
		reject_job(j);
		return;
	}

	if (j->spec->id != NULL)
		snprintf(j->id, sizeof(j->id), "%s", j->spec->id);
	else
		set_generated_id(j);
	j->type_name = job_type_name(j->spec->type);
	j->type_known = true;
	j->max_attempts = j->spec->max_attempts > 0 ? j->spec->max_attempts
	                                            : (int)j->env->cfg->worker.max_attempts;

	/* A job due later waits in the scheduled set, not in a worker, with its row queued. */
	if (j->spec->not_before_ms > now) {
		job_defer_until(j, j->spec->not_before_ms, "not_before");
		return;
	}
	job_transition(j, JOB_STATE_CLAIM);
}

/* Claim renewal */

static void renew_lease_cb(void *arg, job_store_result *result)
{
	job *j = arg;
	log_fields f;

	if (!job_callback_enter(j))
		return;
	j->renewing_lease = false;
	f = job_log_fields(j, "renew_lease");
	if (result->error.status == JOB_STORE_OK) {
		metrics_lease(j->env->metrics, "renewed");
		return;
	}
	if (result->error.status == JOB_STORE_ERR_LEASE_LOST) {
		/* Finished already, or another worker took the job: its commit decides. */
		if (j->state < JOB_STATE_COMMIT) {
			metrics_lease(j->env->metrics, "lost");
			log_write(j->env->log, LOG_LEVEL_WARN, &f,
			          "the PostgreSQL lease is no longer ours; the commit will be refused");
		}
		return;
	}
	metrics_lease(j->env->metrics, "failed");
	f.error = job_store_status_name(result->error.status);
	log_write(j->env->log, LOG_LEVEL_WARN, &f, "renewing the lease failed: %s; trying again",
	          result->error.message);
}

static void touch_cb(void *arg, queue_result *result)
{
	job *j = arg;
	log_fields f;

	if (!job_callback_enter(j))
		return;
	j->touching = false;
	if (result->error.status == QUEUE_OK && result->value == 1)
		return;
	f = job_log_fields(j, "touch");
	if (result->error.status == QUEUE_OK) {
		/* Acknowledged meanwhile, or reclaimed by another worker, whose claim waits on ours. */
		if (j->state < JOB_STATE_ACK)
			log_write(j->env->log, LOG_LEVEL_WARN, &f,
			          "the Redis entry is no longer held by this worker");
		return;
	}
	f.error = queue_status_name(result->error.status);
	log_write(j->env->log, LOG_LEVEL_WARN, &f, "touching the Redis entry failed: %s",
	          result->error.message);
}

/* Renews the PostgreSQL lease until the commit and the Redis entry until the ack. */
static void renew_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	job *j = w->data;
	job_store_error serr = {0};
	queue_error qerr = {0};

	(void)loop;
	(void)revents;
	if (j->cancelled)
		return;
	if (j->state < JOB_STATE_COMMIT && !j->renewing_lease &&
	    job_store_renew_lease(j->env->store, j->id, j->env->owner, j->env->lease_ms,
	                          renew_lease_cb, j, &serr) == JOB_STORE_OK) {
		j->renewing_lease = true;
		job_callback_expect(j);
	}
	if (j->state < JOB_STATE_ACK && !j->touching &&
	    queue_touch(j->env->queue, &j->msg, touch_cb, j, &qerr) == QUEUE_OK) {
		j->touching = true;
		job_callback_expect(j);
	}
}

static void start_renewal(job *j)
{
	long interval_ms = j->env->lease_ms / JOB_RENEW_DIVISOR;

	if (interval_ms < JOB_RENEW_MIN_MS)
		interval_ms = JOB_RENEW_MIN_MS;
	ev_timer_stop(j->env->loop, &j->renew_timer);
	ev_init(&j->renew_timer, renew_timer_cb);
	j->renew_timer.data = j;
	ev_timer_set(&j->renew_timer, interval_ms / 1000.0, interval_ms / 1000.0);
	ev_timer_start(j->env->loop, &j->renew_timer);
}

/* Claim */

static char *payload_json(const job *j)
{
	json_t *root;
	char *text;

	if (j->spec != NULL) {
		root = job_spec_to_public_json(j->spec);
	} else {
		/* The raw text of an invalid job may hold a code; keep only its size. */
		root = json_pack("{s:b, s:I}", "invalid", 1, "bytes", (json_int_t)j->msg.job_len);
	}
	if (root == NULL)
		return NULL;
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

static void claim_cb(void *arg, job_store_result *result)
{
	job *j = arg;
	log_fields f;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != JOB_STORE_OK) {
		if (store_error_transient(result->error.status)) {
			job_retry_step(j, "claim", result->error.message);
			return;
		}
		f = job_log_fields(j, "claim");
		f.error = job_store_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_ERROR, &f,
		          "claim failed: %s; leaving the entry for reclaim", result->error.message);
		job_transition(j, JOB_STATE_DONE);
		return;
	}

	switch (result->claim) {
	case JOB_CLAIM_ACQUIRED:
		j->attempts = result->attempts;
		start_renewal(j);
		if (j->status != NULL) {
			/* Invalid or dead-lettered: the outcome is already known. */
			j->counts_attempt = j->spec == NULL;
			job_transition(j, JOB_STATE_COMMIT);
			return;
		}
		job_begin_work(j);
		return;
	case JOB_CLAIM_FINISHED:
		f = job_log_fields(j, "claim");
		log_write(j->env->log, LOG_LEVEL_INFO, &f,
		          "job is already %s; acknowledging the duplicate delivery", result->state);
		job_transition(j, JOB_STATE_ACK);
		return;
	case JOB_CLAIM_BUSY:
		f = job_log_fields(j, "claim");
		if (j->spec == NULL) {
			/* An invalid or dead job is never scheduled again; reclaim offers it later. */
			log_write(j->env->log, LOG_LEVEL_INFO, &f,
			          "another worker holds the job; leaving the entry for reclaim");
			job_transition(j, JOB_STATE_DONE);
			return;
		}
		log_write(j->env->log, LOG_LEVEL_INFO, &f,
		          "another worker holds the job; offering it again in %d ms",
		          JOB_BUSY_DELAY_MS);
		j->delay_ms = JOB_BUSY_DELAY_MS;
		job_transition(j, JOB_STATE_SCHEDULE);
		return;
	}
}

static void state_claim(job *j)
{
	job_store_error err = {0};
	char *payload = payload_json(j);
	job_store_claim_args args = {
		.id = j->id,
		.type = j->type_name,
		.queue = j->msg.queue,
		.payload_json = payload,
		.owner = j->env->owner,
		.lease_ms = j->env->lease_ms,
	};

	if (payload == NULL) {
		job_retry_step(j, "claim", "out of memory building the payload");
		return;
	}
	if (job_store_claim(j->env->store, &args, claim_cb, j, &err) != JOB_STORE_OK) {
		free(payload);
		job_retry_step(j, "claim", err.message);
		return;
	}
	free(payload);
	job_callback_expect(j);
}

/* Commit */

static void set_time(json_t *root, const char *key, int64_t ms)
{
	char buf[64];
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	json_object_set_new(root, key, json_string(buf));
}

static int committed_attempts(const job *j)
{
	return j->attempts + (j->counts_attempt ? 1 : 0);
}

/* Builds the result JSON, which contains no token, code or secret. */
static char *result_json(const job *j)
{
	json_t *root = json_object();
	char *text;

	if (root == NULL)
		return NULL;
	json_object_set_new(root, "id", json_string(j->id));
	json_object_set_new(root, "type", json_string(j->type_name));
	json_object_set_new(root, "status", json_string(j->status));
	json_object_set_new(root, "attempts", json_integer(committed_attempts(j)));
	if (j->http_status > 0)
		json_object_set_new(root, "http_status", json_integer(j->http_status));
	if (j->error_code[0] != '\0')
		json_object_set_new(root, "error_code", json_string(j->error_code));
	if (j->message[0] != '\0') {
		char *clean = log_redact(j->env->log, j->message);

		json_object_set_new(root, "message", json_string(clean != NULL ? clean : ""));
		free(clean);
	}
	if (j->authorization_id[0] != '\0')
		json_object_set_new(root, "authorization_id", json_string(j->authorization_id));
	else if (j->spec != NULL && j->spec->authorization_id != NULL)
		json_object_set_new(root, "authorization_id", json_string(j->spec->authorization_id));
	if (j->conflicts != NULL)
		json_object_set(root, "conflicts", j->conflicts);
	if (j->discovery != NULL)
		json_object_set(root, "discovery", j->discovery);
	if (strcmp(j->status, "queued") == 0)
		json_object_set_new(root, "retry_in_ms", json_integer(j->delay_ms));
	set_time(root, "started_at", j->started_ms);
	set_time(root, "finished_at", job_now_ms());

	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

static void commit_cb(void *arg, job_store_result *result)
{
	job *j = arg;
	log_fields f = job_log_fields(j, "commit");

	if (!job_callback_enter(j))
		return;
	if (result->error.status == JOB_STORE_ERR_LEASE_LOST) {
		log_write(j->env->log, LOG_LEVEL_WARN, &f,
		          "lease lost before the commit; another worker owns the job now");
		job_transition(j, JOB_STATE_DONE);
		return;
	}
	if (result->error.status != JOB_STORE_OK) {
		job_retry_step(j, "commit", result->error.message);
		return;
	}

	f.error = j->error_code[0] != '\0' ? j->error_code : NULL;
	f.duration_ms = (long)(job_now_ms() - j->started_ms);
	f.has_duration = true;
	metrics_job(j->env->metrics, j->type_name,
	            strcmp(j->status, "queued") == 0 ? j->event : j->status);
	if (strcmp(j->status, "queued") == 0) {
		log_write(j->env->log, LOG_LEVEL_INFO, &f, "job %s; retrying in %lld ms", j->event,
		          j->delay_ms);
		job_defer(j, j->delay_ms, j->event);
		return;
	}
	log_write(j->env->log,
	          strcmp(j->status, "succeeded") == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, &f,
	          "job %s%s%s", j->status, j->message[0] != '\0' ? ": " : "", j->message);
	job_transition(j, JOB_STATE_PUBLISH);
}

static void state_commit(job *j)
{
	job_store_error err = {0};
	char *result = result_json(j);
	json_t *detail_json = json_pack("{s:s, s:i}", "owner", j->env->owner, "attempt",
	                                committed_attempts(j));
	char *detail = NULL;

	if (detail_json != NULL && j->error_code[0] != '\0')
		json_object_set_new(detail_json, "error_code", json_string(j->error_code));
	if (detail_json != NULL)
		detail = json_dumps(detail_json, JSON_COMPACT);
	json_decref(detail_json);
	if (result == NULL || detail == NULL) {
		free(result);
		free(detail);
		job_retry_step(j, "commit", "out of memory building the result");
		return;
	}

	job_store_commit_args args = {
		.id = j->id,
		.owner = j->env->owner,
		.state = j->status,
		.result_json = result,
		.attempts = committed_attempts(j),
		.event = j->event,
		.event_detail_json = detail,
	};
	job_store_status status = job_store_commit(j->env->store, &args, commit_cb, j, &err);

	free(result);
	free(detail);
	if (status != JOB_STORE_OK) {
		job_retry_step(j, "commit", err.message);
		return;
	}
	job_callback_expect(j);
}

/* Publish and acknowledge */

static void publish_cb(void *arg, queue_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (queue_error_transient(result->error.status)) {
		job_retry_step(j, "publish", result->error.message);
		return;
	}
	if (result->error.status != QUEUE_OK) {
		log_fields f = job_log_fields(j, "publish");

		f.error = queue_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_ERROR, &f,
		          "publishing the result failed: %s; PostgreSQL has it",
		          result->error.message);
	}
	job_transition(j, JOB_STATE_ACK);
}

static void state_publish(job *j)
{
	queue_error err = {0};
	char *result = result_json(j);

	if (result == NULL) {
		job_retry_step(j, "publish", "out of memory building the result");
		return;
	}
	queue_status status =
		queue_publish_result(j->env->queue, j->id, j->status, result, publish_cb, j, &err);
	free(result);
	if (status != QUEUE_OK) {
		job_retry_step(j, "publish", err.message);
		return;
	}
	job_callback_expect(j);
}

static void ack_cb(void *arg, queue_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (queue_error_transient(result->error.status)) {
		job_retry_step(j, "ack", result->error.message);
		return;
	}
	if (result->error.status != QUEUE_OK) {
		log_fields f = job_log_fields(j, "ack");

		f.error = queue_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_ERROR, &f,
		          "acknowledging the entry failed: %s; it will be reclaimed and found finished",
		          result->error.message);
	}
	job_transition(j, JOB_STATE_DONE);
}

static void state_ack(job *j)
{
	queue_error err = {0};

	if (queue_ack(j->env->queue, &j->msg, ack_cb, j, &err) != QUEUE_OK) {
		job_retry_step(j, "ack", err.message);
		return;
	}
	job_callback_expect(j);
}

/* Schedule */

/*
 * The job JSON scheduled for a retry: the entry's text with the job id set,
 * so a generated id survives the new stream entry.
 */
static char *retry_text(const job *j)
{
	json_t *root = json_loadb(j->msg.job, strlen(j->msg.job), 0, NULL);
	char *text;

	if (root == NULL)
		return NULL;
	json_object_set_new(root, "id", json_string(j->id));
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

static void schedule_cb(void *arg, queue_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (queue_error_transient(result->error.status)) {
		job_retry_step(j, "schedule", result->error.message);
		return;
	}
	if (result->error.status != QUEUE_OK) {
		log_fields f = job_log_fields(j, "schedule");

		f.error = queue_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_ERROR, &f,
		          "scheduling the retry failed: %s; the entry stays pending for reclaim",
		          result->error.message);
	}
	job_transition(j, JOB_STATE_DONE);
}

static void state_schedule(job *j)
{
	queue_error err = {0};
	char *text = retry_text(j);
	queue_status status;

	if (text == NULL) {
		job_retry_step(j, "schedule", "out of memory building the job");
		return;
	}
	status = queue_schedule(j->env->queue, j->msg.queue, text, strlen(text), j->delay_ms, &j->msg,
	                        schedule_cb, j, &err);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (status != QUEUE_OK) {
		job_retry_step(j, "schedule", err.message);
		return;
	}
	job_callback_expect(j);
}

/* Dead letter */

static void dead_letter_cb(void *arg, queue_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (queue_error_transient(result->error.status)) {
		job_retry_step(j, "dead letter", result->error.message);
		return;
	}
	if (result->error.status != QUEUE_OK) {
		log_fields f = job_log_fields(j, "dead_letter");

		f.error = queue_status_name(result->error.status);
		log_write(j->env->log, LOG_LEVEL_ERROR, &f,
		          "moving the entry to the dead letters failed: %s; it stays pending",
		          result->error.message);
		job_transition(j, JOB_STATE_DONE);
		return;
	}

	log_fields f = job_log_fields(j, "dead_letter");
	f.error = j->error_code;
	log_write(j->env->log, LOG_LEVEL_WARN, &f, "job dead: %s", j->message);
	metrics_job(j->env->metrics, j->type_name, "dead");
	job_transition(j, JOB_STATE_PUBLISH);
}

/*
 * A job without a known type has no row in PostgreSQL (the type column
 * only takes the five job types), so the dead letters and the published
 * result are its only record.
 */
static void state_dead_letter(job *j)
{
	queue_error err = {0};
	char reason[JOB_ERROR_CODE_MAX + JOB_MESSAGE_MAX + 4];

	j->status = "dead";
	j->event = "dead";
	snprintf(reason, sizeof(reason), "%s: %s", j->error_code, j->message);
	if (queue_dead_letter(j->env->queue, &j->msg, reason, dead_letter_cb, j, &err) != QUEUE_OK) {
		job_retry_step(j, "dead letter", err.message);
		return;
	}
	job_callback_expect(j);
}
