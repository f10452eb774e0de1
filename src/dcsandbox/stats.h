/*
 * Request counters per provider, endpoint and HTTP status, read and reset
 * through the admin API. Callers hold the server lock.
 */
#ifndef DC_SANDBOX_STATS_H
#define DC_SANDBOX_STATS_H

#include "faults.h"
#include "provider.h"

#include <jansson.h>

typedef struct sb_stats sb_stats;

/* Allocate counters for PROVIDER_COUNT providers plus "no provider". */
sb_stats *sb_stats_new(size_t provider_count);

/* Free STATS. Accepts NULL. */
void sb_stats_free(sb_stats *stats);

/*
 * Count one completed request. PROVIDER_INDEX -1 means no provider (admin,
 * unknown host); STATUS 0 means the connection was dropped without one.
 */
void sb_stats_count(sb_stats *stats, int provider_index, sb_endpoint ep, int status);

/* Set every counter to zero. */
void sb_stats_reset(sb_stats *stats);

/*
 * Return {"<provider id>|-": {"<endpoint>": {"<status>": n}}} with zero
 * counters left out (new reference), or NULL when out of memory.
 */
json_t *sb_stats_to_json(const sb_stats *stats, const sb_config *config);

#endif
