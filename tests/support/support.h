/*
 * Test support shared by every suite: temporary directories, a throwaway
 * certificate authority, a programmable HTTPS server, dnsmasq, a counting
 * TCP listener, and throwaway Redis and PostgreSQL servers, all on loopback.
 *
 * Every _start and _new function returns NULL and prints the reason on
 * stderr when it fails. Every _stop and _free function accepts NULL, and
 * kills and reaps the process that the matching _start launched.
 *
 * Child processes are started with fork and exec and receive SIGKILL when
 * the thread that started them exits (PR_SET_PDEATHSIG), so a crashed test
 * leaves nothing running. Start servers from the thread that runs the test
 * (Criterion runs a test and its fixtures in one thread).
 */
#ifndef DC_TESTS_SUPPORT_H
#define DC_TESTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>

/* Temporary directories and the shared input folder */

/*
 * Create a fresh directory /tmp/PREFIX.XXXXXX (mode 0700). Returns a
 * malloc'd path that the caller frees, or NULL.
 */
char *ts_tempdir(const char *prefix);

/* Remove PATH and everything below it; ignores a NULL or missing path. */
void ts_rmtree(const char *path);

/*
 * Return the folder with the real templates and compliance vectors:
 * $DC_SHARED_DIR, else $DC_SHARED_DIR_DEFAULT (set by ctest) if that
 * directory exists, else NULL. Tests that need it report that and skip.
 */
const char *ts_shared_dir(void);

/*
 * Return a TCP port on 127.0.0.1 that was free a moment ago, or -1. Another
 * process may take it before the caller binds it, so callers that start a
 * server on it retry with a new port when the bind fails.
 */
int ts_free_port(void);

/* TLS */

/*
 * A throwaway CA and a server certificate signed by it. The server
 * certificate's subjectAltName lists localhost, 127.0.0.1, ::1 and the
 * extra names given to ts_tls_new. Files live in DIR; the PEM strings
 * hold the same certificate and key as cert_file and key_file.
 */
typedef struct ts_tls {
	char *dir;       /* temporary directory, removed by ts_tls_free */
	char *ca_file;   /* CA certificate (PEM), for CURLOPT_CAINFO */
	char *cert_file; /* server certificate (PEM) */
	char *key_file;  /* server private key (PEM, PKCS#8, P-256) */
	char *cert_pem;
	char *key_pem;
} ts_tls;

/*
 * Generate a CA and a server certificate valid for one day. NAMES contains
 * COUNT extra DNS names ("*.test.example" allowed) or IP addresses; names
 * may be NULL when count is 0. Returns NULL on failure.
 */
ts_tls *ts_tls_new(const char *const *names, size_t count);

/* Free TLS and remove its directory; accepts NULL. */
void ts_tls_free(ts_tls *tls);

/* HTTPS server */

/* Maximum request body the HTTPS server stores; longer bodies are cut. */
#define TS_HTTPS_BODY_MAX (1024 * 1024)

/*
 * One request as the HTTPS server received it. Strings are NUL-terminated;
 * a header the client did not send is NULL.
 */
typedef struct ts_request {
	char *method;
	char *path;  /* as sent, not percent-decoded, without the query */
	char *query; /* as sent, without '?'; NULL when the URL has none */
	char *body;  /* NUL-terminated copy; never NULL */
	size_t body_len;       /* stored bytes, at most TS_HTTPS_BODY_MAX */
	bool body_truncated;   /* the client sent more than TS_HTTPS_BODY_MAX */
	char *authorization;
	char *content_type;
	char *host;
} ts_request;

/*
 * The handler's response. The server zeroes it before calling the handler,
 * and copies everything it needs once the handler returns, so the handler
 * may point into its own buffers.
 */
typedef struct ts_response {
	int status;               /* 0 means 200 */
	const char *content_type; /* NULL means application/json */
	const char *body;         /* NULL means an empty body */
	size_t body_len;          /* 0 means strlen(body) */
	const char *headers[8];   /* extra "Name: value" lines, NULL-terminated */
	long delay_ms;            /* wait before responding; other requests go on */
	long slow_body_ms;        /* send the body one byte per this many ms */
	bool drop_connection;     /* close the connection without a response */
} ts_response;

/*
 * Called once per request, on the connection's own thread, after the whole
 * body arrived. Several calls can run at the same time.
 */
typedef void (*ts_handler)(void *arg, const ts_request *req, ts_response *resp);

typedef struct ts_https ts_https;

/*
 * Start an HTTPS server on BIND_ADDR (an IPv4 or IPv6 literal; NULL means
 * 127.0.0.1) and an ephemeral port, with TLS's certificate. Each connection
 * gets its own thread, so a delayed or slow response never holds up another
 * connection; HTTP/1.1 keep-alive works. HANDLER NULL responds 200 with
 * "{}". The server records every request before responding.
 */
ts_https *ts_https_start(const ts_tls *tls, const char *bind_addr, ts_handler handler, void *arg);

/* Return the port the server listens on. */
int ts_https_port(const ts_https *s);

/*
 * Return the number of requests received in full so far. A request is
 * counted before the handler runs, so it is counted by the time its client
 * gets a response, and while the handler's delay_ms runs.
 */
size_t ts_https_request_count(const ts_https *s);

/*
 * Return a copy of the INDEX-th request received (0-based), or NULL when
 * there is no such request. Free it with ts_request_free.
 */
ts_request *ts_https_request_copy(const ts_https *s, size_t index);

/* Free a request copy; accepts NULL. */
void ts_request_free(ts_request *r);

/*
 * Stop the server: wakes delayed and slow responses, closes every connection
 * and joins the threads. Accepts NULL.
 */
void ts_https_stop(ts_https *s);

/* dnsmasq */

typedef struct ts_dnsmasq ts_dnsmasq;

/*
 * Start dnsmasq on 127.0.0.1 and a free port (UDP and TCP) with ARGS added,
 * e.g. "--txt-record=_domainconnect.a.test.example,api.test.example" or
 * "--address=/api.test.example/127.0.0.1". dnsmasq reads no config file,
 * no /etc/hosts and no resolv.conf, and has no upstream server, so it never
 * forwards a query: the support library adds "--local=/#/", which makes it
 * answer NXDOMAIN for every name that ARGS do not define. Callers may still
 * pass "--local=/test.example/" style arguments. A TXT value longer than
 * 255 bytes goes out as several character-strings. Returns once dnsmasq
 * answers queries, or NULL.
 */
ts_dnsmasq *ts_dnsmasq_start(const char *const *args, size_t count);

/* Return "127.0.0.1:PORT", the format of ares_set_servers_ports_csv. */
const char *ts_dnsmasq_servers(const ts_dnsmasq *d);

/* Return the port dnsmasq listens on (UDP and TCP). */
int ts_dnsmasq_port(const ts_dnsmasq *d);

/* Return the temporary folder holding dnsmasq's log; ts_dnsmasq_stop removes it. */
const char *ts_dnsmasq_dir(const ts_dnsmasq *d);

/* Kill and reap dnsmasq; accepts NULL. */
void ts_dnsmasq_stop(ts_dnsmasq *d);

/* Counting TCP listener */

typedef struct ts_listener ts_listener;

/*
 * Listen on ADDR (an IPv4 or IPv6 literal such as "127.0.0.2") and an
 * ephemeral port, accept every connection, count it and close it at once.
 * Tests use it to prove that no connection reached an address.
 */
ts_listener *ts_listener_start(const char *addr);

/* Return the listener's port. */
int ts_listener_port(const ts_listener *l);

/* Return the number of connections accepted so far. */
size_t ts_listener_accepted(const ts_listener *l);

/* Stop the listener and join its thread; accepts NULL. */
void ts_listener_stop(ts_listener *l);

/* Redis */

typedef struct ts_redis ts_redis;

/*
 * Start redis-server on 127.0.0.1 and a free port, in a fresh directory,
 * with no RDB snapshots. AOF true adds "--appendonly yes --appendfsync
 * always", so an acknowledged write survives a crash. Returns once Redis
 * replies to PING, or NULL.
 */
ts_redis *ts_redis_start(bool aof);

/* Return Redis's port. */
int ts_redis_port(const ts_redis *r);

/* Return Redis's working directory (AOF, snapshot and redis.log). */
const char *ts_redis_dir(const ts_redis *r);

/*
 * Restart Redis on the same port and directory, keeping the data. With AOF
 * the server is killed with SIGKILL, as in a crash, and replays its AOF;
 * without AOF it runs SHUTDOWN SAVE and loads the snapshot. Returns true
 * once the new server replies to PING.
 */
bool ts_redis_restart(ts_redis *r);

/* Kill and reap Redis and remove its directory; accepts NULL. */
void ts_redis_stop(ts_redis *r);

/* PostgreSQL */

typedef struct ts_postgres ts_postgres;

/*
 * Run initdb and start PostgreSQL as the postgres user (the server refuses
 * root) in a fresh directory under /tmp, on 127.0.0.1 and a free port, with
 * fsync=off and synchronous_commit=off: fast, and unsafe for anything but
 * tests. Authentication is "trust". Takes about a second; returns once the
 * server accepts connections, or NULL.
 */
ts_postgres *ts_postgres_start(void);

/* Return "host=127.0.0.1 port=N user=postgres dbname=postgres". */
const char *ts_postgres_conninfo(const ts_postgres *p);

/* Return PostgreSQL's port. */
int ts_postgres_port(const ts_postgres *p);

/* Return the directory with data/, the Unix socket and postgres.log. */
const char *ts_postgres_dir(const ts_postgres *p);

/*
 * Stop PostgreSQL with a fast shutdown and start it again on the same port
 * and data directory. Returns true once it accepts connections.
 */
bool ts_postgres_restart(ts_postgres *p);

/* Stop PostgreSQL (immediate shutdown, then SIGKILL), reap it and remove
 * its directory; accepts NULL. */
void ts_postgres_stop(ts_postgres *p);

#endif
