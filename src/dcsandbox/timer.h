/*
 * A timer thread that resumes suspended libmicrohttpd connections when
 * their delay is over, so injected latency and slow bodies never block a
 * server thread.
 */
#ifndef DC_SANDBOX_TIMER_H
#define DC_SANDBOX_TIMER_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sb_timer sb_timer;

/* Start the timer thread. Returns NULL on failure. */
sb_timer *sb_timer_new(void);

/*
 * Resume CONN in DELAY_MS milliseconds. The caller has already suspended
 * CONN (MHD_suspend_connection). Returns false when out of memory; the
 * connection is then resumed at once.
 */
bool sb_timer_resume_later(sb_timer *timer, struct MHD_Connection *conn, long delay_ms);

/*
 * Resume every pending connection now and make later calls resume at once.
 * Call before MHD_stop_daemon, which must not run with suspended
 * connections.
 */
void sb_timer_flush(sb_timer *timer);

/* Stop the thread (resuming what is left) and free TIMER. Accepts NULL. */
void sb_timer_free(sb_timer *timer);

#endif
