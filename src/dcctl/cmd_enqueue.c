/*
 * dcctl enqueue: one job from options or --json-job, validated with
 * job_spec and added with the atomic enqueue step; --wait prints its
 * result. --bulk hands a file to bulk.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enqueue.h"
#include "job_spec.h"

/* Default and largest --timeout, in seconds. */
#define ENQUEUE_WAIT_DEFAULT_S 30.0
#define ENQUEUE_WAIT_MAX_S 86400.0
/* Maximum length of the line read from --code-file. */
#define ENQUEUE_CODE_MAX 4096

static const char enqueue_help[] =
	"usage: dcctl enqueue [OPTIONS]\n"
	"       dcctl enqueue --bulk FILE [BULK OPTIONS]\n\n"
	"Validates a job and appends it to a queue ({dc}:queue:NAME), then prints its id.\n"
	"A job id that already has a result or was already enqueued is not added again.\n\n"
	"Job options (they override fields of --json-job):\n"
	"  --json-job JSON        the whole job as a JSON object, in the queue's wire format\n"
	"  --type TYPE            discover, exchange_code, apply, refresh or revert\n"
	"  --id ID                idempotency key (default: a random UUID)\n"
	"  --domain NAME          domain (discover, exchange_code)\n"
	"  --authorization-id ID  stored authorization (apply, refresh, revert)\n"
	"  --service-id ID        template id; repeat for several (discover: service_ids)\n"
	"  --host HOST            apply/revert: the host; exchange_code: a consented host,\n"
	"                         repeatable (\"\" is the apex)\n"
	"  --param NAME=VALUE     template variable, repeatable\n"
	"  --group-id ID          template group, repeatable (apply, revert)\n"
	"  --redirect-uri URL     redirect URI (discover, exchange_code)\n"
	"  --state TEXT           state echoed by the consent flow (discover)\n"
	"  --dns-provider NAME    [provider.NAME] of the config (exchange_code)\n"
	"  --code-file FILE       read the authorization code from the first line of FILE\n"
	"                         (exchange_code; kept off the command line and out of ps)\n"
	"  --on-conflict MODE     fail (default) or force (apply)\n"
	"  --max-attempts N       attempts before the job fails, 1 to 100\n"
	"  --not-before TIME      RFC 3339 time before which the job does not run\n"
	"  --queue NAME           queue to add to (default: interactive; bulk: bulk)\n"
	"  --wait                 wait for the result and print it\n"
	"  --timeout SECONDS      how long --wait waits (default 30)\n\n"
	"Bulk options:\n"
	"  --bulk FILE            enqueue one job per row of FILE: CSV with a header row, or\n"
	"                         JSON Lines; see docs/cli.md for the columns\n"
	"  --format FORMAT        csv or jsonl (default: from the extension, else the content)\n"
	"  --type TYPE            job type of rows without a type column\n"
	"  --rate N               enqueue at most N rows per second (default: no limit)\n"
	"  --strict               stop at the first bad row instead of skipping it\n"
	"  --wait                 wait for every result, then print a summary by status\n"
	"                         and DNS provider\n"
	"  --timeout SECONDS      how long --wait waits for all results (default 3600)\n"
	"  --failed-out FILE      write rows that were rejected or did not succeed to FILE\n"
	"                         (JSON Lines, accepted by --bulk)\n"
	"  --progress-interval SECONDS  seconds between progress lines when stderr is not a\n"
	"                         terminal (default 5)\n" DCCTL_COMMON_HELP
	"\nExit codes: 0 enqueued (or already known), 1 usage, 2 config, 4 Redis or PostgreSQL\n"
	"unreachable, 5 invalid job or a result other than succeeded, 6 --wait timed out.\n";

enum {
	OPT_JSON_JOB = 1,
	OPT_TYPE,
	OPT_ID,
	OPT_DOMAIN,
	OPT_AUTHORIZATION,
	OPT_SERVICE,
	OPT_HOST,
	OPT_PARAM,
	OPT_GROUP,
	OPT_REDIRECT,
	OPT_STATE,
	OPT_PROVIDER,
	OPT_CODE_FILE,
	OPT_ON_CONFLICT,
	OPT_MAX_ATTEMPTS,
	OPT_NOT_BEFORE,
	OPT_QUEUE,
	OPT_WAIT,
	OPT_TIMEOUT,
	OPT_BULK,
	OPT_FORMAT,
	OPT_RATE,
	OPT_STRICT,
	OPT_FAILED_OUT,
	OPT_PROGRESS,
};

/* Options as given; lists keep their order. */
typedef struct enqueue_args {
	const char *json_job;
	const char *type;
	const char *id;
	const char *domain;
	const char *authorization_id;
	const char *redirect_uri;
	const char *state;
	const char *dns_provider;
	const char *code_file;
	const char *on_conflict;
	const char *not_before;
	long max_attempts;
	json_t *service_ids;
	json_t *hosts;
	json_t *group_ids;
	json_t *params;
} enqueue_args;

static void set_string(json_t *job, const char *key, const char *value)
{
	if (value != NULL)
		json_object_set_new(job, key, json_string(value));
}

static char *read_code(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = calloc(1, ENQUEUE_CODE_MAX + 1);

	if (f == NULL || line == NULL || fgets(line, ENQUEUE_CODE_MAX + 1, f) == NULL) {
		free(line);
		line = NULL;
	} else {
		line[strcspn(line, "\r\n")] = '\0';
	}
	if (f != NULL)
		fclose(f);
	return line;
}

/* Builds the job object from --json-job and the options; NULL with the error printed. */
static json_t *build_job(const dcctl *ctx, const enqueue_args *a, int *code)
{
	json_t *job;
	json_error_t error;

	*code = DCCTL_EXIT_USAGE;
	if (a->json_job != NULL) {
		job = json_loads(a->json_job, JSON_REJECT_DUPLICATES, &error);
		if (!json_is_object(job)) {
			out_usage(ctx, "enqueue", "--json-job is not a JSON object: %s", error.text);
			json_decref(job);
			return NULL;
		}
	} else {
		job = json_object();
	}

	set_string(job, "type", a->type);
	set_string(job, "id", a->id);
	set_string(job, "domain", a->domain);
	set_string(job, "authorization_id", a->authorization_id);
	set_string(job, "redirect_uri", a->redirect_uri);
	set_string(job, "state", a->state);
	set_string(job, "dns_provider", a->dns_provider);
	set_string(job, "on_conflict", a->on_conflict);
	set_string(job, "not_before", a->not_before);
	if (a->max_attempts > 0)
		json_object_set_new(job, "max_attempts", json_integer(a->max_attempts));
	if (json_object_size(a->params) > 0)
		json_object_set(job, "params", a->params);
	if (json_array_size(a->group_ids) > 0)
		json_object_set(job, "group_ids", a->group_ids);

	/* Which field a repeated --service-id or --host fills depends on the type. */
	const char *type = json_string_value(json_object_get(job, "type"));
	bool one_target = type != NULL && (strcmp(type, "apply") == 0 || strcmp(type, "revert") == 0);
	if (json_array_size(a->service_ids) > 0) {
		if (one_target && json_array_size(a->service_ids) == 1)
			json_object_set(job, "service_id", json_array_get(a->service_ids, 0));
		else
			json_object_set(job, "service_ids", a->service_ids);
	}
	if (json_array_size(a->hosts) > 0) {
		if (one_target && json_array_size(a->hosts) == 1)
			json_object_set(job, "host", json_array_get(a->hosts, 0));
		else
			json_object_set(job, "hosts", a->hosts);
	}
	if (a->code_file != NULL) {
		char *secret = read_code(a->code_file);

		if (secret == NULL) {
			*code = out_error(ctx, DCCTL_EXIT_USAGE, "cannot read a code from --code-file %s",
			                  a->code_file);
			json_decref(job);
			return NULL;
		}
		json_object_set_new(job, "code", json_string(secret));
		free(secret);
	}
	*code = DCCTL_EXIT_OK;
	return job;
}

/* Prints the outcome of a single enqueue (and the result when there is one). */
static int report(const dcctl *ctx, const char *id, const char *queue, enqueue_outcome outcome,
                  const char *entry_id, json_t *result, bool timed_out)
{
	const char *status = result != NULL ? json_string_value(json_object_get(result, "status")) : NULL;
	int code = DCCTL_EXIT_OK;

	if (timed_out)
		code = DCCTL_EXIT_TIMEOUT;
	else if (status != NULL && strcmp(status, "succeeded") != 0)
		code = DCCTL_EXIT_FAILED;

	if (ctx->json) {
		json_t *doc = json_pack("{s:s, s:s, s:s, s:b}", "id", id, "queue", queue, "outcome",
		                        enqueue_outcome_name(outcome), "enqueued", outcome == ENQUEUE_ADDED);
		if (entry_id[0] != '\0')
			json_object_set_new(doc, "entry_id", json_string(entry_id));
		if (result != NULL)
			json_object_set(doc, "result", result);
		if (timed_out)
			json_object_set_new(doc, "timed_out", json_true());
		out_json(doc);
		return code;
	}
	if (outcome == ENQUEUE_ADDED)
		printf("%s\n", id);
	else
		fprintf(stderr, "dcctl: job %s was not enqueued again: %s\n", id,
		        outcome == ENQUEUE_HAS_RESULT ? "it already has a result"
		        : outcome == ENQUEUE_KNOWN    ? "it is already in dc_jobs"
		                                      : "it was enqueued before");
	if (result != NULL)
		result_print(result);
	if (timed_out)
		fprintf(stderr, "dcctl: no result for job %s within the timeout\n", id);
	return code;
}

/* Checks dc_jobs for the id when PostgreSQL is configured. */
static dcctl_exit known_in_store(dcctl *ctx, const char *id, bool *known)
{
	PGconn *conn = NULL;
	dcctl_exit code;

	*known = false;
	if (!dcctl_pg_configured(ctx))
		return DCCTL_EXIT_OK;
	code = dcctl_pg_connect(ctx, &conn);
	if (code != DCCTL_EXIT_OK)
		return code;
	const char *params[] = {id};
	PGresult *res = PQexecParams(conn, "SELECT 1 FROM dc_jobs WHERE id = $1", 1, NULL, params,
	                             NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		*known = PQntuples(res) > 0;
	else
		code = out_error(ctx, DCCTL_EXIT_FAILED, "reading dc_jobs failed (run dcctl migrate?): %s",
		                 PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(conn);
	return code;
}

static int enqueue_one(dcctl *ctx, const enqueue_args *a, const char *queue, bool wait,
                       double timeout_s)
{
	int code;
	json_t *job = build_job(ctx, a, &code);
	json_t *result = NULL;
	redisContext *rc = NULL;
	waiter *w = NULL;
	char *text = NULL;
	common_error err = {0};
	char entry_id[64] = "";
	char message[512];
	enqueue_outcome outcome = ENQUEUE_ADDED;
	bool timed_out = false;

	if (job == NULL)
		return code;
	code = dcctl_load_config(ctx);
	if (code != DCCTL_EXIT_OK)
		goto out;

	/* An explicit id keeps its value; without one a random UUID is used. */
	if (json_object_get(job, "id") == NULL) {
		char uuid[40];
		unsigned char r[16];
		FILE *f = fopen("/dev/urandom", "rb");
		bool got = f != NULL && fread(r, 1, sizeof(r), f) == sizeof(r);

		if (f != NULL)
			fclose(f);
		if (!got) {
			code = out_error(ctx, DCCTL_EXIT_FAILED, "cannot read /dev/urandom for a job id");
			goto out;
		}
		r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
		r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
		snprintf(uuid, sizeof(uuid),
		         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
		         r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
		         r[15]);
		json_object_set_new(job, "id", json_string(uuid));
	}
	if (!enqueue_prepare(ctx, job, "", &err)) {
		code = out_error(ctx, DCCTL_EXIT_FAILED, "invalid job (%s): %s", err.code, err.message);
		goto out;
	}
	const char *id = json_string_value(json_object_get(job, "id"));

	code = dcctl_redis_connect(ctx, &rc);
	if (code != DCCTL_EXIT_OK)
		goto out;

	/* Subscribe before adding, so a fast result cannot be missed. */
	if (wait) {
		code = waiter_new(ctx, &w);
		if (code != DCCTL_EXIT_OK)
			goto out;
	}

	bool known = false;
	code = known_in_store(ctx, id, &known);
	if (code != DCCTL_EXIT_OK)
		goto out;
	if (known) {
		outcome = ENQUEUE_KNOWN;
	} else {
		text = json_dumps(job, JSON_COMPACT);
		if (text == NULL || !enqueue_append(rc, queue, id, text, enqueue_marker_ttl(ctx))) {
			code = out_error(ctx, DCCTL_EXIT_FAILED, "out of memory");
			goto out;
		}
		code = enqueue_read(rc, &outcome, entry_id, sizeof(entry_id), message, sizeof(message));
		if (code != DCCTL_EXIT_OK) {
			code = out_error(ctx, code, "%s", message);
			goto out;
		}
	}

	if (wait) {
		/* The result may have been published before SUBSCRIBE took effect: read the hash. */
		result = result_fetch(rc, id);
		double deadline = dcctl_mono() + timeout_s;
		while (result == NULL) {
			dcctl_exit wait_code;
			json_t *next = waiter_next(w, deadline - dcctl_mono(), &wait_code);

			if (wait_code != DCCTL_EXIT_OK) {
				code = out_error(ctx, wait_code, "lost the Redis connection while waiting");
				goto out;
			}
			if (next == NULL) {
				timed_out = true;
				break;
			}
			const char *next_id = json_string_value(json_object_get(next, "id"));
			if (next_id != NULL && strcmp(next_id, id) == 0)
				result = next;
			else
				json_decref(next);
		}
	}
	code = report(ctx, id, queue, outcome, entry_id, result, timed_out);
out:
	json_decref(result);
	json_decref(job);
	free(text);
	waiter_free(w);
	if (rc != NULL)
		redisFree(rc);
	return code;
}

static bool add_param(json_t *params, const char *text)
{
	const char *eq = strchr(text, '=');

	if (eq == NULL || eq == text)
		return false;
	char *name = strndup(text, (size_t)(eq - text));
	bool ok = name != NULL && json_object_set_new(params, name, json_string(eq + 1)) == 0;
	free(name);
	return ok;
}

int cmd_enqueue(dcctl *ctx, int argc, char **argv)
{
	static const struct option options[] = {
		{"json-job", required_argument, NULL, OPT_JSON_JOB},
		{"type", required_argument, NULL, OPT_TYPE},
		{"id", required_argument, NULL, OPT_ID},
		{"domain", required_argument, NULL, OPT_DOMAIN},
		{"authorization-id", required_argument, NULL, OPT_AUTHORIZATION},
		{"service-id", required_argument, NULL, OPT_SERVICE},
		{"host", required_argument, NULL, OPT_HOST},
		{"param", required_argument, NULL, OPT_PARAM},
		{"group-id", required_argument, NULL, OPT_GROUP},
		{"redirect-uri", required_argument, NULL, OPT_REDIRECT},
		{"state", required_argument, NULL, OPT_STATE},
		{"dns-provider", required_argument, NULL, OPT_PROVIDER},
		{"code-file", required_argument, NULL, OPT_CODE_FILE},
		{"on-conflict", required_argument, NULL, OPT_ON_CONFLICT},
		{"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
		{"not-before", required_argument, NULL, OPT_NOT_BEFORE},
		{"queue", required_argument, NULL, OPT_QUEUE},
		{"wait", no_argument, NULL, OPT_WAIT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"bulk", required_argument, NULL, OPT_BULK},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"rate", required_argument, NULL, OPT_RATE},
		{"strict", no_argument, NULL, OPT_STRICT},
		{"failed-out", required_argument, NULL, OPT_FAILED_OUT},
		{"progress-interval", required_argument, NULL, OPT_PROGRESS},
		DCCTL_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	enqueue_args a = {.service_ids = json_array(), .hosts = json_array(),
	                  .group_ids = json_array(), .params = json_object()};
	bulk_options bulk = {.progress_interval_s = 5.0};
	const char *queue = NULL;
	bool wait = false;
	double timeout_s = -1;
	int code = DCCTL_EXIT_USAGE;

	for (int opt; (opt = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
		if (dcctl_common_option(ctx, opt, optarg))
			continue;
		switch (opt) {
		case OPT_JSON_JOB: a.json_job = optarg; break;
		case OPT_TYPE: a.type = optarg; break;
		case OPT_ID: a.id = optarg; break;
		case OPT_DOMAIN: a.domain = optarg; break;
		case OPT_AUTHORIZATION: a.authorization_id = optarg; break;
		case OPT_SERVICE: json_array_append_new(a.service_ids, json_string(optarg)); break;
		case OPT_HOST: json_array_append_new(a.hosts, json_string(optarg)); break;
		case OPT_GROUP: json_array_append_new(a.group_ids, json_string(optarg)); break;
		case OPT_REDIRECT: a.redirect_uri = optarg; break;
		case OPT_STATE: a.state = optarg; break;
		case OPT_PROVIDER: a.dns_provider = optarg; break;
		case OPT_CODE_FILE: a.code_file = optarg; break;
		case OPT_ON_CONFLICT: a.on_conflict = optarg; break;
		case OPT_NOT_BEFORE: a.not_before = optarg; break;
		case OPT_QUEUE: queue = optarg; break;
		case OPT_WAIT: wait = true; break;
		case OPT_BULK: bulk.file = optarg; break;
		case OPT_FORMAT: bulk.format = optarg; break;
		case OPT_STRICT: bulk.strict = true; break;
		case OPT_FAILED_OUT: bulk.failed_out = optarg; break;
		case OPT_PARAM:
			if (!add_param(a.params, optarg)) {
				code = out_usage(ctx, "enqueue", "--param %s: expected NAME=VALUE", optarg);
				goto out;
			}
			break;
		case OPT_MAX_ATTEMPTS:
			if (!dcctl_parse_long(optarg, 1, JOB_SPEC_MAX_ATTEMPTS_MAX, &a.max_attempts)) {
				code = out_usage(ctx, "enqueue", "--max-attempts %s: expected 1 to %d", optarg,
				                 JOB_SPEC_MAX_ATTEMPTS_MAX);
				goto out;
			}
			break;
		case OPT_TIMEOUT:
			if (!dcctl_parse_seconds(optarg, ENQUEUE_WAIT_MAX_S, &timeout_s)) {
				code = out_usage(ctx, "enqueue", "--timeout %s: expected seconds, 0 to %.0f",
				                 optarg, ENQUEUE_WAIT_MAX_S);
				goto out;
			}
			break;
		case OPT_RATE:
			if (!dcctl_parse_seconds(optarg, 1e6, &bulk.rate) || bulk.rate <= 0) {
				code = out_usage(ctx, "enqueue", "--rate %s: expected rows per second, "
				                 "greater than 0", optarg);
				goto out;
			}
			break;
		case OPT_PROGRESS:
			if (!dcctl_parse_seconds(optarg, 3600, &bulk.progress_interval_s) ||
			    bulk.progress_interval_s <= 0) {
				code = out_usage(ctx, "enqueue", "--progress-interval %s: expected seconds", optarg);
				goto out;
			}
			break;
		case 'h':
			fputs(enqueue_help, stdout);
			code = DCCTL_EXIT_OK;
			goto out;
		default:
			code = out_usage(ctx, "enqueue", "invalid option");
			goto out;
		}
	}
	if (optind != argc) {
		code = out_usage(ctx, "enqueue", "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (queue != NULL && !dcctl_valid_queue_name(queue)) {
		code = out_usage(ctx, "enqueue", "--queue %s: expected 1 to 32 of A-Z a-z 0-9 _ -", queue);
		goto out;
	}

	if (bulk.file != NULL) {
		if (a.json_job != NULL || a.id != NULL || a.domain != NULL || a.code_file != NULL) {
			code = out_usage(ctx, "enqueue", "--bulk takes jobs from the file; only --type, "
			                 "--queue and the bulk options apply");
			goto out;
		}
		bulk.queue = queue != NULL ? queue : "bulk";
		bulk.default_type = a.type;
		bulk.wait = wait;
		bulk.timeout_s = timeout_s >= 0 ? timeout_s : 3600;
		code = bulk_run(ctx, &bulk);
		goto out;
	}
	code = enqueue_one(ctx, &a, queue != NULL ? queue : "interactive", wait,
	                   timeout_s >= 0 ? timeout_s : ENQUEUE_WAIT_DEFAULT_S);
out:
	json_decref(a.service_ids);
	json_decref(a.hosts);
	json_decref(a.group_ids);
	json_decref(a.params);
	return code;
}
