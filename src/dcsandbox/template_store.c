/*
 * Loading, checking and looking up Domain Connect templates. The rules
 * follow the template JSON schema and the protocol's syntax for ids and
 * variable names.
 */
#include "template_store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Maximum length of providerName and serviceName (dc-display-name). */
#define TSTORE_DISPLAY_NAME_MAX 255
/* Maximum length of a dc-id: providerId, serviceId, groupId. */
#define TSTORE_ID_MAX 63

struct tstore {
	tstore_template *templates;
	size_t count;
	size_t capacity;
	tstore_rejection *rejections;
	size_t rejection_count;
	size_t rejection_capacity;
};

static const char *const status_names[TSTORE_STATUS_COUNT] = {
	[TSTORE_OK] = "ok",
	[TSTORE_ERR_IO] = "io",
	[TSTORE_ERR_INVALID] = "invalid",
	[TSTORE_ERR_DUPLICATE] = "duplicate",
	[TSTORE_ERR_NOMEM] = "nomem",
};

const char *tstore_status_name(tstore_status status)
{
	if ((unsigned)status >= TSTORE_STATUS_COUNT)
		return "unknown";
	return status_names[status];
}

static tstore_status fail(tstore_error *err, tstore_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static tstore_status fail(tstore_error *err, tstore_status status, const char *fmt, ...)
{
	if (err == NULL)
		return status;

	err->status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	for (char *p = err->message; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return status;
}

/* True when TEXT matches dc-id: 1 to 63 characters of A-Z a-z 0-9 . _ - */
static bool valid_dc_id(const char *text)
{
	size_t length = strlen(text);
	if (length == 0 || length > TSTORE_ID_MAX)
		return false;
	for (size_t i = 0; i < length; i++) {
		unsigned char c = (unsigned char)text[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

/* Check a required dc-id or display-name string field of the template. */
static tstore_status check_name_field(const json_t *template, const char *key, bool is_id,
	tstore_error *err)
{
	const json_t *value = json_object_get(template, key);
	if (value == NULL)
		return fail(err, TSTORE_ERR_INVALID, "missing \"%s\"", key);
	if (!json_is_string(value))
		return fail(err, TSTORE_ERR_INVALID, "\"%s\" is not a string", key);

	const char *text = json_string_value(value);
	if (is_id && !valid_dc_id(text))
		return fail(err, TSTORE_ERR_INVALID,
			"%s \"%s\" is not 1 to 63 letters, digits, '.', '_' or '-'", key, text);
	size_t length = json_string_length(value);
	if (!is_id && (length == 0 || length > TSTORE_DISPLAY_NAME_MAX))
		return fail(err, TSTORE_ERR_INVALID, "%s must have 1 to %d characters", key,
			TSTORE_DISPLAY_NAME_MAX);
	return TSTORE_OK;
}

/* Check the optional top-level fields' JSON types. */
static tstore_status check_optional_fields(const json_t *template, tstore_error *err)
{
	static const char *const booleans[] = {
		"syncBlock", "shared", "sharedProviderName", "sharedServiceName",
		"multiInstance", "warnPhishing", "hostRequired",
	};
	static const char *const strings[] = {
		"logoUrl", "description", "variableDescription",
		"syncRedirectDomain", "syncPubKeyDomain",
	};

	for (size_t i = 0; i < sizeof(booleans) / sizeof(booleans[0]); i++) {
		const json_t *value = json_object_get(template, booleans[i]);
		if (value != NULL && !json_is_boolean(value))
			return fail(err, TSTORE_ERR_INVALID, "\"%s\" is not true or false", booleans[i]);
	}
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		const json_t *value = json_object_get(template, strings[i]);
		if (value != NULL && !json_is_string(value))
			return fail(err, TSTORE_ERR_INVALID, "\"%s\" is not a string", strings[i]);
	}
	const json_t *version = json_object_get(template, "version");
	if (version != NULL && !json_is_integer(version))
		return fail(err, TSTORE_ERR_INVALID, "\"version\" is not an integer");
	return TSTORE_OK;
}

/* True when every '%' in TEXT pairs up and each name between is 1*(ALPHA / DIGIT / "-" / "_"). */
static bool valid_variables(const char *text, const char **bad_name_start)
{
	const char *cursor = text;
	for (;;) {
		const char *open = strchr(cursor, '%');
		if (open == NULL)
			return true;
		const char *close = strchr(open + 1, '%');
		*bad_name_start = open;
		if (close == NULL || close == open + 1)
			return false;
		for (const char *p = open + 1; p < close; p++) {
			unsigned char c = (unsigned char)*p;
			if (!isalnum(c) && c != '-' && c != '_')
				return false;
		}
		cursor = close + 1;
	}
}

/* Record fields each type requires, after the schema. */
static const struct {
	const char *type;
	const char *required[9];
} required_fields[] = {
	{ "A", { "host", "pointsTo", "ttl" } },
	{ "AAAA", { "host", "pointsTo", "ttl" } },
	{ "CNAME", { "host", "pointsTo", "ttl" } },
	{ "NS", { "host", "pointsTo", "ttl" } },
	{ "TXT", { "host", "data", "ttl" } },
	{ "MX", { "host", "pointsTo", "priority", "ttl" } },
	{ "SPFM", { "host", "spfRules" } },
	{ "SRV", { "name", "target", "priority", "protocol", "service", "weight", "port", "ttl" } },
	{ "REDIR301", { "target" } },
	{ "REDIR302", { "target" } },
	{ "APEXCNAME", { "pointsTo", "ttl" } },
};

/* Fields of custom (non-core) record types. */
static const char *const custom_required[] = { "host", "data", "ttl", NULL };

/* Return the NULL-terminated required field list of TYPE. */
static const char *const *fields_for_type(const char *type)
{
	for (size_t i = 0; i < sizeof(required_fields) / sizeof(required_fields[0]); i++) {
		if (strcmp(required_fields[i].type, type) == 0)
			return required_fields[i].required;
	}
	return custom_required;
}

/* True when TYPE is a core type name or has RR type syntax. */
static bool valid_record_type(const char *type)
{
	size_t length = strlen(type);
	if (length == 0 || length > TSTORE_ID_MAX || !isalnum((unsigned char)type[0]))
		return false;
	for (size_t i = 1; i < length; i++) {
		if (!isalnum((unsigned char)type[i]) && type[i] != '-')
			return false;
	}
	return true;
}

/* Check a number field: a non-negative integer, digits, or one %variable%. */
static tstore_status check_number(const json_t *record, const char *key, size_t index,
	tstore_error *err)
{
	const json_t *value = json_object_get(record, key);
	if (value == NULL)
		return TSTORE_OK;
	if (json_is_integer(value) && json_integer_value(value) >= 0)
		return TSTORE_OK;
	if (json_is_string(value)) {
		const char *text = json_string_value(value);
		size_t length = strlen(text);
		bool digits = length > 0 && strspn(text, "0123456789") == length;
		bool variable = length >= 3 && text[0] == '%' && text[length - 1] == '%' &&
			memchr(text + 1, '%', length - 2) == NULL;
		if (digits || variable)
			return TSTORE_OK;
	}
	return fail(err, TSTORE_ERR_INVALID,
		"record %zu: \"%s\" is not a non-negative integer or a single %%variable%%", index, key);
}

/* Check the value rules of one record after its type's required fields. */
static tstore_status check_record_values(const json_t *record, const char *type, size_t index,
	tstore_error *err)
{
	const char *key;
	const json_t *value;
	json_object_foreach((json_t *)record, key, value) {
		const char *bad = NULL;
		if (json_is_string(value) && !valid_variables(json_string_value(value), &bad))
			return fail(err, TSTORE_ERR_INVALID,
				"record %zu: \"%s\" has an unpaired '%%' or an invalid variable name at \"%.40s\"",
				index, key, bad);
	}

	const json_t *group = json_object_get(record, "groupId");
	if (group != NULL && (!json_is_string(group) || !valid_dc_id(json_string_value(group))))
		return fail(err, TSTORE_ERR_INVALID,
			"record %zu: groupId must be a dc-id without variables", index);

	const json_t *essential = json_object_get(record, "essential");
	if (essential != NULL && (!json_is_string(essential) ||
	    (strcmp(json_string_value(essential), "Always") != 0 &&
	     strcmp(json_string_value(essential), "OnApply") != 0)))
		return fail(err, TSTORE_ERR_INVALID,
			"record %zu: essential \"%s\" is not Always or OnApply", index,
			json_is_string(essential) ? json_string_value(essential) : "(not a string)");

	const json_t *mode = json_object_get(record, "txtConflictMatchingMode");
	if (mode != NULL && strcmp(type, "TXT") == 0) {
		const char *text = json_is_string(mode) ? json_string_value(mode) : "";
		if (strcmp(text, "None") != 0 && strcmp(text, "All") != 0 && strcmp(text, "Prefix") != 0)
			return fail(err, TSTORE_ERR_INVALID,
				"record %zu: txtConflictMatchingMode is not None, All or Prefix", index);
		if (strcmp(text, "Prefix") == 0 &&
		    !json_is_string(json_object_get(record, "txtConflictMatchingPrefix")))
			return fail(err, TSTORE_ERR_INVALID,
				"record %zu: txtConflictMatchingMode Prefix without txtConflictMatchingPrefix",
				index);
	}

	static const char *const numbers[] = { "ttl", "priority", "weight", "port" };
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		tstore_status status = check_number(record, numbers[i], index, err);
		if (status != TSTORE_OK)
			return status;
	}
	return TSTORE_OK;
}

/* True when RECORD is a CNAME or NS at the apex of the applied host. */
static bool is_apex_alias(const json_t *record, const char *type)
{
	if (strcmp(type, "CNAME") != 0 && strcmp(type, "NS") != 0)
		return false;
	const char *host = json_string_value(json_object_get(record, "host"));
	return host != NULL && (host[0] == '\0' || strcmp(host, "@") == 0);
}

static tstore_status check_record(const json_t *template, const json_t *record, size_t index,
	tstore_error *err)
{
	if (!json_is_object(record))
		return fail(err, TSTORE_ERR_INVALID, "record %zu is not an object", index);

	const json_t *type_value = json_object_get(record, "type");
	if (!json_is_string(type_value))
		return fail(err, TSTORE_ERR_INVALID, "record %zu: missing \"type\"", index);
	const char *type = json_string_value(type_value);
	if (!valid_record_type(type))
		return fail(err, TSTORE_ERR_INVALID, "record %zu: unknown record type \"%s\"", index, type);

	const char *const *required = fields_for_type(type);
	for (size_t i = 0; required[i] != NULL; i++) {
		if (json_object_get(record, required[i]) == NULL)
			return fail(err, TSTORE_ERR_INVALID, "record %zu (%s): missing \"%s\"",
				index, type, required[i]);
	}
	static const char *const text_fields[] = {
		"host", "pointsTo", "data", "target", "spfRules", "name", "protocol", "service",
	};
	for (size_t i = 0; i < sizeof(text_fields) / sizeof(text_fields[0]); i++) {
		const json_t *value = json_object_get(record, text_fields[i]);
		if (value != NULL && !json_is_string(value))
			return fail(err, TSTORE_ERR_INVALID, "record %zu (%s): \"%s\" is not a string",
				index, type, text_fields[i]);
	}

	if (is_apex_alias(record, type) && !json_is_true(json_object_get(template, "hostRequired")))
		return fail(err, TSTORE_ERR_INVALID,
			"record %zu: a %s at the apex needs \"hostRequired\": true", index, type);
	return check_record_values(record, type, index, err);
}

tstore_status tstore_check(const json_t *template, tstore_error *err)
{
	if (!json_is_object(template))
		return fail(err, TSTORE_ERR_INVALID, "the template is not a JSON object");

	tstore_status status = check_name_field(template, "providerId", true, err);
	if (status == TSTORE_OK)
		status = check_name_field(template, "providerName", false, err);
	if (status == TSTORE_OK)
		status = check_name_field(template, "serviceId", true, err);
	if (status == TSTORE_OK)
		status = check_name_field(template, "serviceName", false, err);
	if (status == TSTORE_OK)
		status = check_optional_fields(template, err);
	if (status != TSTORE_OK)
		return status;

	const json_t *records = json_object_get(template, "records");
	if (!json_is_array(records))
		return fail(err, TSTORE_ERR_INVALID, "missing \"records\" list");

	size_t index;
	const json_t *record;
	json_array_foreach(records, index, record) {
		status = check_record(template, record, index, err);
		if (status != TSTORE_OK)
			return status;
	}
	return TSTORE_OK;
}

tstore *tstore_new(void)
{
	return calloc(1, sizeof(tstore));
}

void tstore_free(tstore *store)
{
	if (store == NULL)
		return;
	for (size_t i = 0; i < store->count; i++) {
		json_decref(store->templates[i].json);
		free((char *)store->templates[i].origin);
	}
	for (size_t i = 0; i < store->rejection_count; i++) {
		free((char *)store->rejections[i].file);
		free((char *)store->rejections[i].reason);
	}
	free(store->templates);
	free(store->rejections);
	free(store);
}

/* Grow *ITEMS (of SIZE bytes each) so one more fits. */
static bool reserve(void **items, size_t *capacity, size_t count, size_t size)
{
	if (count < *capacity)
		return true;
	size_t grown = *capacity == 0 ? 64 : *capacity * 2;
	void *resized = realloc(*items, grown * size);
	if (resized == NULL)
		return false;
	*items = resized;
	*capacity = grown;
	return true;
}

static const char *optional_string(const json_t *template, const char *key)
{
	return json_string_value(json_object_get(template, key));
}

tstore_status tstore_add(tstore *store, json_t *template, const char *origin,
	tstore_error *err)
{
	tstore_status status = tstore_check(template, err);
	if (status != TSTORE_OK)
		return status;

	const char *provider_id = optional_string(template, "providerId");
	const char *service_id = optional_string(template, "serviceId");
	const tstore_template *existing = tstore_find(store, provider_id, service_id);
	if (existing != NULL)
		return fail(err, TSTORE_ERR_DUPLICATE, "%s/%s is already loaded from %s",
			provider_id, service_id, existing->origin);

	if (!reserve((void **)&store->templates, &store->capacity, store->count,
		sizeof(tstore_template)))
		return fail(err, TSTORE_ERR_NOMEM, "out of memory");
	char *origin_copy = strdup(origin != NULL ? origin : "");
	if (origin_copy == NULL)
		return fail(err, TSTORE_ERR_NOMEM, "out of memory");

	tstore_template *entry = &store->templates[store->count++];
	*entry = (tstore_template) {
		.provider_id = provider_id,
		.provider_name = optional_string(template, "providerName"),
		.service_id = service_id,
		.service_name = optional_string(template, "serviceName"),
		.sync_pub_key_domain = optional_string(template, "syncPubKeyDomain"),
		.sync_redirect_domain = optional_string(template, "syncRedirectDomain"),
		.host_required = json_is_true(json_object_get(template, "hostRequired")),
		.multi_instance = json_is_true(json_object_get(template, "multiInstance")),
		.shared_provider_name = json_is_true(json_object_get(template, "sharedProviderName")),
		.shared_service_name = json_is_true(json_object_get(template, "sharedServiceName")),
		.sync_block = json_is_true(json_object_get(template, "syncBlock")),
		.version = (long)json_integer_value(json_object_get(template, "version")),
		.origin = origin_copy,
		.json = json_incref(template),
	};
	return TSTORE_OK;
}

/* Record that FILE was rejected for REASON. */
static tstore_status add_rejection(tstore *store, const char *file, const char *reason)
{
	if (!reserve((void **)&store->rejections, &store->rejection_capacity,
		store->rejection_count, sizeof(tstore_rejection)))
		return TSTORE_ERR_NOMEM;

	char *file_copy = strdup(file);
	char *reason_copy = strdup(reason);
	if (file_copy == NULL || reason_copy == NULL) {
		free(file_copy);
		free(reason_copy);
		return TSTORE_ERR_NOMEM;
	}
	store->rejections[store->rejection_count++] = (tstore_rejection) {
		.file = file_copy,
		.reason = reason_copy,
	};
	return TSTORE_OK;
}

/* Load one file into STORE; a failure is returned with its reason in ERR. */
static tstore_status load_file(tstore *store, const char *path, tstore_error *err)
{
	FILE *file = fopen(path, "rb");
	if (file == NULL)
		return fail(err, TSTORE_ERR_IO, "cannot open: %s", strerror(errno));

	tstore_status status = TSTORE_OK;
	json_t *template = NULL;
	char *bytes = malloc(TSTORE_FILE_MAX + 1);
	if (bytes == NULL) {
		status = fail(err, TSTORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	size_t length = fread(bytes, 1, TSTORE_FILE_MAX + 1, file);
	if (ferror(file)) {
		status = fail(err, TSTORE_ERR_IO, "read failed");
		goto out;
	}
	if (length > TSTORE_FILE_MAX) {
		status = fail(err, TSTORE_ERR_INVALID, "larger than %d bytes", TSTORE_FILE_MAX);
		goto out;
	}

	json_error_t json_err;
	template = json_loadb(bytes, length, 0, &json_err);
	if (template == NULL) {
		status = fail(err, TSTORE_ERR_INVALID, "invalid JSON at line %d: %s",
			json_err.line, json_err.text);
		goto out;
	}
	status = tstore_add(store, template, path, err);
out:
	json_decref(template);
	free(bytes);
	fclose(file);
	return status;
}

static bool has_json_suffix(const char *name)
{
	size_t length = strlen(name);
	return length > 5 && strcmp(name + length - 5, ".json") == 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

tstore_status tstore_load_dir(tstore *store, const char *directory, tstore_error *err)
{
	DIR *dir = opendir(directory);
	if (dir == NULL)
		return fail(err, TSTORE_ERR_IO, "cannot open template folder %s: %s", directory,
			strerror(errno));

	tstore_status status = TSTORE_OK;
	char **names = NULL;
	size_t count = 0;
	size_t capacity = 0;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		if (!has_json_suffix(entry->d_name))
			continue;
		if (!reserve((void **)&names, &capacity, count, sizeof(char *)) ||
		    (names[count] = strdup(entry->d_name)) == NULL) {
			status = fail(err, TSTORE_ERR_NOMEM, "out of memory");
			goto out;
		}
		count++;
	}
	qsort(names, count, sizeof(char *), compare_names);

	for (size_t i = 0; i < count; i++) {
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/%s", directory, names[i]) >= (int)sizeof(path)) {
			if (add_rejection(store, names[i], "path too long") != TSTORE_OK)
				goto nomem;
			continue;
		}

		tstore_error file_err = { 0 };
		tstore_status file_status = load_file(store, path, &file_err);
		if (file_status == TSTORE_ERR_NOMEM)
			goto nomem;
		if (file_status != TSTORE_OK && add_rejection(store, path, file_err.message) != TSTORE_OK)
			goto nomem;
	}
	goto out;

nomem:
	status = fail(err, TSTORE_ERR_NOMEM, "out of memory");
out:
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	closedir(dir);
	return status;
}

const tstore_template *tstore_find(const tstore *store, const char *provider_id,
	const char *service_id)
{
	if (store == NULL || provider_id == NULL || service_id == NULL)
		return NULL;
	for (size_t i = 0; i < store->count; i++) {
		const tstore_template *entry = &store->templates[i];
		if (strcasecmp(entry->provider_id, provider_id) == 0 &&
		    strcasecmp(entry->service_id, service_id) == 0)
			return entry;
	}
	return NULL;
}

bool tstore_has_provider(const tstore *store, const char *provider_id)
{
	if (store == NULL || provider_id == NULL)
		return false;
	for (size_t i = 0; i < store->count; i++) {
		if (strcasecmp(store->templates[i].provider_id, provider_id) == 0)
			return true;
	}
	return false;
}

size_t tstore_count(const tstore *store)
{
	return store == NULL ? 0 : store->count;
}

const tstore_template *tstore_get(const tstore *store, size_t index)
{
	if (store == NULL || index >= store->count)
		return NULL;
	return &store->templates[index];
}

size_t tstore_rejection_count(const tstore *store)
{
	return store == NULL ? 0 : store->rejection_count;
}

const tstore_rejection *tstore_rejection_get(const tstore *store, size_t index)
{
	if (store == NULL || index >= store->rejection_count)
		return NULL;
	return &store->rejections[index];
}
