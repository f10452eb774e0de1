/*
 * worker_load: enqueues N apply jobs for dcworker with pipelined Redis
 * commands, waits until PostgreSQL shows a finish time for each, and prints
 * jobs/s and enqueue-to-result percentiles.
 *
 * Each job is added with the same Lua step as `dcctl enqueue` (XADD to
 * {dc}:queue:<queue> plus the {dc}:enqueued:<id> marker), so the enqueue
 * time is the millisecond part of the stream entry id (Redis TIME). The
 * finish time is dc_jobs.finished_at. Both clocks are this machine's clock.
 * Job i uses authorization i mod A from the authorization file, so with
 * A >= the in-flight total no two jobs wait on the same zone lock.
 *
 * Output, one line: jobs, states that are not "succeeded", seconds from the
 * first enqueue to the last finish, jobs/s, p50/p99/max latency in ms.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#define LOAD_MAX_JOBS 1000000L
#define LOAD_MAX_AUTHS 100000
#define LOAD_BATCH 1000
#define LOAD_MAX_TIMEOUT_S 3600L

/* The enqueue step of dcctl (src/dcctl/enqueue.c), so the worker sees the same keys. */
static const char enqueue_script[] =
	"if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 'has_result'} end\n"
	"if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 'already_queued'} end\n"
	"local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])\n"
	"redis.call('SET', KEYS[3], id, 'EX', ARGV[2])\n"
	"return {1, id}\n";

typedef struct options {
	const char *redis_host;
	long redis_port;
	const char *conninfo;
	const char *auth_file;
	const char *prefix; /* job id prefix: letters, digits and '-' */
	const char *queue;
	const char *service;
	long jobs;
	long timeout_s;
} options;

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool parse_long(const char *text, long min, long max, long *out)
{
	char *end = NULL;

	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool plain_name(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s != '\0'; s++) {
		bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		          *s == '-' || *s == '_';
		if (!ok)
			return false;
	}
	return true;
}

static int usage(void)
{
	fprintf(stderr,
	        "usage: worker_load --redis-port N --conninfo STR --auth-file FILE --jobs N --prefix ID\n"
	        "                   [--redis-host 127.0.0.1] [--queue bulk] [--service site] [--timeout 600]\n"
	        "  --auth-file   authorization ids (UUIDs), one per line\n"
	        "  --prefix      job id prefix, unique per run (letters, digits, '-', '_')\n"
	        "  --timeout     seconds to wait for every job to finish\n");
	return 2;
}

static bool parse_options(int argc, char **argv, options *o)
{
	static const struct option longopts[] = {
		{"redis-host", required_argument, NULL, 'h'}, {"redis-port", required_argument, NULL, 'p'},
		{"conninfo", required_argument, NULL, 'c'},   {"auth-file", required_argument, NULL, 'a'},
		{"prefix", required_argument, NULL, 'x'},     {"queue", required_argument, NULL, 'q'},
		{"service", required_argument, NULL, 's'},    {"jobs", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},    {NULL, 0, NULL, 0},
	};
	int c;

	*o = (options){.redis_host = "127.0.0.1", .queue = "bulk", .service = "site", .timeout_s = 600};
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': o->redis_host = optarg; break;
		case 'p':
			if (!parse_long(optarg, 1, 65535, &o->redis_port))
				return false;
			break;
		case 'c': o->conninfo = optarg; break;
		case 'a': o->auth_file = optarg; break;
		case 'x': o->prefix = optarg; break;
		case 'q': o->queue = optarg; break;
		case 's': o->service = optarg; break;
		case 'n':
			if (!parse_long(optarg, 1, LOAD_MAX_JOBS, &o->jobs))
				return false;
			break;
		case 't':
			if (!parse_long(optarg, 1, LOAD_MAX_TIMEOUT_S, &o->timeout_s))
				return false;
			break;
		default: return false;
		}
	}
	return optind == argc && o->redis_port > 0 && o->conninfo != NULL && o->auth_file != NULL &&
	       o->prefix != NULL && o->jobs > 0 && plain_name(o->prefix) && plain_name(o->queue) &&
	       plain_name(o->service);
}

/* Reads up to LOAD_MAX_AUTHS lines of 36-character UUIDs into AUTHS; returns the count, -1 on error. */
static int read_auths(const char *path, char (*auths)[37])
{
	FILE *f = fopen(path, "r");
	char line[128];
	int n = 0;

	if (f == NULL) {
		fprintf(stderr, "worker_load: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (n < LOAD_MAX_AUTHS && fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\r\n");
		if (len == 0)
			continue;
		if (len != 36) {
			fprintf(stderr, "worker_load: line %d of %s is not a UUID\n", n + 1, path);
			n = -1;
			break;
		}
		memcpy(auths[n], line, 36);
		auths[n][36] = '\0';
		n++;
	}
	fclose(f);
	return n;
}

/* Appends the enqueue of job I; returns false when hiredis cannot buffer it. */
static bool append_job(redisContext *rc, const options *o, const char (*auths)[37], int nauth, long i)
{
	char id[96], job[512], stream[96], result[128], marker[128];

	snprintf(id, sizeof(id), "%s-%ld", o->prefix, i);
	snprintf(job, sizeof(job),
	         "{\"id\":\"%s\",\"type\":\"apply\",\"authorization_id\":\"%s\",\"service_id\":\"%s\","
	         "\"on_conflict\":\"force\",\"params\":{\"ip\":\"192.0.2.%ld\",\"token\":\"t%ld\"}}",
	         id, auths[i % nauth], o->service, i % 250 + 1, i);
	snprintf(stream, sizeof(stream), "{dc}:queue:%s", o->queue);
	snprintf(result, sizeof(result), "{dc}:result:%s", id);
	snprintf(marker, sizeof(marker), "{dc}:enqueued:%s", id);
	const char *argv[] = {"EVAL", enqueue_script, "3", stream, result, marker, job, "86400"};
	return redisAppendCommandArgv(rc, 8, argv, NULL) == REDIS_OK;
}

/* Enqueues every job in batches; stores each entry's time in ms in ENQ_MS. */
static bool enqueue_all(redisContext *rc, const options *o, const char (*auths)[37], int nauth,
                        double *enq_ms)
{
	for (long start = 0; start < o->jobs; start += LOAD_BATCH) {
		long end = start + LOAD_BATCH < o->jobs ? start + LOAD_BATCH : o->jobs;
		for (long i = start; i < end; i++) {
			if (!append_job(rc, o, auths, nauth, i))
				return false;
		}
		for (long i = start; i < end; i++) {
			redisReply *r = NULL;
			if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL) {
				fprintf(stderr, "worker_load: Redis failed: %s\n", rc->errstr);
				return false;
			}
			bool added = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
			             r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1 &&
			             r->element[1]->type == REDIS_REPLY_STRING;
			if (!added) {
				fprintf(stderr, "worker_load: job %s-%ld was not added (reuse of a prefix?)\n",
				        o->prefix, i);
				freeReplyObject(r);
				return false;
			}
			enq_ms[i] = strtod(r->element[1]->str, NULL);
			freeReplyObject(r);
		}
	}
	return true;
}

/* Returns the number of finished jobs of the run, or -1 when the query fails. */
static long count_finished(PGconn *pg, const char *pattern)
{
	const char *params[] = {pattern};
	PGresult *res = PQexecParams(pg, "SELECT count(*) FROM dc_jobs WHERE id LIKE $1 AND finished_at IS NOT NULL",
	                             1, NULL, params, NULL, NULL, 0);
	long n = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	else
		fprintf(stderr, "worker_load: PostgreSQL query failed: %s", PQerrorMessage(pg));
	PQclear(res);
	return n;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Prints the most common states and errors of the jobs that did not succeed, to stderr. */
static void print_failures(PGconn *pg, const char *pattern)
{
	const char *params[] = {pattern};
	PGresult *res = PQexecParams(pg,
	                             "SELECT state, coalesce(last_http_status, 0), left(coalesce(last_error, result::text, ''), 200), "
	                             "count(*) FROM dc_jobs WHERE id LIKE $1 AND state <> 'succeeded' "
	                             "GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 3",
	                             1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int r = 0; r < PQntuples(res); r++)
			fprintf(stderr, "worker_load: %s jobs %s (HTTP %s): %s\n", PQgetvalue(res, r, 3),
			        PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
	}
	PQclear(res);
}

/* Reads finish times and states and prints the summary line. */
static bool report(PGconn *pg, const options *o, const char *pattern, const double *enq_ms)
{
	const char *params[] = {pattern};
	PGresult *res = PQexecParams(pg,
	                             "SELECT id, state, extract(epoch FROM finished_at) * 1000 FROM dc_jobs "
	                             "WHERE id LIKE $1 AND finished_at IS NOT NULL",
	                             1, NULL, params, NULL, NULL, 0);
	double *lat = NULL;
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "worker_load: PostgreSQL query failed: %s", PQerrorMessage(pg));
		goto out;
	}
	int rows = PQntuples(res);
	lat = calloc((size_t)rows + 1, sizeof(*lat));
	if (lat == NULL)
		goto out;
	size_t plen = strlen(o->prefix);
	double first = 0, last = 0;
	long not_ok = 0;
	int n = 0;
	for (int r = 0; r < rows; r++) {
		const char *id = PQgetvalue(res, r, 0);
		long i;
		if (strncmp(id, o->prefix, plen) != 0 || id[plen] != '-' ||
		    !parse_long(id + plen + 1, 0, o->jobs - 1, &i))
			continue;
		double fin = strtod(PQgetvalue(res, r, 2), NULL);
		if (strcmp(PQgetvalue(res, r, 1), "succeeded") != 0)
			not_ok++;
		lat[n++] = fin - enq_ms[i];
		if (n == 1 || fin > last)
			last = fin;
	}
	first = enq_ms[0];
	for (long i = 1; i < o->jobs; i++) {
		if (enq_ms[i] < first)
			first = enq_ms[i];
	}
	qsort(lat, (size_t)n, sizeof(*lat), compare_double);
	double span = (last - first) / 1000.0;
	double p50 = n > 0 ? lat[(size_t)((n - 1) * 0.50)] : 0;
	double p99 = n > 0 ? lat[(size_t)((n - 1) * 0.99)] : 0;
	double max = n > 0 ? lat[n - 1] : 0;
	printf("jobs=%d not_succeeded=%ld seconds=%.2f rate=%.0f/s p50=%.0fms p99=%.0fms max=%.0fms\n", n, not_ok,
	       span, span > 0 ? n / span : 0, p50, p99, max);
	ok = n == o->jobs;
	if (not_ok > 0)
		print_failures(pg, pattern);
out:
	free(lat);
	PQclear(res);
	return ok;
}

int main(int argc, char **argv)
{
	options o;
	char (*auths)[37] = NULL;
	double *enq_ms = NULL;
	redisContext *rc = NULL;
	PGconn *pg = NULL;
	int status = 1;

	if (!parse_options(argc, argv, &o))
		return usage();
	auths = calloc(LOAD_MAX_AUTHS, sizeof(*auths));
	enq_ms = calloc((size_t)o.jobs, sizeof(*enq_ms));
	if (auths == NULL || enq_ms == NULL)
		goto out;
	int nauth = read_auths(o.auth_file, auths);
	if (nauth <= 0) {
		fprintf(stderr, "worker_load: no authorization ids in %s\n", o.auth_file);
		goto out;
	}
	pg = PQconnectdb(o.conninfo);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "worker_load: cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
		goto out;
	}
	struct timeval tv = {10, 0};
	rc = redisConnectWithTimeout(o.redis_host, (int)o.redis_port, tv);
	if (rc == NULL || rc->err) {
		fprintf(stderr, "worker_load: cannot connect to Redis: %s\n", rc != NULL ? rc->errstr : "no memory");
		goto out;
	}

	double t0 = now_seconds();
	if (!enqueue_all(rc, &o, (const char (*)[37])auths, nauth, enq_ms))
		goto out;
	double t1 = now_seconds();
	fprintf(stderr, "worker_load: enqueued %ld jobs in %.2f s\n", o.jobs, t1 - t0);

	char pattern[96];
	snprintf(pattern, sizeof(pattern), "%s-%%", o.prefix);
	long done = 0;
	while (done < o.jobs) {
		if (now_seconds() - t0 > (double)o.timeout_s) {
			fprintf(stderr, "worker_load: timed out after %ld s with %ld of %ld jobs finished\n", o.timeout_s,
			        done, o.jobs);
			break;
		}
		struct timespec pause = {0, 100 * 1000 * 1000};
		nanosleep(&pause, NULL);
		done = count_finished(pg, pattern);
		if (done < 0)
			goto out;
	}
	status = report(pg, &o, pattern, enq_ms) ? 0 : 1;
out:
	if (rc != NULL)
		redisFree(rc);
	PQfinish(pg);
	free(enq_ms);
	free(auths);
	return status;
}
