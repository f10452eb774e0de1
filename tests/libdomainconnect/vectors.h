/*
 * Loads the service provider compliance vectors for the consent and signing
 * tests, from $DC_SHARED_DIR or the DC_SHARED_DIR_DEFAULT set by CMake.
 */
#ifndef DC_TEST_VECTORS_H
#define DC_TEST_VECTORS_H

#include <stddef.h>

#include <jansson.h>

#include "libdomainconnect/domainconnect.h"

/*
 * Returns the parsed service-provider-vectors.json (caller decrefs). Fails
 * the running test with the path it tried when the file is missing.
 */
json_t *vectors_load(void);

/* Returns the case with the given id from the list named section; fails the test if absent. */
json_t *vectors_case(json_t *root, const char *section, const char *id);

/*
 * Converts a JSON object of string values into a dc_param array in the
 * object's order. *count receives the number of entries. Free with free();
 * the strings stay owned by object.
 */
dc_param *vectors_params(json_t *object, size_t *count);

/* Returns the string member name of object; fails the test if it is missing. */
const char *vectors_string(json_t *object, const char *name);

#endif /* DC_TEST_VECTORS_H */
