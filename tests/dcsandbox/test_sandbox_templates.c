/*
 * dcsandbox end to end with real templates. A deterministic sample of 50
 * templates from $DC_SHARED_DIR/templates goes through consent, the code
 * exchange and apply over HTTPS, with every %variable% filled with a
 * generated value. The admin API then shows the resulting zone.
 */
#include "test_sandbox_harness.h"

#include "support/support.h"

#include <ctype.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SAMPLE_SIZE 50
#define E2E_ZONE SBH_ZONE

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List the template files of DIR in name order. */
static char **list_templates(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s", dir);
	size_t cap = 2048, n = 0;
	char **names = calloc(cap, sizeof(char *));
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < cap) {
		size_t len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(char *), compare_names);
	*count = n;
	return names;
}

/* Add every %name% found in TEXT to VARS with a value that suits WHERE. */
static void collect_vars(json_t *vars, const char *text, const char *type, const char *field)
{
	const char *p = text;
	while ((p = strchr(p, '%')) != NULL) {
		const char *end = strchr(p + 1, '%');
		if (end == NULL)
			return;
		char name[128];
		size_t len = (size_t)(end - p - 1);
		if (len == 0 || len >= sizeof(name)) {
			p = end + 1;
			continue;
		}
		memcpy(name, p + 1, len);
		name[len] = '\0';
		p = end + 1;
		if (strcmp(name, "domain") == 0 || strcmp(name, "host") == 0 || strcmp(name, "fqdn") == 0 ||
			json_object_get(vars, name) != NULL)
			continue;

		char value[128];
		size_t index = json_object_size(vars) + 1;
		if (strcmp(field, "host") == 0 || strcmp(field, "name") == 0)
			snprintf(value, sizeof(value), "label%zu", index);
		else if (strcmp(type, "A") == 0 && strcmp(field, "pointsTo") == 0)
			snprintf(value, sizeof(value), "192.0.2.%zu", index);
		else if (strcmp(type, "AAAA") == 0 && strcmp(field, "pointsTo") == 0)
			snprintf(value, sizeof(value), "2001:db8::%zu", index);
		else if (strcmp(type, "REDIR301") == 0 || strcmp(type, "REDIR302") == 0)
			snprintf(value, sizeof(value), "target%zu.example.net", index);
		else if (strcmp(field, "weight") == 0 || strcmp(field, "port") == 0 || strcmp(field, "priority") == 0 ||
			strcmp(field, "ttl") == 0)
			snprintf(value, sizeof(value), "%zu", 10 + index);
		else
			snprintf(value, sizeof(value), "value%zu.example.net", index);
		json_object_set_new(vars, name, json_string(value));
	}
}

static json_t *variables_for(const json_t *tpl)
{
	json_t *vars = json_object();
	size_t i;
	json_t *rec;
	json_array_foreach(json_object_get(tpl, "records"), i, rec) {
		const char *type = json_string_value(json_object_get(rec, "type"));
		const char *field;
		json_t *value;
		json_object_foreach(rec, field, value) {
			if (json_is_string(value))
				collect_vars(vars, json_string_value(value), type != NULL ? type : "", field);
		}
	}
	return vars;
}

static void append_encoded(char *buf, size_t cap, const char *text)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(buf);
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0' && len + 4 < cap; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			buf[len++] = (char)*p;
		} else {
			buf[len++] = '%';
			buf[len++] = hex[*p >> 4];
			buf[len++] = hex[*p & 15];
		}
	}
	buf[len] = '\0';
}

/* Count the records of ZONE written by the template PROVIDER/SERVICE. */
static size_t count_tagged(const json_t *zone_records, const char *provider, const char *service)
{
	size_t n = 0, i;
	json_t *rec;
	json_array_foreach(zone_records, i, rec) {
		json_t *dc = json_object_get(rec, "_dc");
		const char *p = json_string_value(json_object_get(dc, "providerId"));
		const char *s = json_string_value(json_object_get(dc, "serviceId"));
		if (p != NULL && s != NULL && strcasecmp(p, provider) == 0 && strcasecmp(s, service) == 0)
			n++;
	}
	return n;
}

/* Template records that must appear one for one (SPF merges and redirects do not). */
static size_t count_plain_records(const json_t *tpl)
{
	size_t n = 0, i;
	json_t *rec;
	json_array_foreach(json_object_get(tpl, "records"), i, rec) {
		const char *type = json_string_value(json_object_get(rec, "type"));
		if (type != NULL && strcmp(type, "SPFM") != 0 && strncmp(type, "REDIR", 5) != 0)
			n++;
	}
	return n;
}

/*
 * True when the template has an SRV record named "@" or "": DNS providers
 * reject those at the apex (the compliance vectors expect InvalidData), so
 * such a template is applied on a host.
 */
static bool has_apex_srv(const json_t *tpl)
{
	size_t i;
	json_t *rec;
	json_array_foreach(json_object_get(tpl, "records"), i, rec) {
		const char *type = json_string_value(json_object_get(rec, "type"));
		const char *name = json_string_value(json_object_get(rec, "name"));
		if (type != NULL && strcmp(type, "SRV") == 0 && (name == NULL || *name == '\0' || strcmp(name, "@") == 0))
			return true;
	}
	return false;
}

static void apply_one(sbh *h, const char *dir, const char *file)
{
	char path[2048];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	json_t *tpl = json_load_file(path, 0, NULL);
	cr_assert_not_null(tpl, "%s is not JSON", file);
	const char *provider = json_string_value(json_object_get(tpl, "providerId"));
	const char *service = json_string_value(json_object_get(tpl, "serviceId"));
	bool host_required = json_is_true(json_object_get(tpl, "hostRequired")) || has_apex_srv(tpl);
	const char *host = host_required ? "sub" : "";

	/* Start from an empty zone, so every record comes from this template. */
	sbh_resp r;
	sbh_request(h, "PUT", "localhost", "/admin/providers/" SBH_ALPHA_ID "/zones/" E2E_ZONE, NULL, "application/json",
		"[]", &r);
	cr_assert_eq(r.status, 200);
	sbh_resp_clear(&r);

	char sid_enc[256] = "";
	append_encoded(sid_enc, sizeof(sid_enc), service);
	json_t *tokens = sbh_authorize(h, SBH_ALPHA_HOST, provider, sid_enc, host);
	cr_assert_not_null(tokens, "%s: consent or code exchange failed", file);

	char query[8192];
	snprintf(query, sizeof(query), "/v2/domainTemplates/providers/%s/services/%s/apply?domain=" E2E_ZONE "&host=%s",
		provider, sid_enc, host);
	json_t *vars = variables_for(tpl);
	const char *name;
	json_t *value;
	json_object_foreach(vars, name, value) {
		strcat(query, "&");
		append_encoded(query, sizeof(query), name);
		strcat(query, "=");
		append_encoded(query, sizeof(query), json_string_value(value));
	}
	sbh_request(h, "POST", SBH_ALPHA_HOST, query, json_string_value(json_object_get(tokens, "access_token")), NULL,
		NULL, &r);
	cr_expect_eq(r.status, 200, "%s: apply returned %ld: %s", file, r.status, r.body);
	sbh_resp_clear(&r);

	json_t *records = sbh_zone(h, SBH_ALPHA_ID, E2E_ZONE);
	cr_assert_not_null(records);
	size_t tagged = count_tagged(records, provider, service);
	size_t plain = count_plain_records(tpl);
	cr_expect(tagged >= plain, "%s: %zu records written, %zu expected", file, tagged, plain);
	cr_expect_eq(tagged, json_array_size(records), "%s: records not written by the template", file);
	cr_expect(tagged > 0, "%s: nothing written", file);
	json_decref(records);
	json_decref(vars);
	json_decref(tokens);
	json_decref(tpl);
}

Test(sandbox_templates, real_templates_end_to_end, .timeout = 240)
{
	const char *shared = ts_shared_dir();
	if (shared == NULL)
		cr_skip_test("no shared folder with real templates: set DC_SHARED_DIR");
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/templates", shared);

	sbh *h = sbh_new();
	json_t *config = sbh_default_config(dir);
	cr_assert(sbh_start(h, config, NULL, 0));
	json_decref(config);

	size_t count = 0;
	char **names = list_templates(dir, &count);
	cr_assert(count >= SAMPLE_SIZE, "only %zu templates in %s", count, dir);

	/* Every (count / SAMPLE_SIZE)-th file in name order: the same sample on every run. */
	size_t step = count / SAMPLE_SIZE;
	for (size_t i = 0; i < SAMPLE_SIZE; i++)
		apply_one(h, dir, names[i * step]);

	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	sbh_free(h);
}
