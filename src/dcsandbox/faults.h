/*
 * Fault injection: per-provider settings (latency, error rates per status,
 * 429 with Retry-After, token expiry, dropped connections, slow bodies,
 * redirects, oversized bodies) and the seeded draws that decide, request by
 * request, which fault hits. The same seed and request order give the same
 * faults.
 */
#ifndef DC_SANDBOX_FAULTS_H
#define DC_SANDBOX_FAULTS_H

#include "sandbox.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum number of statuses in one error-rate list ("500:0.1,503:0.05"). */
#define SB_FAULT_STATUS_MAX 8

/* Endpoint classes, used by counters and by the faults' endpoint filter. */
typedef enum sb_endpoint {
	SB_EP_SETTINGS = 0,
	SB_EP_TEMPLATE,
	SB_EP_CONSENT,
	SB_EP_TOKEN,
	SB_EP_APPLY,
	SB_EP_REVERT,
	SB_EP_ADMIN,
	SB_EP_OTHER,
	SB_EP_COUNT
} sb_endpoint;

/* Return the endpoint's name as used in counters and config ("apply"). */
const char *sb_endpoint_name(sb_endpoint ep);

/* One status and the share of requests that get it. */
typedef struct sb_fault_status {
	int status;  /* 400..599 */
	double rate; /* 0..1 */
} sb_fault_status;

/* A provider's fault settings; all zero means no faults. */
typedef struct sb_faults {
	long latency_ms;        /* added before handling each request */
	sb_fault_status errors[SB_FAULT_STATUS_MAX];
	size_t error_count;
	long retry_after_s;     /* Retry-After on injected 429 and 503 responses (default 1) */
	long token_expiry_s;    /* access tokens expire after at most this; 0 = off */
	double drop_rate;       /* share of requests whose connection is closed */
	long slow_body_ms;      /* pause between body chunks; 0 = off */
	double redirect_rate;   /* share of requests that get a 302 */
	char redirect_location[256];
	double oversize_rate;   /* share of requests whose body is replaced by padding */
	size_t oversize_bytes;  /* size of an oversized body (default 4 MiB) */
	unsigned endpoints;     /* bit per sb_endpoint the faults apply to; 0 = all but admin */
} sb_faults;

/* The faults drawn for one request. */
typedef struct sb_fault_plan {
	long latency_ms;
	bool drop;
	int redirect;      /* 302 when redirected, else 0 */
	int error_status;  /* injected status, else 0 */
	bool oversize;
	long slow_body_ms;
	/* Copies of the settings the response needs, so it reads no shared state. */
	long retry_after_s;
	size_t oversize_bytes;
	char redirect_location[256];
} sb_fault_plan;

/*
 * Reset FAULTS to no faults, with the defaults for Retry-After (1 s), the
 * oversized body (4 MiB) and the redirect target (a closed loopback port).
 */
void sb_faults_init(sb_faults *faults);

/* A seeded pseudo-random generator (splitmix64); not for secrets. */
typedef struct sb_rng {
	uint64_t state;
} sb_rng;

/* Seed RNG. */
void sb_rng_seed(sb_rng *rng, uint64_t seed);

/* Return a uniform double in [0, 1). */
double sb_rng_next(sb_rng *rng);

/*
 * Set one fault key (latency_ms, errors, retry_after, token_expiry,
 * drop_rate, slow_body_ms, redirect_rate, redirect_location, oversize_rate,
 * oversize_bytes, endpoints) from its text form. Returns SB_OK, or
 * SB_ERR_ARGS with a message naming the key and value.
 */
sb_result sb_faults_set(sb_faults *faults, const char *key, const char *value, sb_error *err);

/*
 * Set every key of the JSON object OBJ (values as numbers or strings).
 * Returns SB_OK or SB_ERR_CONFIG.
 */
sb_result sb_faults_from_json(sb_faults *faults, const json_t *obj, sb_error *err);

/* Return the faults as a JSON object (new reference), for the admin API. */
json_t *sb_faults_to_json(const sb_faults *faults);

/*
 * Draw the faults for one request to endpoint EP. The draws always take the
 * same number of values from RNG, so one request's outcome does not shift
 * the next one's. The caller serializes access to RNG.
 */
void sb_faults_plan(const sb_faults *faults, sb_endpoint ep, sb_rng *rng, sb_fault_plan *plan);

#endif
