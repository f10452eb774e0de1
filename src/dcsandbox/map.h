/*
 * A string-keyed hash map of pointers, used for codes, tokens and grants.
 * Keys are copied; values are borrowed. Not thread-safe: the server holds
 * its state lock around every call.
 */
#ifndef DC_SANDBOX_MAP_H
#define DC_SANDBOX_MAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sb_map sb_map;

/* Allocate an empty map. Returns NULL when out of memory. */
sb_map *sb_map_new(void);

/* Free MAP and its key copies, not the values. Accepts NULL. */
void sb_map_free(sb_map *map);

/* Return the value stored under KEY, or NULL. */
void *sb_map_get(const sb_map *map, const char *key);

/*
 * Store VALUE under KEY, replacing an earlier value (which the caller still
 * owns). Returns false when out of memory.
 */
bool sb_map_put(sb_map *map, const char *key, void *value);

/* Remove KEY and return its value, or NULL when KEY was absent. */
void *sb_map_remove(sb_map *map, const char *key);

/* Return the number of keys. */
size_t sb_map_count(const sb_map *map);

/*
 * Call FN for every entry; when FN returns true the entry is removed
 * (after FN has had the chance to free the value).
 */
void sb_map_sweep(sb_map *map, bool (*fn)(void *arg, const char *key, void *value), void *arg);

#endif
