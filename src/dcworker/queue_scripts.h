/*
 * Lua sources of the queue's atomic steps, run with EVAL by queue.c. The
 * KEYS and ARGV layout of each script is documented beside its source.
 */
#ifndef DCWORKER_QUEUE_SCRIPTS_H
#define DCWORKER_QUEUE_SCRIPTS_H

extern const char queue_script_fetch[];
extern const char queue_script_reclaim[];
extern const char queue_script_touch[];
extern const char queue_script_ack[];
extern const char queue_script_schedule[];
extern const char queue_script_promote[];
extern const char queue_script_dead[];
extern const char queue_script_result[];
extern const char queue_script_count_call[];

#endif
