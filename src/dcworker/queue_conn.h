/*
 * Internal to the queue: the Redis connection with its pending commands,
 * command deadlines and reconnect backoff. queue.c builds commands and
 * parses replies on top of it.
 */
#ifndef DCWORKER_QUEUE_CONN_H
#define DCWORKER_QUEUE_CONN_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "queue.h"

/*
 * Turns a reply into RESULT (status, values, batch). Runs only for replies
 * that arrived; REPLY may be an error reply.
 */
typedef void (*queue_parse_fn)(queue *q, const redisReply *reply, queue_result *result);

typedef struct queue_cmd queue_cmd;

struct queue {
	struct ev_loop *loop;
	char *host;
	int port;
	char *password;                /* NULL: no AUTH */
	long db;
	char *consumer;
	char names[QUEUE_QUEUES_MAX][QUEUE_NAME_MAX + 1];
	char *keys[QUEUE_QUEUES_MAX];  /* "{dc}:queue:<name>" */
	size_t queue_count;
	double command_timeout;        /* seconds */
	double connect_timeout;
	long visibility_timeout_ms;
	long max_deliveries;
	long dead_max_len;
	long result_ttl_s;
	double reconnect_min;
	double reconnect_max;
	double reconnect_delay;        /* next delay; doubles up to reconnect_max */
	queue_event_cb on_event;
	void *event_arg;

	redisAsyncContext *ac;         /* NULL while disconnected */
	bool connected;                /* ac finished connecting */
	double connect_started;
	queue_cmd *head;               /* pending commands, oldest first */
	queue_cmd *tail;
	ev_timer watchdog;
	ev_timer reconnect;
	ev_timer notify;               /* reports notify_event from the loop */
	queue_event notify_event;
	char notify_detail[QUEUE_MESSAGE_MAX];
	bool *freed;                   /* set by queue_free while a caller walks callbacks */
};

/* Start the watchdog and the first connection attempt. */
void queue_conn_start(queue *q);

/* Close the connection and fail every pending command with QUEUE_ERR_CLOSED. */
void queue_conn_close(queue *q);

/*
 * Send ARGV with its lengths. PARSE turns the reply into the result passed
 * to CB. On failure returns the status, fills ERR and never calls CB.
 */
queue_status queue_conn_send(queue *q, int argc, const char **argv, const size_t *argvlen,
                             queue_parse_fn parse, queue_cb cb, void *arg, queue_error *err);

/* Fill ERR (when non-NULL) with STATUS and a formatted message; returns STATUS. */
queue_status queue_fail(queue_error *err, queue_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
