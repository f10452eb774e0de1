/*
 * Internal to the job state machine: the job struct, shared by job.c (the
 * transport states: parse, claim, commit, publish, acknowledge, schedule)
 * and job_call.c (the provider states: authorization, refresh, provider
 * call, classification).
 */
#ifndef DCWORKER_JOB_INTERNAL_H
#define DCWORKER_JOB_INTERNAL_H

#include <stdint.h>

#include "authorization.h"
#include "job.h"
#include "job_gate.h"
#include "job_spec.h"
#include "refresh_lease.h"

/* A job's state. Each one has one function in job.c or job_call.c. */
typedef enum job_state {
	JOB_STATE_NEW = 0,           /* created, not started */
	JOB_STATE_PARSE,             /* validating the job JSON */
	JOB_STATE_CLAIM,             /* compare-and-set of the row to running */
	JOB_STATE_LOAD_AUTH,         /* reading the authorization row */
	JOB_STATE_REFRESH,           /* refresh lease, then token endpoint: refresh grant */
	JOB_STATE_STORE_TOKENS,      /* writing refreshed tokens, fenced on lease and version */
	JOB_STATE_CALL,              /* the provider call of the job's type */
	JOB_STATE_STORE_AUTH,        /* exchange_code: inserting the new authorization */
	JOB_STATE_MARK_REAUTH,       /* authorization status to reauthorization_required */
	JOB_STATE_COUNT_RESCHEDULES, /* reading how many free reschedules were used */
	JOB_STATE_COMMIT,            /* writing the outcome: row, result and event */
	JOB_STATE_DEFER,             /* row to queued with its due time, before SCHEDULE */
	JOB_STATE_PUBLISH,           /* result hash and PUBLISH */
	JOB_STATE_ACK,               /* XACK + XDEL of the entry */
	JOB_STATE_SCHEDULE,          /* retry later: schedule, acknowledging the entry */
	JOB_STATE_DEAD_LETTER,       /* a job with no usable type: dead letter, acknowledging it */
	JOB_STATE_DONE,              /* finished or cancelled; about to be freed */
	JOB_STATE_COUNT
} job_state;

/* Pause between two reads of an authorization whose refresh lease another job holds. */
#define JOB_REFRESH_POLL_MS 100
/* Added to the token call's timeout for the refresh lease. */
#define JOB_REFRESH_LEASE_MARGIN_MS 10000
/* Refreshes one run starts for an expiring access token before it calls with it anyway. */
#define JOB_REFRESH_ROUNDS_MAX 3

/* Largest result message kept, in bytes. */
#define JOB_MESSAGE_MAX 512
#define JOB_ERROR_CODE_MAX 64
/* Largest generated job id: "<queue>:<entry id>". */
#define JOB_ID_MAX (QUEUE_NAME_MAX + 1 + QUEUE_ENTRY_ID_MAX)

struct job {
	const job_env *env;
	job_state state;
	queue_message msg;            /* the entry; msg.job is owned */
	job_spec *spec;               /* NULL for an invalid job */
	char id[JOB_ID_MAX + JOB_SPEC_ID_MAX + 1];
	const char *type_name;        /* wire type, or "invalid" */
	bool type_known;              /* type_name is one of the five job types */
	int64_t started_ms;

	/* Retry state. attempts counts committed attempts before this run. */
	int attempts;
	int max_attempts;
	int reschedules;
	bool reschedules_known;
	bool force_used;
	bool refreshed;               /* the token was refreshed after a 401 */
	bool reread;                  /* the row was re-read after invalid_grant */
	long long reread_version;     /* version seen before the re-read */
	retry_input pending_input;    /* saved while the reschedule count is read */
	char oauth_error[DC_OAUTH_ERROR_MAX]; /* pending_input.oauth_error points here */

	/* Authorization and provider. */
	job_authorization *auth;
	char *access_token;           /* plaintext; wiped on free */
	const config_provider *provider;
	dc_provider dcp;
	dc_token *token;              /* from the token endpoint, until stored */
	unsigned char *access_ct;     /* ciphertext of token, until stored */
	size_t access_ct_len;
	unsigned char *refresh_ct;
	size_t refresh_ct_len;
	char authorization_id[AUTHZ_ID_LEN + 1];

	/* Refresh lease: the owner is per job, so two jobs of one worker do not share it. */
	char lease_owner[REFRESH_LEASE_OWNER_MAX + 1];
	bool lease_held;              /* this job holds the authorization's refresh lease */
	int refresh_rounds;           /* refreshes started for an expiring token */

	/* Gate before the provider call (job_gate.c). */
	job_gate gate;
	ev_timer wait_timer;          /* a gate or refresh lease wait */
	job_gate_fn wait_then;

	/* Provider call. */
	dc_request *request;
	long http_status;
	json_t *conflicts;            /* 409 records, owned */
	json_t *discovery;            /* discover result, owned */
	dc_discovery *discovered;     /* while template checks run */
	size_t template_index;

	/* Outcome. */
	const char *status;           /* result status, or "queued" for a retry */
	const char *event;            /* event appended with the commit */
	bool counts_attempt;          /* the commit adds this run's attempt */
	long long delay_ms;           /* for DEFER and SCHEDULE */
	int64_t due_ms;               /* due time DEFER recorded, ms since the epoch */
	const char *defer_reason;     /* static text for the "scheduled" event */
	bool parking;                 /* DEFER gives back a gate wait: the row is running under us */
	char error_code[JOB_ERROR_CODE_MAX];
	char message[JOB_MESSAGE_MAX];

	/* Plumbing. */
	ev_timer timer;               /* step retries */
	ev_timer renew_timer;         /* claim renewal while the job runs */
	bool renewing_lease;          /* a job_store_renew_lease reply is due */
	bool touching;                /* a queue_touch reply is due */
	int64_t call_started_ms;      /* start of the provider call in flight, for metrics */
	int step_failures;
	int outstanding;              /* queue and job store callbacks not yet run */
	bool cancelled;
};

/* Moves J to STATE, logging old -> new, and runs the state's function. */
void job_transition(job *j, job_state state);

/* Sets the terminal outcome STATUS with an error code and message, then commits. */
void job_finish(job *j, const char *status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Runs the current state again after a delay growing with each consecutive
 * failure, for Redis and PostgreSQL errors that do not end a job.
 */
void job_retry_step(job *j, const char *what, const char *detail);

/* Marks a queue or job store call as started; its callback calls job_callback_enter. */
void job_callback_expect(job *j);

/* Called first in every queue or job store callback. False: J was freed, return at once. */
bool job_callback_enter(job *j);

/*
 * Runs THEN after DELAY_MS while the job keeps its claim; for waits that use
 * no attempt (gate, refresh lease). One wait at a time.
 */
void job_wait(job *j, long delay_ms, job_gate_fn then);

/* Log fields of J for ACTION. */
log_fields job_log_fields(const job *j, const char *action);

/* Wall-clock time in ms since the epoch. */
int64_t job_now_ms(void);

/* Provider states (job_call.c). */
void job_state_load_auth(job *j);
void job_state_refresh(job *j);
void job_state_store_tokens(job *j);
void job_state_call(job *j);
void job_state_store_auth(job *j);
void job_state_mark_reauth(job *j);
void job_state_count_reschedules(job *j);

/* Deferred jobs (job_defer.c). */
void job_state_defer(job *j);

/*
 * Records J as queued and due in DELAY_MS in PostgreSQL, with a "scheduled"
 * event naming REASON (static text), then schedules it in Redis and
 * acknowledges the entry. Uses no attempt.
 */
void job_defer(job *j, long long delay_ms, const char *reason);

/* Defers a job to an absolute due time (ms since the epoch), such as its not_before. */
void job_defer_until(job *j, int64_t due_ms, const char *reason);

/*
 * Fills the row's authorization_id and domain from j->auth (zone, with the
 * apply host in front) or from the job's domain, without waiting for the
 * reply; a failure is only logged.
 */
void job_record_domain(job *j);

/* Type-specific first state after a successful claim. */
void job_begin_work(job *j);

#endif
