/*
 * Template store: the real templates of $DC_SHARED_DIR/templates, the
 * project's own examples, bad files written to a temporary folder, and
 * lookups that ignore case.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcsandbox/template_store.h"
#include "dcsandbox/zone.h"

/*
 * Real templates with a defect the store rejects on purpose: an "essential"
 * value that is neither Always nor OnApply (values are case-sensitive).
 */
static const char *const known_defects[] = {
	"mailaura.io.email-sending.json",     /* essential "No" */
	"tinkerhost.net.tinkermail.json",     /* essential "onApply" */
};

static const char *shared_dir(void)
{
	const char *dir = getenv("DC_SHARED_DIR");
	if (dir == NULL || dir[0] == '\0')
		dir = getenv("DC_SHARED_DIR_DEFAULT");
	return dir != NULL ? dir : "../shared";
}

static size_t count_json_files(const char *path)
{
	DIR *dir = opendir(path);
	cr_assert_not_null(dir, "cannot open %s", path);
	size_t count = 0;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		size_t length = strlen(entry->d_name);
		if (length > 5 && strcmp(entry->d_name + length - 5, ".json") == 0)
			count++;
	}
	closedir(dir);
	return count;
}

static bool is_known_defect(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	for (size_t i = 0; i < sizeof(known_defects) / sizeof(known_defects[0]); i++) {
		if (strcmp(base, known_defects[i]) == 0)
			return true;
	}
	return false;
}

Test(template_store, real_templates_load)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/templates", shared_dir());
	DIR *probe = opendir(path);
	cr_assert_not_null(probe, "no real templates in %s. Set DC_SHARED_DIR to the folder that "
		"contains templates/ (the default comes from CMake's DC_SHARED_DIR).", path);
	closedir(probe);

	tstore *store = tstore_new();
	tstore_error err = { 0 };
	cr_assert_eq(tstore_load_dir(store, path, &err), TSTORE_OK, "%s", err.message);

	size_t files = count_json_files(path);
	for (size_t i = 0; i < tstore_rejection_count(store); i++) {
		const tstore_rejection *rejection = tstore_rejection_get(store, i);
		cr_expect(is_known_defect(rejection->file), "unexpected rejection of %s: %s",
			rejection->file, rejection->reason);
	}
	size_t defects = sizeof(known_defects) / sizeof(known_defects[0]);
	cr_expect_eq(tstore_rejection_count(store), defects, "%zu rejections, expected %zu",
		tstore_rejection_count(store), defects);
	cr_expect_eq(tstore_count(store), files - defects, "%zu of %zu templates loaded",
		tstore_count(store), files);
	tstore_free(store);
}

/* Return the project's example template folder. */
static void examples_dir(char *out, size_t size)
{
	const char *source = getenv("DC_SOURCE_DIR");
	snprintf(out, size, "%s/examples/templates", source != NULL ? source : ".");
}

Test(template_store, examples_load)
{
	char path[1024];
	examples_dir(path, sizeof(path));
	tstore *store = tstore_new();
	tstore_error err = { 0 };

	cr_assert_eq(tstore_load_dir(store, path, &err), TSTORE_OK, "%s", err.message);
	for (size_t i = 0; i < tstore_rejection_count(store); i++)
		cr_expect(false, "example %s rejected: %s", tstore_rejection_get(store, i)->file,
			tstore_rejection_get(store, i)->reason);
	cr_expect_eq(tstore_count(store), 4);
	cr_expect_not_null(tstore_find(store, "dcworker.example", "website"));
	cr_expect_not_null(tstore_find(store, "dcworker.example", "mail"));
	cr_expect_not_null(tstore_find(store, "dcworker.example", "verification"));
	cr_expect_not_null(tstore_find(store, "dcworker.example", "subdomain"));
	tstore_free(store);
}

Test(template_store, example_mail_applies)
{
	char path[1024];
	examples_dir(path, sizeof(path));
	tstore *store = tstore_new();
	cr_assert_eq(tstore_load_dir(store, path, NULL), TSTORE_OK);
	const tstore_template *mail = tstore_find(store, "dcworker.example", "mail");
	cr_assert_not_null(mail);

	json_t *params = json_pack("{s:s, s:s}", "mailDomain", "mail.example.net",
		"dmarcPolicy", "quarantine");
	zone_apply_opts opts = { .domain = "example.org", .host = "", .params = params };
	zone *empty = zone_new();
	zone_result result = { 0 };
	zone_error err = { 0 };
	cr_assert_eq(zone_apply_template(empty, mail->json, &opts, &result, &err), ZONE_OK,
		"%s", err.message);
	cr_expect_eq(zone_count(result.added), 4);
	cr_expect_eq(zone_count(result.deleted), 0);

	zone_result_clear(&result);
	zone_free(empty);
	json_decref(params);
	tstore_free(store);
}

Test(template_store, lookup_ignores_case)
{
	tstore *store = tstore_new();
	json_t *template = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "providerId", "Example.Net",
		"providerName", "Example", "serviceId", "WebSite", "serviceName", "Web site",
		"records");
	cr_assert_eq(tstore_add(store, template, "inline", NULL), TSTORE_OK);

	const tstore_template *found = tstore_find(store, "example.NET", "website");
	cr_assert_not_null(found);
	cr_expect_str_eq(found->service_id, "WebSite");
	cr_expect(tstore_has_provider(store, "EXAMPLE.net"));
	cr_expect_null(tstore_find(store, "example.net", "other"));
	cr_expect_not(tstore_has_provider(store, "example.org"));

	json_decref(template);
	tstore_free(store);
}

Test(template_store, duplicate_ids_rejected)
{
	tstore *store = tstore_new();
	json_t *first = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "providerId", "example.net",
		"providerName", "Example", "serviceId", "web", "serviceName", "Web", "records");
	json_t *second = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "providerId", "EXAMPLE.net",
		"providerName", "Example", "serviceId", "WEB", "serviceName", "Web", "records");
	tstore_error err = { 0 };

	cr_assert_eq(tstore_add(store, first, "first", &err), TSTORE_OK);
	cr_expect_eq(tstore_add(store, second, "second", &err), TSTORE_ERR_DUPLICATE);
	cr_expect(strstr(err.message, "first") != NULL, "message: %s", err.message);
	cr_expect_eq(tstore_count(store), 1);

	json_decref(first);
	json_decref(second);
	tstore_free(store);
}

Test(template_store, missing_folder_fails)
{
	tstore *store = tstore_new();
	tstore_error err = { 0 };
	cr_expect_eq(tstore_load_dir(store, "/nonexistent/dcworker-templates", &err), TSTORE_ERR_IO);
	cr_expect(strstr(err.message, "/nonexistent/dcworker-templates") != NULL, "message: %s",
		err.message);
	tstore_free(store);
}

/* A bad file, and words its rejection reason must contain. */
static const struct {
	const char *file;
	const char *content;
	const char *reason;
} bad_files[] = {
	{ "a.not-json.json", "{ \"providerId\": ", "invalid JSON" },
	{ "b.no-provider.json",
	  "{\"providerName\":\"P\",\"serviceId\":\"s\",\"serviceName\":\"S\",\"records\":[]}",
	  "missing \"providerId\"" },
	{ "c.bad-id.json",
	  "{\"providerId\":\"has space\",\"providerName\":\"P\",\"serviceId\":\"s\",\"serviceName\":\"S\",\"records\":[]}",
	  "providerId \"has space\"" },
	{ "d.bad-type.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"d\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"!X\",\"host\":\"@\",\"data\":\"x\",\"ttl\":1}]}",
	  "unknown record type" },
	{ "e.unpaired.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"e\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"%open\",\"ttl\":1}]}",
	  "unpaired" },
	{ "f.group-variable.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"f\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"x\",\"ttl\":1,\"groupId\":\"%g%\"}]}",
	  "groupId" },
	{ "g.apex-cname.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"g\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"CNAME\",\"host\":\"@\",\"pointsTo\":\"x.example\",\"ttl\":1}]}",
	  "hostRequired" },
	{ "h.missing-field.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"h\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"MX\",\"host\":\"@\",\"pointsTo\":\"mx.example\",\"ttl\":1}]}",
	  "missing \"priority\"" },
	{ "i.bad-mode.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"i\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"x\",\"ttl\":1,\"txtConflictMatchingMode\":\"Some\"}]}",
	  "txtConflictMatchingMode" },
	{ "j.bad-ttl.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"j\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"A\",\"host\":\"@\",\"pointsTo\":\"192.0.2.1\",\"ttl\":\"1%v%\"}]}",
	  "\"ttl\"" },
	{ "k.bad-bool.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"k\",\"serviceName\":\"S\","
	  "\"hostRequired\":\"yes\",\"records\":[]}",
	  "\"hostRequired\"" },
	{ "l.duplicate.json",
	  "{\"providerId\":\"P.EXAMPLE\",\"providerName\":\"P\",\"serviceId\":\"GOOD\",\"serviceName\":\"S\",\"records\":[]}",
	  "already loaded" },
	{ "m.bad-essential.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"m\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"x\",\"ttl\":1,\"essential\":\"onApply\"}]}",
	  "essential" },
	{ "n.records-not-list.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"n\",\"serviceName\":\"S\",\"records\":{}}",
	  "records" },
	{ "o.bad-variable-name.json",
	  "{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"o\",\"serviceName\":\"S\","
	  "\"records\":[{\"type\":\"TXT\",\"host\":\"@\",\"data\":\"%a b%\",\"ttl\":1}]}",
	  "invalid variable name" },
};

static void write_file(const char *dir, const char *name, const char *content)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *file = fopen(path, "w");
	cr_assert_not_null(file, "cannot write %s", path);
	fputs(content, file);
	fclose(file);
}

Test(template_store, bad_files_reported)
{
	char dir[] = "/tmp/dczone-templates.XXXXXX";
	cr_assert_not_null(mkdtemp(dir));

	/* The good file sorts before l.duplicate.json, which repeats its ids. */
	write_file(dir, "0.good.json",
		"{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"good\","
		"\"serviceName\":\"S\",\"records\":[{\"type\":\"A\",\"host\":\"@\","
		"\"pointsTo\":\"%ip%\",\"ttl\":\"%ttl%\"}]}");
	write_file(dir, "README.md", "not a template");
	size_t bad_count = sizeof(bad_files) / sizeof(bad_files[0]);
	for (size_t i = 0; i < bad_count; i++)
		write_file(dir, bad_files[i].file, bad_files[i].content);
	write_file(dir, "z.last-good.json",
		"{\"providerId\":\"p.example\",\"providerName\":\"P\",\"serviceId\":\"last\","
		"\"serviceName\":\"S\",\"records\":[]}");

	tstore *store = tstore_new();
	tstore_error err = { 0 };
	cr_assert_eq(tstore_load_dir(store, dir, &err), TSTORE_OK, "%s", err.message);
	cr_expect_eq(tstore_count(store), 2, "%zu templates loaded", tstore_count(store));
	cr_expect_not_null(tstore_find(store, "p.example", "last"), "loading stopped early");
	cr_assert_eq(tstore_rejection_count(store), bad_count);

	/* Files load in name order, so rejection i is bad file i. */
	for (size_t i = 0; i < bad_count; i++) {
		const tstore_rejection *rejection = tstore_rejection_get(store, i);
		cr_expect(strstr(rejection->file, bad_files[i].file) != NULL, "rejection %zu is %s, expected %s",
			i, rejection->file, bad_files[i].file);
		cr_expect(strstr(rejection->reason, bad_files[i].reason) != NULL,
			"%s: reason \"%s\" lacks \"%s\"", bad_files[i].file, rejection->reason,
			bad_files[i].reason);
	}
	tstore_free(store);

	for (size_t i = 0; i < bad_count; i++) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, bad_files[i].file);
		unlink(path);
	}
	char path[1024];
	snprintf(path, sizeof(path), "%s/0.good.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/z.last-good.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/README.md", dir);
	unlink(path);
	rmdir(dir);
}

Test(template_store, oversized_file_rejected)
{
	char dir[] = "/tmp/dczone-large.XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[1024];
	snprintf(path, sizeof(path), "%s/large.json", dir);
	FILE *file = fopen(path, "w");
	cr_assert_not_null(file);
	fputs("{\"description\":\"", file);
	for (size_t i = 0; i < TSTORE_FILE_MAX; i++)
		fputc('x', file);
	fputs("\"}", file);
	fclose(file);

	tstore *store = tstore_new();
	cr_assert_eq(tstore_load_dir(store, dir, NULL), TSTORE_OK);
	cr_assert_eq(tstore_rejection_count(store), 1);
	cr_expect(strstr(tstore_rejection_get(store, 0)->reason, "larger than") != NULL,
		"reason: %s", tstore_rejection_get(store, 0)->reason);
	tstore_free(store);
	unlink(path);
	rmdir(dir);
}
