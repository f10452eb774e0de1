/*
 * Helpers shared by the zone engine's files: record copies, error filling,
 * variable substitution, name resolution and the syntax checks of names,
 * addresses and URLs. Not for use outside zone*.c.
 */
#ifndef DC_SANDBOX_ZONE_INTERNAL_H
#define DC_SANDBOX_ZONE_INTERNAL_H

#include "zone.h"

/* The longest DNS name in presentation form, without the final dot. */
#define ZONE_NAME_MAX 253
/* The longest DNS label. */
#define ZONE_LABEL_MAX 63
/* TTL used by an SPFM record that creates a new SPF record without a ttl. */
#define ZONE_SPF_DEFAULT_TTL 6000
/* The largest TTL DNS allows (RFC 2181: 2^31 - 1 seconds). */
#define ZONE_TTL_MAX 2147483647L
/* MX preference and SRV priority, weight and port are 16-bit fields. */
#define ZONE_U16_MAX 65535L

/*
 * Store STATUS and a formatted message in ERR (which may be NULL) and
 * return STATUS, so a caller can write `return zone_fail(err, ...)`.
 */
zone_status zone_fail(zone_error *err, zone_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Free the strings and JSON owned by RECORD and zero it. Accepts NULL. */
void zone_record_clear(zone_record *record);

/* Deep-copy SRC into DST (which is overwritten). Returns ZONE_OK or ZONE_ERR_NOMEM. */
zone_status zone_record_copy(zone_record *dst, const zone_record *src);

/*
 * Move RECORD into ZONE without copying its strings, and zero RECORD.
 * Returns ZONE_OK, or ZONE_ERR_NOMEM leaving RECORD untouched.
 */
zone_status zone_take(zone *zone, zone_record *record);

/* Return a copy of TEXT (NULL stays NULL); sets *FAILED when out of memory. */
char *zone_strdup(const char *text, bool *failed);

/* Lower-case TEXT in place (ASCII only, as DNS names compare). */
void zone_lower(char *text);

/* True when TYPE is one whose data is a name or an address, compared ignoring case. */
bool zone_type_data_is_name(const char *type);

/* True when NAME and PARENT are equal or NAME is below PARENT, ignoring case. */
bool zone_name_at_or_below(const char *name, const char *parent);

/* True when NAME is "@" or "", the apex of the zone. NULL counts as the apex. */
bool zone_name_is_apex(const char *name);

/* What substitution needs to know: the domain, the host and the variables. */
typedef struct zone_subst {
	const char *domain;   /* lower case */
	const char *host;     /* lower case, "" for the apex, never NULL */
	const json_t *params; /* object of string values; may be NULL */
} zone_subst;

/*
 * Replace every %name% in INPUT with its value: the built-ins %domain%,
 * %host% and %fqdn%, else PARAMS[name] (names compared case-sensitively).
 * Stores a new string in *OUT. FIELD names the template field in messages.
 * Fails with ZONE_ERR_INVALID_TEMPLATE on an unpaired '%' and with
 * ZONE_ERR_MISSING_PARAMETER on a name without a value.
 */
zone_status zone_substitute(const zone_subst *subst, const char *input,
	const char *field, char **out, zone_error *err);

/*
 * Substitute INPUT, a template "host" or "name", and make it relative to
 * the zone. "" or "@" becomes the applied host (or "@"). A name without a
 * final dot is placed under the applied host, and a fully qualified name
 * inside the domain loses the domain. The result is lower case. A fully qualified
 * name outside the domain keeps its final dot, which the syntax check then
 * rejects.
 */
zone_status zone_resolve_name(const zone_subst *subst, const char *input,
	const char *field, char **out, zone_error *err);

/*
 * Substitute INPUT, a "pointsTo" or "target"; a result of "@" becomes the
 * applied fully qualified name.
 */
zone_status zone_resolve_target(const zone_subst *subst, const char *input,
	const char *field, char **out, zone_error *err);

/*
 * Read an integer field of a template record: a JSON integer, a string of
 * decimal digits, or a string that is exactly one %variable% whose value is
 * decimal digits. Anything else, or a value outside MIN..MAX, fails with
 * ZONE_ERR_INVALID_DATA.
 */
zone_status zone_resolve_int(const zone_subst *subst, const json_t *value,
	const char *field, long min, long max, long *out, zone_error *err);

/*
 * True when NAME is a valid relative owner name: labels of 1 to 63 letters,
 * digits, '-' and '_' that neither start nor end with '-', a '*' allowed as
 * the first label only, and at most 253 characters. "@" and "" pass only
 * with ALLOW_APEX.
 */
bool zone_valid_owner(const char *name, bool allow_apex);

/* True when NAME, a record target, is a valid host name (one final dot allowed). */
bool zone_valid_target(const char *name);

/* True when TEXT is an IPv4 (FAMILY 4) or IPv6 (FAMILY 6) address. */
bool zone_valid_address(const char *text, int family);

/* True when TEXT is an absolute http or https URL with a valid host name. */
bool zone_valid_url(const char *text);

/* True when TYPE has RR type syntax: TYPE<digits>, or a letter or digit then letters, digits and '-'. */
bool zone_valid_type_syntax(const char *type);

/* A record of the zone being applied to, with the marks an apply sets. */
typedef struct zone_work_record {
	zone_record record;
	bool deleted;  /* removed by a conflict rule or a cascade */
	bool replaced; /* removed because the same template instance is applied again */
} zone_work_record;

/* The zone under change: a copy of the caller's records with their marks. */
typedef struct zone_work {
	zone_work_record *records;
	size_t count;
} zone_work;

/* How a TXT record treats the TXT records already at its name. */
typedef enum zone_txt_mode {
	ZONE_TXT_MATCH_NONE,   /* keep them all */
	ZONE_TXT_MATCH_ALL,    /* delete them all */
	ZONE_TXT_MATCH_PREFIX, /* delete those whose data starts with the prefix */
} zone_txt_mode;

/*
 * Mark the records of WORK that the new record FRESH (of template type
 * TEMPLATE_TYPE, already resolved) deletes under the conflict rules of its
 * type. TXT records use MODE and PREFIX. Records marked replaced are left
 * alone.
 */
void zone_mark_conflicts(zone_work *work, const char *template_type,
	const zone_record *fresh, zone_txt_mode mode, const char *prefix);

/*
 * Fail with ZONE_ERR_INVALID_DATA when FRESH cannot coexist with a record
 * the same template already produced in ADDED: a CNAME beside any record of
 * the same name, or an NS delegation with another type at or below it.
 */
zone_status zone_check_self_conflict(const zone *added, const zone_record *fresh,
	zone_error *err);

/*
 * Return the first of the first COUNT records of ZONE that cannot share
 * FRESH's name because one of the two is a CNAME, or NULL when none.
 */
const zone_record *zone_find_cname_clash(const zone *zone, size_t count,
	const zone_record *fresh);

/* Mark the NS records of WORK at or above FRESH's name, which FRESH would hide. */
void zone_mark_parent_delegations(zone_work *work, const zone_record *fresh);

/*
 * Mark, for every deleted record of an essential ("Always") template
 * instance, every other record of that instance, because the instance no
 * longer works without it.
 */
void zone_cascade_deletes(zone_work *work);

/* True when A and B have the same type, name and data (and MX/SRV fields); TTL and "_dc" are ignored. */
bool zone_records_equal(const zone_record *a, const zone_record *b);

#endif
