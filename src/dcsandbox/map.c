/* String-keyed hash map with separate chaining and FNV-1a hashing. */
#include "map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAP_INITIAL_BUCKETS 64

typedef struct map_entry {
	struct map_entry *next;
	void *value;
	uint32_t hash;
	char key[]; /* NUL-terminated copy */
} map_entry;

struct sb_map {
	map_entry **buckets;
	size_t bucket_count; /* a power of two */
	size_t count;
};

static uint32_t hash_key(const char *key)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

sb_map *sb_map_new(void)
{
	sb_map *map = calloc(1, sizeof(*map));
	if (map == NULL)
		return NULL;
	map->buckets = calloc(MAP_INITIAL_BUCKETS, sizeof(*map->buckets));
	if (map->buckets == NULL) {
		free(map);
		return NULL;
	}
	map->bucket_count = MAP_INITIAL_BUCKETS;
	return map;
}

void sb_map_free(sb_map *map)
{
	if (map == NULL)
		return;
	for (size_t i = 0; i < map->bucket_count; i++) {
		map_entry *e = map->buckets[i];
		while (e != NULL) {
			map_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(map->buckets);
	free(map);
}

static map_entry **find_slot(const sb_map *map, const char *key, uint32_t hash)
{
	map_entry **slot = &map->buckets[hash & (map->bucket_count - 1)];
	while (*slot != NULL) {
		if ((*slot)->hash == hash && strcmp((*slot)->key, key) == 0)
			return slot;
		slot = &(*slot)->next;
	}
	return slot;
}

void *sb_map_get(const sb_map *map, const char *key)
{
	map_entry **slot = find_slot(map, key, hash_key(key));
	return *slot != NULL ? (*slot)->value : NULL;
}

/* Double the bucket array; on allocation failure the map keeps working. */
static void grow(sb_map *map)
{
	size_t count = map->bucket_count * 2;
	map_entry **buckets = calloc(count, sizeof(*buckets));
	if (buckets == NULL)
		return;
	for (size_t i = 0; i < map->bucket_count; i++) {
		map_entry *e = map->buckets[i];
		while (e != NULL) {
			map_entry *next = e->next;
			e->next = buckets[e->hash & (count - 1)];
			buckets[e->hash & (count - 1)] = e;
			e = next;
		}
	}
	free(map->buckets);
	map->buckets = buckets;
	map->bucket_count = count;
}

bool sb_map_put(sb_map *map, const char *key, void *value)
{
	uint32_t hash = hash_key(key);
	map_entry **slot = find_slot(map, key, hash);
	if (*slot != NULL) {
		(*slot)->value = value;
		return true;
	}

	size_t len = strlen(key);
	map_entry *e = malloc(sizeof(*e) + len + 1);
	if (e == NULL)
		return false;
	memcpy(e->key, key, len + 1);
	e->hash = hash;
	e->value = value;
	e->next = NULL;
	*slot = e;
	map->count++;

	if (map->count > map->bucket_count)
		grow(map);
	return true;
}

void *sb_map_remove(sb_map *map, const char *key)
{
	map_entry **slot = find_slot(map, key, hash_key(key));
	map_entry *e = *slot;
	if (e == NULL)
		return NULL;
	*slot = e->next;
	void *value = e->value;
	free(e);
	map->count--;
	return value;
}

size_t sb_map_count(const sb_map *map)
{
	return map->count;
}

void sb_map_sweep(sb_map *map, bool (*fn)(void *arg, const char *key, void *value), void *arg)
{
	for (size_t i = 0; i < map->bucket_count; i++) {
		map_entry **slot = &map->buckets[i];
		while (*slot != NULL) {
			map_entry *e = *slot;
			if (fn(arg, e->key, e->value)) {
				*slot = e->next;
				free(e);
				map->count--;
			} else {
				slot = &e->next;
			}
		}
	}
}
