/*
 * Applying a template's records to a zone: reading and resolving each
 * template record by type, running the conflict rules, recording "_dc"
 * provenance, and splitting the outcome into added, deleted and final
 * records.
 */
#include "zone_internal.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* Everything one apply works on. */
typedef struct apply_state {
	const zone_apply_opts *opts;
	zone_subst subst;
	char *domain;   /* lower case */
	char *host;     /* lower case, "" for the apex */
	char *dc_host;  /* the host as given, lower case, for "_dc.host"; may be NULL */
	zone_work work;
	zone *added;
	zone_error *err;
} apply_state;

/* One template record being read; TYPE is upper case. */
typedef struct template_record {
	const json_t *json;
	size_t index;
	char type[ZONE_LABEL_MAX + 1];
} template_record;

/* Fail with ZONE_ERR_INVALID_TEMPLATE naming the record. */
#define TEMPLATE_FAIL(state, record, fmt, ...) \
	zone_fail((state)->err, ZONE_ERR_INVALID_TEMPLATE, "template record %zu (%s): " fmt, \
		(record)->index, (record)->type, __VA_ARGS__)

/* Fail with ZONE_ERR_INVALID_DATA naming the record. */
#define DATA_FAIL(state, record, fmt, ...) \
	zone_fail((state)->err, ZONE_ERR_INVALID_DATA, "template record %zu (%s): " fmt, \
		(record)->index, (record)->type, __VA_ARGS__)

static const char *const core_types[] = {
	"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "SPFM", "NS",
	"REDIR301", "REDIR302", "APEXCNAME",
};

static bool is_core_type(const char *type)
{
	for (size_t i = 0; i < sizeof(core_types) / sizeof(core_types[0]); i++) {
		if (strcmp(type, core_types[i]) == 0)
			return true;
	}
	return false;
}

static bool is_redirect_type(const char *type)
{
	return strcasecmp(type, "REDIR301") == 0 || strcasecmp(type, "REDIR302") == 0;
}

/*
 * Read string field KEY of RECORD into *OUT (borrowed). A missing key gives
 * FALLBACK, or fails when FALLBACK is NULL.
 */
static zone_status read_string(apply_state *state, const template_record *record,
	const char *key, const char *fallback, const char **out)
{
	const json_t *value = json_object_get(record->json, key);
	if (value == NULL && fallback != NULL) {
		*out = fallback;
		return ZONE_OK;
	}
	if (value == NULL)
		return TEMPLATE_FAIL(state, record, "missing \"%s\"", key);
	if (!json_is_string(value))
		return TEMPLATE_FAIL(state, record, "\"%s\" is not a string", key);
	*out = json_string_value(value);
	return ZONE_OK;
}

/*
 * Resolve the owner name from field KEY ("host" or "name") into FRESH->name
 * and check its syntax; ALLOW_APEX is false for CNAME and SRV.
 */
static zone_status resolve_owner(apply_state *state, const template_record *record,
	const char *key, const char *fallback, bool allow_apex, zone_record *fresh)
{
	const char *raw = NULL;
	zone_status status = read_string(state, record, key, fallback, &raw);
	if (status == ZONE_OK)
		status = zone_resolve_name(&state->subst, raw, key, &fresh->name, state->err);
	if (status != ZONE_OK)
		return status;

	if (!zone_valid_owner(fresh->name, allow_apex))
		return DATA_FAIL(state, record, "invalid %s \"%s\" (from \"%s\")", key, fresh->name, raw);

	/* The owner name under the domain must fit in a DNS name too. */
	if (strcmp(fresh->name, "@") != 0 &&
	    strlen(fresh->name) + 1 + strlen(state->domain) > ZONE_NAME_MAX)
		return DATA_FAIL(state, record, "%s \"%s\" is too long under %s", key, fresh->name,
			state->domain);
	return ZONE_OK;
}

/* Resolve the integer field KEY into *OUT; a missing key fails unless HAS_DEFAULT. */
static zone_status resolve_number(apply_state *state, const template_record *record,
	const char *key, long max, bool has_default, long fallback, long *out)
{
	const json_t *value = json_object_get(record->json, key);
	if (value == NULL) {
		if (!has_default)
			return TEMPLATE_FAIL(state, record, "missing \"%s\"", key);
		*out = fallback;
		return ZONE_OK;
	}
	return zone_resolve_int(&state->subst, value, key, 0, max, out, state->err);
}

static zone_status resolve_ttl(apply_state *state, const template_record *record,
	zone_record *fresh)
{
	fresh->has_ttl = true;
	return resolve_number(state, record, "ttl", ZONE_TTL_MAX, false, 0, &fresh->ttl);
}

/* A, AAAA, CNAME, MX, NS and APEXCNAME: a name or address in "pointsTo". */
static zone_status build_pointer(apply_state *state, const template_record *record,
	zone_record *fresh)
{
	const char *type = record->type;
	bool is_apexcname = strcmp(type, "APEXCNAME") == 0;

	zone_status status = resolve_owner(state, record, "host", is_apexcname ? "@" : NULL,
		strcmp(type, "CNAME") != 0, fresh);
	if (status != ZONE_OK)
		return status;

	const char *raw = NULL;
	status = read_string(state, record, "pointsTo", NULL, &raw);
	if (status != ZONE_OK)
		return status;
	if (strcmp(type, "NS") == 0 && strcmp(raw, "@") == 0)
		return DATA_FAIL(state, record, "pointsTo \"%s\" would delegate the name to itself", raw);
	status = zone_resolve_target(&state->subst, raw, "pointsTo", &fresh->data, state->err);
	if (status != ZONE_OK)
		return status;
	zone_lower(fresh->data);

	bool valid;
	if (strcmp(type, "A") == 0)
		valid = zone_valid_address(fresh->data, 4);
	else if (strcmp(type, "AAAA") == 0)
		valid = zone_valid_address(fresh->data, 6);
	else
		valid = zone_valid_target(fresh->data);
	if (!valid)
		return DATA_FAIL(state, record, "invalid pointsTo \"%s\" (from \"%s\")", fresh->data, raw);

	status = resolve_ttl(state, record, fresh);
	if (status == ZONE_OK && strcmp(type, "MX") == 0) {
		fresh->has_priority = true;
		status = resolve_number(state, record, "priority", ZONE_U16_MAX, false, 0,
			&fresh->priority);
	}
	return status;
}

/* SRV: "name", "target", "protocol", "service" and the three numbers. */
static zone_status build_srv(apply_state *state, const template_record *record,
	zone_record *fresh)
{
	/* An SRV record needs a name below the apex ("_proto.@" is not a name). */
	zone_status status = resolve_owner(state, record, "name", NULL, false, fresh);
	if (status != ZONE_OK)
		return status;

	const char *raw = NULL;
	status = read_string(state, record, "target", NULL, &raw);
	if (status == ZONE_OK)
		status = zone_resolve_target(&state->subst, raw, "target", &fresh->data, state->err);
	if (status != ZONE_OK)
		return status;
	zone_lower(fresh->data);
	if (!zone_valid_target(fresh->data))
		return DATA_FAIL(state, record, "invalid target \"%s\" (from \"%s\")", fresh->data, raw);

	status = resolve_ttl(state, record, fresh);
	if (status == ZONE_OK)
		status = read_string(state, record, "protocol", NULL, &raw);
	if (status == ZONE_OK)
		status = zone_substitute(&state->subst, raw, "protocol", &fresh->protocol, state->err);
	if (status != ZONE_OK)
		return status;
	zone_lower(fresh->protocol);
	if (fresh->protocol[0] == '_')
		memmove(fresh->protocol, fresh->protocol + 1, strlen(fresh->protocol));
	if (strcmp(fresh->protocol, "tcp") != 0 && strcmp(fresh->protocol, "udp") != 0 &&
	    strcmp(fresh->protocol, "tls") != 0)
		return DATA_FAIL(state, record, "protocol \"%s\" is not tcp, udp or tls", raw);

	status = read_string(state, record, "service", NULL, &raw);
	if (status == ZONE_OK)
		status = zone_substitute(&state->subst, raw, "service", &fresh->service, state->err);
	if (status != ZONE_OK)
		return status;
	if (!zone_valid_target(fresh->service))
		return DATA_FAIL(state, record, "invalid service \"%s\" (from \"%s\")", fresh->service, raw);

	fresh->has_priority = fresh->has_weight = fresh->has_port = true;
	status = resolve_number(state, record, "priority", ZONE_U16_MAX, false, 0, &fresh->priority);
	if (status == ZONE_OK)
		status = resolve_number(state, record, "weight", ZONE_U16_MAX, false, 0, &fresh->weight);
	if (status == ZONE_OK)
		status = resolve_number(state, record, "port", ZONE_U16_MAX, false, 0, &fresh->port);
	return status;
}

/* Read txtConflictMatchingMode and its prefix; the default mode is None. */
static zone_status read_txt_mode(apply_state *state, const template_record *record,
	zone_txt_mode *mode, const char **prefix)
{
	const char *text = NULL;
	zone_status status = read_string(state, record, "txtConflictMatchingMode", "None", &text);
	if (status != ZONE_OK)
		return status;

	*prefix = "";
	if (strcmp(text, "None") == 0) {
		*mode = ZONE_TXT_MATCH_NONE;
	} else if (strcmp(text, "All") == 0) {
		*mode = ZONE_TXT_MATCH_ALL;
	} else if (strcmp(text, "Prefix") == 0) {
		*mode = ZONE_TXT_MATCH_PREFIX;
		return read_string(state, record, "txtConflictMatchingPrefix", NULL, prefix);
	} else {
		return TEMPLATE_FAIL(state, record,
			"txtConflictMatchingMode \"%s\" is not None, All or Prefix", text);
	}
	return ZONE_OK;
}

/* TXT and custom types: "host", "data" and "ttl". */
static zone_status build_text(apply_state *state, const template_record *record,
	bool custom, zone_record *fresh)
{
	zone_status status = resolve_owner(state, record, "host", NULL, true, fresh);
	if (status != ZONE_OK)
		return status;

	const char *raw = NULL;
	status = read_string(state, record, "data", NULL, &raw);
	if (status == ZONE_OK)
		status = zone_substitute(&state->subst, raw, "data", &fresh->data, state->err);
	if (status != ZONE_OK)
		return status;

	/* TXT data is opaque text, but other types would need "@" resolved as a name. */
	if (custom && fresh->data[0] == '\0')
		return DATA_FAIL(state, record, "empty data (from \"%s\")", raw);
	if (custom && strcmp(fresh->data, "@") == 0)
		return DATA_FAIL(state, record, "data \"%s\" is not supported for this type", raw);

	return resolve_ttl(state, record, fresh);
}

/* REDIR301 and REDIR302: "host" (default the apex) and the "target" URL. */
static zone_status build_redirect(apply_state *state, const template_record *record,
	zone_record *fresh)
{
	zone_status status = resolve_owner(state, record, "host", "@", true, fresh);
	if (status != ZONE_OK)
		return status;

	const char *raw = NULL;
	status = read_string(state, record, "target", NULL, &raw);
	if (status == ZONE_OK)
		status = zone_resolve_target(&state->subst, raw, "target", &fresh->data, state->err);
	if (status != ZONE_OK)
		return status;
	if (!zone_valid_url(fresh->data))
		return DATA_FAIL(state, record, "target \"%s\" is not an http or https URL", fresh->data);
	return ZONE_OK;
}

static const char spf_prefix[] = "v=spf1 ";
#define SPF_PREFIX_LEN (sizeof(spf_prefix) - 1)

/* True when RECORD is an SPF TXT record at NAME. */
static bool is_spf_at(const zone_record *record, const char *name)
{
	return strcasecmp(record->type, "TXT") == 0 && strcasecmp(record->name, name) == 0 &&
		strncmp(record->data, spf_prefix, SPF_PREFIX_LEN) == 0;
}

/* Return a new "v=spf1 RULES ..." that puts RULES in front of the terms of the SPF record DATA. */
static char *spf_merged(const char *rules, const char *data)
{
	const char *rest = data + SPF_PREFIX_LEN - 1;
	size_t size = SPF_PREFIX_LEN + strlen(rules) + strlen(rest) + 1;
	char *merged = malloc(size);
	if (merged != NULL)
		snprintf(merged, size, "%s%s%s", spf_prefix, rules, rest);
	return merged;
}

/*
 * Merge RULES into an SPF record at NAME that this apply already added (an
 * earlier SPFM or TXT of the same template), as a provider that writes each
 * record before reading the next would. Sets *MERGED when there was one.
 */
static zone_status merge_into_added(apply_state *state, const char *name, const char *rules,
	bool *merged)
{
	*merged = false;
	for (size_t i = 0; i < zone_count(state->added); i++) {
		/* state->added is this apply's own zone, so changing its records is safe. */
		zone_record *added = (zone_record *)zone_get(state->added, i);
		if (!is_spf_at(added, name))
			continue;

		*merged = true;
		if (strstr(added->data, rules) != NULL)
			return ZONE_OK;
		char *data = spf_merged(rules, added->data);
		if (data == NULL)
			return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
		free(added->data);
		added->data = data;
		return ZONE_OK;
	}
	return ZONE_OK;
}

/*
 * SPFM: merge "spfRules" into the SPF TXT record at the name, or create one.
 * Leaves FRESH->type NULL when the rules are already there or went into an
 * SPF record this apply added before.
 */
static zone_status build_spfm(apply_state *state, const template_record *record,
	zone_record *fresh)
{
	zone_status status = resolve_owner(state, record, "host", NULL, true, fresh);
	if (status != ZONE_OK)
		return status;

	const char *raw = NULL;
	char *rules = NULL;
	status = read_string(state, record, "spfRules", NULL, &raw);
	if (status == ZONE_OK)
		status = zone_substitute(&state->subst, raw, "spfRules", &rules, state->err);
	if (status != ZONE_OK)
		return status;

	long ttl = ZONE_SPF_DEFAULT_TTL;
	status = resolve_number(state, record, "ttl", ZONE_TTL_MAX, true, ZONE_SPF_DEFAULT_TTL, &ttl);
	if (status != ZONE_OK)
		goto out;

	bool merged = false;
	status = merge_into_added(state, fresh->name, rules, &merged);
	if (status != ZONE_OK || merged)
		goto out;

	zone_work_record *existing = NULL;
	for (size_t i = 0; i < state->work.count && existing == NULL; i++) {
		zone_work_record *old = &state->work.records[i];
		if (is_spf_at(&old->record, fresh->name))
			existing = old;
	}

	const char *base = "v=spf1 ~all";
	if (existing != NULL) {
		/* Rules already present, or a record this apply replaces anyway: nothing to merge. */
		if (strstr(existing->record.data, rules) != NULL || existing->replaced)
			goto out;
		existing->deleted = true;
		base = existing->record.data;
		ttl = existing->record.has_ttl ? existing->record.ttl : ZONE_SPF_DEFAULT_TTL;
	}

	fresh->data = spf_merged(rules, base);
	fresh->type = strdup("TXT");
	if (fresh->data == NULL || fresh->type == NULL) {
		status = zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
		goto out;
	}
	fresh->has_ttl = true;
	fresh->ttl = ttl;
out:
	free(rules);
	return status;
}

/* Attach "_dc" provenance of this apply to FRESH. */
static zone_status attach_dc(apply_state *state, const template_record *record,
	zone_record *fresh)
{
	const char *essential = NULL;
	zone_status status = read_string(state, record, "essential", "Always", &essential);
	if (status != ZONE_OK)
		return status;
	if (strcmp(essential, "Always") != 0 && strcmp(essential, "OnApply") != 0)
		return TEMPLATE_FAIL(state, record, "essential \"%s\" is not Always or OnApply", essential);

	bool failed = false;
	fresh->has_dc = true;
	fresh->dc.id = zone_strdup(state->opts->unique_id, &failed);
	fresh->dc.provider_id = zone_strdup(state->opts->provider_id, &failed);
	fresh->dc.service_id = zone_strdup(state->opts->service_id, &failed);
	fresh->dc.host = zone_strdup(state->dc_host, &failed);
	fresh->dc.essential = zone_strdup(essential, &failed);
	if (failed)
		return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
	return ZONE_OK;
}

/* Resolve one template record of a known or custom type into FRESH. */
static zone_status build_record(apply_state *state, const template_record *record,
	zone_record *fresh, zone_txt_mode *mode, const char **prefix)
{
	const char *type = record->type;

	*mode = ZONE_TXT_MATCH_NONE;
	*prefix = "";
	if (strcmp(type, "SRV") == 0)
		return build_srv(state, record, fresh);
	if (strcmp(type, "SPFM") == 0)
		return build_spfm(state, record, fresh);
	if (is_redirect_type(type))
		return build_redirect(state, record, fresh);
	if (strcmp(type, "TXT") == 0) {
		zone_status status = build_text(state, record, false, fresh);
		if (status == ZONE_OK)
			status = read_txt_mode(state, record, mode, prefix);
		return status;
	}
	if (is_core_type(type))
		return build_pointer(state, record, fresh);
	return build_text(state, record, true, fresh);
}

/* True when RECORD is outside the groups the caller selected. */
static bool skipped_by_group(const apply_state *state, const json_t *record)
{
	const json_t *group = json_object_get(record, "groupId");
	if (state->opts->group_id_count == 0 || !json_is_string(group))
		return false;

	for (size_t i = 0; i < state->opts->group_id_count; i++) {
		if (strcmp(state->opts->group_ids[i], json_string_value(group)) == 0)
			return false;
	}
	return true;
}

/* Run one template record: resolve it, apply its rules and add it. */
static zone_status process_record(apply_state *state, const json_t *json, size_t index)
{
	template_record record = { .json = json, .index = index };

	if (!json_is_object(json))
		return zone_fail(state->err, ZONE_ERR_INVALID_TEMPLATE,
			"template record %zu is not an object", index);
	if (skipped_by_group(state, json))
		return ZONE_OK;

	const json_t *type = json_object_get(json, "type");
	if (!json_is_string(type))
		return zone_fail(state->err, ZONE_ERR_INVALID_TEMPLATE,
			"template record %zu: missing \"type\"", index);
	const char *type_text = json_string_value(type);
	if (!zone_valid_type_syntax(type_text))
		return zone_fail(state->err, ZONE_ERR_UNKNOWN_TYPE,
			"template record %zu: unknown record type \"%s\"", index, type_text);
	for (size_t i = 0; type_text[i] != '\0'; i++)
		record.type[i] = (char)toupper((unsigned char)type_text[i]);

	zone_record fresh = { 0 };
	zone_txt_mode mode;
	const char *prefix;
	zone_status status = build_record(state, &record, &fresh, &mode, &prefix);
	if (status != ZONE_OK || (fresh.type == NULL && strcmp(record.type, "SPFM") == 0))
		goto out;

	if (fresh.type == NULL) {
		fresh.type = strdup(record.type);
		if (fresh.type == NULL) {
			status = zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
			goto out;
		}
	}

	if (strcmp(record.type, "SPFM") != 0)
		zone_mark_conflicts(&state->work, record.type, &fresh, mode, prefix);
	status = zone_check_self_conflict(state->added, &fresh, state->err);
	if (status != ZONE_OK)
		goto out;
	if (strcmp(record.type, "NS") != 0)
		zone_mark_parent_delegations(&state->work, &fresh);
	if (state->opts->multi_aware) {
		status = attach_dc(state, &record, &fresh);
		if (status != ZONE_OK)
			goto out;
	}
	if (zone_take(state->added, &fresh) != ZONE_OK)
		status = zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
out:
	zone_record_clear(&fresh);
	return status;
}

/*
 * Build the backing record of a redirect from REDIRECT_RECORD (type, data,
 * ttl) and the redirect's own attributes (host, ttl, groupId, essential).
 */
static json_t *backing_record(const zone_record *redirect_record, const json_t *redirect)
{
	json_t *object = json_pack("{s:s, s:s}", "type", redirect_record->type,
		"pointsTo", redirect_record->data);
	if (object == NULL)
		return NULL;
	if (redirect_record->has_ttl &&
	    json_object_set_new(object, "ttl", json_integer(redirect_record->ttl)) != 0)
		goto fail;

	const char *key;
	json_t *value;
	json_object_foreach((json_t *)redirect, key, value) {
		if (strcmp(key, "type") == 0 || strcmp(key, "data") == 0 ||
		    strcmp(key, "target") == 0 || strcmp(key, "pointsTo") == 0)
			continue;
		if (json_object_set(object, key, value) != 0)
			goto fail;
	}
	return object;
fail:
	json_decref(object);
	return NULL;
}

/*
 * Return in *OUT the template records with each REDIR301/REDIR302 preceded
 * by its backing records. Fails when the template redirects and the caller
 * has no redirect records.
 */
static zone_status expand_redirects(apply_state *state, const json_t *records, json_t **out)
{
	json_t *expanded = json_array();
	if (expanded == NULL)
		return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");

	size_t index;
	const json_t *record;
	json_array_foreach(records, index, record) {
		const json_t *type = json_object_get(record, "type");
		if (json_is_string(type) && is_redirect_type(json_string_value(type))) {
			const zone *backing = state->opts->redirect_records;
			if (backing == NULL) {
				json_decref(expanded);
				return zone_fail(state->err, ZONE_ERR_INVALID_TEMPLATE,
					"template record %zu: this provider does not implement %s",
					index, json_string_value(type));
			}
			for (size_t i = 0; i < zone_count(backing); i++) {
				if (json_array_append_new(expanded, backing_record(zone_get(backing, i),
					record)) != 0) {
					json_decref(expanded);
					return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
				}
			}
		}
		if (json_array_append(expanded, (json_t *)record) != 0) {
			json_decref(expanded);
			return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
		}
	}
	*out = expanded;
	return ZONE_OK;
}

/* Mark the records an earlier apply of this same template instance wrote. */
static void mark_replaced(apply_state *state)
{
	const zone_apply_opts *opts = state->opts;

	if (!opts->multi_aware || opts->multi_instance || opts->provider_id == NULL ||
	    opts->service_id == NULL)
		return;

	for (size_t i = 0; i < state->work.count; i++) {
		zone_work_record *old = &state->work.records[i];
		const zone_dc *dc = &old->record.dc;
		if (!old->record.has_dc || dc->provider_id == NULL || dc->service_id == NULL)
			continue;
		if (strcasecmp(dc->provider_id, opts->provider_id) != 0 ||
		    strcasecmp(dc->service_id, opts->service_id) != 0)
			continue;

		bool same_host = zone_name_is_apex(state->host) ? zone_name_is_apex(dc->host)
			: dc->host != NULL && strcasecmp(dc->host, state->host) == 0;
		if (same_host)
			old->replaced = true;
	}
}

/* Split the work into RESULT: added records (minus duplicates), deleted and final. */
static zone_status collect_result(apply_state *state, zone_result *result)
{
	result->added = zone_new();
	result->deleted = zone_new();
	result->final = zone_new();
	if (result->added == NULL || result->deleted == NULL || result->final == NULL)
		return ZONE_ERR_NOMEM;

	for (size_t i = 0; i < zone_count(state->added); i++) {
		const zone_record *fresh = zone_get(state->added, i);

		/* A record the zone keeps already is not added a second time. */
		bool duplicate = false;
		for (size_t j = 0; j < state->work.count && !duplicate; j++) {
			const zone_work_record *old = &state->work.records[j];
			duplicate = !old->deleted && !old->replaced &&
				zone_records_equal(&old->record, fresh);
		}
		if (duplicate)
			continue;
		if (zone_append(result->added, fresh) != ZONE_OK ||
		    zone_append(result->final, fresh) != ZONE_OK)
			return ZONE_ERR_NOMEM;
	}

	for (size_t i = 0; i < state->work.count; i++) {
		const zone_work_record *old = &state->work.records[i];
		zone *target = old->deleted || old->replaced ? result->deleted : result->final;
		if (zone_append(target, &old->record) != ZONE_OK)
			return ZONE_ERR_NOMEM;
	}
	return ZONE_OK;
}

/* Check and lower-case the domain and host of OPTS into STATE. */
static zone_status prepare_names(apply_state *state)
{
	const zone_apply_opts *opts = state->opts;
	bool failed = false;

	if (opts->domain == NULL)
		return zone_fail(state->err, ZONE_ERR_INVALID_DATA, "missing domain");
	state->domain = zone_strdup(opts->domain, &failed);
	state->host = zone_strdup(zone_name_is_apex(opts->host) ? "" : opts->host, &failed);
	state->dc_host = zone_strdup(opts->host, &failed);
	if (failed)
		return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
	zone_lower(state->domain);
	zone_lower(state->host);
	zone_lower(state->dc_host);

	size_t domain_len = strlen(state->domain);
	if (!zone_valid_target(state->domain) || state->domain[domain_len - 1] == '.' ||
	    strchr(state->domain, '_') != NULL)
		return zone_fail(state->err, ZONE_ERR_INVALID_DATA, "invalid domain \"%s\"", opts->domain);
	if (state->host[0] != '\0' &&
	    (!zone_valid_owner(state->host, false) || strchr(state->host, '*') != NULL ||
	     strlen(state->host) + 1 + domain_len > ZONE_NAME_MAX))
		return zone_fail(state->err, ZONE_ERR_INVALID_DATA, "invalid host \"%s\"", opts->host);

	state->subst.domain = state->domain;
	state->subst.host = state->host;
	state->subst.params = opts->params;
	return ZONE_OK;
}

/* True when PARAMS is given but is not a JSON object. */
static bool params_invalid(const json_t *params)
{
	return params != NULL && !json_is_object(params);
}

/* Copy ZONE's records into the work list. */
static zone_status copy_work(apply_state *state, const zone *z)
{
	size_t count = zone_count(z);
	if (count == 0)
		return ZONE_OK;

	state->work.records = calloc(count, sizeof(zone_work_record));
	if (state->work.records == NULL)
		return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < count; i++) {
		if (zone_record_copy(&state->work.records[i].record, zone_get(z, i)) != ZONE_OK)
			return zone_fail(state->err, ZONE_ERR_NOMEM, "out of memory");
		state->work.count++;
	}
	return ZONE_OK;
}

zone_status zone_process_records(const zone *z, const json_t *records,
	const zone_apply_opts *opts, zone_result *result, zone_error *err)
{
	apply_state state = { .opts = opts, .err = err };
	json_t *expanded = NULL;

	memset(result, 0, sizeof(*result));
	zone_status status = prepare_names(&state);
	if (status != ZONE_OK)
		goto out;
	if (!json_is_array(records)) {
		status = zone_fail(err, ZONE_ERR_INVALID_TEMPLATE, "template records are not a JSON array");
		goto out;
	}
	if (params_invalid(opts->params)) {
		status = zone_fail(err, ZONE_ERR_INVALID_DATA, "parameters are not a JSON object");
		goto out;
	}

	state.added = zone_new();
	if (state.added == NULL) {
		status = zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
		goto out;
	}
	status = copy_work(&state, z);
	if (status == ZONE_OK)
		status = expand_redirects(&state, records, &expanded);
	if (status != ZONE_OK)
		goto out;

	mark_replaced(&state);
	size_t index;
	const json_t *record;
	json_array_foreach(expanded, index, record) {
		status = process_record(&state, record, index);
		if (status != ZONE_OK)
			goto out;
	}
	if (opts->multi_aware)
		zone_cascade_deletes(&state.work);

	if (collect_result(&state, result) != ZONE_OK) {
		zone_result_clear(result);
		status = zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
	}
out:
	json_decref(expanded);
	for (size_t i = 0; i < state.work.count; i++)
		zone_record_clear(&state.work.records[i].record);
	free(state.work.records);
	zone_free(state.added);
	free(state.domain);
	free(state.host);
	free(state.dc_host);
	return status;
}

/* Store a random version 4 UUID in TEXT (37 bytes). */
static bool random_uuid(char text[37])
{
	unsigned char bytes[16];
	if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
		return false;

	bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40);
	bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80);
	snprintf(text, 37,
		"%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
		bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
	return true;
}

zone_status zone_apply_template(const zone *z, const json_t *template,
	const zone_apply_opts *opts, zone_result *result, zone_error *err)
{
	memset(result, 0, sizeof(*result));
	if (!json_is_object(template))
		return zone_fail(err, ZONE_ERR_INVALID_TEMPLATE, "template is not a JSON object");

	const json_t *provider_id = json_object_get(template, "providerId");
	const json_t *service_id = json_object_get(template, "serviceId");
	const json_t *records = json_object_get(template, "records");
	if (!json_is_string(provider_id) || !json_is_string(service_id) || !json_is_array(records))
		return zone_fail(err, ZONE_ERR_INVALID_TEMPLATE,
			"template lacks a providerId, a serviceId or a records list");

	if (json_is_true(json_object_get(template, "hostRequired")) && zone_name_is_apex(opts->host))
		return zone_fail(err, ZONE_ERR_HOST_REQUIRED, "template %s/%s requires a host",
			json_string_value(provider_id), json_string_value(service_id));

	zone_apply_opts effective = *opts;
	effective.provider_id = json_string_value(provider_id);
	effective.service_id = json_string_value(service_id);
	effective.multi_instance = opts->multi_aware &&
		json_is_true(json_object_get(template, "multiInstance"));

	char uuid[37];
	if (opts->multi_aware && opts->unique_id == NULL) {
		if (!random_uuid(uuid))
			return zone_fail(err, ZONE_ERR_NOMEM, "reading random bytes for the instance id failed");
		effective.unique_id = uuid;
	}
	return zone_process_records(z, records, &effective, result, err);
}
