/* Delayed resumption of suspended connections, on one thread. */
#include "timer.h"
#include "sandbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct timer_entry {
	struct timer_entry *next;
	struct MHD_Connection *conn;
	int64_t due_ms;
} timer_entry;

struct sb_timer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	timer_entry *head;   /* sorted by due_ms */
	bool stopping;
	bool flushed;        /* resume at once from now on */
	bool resuming;       /* the thread is resuming a connection outside the lock */
};

static void *timer_main(void *arg)
{
	sb_timer *timer = arg;
	pthread_mutex_lock(&timer->lock);
	while (!timer->stopping) {
		if (timer->head == NULL) {
			pthread_cond_wait(&timer->cond, &timer->lock);
			continue;
		}
		int64_t now = sb_monotonic_ms();
		if (timer->head->due_ms > now) {
			struct timespec ts = {
				.tv_sec = timer->head->due_ms / 1000,
				.tv_nsec = (long)(timer->head->due_ms % 1000) * 1000000L,
			};
			pthread_cond_timedwait(&timer->cond, &timer->lock, &ts);
			continue;
		}

		/* Resume outside the lock: MHD may call back into the server. */
		timer_entry *e = timer->head;
		timer->head = e->next;
		timer->resuming = true;
		pthread_mutex_unlock(&timer->lock);
		MHD_resume_connection(e->conn);
		free(e);
		pthread_mutex_lock(&timer->lock);
		timer->resuming = false;
		pthread_cond_broadcast(&timer->cond);
	}
	pthread_mutex_unlock(&timer->lock);
	return NULL;
}

sb_timer *sb_timer_new(void)
{
	sb_timer *timer = calloc(1, sizeof(*timer));
	if (timer == NULL)
		return NULL;

	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&timer->cond, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&timer->lock, NULL);
	if (pthread_create(&timer->thread, NULL, timer_main, timer) != 0) {
		pthread_cond_destroy(&timer->cond);
		pthread_mutex_destroy(&timer->lock);
		free(timer);
		return NULL;
	}
	return timer;
}

bool sb_timer_resume_later(sb_timer *timer, struct MHD_Connection *conn, long delay_ms)
{
	timer_entry *e = malloc(sizeof(*e));
	pthread_mutex_lock(&timer->lock);
	if (e == NULL || timer->flushed) {
		pthread_mutex_unlock(&timer->lock);
		free(e);
		MHD_resume_connection(conn);
		return e != NULL;
	}

	e->conn = conn;
	e->due_ms = sb_monotonic_ms() + delay_ms;
	timer_entry **slot = &timer->head;
	while (*slot != NULL && (*slot)->due_ms <= e->due_ms)
		slot = &(*slot)->next;
	e->next = *slot;
	*slot = e;
	pthread_cond_broadcast(&timer->cond);
	pthread_mutex_unlock(&timer->lock);
	return true;
}

void sb_timer_flush(sb_timer *timer)
{
	if (timer == NULL)
		return;
	pthread_mutex_lock(&timer->lock);
	timer->flushed = true;
	while (timer->resuming)
		pthread_cond_wait(&timer->cond, &timer->lock);
	timer_entry *list = timer->head;
	timer->head = NULL;
	pthread_mutex_unlock(&timer->lock);

	while (list != NULL) {
		timer_entry *next = list->next;
		MHD_resume_connection(list->conn);
		free(list);
		list = next;
	}
}

void sb_timer_free(sb_timer *timer)
{
	if (timer == NULL)
		return;
	sb_timer_flush(timer);
	pthread_mutex_lock(&timer->lock);
	timer->stopping = true;
	pthread_cond_broadcast(&timer->cond);
	pthread_mutex_unlock(&timer->lock);
	pthread_join(timer->thread, NULL);
	pthread_cond_destroy(&timer->cond);
	pthread_mutex_destroy(&timer->lock);
	free(timer);
}
