/*
 * Address and TXT lookups on the client's c-ares channel.
 *
 * c-ares cannot cancel one query, so a cancelled lookup stays allocated and
 * marked until c-ares reports the query's end. At the latest that is
 * ares_destroy with ARES_EDESTRUCTION, and only then is the lookup freed. A per-lookup
 * timer enforces dns_timeout_ms whatever c-ares' retry schedule is, and also
 * delivers a result that c-ares produced before the start function returned,
 * so a callback never runs inside the call that started it.
 */
#include <arpa/nameser.h>
#include <stdlib.h>
#include <string.h>

#include "resolver.h"

typedef enum lookup_kind {
	LOOKUP_ADDRESSES,
	LOOKUP_TXT,
} lookup_kind;

struct dc_lookup {
	dc_client *client;
	lookup_kind kind;
	dc_addresses_cb addresses_cb;
	dc_txt_cb txt_cb;
	void *arg;
	char *name;
	ev_timer timer; /* deadline, or zero delay for a result from the start call */

	bool starting;  /* inside dc_resolve_*; a result waits for the timer */
	bool in_ares;   /* c-ares still owns a query pointing at this lookup */
	bool have_result;
	bool delivered; /* the callback has run */
	bool cancelled;

	dc_error err;
	dc_addresses addresses;
	dc_txt_records txt;
};

static void lookup_free_if_done(dc_lookup *l)
{
	if (l->in_ares || !(l->delivered || l->cancelled))
		return;

	ev_timer_stop(l->client->loop, &l->timer);
	for (size_t i = 0; i < l->txt.count; i++)
		free(l->txt.value[i]);
	free(l->name);
	free(l);
}

static void deliver(dc_lookup *l)
{
	bool ok = l->err.status == DC_OK;

	ev_timer_stop(l->client->loop, &l->timer);
	l->delivered = true;
	if (l->kind == LOOKUP_ADDRESSES)
		l->addresses_cb(l->arg, ok ? &l->addresses : NULL, &l->err);
	else
		l->txt_cb(l->arg, ok ? &l->txt : NULL, &l->err);
	lookup_free_if_done(l);
}

/* Records a c-ares failure status as the lookup's outcome. */
static void set_ares_error(dc_lookup *l, int status)
{
	const char *what = l->kind == LOOKUP_TXT ? "TXT" : "address";
	dc_status st;

	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
		st = DC_ERR_NOT_SUPPORTED;
		break;
	case ARES_ENOMEM:
		st = DC_ERR_NOMEM;
		break;
	case ARES_EBADNAME:
		st = DC_ERR_INVALID_ARGUMENT;
		break;
	default:
		/* SERVFAIL, REFUSED, timeouts, connection errors, malformed responses. */
		st = DC_ERR_TRANSIENT;
		break;
	}
	dc_fail(&l->err, st, "%s lookup of %s failed: %s", what, l->name, ares_strerror(status));
}

/* Ends c-ares' part of a lookup. This may run inside the start call. */
static void finish_ares(dc_lookup *l)
{
	l->in_ares = false;
	if (l->cancelled || l->delivered) {
		lookup_free_if_done(l);
		return;
	}
	l->have_result = true;
	if (!l->starting)
		deliver(l);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	dc_lookup *l = w->data;

	(void)loop;
	(void)revents;
	if (!l->have_result)
		dc_fail(&l->err, DC_ERR_TRANSIENT, "%s lookup of %s timed out",
		        l->kind == LOOKUP_TXT ? "TXT" : "address", l->name);
	deliver(l);
}

static dc_lookup *lookup_new(dc_client *c, lookup_kind kind, const char *name, void *arg,
                             dc_error *err)
{
	dc_lookup *l = calloc(1, sizeof(*l));
	if (l == NULL || (l->name = strdup(name)) == NULL) {
		free(l);
		dc_fail(err, DC_ERR_NOMEM, "out of memory starting a DNS lookup");
		return NULL;
	}
	l->client = c;
	l->kind = kind;
	l->arg = arg;
	dc_error_clear(&l->err);
	ev_init(&l->timer, timer_cb);
	l->timer.data = l;
	l->starting = true;
	l->in_ares = true;
	return l;
}

/* Arms the deadline, or the zero-delay delivery of an early result. */
static void lookup_started(dc_lookup *l)
{
	dc_client *c = l->client;

	l->starting = false;
	ev_timer_set(&l->timer, l->have_result ? 0. : (double)c->cfg.dns_timeout_ms / 1000., 0.);
	ev_timer_start(c->loop, &l->timer);
	dc_client_ares_schedule(c);
}

/* ---- Addresses ---------------------------------------------------------- */

static void addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *result)
{
	dc_lookup *l = arg;

	(void)timeouts;
	if (!l->cancelled && !l->delivered) {
		if (status != ARES_SUCCESS) {
			set_ares_error(l, status);
		} else {
			for (struct ares_addrinfo_node *n = result->nodes; n != NULL; n = n->ai_next) {
				if (l->addresses.count == DC_ADDRESSES_MAX)
					break;
				if (n->ai_addrlen > sizeof(struct sockaddr_storage) ||
				    (n->ai_family != AF_INET && n->ai_family != AF_INET6))
					continue;
				memcpy(&l->addresses.addr[l->addresses.count++], n->ai_addr, n->ai_addrlen);
			}
			if (l->addresses.count == 0)
				dc_fail(&l->err, DC_ERR_NOT_SUPPORTED, "address lookup of %s: no address",
				        l->name);
		}
	}
	if (result != NULL)
		ares_freeaddrinfo(result);
	finish_ares(l);
}

dc_lookup *dc_resolve_addresses(dc_client *c, const char *host, dc_addresses_cb cb, void *arg,
                                dc_error *err)
{
	struct ares_addrinfo_hints hints;
	dc_lookup *l = lookup_new(c, LOOKUP_ADDRESSES, host, arg, err);
	if (l == NULL)
		return NULL;
	l->addresses_cb = cb;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	/* Sorting would probe routes with connect(), and the order does not matter. */
	hints.ai_flags = ARES_AI_NOSORT;
	ares_getaddrinfo(c->channel, host, NULL, &hints, addrinfo_cb, l);
	lookup_started(l);
	return l;
}

/* ---- TXT ---------------------------------------------------------------- */

/* Appends one character-string to the RR being joined. Returns false when too long. */
static bool append_string(char *value, size_t *len, const unsigned char *s, size_t n)
{
	if (n > DC_TXT_VALUE_MAX - 1 - *len || memchr(s, '\0', n) != NULL)
		return false;
	memcpy(value + *len, s, n);
	*len += n;
	value[*len] = '\0';
	return true;
}

/*
 * Joins the character-strings of each TXT RR into one value. An RR that is
 * too long or contains a NUL byte is kept as "" so that callers count it as
 * an invalid record instead of never seeing it.
 */
static void parse_txt(dc_lookup *l, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *txt = NULL;
	char *value = NULL;
	size_t len = 0;
	bool valid = true;

	int rc = ares_parse_txt_reply_ext(abuf, alen, &txt);
	if (rc != ARES_SUCCESS) {
		set_ares_error(l, rc);
		goto out;
	}

	for (struct ares_txt_ext *t = txt; t != NULL; t = t->next) {
		if (t->record_start) {
			if (l->txt.count == DC_TXT_RECORDS_MAX) {
				dc_fail(&l->err, DC_ERR_INVALID_RESPONSE,
				        "TXT lookup of %s: more than %d records", l->name,
				        DC_TXT_RECORDS_MAX);
				goto out;
			}
			value = calloc(1, DC_TXT_VALUE_MAX);
			if (value == NULL) {
				dc_fail(&l->err, DC_ERR_NOMEM, "out of memory reading TXT records");
				goto out;
			}
			l->txt.value[l->txt.count++] = value;
			len = 0;
			valid = true;
		}
		if (value == NULL || !valid)
			continue;
		if (!append_string(value, &len, t->txt, t->length)) {
			value[0] = '\0';
			valid = false;
		}
	}
	if (l->txt.count == 0)
		dc_fail(&l->err, DC_ERR_NOT_SUPPORTED, "TXT lookup of %s: no TXT record", l->name);

out:
	ares_free_data(txt);
}

static void txt_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	dc_lookup *l = arg;

	(void)timeouts;
	if (!l->cancelled && !l->delivered) {
		if (status != ARES_SUCCESS)
			set_ares_error(l, status);
		else
			parse_txt(l, abuf, alen);
	}
	finish_ares(l);
}

dc_lookup *dc_resolve_txt(dc_client *c, const char *name, dc_txt_cb cb, void *arg,
                          dc_error *err)
{
	dc_lookup *l = lookup_new(c, LOOKUP_TXT, name, arg, err);
	if (l == NULL)
		return NULL;
	l->txt_cb = cb;

	/* The recursive server follows CNAMEs; the parser keeps the TXT RRs. */
	ares_query(c->channel, name, ns_c_in, ns_t_txt, txt_cb, l);
	lookup_started(l);
	return l;
}

void dc_lookup_cancel(dc_lookup *lookup)
{
	if (lookup == NULL)
		return;
	lookup->cancelled = true;
	ev_timer_stop(lookup->client->loop, &lookup->timer);
	lookup_free_if_done(lookup);
}
