/*
 * The system of record: job rows, job events and authorizations in
 * PostgreSQL, through libpq's asynchronous API on a libev loop.
 *
 * A store keeps a small pool of connections. Each connection runs one query
 * at a time; queries wait in one FIFO until a connection is free. Every
 * operation is a single SQL statement (data-modifying CTEs where several
 * rows change), so it commits or rolls back as a whole without holding a
 * transaction open across loop iterations.
 *
 * Callbacks: a call that fails before queueing returns the error and never
 * calls its callback. A call that returns JOB_STORE_OK calls its callback
 * exactly once. A query that failed with JOB_STORE_ERR_DISCONNECTED or
 * JOB_STORE_ERR_TIMEOUT may have committed; every write here is fenced
 * (compare-and-set on state, lease owner or version), so repeating it is safe.
 *
 * Connections: a lost connection fails its running query, is reported to
 * on_event and reconnects with exponential backoff. Queries issued while
 * every connection is down wait, up to max_waiting of them and at most
 * query_timeout_ms each.
 */
#ifndef DCWORKER_JOB_STORE_H
#define DCWORKER_JOB_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

/* Result of every job store call. Values are stable; OK is 0. */
typedef enum job_store_status {
	JOB_STORE_OK = 0,
	JOB_STORE_ERR_INVALID_ARGUMENT, /* bad id, state, JSON length or option */
	JOB_STORE_ERR_DISCONNECTED,     /* the connection was lost before the reply */
	JOB_STORE_ERR_TIMEOUT,          /* no reply, or no free connection, within query_timeout_ms */
	JOB_STORE_ERR_BUSY,             /* max_waiting queries are already waiting */
	JOB_STORE_ERR_QUERY,            /* PostgreSQL returned an error; see sqlstate */
	JOB_STORE_ERR_NOT_FOUND,        /* no such row */
	JOB_STORE_ERR_LEASE_LOST,       /* the job is no longer running under this owner */
	JOB_STORE_ERR_VERSION_CONFLICT, /* the authorization changed since it was read */
	JOB_STORE_ERR_PROTOCOL,         /* the result had an unexpected shape */
	JOB_STORE_ERR_CLOSED,           /* job_store_free ran before the reply */
	JOB_STORE_ERR_NOMEM,
	JOB_STORE_STATUS_COUNT
} job_store_status;

/* Return the stable name of a status ("JOB_STORE_ERR_TIMEOUT"); never NULL. */
const char *job_store_status_name(job_store_status status);

#define JOB_STORE_MESSAGE_MAX 256
#define JOB_STORE_ID_MAX 128
#define JOB_STORE_STATE_MAX 32
/* Largest payload, result or event detail JSON accepted. */
#define JOB_STORE_JSON_MAX (256 * 1024)
#define JOB_STORE_POOL_MAX 16

/* Error detail, owned by the caller. The message never contains a token. */
typedef struct job_store_error {
	job_store_status status;
	char sqlstate[6];                     /* "" unless status is JOB_STORE_ERR_QUERY */
	char message[JOB_STORE_MESSAGE_MAX];
} job_store_error;

/* Connection events reported to job_store_options.on_event. */
typedef enum job_store_event {
	JOB_STORE_EVENT_CONNECTED,      /* a pool connection is up */
	JOB_STORE_EVENT_CONNECT_FAILED, /* a connection attempt failed; another follows */
	JOB_STORE_EVENT_LOST            /* an established connection was lost */
} job_store_event;

/* Return the stable name of an event; never NULL. */
const char *job_store_event_name(job_store_event event);

/*
 * Called on connection events with the pool slot and a message from libpq
 * (no password: libpq does not echo it). May call any job store function,
 * job_store_free included.
 */
typedef void (*job_store_event_cb)(void *arg, job_store_event event, int slot, const char *detail);

typedef struct job_store_options {
	const char *conninfo;          /* libpq connection string or URI; its "options" are replaced */
	size_t pool_size;              /* 1 to JOB_STORE_POOL_MAX; 0 means 2 */
	size_t max_waiting;            /* queued queries; 0 means 1000 */
	long query_timeout_ms;         /* also the server's statement_timeout; 0 means 10000 */
	long connect_timeout_ms;       /* 0 means 5000 */
	long reconnect_min_ms;         /* 0 means 100 */
	long reconnect_max_ms;         /* 0 means 5000 */
	job_store_event_cb on_event;   /* may be NULL */
	void *event_arg;
} job_store_options;

/* Outcome of a claim. */
typedef enum job_claim {
	JOB_CLAIM_ACQUIRED, /* the row is now running under the caller's lease: run the job */
	JOB_CLAIM_FINISHED, /* the job is in a terminal state: only acknowledge the delivery */
	JOB_CLAIM_BUSY      /* another owner holds an unexpired lease: leave the delivery pending */
} job_claim;

/* Return the stable name of a claim outcome; never NULL. */
const char *job_claim_name(job_claim claim);

/* A stored authorization. Token columns are ciphertext (see token_crypto.h). */
typedef struct job_authorization {
	char *id;
	char *dns_provider;
	char *zone;
	char *status;                  /* active, reauthorization_required, revoked */
	char *token_type;
	unsigned char *access_token;   /* ciphertext, NULL when the column is NULL */
	size_t access_token_len;
	unsigned char *refresh_token;
	size_t refresh_token_len;
	long long expires_at_ms;       /* access token expiry, -1 when unknown */
	long long version;
} job_authorization;

/* Free an authorization; accepts NULL. */
void job_authorization_free(job_authorization *auth);

/*
 * A query's outcome; which fields are set depends on the call. AUTHORIZATION
 * belongs to the callback (set it to NULL to keep it), the rest lives until
 * the callback returns.
 */
typedef struct job_store_result {
	job_store_error error;         /* error.status is JOB_STORE_OK on success */
	job_claim claim;
	char state[JOB_STORE_STATE_MAX]; /* claim: the row's state after the claim */
	int attempts;                  /* claim: the row's attempts */
	long long version;             /* update_tokens: the new version */
	job_authorization *authorization;
} job_store_result;

typedef void (*job_store_cb)(void *arg, job_store_result *result);

typedef struct job_store job_store;

/*
 * Create a store on LOOP and start connecting the pool. OPTS is copied.
 * Returns NULL and fills ERR on an invalid option or no memory.
 */
job_store *job_store_new(struct ev_loop *loop, const job_store_options *opts,
                         job_store_error *err);

/*
 * Close every connection and free STORE; accepts NULL. Waiting and running
 * queries fail first with JOB_STORE_ERR_CLOSED. May be called from any job
 * store callback.
 */
void job_store_free(job_store *store);

/* Number of pool connections that are up. */
size_t job_store_connected(const job_store *store);

/* What job_store_claim records. */
typedef struct job_store_claim_args {
	const char *id;
	const char *type;
	const char *queue;
	const char *payload_json;
	const char *owner;      /* the worker's consumer name */
	long lease_ms;          /* lease duration; renew it with job_store_renew_lease */
} job_store_claim_args;

/*
 * Claim job ID for OWNER by compare-and-set: insert the row as running, or
 * move an existing row to running when it is queued or its lease expired,
 * and append a "started" event in the same statement. Result: claim, state,
 * attempts. A row in a terminal state gives JOB_CLAIM_FINISHED.
 */
job_store_status job_store_claim(job_store *store, const job_store_claim_args *args,
                                 job_store_cb cb, void *arg, job_store_error *err);

/* Extend the lease of a running job held by OWNER. LEASE_LOST when not held. */
job_store_status job_store_renew_lease(job_store *store, const char *id, const char *owner,
                                       long lease_ms, job_store_cb cb, void *arg,
                                       job_store_error *err);

/* Append EVENT (with DETAIL_JSON, may be NULL) to job ID's event log. */
job_store_status job_store_append_event(job_store *store, const char *id, const char *event,
                                        const char *detail_json, job_store_cb cb, void *arg,
                                        job_store_error *err);

/* What job_store_commit records. */
typedef struct job_store_commit_args {
	const char *id;
	const char *owner;        /* must still hold the lease */
	const char *state;        /* terminal state, or "queued" to release for a retry */
	const char *result_json;  /* may be NULL */
	int attempts;
	const char *event;        /* e.g. "succeeded", "retried" */
	const char *event_detail_json; /* may be NULL */
} job_store_commit_args;

/*
 * Write a job's outcome in one transaction: the row (state, result,
 * attempts, lease cleared) and one event, fenced on the owner's lease.
 * LEASE_LOST when the row is not running under OWNER; nothing is written.
 */
job_store_status job_store_commit(job_store *store, const job_store_commit_args *args,
                                  job_store_cb cb, void *arg, job_store_error *err);

/* Load authorization ID. Result: authorization; NOT_FOUND when absent. */
job_store_status job_store_get_authorization(job_store *store, const char *id,
                                             job_store_cb cb, void *arg, job_store_error *err);

#endif
