/*
 * dcsandbox: a local Domain Connect DNS provider. This header contains
 * what every part of the server shares: the result enum, the error struct and a
 * few time helpers.
 */
#ifndef DC_SANDBOX_SANDBOX_H
#define DC_SANDBOX_SANDBOX_H

#include <stdarg.h>
#include <stdint.h>

/* Result of a sandbox call. Values are stable; sb_result_name names them. */
typedef enum sb_result {
	SB_OK = 0,         /* success */
	SB_ERR_NOMEM,      /* an allocation failed */
	SB_ERR_ARGS,       /* invalid command-line flag or value */
	SB_ERR_CONFIG,     /* invalid or unreadable config file */
	SB_ERR_IO,         /* a file could not be read or written */
	SB_ERR_TLS,        /* certificate generation or loading failed */
	SB_ERR_LISTEN,     /* the HTTPS server could not start */
	SB_ERR_DNS,        /* the dnsmasq config could not be written or started */
	SB_ERR_TEMPLATES,  /* a templates folder could not be loaded */
	SB_RESULT_COUNT
} sb_result;

/* Return the stable name of RESULT, e.g. "SB_ERR_CONFIG". */
const char *sb_result_name(sb_result result);

/* Error detail filled by a failed call; owned by the caller. */
typedef struct sb_error {
	sb_result code;
	char message[512]; /* never contains a secret */
} sb_error;

/*
 * Store CODE and a formatted message in ERR (which may be NULL) and return
 * CODE, so a caller can write `return sb_error_set(err, ...)`.
 */
sb_result sb_error_set(sb_error *err, sb_result code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Return CLOCK_MONOTONIC in milliseconds. */
int64_t sb_monotonic_ms(void);

/* Return the wall clock (CLOCK_REALTIME) in seconds. */
int64_t sb_wall_seconds(void);

#endif
