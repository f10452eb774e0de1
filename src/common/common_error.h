/*
 * Result codes and error detail shared by every module of dccommon.
 *
 * Each function that can fail returns a common_status and, on failure, fills
 * a common_error owned by the caller. The message names the input at fault
 * and the fix; it never contains a secret.
 */
#ifndef DC_COMMON_ERROR_H
#define DC_COMMON_ERROR_H

#include <stddef.h>

/* Result of every dccommon call. Values are stable; OK is 0. */
typedef enum common_status {
	COMMON_OK = 0,
	COMMON_ERR_INVALID,      /* invalid input: a config value, a job field, a key */
	COMMON_ERR_IO,           /* a file could not be opened or read */
	COMMON_ERR_DB,           /* PostgreSQL returned an error or is unreachable */
	COMMON_ERR_SCHEMA,       /* the database schema is older than this build needs */
	COMMON_ERR_CRYPTO,       /* no key for a ciphertext, or authentication failed */
	COMMON_ERR_NOMEM,        /* an allocation failed */
	COMMON_ERR_INTERNAL,     /* a bug or an unexpected library failure */
	COMMON_STATUS_COUNT
} common_status;

/* Maximum length of common_error.message, terminating NUL included. */
#define COMMON_MESSAGE_MAX 512

/* Error detail owned by the caller. */
typedef struct common_error {
	common_status status;
	/* Stable machine-readable code ("invalid_json", "missing_field", ...),
	 * a static string; "" when the failing module defines none. */
	const char *code;
	char message[COMMON_MESSAGE_MAX];
} common_error;

/* Returns the stable name of a status ("COMMON_ERR_INVALID"); never NULL. */
const char *common_status_name(common_status status);

/* Resets err to COMMON_OK with an empty code and message. Accepts NULL. */
void common_error_clear(common_error *err);

/*
 * Fills err (when not NULL) with status, code (NULL stands for "") and a
 * printf-style message truncated to COMMON_MESSAGE_MAX. Returns status so
 * callers can write `return common_error_set(...)`.
 */
common_status common_error_set(common_error *err, common_status status, const char *code,
                               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Writes a printable copy of value into buf (size bytes, NUL-terminated):
 * bytes outside 0x20..0x7E become \xNN, a backslash or a double quote gets a
 * backslash, and the copy ends in "..." when it would pass max_chars. Used
 * to quote untrusted input in error messages. Returns buf.
 */
char *common_quote(const char *value, size_t max_chars, char *buf, size_t size);

#endif /* DC_COMMON_ERROR_H */
