/*
 * Job JSON validation. The field table below states for each field its JSON
 * shape, the job types that accept it and the types that require it; the
 * checks run in table order so errors are deterministic.
 */
#include "job_spec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "domainconnect.h"

/* Characters of a field value quoted in error messages. */
#define QUOTE_CHARS 64

#define TYPE_BIT(t) (1u << (t))
#define ALL_TYPES (TYPE_BIT(JOB_TYPE_COUNT) - 1)
#define AUTH_TYPES (TYPE_BIT(JOB_TYPE_APPLY) | TYPE_BIT(JOB_TYPE_REFRESH) | TYPE_BIT(JOB_TYPE_REVERT))
#define APPLY_TYPES (TYPE_BIT(JOB_TYPE_APPLY) | TYPE_BIT(JOB_TYPE_REVERT))
#define DISCOVER (TYPE_BIT(JOB_TYPE_DISCOVER))
#define EXCHANGE (TYPE_BIT(JOB_TYPE_EXCHANGE_CODE))

typedef enum field_kind {
	KIND_TYPE,
	KIND_STRING,
	KIND_STRING_LIST,
	KIND_DOMAIN,
	KIND_PARAMS,
	KIND_ON_CONFLICT,
	KIND_MAX_ATTEMPTS,
	KIND_NOT_BEFORE,
} field_kind;

/* Returns NULL when value is valid, else the fix to print after the value. */
typedef const char *(*value_check)(const char *value);

typedef struct field_def {
	const char *name;
	field_kind kind;
	unsigned allowed;   /* TYPE_BIT mask of types that accept the field */
	unsigned required;  /* TYPE_BIT mask of types that require it */
	value_check check;  /* strings and list entries */
	bool secret;        /* never quote the value */
	size_t offset;      /* char * or char ** member of job_spec */
	size_t count_offset; /* size_t member for lists */
} field_def;

static const char *check_id(const char *v);
static const char *check_uuid(const char *v);
static const char *check_template_id(const char *v);
static const char *check_redirect_uri(const char *v);
static const char *check_state(const char *v);
static const char *check_provider_name(const char *v);
static const char *check_code(const char *v);
static const char *check_host(const char *v);

#define STR(member) offsetof(job_spec, member), 0
#define LIST(member) offsetof(job_spec, member), offsetof(job_spec, member##_count)
#define NONE 0, 0

static const field_def fields[] = {
	{"type", KIND_TYPE, ALL_TYPES, ALL_TYPES, NULL, false, NONE},
	{"id", KIND_STRING, ALL_TYPES, 0, check_id, false, STR(id)},
	{"authorization_id", KIND_STRING, AUTH_TYPES, AUTH_TYPES, check_uuid, false,
	 STR(authorization_id)},
	{"domain", KIND_DOMAIN, DISCOVER | EXCHANGE, DISCOVER | EXCHANGE, NULL, false, NONE},
	{"service_ids", KIND_STRING_LIST, DISCOVER, 0, check_template_id, false, LIST(service_ids)},
	{"redirect_uri", KIND_STRING, DISCOVER | EXCHANGE, EXCHANGE, check_redirect_uri, false,
	 STR(redirect_uri)},
	{"state", KIND_STRING, DISCOVER, 0, check_state, false, STR(state)},
	{"params", KIND_PARAMS, DISCOVER | APPLY_TYPES, 0, NULL, false, NONE},
	{"dns_provider", KIND_STRING, EXCHANGE, EXCHANGE, check_provider_name, false,
	 STR(dns_provider)},
	{"code", KIND_STRING, EXCHANGE, EXCHANGE, check_code, true, STR(code)},
	{"hosts", KIND_STRING_LIST, EXCHANGE, 0, check_host, false, LIST(hosts)},
	{"service_id", KIND_STRING, APPLY_TYPES, APPLY_TYPES, check_template_id, false,
	 STR(service_id)},
	{"host", KIND_STRING, APPLY_TYPES, 0, check_host, false, STR(host)},
	{"group_ids", KIND_STRING_LIST, APPLY_TYPES, 0, check_template_id, false, LIST(group_ids)},
	{"on_conflict", KIND_ON_CONFLICT, TYPE_BIT(JOB_TYPE_APPLY), 0, NULL, false, NONE},
	{"max_attempts", KIND_MAX_ATTEMPTS, ALL_TYPES, 0, NULL, false, NONE},
	{"not_before", KIND_NOT_BEFORE, ALL_TYPES, 0, NULL, false, NONE},
};

#define FIELDS_COUNT (sizeof(fields) / sizeof(fields[0]))

static const char *const type_names[JOB_TYPE_COUNT] = {
	[JOB_TYPE_DISCOVER] = "discover",
	[JOB_TYPE_EXCHANGE_CODE] = "exchange_code",
	[JOB_TYPE_APPLY] = "apply",
	[JOB_TYPE_REFRESH] = "refresh",
	[JOB_TYPE_REVERT] = "revert",
};

const char *job_type_name(job_type type)
{
	if ((unsigned)type >= JOB_TYPE_COUNT)
		return "unknown";
	return type_names[type];
}

common_status job_type_parse(const char *name, job_type *type)
{
	for (int i = 0; i < JOB_TYPE_COUNT; i++) {
		if (name != NULL && strcmp(name, type_names[i]) == 0) {
			*type = (job_type)i;
			return COMMON_OK;
		}
	}
	return COMMON_ERR_INVALID;
}

/* ---- Value checks --------------------------------------------------------- */

static bool only_chars(const char *v, const char *extra)
{
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (!isalnum(*p) && strchr(extra, *p) == NULL)
			return false;
	}
	return true;
}

static const char *check_id(const char *v)
{
	size_t len = strlen(v);
	if (len == 0 || len > JOB_SPEC_ID_MAX || !only_chars(v, "._:-"))
		return "use 1 to 128 of A-Z a-z 0-9 . _ : -";
	return NULL;
}

static const char *check_uuid(const char *v)
{
	static const char fix[] = "use the UUID of a stored authorization, e.g. "
	                          "0b6f7a52-3c1e-4d8a-9f20-6a1d2c3b4e5f";
	if (strlen(v) != 36)
		return fix;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? v[i] != '-' : !isxdigit((unsigned char)v[i]))
			return fix;
	}
	return NULL;
}

static const char *check_template_id(const char *v)
{
	size_t len = strlen(v);
	if (len == 0 || len > 64 || !only_chars(v, "._-"))
		return "use 1 to 64 of A-Z a-z 0-9 . _ -";
	return NULL;
}

static bool printable_ascii(const char *v, bool allow_space)
{
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p < (allow_space ? 0x20 : 0x21) || *p > 0x7e)
			return false;
	}
	return true;
}

static const char *check_redirect_uri(const char *v)
{
	if ((strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) ||
	    strlen(v) > JOB_SPEC_VALUE_MAX || !printable_ascii(v, false))
		return "use an absolute http or https URL without spaces, byte-identical to the one "
		       "registered with the DNS provider";
	return NULL;
}

static const char *check_state(const char *v)
{
	if (strlen(v) > 512 || !printable_ascii(v, true))
		return "use at most 512 printable ASCII characters (0x20 to 0x7E)";
	return NULL;
}

static const char *check_provider_name(const char *v)
{
	size_t len = strlen(v);
	if (len == 0 || len > 64 || !only_chars(v, "_-"))
		return "use the NAME of a [provider.NAME] section of the worker config";
	for (const char *p = v; *p != '\0'; p++) {
		if (isupper((unsigned char)*p))
			return "use the NAME of a [provider.NAME] section of the worker config "
			       "(lower case)";
	}
	return NULL;
}

static const char *check_code(const char *v)
{
	size_t len = strlen(v);
	if (len == 0 || len > JOB_SPEC_VALUE_MAX || !printable_ascii(v, false))
		return "send the code parameter of the redirect, unchanged";
	return NULL;
}

static const char *check_host(const char *v)
{
	static const char fix[] = "use \"\" for the apex or labels of 1 to 63 of A-Z a-z 0-9 _ - "
	                          "joined by dots, without the zone";
	size_t len = strlen(v);
	if (len > 253)
		return fix;
	size_t label = 0;
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return fix;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return fix;
		if (++label > 63)
			return fix;
	}
	if (len > 0 && label == 0)
		return fix;
	return NULL;
}

/* ---- Errors ---------------------------------------------------------------- */

/*
 * Fills err with "field NAME value "VALUE" PROBLEM; FIX". A secret value is
 * replaced by "(not shown)".
 */
static common_status invalid(common_error *err, const char *field_name, const char *value,
                             const char *problem, const char *fix, bool secret)
{
	char quoted[QUOTE_CHARS * 4 + 8];
	if (secret)
		snprintf(quoted, sizeof(quoted), "(not shown)");
	else
		common_quote(value, QUOTE_CHARS, quoted, sizeof(quoted));
	return common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
	                        "field \"%s\" value \"%s\" %s; %s", field_name, quoted, problem,
	                        fix);
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

static common_status wrong_type(common_error *err, const char *name, const json_t *v,
                                const char *expected)
{
	return common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
	                        "field \"%s\" must be %s, got %s", name, expected,
	                        json_type_name(v));
}

/* Writes the names of the fields type accepts, comma-separated, into buf. */
static void list_fields(job_type type, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < FIELDS_COUNT && used < size; i++) {
		if ((fields[i].allowed & TYPE_BIT(type)) == 0)
			continue;
		int n = snprintf(buf + used, size - used, "%s%s", used > 0 ? ", " : "", fields[i].name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* ---- Field parsers ------------------------------------------------------------ */

static common_status parse_string(const field_def *f, json_t *v, job_spec *spec,
                                  common_error *err)
{
	if (!json_is_string(v))
		return wrong_type(err, f->name, v, "a string");
	const char *s = json_string_value(v);
	if (strlen(s) > JOB_SPEC_VALUE_MAX)
		return invalid(err, f->name, s, "is too long",
		               "send at most 2048 bytes", f->secret);
	const char *fix = f->check(s);
	if (fix != NULL)
		return invalid(err, f->name, s, "is invalid", fix, f->secret);

	char *copy = strdup(s);
	if (copy == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory parsing a job");
	*(char **)((char *)spec + f->offset) = copy;
	return COMMON_OK;
}

static common_status parse_list(const field_def *f, json_t *v, job_spec *spec,
                                common_error *err)
{
	if (!json_is_array(v))
		return wrong_type(err, f->name, v, "an array of strings");
	size_t count = json_array_size(v);
	if (count > JOB_SPEC_LIST_MAX)
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
		                        "field \"%s\" has %zu entries; send at most %d", f->name, count,
		                        JOB_SPEC_LIST_MAX);
	if (count == 0 && strcmp(f->name, "hosts") != 0)
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
		                        "field \"%s\" is empty; send at least one entry or leave the "
		                        "field out",
		                        f->name);

	char **items = calloc(count + 1, sizeof(*items));
	if (items == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory parsing a job");
	*(char ***)((char *)spec + f->offset) = items;

	for (size_t i = 0; i < count; i++) {
		json_t *item = json_array_get(v, i);
		char name[64];
		snprintf(name, sizeof(name), "%s[%zu]", f->name, i);
		if (!json_is_string(item))
			return wrong_type(err, name, item, "a string");
		const char *s = json_string_value(item);
		const char *fix = f->check(s);
		if (fix != NULL)
			return invalid(err, name, s, "is invalid", fix, false);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(items[j], s) == 0)
				return invalid(err, name, s, "is a duplicate",
				               "send each entry once", false);
		}
		items[i] = strdup(s);
		if (items[i] == NULL)
			return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory parsing a job");
		*(size_t *)((char *)spec + f->count_offset) = i + 1;
	}
	return COMMON_OK;
}

static common_status parse_domain(json_t *v, job_spec *spec, common_error *err)
{
	if (!json_is_string(v))
		return wrong_type(err, "domain", v, "a string");
	const char *s = json_string_value(v);

	dc_error dcerr;
	memset(&dcerr, 0, sizeof(dcerr));
	char *zone = NULL;
	char *host = NULL;
	if (strlen(s) > 253 || dc_split_domain(s, &zone, &host, &dcerr) != DC_OK) {
		dc_error_clear(&dcerr);
		return invalid(err, "domain", s, "is not a domain name",
		               "send a name under a public suffix, such as shop.example.com", false);
	}
	spec->zone = zone;
	spec->domain_host = host;

	/* The normalized full name: host labels in front of the zone. */
	size_t size = strlen(zone) + strlen(host) + 2;
	spec->domain = malloc(size);
	if (spec->domain == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory parsing a job");
	snprintf(spec->domain, size, "%s%s%s", host, *host != '\0' ? "." : "", zone);
	return COMMON_OK;
}

static common_status parse_params(json_t *v, job_spec *spec, common_error *err)
{
	if (!json_is_object(v))
		return wrong_type(err, "params", v, "an object of name to string value");
	size_t count = json_object_size(v);
	if (count > JOB_SPEC_LIST_MAX)
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
		                        "field \"params\" has %zu entries; send at most %d", count,
		                        JOB_SPEC_LIST_MAX);
	spec->params = calloc(count + 1, sizeof(*spec->params));
	if (spec->params == NULL)
		return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory parsing a job");

	const char *name;
	json_t *value;
	json_object_foreach(v, name, value) {
		char quoted[QUOTE_CHARS * 4 + 8];
		dc_error dcerr;
		memset(&dcerr, 0, sizeof(dcerr));
		if (dc_check_param_name(name, &dcerr) != DC_OK) {
			common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
			                 "field \"params\" variable \"%s\" is not allowed: %s; rename the "
			                 "template variable",
			                 common_quote(name, QUOTE_CHARS, quoted, sizeof(quoted)),
			                 dcerr.message);
			dc_error_clear(&dcerr);
			return COMMON_ERR_INVALID;
		}
		if (!json_is_string(value)) {
			char label[128];
			snprintf(label, sizeof(label), "params.%s", name);
			return wrong_type(err, label, value, "a string");
		}
		if (json_string_length(value) > JOB_SPEC_VALUE_MAX)
			return common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
			                        "field \"params\" variable \"%s\" is over %d bytes; send a "
			                        "shorter value",
			                        name, JOB_SPEC_VALUE_MAX);

		job_param *p = &spec->params[spec->params_count];
		p->name = strdup(name);
		p->value = strdup(json_string_value(value));
		spec->params_count++;
		if (p->name == NULL || p->value == NULL)
			return common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory parsing a job");
	}
	return COMMON_OK;
}

/* Parses exactly n digits at *p into *out and advances *p. */
static bool take_digits(const char **p, int n, int *out)
{
	int value = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		value = value * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = value;
	return true;
}

static bool take_char(const char **p, const char *allowed)
{
	if (**p == '\0' || strchr(allowed, **p) == NULL)
		return false;
	(*p)++;
	return true;
}

/* Parses an RFC 3339 date-time into Unix time in ms. */
static bool parse_rfc3339(const char *s, int64_t *ms)
{
	const char *p = s;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int year, month, day, hour, minute, second;
	if (!take_digits(&p, 4, &year) || !take_char(&p, "-") || !take_digits(&p, 2, &month) ||
	    !take_char(&p, "-") || !take_digits(&p, 2, &day) || !take_char(&p, "Tt ") ||
	    !take_digits(&p, 2, &hour) || !take_char(&p, ":") || !take_digits(&p, 2, &minute) ||
	    !take_char(&p, ":") || !take_digits(&p, 2, &second))
		return false;
	if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
	    second > 60)
		return false;

	/* Fraction: keep milliseconds, ignore finer digits. */
	int millis = 0;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return false;
		int digits = 0;
		for (; isdigit((unsigned char)*p); p++) {
			if (digits < 3) {
				millis = millis * 10 + (*p - '0');
				digits++;
			}
		}
		for (; digits < 3; digits++)
			millis *= 10;
	}

	int offset_minutes = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		p++;
		int oh, om;
		if (!take_digits(&p, 2, &oh) || !take_char(&p, ":") || !take_digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return false;
		offset_minutes = sign * (oh * 60 + om);
	} else {
		return false;
	}
	if (*p != '\0')
		return false;

	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = minute;
	tm.tm_sec = second;
	time_t t = timegm(&tm);
	if (tm.tm_mday != day && second != 60)
		return false; /* timegm normalized an impossible date such as 02-30 */
	*ms = ((int64_t)t - (int64_t)offset_minutes * 60) * 1000 + millis;
	return true;
}

static common_status parse_special(const field_def *f, json_t *v, int64_t now_ms,
                                   job_spec *spec, common_error *err)
{
	switch (f->kind) {
	case KIND_ON_CONFLICT: {
		if (!json_is_string(v))
			return wrong_type(err, f->name, v, "a string");
		const char *s = json_string_value(v);
		if (strcmp(s, "fail") == 0)
			spec->on_conflict = JOB_ON_CONFLICT_FAIL;
		else if (strcmp(s, "force") == 0)
			spec->on_conflict = JOB_ON_CONFLICT_FORCE;
		else
			return invalid(err, f->name, s, "is invalid",
			               "use \"fail\" or \"force\"", false);
		return COMMON_OK;
	}
	case KIND_MAX_ATTEMPTS: {
		if (!json_is_integer(v))
			return wrong_type(err, f->name, v, "an integer");
		json_int_t n = json_integer_value(v);
		if (n < 1 || n > JOB_SPEC_MAX_ATTEMPTS_MAX)
			return common_error_set(err, COMMON_ERR_INVALID, "invalid_field",
			                        "field \"max_attempts\" value %lld is out of range; use an "
			                        "integer from 1 to %d",
			                        (long long)n, JOB_SPEC_MAX_ATTEMPTS_MAX);
		spec->max_attempts = (int)n;
		return COMMON_OK;
	}
	case KIND_NOT_BEFORE: {
		if (!json_is_string(v))
			return wrong_type(err, f->name, v, "an RFC 3339 time string");
		const char *s = json_string_value(v);
		int64_t ms = 0;
		if (!parse_rfc3339(s, &ms))
			return invalid(err, f->name, s, "is not an RFC 3339 time",
			               "use a time such as 2026-05-01T12:00:00Z", false);
		if (ms > now_ms + (int64_t)JOB_SPEC_NOT_BEFORE_MAX_DAYS * 86400 * 1000)
			return invalid(err, f->name, s, "is too far ahead",
			               "use a time at most 365 days from now", false);
		spec->not_before_ms = ms > 0 ? ms : 1;
		return COMMON_OK;
	}
	default:
		return common_error_set(err, COMMON_ERR_INTERNAL, "", "field kind %d unhandled",
		                        (int)f->kind);
	}
}

static common_status parse_field(const field_def *f, json_t *v, int64_t now_ms, job_spec *spec,
                                 common_error *err)
{
	switch (f->kind) {
	case KIND_TYPE:
		return COMMON_OK; /* parsed before the table walk */
	case KIND_STRING:
		return parse_string(f, v, spec, err);
	case KIND_STRING_LIST:
		return parse_list(f, v, spec, err);
	case KIND_DOMAIN:
		return parse_domain(v, spec, err);
	case KIND_PARAMS:
		return parse_params(v, spec, err);
	default:
		return parse_special(f, v, now_ms, spec, err);
	}
}

static const field_def *find_field(const char *name)
{
	for (size_t i = 0; i < FIELDS_COUNT; i++) {
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	}
	return NULL;
}

/* Parses "type" and rejects fields that are unknown or not valid for it. */
static common_status check_type_and_names(json_t *root, job_spec *spec, common_error *err)
{
	json_t *type = json_object_get(root, "type");
	if (type == NULL)
		return common_error_set(err, COMMON_ERR_INVALID, "missing_field",
		                        "missing field \"type\"; use one of discover, exchange_code, "
		                        "apply, refresh, revert");
	if (!json_is_string(type))
		return wrong_type(err, "type", type, "a string");
	if (job_type_parse(json_string_value(type), &spec->type) != COMMON_OK)
		return invalid(err, "type", json_string_value(type), "is not a job type",
		               "use one of discover, exchange_code, apply, refresh, revert", false);

	char valid[512];
	list_fields(spec->type, valid, sizeof(valid));
	const char *name;
	json_t *value;
	json_object_foreach(root, name, value) {
		const field_def *f = find_field(name);
		char quoted[QUOTE_CHARS * 4 + 8];
		common_quote(name, QUOTE_CHARS, quoted, sizeof(quoted));
		if (f == NULL)
			return common_error_set(err, COMMON_ERR_INVALID, "unknown_field",
			                        "unknown field \"%s\"; fields of type %s: %s", quoted,
			                        job_type_name(spec->type), valid);
		if ((f->allowed & TYPE_BIT(spec->type)) == 0)
			return common_error_set(err, COMMON_ERR_INVALID, "unknown_field",
			                        "field \"%s\" is not valid for type %s; fields of type %s: "
			                        "%s",
			                        quoted, job_type_name(spec->type), job_type_name(spec->type),
			                        valid);
	}
	return COMMON_OK;
}

/* Wipes the code inside the parsed tree before jansson frees it. */
static void wipe_code(json_t *root)
{
	json_t *code = json_object_get(root, "code");
	if (json_is_string(code))
		OPENSSL_cleanse((char *)json_string_value(code), json_string_length(code));
}

common_status job_spec_parse(const char *data, size_t len, int64_t now_ms, job_spec **out,
                             common_error *err)
{
	*out = NULL;
	if (len > JOB_SPEC_MAX_BYTES)
		return common_error_set(err, COMMON_ERR_INVALID, "too_large",
		                        "job is %zu bytes, over the limit of %d bytes; send fewer or "
		                        "shorter params",
		                        len, JOB_SPEC_MAX_BYTES);

	json_error_t jerr;
	json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return common_error_set(err, COMMON_ERR_INVALID, "invalid_json",
		                        "job is not valid JSON: %s at line %d column %d; send one JSON "
		                        "object",
		                        jerr.text, jerr.line, jerr.column);

	common_status status = COMMON_OK;
	job_spec *spec = calloc(1, sizeof(*spec));
	if (spec == NULL) {
		status = common_error_set(err, COMMON_ERR_NOMEM, "", "out of memory parsing a job");
		goto out;
	}
	if (!json_is_object(root)) {
		status = common_error_set(err, COMMON_ERR_INVALID, "invalid_json",
		                          "job is %s, not a JSON object; send one object such as "
		                          "{\"type\":\"refresh\",...}",
		                          json_type_name(root));
		goto out;
	}

	status = check_type_and_names(root, spec, err);
	if (status != COMMON_OK)
		goto out;

	for (size_t i = 0; i < FIELDS_COUNT; i++) {
		const field_def *f = &fields[i];
		json_t *v = json_object_get(root, f->name);
		if (v == NULL) {
			if ((f->required & TYPE_BIT(spec->type)) != 0) {
				status = common_error_set(err, COMMON_ERR_INVALID, "missing_field",
				                          "missing field \"%s\", required for type %s",
				                          f->name, job_type_name(spec->type));
				goto out;
			}
			continue;
		}
		status = parse_field(f, v, now_ms, spec, err);
		if (status != COMMON_OK)
			goto out;
	}

	/* A consent URL needs a scope, so redirect_uri without service_ids is useless. */
	if (spec->type == JOB_TYPE_DISCOVER && spec->redirect_uri != NULL &&
	    spec->service_ids_count == 0) {
		status = common_error_set(err, COMMON_ERR_INVALID, "missing_field",
		                          "missing field \"service_ids\", required with redirect_uri to "
		                          "build the consent URL");
		goto out;
	}

out:
	wipe_code(root);
	json_decref(root);
	if (status != COMMON_OK) {
		job_spec_free(spec);
		return status;
	}
	*out = spec;
	return COMMON_OK;
}

static void free_list(char **items, size_t count)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free(items[i]);
	free(items);
}

void job_spec_free(job_spec *spec)
{
	if (spec == NULL)
		return;
	if (spec->code != NULL) {
		OPENSSL_cleanse(spec->code, strlen(spec->code));
		free(spec->code);
	}
	free(spec->id);
	free(spec->authorization_id);
	free(spec->domain);
	free(spec->zone);
	free(spec->domain_host);
	free_list(spec->service_ids, spec->service_ids_count);
	free(spec->redirect_uri);
	free(spec->state);
	for (size_t i = 0; i < spec->params_count; i++) {
		free(spec->params[i].name);
		free(spec->params[i].value);
	}
	free(spec->params);
	free(spec->dns_provider);
	free_list(spec->hosts, spec->hosts_count);
	free(spec->service_id);
	free(spec->host);
	free_list(spec->group_ids, spec->group_ids_count);
	free(spec);
}

static void set_list(json_t *obj, const char *key, char **items, size_t count)
{
	if (items == NULL)
		return;
	json_t *array = json_array();
	for (size_t i = 0; i < count; i++)
		json_array_append_new(array, json_string(items[i]));
	json_object_set_new(obj, key, array);
}

static void set_string(json_t *obj, const char *key, const char *value)
{
	if (value != NULL)
		json_object_set_new(obj, key, json_string(value));
}

json_t *job_spec_to_public_json(const job_spec *spec)
{
	json_t *obj = json_object();
	if (obj == NULL)
		return NULL;

	set_string(obj, "id", spec->id);
	set_string(obj, "type", job_type_name(spec->type));
	set_string(obj, "authorization_id", spec->authorization_id);
	set_string(obj, "domain", spec->domain);
	set_list(obj, "service_ids", spec->service_ids, spec->service_ids_count);
	set_string(obj, "redirect_uri", spec->redirect_uri);
	set_string(obj, "state", spec->state);
	if (spec->params != NULL) {
		json_t *params = json_object();
		for (size_t i = 0; i < spec->params_count; i++)
			json_object_set_new(params, spec->params[i].name, json_string(spec->params[i].value));
		json_object_set_new(obj, "params", params);
	}
	set_string(obj, "dns_provider", spec->dns_provider);
	set_list(obj, "hosts", spec->hosts, spec->hosts_count);
	set_string(obj, "service_id", spec->service_id);
	set_string(obj, "host", spec->host);
	set_list(obj, "group_ids", spec->group_ids, spec->group_ids_count);
	if (spec->type == JOB_TYPE_APPLY)
		set_string(obj, "on_conflict",
		           spec->on_conflict == JOB_ON_CONFLICT_FORCE ? "force" : "fail");
	if (spec->max_attempts > 0)
		json_object_set_new(obj, "max_attempts", json_integer(spec->max_attempts));
	if (spec->not_before_ms > 0) {
		char when[40];
		time_t seconds = (time_t)(spec->not_before_ms / 1000);
		struct tm tm;
		gmtime_r(&seconds, &tm);
		size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(spec->not_before_ms % 1000));
		json_object_set_new(obj, "not_before", json_string(when));
	}
	return obj;
}
