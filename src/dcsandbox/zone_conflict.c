/*
 * The conflict rules of the zone engine: which records of the zone a new
 * record deletes, which combinations inside one template are invalid, and
 * how the deletion of an essential record takes its whole template
 * instance with it. The rules follow the reference DNS-provider code
 * (DomainConnectApplyZone); APEXCNAME, which it lacks, is treated as a
 * CNAME that may sit at the apex.
 */
#include "zone_internal.h"

#include <string.h>
#include <strings.h>

/* Record types each address or alias type deletes at its own name. */
static const struct {
	const char *type;
	const char *deletes[8];
} delete_rules[] = {
	{ "A", { "A", "AAAA", "CNAME", "APEXCNAME", "REDIR301", "REDIR302" } },
	{ "AAAA", { "A", "AAAA", "CNAME", "APEXCNAME", "REDIR301", "REDIR302" } },
	{ "MX", { "MX", "CNAME" } },
	{ "CNAME", { "A", "AAAA", "CNAME", "MX", "TXT", "REDIR301", "REDIR302" } },
	{ "APEXCNAME", { "A", "AAAA", "CNAME", "APEXCNAME", "REDIR301", "REDIR302" } },
	{ "REDIR301", { "CNAME", "REDIR301", "REDIR302" } },
	{ "REDIR302", { "CNAME", "REDIR301", "REDIR302" } },
	{ "SRV", { "SRV" } },
};

/* True when the rule for NEW_TYPE deletes records of ZONE_TYPE at the same name. */
static bool type_deletes(const char *new_type, const char *zone_type)
{
	for (size_t i = 0; i < sizeof(delete_rules) / sizeof(delete_rules[0]); i++) {
		if (strcmp(delete_rules[i].type, new_type) != 0)
			continue;
		for (size_t j = 0; delete_rules[i].deletes[j] != NULL; j++) {
			if (strcasecmp(delete_rules[i].deletes[j], zone_type) == 0)
				return true;
		}
		return false;
	}
	return false;
}

/* True when the TXT rule deletes the zone record OLD at the new TXT record's name. */
static bool txt_deletes(const zone_record *old, zone_txt_mode mode, const char *prefix)
{
	if (strcasecmp(old->type, "CNAME") == 0)
		return true;
	if (strcasecmp(old->type, "TXT") != 0)
		return false;

	switch (mode) {
	case ZONE_TXT_MATCH_ALL:
		return true;
	case ZONE_TXT_MATCH_PREFIX:
		return strncmp(old->data, prefix, strlen(prefix)) == 0;
	case ZONE_TXT_MATCH_NONE:
		break;
	}
	return false;
}

void zone_mark_conflicts(zone_work *work, const char *template_type,
	const zone_record *fresh, zone_txt_mode mode, const char *prefix)
{
	bool is_ns = strcmp(template_type, "NS") == 0;
	bool is_txt = strcmp(template_type, "TXT") == 0;

	for (size_t i = 0; i < work->count; i++) {
		zone_work_record *old = &work->records[i];
		if (old->replaced)
			continue;

		/* A delegation takes over its name and everything below it. */
		if (is_ns) {
			if (zone_name_at_or_below(old->record.name, fresh->name))
				old->deleted = true;
			continue;
		}

		if (strcasecmp(old->record.name, fresh->name) != 0)
			continue;
		if (is_txt ? txt_deletes(&old->record, mode, prefix)
			   : type_deletes(template_type, old->record.type))
			old->deleted = true;
	}
}

const zone_record *zone_find_cname_clash(const zone *z, size_t count,
	const zone_record *fresh)
{
	bool fresh_cname = strcasecmp(fresh->type, "CNAME") == 0;

	for (size_t i = 0; i < count && i < zone_count(z); i++) {
		const zone_record *other = zone_get(z, i);
		if ((fresh_cname || strcasecmp(other->type, "CNAME") == 0) &&
		    strcasecmp(other->name, fresh->name) == 0)
			return other;
	}
	return NULL;
}

zone_status zone_check_self_conflict(const zone *added, const zone_record *fresh,
	zone_error *err)
{
	bool fresh_ns = strcmp(fresh->type, "NS") == 0;
	const zone_record *clash = zone_find_cname_clash(added, zone_count(added), fresh);

	if (clash != NULL)
		return zone_fail(err, ZONE_ERR_INVALID_DATA,
			"template record %s %s conflicts with template record %s %s",
			fresh->type, fresh->name, clash->type, clash->name);

	for (size_t i = 0; i < zone_count(added); i++) {
		const zone_record *other = zone_get(added, i);
		bool other_ns = strcmp(other->type, "NS") == 0;
		bool conflict = false;

		if (fresh_ns && !other_ns && zone_name_at_or_below(other->name, fresh->name))
			conflict = true;
		if (other_ns && !fresh_ns && zone_name_at_or_below(fresh->name, other->name))
			conflict = true;

		if (conflict)
			return zone_fail(err, ZONE_ERR_INVALID_DATA,
				"template record %s %s conflicts with template record %s %s",
				fresh->type, fresh->name, other->type, other->name);
	}
	return ZONE_OK;
}

void zone_mark_parent_delegations(zone_work *work, const zone_record *fresh)
{
	if (strcmp(fresh->name, "@") == 0)
		return;

	for (size_t i = 0; i < work->count; i++) {
		zone_work_record *old = &work->records[i];
		if (old->replaced || strcasecmp(old->record.type, "NS") != 0)
			continue;
		if (zone_name_at_or_below(fresh->name, old->record.name))
			old->deleted = true;
	}
}

/* True when A and B carry "_dc" of the same template instance scope. */
static bool same_instance_scope(const zone_record *a, const zone_record *b)
{
	const zone_dc *x = &a->dc;
	const zone_dc *y = &b->dc;

	if (!a->has_dc || !b->has_dc)
		return false;
	if (x->provider_id == NULL || y->provider_id == NULL ||
	    x->service_id == NULL || y->service_id == NULL)
		return false;
	if (strcasecmp(x->provider_id, y->provider_id) != 0 ||
	    strcasecmp(x->service_id, y->service_id) != 0)
		return false;
	if (zone_name_is_apex(x->host) || zone_name_is_apex(y->host))
		return zone_name_is_apex(x->host) && zone_name_is_apex(y->host);
	return strcasecmp(x->host, y->host) == 0;
}

void zone_cascade_deletes(zone_work *work)
{
	for (size_t i = 0; i < work->count; i++) {
		const zone_work_record *old = &work->records[i];
		const char *essential = old->record.dc.essential;

		/* OnApply records may be removed later without breaking the service. */
		if (!old->deleted || !old->record.has_dc || essential == NULL ||
		    strcmp(essential, "Always") != 0)
			continue;

		for (size_t j = 0; j < work->count; j++) {
			if (same_instance_scope(&old->record, &work->records[j].record))
				work->records[j].deleted = true;
		}
	}
}

/* strcmp that treats NULL as equal only to NULL. */
static bool same_text(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

bool zone_records_equal(const zone_record *a, const zone_record *b)
{
	if (strcasecmp(a->type, b->type) != 0 || strcasecmp(a->name, b->name) != 0)
		return false;
	if (!same_text(a->data, b->data))
		return false;
	if (a->has_priority != b->has_priority || (a->has_priority && a->priority != b->priority))
		return false;
	if (strcasecmp(a->type, "SRV") != 0)
		return true;

	return a->has_weight == b->has_weight && a->weight == b->weight &&
		a->has_port == b->has_port && a->port == b->port &&
		same_text(a->protocol, b->protocol) && same_text(a->service, b->service);
}
