/*
 * The sandbox's template store: Domain Connect templates loaded from a
 * folder of JSON files, checked against the template rules, and looked up
 * by providerId and serviceId ignoring case. Template ids are unique
 * ignoring case, and the public template repository names its files in
 * lower case.
 *
 * A file that breaks a rule is rejected with its name and the reason, and
 * loading goes on with the next file, so one bad template never takes the
 * others down. The store does not change after loading and may be read
 * from several threads at once.
 */
#ifndef DC_SANDBOX_TEMPLATE_STORE_H
#define DC_SANDBOX_TEMPLATE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Result of a store call. Values are stable; tstore_status_name names them. */
typedef enum tstore_status {
	TSTORE_OK = 0,
	TSTORE_ERR_IO,        /* the folder or a file could not be read */
	TSTORE_ERR_INVALID,   /* a template breaks a template rule */
	TSTORE_ERR_DUPLICATE, /* another template has the same ids ignoring case */
	TSTORE_ERR_NOMEM,     /* an allocation failed */
	TSTORE_STATUS_COUNT
} tstore_status;

/* Return the stable name of STATUS ("ok", "io", "invalid", "duplicate", "nomem"). */
const char *tstore_status_name(tstore_status status);

#define TSTORE_MESSAGE_MAX 512

/* Error detail filled by a failed call; owned by the caller. */
typedef struct tstore_error {
	tstore_status status;
	char message[TSTORE_MESSAGE_MAX];
} tstore_error;

/* The largest template file the store reads. */
#define TSTORE_FILE_MAX (1024 * 1024)

/* One loaded template. Strings point into JSON and live as long as the store. */
typedef struct tstore_template {
	const char *provider_id;
	const char *provider_name;
	const char *service_id;
	const char *service_name;
	const char *sync_pub_key_domain;  /* NULL when the template has none */
	const char *sync_redirect_domain; /* NULL when the template has none */
	bool host_required;
	bool multi_instance;
	bool shared_provider_name;
	bool shared_service_name;
	bool sync_block;
	long version;        /* 0 when the template has none */
	const char *origin;  /* file path, or the name given to tstore_add */
	json_t *json;        /* the whole template, for zone_apply_template() */
} tstore_template;

/* A file the store rejected, and why. */
typedef struct tstore_rejection {
	const char *file;
	const char *reason;
} tstore_rejection;

typedef struct tstore tstore;

/* Allocate an empty store. Returns NULL when out of memory. */
tstore *tstore_new(void);

/* Free STORE and its templates. Accepts NULL. */
void tstore_free(tstore *store);

/*
 * Check TEMPLATE against the template rules and return TSTORE_OK, or
 * TSTORE_ERR_INVALID with the first broken rule in ERR. The rules are:
 * - providerId, providerName, serviceId, serviceName and records are present;
 * - ids and group ids have dc-id syntax (1 to 63 of A-Z a-z 0-9 . _ -);
 * - optional top-level fields have their schema types;
 * - each record type is a core type or has RR type syntax, with the fields
 *   that type requires;
 * - every '%' pairs up around a valid variable name, and groupId has none;
 * - essential, txtConflictMatchingMode and the number fields have valid values;
 * - a template with a CNAME or NS at the apex sets hostRequired.
 */
tstore_status tstore_check(const json_t *template, tstore_error *err);

/*
 * Check TEMPLATE and add it under ORIGIN (a name for messages). The store
 * takes a new reference to TEMPLATE. Fails with TSTORE_ERR_INVALID or
 * TSTORE_ERR_DUPLICATE without adding it; nothing is recorded as rejected.
 */
tstore_status tstore_add(tstore *store, json_t *template, const char *origin,
	tstore_error *err);

/*
 * Load every "*.json" file of DIRECTORY in name order. A file that cannot
 * be read, is not JSON, breaks a rule or repeats another's ids is recorded
 * as a rejection (see tstore_rejection_get) and skipped. Returns TSTORE_OK
 * even when files were rejected, and TSTORE_ERR_IO or TSTORE_ERR_NOMEM only
 * when the folder itself cannot be read or memory runs out.
 */
tstore_status tstore_load_dir(tstore *store, const char *directory, tstore_error *err);

/* Return the template with these ids (compared ignoring case), or NULL. */
const tstore_template *tstore_find(const tstore *store, const char *provider_id,
	const char *service_id);

/* True when at least one template has PROVIDER_ID (ignoring case). */
bool tstore_has_provider(const tstore *store, const char *provider_id);

/* Return the number of loaded templates. */
size_t tstore_count(const tstore *store);

/* Return loaded template INDEX (in load order), or NULL when out of range. */
const tstore_template *tstore_get(const tstore *store, size_t index);

/* Return the number of rejected files. */
size_t tstore_rejection_count(const tstore *store);

/* Return rejection INDEX, or NULL when out of range. */
const tstore_rejection *tstore_rejection_get(const tstore *store, size_t index);

#endif
