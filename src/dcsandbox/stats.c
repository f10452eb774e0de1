/* Request counters per provider, endpoint and status. */
#include "stats.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statuses 100..599 each get a slot; slot 0 counts dropped connections. */
#define STATS_STATUS_MIN 100
#define STATS_STATUS_MAX 599
#define STATS_SLOTS (STATS_STATUS_MAX - STATS_STATUS_MIN + 2)

struct sb_stats {
	size_t rows; /* providers + 1 */
	uint64_t *counts; /* rows * SB_EP_COUNT * STATS_SLOTS */
};

sb_stats *sb_stats_new(size_t provider_count)
{
	sb_stats *stats = calloc(1, sizeof(*stats));
	if (stats == NULL)
		return NULL;
	stats->rows = provider_count + 1;
	stats->counts = calloc(stats->rows * SB_EP_COUNT * STATS_SLOTS, sizeof(uint64_t));
	if (stats->counts == NULL) {
		free(stats);
		return NULL;
	}
	return stats;
}

void sb_stats_free(sb_stats *stats)
{
	if (stats == NULL)
		return;
	free(stats->counts);
	free(stats);
}

static size_t slot_of(int status)
{
	if (status < STATS_STATUS_MIN || status > STATS_STATUS_MAX)
		return 0;
	return (size_t)(status - STATS_STATUS_MIN + 1);
}

void sb_stats_count(sb_stats *stats, int provider_index, sb_endpoint ep, int status)
{
	size_t row = provider_index < 0 ? stats->rows - 1 : (size_t)provider_index;
	if (row >= stats->rows || (unsigned)ep >= SB_EP_COUNT)
		return;
	stats->counts[(row * SB_EP_COUNT + ep) * STATS_SLOTS + slot_of(status)]++;
}

void sb_stats_reset(sb_stats *stats)
{
	memset(stats->counts, 0, stats->rows * SB_EP_COUNT * STATS_SLOTS * sizeof(uint64_t));
}

json_t *sb_stats_to_json(const sb_stats *stats, const sb_config *config)
{
	json_t *root = json_object();
	if (root == NULL)
		return NULL;

	for (size_t row = 0; row < stats->rows; row++) {
		const char *name = row < config->provider_count ? config->providers[row].id : "-";
		json_t *per_provider = json_object();
		for (int ep = 0; ep < SB_EP_COUNT; ep++) {
			const uint64_t *c = &stats->counts[(row * SB_EP_COUNT + ep) * STATS_SLOTS];
			json_t *per_status = json_object();
			for (size_t slot = 0; slot < STATS_SLOTS; slot++) {
				if (c[slot] == 0)
					continue;
				char key[16];
				if (slot == 0)
					snprintf(key, sizeof(key), "dropped");
				else
					snprintf(key, sizeof(key), "%zu", slot - 1 + STATS_STATUS_MIN);
				json_object_set_new(per_status, key, json_integer((json_int_t)c[slot]));
			}
			if (json_object_size(per_status) > 0)
				json_object_set_new(per_provider, sb_endpoint_name(ep), per_status);
			else
				json_decref(per_status);
		}
		json_object_set_new(root, name, per_provider);
	}
	return root;
}
