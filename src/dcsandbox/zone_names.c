/*
 * Variable substitution and name handling for the zone engine, and the
 * syntax checks of owner names, targets, addresses, URLs and RR types.
 */
#include "zone_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A growing string; `failed` is set once an allocation fails. */
typedef struct text_buffer {
	char *text;
	size_t length;
	size_t capacity;
	bool failed;
} text_buffer;

static void buffer_append(text_buffer *buffer, const char *bytes, size_t count)
{
	if (buffer->failed)
		return;

	if (buffer->length + count + 1 > buffer->capacity) {
		size_t capacity = buffer->capacity == 0 ? 64 : buffer->capacity;
		while (capacity < buffer->length + count + 1)
			capacity *= 2;
		char *text = realloc(buffer->text, capacity);
		if (text == NULL) {
			buffer->failed = true;
			return;
		}
		buffer->text = text;
		buffer->capacity = capacity;
	}
	memcpy(buffer->text + buffer->length, bytes, count);
	buffer->length += count;
	buffer->text[buffer->length] = '\0';
}

static void buffer_append_text(text_buffer *buffer, const char *text)
{
	buffer_append(buffer, text, strlen(text));
}

/* Store the fully qualified name of the applied host ([host.]domain) in BUFFER. */
static void append_fqdn(text_buffer *buffer, const zone_subst *subst)
{
	if (subst->host[0] != '\0') {
		buffer_append_text(buffer, subst->host);
		buffer_append(buffer, ".", 1);
	}
	buffer_append_text(buffer, subst->domain);
}

/* Append the value of variable NAME to BUFFER; false when it has none. */
static bool append_variable(text_buffer *buffer, const zone_subst *subst, const char *name)
{
	if (strcmp(name, "fqdn") == 0) {
		append_fqdn(buffer, subst);
		return true;
	}
	if (strcmp(name, "domain") == 0) {
		buffer_append_text(buffer, subst->domain);
		return true;
	}
	if (strcmp(name, "host") == 0) {
		buffer_append_text(buffer, subst->host);
		return true;
	}

	const json_t *value = subst->params != NULL ? json_object_get(subst->params, name) : NULL;
	if (!json_is_string(value))
		return false;
	buffer_append(buffer, json_string_value(value), json_string_length(value));
	return true;
}

zone_status zone_substitute(const zone_subst *subst, const char *input,
	const char *field, char **out, zone_error *err)
{
	text_buffer buffer = { 0 };
	zone_status status = ZONE_OK;

	*out = NULL;
	buffer_append(&buffer, "", 0);

	/* Values are inserted as they are and never scanned for '%' again. */
	const char *cursor = input;
	while (*cursor != '\0') {
		const char *open = strchr(cursor, '%');
		if (open == NULL) {
			buffer_append_text(&buffer, cursor);
			break;
		}
		buffer_append(&buffer, cursor, (size_t)(open - cursor));

		const char *close = strchr(open + 1, '%');
		if (close == NULL) {
			status = zone_fail(err, ZONE_ERR_INVALID_TEMPLATE,
				"unpaired '%%' in %s: \"%s\"", field, input);
			goto out;
		}

		char *name = strndup(open + 1, (size_t)(close - open - 1));
		if (name == NULL) {
			status = zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
			goto out;
		}
		bool found = append_variable(&buffer, subst, name);
		if (!found)
			status = zone_fail(err, ZONE_ERR_MISSING_PARAMETER,
				"no value for variable \"%s\" in %s", name, field);
		free(name);
		if (!found)
			goto out;

		cursor = close + 1;
	}

	if (buffer.failed) {
		status = zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
		goto out;
	}
	*out = buffer.text;
	buffer.text = NULL;
out:
	free(buffer.text);
	return status;
}

/* Replace *TEXT with a copy of REPLACEMENT. */
static zone_status replace_text(char **text, const char *replacement, zone_error *err)
{
	char *copy = strdup(replacement);
	if (copy == NULL)
		return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
	free(*text);
	*text = copy;
	return ZONE_OK;
}

/* Make the fully qualified NAME (ending in '.') relative to DOMAIN when it is inside it. */
static zone_status strip_domain(char **name, const char *domain, zone_error *err)
{
	size_t name_len = strlen(*name);
	size_t domain_len = strlen(domain);

	/* NAME is "<domain>." exactly: the apex. */
	if (name_len == domain_len + 1 && strncmp(*name, domain, domain_len) == 0)
		return replace_text(name, "@", err);

	/* NAME is "<labels>.<domain>.": keep "<labels>". */
	if (name_len > domain_len + 2) {
		const char *tail = *name + name_len - domain_len - 1;
		if (tail[-1] == '.' && strncmp(tail, domain, domain_len) == 0) {
			(*name)[name_len - domain_len - 2] = '\0';
			return ZONE_OK;
		}
	}

	/* A name outside the domain keeps its final dot and fails the syntax check. */
	return ZONE_OK;
}

zone_status zone_resolve_name(const zone_subst *subst, const char *input,
	const char *field, char **out, zone_error *err)
{
	char *name = NULL;
	zone_status status = zone_substitute(subst, input, field, &name, err);
	if (status != ZONE_OK)
		return status;
	zone_lower(name);

	if (zone_name_is_apex(name)) {
		status = replace_text(&name, subst->host[0] != '\0' ? subst->host : "@", err);
	} else if (name[strlen(name) - 1] == '.') {
		status = strip_domain(&name, subst->domain, err);
	} else if (subst->host[0] != '\0') {
		text_buffer buffer = { 0 };
		buffer_append_text(&buffer, name);
		buffer_append(&buffer, ".", 1);
		buffer_append_text(&buffer, subst->host);
		if (buffer.failed) {
			free(buffer.text);
			status = zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
		} else {
			free(name);
			name = buffer.text;
		}
	}

	if (status != ZONE_OK) {
		free(name);
		return status;
	}
	*out = name;
	return ZONE_OK;
}

zone_status zone_resolve_target(const zone_subst *subst, const char *input,
	const char *field, char **out, zone_error *err)
{
	char *target = NULL;
	zone_status status = zone_substitute(subst, input, field, &target, err);
	if (status != ZONE_OK)
		return status;

	if (strcmp(target, "@") == 0) {
		text_buffer buffer = { 0 };
		append_fqdn(&buffer, subst);
		free(target);
		if (buffer.failed) {
			free(buffer.text);
			return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
		}
		target = buffer.text;
	}
	*out = target;
	return ZONE_OK;
}

/* True when TEXT is one or more decimal digits and nothing else. */
static bool is_digits(const char *text)
{
	if (*text == '\0')
		return false;
	for (; *text != '\0'; text++) {
		if (!isdigit((unsigned char)*text))
			return false;
	}
	return true;
}

/* True when TEXT is exactly one "%name%" with a non-empty name. */
static bool is_single_variable(const char *text)
{
	size_t length = strlen(text);
	if (length < 3 || text[0] != '%' || text[length - 1] != '%')
		return false;
	return memchr(text + 1, '%', length - 2) == NULL;
}

zone_status zone_resolve_int(const zone_subst *subst, const json_t *value,
	const char *field, long min, long max, long *out, zone_error *err)
{
	if (json_is_integer(value)) {
		json_int_t number = json_integer_value(value);
		if (number < min || number > max)
			return zone_fail(err, ZONE_ERR_INVALID_DATA,
				"%s %lld is outside %ld..%ld", field, (long long)number, min, max);
		*out = (long)number;
		return ZONE_OK;
	}
	if (!json_is_string(value))
		return zone_fail(err, ZONE_ERR_INVALID_DATA,
			"%s must be an integer or a single %%variable%%", field);

	const char *raw = json_string_value(value);
	char *resolved = NULL;
	if (is_digits(raw)) {
		resolved = strdup(raw);
		if (resolved == NULL)
			return zone_fail(err, ZONE_ERR_NOMEM, "out of memory");
	} else if (is_single_variable(raw)) {
		zone_status status = zone_substitute(subst, raw, field, &resolved, err);
		if (status != ZONE_OK)
			return status;
	} else {
		return zone_fail(err, ZONE_ERR_INVALID_DATA,
			"%s \"%s\" must be an integer or a single %%variable%%", field, raw);
	}

	zone_status status = ZONE_OK;
	char *end = NULL;
	errno = 0;
	long number = is_digits(resolved) ? strtol(resolved, &end, 10) : -1;
	if (!is_digits(resolved) || errno != 0 || number < min || number > max)
		status = zone_fail(err, ZONE_ERR_INVALID_DATA,
			"%s \"%s\" is not an integer from %ld to %ld", field, resolved, min, max);
	else
		*out = number;
	free(resolved);
	return status;
}

/* True when LABEL (LENGTH bytes) is a valid DNS label, or "*" with ALLOW_STAR. */
static bool valid_label(const char *label, size_t length, bool allow_star)
{
	if (allow_star && length == 1 && label[0] == '*')
		return true;
	if (length == 0 || length > ZONE_LABEL_MAX)
		return false;
	if (label[0] == '-' || label[length - 1] == '-')
		return false;
	for (size_t i = 0; i < length; i++) {
		unsigned char c = (unsigned char)label[i];
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
	}
	return true;
}

/* True when every label of NAME (LENGTH bytes) is valid; a '*' only first with ALLOW_STAR. */
static bool valid_labels(const char *name, size_t length, bool allow_star)
{
	const char *end = name + length;
	const char *label = name;
	bool first = true;

	for (;;) {
		const char *dot = memchr(label, '.', (size_t)(end - label));
		const char *label_end = dot != NULL ? dot : end;
		if (!valid_label(label, (size_t)(label_end - label), allow_star && first))
			return false;
		if (dot == NULL)
			return true;
		label = dot + 1;
		first = false;
	}
}

bool zone_valid_owner(const char *name, bool allow_apex)
{
	if (zone_name_is_apex(name))
		return allow_apex;

	size_t length = strlen(name);
	return length <= ZONE_NAME_MAX && valid_labels(name, length, true);
}

bool zone_valid_target(const char *name)
{
	size_t length = strlen(name);
	if (length > ZONE_NAME_MAX)
		return false;
	if (length > 0 && name[length - 1] == '.')
		length--;
	return length > 0 && valid_labels(name, length, false);
}

/*
 * True when TEXT is an IPv4 address in decimal dotted form with one to four
 * parts, as inet_aton(3) reads it ("132.148.25" is 132.148.0.25). The
 * reference provider implementation accepts the short forms and stores the
 * text unchanged, and its compliance vectors expect the same; hexadecimal and
 * octal spellings stay invalid.
 */
static bool valid_dotted_ipv4(const char *text)
{
	struct in_addr address;

	if (text[0] == '\0' || strspn(text, "0123456789.") != strlen(text))
		return false;
	for (const char *p = text; *p != '\0'; p++) {
		bool part_start = p == text || p[-1] == '.';

		if (*p == '.' && (part_start || p[1] == '\0'))
			return false;
		if (part_start && p[0] == '0' && isdigit((unsigned char)p[1]))
			return false; /* a leading zero means octal to inet_aton */
	}
	return inet_aton(text, &address) != 0;
}

bool zone_valid_address(const char *text, int family)
{
	unsigned char address[16];

	if (family != 6)
		return valid_dotted_ipv4(text);
	return inet_pton(AF_INET6, text, address) == 1;
}

/* True when AUTHORITY (LENGTH bytes) is host[:port] with a valid host name. */
static bool valid_authority(const char *authority, size_t length)
{
	char host[ZONE_NAME_MAX + 1];
	const char *colon = memchr(authority, ':', length);
	size_t host_length = colon != NULL ? (size_t)(colon - authority) : length;

	if (colon != NULL) {
		char port[8];
		size_t port_length = length - host_length - 1;
		if (port_length == 0 || port_length >= sizeof(port))
			return false;
		memcpy(port, colon + 1, port_length);
		port[port_length] = '\0';
		if (!is_digits(port) || strtol(port, NULL, 10) < 1 || strtol(port, NULL, 10) > 65535)
			return false;
	}
	if (host_length == 0 || host_length > ZONE_NAME_MAX)
		return false;
	memcpy(host, authority, host_length);
	host[host_length] = '\0';
	return zone_valid_target(host);
}

bool zone_valid_url(const char *text)
{
	const char *rest;
	if (strncasecmp(text, "http://", 7) == 0)
		rest = text + 7;
	else if (strncasecmp(text, "https://", 8) == 0)
		rest = text + 8;
	else
		return false;

	for (const char *p = text; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}

	/* User info in a redirect target is rejected because it hides the real host. */
	size_t authority_length = strcspn(rest, "/?#");
	if (memchr(rest, '@', authority_length) != NULL)
		return false;
	return valid_authority(rest, authority_length);
}

bool zone_valid_type_syntax(const char *type)
{
	size_t length = strlen(type);
	if (length == 0 || length > ZONE_LABEL_MAX || !isalnum((unsigned char)type[0]))
		return false;
	for (size_t i = 1; i < length; i++) {
		unsigned char c = (unsigned char)type[i];
		if (!isalnum(c) && c != '-')
			return false;
	}
	return true;
}

/* Fail a zone record check, naming the record, the field, the value and the fix. */
static zone_status record_fault(zone_error *err, size_t index, const char *field,
	const char *value, const char *problem, const char *fix)
{
	return zone_fail(err, ZONE_ERR_INVALID_ZONE, "record %zu: %s \"%.96s\" %s; %s",
		index, field, value, problem, fix);
}

/* The same for a field the record lacks. */
static zone_status missing_fault(zone_error *err, size_t index, const char *field, const char *fix)
{
	return zone_fail(err, ZONE_ERR_INVALID_ZONE, "record %zu: %s is missing; %s", index, field, fix);
}

/* The same for a number field. */
static zone_status number_fault(zone_error *err, size_t index, const char *field,
	long value, long max)
{
	return zone_fail(err, ZONE_ERR_INVALID_ZONE,
		"record %zu: %s %ld is out of range; give an integer from 0 to %ld",
		index, field, value, max);
}

/* True when TYPE names one of the types in the NULL-terminated list TYPES. */
static bool type_in(const char *type, const char *const *types)
{
	for (; *types != NULL; types++) {
		if (strcasecmp(type, *types) == 0)
			return true;
	}
	return false;
}

static const char *const target_types[] = { "CNAME", "MX", "NS", "APEXCNAME", "SRV", NULL };
static const char *const redirect_types[] = { "REDIR301", "REDIR302", NULL };

/* Check the "data" of RECORD against its type. */
static zone_status check_data(const zone_record *record, size_t index, zone_error *err)
{
	const char *type = record->type;
	const char *data = record->data;

	if (strcasecmp(type, "A") == 0 && !zone_valid_address(data, 4))
		return record_fault(err, index, "data", data, "is not an IPv4 address",
			"give a dotted address such as 192.0.2.10");
	if (strcasecmp(type, "AAAA") == 0 && !zone_valid_address(data, 6))
		return record_fault(err, index, "data", data, "is not an IPv6 address",
			"give an address such as 2001:db8::10");
	if (type_in(type, target_types) && strcmp(data, "@") != 0 && !zone_valid_target(data))
		return record_fault(err, index, "data", data, "is not a host name",
			"give a name such as target.example.net (one final dot allowed), or \"@\" for the apex");
	if (type_in(type, redirect_types) && !zone_valid_url(data))
		return record_fault(err, index, "data", data, "is not an http or https URL",
			"give a URL such as https://www.example.net/");

	bool custom = strcasecmp(type, "A") != 0 && strcasecmp(type, "AAAA") != 0 &&
		strcasecmp(type, "TXT") != 0 && !type_in(type, target_types) &&
		!type_in(type, redirect_types);
	if (custom && (data[0] == '\0' || strcmp(data, "@") == 0))
		return record_fault(err, index, "data", data, "is not usable data for this type",
			"give the record's data in presentation form, such as 0 issue \"ca.example.net\" for CAA");
	return ZONE_OK;
}

/* Check the SRV fields of RECORD, or their absence on other types. */
static zone_status check_srv_fields(const zone_record *record, size_t index, zone_error *err)
{
	if (strcasecmp(record->type, "SRV") != 0) {
		bool stray = record->has_weight || record->has_port || record->protocol != NULL ||
			record->service != NULL;
		if (stray)
			return record_fault(err, index, "type", record->type, "has no weight, port, protocol or service",
				"remove them, or use type SRV");
		return ZONE_OK;
	}

	const char *protocol = record->protocol != NULL ? record->protocol : "";
	if (protocol[0] == '_')
		protocol++;
	if (strcasecmp(protocol, "tcp") != 0 && strcasecmp(protocol, "udp") != 0 &&
	    strcasecmp(protocol, "tls") != 0)
		return record_fault(err, index, "protocol", protocol, "is not tcp, udp or tls",
			"give \"protocol\": \"tcp\", \"udp\" or \"tls\"");
	if (record->service == NULL || !zone_valid_target(record->service))
		return record_fault(err, index, "service", record->service != NULL ? record->service : "",
			"is not a service name", "give a name such as _sip");
	if (!record->has_weight || !record->has_port)
		return missing_fault(err, index, record->has_weight ? "port" : "weight",
			"give an integer from 0 to 65535");
	if (record->weight > ZONE_U16_MAX)
		return number_fault(err, index, "weight", record->weight, ZONE_U16_MAX);
	if (record->port > ZONE_U16_MAX)
		return number_fault(err, index, "port", record->port, ZONE_U16_MAX);
	return ZONE_OK;
}

/* Check one record on its own (everything but clashes with other records). */
static zone_status check_record(const zone_record *record, size_t index, const char *domain,
	zone_error *err)
{
	const char *type = record->type;

	if (!zone_valid_type_syntax(type))
		return record_fault(err, index, "type", type, "is not a DNS record type",
			"use A, AAAA, CNAME, MX, TXT, SRV, NS, CAA or another RR type name");
	if (strcasecmp(type, "SPFM") == 0)
		return record_fault(err, index, "type", type, "is a template instruction, not a record",
			"store the SPF policy as a TXT record such as \"v=spf1 include:example.net ~all\"");
	if (!zone_valid_owner(record->name, true))
		return record_fault(err, index, "name", record->name, "is not a relative owner name",
			"give \"@\" for the apex or dot-separated labels of letters, digits, '-' and '_'"
			" without the zone's domain");
	if (!zone_name_is_apex(record->name) &&
	    strlen(record->name) + 1 + strlen(domain) > ZONE_NAME_MAX)
		return record_fault(err, index, "name", record->name, "is too long under the zone",
			"keep the full name within 253 characters");

	zone_status status = check_data(record, index, err);
	if (status != ZONE_OK)
		return status;

	if (!record->has_ttl && !type_in(type, redirect_types))
		return missing_fault(err, index, "ttl",
			"give \"ttl\" in seconds, an integer from 0 to 2147483647");
	if (record->has_ttl && record->ttl > ZONE_TTL_MAX)
		return number_fault(err, index, "ttl", record->ttl, ZONE_TTL_MAX);

	bool wants_priority = strcasecmp(type, "MX") == 0 || strcasecmp(type, "SRV") == 0;
	if (wants_priority && !record->has_priority)
		return missing_fault(err, index, "priority",
			"give \"priority\", an integer from 0 to 65535");
	if (!wants_priority && record->has_priority)
		return record_fault(err, index, "type", type, "has no priority",
			"remove \"priority\", or use type MX or SRV");
	if (record->has_priority && record->priority > ZONE_U16_MAX)
		return number_fault(err, index, "priority", record->priority, ZONE_U16_MAX);
	return check_srv_fields(record, index, err);
}

zone_status zone_check_records(const zone *records, const zone *existing,
	const char *domain, zone_error *err)
{
	for (size_t i = 0; i < zone_count(records); i++) {
		const zone_record *record = zone_get(records, i);
		zone_status status = check_record(record, i, domain, err);
		if (status != ZONE_OK)
			return status;

		const zone_record *clash = zone_find_cname_clash(records, i, record);
		const char *where = "an earlier record of this request";
		if (clash == NULL && existing != NULL) {
			clash = zone_find_cname_clash(existing, zone_count(existing), record);
			where = "a record already in the zone";
		}
		if (clash != NULL)
			return zone_fail(err, ZONE_ERR_INVALID_ZONE,
				"record %zu: name \"%.96s\" would hold %s beside %s %.96s, %s; a CNAME"
				" must be the only record at its name: drop one of them, or replace the"
				" zone with PUT", i, record->name, record->type, clash->type, clash->data,
				where);
	}
	return ZONE_OK;
}
