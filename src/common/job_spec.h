/*
 * Parsing and validation of a job as a web app enqueues it (the "job" field
 * of a stream entry). A job is a JSON object of at most JOB_SPEC_MAX_BYTES:
 *
 *   field             types                          notes
 *   id                all (optional)                 idempotency key, [A-Za-z0-9._:-]{1,128}
 *   type              all (required)                 discover, exchange_code, apply, refresh, revert
 *   authorization_id  apply, refresh, revert (req.)  UUID of a dc_authorizations row
 *   domain            discover, exchange_code (req.) a domain name; split into zone and host
 *   service_ids       discover                       template ids for the check and consent URL
 *   redirect_uri      discover, exchange_code (req.) http(s) URL; discover needs service_ids with it
 *   state             discover                       printable ASCII, echoed by the consent flow
 *   params            discover, apply, revert        object of template variable -> string
 *   dns_provider      exchange_code (required)       a [provider.NAME] of the config
 *   code              exchange_code (required)       authorization code (a secret)
 *   hosts             exchange_code                  consented hosts, "" for the apex
 *   service_id        apply, revert (required)       template id
 *   host              apply, revert                  host in the zone, "" or absent for the apex
 *   group_ids         apply, revert                  template group ids
 *   on_conflict       apply                          "fail" (default) or "force"
 *   max_attempts      all                            1..JOB_SPEC_MAX_ATTEMPTS_MAX
 *   not_before        all                            RFC 3339 time, at most
 *                                                    JOB_SPEC_NOT_BEFORE_MAX_DAYS ahead
 *
 * Errors carry a stable code in common_error.code: "too_large",
 * "invalid_json", "unknown_field", "missing_field" or "invalid_field", and a
 * message naming the field, the value (truncated and escaped; never the
 * code) and the fix.
 */
#ifndef DC_COMMON_JOB_SPEC_H
#define DC_COMMON_JOB_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common_error.h"

/* Largest job JSON accepted, in bytes. */
#define JOB_SPEC_MAX_BYTES 65536
#define JOB_SPEC_ID_MAX 128
#define JOB_SPEC_MAX_ATTEMPTS_MAX 100
#define JOB_SPEC_NOT_BEFORE_MAX_DAYS 365
/* Entries allowed in params, service_ids, hosts and group_ids. */
#define JOB_SPEC_LIST_MAX 100
/* Longest string value of any field or parameter, in bytes. */
#define JOB_SPEC_VALUE_MAX 2048

typedef enum job_type {
	JOB_TYPE_DISCOVER = 0,
	JOB_TYPE_EXCHANGE_CODE,
	JOB_TYPE_APPLY,
	JOB_TYPE_REFRESH,
	JOB_TYPE_REVERT,
	JOB_TYPE_COUNT
} job_type;

typedef enum job_on_conflict {
	JOB_ON_CONFLICT_FAIL = 0, /* end as "conflict" with the conflicting records */
	JOB_ON_CONFLICT_FORCE     /* retry once with force=1 */
} job_on_conflict;

/* One template variable. */
typedef struct job_param {
	char *name;
	char *value;
} job_param;

/* A validated job. Absent optional strings are NULL, absent lists empty. */
typedef struct job_spec {
	char *id;               /* NULL: the worker generates one */
	job_type type;
	char *authorization_id;
	char *domain;           /* normalized full name */
	char *zone;             /* registrable domain of domain */
	char *domain_host;      /* labels of domain in front of zone, "" at the apex */
	char **service_ids;
	size_t service_ids_count;
	char *redirect_uri;
	char *state;
	job_param *params;
	size_t params_count;
	char *dns_provider;
	char *code;             /* secret: wiped by job_spec_free */
	char **hosts;
	size_t hosts_count;
	char *service_id;
	char *host;             /* apply/revert target host, NULL for the apex */
	char **group_ids;
	size_t group_ids_count;
	job_on_conflict on_conflict;
	int max_attempts;       /* 0: the configured default */
	int64_t not_before_ms;  /* Unix time in ms, 0 when absent */
} job_spec;

/*
 * Parses and validates len bytes of job JSON. now_ms (Unix time in ms)
 * bounds not_before. On success *out is a new job_spec; on failure
 * err->code is one of the codes above.
 */
common_status job_spec_parse(const char *data, size_t len, int64_t now_ms, job_spec **out,
                             common_error *err);

/* Wipes the code and frees everything. Accepts NULL. */
void job_spec_free(job_spec *spec);

/*
 * Builds the job as a JSON object in the wire format, without the code
 * (for the dc_jobs.payload column and for logs). Returns NULL when out of
 * memory.
 */
json_t *job_spec_to_public_json(const job_spec *spec);

/* Returns the wire name of a type ("exchange_code"); never NULL. */
const char *job_type_name(job_type type);

/* Parses a wire type name. */
common_status job_type_parse(const char *name, job_type *type);

#endif /* DC_COMMON_JOB_SPEC_H */
