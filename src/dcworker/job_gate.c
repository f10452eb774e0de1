/*
 * The gate before a provider call: per-zone lock, in-flight slot and rate
 * token, each refused step waiting in the worker without using an attempt.
 */
#include "job_internal.h"

#include <stdio.h>
#include <string.h>

static void gate_step(job *j);

long job_gate_call_timeout_ms(const job *j)
{
	const config *cfg = j->env->cfg;
	long max = 0;

	for (size_t i = 0; i < cfg->providers_count; i++)
		if (cfg->providers[i].total_timeout_ms > max)
			max = cfg->providers[i].total_timeout_ms;
	return max > 0 ? max : 30000;
}

/* A pause of up to MAX_MS plus a little jitter, so waiters do not poll in step. */
static long poll_delay(job *j, long long wait_ms, long max_ms)
{
	uint64_t x = j->gate.jitter != 0 ? j->gate.jitter : 0x9e3779b97f4a7c15ULL;
	long delay = max_ms;

	if (wait_ms < 1)
		delay = 1;
	else if (wait_ms < max_ms)
		delay = (long)wait_ms;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	j->gate.jitter = x;
	return delay + (long)(x % 20);
}

static void gate_log(job *j, log_level level, const char *error, const char *what,
                     const char *detail)
{
	log_fields f = job_log_fields(j, "gate");

	f.error = error;
	log_write(j->env->log, level, &f, "%s: %s", what, detail);
}

/* Renewal of the held leases during a long call or wait */

static void renew_zone_cb(void *arg, zone_lock_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status == QUEUE_OK && !result->held && j->gate.zone_held)
		gate_log(j, LOG_LEVEL_WARN, "zone_lock_lost", "zone lock",
		         "the lease ran out before the call ended");
}

static void renew_slot_cb(void *arg, pacing_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status == QUEUE_OK && !result->granted && j->gate.slot_held)
		gate_log(j, LOG_LEVEL_WARN, "slot_lost", "in-flight slot",
		         "the lease ran out before the call ended");
}

static void renew_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	job *j = t->data;
	queue_error err = {0};

	(void)loop;
	(void)revents;
	if (j->cancelled)
		return;
	if (j->gate.zone_held &&
	    zone_lock_renew(j->env->queue, j->gate.lock, j->gate.lease_ms, renew_zone_cb, j, &err) ==
	        QUEUE_OK)
		job_callback_expect(j);
	if (j->gate.slot_held &&
	    pacing_renew(j->env->queue, j->provider->name, j->gate.holder, j->gate.lease_ms,
	                 renew_slot_cb, j, &err) == QUEUE_OK)
		job_callback_expect(j);
}

static void start_renewal(job *j)
{
	double every = (double)j->gate.lease_ms / 3000.0;

	if (ev_is_active(&j->gate.renew_timer))
		return;
	ev_init(&j->gate.renew_timer, renew_timer_cb);
	j->gate.renew_timer.data = j;
	ev_timer_set(&j->gate.renew_timer, every, every);
	ev_timer_start(j->env->loop, &j->gate.renew_timer);
}

/* Giving a long wait back */

static void release_lease_cb(void *arg, refresh_lease_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != JOB_STORE_OK)
		gate_log(j, LOG_LEVEL_WARN, job_store_status_name(result->error.status),
		         "refresh lease", "releasing it failed; it ends with its lease");
}

/*
 * True when J has waited at the gate so long that it gives its place back.
 * Then J releases the zone lock, the slot and its refresh lease, and is
 * deferred by WAIT_MS (the gate's reported wait, EXACT or an upper bound).
 */
static bool gate_park(job *j, long long wait_ms, bool exact, const char *reason)
{
	job_store_error err = {0};
	long long waited = job_now_ms() - j->gate.wait_started_ms;
	long long delay = wait_ms;

	if (waited < JOB_GATE_WAIT_MAX_MS)
		return false;
	if (delay < JOB_GATE_PARK_MIN_MS)
		delay = JOB_GATE_PARK_MIN_MS;
	if (!exact && delay > JOB_GATE_PARK_MAX_MS)
		delay = JOB_GATE_PARK_MAX_MS;
	delay = poll_delay(j, delay, delay);

	log_fields f = job_log_fields(j, "gate");
	f.error = reason;
	log_write(j->env->log, LOG_LEVEL_INFO, &f,
	          "waited %lld ms at the gate (%s); giving the place back, due again in %lld ms",
	          waited, reason, delay);
	job_gate_leave(j);
	ev_timer_stop(j->env->loop, &j->wait_timer);
	j->wait_then = NULL;
	if (j->lease_held && j->auth != NULL) {
		j->lease_held = false;
		if (refresh_lease_release(j->env->store, j->auth->id, j->lease_owner, release_lease_cb,
		                          j, &err) == JOB_STORE_OK)
			job_callback_expect(j);
	}
	j->parking = true;
	job_defer(j, delay, reason);
	return true;
}

/* The steps */

/* A Redis error: log it and try the step again shortly. */
static void step_error(job *j, const char *what, const queue_error *err)
{
	gate_log(j, LOG_LEVEL_WARN, queue_status_name(err->status), what, err->message);
	job_wait(j, JOB_GATE_ERROR_DELAY_MS, gate_step);
}

static void zone_cb(void *arg, zone_lock_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != QUEUE_OK) {
		step_error(j, "zone lock", &result->error);
		return;
	}
	if (!result->held) {
		long long wait = result->wait_ms < 0 ? JOB_GATE_POLL_MS : result->wait_ms;

		if (gate_park(j, wait, false, "zone_lock_busy"))
			return;
		job_wait(j, poll_delay(j, wait, JOB_GATE_POLL_MS), gate_step);
		return;
	}
	j->gate.zone_held = true;
	start_renewal(j);
	gate_step(j);
}

static void slot_cb(void *arg, pacing_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != QUEUE_OK) {
		step_error(j, "in-flight slot", &result->error);
		return;
	}
	if (!result->granted) {
		if (gate_park(j, result->wait_ms, false, "in_flight_full"))
			return;
		job_wait(j, poll_delay(j, result->wait_ms, JOB_GATE_POLL_MS), gate_step);
		return;
	}
	j->gate.slot_held = true;
	start_renewal(j);
	gate_step(j);
}

static void take_cb(void *arg, pacing_result *result)
{
	job *j = arg;

	if (!job_callback_enter(j))
		return;
	if (result->error.status != QUEUE_OK) {
		step_error(j, "rate token", &result->error);
		return;
	}
	if (!result->granted) {
		/* The bucket returns the time until the next token, so wait that long. */
		if (gate_park(j, result->wait_ms, true, "rate_limited"))
			return;
		job_wait(j, poll_delay(j, result->wait_ms, 60000), gate_step);
		return;
	}
	j->gate.token_taken = true;
	gate_step(j);
}

/* Sends the next step, or runs the call when every step has passed. */
static void gate_step(job *j)
{
	job_gate *g = &j->gate;
	queue_error err = {0};
	queue_status status;

	if (g->zone && !g->zone_held) {
		status = zone_lock_acquire(j->env->queue, g->lock, g->lease_ms, zone_cb, j, &err);
		if (status != QUEUE_OK) {
			step_error(j, "zone lock", &err);
			return;
		}
		job_callback_expect(j);
		return;
	}
	if (!g->slot_held) {
		status = pacing_acquire(j->env->queue, j->provider->name, &g->limits, g->holder,
		                        g->lease_ms, slot_cb, j, &err);
		if (status != QUEUE_OK) {
			step_error(j, "in-flight slot", &err);
			return;
		}
		job_callback_expect(j);
		return;
	}
	if (!g->token_taken && j->provider->rate > 0) {
		status = pacing_take(j->env->queue, j->provider->name, &g->limits, take_cb, j, &err);
		if (status != QUEUE_OK) {
			step_error(j, "rate token", &err);
			return;
		}
		job_callback_expect(j);
		return;
	}

	long long waited = job_now_ms() - g->wait_started_ms;

	if (waited >= JOB_GATE_POLL_MS && log_enabled(j->env->log, LOG_LEVEL_DEBUG)) {
		log_fields f = job_log_fields(j, "gate");

		log_write(j->env->log, LOG_LEVEL_DEBUG, &f, "waited %lld ms for the provider", waited);
	}
	g->open = true;
	g->then(j);
}

void job_gate_enter(job *j, bool zone, job_gate_fn then)
{
	job_gate *g = &j->gate;
	queue_error err = {0};

	if (j->provider == NULL) {
		then(j);
		return;
	}
	g->then = then;
	g->zone = zone && j->auth != NULL;
	g->token_taken = false;
	g->open = false;
	g->wait_started_ms = job_now_ms();
	g->lease_ms = job_gate_call_timeout_ms(j) + JOB_GATE_LEASE_MARGIN_MS;
	if (g->lease_ms > ZONE_LOCK_LEASE_MAX_MS)
		g->lease_ms = ZONE_LOCK_LEASE_MAX_MS;
	g->limits = pacing_limits_from_config(j->provider);
	if (g->limits.rate <= 0)
		g->limits.rate = 1e6; /* no rate limit: only the in-flight cap applies */
	if (g->holder[0] == '\0') {
		if (!pacing_new_holder(g->holder)) {
			job_retry_step(j, "gate", "no random bytes for the in-flight holder id");
			return;
		}
		for (size_t i = 0; g->holder[i] != '\0'; i++)
			g->jitter = g->jitter * 31 + (unsigned char)g->holder[i];
	}
	if (g->zone && g->lock == NULL) {
		g->lock = zone_lock_new(j->provider->name, j->auth->zone, &err);
		if (g->lock == NULL) {
			/* Names the config and the zone check accepted; should not happen. */
			gate_log(j, LOG_LEVEL_WARN, queue_status_name(err.status),
			         "zone lock not used", err.message);
			g->zone = false;
		}
	}
	gate_step(j);
}

/* Releases and penalties are not waited for: a lost one ends with its lease or expiry. */
static void ignore_zone_cb(void *arg, zone_lock_result *result)
{
	(void)arg;
	(void)result;
}

static void ignore_pacing_cb(void *arg, pacing_result *result)
{
	(void)arg;
	(void)result;
}

void job_gate_leave(job *j)
{
	job_gate *g = &j->gate;
	queue_error err = {0};

	ev_timer_stop(j->env->loop, &g->renew_timer);
	if (g->zone_held)
		(void)zone_lock_release(j->env->queue, g->lock, ignore_zone_cb, NULL, &err);
	if (g->slot_held)
		(void)pacing_release(j->env->queue, j->provider->name, g->holder, ignore_pacing_cb, NULL,
		                     &err);
	g->zone_held = false;
	g->slot_held = false;
	g->open = false;
}

void job_gate_penalize(job *j)
{
	queue_error err = {0};
	pacing_limits limits;

	if (j->provider == NULL)
		return;
	limits = pacing_limits_from_config(j->provider);
	if (limits.rate <= 0)
		return;
	(void)pacing_penalize(j->env->queue, j->provider->name, &limits, ignore_pacing_cb, NULL, &err);
}

void job_gate_stop(job *j)
{
	job_gate_leave(j);
	zone_lock_free(j->gate.lock);
	j->gate.lock = NULL;
}
