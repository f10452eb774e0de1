/*
 * Asynchronous DNS lookups on the client's c-ares channel: the addresses of a
 * host name and the TXT records of a name.
 */
#ifndef DC_RESOLVER_H
#define DC_RESOLVER_H

#include <sys/socket.h>

#include "client.h"

#define DC_ADDRESSES_MAX 16 /* addresses kept per host name */
#define DC_TXT_RECORDS_MAX 16 /* TXT resource records kept per name */
#define DC_TXT_VALUE_MAX 2048 /* bytes of one joined TXT record */

typedef struct dc_addresses {
	size_t count;
	struct sockaddr_storage addr[DC_ADDRESSES_MAX];
} dc_addresses;

/* TXT values, one per resource record, character-strings joined. */
typedef struct dc_txt_records {
	size_t count;
	char *value[DC_TXT_RECORDS_MAX];
} dc_txt_records;

/*
 * Outcome of a lookup in err->status: DC_OK, DC_ERR_NOT_SUPPORTED (NXDOMAIN
 * or no record of the type), DC_ERR_TRANSIENT (SERVFAIL, REFUSED, timeout,
 * connection error), DC_ERR_INVALID_RESPONSE or DC_ERR_NOMEM. The result
 * pointer is valid during the callback only and NULL on failure.
 */
typedef void (*dc_addresses_cb)(void *arg, const dc_addresses *result, const dc_error *err);
typedef void (*dc_txt_cb)(void *arg, const dc_txt_records *result, const dc_error *err);

/*
 * Starts looking up the IPv4 and IPv6 addresses of host. The callback runs
 * exactly once from the loop, never before this returns, unless the lookup
 * is cancelled. Returns NULL and fills err on failure (no callback then).
 */
dc_lookup *dc_resolve_addresses(dc_client *c, const char *host, dc_addresses_cb cb, void *arg,
                                dc_error *err);

/* Starts looking up the TXT records of name; same contract as above. */
dc_lookup *dc_resolve_txt(dc_client *c, const char *name, dc_txt_cb cb, void *arg,
                          dc_error *err);

/* Cancels a lookup in flight; its callback is not called. Accepts NULL. */
void dc_lookup_cancel(dc_lookup *lookup);

#endif /* DC_RESOLVER_H */
