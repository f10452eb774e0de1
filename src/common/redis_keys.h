/*
 * Redis key names of dcworker, shared by the worker and dcctl.
 *
 * Every key carries the hash tag {dc}, so the Lua scripts that touch several
 * keys stay valid on Redis Cluster. The worker's queue and pacing code and
 * dcctl all take the names from here.
 */
#ifndef DC_COMMON_REDIS_KEYS_H
#define DC_COMMON_REDIS_KEYS_H

/* Stream per queue, {dc}:queue:<name>, entries with one field "job". */
#define REDIS_KEY_QUEUE_PREFIX "{dc}:queue:"
/* ZSET of "<queue name> <job>" scored by due time in ms. */
#define REDIS_KEY_SCHEDULED "{dc}:scheduled"
/* Capped stream of dead letters. */
#define REDIS_KEY_DEAD "{dc}:dead"
/* HASH {dc}:result:<id> with the result JSON; expires after the result TTL. */
#define REDIS_KEY_RESULT_PREFIX "{dc}:result:"
/* Channel on which every result is published. */
#define REDIS_RESULT_CHANNEL "dc:results"
/* Consumer group that reads every queue stream. */
#define REDIS_GROUP "dcworker"
/* STRING {dc}:enqueued:<id> holding the stream entry id, set when dcctl enqueues a job. */
#define REDIS_KEY_ENQUEUED_PREFIX "{dc}:enqueued:"

/*
 * Calls per DNS provider (config section name): HASH
 * {dc}:provider_calls:<provider> of status -> count, and the same per
 * minute in {dc}:provider_calls:<provider>:<minute>, where <minute> is the
 * Unix time in seconds at which the minute started.
 */
#define REDIS_KEY_PROVIDER_CALLS_PREFIX "{dc}:provider_calls:"

/*
 * Pacing per DNS provider: HASH {dc}:pace:<provider> (tokens, ts), STRING
 * {dc}:pace:<provider>:penalty (level n: the rate is divided by 2^n) and
 * ZSET {dc}:pace:<provider>:inflight (holder -> lease expiry in ms).
 */
#define REDIS_KEY_PACE_PREFIX "{dc}:pace:"
#define REDIS_KEY_PACE_PENALTY_SUFFIX ":penalty"
#define REDIS_KEY_PACE_INFLIGHT_SUFFIX ":inflight"

#endif /* DC_COMMON_REDIS_KEYS_H */
