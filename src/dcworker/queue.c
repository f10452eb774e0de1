/*
 * The queue's commands: argument checks, the script or command each one
 * sends, and the parsing of its reply. The connection itself lives in
 * queue_conn.c and the Lua sources in queue_scripts.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_conn.h"
#include "queue_scripts.h"
#include "redis_keys.h"

/* The key names dcctl reads too, from one header. */
#define QUEUE_GROUP REDIS_GROUP
#define QUEUE_KEY_PREFIX REDIS_KEY_QUEUE_PREFIX
#define QUEUE_SCHEDULED_KEY REDIS_KEY_SCHEDULED
#define QUEUE_DEAD_KEY REDIS_KEY_DEAD
#define QUEUE_RESULT_PREFIX REDIS_KEY_RESULT_PREFIX
#define QUEUE_RESULT_CHANNEL REDIS_RESULT_CHANNEL
#define QUEUE_CALLS_PREFIX REDIS_KEY_PROVIDER_CALLS_PREFIX
#define QUEUE_REASON_MAX 512
#define QUEUE_STATUS_NAME_MAX 64

/* Most arguments one command takes: EVAL, script, numkeys, keys and args. */
#define QUEUE_ARGV_MAX (3 + 2 * QUEUE_QUEUES_MAX + 16)

static const char *const status_names[QUEUE_STATUS_COUNT] = {
	[QUEUE_OK] = "QUEUE_OK",
	[QUEUE_ERR_INVALID_ARGUMENT] = "QUEUE_ERR_INVALID_ARGUMENT",
	[QUEUE_ERR_DISCONNECTED] = "QUEUE_ERR_DISCONNECTED",
	[QUEUE_ERR_TIMEOUT] = "QUEUE_ERR_TIMEOUT",
	[QUEUE_ERR_REDIS] = "QUEUE_ERR_REDIS",
	[QUEUE_ERR_PROTOCOL] = "QUEUE_ERR_PROTOCOL",
	[QUEUE_ERR_CLOSED] = "QUEUE_ERR_CLOSED",
	[QUEUE_ERR_NOMEM] = "QUEUE_ERR_NOMEM",
};

const char *queue_status_name(queue_status status)
{
	if ((unsigned)status >= QUEUE_STATUS_COUNT || status_names[status] == NULL)
		return "QUEUE_ERR_UNKNOWN";
	return status_names[status];
}

const char *queue_event_name(queue_event event)
{
	switch (event) {
	case QUEUE_EVENT_CONNECTED:
		return "QUEUE_EVENT_CONNECTED";
	case QUEUE_EVENT_CONNECT_FAILED:
		return "QUEUE_EVENT_CONNECT_FAILED";
	case QUEUE_EVENT_LOST:
		return "QUEUE_EVENT_LOST";
	case QUEUE_EVENT_ERROR:
		return "QUEUE_EVENT_ERROR";
	}
	return "QUEUE_EVENT_UNKNOWN";
}

void queue_batch_free(queue_batch *batch)
{
	if (batch == NULL)
		return;
	for (size_t i = 0; i < batch->count; i++)
		free(batch->messages[i].job);
	free(batch->messages);
	free(batch);
}

bool queue_connected(const queue *q)
{
	return q != NULL && q->connected;
}

/* Command building */

/* Arguments of one command; strings are borrowed and must outlive the send. */
typedef struct cmd_args {
	int argc;
	const char *argv[QUEUE_ARGV_MAX];
	size_t len[QUEUE_ARGV_MAX];
	char numbers[8][24];    /* storage for formatted integers */
	int number_count;
} cmd_args;

static void arg_add(cmd_args *a, const char *s, size_t len)
{
	a->argv[a->argc] = s;
	a->len[a->argc] = len;
	a->argc++;
}

static void arg_str(cmd_args *a, const char *s)
{
	arg_add(a, s, strlen(s));
}

static void arg_int(cmd_args *a, long long value)
{
	char *buf = a->numbers[a->number_count++];

	snprintf(buf, sizeof(a->numbers[0]), "%lld", value);
	arg_str(a, buf);
}

/* Start an EVAL of SCRIPT with NUMKEYS keys; keys and arguments follow. */
static void arg_eval(cmd_args *a, const char *script, int numkeys)
{
	arg_str(a, "EVAL");
	arg_str(a, script);
	arg_int(a, numkeys);
}

static queue_status send_args(queue *q, cmd_args *a, queue_parse_fn parse, queue_cb cb,
                              void *arg, queue_error *err)
{
	return queue_conn_send(q, a->argc, a->argv, a->len, parse, cb, arg, err);
}

/* Argument checks */

static bool name_valid(const char *name)
{
	size_t len = name != NULL ? strlen(name) : 0;

	if (len == 0 || len > QUEUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Return the index of queue NAME, or -1 when Q does not read it. */
static int queue_index(const queue *q, const char *name)
{
	for (size_t i = 0; i < q->queue_count; i++) {
		if (strcmp(q->names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

static queue_status check_message(const queue *q, const queue_message *msg, int *index,
                                  queue_error *err)
{
	if (msg == NULL)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "message is missing");
	*index = queue_index(q, msg->queue);
	if (*index < 0)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "message names an unknown queue");
	if (msg->entry_id[0] == '\0' || memchr(msg->entry_id, '\0', sizeof(msg->entry_id)) == NULL)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "message has no entry id");
	return QUEUE_OK;
}

static queue_status check_job(const char *job, size_t job_len, queue_error *err)
{
	if (job == NULL || job_len == 0)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "job is empty");
	if (job_len > QUEUE_JOB_MAX)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "job is %zu bytes, over the limit of %d", job_len, QUEUE_JOB_MAX);
	return QUEUE_OK;
}

static queue_status check_count(size_t count, queue_error *err)
{
	if (count == 0 || count > QUEUE_BATCH_MAX)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "count %zu is out of range (1 to %d)", count, QUEUE_BATCH_MAX);
	return QUEUE_OK;
}

/* Reply parsing */

static bool reply_error(const queue *q, const redisReply *reply, queue_result *result)
{
	if (reply->type != REDIS_REPLY_ERROR)
		return false;
	queue_fail(&result->error, QUEUE_ERR_REDIS, "Redis at %s:%d returned an error: %.160s",
	           q->host, q->port, reply->str);
	return true;
}

static void protocol_error(const queue *q, queue_result *result, const char *what)
{
	queue_fail(&result->error, QUEUE_ERR_PROTOCOL, "unexpected reply from Redis at %s:%d: %s",
	           q->host, q->port, what);
}

/* Read an integer reply, or a string reply holding a decimal integer. */
static bool reply_integer(const redisReply *reply, long long *value)
{
	char *end;

	if (reply->type == REDIS_REPLY_INTEGER) {
		*value = reply->integer;
		return true;
	}
	if (reply->type != REDIS_REPLY_STRING || reply->len == 0 || reply->len > 20)
		return false;
	*value = strtoll(reply->str, &end, 10);
	return end == reply->str + reply->len;
}

static void parse_integer(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply_error(q, reply, result))
		return;
	if (!reply_integer(reply, &result->value))
		protocol_error(q, result, "expected an integer");
}

static void parse_entry_id(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply_error(q, reply, result))
		return;
	if (reply->type != REDIS_REPLY_STRING || reply->len >= QUEUE_ENTRY_ID_MAX) {
		protocol_error(q, result, "expected a stream entry id");
		return;
	}
	memcpy(result->entry_id, reply->str, reply->len);
	result->entry_id[reply->len] = '\0';
}

/*
 * Fill MSG from an entry id and its field list. The job field is copied when
 * it fits QUEUE_JOB_MAX. Returns false on a malformed entry or no memory.
 */
static bool message_fill(queue_message *msg, const char *name, const redisReply *id,
                         const redisReply *fields)
{
	if (id->type != REDIS_REPLY_STRING || id->len >= QUEUE_ENTRY_ID_MAX)
		return false;
	snprintf(msg->queue, sizeof(msg->queue), "%s", name);
	memcpy(msg->entry_id, id->str, id->len);
	msg->entry_id[id->len] = '\0';
	msg->deliveries = 1;

	if (fields->type != REDIS_REPLY_ARRAY)
		return fields->type == REDIS_REPLY_NIL;
	for (size_t f = 0; f + 1 < fields->elements; f += 2) {
		const redisReply *key = fields->element[f];
		const redisReply *value = fields->element[f + 1];

		if (key->type != REDIS_REPLY_STRING || strcmp(key->str, "job") != 0)
			continue;
		if (value->type != REDIS_REPLY_STRING)
			return false;
		msg->job_len = value->len;
		if (value->len > QUEUE_JOB_MAX)
			return true;
		msg->job = malloc(value->len + 1);
		if (msg->job == NULL)
			return false;
		memcpy(msg->job, value->str, value->len);
		msg->job[value->len] = '\0';
		return true;
	}
	return true;
}

static queue_batch *batch_new(size_t capacity)
{
	queue_batch *batch = calloc(1, sizeof(*batch));

	if (batch == NULL)
		return NULL;
	if (capacity > 0) {
		batch->messages = calloc(capacity, sizeof(*batch->messages));
		if (batch->messages == NULL) {
			free(batch);
			return NULL;
		}
	}
	return batch;
}

/* Return the queue named by a 1-based index reply, or NULL. */
static const char *reply_queue_name(const queue *q, const redisReply *reply)
{
	long long index;

	if (!reply_integer(reply, &index) || index < 1 || (size_t)index > q->queue_count)
		return NULL;
	return q->names[index - 1];
}

/* Reply of queue_script_fetch: {{queue index, entries}, ...}. */
static void parse_fetch(queue *q, const redisReply *reply, queue_result *result)
{
	size_t total = 0;
	queue_batch *batch;

	if (reply_error(q, reply, result))
		return;
	if (reply->type != REDIS_REPLY_ARRAY) {
		protocol_error(q, result, "fetch did not return a list");
		return;
	}
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *pair = reply->element[i];

		if (pair->type != REDIS_REPLY_ARRAY || pair->elements != 2 ||
		    pair->element[1]->type != REDIS_REPLY_ARRAY) {
			protocol_error(q, result, "fetch returned a malformed stream");
			return;
		}
		total += pair->element[1]->elements;
	}
	if (total > QUEUE_BATCH_MAX) {
		protocol_error(q, result, "fetch returned more entries than requested");
		return;
	}

	batch = batch_new(total);
	if (batch == NULL) {
		queue_fail(&result->error, QUEUE_ERR_NOMEM, "out of memory for %zu entries", total);
		return;
	}
	result->batch = batch;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *pair = reply->element[i];
		const redisReply *entries = pair->element[1];
		const char *name = reply_queue_name(q, pair->element[0]);

		if (name == NULL) {
			protocol_error(q, result, "fetch returned an unknown queue index");
			return;
		}
		for (size_t e = 0; e < entries->elements; e++) {
			const redisReply *entry = entries->element[e];
			queue_message *msg = &batch->messages[batch->count];

			if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
			    !message_fill(msg, name, entry->element[0], entry->element[1])) {
				protocol_error(q, result, "fetch returned a malformed entry");
				return;
			}
			batch->count++;
		}
	}
}

/* Reply of queue_script_reclaim: {{queue index, id, fields, deliveries, dead}, ...}. */
static void parse_reclaim(queue *q, const redisReply *reply, queue_result *result)
{
	queue_batch *batch;

	if (reply_error(q, reply, result))
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements > 2 * QUEUE_BATCH_MAX) {
		protocol_error(q, result, "reclaim did not return a list");
		return;
	}
	batch = batch_new(reply->elements);
	if (batch == NULL) {
		queue_fail(&result->error, QUEUE_ERR_NOMEM, "out of memory for %zu entries",
		           reply->elements);
		return;
	}
	result->batch = batch;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *item = reply->element[i];
		queue_message *msg = &batch->messages[batch->count];
		const char *name;
		long long deliveries;
		long long dead;

		if (item->type != REDIS_REPLY_ARRAY || item->elements != 5) {
			protocol_error(q, result, "reclaim returned a malformed item");
			return;
		}
		name = reply_queue_name(q, item->element[0]);
		if (name == NULL || !reply_integer(item->element[3], &deliveries) ||
		    !reply_integer(item->element[4], &dead) ||
		    !message_fill(msg, name, item->element[1], item->element[2])) {
			protocol_error(q, result, "reclaim returned a malformed entry");
			return;
		}
		msg->deliveries = deliveries > 0 && deliveries < 1000000000 ? (long)deliveries : 0;
		msg->dead_lettered = dead != 0;
		batch->count++;
	}
}

/* Reply of queue_script_promote: {moved, dead, now ms, next due ms}. */
static void parse_promote(queue *q, const redisReply *reply, queue_result *result)
{
	if (reply_error(q, reply, result))
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
	    !reply_integer(reply->element[0], &result->moved) ||
	    !reply_integer(reply->element[1], &result->dead_lettered) ||
	    !reply_integer(reply->element[2], &result->now_ms) ||
	    !reply_integer(reply->element[3], &result->next_due_ms)) {
		protocol_error(q, result, "promote returned a malformed summary");
		return;
	}
	result->value = result->moved;
}

/* Lifecycle */

static long default_long(long value, long fallback)
{
	return value > 0 ? value : fallback;
}

static queue_status copy_options(queue *q, const queue_options *opts, queue_error *err)
{
	if (opts->host == NULL || opts->port <= 0 || opts->port > 65535)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "Redis host or port is invalid");
	if (opts->consumer == NULL || opts->consumer[0] == '\0' || strlen(opts->consumer) > 200)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "consumer name is missing or longer than 200 bytes");
	if (opts->queue_count == 0 || opts->queue_count > QUEUE_QUEUES_MAX)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "queue count %zu is out of range (1 to %d)", opts->queue_count,
		                  QUEUE_QUEUES_MAX);

	for (size_t i = 0; i < opts->queue_count; i++) {
		const char *name = opts->queues[i];

		if (!name_valid(name))
			return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
			                  "queue name %zu is invalid (1 to %d of A-Z a-z 0-9 _ -)", i,
			                  QUEUE_NAME_MAX);
		snprintf(q->names[i], sizeof(q->names[i]), "%s", name);
		if (asprintf(&q->keys[i], QUEUE_KEY_PREFIX "%s", name) < 0) {
			q->keys[i] = NULL;
			return queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
		}
		q->queue_count = i + 1;
	}

	if (opts->db < 0 || opts->db > 15)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "db %ld is out of range (0 to 15)",
		                  opts->db);
	q->host = strdup(opts->host);
	q->consumer = strdup(opts->consumer);
	if (q->host == NULL || q->consumer == NULL)
		return queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
	if (opts->password != NULL && opts->password[0] != '\0') {
		q->password = strdup(opts->password);
		if (q->password == NULL)
			return queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
	}
	q->db = opts->db;
	q->port = opts->port;
	q->command_timeout = default_long(opts->command_timeout_ms, 5000) / 1000.0;
	q->connect_timeout = default_long(opts->connect_timeout_ms, 2000) / 1000.0;
	q->visibility_timeout_ms = default_long(opts->visibility_timeout_ms, 60000);
	q->max_deliveries = default_long(opts->max_deliveries, 5);
	q->dead_max_len = default_long(opts->dead_max_len, 10000);
	q->result_ttl_s = default_long(opts->result_ttl_s, 86400);
	q->reconnect_min = default_long(opts->reconnect_min_ms, 100) / 1000.0;
	q->reconnect_max = default_long(opts->reconnect_max_ms, 5000) / 1000.0;
	if (q->reconnect_max < q->reconnect_min)
		q->reconnect_max = q->reconnect_min;
	q->on_event = opts->on_event;
	q->event_arg = opts->event_arg;
	return QUEUE_OK;
}

static void queue_release(queue *q)
{
	for (size_t i = 0; i < q->queue_count; i++)
		free(q->keys[i]);
	free(q->host);
	free(q->consumer);
	if (q->password != NULL) {
		explicit_bzero(q->password, strlen(q->password));
		free(q->password);
	}
	free(q);
}

queue *queue_new(struct ev_loop *loop, const queue_options *opts, queue_error *err)
{
	queue *q;

	if (loop == NULL || opts == NULL) {
		queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "loop or options missing");
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	q->loop = loop;
	if (copy_options(q, opts, err) != QUEUE_OK) {
		queue_release(q);
		return NULL;
	}
	queue_conn_start(q);
	return q;
}

void queue_free(queue *q)
{
	if (q == NULL)
		return;
	queue_conn_close(q);
	queue_release(q);
}

/* Commands */

queue_status queue_enqueue(queue *q, const char *name, const char *job, size_t job_len,
                           queue_cb cb, void *arg, queue_error *err)
{
	cmd_args a = {0};
	int index = name_valid(name) ? queue_index(q, name) : -1;
	queue_status status = check_job(job, job_len, err);

	if (status != QUEUE_OK)
		return status;
	if (index < 0)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "queue name is not configured");

	arg_str(&a, "XADD");
	arg_str(&a, q->keys[index]);
	arg_str(&a, "*");
	arg_str(&a, "job");
	arg_add(&a, job, job_len);
	return send_args(q, &a, parse_entry_id, cb, arg, err);
}

queue_status queue_fetch(queue *q, size_t count, queue_cb cb, void *arg, queue_error *err)
{
	cmd_args a = {0};
	queue_status status = check_count(count, err);

	if (status != QUEUE_OK)
		return status;
	arg_eval(&a, queue_script_fetch, (int)q->queue_count);
	for (size_t i = 0; i < q->queue_count; i++)
		arg_str(&a, q->keys[i]);
	arg_str(&a, QUEUE_GROUP);
	arg_str(&a, q->consumer);
	arg_int(&a, (long long)count);
	return send_args(q, &a, parse_fetch, cb, arg, err);
}

queue_status queue_reclaim(queue *q, size_t count, queue_cb cb, void *arg, queue_error *err)
{
	cmd_args a = {0};
	queue_status status = check_count(count, err);

	if (status != QUEUE_OK)
		return status;
	arg_eval(&a, queue_script_reclaim, 1 + (int)q->queue_count);
	arg_str(&a, QUEUE_DEAD_KEY);
	for (size_t i = 0; i < q->queue_count; i++)
		arg_str(&a, q->keys[i]);
	arg_str(&a, QUEUE_GROUP);
	arg_str(&a, q->consumer);
	arg_int(&a, q->visibility_timeout_ms);
	arg_int(&a, (long long)count);
	arg_int(&a, q->max_deliveries);
	arg_int(&a, q->dead_max_len);
	for (size_t i = 0; i < q->queue_count; i++)
		arg_str(&a, q->names[i]);
	return send_args(q, &a, parse_reclaim, cb, arg, err);
}

queue_status queue_touch(queue *q, const queue_message *msg, queue_cb cb, void *arg,
                         queue_error *err)
{
	cmd_args a = {0};
	int index;
	queue_status status = check_message(q, msg, &index, err);

	if (status != QUEUE_OK)
		return status;
	arg_eval(&a, queue_script_touch, 1);
	arg_str(&a, q->keys[index]);
	arg_str(&a, QUEUE_GROUP);
	arg_str(&a, q->consumer);
	arg_str(&a, msg->entry_id);
	return send_args(q, &a, parse_integer, cb, arg, err);
}

queue_status queue_ack(queue *q, const queue_message *msg, queue_cb cb, void *arg,
                       queue_error *err)
{
	cmd_args a = {0};
	int index;
	queue_status status = check_message(q, msg, &index, err);

	if (status != QUEUE_OK)
		return status;
	arg_eval(&a, queue_script_ack, 1);
	arg_str(&a, q->keys[index]);
	arg_str(&a, QUEUE_GROUP);
	arg_str(&a, msg->entry_id);
	return send_args(q, &a, parse_integer, cb, arg, err);
}

static queue_status schedule(queue *q, const char *mode, const char *name, const char *job,
                             size_t job_len, long long ms, const queue_message *msg,
                             queue_cb cb, void *arg, queue_error *err)
{
	cmd_args a = {0};
	int msg_index = -1;
	queue_status status = check_job(job, job_len, err);
	char *member;
	size_t name_len;

	if (status != QUEUE_OK)
		return status;
	if (!name_valid(name) || queue_index(q, name) < 0)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "queue name is not configured");
	if (ms < 0)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "due time %lld ms is negative", ms);
	if (msg != NULL && check_message(q, msg, &msg_index, err) != QUEUE_OK)
		return err != NULL ? err->status : QUEUE_ERR_INVALID_ARGUMENT;

	/* The member is "<queue name> <job>"; names contain no space. */
	name_len = strlen(name);
	member = malloc(name_len + 1 + job_len);
	if (member == NULL)
		return queue_fail(err, QUEUE_ERR_NOMEM, "out of memory");
	memcpy(member, name, name_len);
	member[name_len] = ' ';
	memcpy(member + name_len + 1, job, job_len);

	arg_eval(&a, queue_script_schedule, msg != NULL ? 2 : 1);
	arg_str(&a, QUEUE_SCHEDULED_KEY);
	if (msg != NULL)
		arg_str(&a, q->keys[msg_index]);
	arg_str(&a, mode);
	arg_int(&a, ms);
	arg_add(&a, member, name_len + 1 + job_len);
	arg_str(&a, QUEUE_GROUP);
	arg_str(&a, msg != NULL ? msg->entry_id : "");

	/* hiredis copies the arguments into its output buffer, so MEMBER can go. */
	status = send_args(q, &a, parse_integer, cb, arg, err);
	free(member);
	return status;
}

queue_status queue_schedule(queue *q, const char *name, const char *job, size_t job_len,
                            long long delay_ms, const queue_message *msg, queue_cb cb,
                            void *arg, queue_error *err)
{
	return schedule(q, "delay", name, job, job_len, delay_ms, msg, cb, arg, err);
}

queue_status queue_schedule_at(queue *q, const char *name, const char *job, size_t job_len,
                               long long due_ms, const queue_message *msg, queue_cb cb,
                               void *arg, queue_error *err)
{
	return schedule(q, "at", name, job, job_len, due_ms, msg, cb, arg, err);
}

queue_status queue_promote(queue *q, size_t count, queue_cb cb, void *arg, queue_error *err)
{
	cmd_args a = {0};
	queue_status status = check_count(count, err);

	if (status != QUEUE_OK)
		return status;
	arg_eval(&a, queue_script_promote, 2 + (int)q->queue_count);
	arg_str(&a, QUEUE_SCHEDULED_KEY);
	arg_str(&a, QUEUE_DEAD_KEY);
	for (size_t i = 0; i < q->queue_count; i++)
		arg_str(&a, q->keys[i]);
	arg_int(&a, (long long)count);
	arg_int(&a, q->dead_max_len);
	for (size_t i = 0; i < q->queue_count; i++)
		arg_str(&a, q->names[i]);
	return send_args(q, &a, parse_promote, cb, arg, err);
}

queue_status queue_dead_letter(queue *q, const queue_message *msg, const char *reason,
                               queue_cb cb, void *arg, queue_error *err)
{
	cmd_args a = {0};
	int index;
	queue_status status = check_message(q, msg, &index, err);

	if (status != QUEUE_OK)
		return status;
	if (reason == NULL || strlen(reason) > QUEUE_REASON_MAX)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "reason is missing or longer than %d bytes", QUEUE_REASON_MAX);

	arg_eval(&a, queue_script_dead, 2);
	arg_str(&a, QUEUE_DEAD_KEY);
	arg_str(&a, q->keys[index]);
	arg_str(&a, QUEUE_GROUP);
	arg_str(&a, msg->entry_id);
	arg_str(&a, msg->queue);
	if (msg->job != NULL)
		arg_add(&a, msg->job, msg->job_len);
	else
		arg_str(&a, "");
	arg_str(&a, reason);
	arg_int(&a, q->dead_max_len);
	return send_args(q, &a, parse_integer, cb, arg, err);
}

static bool job_id_valid(const char *id)
{
	size_t len = id != NULL ? strlen(id) : 0;

	if (len == 0 || len > QUEUE_JOB_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

queue_status queue_publish_result(queue *q, const char *job_id, const char *status,
                                  const char *result_json, queue_cb cb, void *arg,
                                  queue_error *err)
{
	cmd_args a = {0};
	char key[sizeof(QUEUE_RESULT_PREFIX) + QUEUE_JOB_ID_MAX];
	size_t json_len = result_json != NULL ? strlen(result_json) : 0;

	if (!job_id_valid(job_id))
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "job id is empty, longer than %d bytes or not printable ASCII",
		                  QUEUE_JOB_ID_MAX);
	if (status == NULL || status[0] == '\0' || strlen(status) > QUEUE_STATUS_NAME_MAX)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "result status is invalid");
	if (json_len == 0 || json_len > QUEUE_JOB_MAX)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "result JSON is empty or over %d bytes", QUEUE_JOB_MAX);

	snprintf(key, sizeof(key), QUEUE_RESULT_PREFIX "%s", job_id);
	arg_eval(&a, queue_script_result, 1);
	arg_str(&a, key);
	arg_add(&a, result_json, json_len);
	arg_str(&a, status);
	arg_int(&a, q->result_ttl_s);
	arg_str(&a, QUEUE_RESULT_CHANNEL);
	return send_args(q, &a, parse_integer, cb, arg, err);
}

/* Provider call counters */

static bool provider_name_valid(const char *name)
{
	size_t len = name != NULL ? strlen(name) : 0;

	if (len == 0 || len > QUEUE_PROVIDER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

queue_status queue_count_call(queue *q, const char *provider, const char *status,
                              long long now_ms, queue_cb cb, void *arg, queue_error *err)
{
	cmd_args a = {0};
	char total_key[sizeof(QUEUE_CALLS_PREFIX) + QUEUE_PROVIDER_NAME_MAX];
	char minute_key[sizeof(QUEUE_CALLS_PREFIX) + QUEUE_PROVIDER_NAME_MAX + 24];

	if (!provider_name_valid(provider))
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "provider name is empty, longer than %d bytes or has other bytes "
		                  "than A-Z a-z 0-9 _ - .",
		                  QUEUE_PROVIDER_NAME_MAX);
	if (!name_valid(status))
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT,
		                  "call status must be 1 to %d of A-Z a-z 0-9 _ -", QUEUE_NAME_MAX);
	if (now_ms < 0)
		return queue_fail(err, QUEUE_ERR_INVALID_ARGUMENT, "time is negative");

	snprintf(total_key, sizeof(total_key), QUEUE_CALLS_PREFIX "%s", provider);
	snprintf(minute_key, sizeof(minute_key), QUEUE_CALLS_PREFIX "%s:%lld", provider,
	         now_ms / 60000 * 60);
	arg_eval(&a, queue_script_count_call, 2);
	arg_str(&a, total_key);
	arg_str(&a, minute_key);
	arg_str(&a, status);
	arg_int(&a, QUEUE_CALLS_MINUTE_TTL_S);
	return send_args(q, &a, parse_integer, cb, arg, err);
}
