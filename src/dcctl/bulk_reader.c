/*
 * Bulk file parsing. A CSV header names job fields: id, type,
 * authorization_id, domain, service_id, host, redirect_uri, state,
 * dns_provider, code, on_conflict, not_before and max_attempts. The list
 * fields service_ids, hosts and group_ids contain space-separated values,
 * and a column param.NAME sets template variable NAME. Empty cells are
 * absent.
 */
#include "bulk_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dcctl.h"
#include "job_spec.h"

struct bulk_reader {
	FILE *f;
	bool csv;
	char *default_type;
	long line;            /* lines consumed so far */
	long size;            /* file size in bytes, 0 when unknown */
	char *columns[BULK_COLUMNS_MAX];
	size_t column_count;
	char *buf;            /* current record or line, BULK_ROW_MAX + 1 bytes */
};

static const char *const string_columns[] = {
	"id", "type", "authorization_id", "domain", "service_id", "host", "redirect_uri",
	"state", "dns_provider", "code", "on_conflict", "not_before",
};
static const char *const list_columns[] = {"service_ids", "hosts", "group_ids"};

/* True when s is valid UTF-8, which jansson requires of every string. */
static bool valid_utf8(const char *s)
{
	json_t *probe = json_string(s);

	if (probe == NULL)
		return false;
	json_decref(probe);
	return true;
}

static bool known_column(const char *name)
{
	for (size_t i = 0; i < sizeof(string_columns) / sizeof(string_columns[0]); i++) {
		if (strcmp(name, string_columns[i]) == 0)
			return true;
	}
	for (size_t i = 0; i < sizeof(list_columns) / sizeof(list_columns[0]); i++) {
		if (strcmp(name, list_columns[i]) == 0)
			return true;
	}
	return strcmp(name, "max_attempts") == 0 || (strncmp(name, "param.", 6) == 0 && name[6] != '\0');
}

/*
 * Reads one CSV record into r->buf as NUL-separated fields. Returns the
 * field count, 0 at the end of the file, or -2 for an I/O error. A bad
 * record returns -1 with the reason set, and the rest of it is skipped.
 */
static int read_record(bulk_reader *r, char **fields, size_t max_fields, char *reason,
                       size_t reason_size)
{
	size_t len = 0;
	size_t count = 0;
	bool quoted = false;
	bool any = false;
	bool too_long = false;
	int c;

	fields[count++] = r->buf;
	while ((c = getc(r->f)) != EOF) {
		any = true;
		if (quoted) {
			if (c == '"') {
				int next = getc(r->f);

				if (next != '"') {
					quoted = false;
					if (next != EOF)
						ungetc(next, r->f);
					continue;
				}
			} else if (c == '\n') {
				r->line++;
			}
		} else if (c == '"') {
			quoted = true;
			continue;
		} else if (c == ',') {
			c = '\0';
		} else if (c == '\r') {
			continue;
		} else if (c == '\n') {
			r->line++;
			break;
		}
		if (len >= BULK_ROW_MAX) {
			too_long = true;
			continue;
		}
		r->buf[len++] = (char)c;
		if (c == '\0' && count < max_fields)
			fields[count++] = r->buf + len;
		else if (c == '\0')
			too_long = true;
	}
	if (ferror(r->f)) {
		snprintf(reason, reason_size, "read error: %s", strerror(errno));
		return -2;
	}
	if (!any)
		return 0;
	r->buf[len] = '\0';
	if (quoted) {
		snprintf(reason, reason_size, "unterminated quoted field");
		return -1;
	}
	if (too_long) {
		snprintf(reason, reason_size, "row longer than %d bytes or with more than %d fields",
		         BULK_ROW_MAX, BULK_COLUMNS_MAX);
		return -1;
	}
	return (int)count;
}

static bool read_header(bulk_reader *r, char *reason, size_t reason_size)
{
	char *fields[BULK_COLUMNS_MAX];
	int count = read_record(r, fields, BULK_COLUMNS_MAX, reason, reason_size);

	if (count <= 0) {
		if (count == 0)
			snprintf(reason, reason_size, "the file is empty: expected a CSV header row");
		return false;
	}
	for (int i = 0; i < count; i++) {
		char *name = fields[i];

		/* A UTF-8 byte order mark may precede the first column name. */
		if (i == 0 && strncmp(name, "\xEF\xBB\xBF", 3) == 0)
			name += 3;
		if (!valid_utf8(name) || !known_column(name)) {
			char quoted[80];

			snprintf(reason, reason_size, "line 1: unknown column \"%s\"; see docs/cli.md for "
			         "the column names", common_quote(name, 64, quoted, sizeof(quoted)));
			return false;
		}
		r->columns[i] = strdup(name);
	}
	r->column_count = (size_t)count;
	return true;
}

bulk_reader *bulk_reader_open(const char *path, const char *format, const char *default_type,
                              char *reason, size_t reason_size)
{
	bulk_reader *r = calloc(1, sizeof(*r));
	struct stat st;

	if (r == NULL || (r->buf = malloc(BULK_ROW_MAX + 1)) == NULL) {
		snprintf(reason, reason_size, "out of memory");
		goto fail;
	}
	r->f = fopen(path, "r");
	if (r->f == NULL) {
		snprintf(reason, reason_size, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fileno(r->f), &st) == 0 && S_ISREG(st.st_mode))
		r->size = (long)st.st_size;
	if (default_type != NULL)
		r->default_type = strdup(default_type);

	size_t len = strlen(path);
	if (format != NULL) {
		if (strcmp(format, "csv") != 0 && strcmp(format, "jsonl") != 0) {
			snprintf(reason, reason_size, "--format %s: expected csv or jsonl", format);
			goto fail;
		}
		r->csv = strcmp(format, "csv") == 0;
	} else if (len > 4 && strcmp(path + len - 4, ".csv") == 0) {
		r->csv = true;
	} else if ((len > 6 && strcmp(path + len - 6, ".jsonl") == 0) ||
	           (len > 7 && strcmp(path + len - 7, ".ndjson") == 0)) {
		r->csv = false;
	} else {
		int c = getc(r->f);

		/* Skip a UTF-8 byte order mark, then white space, before the first byte. */
		if (c == 0xEF && getc(r->f) == 0xBB && getc(r->f) == 0xBF)
			c = getc(r->f);
		while (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			c = getc(r->f);
		r->csv = c != '{';
		rewind(r->f);
	}
	if (r->csv && !read_header(r, reason, reason_size))
		goto fail;
	return r;
fail:
	bulk_reader_free(r);
	return NULL;
}

/* Adds the space-separated values of text as an array field. */
static void set_list(json_t *job, const char *key, const char *text)
{
	json_t *list = json_array();
	char *copy = strdup(text);
	char *save = NULL;

	for (char *item = strtok_r(copy, " ", &save); item != NULL; item = strtok_r(NULL, " ", &save))
		json_array_append_new(list, json_string(item));
	free(copy);
	json_object_set_new(job, key, list);
}

static bulk_read csv_row(bulk_reader *r, json_t **job, char *reason, size_t reason_size)
{
	char *fields[BULK_COLUMNS_MAX];
	int count;

	/* Blank lines, such as a trailing empty line, are skipped as in JSON Lines. */
	do
		count = read_record(r, fields, BULK_COLUMNS_MAX, reason, reason_size);
	while (count == 1 && fields[0][0] == '\0');

	if (count == 0)
		return BULK_READ_END;
	if (count == -2)
		return BULK_READ_FATAL;
	if (count < 0)
		return BULK_READ_BAD;
	for (int i = 0; i < count && (size_t)i < r->column_count; i++) {
		if (!valid_utf8(fields[i])) {
			snprintf(reason, reason_size, "column \"%s\" is not valid UTF-8; save the file "
			         "as UTF-8", r->columns[i]);
			return BULK_READ_BAD;
		}
	}
	if ((size_t)count != r->column_count) {
		snprintf(reason, reason_size, "%d fields, the header has %zu", count, r->column_count);
		return BULK_READ_BAD;
	}

	json_t *row = json_object();
	json_t *params = json_object();
	for (size_t i = 0; i < r->column_count; i++) {
		const char *name = r->columns[i];
		const char *value = fields[i];
		long number;

		if (value[0] == '\0')
			continue;
		if (strncmp(name, "param.", 6) == 0) {
			json_object_set_new(params, name + 6, json_string(value));
		} else if (strcmp(name, "max_attempts") == 0) {
			if (!dcctl_parse_long(value, 1, JOB_SPEC_MAX_ATTEMPTS_MAX, &number)) {
				snprintf(reason, reason_size, "max_attempts \"%.20s\": expected 1 to %d", value,
				         JOB_SPEC_MAX_ATTEMPTS_MAX);
				json_decref(params);
				*job = row;
				return BULK_READ_BAD;
			}
			json_object_set_new(row, name, json_integer(number));
		} else if (strcmp(name, "service_ids") == 0 || strcmp(name, "hosts") == 0 ||
		           strcmp(name, "group_ids") == 0) {
			set_list(row, name, value);
		} else {
			json_object_set_new(row, name, json_string(value));
		}
	}
	if (json_object_size(params) > 0)
		json_object_set(row, "params", params);
	json_decref(params);
	*job = row;
	return BULK_READ_ROW;
}

static bulk_read jsonl_row(bulk_reader *r, json_t **job, char *reason, size_t reason_size)
{
	for (;;) {
		if (fgets(r->buf, BULK_ROW_MAX + 1, r->f) == NULL)
			return ferror(r->f) ? BULK_READ_FATAL : BULK_READ_END;
		r->line++;

		size_t len = strlen(r->buf);
		if (len == BULK_ROW_MAX && r->buf[len - 1] != '\n') {
			int c;

			while ((c = getc(r->f)) != EOF && c != '\n')
				;
			snprintf(reason, reason_size, "line longer than %d bytes", BULK_ROW_MAX);
			return BULK_READ_BAD;
		}
		/* A UTF-8 byte order mark may precede the first line. */
		char *text = r->buf;
		if (r->line == 1 && strncmp(text, "\xEF\xBB\xBF", 3) == 0)
			text += 3;
		if (strspn(text, " \t\r\n") == strlen(text))
			continue;

		json_error_t error;
		json_t *row = json_loads(text, JSON_REJECT_DUPLICATES, &error);
		if (row == NULL) {
			snprintf(reason, reason_size, "invalid JSON: %s", error.text);
			return BULK_READ_BAD;
		}
		if (!json_is_object(row)) {
			json_decref(row);
			snprintf(reason, reason_size, "a row must be a JSON object");
			return BULK_READ_BAD;
		}
		*job = row;
		return BULK_READ_ROW;
	}
}

bulk_read bulk_reader_next(bulk_reader *r, json_t **job, long *line, char *reason,
                           size_t reason_size)
{
	*job = NULL;
	*line = r->line + 1;
	reason[0] = '\0';

	bulk_read status = r->csv ? csv_row(r, job, reason, reason_size)
	                          : jsonl_row(r, job, reason, reason_size);
	if (!r->csv)
		*line = r->line;
	if (status == BULK_READ_ROW && r->default_type != NULL && json_object_get(*job, "type") == NULL)
		json_object_set_new(*job, "type", json_string(r->default_type));
	return status;
}

double bulk_reader_progress(const bulk_reader *r)
{
	long pos = ftell(r->f);

	if (r->size <= 0 || pos < 0)
		return 0;
	return pos >= r->size ? 1.0 : (double)pos / (double)r->size;
}

void bulk_reader_free(bulk_reader *r)
{
	if (r == NULL)
		return;
	if (r->f != NULL)
		fclose(r->f);
	for (size_t i = 0; i < r->column_count; i++)
		free(r->columns[i]);
	free(r->default_type);
	free(r->buf);
	free(r);
}
