/*
 * Zones and records: storage, copies, the compliance JSON format, and
 * revert. The apply rules live in zone_apply.c, substitution and syntax
 * checks in zone_names.c.
 */
#include "zone_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct zone {
	zone_record *records;
	size_t count;
	size_t capacity;
};

static const char *const status_names[ZONE_STATUS_COUNT] = {
	[ZONE_OK] = "ok",
	[ZONE_ERR_INVALID_DATA] = "invalid_data",
	[ZONE_ERR_INVALID_TEMPLATE] = "invalid_template",
	[ZONE_ERR_MISSING_PARAMETER] = "missing_parameter",
	[ZONE_ERR_HOST_REQUIRED] = "host_required",
	[ZONE_ERR_UNKNOWN_TYPE] = "unknown_type",
	[ZONE_ERR_INVALID_ZONE] = "invalid_zone",
	[ZONE_ERR_NOMEM] = "nomem",
};

const char *zone_status_name(zone_status status)
{
	if ((unsigned)status >= ZONE_STATUS_COUNT)
		return "unknown";
	return status_names[status];
}

zone_status zone_fail(zone_error *err, zone_status status, const char *fmt, ...)
{
	if (err == NULL)
		return status;

	err->status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);

	/* Template values end up here; keep control bytes out of log lines. */
	for (char *p = err->message; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return status;
}

char *zone_strdup(const char *text, bool *failed)
{
	if (text == NULL)
		return NULL;
	char *copy = strdup(text);
	if (copy == NULL)
		*failed = true;
	return copy;
}

void zone_lower(char *text)
{
	for (; text != NULL && *text != '\0'; text++)
		*text = (char)tolower((unsigned char)*text);
}

bool zone_type_data_is_name(const char *type)
{
	static const char *const name_types[] = {
		"A", "AAAA", "CNAME", "MX", "NS", "SRV", "APEXCNAME",
	};
	for (size_t i = 0; i < sizeof(name_types) / sizeof(name_types[0]); i++) {
		if (strcasecmp(type, name_types[i]) == 0)
			return true;
	}
	return false;
}

bool zone_name_is_apex(const char *name)
{
	return name == NULL || name[0] == '\0' || strcmp(name, "@") == 0;
}

bool zone_name_at_or_below(const char *name, const char *parent)
{
	if (strcasecmp(name, parent) == 0)
		return true;

	size_t name_len = strlen(name);
	size_t parent_len = strlen(parent);
	if (name_len <= parent_len + 1)
		return false;
	const char *tail = name + name_len - parent_len;
	return tail[-1] == '.' && strcasecmp(tail, parent) == 0;
}

void zone_record_clear(zone_record *record)
{
	if (record == NULL)
		return;
	free(record->type);
	free(record->name);
	free(record->data);
	free(record->protocol);
	free(record->service);
	free(record->dc.id);
	free(record->dc.provider_id);
	free(record->dc.service_id);
	free(record->dc.host);
	free(record->dc.essential);
	json_decref(record->dc.extra);
	memset(record, 0, sizeof(*record));
}

zone_status zone_record_copy(zone_record *dst, const zone_record *src)
{
	bool failed = false;

	*dst = *src;
	dst->type = zone_strdup(src->type, &failed);
	dst->name = zone_strdup(src->name, &failed);
	dst->data = zone_strdup(src->data, &failed);
	dst->protocol = zone_strdup(src->protocol, &failed);
	dst->service = zone_strdup(src->service, &failed);
	dst->dc.id = zone_strdup(src->dc.id, &failed);
	dst->dc.provider_id = zone_strdup(src->dc.provider_id, &failed);
	dst->dc.service_id = zone_strdup(src->dc.service_id, &failed);
	dst->dc.host = zone_strdup(src->dc.host, &failed);
	dst->dc.essential = zone_strdup(src->dc.essential, &failed);
	dst->dc.extra = NULL;
	if (src->dc.extra != NULL) {
		dst->dc.extra = json_deep_copy(src->dc.extra);
		if (dst->dc.extra == NULL)
			failed = true;
	}

	if (failed) {
		zone_record_clear(dst);
		return ZONE_ERR_NOMEM;
	}
	return ZONE_OK;
}

zone *zone_new(void)
{
	return calloc(1, sizeof(zone));
}

void zone_free(zone *z)
{
	if (z == NULL)
		return;
	for (size_t i = 0; i < z->count; i++)
		zone_record_clear(&z->records[i]);
	free(z->records);
	free(z);
}

size_t zone_count(const zone *z)
{
	return z == NULL ? 0 : z->count;
}

const zone_record *zone_get(const zone *z, size_t index)
{
	if (z == NULL || index >= z->count)
		return NULL;
	return &z->records[index];
}

static zone_status zone_reserve(zone *z)
{
	if (z->count < z->capacity)
		return ZONE_OK;

	size_t capacity = z->capacity == 0 ? 8 : z->capacity * 2;
	if (capacity > SIZE_MAX / sizeof(zone_record))
		return ZONE_ERR_NOMEM;
	zone_record *records = realloc(z->records, capacity * sizeof(zone_record));
	if (records == NULL)
		return ZONE_ERR_NOMEM;
	z->records = records;
	z->capacity = capacity;
	return ZONE_OK;
}

zone_status zone_take(zone *z, zone_record *record)
{
	if (zone_reserve(z) != ZONE_OK)
		return ZONE_ERR_NOMEM;
	z->records[z->count++] = *record;
	memset(record, 0, sizeof(*record));
	return ZONE_OK;
}

zone_status zone_append(zone *z, const zone_record *record)
{
	zone_record copy;
	if (zone_record_copy(&copy, record) != ZONE_OK)
		return ZONE_ERR_NOMEM;
	if (zone_take(z, &copy) != ZONE_OK) {
		zone_record_clear(&copy);
		return ZONE_ERR_NOMEM;
	}
	return ZONE_OK;
}

void zone_result_clear(zone_result *result)
{
	if (result == NULL)
		return;
	zone_free(result->added);
	zone_free(result->deleted);
	zone_free(result->final);
	result->added = NULL;
	result->deleted = NULL;
	result->final = NULL;
}

/*
 * Read an optional integer KEY of a zone record: a JSON integer or a string
 * of decimal digits. Sets *PRESENT when the key exists.
 */
static zone_status read_zone_int(const json_t *object, const char *key, size_t index,
	bool *present, long *out, zone_error *err)
{
	const json_t *value = json_object_get(object, key);
	*present = false;
	if (value == NULL || json_is_null(value))
		return ZONE_OK;

	if (json_is_integer(value)) {
		json_int_t number = json_integer_value(value);
		if (number < 0 || number > INT_MAX)
			goto invalid;
		*out = (long)number;
		*present = true;
		return ZONE_OK;
	}
	if (json_is_string(value)) {
		const char *text = json_string_value(value);
		char *end = NULL;
		if (!isdigit((unsigned char)text[0]))
			goto invalid;
		errno = 0;
		long number = strtol(text, &end, 10);
		if (errno != 0 || *end != '\0' || number > INT_MAX)
			goto invalid;
		*out = number;
		*present = true;
		return ZONE_OK;
	}

invalid:
	return zone_fail(err, ZONE_ERR_INVALID_ZONE,
		"zone record %zu: \"%s\" is not an integer from 0 to %d", index, key, INT_MAX);
}

/* Copy the optional string KEY of OBJECT; a non-string value is an error. */
static zone_status read_zone_string(const json_t *object, const char *key, size_t index,
	char **out, zone_error *err)
{
	const json_t *value = json_object_get(object, key);
	*out = NULL;
	if (value == NULL || json_is_null(value))
		return ZONE_OK;
	if (!json_is_string(value))
		return zone_fail(err, ZONE_ERR_INVALID_ZONE,
			"zone record %zu: \"%s\" is not a string", index, key);

	*out = strdup(json_string_value(value));
	if (*out == NULL)
		return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
	return ZONE_OK;
}

static zone_status read_zone_dc(const json_t *object, size_t index, zone_record *record,
	zone_error *err)
{
	const json_t *dc = json_object_get(object, "_dc");
	if (dc == NULL || json_is_null(dc))
		return ZONE_OK;
	if (!json_is_object(dc))
		return zone_fail(err, ZONE_ERR_INVALID_ZONE,
			"zone record %zu: \"_dc\" is not an object", index);

	record->has_dc = true;
	record->dc.extra = json_deep_copy(dc);
	if (record->dc.extra == NULL)
		return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");

	zone_status status = read_zone_string(dc, "id", index, &record->dc.id, err);
	if (status == ZONE_OK)
		status = read_zone_string(dc, "providerId", index, &record->dc.provider_id, err);
	if (status == ZONE_OK)
		status = read_zone_string(dc, "serviceId", index, &record->dc.service_id, err);
	if (status == ZONE_OK)
		status = read_zone_string(dc, "host", index, &record->dc.host, err);
	if (status == ZONE_OK)
		status = read_zone_string(dc, "essential", index, &record->dc.essential, err);
	return status;
}

/* Parse one zone record and normalise its case (see zone_from_json). */
static zone_status read_zone_record(const json_t *object, size_t index, zone_record *record,
	zone_error *err)
{
	memset(record, 0, sizeof(*record));
	if (!json_is_object(object))
		return zone_fail(err, ZONE_ERR_INVALID_ZONE, "zone record %zu is not an object", index);

	zone_status status = read_zone_string(object, "type", index, &record->type, err);
	if (status == ZONE_OK)
		status = read_zone_string(object, "name", index, &record->name, err);
	if (status == ZONE_OK)
		status = read_zone_string(object, "data", index, &record->data, err);
	if (status == ZONE_OK)
		status = read_zone_string(object, "protocol", index, &record->protocol, err);
	if (status == ZONE_OK)
		status = read_zone_string(object, "service", index, &record->service, err);
	if (status == ZONE_OK)
		status = read_zone_int(object, "ttl", index, &record->has_ttl, &record->ttl, err);
	if (status == ZONE_OK)
		status = read_zone_int(object, "priority", index, &record->has_priority,
			&record->priority, err);
	if (status == ZONE_OK)
		status = read_zone_int(object, "weight", index, &record->has_weight,
			&record->weight, err);
	if (status == ZONE_OK)
		status = read_zone_int(object, "port", index, &record->has_port, &record->port, err);
	if (status == ZONE_OK)
		status = read_zone_dc(object, index, record, err);
	if (status != ZONE_OK)
		return status;

	if (record->type == NULL || record->type[0] == '\0' || record->name == NULL)
		return zone_fail(err, ZONE_ERR_INVALID_ZONE,
			"zone record %zu: missing \"type\" or \"name\"", index);
	if (record->data == NULL) {
		record->data = strdup("");
		if (record->data == NULL)
			return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
	}

	for (char *p = record->type; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	zone_lower(record->name);
	if (record->name[0] == '\0') {
		free(record->name);
		record->name = strdup("@");
		if (record->name == NULL)
			return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
	}
	if (zone_type_data_is_name(record->type))
		zone_lower(record->data);
	return ZONE_OK;
}

zone_status zone_from_json(const json_t *array, zone **out, zone_error *err)
{
	*out = NULL;
	if (array != NULL && !json_is_null(array) && !json_is_array(array))
		return zone_fail(err, ZONE_ERR_INVALID_ZONE, "zone records are not a JSON array");

	zone *parsed = zone_new();
	if (parsed == NULL)
		return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");

	zone_status status = ZONE_OK;
	size_t index;
	const json_t *item;
	json_array_foreach(array, index, item) {
		zone_record record;
		status = read_zone_record(item, index, &record, err);
		if (status == ZONE_OK && zone_take(parsed, &record) != ZONE_OK)
			status = zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
		zone_record_clear(&record);
		if (status != ZONE_OK)
			goto out;
	}

	*out = parsed;
	parsed = NULL;
out:
	zone_free(parsed);
	return status;
}

/* Set KEY of OBJECT to TEXT, or to JSON null when TEXT is NULL. */
static int set_string_or_null(json_t *object, const char *key, const char *text)
{
	json_t *value = text != NULL ? json_string(text) : json_null();
	return json_object_set_new(object, key, value);
}

static json_t *dc_to_json(const zone_dc *dc)
{
	json_t *object = dc->extra != NULL ? json_deep_copy(dc->extra) : json_object();
	if (object == NULL)
		return NULL;

	/* The five known keys are rewritten, and a copied object keeps any other key. */
	const struct {
		const char *key;
		const char *value;
	} fields[] = {
		{ "id", dc->id },
		{ "providerId", dc->provider_id },
		{ "serviceId", dc->service_id },
		{ "host", dc->host },
		{ "essential", dc->essential },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (dc->extra != NULL && fields[i].value == NULL)
			continue;
		if (set_string_or_null(object, fields[i].key, fields[i].value) != 0) {
			json_decref(object);
			return NULL;
		}
	}
	return object;
}

json_t *zone_record_to_json(const zone_record *record)
{
	json_t *object = json_object();
	if (object == NULL)
		return NULL;

	int failed = 0;
	failed |= json_object_set_new(object, "type", json_string(record->type));
	failed |= json_object_set_new(object, "name", json_string(record->name));
	failed |= json_object_set_new(object, "data", json_string(record->data));
	if (record->has_ttl)
		failed |= json_object_set_new(object, "ttl", json_integer(record->ttl));
	if (record->has_priority)
		failed |= json_object_set_new(object, "priority", json_integer(record->priority));
	if (record->has_weight)
		failed |= json_object_set_new(object, "weight", json_integer(record->weight));
	if (record->has_port)
		failed |= json_object_set_new(object, "port", json_integer(record->port));
	if (record->protocol != NULL)
		failed |= json_object_set_new(object, "protocol", json_string(record->protocol));
	if (record->service != NULL)
		failed |= json_object_set_new(object, "service", json_string(record->service));
	if (record->has_dc)
		failed |= json_object_set_new(object, "_dc", dc_to_json(&record->dc));

	if (failed) {
		json_decref(object);
		return NULL;
	}
	return object;
}

json_t *zone_to_json(const zone *z)
{
	json_t *array = json_array();
	if (array == NULL)
		return NULL;

	for (size_t i = 0; i < zone_count(z); i++) {
		if (json_array_append_new(array, zone_record_to_json(&z->records[i])) != 0) {
			json_decref(array);
			return NULL;
		}
	}
	return array;
}

/* True when RECORD was written by the template instance that a revert names. */
static bool record_matches_instance(const zone_record *record, const char *provider_id,
	const char *service_id, const char *host, const char *instance_id)
{
	const zone_dc *dc = &record->dc;

	if (!record->has_dc || dc->provider_id == NULL || dc->service_id == NULL)
		return false;
	if (strcasecmp(dc->provider_id, provider_id) != 0 ||
	    strcasecmp(dc->service_id, service_id) != 0)
		return false;

	bool same_host = zone_name_is_apex(host) ? zone_name_is_apex(dc->host)
		: dc->host != NULL && strcasecmp(dc->host, host) == 0;
	if (!same_host)
		return false;

	return instance_id == NULL || (dc->id != NULL && strcmp(dc->id, instance_id) == 0);
}

zone_status zone_revert(const zone *z, const char *provider_id,
	const char *service_id, const char *host, const char *instance_id,
	zone_result *result, zone_error *err)
{
	memset(result, 0, sizeof(*result));
	if (provider_id == NULL || service_id == NULL)
		return zone_fail(err, ZONE_ERR_INVALID_TEMPLATE, "revert needs a provider id and a service id");

	result->added = zone_new();
	result->deleted = zone_new();
	result->final = zone_new();
	if (result->added == NULL || result->deleted == NULL || result->final == NULL)
		goto nomem;

	for (size_t i = 0; i < zone_count(z); i++) {
		const zone_record *record = &z->records[i];
		struct zone *target = record_matches_instance(record, provider_id, service_id,
			host, instance_id) ? result->deleted : result->final;
		if (zone_append(target, record) != ZONE_OK)
			goto nomem;
	}
	return ZONE_OK;

nomem:
	zone_result_clear(result);
	return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
}
