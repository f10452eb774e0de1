/*
 * Output helpers: errors on stderr (and as JSON with --json), key: value
 * lines and aligned tables for people, indented JSON for scripts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcctl.h"

/* Widest cell printed in a table column; longer values are cut with "...". */
#define OUT_CELL_MAX 60

static const char *const exit_names[] = {
	[DCCTL_EXIT_OK] = "ok",
	[DCCTL_EXIT_USAGE] = "usage",
	[DCCTL_EXIT_CONFIG] = "config",
	[DCCTL_EXIT_NOT_FOUND] = "not_found",
	[DCCTL_EXIT_UNREACHABLE] = "unreachable",
	[DCCTL_EXIT_FAILED] = "failed",
	[DCCTL_EXIT_TIMEOUT] = "timeout",
	[DCCTL_EXIT_NOT_SUPPORTED] = "not_supported",
};

const char *dcctl_exit_name(dcctl_exit code)
{
	if ((size_t)code < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[code] != NULL)
		return exit_names[code];
	return "unknown";
}

static void print_error(const dcctl *ctx, dcctl_exit code, const char *prefix, const char *fmt,
                        va_list ap)
{
	char message[1024];

	vsnprintf(message, sizeof(message), fmt, ap);
	fprintf(stderr, "dcctl: %s%s\n", prefix, message);
	if (ctx != NULL && ctx->json) {
		json_t *root = json_pack("{s:{s:s, s:s, s:i}}", "error", "code", dcctl_exit_name(code),
		                         "message", message, "exit_code", (int)code);
		out_json(root);
	}
}

dcctl_exit out_error(const dcctl *ctx, dcctl_exit code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_error(ctx, code, "", fmt, ap);
	va_end(ap);
	return code;
}

dcctl_exit out_usage(const dcctl *ctx, const char *command, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_error(ctx, DCCTL_EXIT_USAGE, "", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Run 'dcctl%s%s --help' for usage.\n", command != NULL ? " " : "",
	        command != NULL ? command : "");
	return DCCTL_EXIT_USAGE;
}

void out_json(json_t *value)
{
	if (value == NULL) {
		fprintf(stderr, "dcctl: out of memory building JSON output\n");
		return;
	}
	json_dumpf(value, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(value);
}

void out_field(const char *key, const char *fmt, ...)
{
	va_list ap;
	char label[64];

	snprintf(label, sizeof(label), "%s:", key);
	printf("%-18s ", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

struct out_table {
	size_t columns;
	size_t rows;
	size_t capacity;
	char **cells; /* rows * columns, header row first */
};

static char *cell_copy(const char *value)
{
	const char *v = value != NULL ? value : "";
	size_t len = strlen(v);
	char *copy;

	if (len <= OUT_CELL_MAX)
		return strdup(v);
	copy = malloc(OUT_CELL_MAX + 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, v, OUT_CELL_MAX - 3);
	memcpy(copy + OUT_CELL_MAX - 3, "...", 4);
	return copy;
}

out_table *out_table_new(size_t columns, const char *const *headers)
{
	out_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->columns = columns;
	out_table_add(t, headers);
	return t;
}

void out_table_add(out_table *t, const char *const *cells)
{
	if (t == NULL)
		return;
	if (t->rows == t->capacity) {
		size_t capacity = t->capacity == 0 ? 16 : t->capacity * 2;
		char **grown = realloc(t->cells, capacity * t->columns * sizeof(*grown));

		if (grown == NULL)
			return;
		t->cells = grown;
		t->capacity = capacity;
	}
	for (size_t c = 0; c < t->columns; c++)
		t->cells[t->rows * t->columns + c] = cell_copy(cells[c]);
	t->rows++;
}

void out_table_print(const out_table *t, FILE *out)
{
	size_t width[32] = {0};

	if (t == NULL || t->columns > 32)
		return;
	for (size_t r = 0; r < t->rows; r++) {
		for (size_t c = 0; c < t->columns; c++) {
			const char *cell = t->cells[r * t->columns + c];
			size_t len = cell != NULL ? strlen(cell) : 0;

			if (len > width[c])
				width[c] = len;
		}
	}
	for (size_t r = 0; r < t->rows; r++) {
		for (size_t c = 0; c < t->columns; c++) {
			const char *cell = t->cells[r * t->columns + c];
			bool last = c + 1 == t->columns;

			if (last)
				fprintf(out, "%s\n", cell != NULL ? cell : "");
			else
				fprintf(out, "%-*s  ", (int)width[c], cell != NULL ? cell : "");
		}
	}
}

void out_table_free(out_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->rows * t->columns; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

char *out_time(int64_t ms, char *buf, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

const char *out_scalar(const json_t *value, char *buf, size_t size)
{
	if (value == NULL || json_is_null(value))
		snprintf(buf, size, "%s", "");
	else if (json_is_string(value))
		snprintf(buf, size, "%s", json_string_value(value));
	else if (json_is_integer(value))
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
	else if (json_is_real(value))
		snprintf(buf, size, "%g", json_real_value(value));
	else if (json_is_boolean(value))
		snprintf(buf, size, "%s", json_is_true(value) ? "true" : "false");
	else {
		char *text = json_dumps(value, JSON_COMPACT);

		snprintf(buf, size, "%s", text != NULL ? text : "");
		free(text);
	}
	return buf;
}
