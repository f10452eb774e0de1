/*
 * Compliance vector loading shared by the consent and signing tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "vectors.h"

#define VECTORS_FILE "compliance/service-provider-vectors.json"

json_t *vectors_load(void)
{
	const char *dir = getenv("DC_SHARED_DIR");
	const char *source = "DC_SHARED_DIR";

	if (dir == NULL || dir[0] == '\0') {
		dir = getenv("DC_SHARED_DIR_DEFAULT");
		source = "DC_SHARED_DIR_DEFAULT (set by CMake)";
	}
	cr_assert(dir != NULL && dir[0] != '\0',
	          "neither DC_SHARED_DIR nor DC_SHARED_DIR_DEFAULT is set: set DC_SHARED_DIR to "
	          "the folder that contains " VECTORS_FILE ", or run the test through ctest");

	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, VECTORS_FILE);

	struct stat sb;
	cr_assert(stat(path, &sb) == 0,
	          "compliance vectors not found at %s (folder from %s): set DC_SHARED_DIR to the "
	          "folder that contains " VECTORS_FILE,
	          path, source);

	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	cr_assert_not_null(root, "%s is not valid JSON: line %d: %s", path, jerr.line, jerr.text);
	return root;
}

json_t *vectors_case(json_t *root, const char *section, const char *id)
{
	json_t *list = json_object_get(root, section);
	size_t i;
	json_t *entry;

	cr_assert(json_is_array(list), "vectors have no list \"%s\"", section);
	json_array_foreach(list, i, entry) {
		const char *entry_id = json_string_value(json_object_get(entry, "id"));

		if (entry_id != NULL && strcmp(entry_id, id) == 0)
			return entry;
	}
	cr_assert_fail("vectors have no case \"%s\" in \"%s\"", id, section);
	return NULL;
}

dc_param *vectors_params(json_t *object, size_t *count)
{
	const char *name;
	json_t *value;
	size_t n = 0;

	*count = json_object_size(object);
	dc_param *params = calloc(*count + 1, sizeof(*params));
	cr_assert_not_null(params);
	json_object_foreach(object, name, value) {
		cr_assert(json_is_string(value), "vector parameter \"%s\" is not a string", name);
		params[n].name = name;
		params[n].value = json_string_value(value);
		n++;
	}
	return params;
}

const char *vectors_string(json_t *object, const char *name)
{
	const char *value = json_string_value(json_object_get(object, name));

	cr_assert_not_null(value, "vector field \"%s\" is missing", name);
	return value;
}
