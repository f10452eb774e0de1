/*
 * The zone-apply compliance vectors, one Criterion test per case. Every
 * *.json file of $DC_SHARED_DIR/compliance is read and dispatched by its
 * "suite_type": process_records cases run zone_process_records() on their
 * inline template records, apply_template cases load their template from
 * the compliance templates/ folder through the template store and run
 * zone_apply_template(). Every assertion message starts with the case id.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dcsandbox/template_store.h"
#include "dcsandbox/zone.h"

#define RANDOM_ID_MARKER "<test only: random>"

/* One compliance case: which file, which position, and its id for messages. */
struct compliance_case {
	char file[1200];
	char id[128];
	size_t index;
	bool folder_missing; /* set on the only parameter when nothing could be read */
};

/* Criterion prints a failing parameter with this function. */
char *cr_user_compliance_case_tostr(struct compliance_case *c);
char *cr_user_compliance_case_tostr(struct compliance_case *c)
{
	char *text = NULL;
	if (asprintf(&text, "case %s (%s #%zu)", c->id, c->file, c->index) < 0)
		return NULL;
	return text;
}

static const char *text_or(const char *text, const char *fallback)
{
	return text != NULL ? text : fallback;
}

/* Return the compliance folder, from DC_SHARED_DIR or the CMake default. */
static const char *shared_dir(void)
{
	const char *dir = getenv("DC_SHARED_DIR");
	if (dir == NULL || dir[0] == '\0')
		dir = getenv("DC_SHARED_DIR_DEFAULT");
	return dir != NULL ? dir : "../shared";
}

static void compliance_dir(char *out, size_t size)
{
	snprintf(out, size, "%s/compliance", shared_dir());
}

/*
 * Collect the cases of every file whose suite_type is SUITE. When the folder
 * cannot be read, return one parameter marked folder_missing so the test
 * fails with the path it read.
 */
static struct criterion_test_params collect_cases(const char *suite)
{
	char dir_path[900];
	compliance_dir(dir_path, sizeof(dir_path));

	size_t count = 0;
	size_t capacity = 256;
	struct compliance_case *cases = cr_malloc(capacity * sizeof(*cases));
	DIR *dir = opendir(dir_path);
	struct dirent *entry;

	while (dir != NULL && (entry = readdir(dir)) != NULL) {
		size_t length = strlen(entry->d_name);
		if (length < 6 || strcmp(entry->d_name + length - 5, ".json") != 0)
			continue;

		char path[1200];
		snprintf(path, sizeof(path), "%s/%s", dir_path, entry->d_name);
		json_t *root = json_load_file(path, 0, NULL);
		const char *type = json_string_value(json_object_get(root, "suite_type"));
		if (type == NULL || strcmp(type, suite) != 0) {
			json_decref(root);
			continue;
		}

		size_t index;
		json_t *test;
		json_array_foreach(json_object_get(root, "tests"), index, test) {
			if (count == capacity) {
				capacity *= 2;
				cases = cr_realloc(cases, capacity * sizeof(*cases));
			}
			struct compliance_case *c = &cases[count++];
			memset(c, 0, sizeof(*c));
			snprintf(c->file, sizeof(c->file), "%s", path);
			snprintf(c->id, sizeof(c->id), "%s",
				text_or(json_string_value(json_object_get(test, "id")), "(no id)"));
			c->index = index;
		}
		json_decref(root);
	}
	if (dir != NULL)
		closedir(dir);

	if (count == 0) {
		memset(&cases[0], 0, sizeof(cases[0]));
		snprintf(cases[0].file, sizeof(cases[0].file), "%s", dir_path);
		snprintf(cases[0].id, sizeof(cases[0].id), "no %s cases", suite);
		cases[0].folder_missing = true;
		count = 1;
	}
	return cr_make_param_array(struct compliance_case, cases, count);
}

/* Map a zone status to the exception name the vectors use. */
static const char *exception_name(zone_status status)
{
	switch (status) {
	case ZONE_ERR_INVALID_DATA:
		return "InvalidData";
	case ZONE_ERR_INVALID_TEMPLATE:
		return "InvalidTemplate";
	case ZONE_ERR_MISSING_PARAMETER:
		return "MissingParameter";
	case ZONE_ERR_HOST_REQUIRED:
		return "HostRequired";
	case ZONE_ERR_UNKNOWN_TYPE:
		return "TypeError";
	default:
		return zone_status_name(status);
	}
}

/* Sort key of the vectors: (type, name, ttl, data); a missing ttl sorts as 0. */
static int compare_records(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a;
	const json_t *y = *(json_t *const *)b;
	static const char *const text_keys[] = { "type", "name" };

	for (size_t i = 0; i < 2; i++) {
		const char *left = text_or(json_string_value(json_object_get(x, text_keys[i])), "");
		const char *right = text_or(json_string_value(json_object_get(y, text_keys[i])), "");
		int order = strcmp(left, right);
		if (order != 0)
			return order;
	}
	json_int_t left_ttl = json_integer_value(json_object_get(x, "ttl"));
	json_int_t right_ttl = json_integer_value(json_object_get(y, "ttl"));
	if (left_ttl != right_ttl)
		return left_ttl < right_ttl ? -1 : 1;
	const char *left = text_or(json_string_value(json_object_get(x, "data")), "");
	const char *right = text_or(json_string_value(json_object_get(y, "data")), "");
	return strcmp(left, right);
}

/* Return a new array with the records of ARRAY in sort-key order. */
static json_t *sorted_copy(const json_t *array)
{
	size_t count = json_array_size(array);
	json_t **items = calloc(count + 1, sizeof(json_t *));
	for (size_t i = 0; i < count; i++)
		items[i] = json_array_get(array, i);
	qsort(items, count, sizeof(json_t *), compare_records);

	json_t *sorted = json_array();
	for (size_t i = 0; i < count; i++)
		json_array_append(sorted, items[i]);
	free(items);
	return sorted;
}

/* True when ID is the "_dc.id" of a record of the input zone. */
static bool id_in_zone(const json_t *zone_records, const char *id)
{
	size_t index;
	const json_t *record;
	json_array_foreach(zone_records, index, record) {
		const char *existing = json_string_value(json_object_get(json_object_get(record, "_dc"), "id"));
		if (existing != NULL && strcmp(existing, id) == 0)
			return true;
	}
	return false;
}

/* Replace generated "_dc.id" values in ACTUAL with the vectors' marker. */
static void mask_random_ids(json_t *actual, const json_t *zone_records)
{
	size_t index;
	json_t *record;
	json_array_foreach(actual, index, record) {
		json_t *dc = json_object_get(record, "_dc");
		const char *id = json_string_value(json_object_get(dc, "id"));
		if (id != NULL && !id_in_zone(zone_records, id))
			json_object_set_new(dc, "id", json_string(RANDOM_ID_MARKER));
	}
}

/* Load the case at C->index of C->file. */
static json_t *load_case(const struct compliance_case *c, json_t **root)
{
	json_error_t error;
	*root = json_load_file(c->file, 0, &error);
	cr_assert_not_null(*root, "%s: cannot read %s: %s", c->id, c->file, error.text);
	json_t *test = json_array_get(json_object_get(*root, "tests"), c->index);
	cr_assert_not_null(test, "%s: case #%zu missing in %s", c->id, c->index, c->file);
	return test;
}

/* The A and AAAA records behind a redirect that the vectors expect. */
static zone *default_redirect_records(void)
{
	json_t *records = json_pack("[{s:s, s:s, s:s, s:i}, {s:s, s:s, s:s, s:i}]",
		"type", "A", "name", "@", "data", "127.0.0.1", "ttl", 600,
		"type", "AAAA", "name", "@", "data", "::1", "ttl", 600);
	zone *backing = NULL;
	zone_error err = { 0 };
	cr_assert_eq(zone_from_json(records, &backing, &err), ZONE_OK, "redirect records: %s",
		err.message);
	json_decref(records);
	return backing;
}

/* Check a finished call against the case's "expect". */
static void check_outcome(const struct compliance_case *c, const json_t *input,
	const json_t *expect, zone_status status, const zone_error *err, const zone_result *result)
{
	const char *exception = json_string_value(json_object_get(expect, "exception"));
	if (exception != NULL) {
		cr_expect_str_eq(status == ZONE_OK ? "success" : exception_name(status), exception,
			"%s: expected %s, got %s (%s)", c->id, exception,
			status == ZONE_OK ? "success" : exception_name(status), err->message);
		return;
	}

	/* Expectations, not assertions, so the caller still frees everything. */
	cr_expect_eq(status, ZONE_OK, "%s: expected success, got %s: %s", c->id,
		exception_name(status), err->message);
	if (status != ZONE_OK)
		return;
	json_int_t new_count = json_integer_value(json_object_get(expect, "new_count"));
	json_int_t delete_count = json_integer_value(json_object_get(expect, "delete_count"));
	cr_expect_eq((json_int_t)zone_count(result->added), new_count,
		"%s: new_count %zu, expected %lld", c->id, zone_count(result->added), (long long)new_count);
	cr_expect_eq((json_int_t)zone_count(result->deleted), delete_count,
		"%s: delete_count %zu, expected %lld", c->id, zone_count(result->deleted),
		(long long)delete_count);

	const json_t *expected_records = json_object_get(expect, "records");
	if (expected_records == NULL || json_is_null(expected_records))
		return;

	json_t *actual = zone_to_json(result->final);
	if (json_is_true(json_object_get(input, "multi_aware")) &&
	    json_object_get(input, "unique_id") == NULL)
		mask_random_ids(actual, json_object_get(input, "zone_records"));
	json_t *actual_sorted = sorted_copy(actual);
	json_t *expected_sorted = sorted_copy(expected_records);
	char *actual_text = json_dumps(actual_sorted, JSON_COMPACT);
	char *expected_text = json_dumps(expected_sorted, JSON_COMPACT);
	cr_expect(json_equal(actual_sorted, expected_sorted), "%s: records differ\n  got:      %s\n  expected: %s",
		c->id, actual_text, expected_text);
	free(actual_text);
	free(expected_text);
	json_decref(actual);
	json_decref(actual_sorted);
	json_decref(expected_sorted);
}

/* Fill OPTS from the case input; GROUPS receives the group id list. */
static void read_opts(const json_t *input, zone_apply_opts *opts, const char **groups, size_t max)
{
	memset(opts, 0, sizeof(*opts));
	opts->domain = json_string_value(json_object_get(input, "domain"));
	opts->host = json_string_value(json_object_get(input, "host"));
	opts->params = json_object_get(input, "params");
	opts->multi_aware = json_is_true(json_object_get(input, "multi_aware"));
	opts->multi_instance = json_is_true(json_object_get(input, "multi_instance"));
	opts->provider_id = json_string_value(json_object_get(input, "provider_id"));
	opts->service_id = json_string_value(json_object_get(input, "service_id"));
	opts->unique_id = json_string_value(json_object_get(input, "unique_id"));

	size_t index;
	const json_t *group;
	json_array_foreach(json_object_get(input, "group_ids"), index, group) {
		if (opts->group_id_count < max)
			groups[opts->group_id_count++] = json_string_value(group);
	}
	opts->group_ids = groups;
}

static void fail_when_folder_missing(const struct compliance_case *c)
{
	if (c->folder_missing)
		cr_assert(false, "%s: no compliance vectors found in %s. Set DC_SHARED_DIR to the folder "
			"that contains compliance/ (the default comes from CMake's DC_SHARED_DIR).",
			c->id, c->file);
}

ParameterizedTestParameters(compliance, process_records)
{
	return collect_cases("process_records");
}

ParameterizedTest(struct compliance_case *c, compliance, process_records)
{
	fail_when_folder_missing(c);
	json_t *root = NULL;
	const json_t *test = load_case(c, &root);
	const json_t *input = json_object_get(test, "input");

	zone *before = NULL;
	zone_error err = { 0 };
	cr_assert_eq(zone_from_json(json_object_get(input, "zone_records"), &before, &err), ZONE_OK,
		"%s: zone_records: %s", c->id, err.message);
	zone *redirects = NULL;
	const json_t *redirect_json = json_object_get(input, "redirect_records");
	if (redirect_json != NULL)
		cr_assert_eq(zone_from_json(redirect_json, &redirects, &err), ZONE_OK,
			"%s: redirect_records: %s", c->id, err.message);

	const char *groups[32];
	zone_apply_opts opts;
	read_opts(input, &opts, groups, 32);
	opts.redirect_records = redirects;

	zone_result result = { 0 };
	zone_status status = zone_process_records(before, json_object_get(input, "template_records"),
		&opts, &result, &err);
	check_outcome(c, input, json_object_get(test, "expect"), status, &err, &result);

	zone_result_clear(&result);
	zone_free(redirects);
	zone_free(before);
	json_decref(root);
}

ParameterizedTestParameters(compliance, apply_template)
{
	return collect_cases("apply_template");
}

ParameterizedTest(struct compliance_case *c, compliance, apply_template)
{
	fail_when_folder_missing(c);
	json_t *root = NULL;
	const json_t *test = load_case(c, &root);
	const json_t *input = json_object_get(test, "input");

	char templates_dir[1100];
	compliance_dir(templates_dir, sizeof(templates_dir) - 16);
	strcat(templates_dir, "/templates");
	tstore *store = tstore_new();
	tstore_error store_err = { 0 };
	cr_assert_eq(tstore_load_dir(store, templates_dir, &store_err), TSTORE_OK,
		"%s: %s", c->id, store_err.message);

	const char *provider_id = json_string_value(json_object_get(input, "provider_id"));
	const char *service_id = json_string_value(json_object_get(input, "service_id"));
	const tstore_template *template = tstore_find(store, provider_id, service_id);
	cr_assert_not_null(template, "%s: no template %s/%s in %s", c->id, provider_id, service_id,
		templates_dir);

	zone *before = NULL;
	zone_error err = { 0 };
	cr_assert_eq(zone_from_json(json_object_get(input, "zone_records"), &before, &err), ZONE_OK,
		"%s: zone_records: %s", c->id, err.message);

	/*
	 * provider_id and service_id come from the template. Signatures (qs,
	 * sig, key) are not checked: the asynchronous apply this engine serves
	 * is authenticated by a bearer token.
	 */
	const char *groups[32];
	zone_apply_opts opts;
	read_opts(input, &opts, groups, 32);
	zone *redirects = default_redirect_records();
	opts.redirect_records = redirects;

	zone_result result = { 0 };
	zone_status status = zone_apply_template(before, template->json, &opts, &result, &err);
	check_outcome(c, input, json_object_get(test, "expect"), status, &err, &result);

	zone_result_clear(&result);
	zone_free(redirects);
	zone_free(before);
	tstore_free(store);
	json_decref(root);
}
