/*
 * Lua scripts that queue.c runs with EVAL. Each one does a multi-key step
 * atomically, so a crash between two Redis commands cannot lose or duplicate
 * a job. Every key a script touches is passed in KEYS and carries the {dc}
 * hash tag, so the scripts stay valid on Redis Cluster.
 *
 * Times come from Redis TIME (milliseconds since the epoch), never from the
 * worker's clock, so workers on machines with skewed clocks agree on what is
 * due. Scores and ids are formatted with "%.0f" because Lua 5.1 prints plain
 * numbers with 14 significant digits.
 */
#include "queue_scripts.h"

/*
 * Fetch new entries in priority order, at most ARGV[3] in total.
 * KEYS: queue streams, highest priority first.
 * ARGV: group, consumer, count.
 * Returns a list of {queue index (1-based), entries} pairs, where entries is
 * the XREADGROUP entry list of that stream.
 */
const char queue_script_fetch[] =
	"local left = tonumber(ARGV[3])\n"
	"local out = {}\n"
	"for i, key in ipairs(KEYS) do\n"
	"  if left <= 0 then break end\n"
	"  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2],\n"
	"                       'COUNT', left, 'STREAMS', key, '>')\n"
	"  if r then\n"
	"    local entries = r[1][2]\n"
	"    out[#out + 1] = {i, entries}\n"
	"    left = left - #entries\n"
	"  end\n"
	"end\n"
	"return out\n";

/*
 * Claim entries that stayed pending longer than the visibility timeout and
 * move poison entries (delivered more than the limit) to the dead letters.
 * KEYS[1]: dead letter stream; KEYS[2..]: queue streams in priority order.
 * ARGV: group, consumer, min idle ms, count, max deliveries, dead max length,
 *       then one queue name per queue stream.
 * Returns a list of {queue index (1-based), id, fields, deliveries, dead}
 * items, where dead is 1 for an entry moved to the dead letters.
 */
const char queue_script_reclaim[] =
	"local group, consumer = ARGV[1], ARGV[2]\n"
	"local left = tonumber(ARGV[4])\n"
	"local max_deliveries = tonumber(ARGV[5])\n"
	"local t = redis.call('TIME')\n"
	"local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
	"local out = {}\n"
	"for i = 2, #KEYS do\n"
	"  if left <= 0 then break end\n"
	"  local key = KEYS[i]\n"
	"  local r = redis.call('XAUTOCLAIM', key, group, consumer, ARGV[3], '0-0', 'COUNT', left)\n"
	"  for _, e in ipairs(r[2]) do\n"
	"    local id, fields = e[1], e[2]\n"
	"    local p = redis.call('XPENDING', key, group, id, id, 1)\n"
	"    local deliveries = 1\n"
	"    if p[1] then deliveries = tonumber(p[1][4]) end\n"
	"    if deliveries > max_deliveries then\n"
	"      local job = ''\n"
	"      for f = 1, #fields, 2 do\n"
	"        if fields[f] == 'job' then job = fields[f + 1] end\n"
	"      end\n"
	"      redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], '*', 'queue', ARGV[5 + i],\n"
	"                 'entry_id', id, 'job', job, 'error', 'delivered too many times',\n"
	"                 'deliveries', deliveries, 'time_ms', now)\n"
	"      redis.call('XACK', key, group, id)\n"
	"      redis.call('XDEL', key, id)\n"
	"      out[#out + 1] = {i - 1, id, fields, deliveries, 1}\n"
	"    else\n"
	"      out[#out + 1] = {i - 1, id, fields, deliveries, 0}\n"
	"      left = left - 1\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return out\n";

/*
 * Reset the idle time of an entry this consumer still owns.
 * KEYS[1]: queue stream. ARGV: group, consumer, entry id.
 * Returns 1 when the entry was ours and its idle time is now 0, 0 when it is
 * no longer pending or another consumer claimed it.
 */
const char queue_script_touch[] =
	"local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
	"if not p[1] or p[1][2] ~= ARGV[2] then return 0 end\n"
	"redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')\n"
	"return 1\n";

/*
 * Acknowledge and delete an entry.
 * KEYS[1]: queue stream. ARGV: group, entry id.
 * Returns the number of entries acknowledged (0 or 1).
 */
const char queue_script_ack[] =
	"local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
	"redis.call('XDEL', KEYS[1], ARGV[2])\n"
	"return n\n";

/*
 * Add a job to the scheduled set and, when KEYS[2] is given, acknowledge and
 * delete the entry it came from in the same step.
 * KEYS[1]: scheduled set; KEYS[2]: queue stream of the entry (optional).
 * ARGV: "delay" or "at", milliseconds, member, group, entry id.
 * Returns the due time in ms since the epoch.
 */
const char queue_script_schedule[] =
	"local due = tonumber(ARGV[2])\n"
	"if ARGV[1] == 'delay' then\n"
	"  local t = redis.call('TIME')\n"
	"  due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + due\n"
	"end\n"
	"redis.call('ZADD', KEYS[1], string.format('%.0f', due), ARGV[3])\n"
	"if KEYS[2] then\n"
	"  redis.call('XACK', KEYS[2], ARGV[4], ARGV[5])\n"
	"  redis.call('XDEL', KEYS[2], ARGV[5])\n"
	"end\n"
	"return string.format('%.0f', due)\n";

/*
 * Move due scheduled jobs to their queues. A member is "<queue name> <job>";
 * a member whose queue is not configured goes to the dead letters.
 * KEYS[1]: scheduled set; KEYS[2]: dead letter stream; KEYS[3..]: queues.
 * ARGV: count, dead max length, then one queue name per queue stream.
 * Returns {moved, dead lettered, now ms, next due ms or -1}.
 */
const char queue_script_promote[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local now_s = string.format('%.0f', now)\n"
	"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_s, 'LIMIT', 0, tonumber(ARGV[1]))\n"
	"local moved, dead = 0, 0\n"
	"for _, member in ipairs(due) do\n"
	"  local sp = string.find(member, ' ', 1, true)\n"
	"  local name, job = '', member\n"
	"  if sp then\n"
	"    name = string.sub(member, 1, sp - 1)\n"
	"    job = string.sub(member, sp + 1)\n"
	"  end\n"
	"  local key = nil\n"
	"  for i = 3, #KEYS do\n"
	"    if ARGV[i] == name then key = KEYS[i] end\n"
	"  end\n"
	"  if key then\n"
	"    redis.call('XADD', key, '*', 'job', job)\n"
	"    moved = moved + 1\n"
	"  else\n"
	"    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', 'queue', name, 'job', job,\n"
	"               'error', 'scheduled for an unknown queue', 'time_ms', now_s)\n"
	"    dead = dead + 1\n"
	"  end\n"
	"  redis.call('ZREM', KEYS[1], member)\n"
	"end\n"
	"local next_due = '-1'\n"
	"local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
	"if first[2] then next_due = first[2] end\n"
	"return {moved, dead, now_s, next_due}\n";

/*
 * Move an entry to the dead letters and acknowledge it in one step.
 * KEYS[1]: dead letter stream; KEYS[2]: queue stream.
 * ARGV: group, entry id, queue name, job, error, dead max length.
 * Returns the number of entries acknowledged (0 or 1).
 */
const char queue_script_dead[] =
	"local t = redis.call('TIME')\n"
	"local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
	"redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], '*', 'queue', ARGV[3], 'entry_id', ARGV[2],\n"
	"           'job', ARGV[4], 'error', ARGV[5], 'time_ms', now)\n"
	"local n = redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])\n"
	"redis.call('XDEL', KEYS[2], ARGV[2])\n"
	"return n\n";

/*
 * Store a job's result with a TTL and publish it.
 * KEYS[1]: result hash. ARGV: result JSON, status, TTL seconds, channel.
 * Returns the number of subscribers that received the message.
 */
const char queue_script_result[] =
	"local t = redis.call('TIME')\n"
	"local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
	"redis.call('HSET', KEYS[1], 'result', ARGV[1], 'status', ARGV[2], 'time_ms', now)\n"
	"redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
	"return redis.call('PUBLISH', ARGV[4], ARGV[1])\n";

/*
 * Count one provider call in the total and in the per-minute hash.
 * KEYS: total hash, minute hash. ARGV: status, minute hash TTL in seconds.
 * Returns the new total of that status.
 */
const char queue_script_count_call[] =
	"local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
	"redis.call('HINCRBY', KEYS[2], ARGV[1], 1)\n"
	"redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
	"return n\n";
