/*
 * The job transport: Redis Streams read by the consumer group "dcworker",
 * driven by a libev loop through hiredis's async API.
 *
 * Keys (every one carries the {dc} hash tag):
 *   {dc}:queue:<name>   stream per queue, entries with one field "job"
 *   {dc}:scheduled      ZSET of "<queue name> <job>" scored by due time (ms)
 *   {dc}:dead           capped stream of dead letters
 *   {dc}:result:<id>    HASH with the result JSON, expires after a TTL
 * Results are also published on the channel "dc:results".
 *
 * Delivery is at least once. A fetched entry stays pending until the caller
 * acknowledges it with queue_ack, which it does only after PostgreSQL
 * committed the outcome. An entry left pending longer than the visibility
 * timeout is reclaimed by queue_reclaim; one delivered more than
 * max_deliveries times moves to the dead letters in the same atomic step.
 *
 * Callbacks: a call that fails before sending returns the error and never
 * calls its callback. A call that returns QUEUE_OK calls its callback exactly
 * once: with the reply, or with QUEUE_ERR_TIMEOUT, QUEUE_ERR_DISCONNECTED or
 * QUEUE_ERR_CLOSED. A command that failed with TIMEOUT or DISCONNECTED may
 * still have run on the server.
 *
 * Connection: queue_new connects at once and reconnects with exponential
 * backoff after a loss. The consumer group is created on every queue stream
 * after each connect (MKSTREAM, starting at id 0, BUSYGROUP tolerated).
 * Commands issued while the connection is being established are sent once it
 * is up; commands issued while it is down fail with QUEUE_ERR_DISCONNECTED.
 * With a password, AUTH is the first command of every connection (then
 * SELECT when db is set); a refused AUTH is reported as QUEUE_EVENT_ERROR
 * and never with the password in it.
 */
#ifndef DCWORKER_QUEUE_H
#define DCWORKER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

/* Result of every queue call. Values are stable; OK is 0. */
typedef enum queue_status {
	QUEUE_OK = 0,
	QUEUE_ERR_INVALID_ARGUMENT, /* bad queue name, id, count or option */
	QUEUE_ERR_DISCONNECTED,     /* no connection, or it was lost before the reply */
	QUEUE_ERR_TIMEOUT,          /* the oldest command got no reply within command_timeout_ms */
	QUEUE_ERR_REDIS,            /* Redis returned an error reply */
	QUEUE_ERR_PROTOCOL,         /* the reply had an unexpected shape */
	QUEUE_ERR_CLOSED,           /* queue_free ran before the reply arrived */
	QUEUE_ERR_NOMEM,
	QUEUE_STATUS_COUNT
} queue_status;

/* Return the stable name of a status ("QUEUE_ERR_TIMEOUT"); never NULL. */
const char *queue_status_name(queue_status status);

#define QUEUE_MESSAGE_MAX 256
/* Longest queue name; names use only [A-Za-z0-9_-]. */
#define QUEUE_NAME_MAX 32
/* Longest stream entry id: two 20-digit numbers and a dash. */
#define QUEUE_ENTRY_ID_MAX 48
/* Largest job JSON handed to the caller; longer ones arrive with job NULL. */
#define QUEUE_JOB_MAX (256 * 1024)
/* Most entries one fetch or reclaim returns. */
#define QUEUE_BATCH_MAX 1000
/* Most queues one queue object reads. */
#define QUEUE_QUEUES_MAX 8
/* Longest job id accepted in a result key. */
#define QUEUE_JOB_ID_MAX 128

/* Error detail, owned by the caller. The message never contains job data. */
typedef struct queue_error {
	queue_status status;
	char message[QUEUE_MESSAGE_MAX];
} queue_error;

/* Connection events reported to queue_options.on_event. */
typedef enum queue_event {
	QUEUE_EVENT_CONNECTED,      /* the connection is up and commands run */
	QUEUE_EVENT_CONNECT_FAILED, /* a connection attempt failed; another follows */
	QUEUE_EVENT_LOST,           /* an established connection was lost */
	QUEUE_EVENT_ERROR           /* setup failed on an open connection (e.g. XGROUP CREATE) */
} queue_event;

/* Return the stable name of an event ("QUEUE_EVENT_LOST"); never NULL. */
const char *queue_event_name(queue_event event);

/*
 * Called on connection events. DETAIL describes the event, with the address
 * and Redis's error text; it contains no job data. The callback may call any
 * queue function, queue_free included.
 */
typedef void (*queue_event_cb)(void *arg, queue_event event, const char *detail);

typedef struct queue_options {
	const char *host;              /* Redis address, e.g. "127.0.0.1" */
	int port;
	const char *password;          /* sent with AUTH on every connect; NULL: none */
	long db;                       /* SELECTed on every connect when not 0; 0 to 15 */
	const char *consumer;          /* consumer name in the group, unique per process */
	const char *const *queues;     /* queue names, highest priority first */
	size_t queue_count;            /* 1 to QUEUE_QUEUES_MAX */
	long command_timeout_ms;       /* reply deadline per command; 0 means 5000 */
	long connect_timeout_ms;       /* 0 means 2000 */
	long visibility_timeout_ms;    /* idle time before reclaim; 0 means 60000 */
	long max_deliveries;           /* more deliveries than this: dead letter; 0 means 5 */
	long dead_max_len;             /* dead letters kept; 0 means 10000 */
	long result_ttl_s;             /* result hash TTL; 0 means 86400 */
	long reconnect_min_ms;         /* first reconnect delay; 0 means 100 */
	long reconnect_max_ms;         /* reconnect delay cap; 0 means 5000 */
	queue_event_cb on_event;       /* may be NULL */
	void *event_arg;
} queue_options;

/* One stream entry handed to the caller. */
typedef struct queue_message {
	char queue[QUEUE_NAME_MAX + 1];          /* queue name, e.g. "interactive" */
	char entry_id[QUEUE_ENTRY_ID_MAX];       /* stream entry id */
	char *job;              /* the entry's "job" field, NUL-terminated; NULL when absent or over QUEUE_JOB_MAX */
	size_t job_len;         /* length of the field as stored, even when job is NULL */
	long deliveries;        /* times delivered, this delivery included */
	bool dead_lettered;     /* reclaim moved it to the dead letters: record it, do not run it */
} queue_message;

/* Entries returned by queue_fetch or queue_reclaim. */
typedef struct queue_batch {
	size_t count;
	queue_message *messages;
} queue_batch;

/* Free a batch and its messages; accepts NULL. */
void queue_batch_free(queue_batch *batch);

/*
 * A command's outcome. Which fields are set depends on the call; see each
 * function. BATCH belongs to the callback, which frees it with
 * queue_batch_free; the rest lives until the callback returns.
 */
typedef struct queue_result {
	queue_error error;          /* error.status is QUEUE_OK on success */
	long long value;
	char entry_id[QUEUE_ENTRY_ID_MAX];
	long long moved;            /* promote: jobs moved to their queue */
	long long dead_lettered;    /* promote: members with an unknown queue */
	long long now_ms;           /* promote: Redis TIME in ms */
	long long next_due_ms;      /* promote: earliest remaining due time, -1 when none */
	queue_batch *batch;         /* fetch, reclaim */
} queue_result;

typedef void (*queue_cb)(void *arg, queue_result *result);

typedef struct queue queue;

/*
 * Create a queue on LOOP and start connecting. OPTS and the strings it points
 * to are copied. Returns NULL and fills ERR when an option is invalid or
 * memory runs out. Free with queue_free.
 */
queue *queue_new(struct ev_loop *loop, const queue_options *opts, queue_error *err);

/*
 * Close the connection and free Q; accepts NULL. Pending callbacks run first
 * with QUEUE_ERR_CLOSED. May be called from any queue callback.
 */
void queue_free(queue *q);

/* True when the connection is established and commands run. */
bool queue_connected(const queue *q);

/*
 * Append JOB (JSON, JOB_LEN bytes) to queue NAME, as a web app does with one
 * XADD. Result: entry_id is the new entry's id.
 */
queue_status queue_enqueue(queue *q, const char *name, const char *job, size_t job_len,
                           queue_cb cb, void *arg, queue_error *err);

/*
 * Read up to COUNT (1 to QUEUE_BATCH_MAX) new entries, from the first queue
 * before the next. Result: batch (count 0 when nothing is waiting).
 * NOTE: the read does not block, so an idle worker polls on a timer.
 */
queue_status queue_fetch(queue *q, size_t count, queue_cb cb, void *arg, queue_error *err);

/*
 * Claim up to COUNT entries idle for longer than the visibility timeout,
 * from any consumer. Entries delivered more than max_deliveries times move
 * to the dead letters and come back with dead_lettered set; they do not
 * count against COUNT. Result: batch.
 */
queue_status queue_reclaim(queue *q, size_t count, queue_cb cb, void *arg, queue_error *err);

/*
 * Reset the idle time of an entry this consumer still owns, so a long job is
 * not reclaimed. Result: value 1 when kept, 0 when the entry is no longer
 * ours (acknowledged, or claimed by another consumer).
 */
queue_status queue_touch(queue *q, const queue_message *msg, queue_cb cb, void *arg,
                         queue_error *err);

/*
 * Acknowledge and delete an entry (XACK + XDEL). Call it only after the
 * outcome is committed in PostgreSQL. Result: value is the number of entries
 * acknowledged (0 when it was no longer pending).
 */
queue_status queue_ack(queue *q, const queue_message *msg, queue_cb cb, void *arg,
                       queue_error *err);

/*
 * Schedule JOB for queue NAME at Redis time + DELAY_MS. With MSG non-NULL the
 * entry MSG is acknowledged in the same atomic step (a retry). Result: value
 * is the due time in ms since the epoch. A job already scheduled with the
 * same JSON gets the new due time.
 */
queue_status queue_schedule(queue *q, const char *name, const char *job, size_t job_len,
                            long long delay_ms, const queue_message *msg, queue_cb cb,
                            void *arg, queue_error *err);

/* As queue_schedule, with an absolute due time in ms since the epoch. */
queue_status queue_schedule_at(queue *q, const char *name, const char *job, size_t job_len,
                               long long due_ms, const queue_message *msg, queue_cb cb,
                               void *arg, queue_error *err);

/*
 * Move up to COUNT due scheduled jobs to their queues atomically, by Redis
 * time. Result: moved, dead_lettered, now_ms, next_due_ms.
 */
queue_status queue_promote(queue *q, size_t count, queue_cb cb, void *arg, queue_error *err);

/*
 * Move MSG to the dead letters with REASON (no secrets) and acknowledge it,
 * atomically. Result: value is the number of entries acknowledged.
 */
queue_status queue_dead_letter(queue *q, const queue_message *msg, const char *reason,
                               queue_cb cb, void *arg, queue_error *err);

/*
 * Store RESULT_JSON in {dc}:result:<JOB_ID> (fields result, status, time_ms)
 * with the configured TTL and publish it on "dc:results". STATUS is the
 * result status ("succeeded", ...). Result: value is the number of
 * subscribers that received it.
 */
queue_status queue_publish_result(queue *q, const char *job_id, const char *status,
                                  const char *result_json, queue_cb cb, void *arg,
                                  queue_error *err);

/* Longest DNS provider name counted by queue_count_call. */
#define QUEUE_PROVIDER_NAME_MAX 64
/* Per-minute call counters expire after this many seconds. */
#define QUEUE_CALLS_MINUTE_TTL_S 7200

/*
 * Count one call to DNS provider PROVIDER that ended with STATUS (an HTTP
 * status such as "200", or an error class such as "timeout") in
 * {dc}:provider_calls:<PROVIDER> (HASH status -> count) and in
 * {dc}:provider_calls:<PROVIDER>:<MINUTE> (the same for the minute that
 * started at Unix time MINUTE, expiring after QUEUE_CALLS_MINUTE_TTL_S).
 * MINUTE comes from NOW_MS, the caller's clock. CB may be NULL: an error
 * reply is then reported as QUEUE_EVENT_ERROR. Result: value is the total.
 */
queue_status queue_count_call(queue *q, const char *provider, const char *status,
                              long long now_ms, queue_cb cb, void *arg, queue_error *err);

#endif
