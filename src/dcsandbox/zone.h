/*
 * The sandbox's zone engine: a DNS zone kept as a list of records, and the
 * rules a Domain Connect DNS provider follows when it applies a template to
 * it. Those rules cover variable substitution, host handling, groups, the
 * conflict rules of each record type, SPF merging, redirects and the "_dc"
 * provenance of the template instance that wrote a record.
 *
 * Nothing here touches the network or the HTTP server. zone_apply() never
 * changes the zone it reads: it returns the records it would add, the
 * records it would delete and the whole zone afterwards, so a caller can
 * report the deleted records as conflicts (HTTP 409) when force is not set
 * and store the final zone when it is.
 *
 * Names in a zone are relative to the zone's domain, lower case, with "@"
 * for the apex. Record JSON follows the compliance-vector format: "type",
 * "name", "data", "ttl" and, where the type has them, "priority", "weight",
 * "port", "protocol", "service", plus the optional "_dc" object.
 */
#ifndef DC_SANDBOX_ZONE_H
#define DC_SANDBOX_ZONE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Result of a zone call. Values are stable; zone_status_name names them. */
typedef enum zone_status {
	ZONE_OK = 0,
	ZONE_ERR_INVALID_DATA,      /* a record's content is invalid after substitution */
	ZONE_ERR_INVALID_TEMPLATE,  /* the template is malformed or cannot be applied */
	ZONE_ERR_MISSING_PARAMETER, /* a %variable% has no value */
	ZONE_ERR_HOST_REQUIRED,     /* the template has hostRequired and no host was given */
	ZONE_ERR_UNKNOWN_TYPE,      /* a record type that is neither known nor valid RR syntax */
	ZONE_ERR_INVALID_ZONE,      /* zone JSON that is not a list of valid records */
	ZONE_ERR_NOMEM,             /* an allocation failed */
	ZONE_STATUS_COUNT
} zone_status;

/*
 * Return the stable name of STATUS: "ok", "invalid_data", "invalid_template",
 * "missing_parameter", "host_required", "unknown_type", "invalid_zone",
 * "nomem". Never NULL.
 */
const char *zone_status_name(zone_status status);

#define ZONE_MESSAGE_MAX 512

/* Error detail filled by a failed call; owned by the caller. */
typedef struct zone_error {
	zone_status status;
	char message[ZONE_MESSAGE_MAX]; /* names the record and value at fault */
} zone_error;

/*
 * Provenance of a record written by a multi-aware apply (the "_dc" object).
 * Every string may be NULL when the object lacked that key.
 */
typedef struct zone_dc {
	char *id;          /* the template instance (instanceId or a random id) */
	char *provider_id; /* the template's providerId */
	char *service_id;  /* the template's serviceId */
	char *host;        /* the host the template was applied to; "" is the apex */
	char *essential;   /* "Always" or "OnApply" */
	json_t *extra;     /* the "_dc" object as read, so unknown keys survive; may be NULL */
} zone_dc;

/* One resource record. Strings are owned by the zone that contains the record. */
typedef struct zone_record {
	char *type; /* upper case: "A", "TXT", "CAA", "TYPE256", "REDIR301", ... */
	char *name; /* relative, lower case, "@" for the apex */
	char *data; /* address, target name, text, rules or redirect URL */
	bool has_ttl;      /* REDIR301/REDIR302 records carry no ttl */
	long ttl;          /* seconds */
	bool has_priority; /* MX and SRV */
	long priority;
	bool has_weight;   /* SRV */
	long weight;
	bool has_port;     /* SRV */
	long port;
	char *protocol; /* SRV: "tcp", "udp" or "tls" without the underscore; else NULL */
	char *service;  /* SRV; else NULL */
	bool has_dc;
	zone_dc dc;
} zone_record;

/* A zone: an ordered list of records. */
typedef struct zone zone;

/* Allocate an empty zone. Returns NULL when out of memory. */
zone *zone_new(void);

/* Free ZONE and every record in it. Accepts NULL. */
void zone_free(zone *zone);

/* Return the number of records in ZONE (0 for NULL). */
size_t zone_count(const zone *zone);

/* Return record INDEX of ZONE, or NULL when INDEX is out of range. */
const zone_record *zone_get(const zone *zone, size_t index);

/* Append a deep copy of RECORD to ZONE. Returns ZONE_OK or ZONE_ERR_NOMEM. */
zone_status zone_append(zone *zone, const zone_record *record);

/*
 * Parse ARRAY, a JSON array of records in the compliance format, into a new
 * zone stored in *OUT. Types are upper-cased, names lower-cased ("" becomes
 * "@"), and the data of A, AAAA, CNAME, MX, NS, SRV and APEXCNAME records is
 * lower-cased; TXT and other data keeps its case. A null ARRAY gives an
 * empty zone. Returns ZONE_ERR_INVALID_ZONE with ERR filled for anything
 * else that is not an array of records with string "type" and "name".
 */
zone_status zone_from_json(const json_t *array, zone **out, zone_error *err);

/*
 * Check that every record of RECORDS (as zone_from_json made them) is one
 * the zone engine could write to a zone of DOMAIN: a type with RR type
 * syntax other than SPFM; a valid relative owner name ("@" included) that
 * fits under DOMAIN; data valid for the type (an IPv4 or IPv6 address, a
 * host name or "@", an http or https URL, non-empty custom data); a TTL of
 * 0 to 2^31 - 1, required except on REDIR301/REDIR302; priority, weight,
 * port, protocol and service exactly where the type has them, in range.
 * A CNAME may not share its name with another record of RECORDS or of
 * EXISTING (which may be NULL; its own records are not checked). Conflicts
 * the apply rules resolve, such as an A where a template puts a CNAME, are
 * not checked. Returns ZONE_OK, or ZONE_ERR_INVALID_ZONE with ERR naming
 * the first bad record's index, the field, the value and the fix.
 */
zone_status zone_check_records(const zone *records, const zone *existing,
	const char *domain, zone_error *err);

/*
 * Return a new JSON array holding ZONE's records in the compliance format
 * (the caller owns the reference), or NULL when out of memory.
 */
json_t *zone_to_json(const zone *zone);

/* Return one record as a new JSON object, or NULL when out of memory. */
json_t *zone_record_to_json(const zone_record *record);

/* Inputs of one apply, beyond the zone and the template. */
typedef struct zone_apply_opts {
	const char *domain; /* the zone's domain; required, compared ignoring case */
	const char *host;   /* the host applied to: NULL (absent) or "" is the apex */
	const json_t *params; /* JSON object of variable name to string value; may be NULL */
	const char *const *group_ids; /* apply only records of these groups; NULL = all */
	size_t group_id_count;
	bool multi_aware;    /* record "_dc" provenance and remove earlier instances */
	const char *unique_id; /* "_dc.id" of this instance; NULL = random (zone_apply_template) */
	/* zone_process_records only; zone_apply_template takes these from the template: */
	bool multi_instance;
	const char *provider_id;
	const char *service_id;
	/*
	 * Records that back a REDIR301/REDIR302 (typically A and AAAA of the
	 * provider's redirect server; their "name" is ignored). NULL means this
	 * provider does not implement redirects, and a template that uses them
	 * fails with ZONE_ERR_INVALID_TEMPLATE.
	 */
	const zone *redirect_records;
} zone_apply_opts;

/* What an apply or revert would do. Free with zone_result_clear(). */
typedef struct zone_result {
	zone *added;   /* records to create */
	zone *deleted; /* records to remove: the conflicts when force is not set */
	zone *final;   /* the whole zone afterwards */
} zone_result;

/* Free the zones in RESULT and set them to NULL. Accepts NULL. */
void zone_result_clear(zone_result *result);

/*
 * Apply the record list RECORDS (a JSON array in template record format) to
 * ZONE as a DNS provider does, without changing ZONE. On ZONE_OK, RESULT
 * holds three new zones owned by the caller. On failure RESULT is left
 * empty and ERR says which record and value failed. OPTS->domain is
 * required; the provider, service and multi-instance fields are taken from
 * OPTS. A multi-aware call without unique_id records a NULL "_dc.id".
 */
zone_status zone_process_records(const zone *zone, const json_t *records,
	const zone_apply_opts *opts, zone_result *result, zone_error *err);

/*
 * Apply TEMPLATE (a whole template JSON object) to ZONE: check hostRequired,
 * take providerId, serviceId and multiInstance from the template, generate
 * a random "_dc.id" when OPTS->multi_aware is set without unique_id, then
 * run zone_process_records(). Signatures (syncPubKeyDomain) are not checked
 * here: the asynchronous API authenticates with a bearer token instead.
 * Same ownership and errors as zone_process_records().
 */
zone_status zone_apply_template(const zone *zone, const json_t *template,
	const zone_apply_opts *opts, zone_result *result, zone_error *err);

/*
 * Remove from ZONE every record whose "_dc" names PROVIDER_ID and
 * SERVICE_ID (ignoring case) and HOST (NULL or "" is the apex), and, when
 * INSTANCE_ID is not NULL, that instance only. RESULT->added is empty;
 * RESULT->deleted empty means the template was not applied there (HTTP 410).
 * Returns ZONE_OK or ZONE_ERR_NOMEM.
 */
zone_status zone_revert(const zone *zone, const char *provider_id,
	const char *service_id, const char *host, const char *instance_id,
	zone_result *result, zone_error *err);

#endif
