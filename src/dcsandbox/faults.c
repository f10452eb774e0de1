/* Fault settings: parsing from flags and JSON, and the per-request draws. */
#include "faults.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds that keep a typo from hanging a test run or eating memory. */
#define FAULT_LATENCY_MAX_MS 600000L
#define FAULT_SECONDS_MAX 86400L
#define FAULT_OVERSIZE_MAX (256UL * 1024 * 1024)
#define FAULT_OVERSIZE_DEFAULT (4UL * 1024 * 1024)

static const char *const endpoint_names[SB_EP_COUNT] = {
	[SB_EP_SETTINGS] = "settings", [SB_EP_TEMPLATE] = "template",
	[SB_EP_CONSENT] = "consent",   [SB_EP_TOKEN] = "token",
	[SB_EP_APPLY] = "apply",       [SB_EP_REVERT] = "revert",
	[SB_EP_ADMIN] = "admin",       [SB_EP_OTHER] = "other",
};

const char *sb_endpoint_name(sb_endpoint ep)
{
	if ((unsigned)ep >= SB_EP_COUNT)
		return "other";
	return endpoint_names[ep];
}

void sb_rng_seed(sb_rng *rng, uint64_t seed)
{
	rng->state = seed;
}

double sb_rng_next(sb_rng *rng)
{
	uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

static bool parse_long(const char *text, long min, long max, long *out)
{
	if (text == NULL || *text == '\0')
		return false;
	errno = 0;
	char *end = NULL;
	long v = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_rate(const char *text, double *out)
{
	if (text == NULL || *text == '\0')
		return false;
	errno = 0;
	char *end = NULL;
	double v = strtod(text, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0.0 || v > 1.0)
		return false;
	*out = v;
	return true;
}

/* Parse "500:0.1,503:0.05" into FAULTS->errors. */
static bool parse_errors(sb_faults *faults, const char *value)
{
	sb_fault_status list[SB_FAULT_STATUS_MAX];
	size_t count = 0;
	char buf[256];
	if (strlen(value) >= sizeof(buf))
		return false;
	strcpy(buf, value);

	char *save = NULL;
	for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':');
		if (colon == NULL || count == SB_FAULT_STATUS_MAX)
			return false;
		*colon = '\0';
		long status = 0;
		double rate = 0;
		if (!parse_long(item, 400, 599, &status) || !parse_rate(colon + 1, &rate))
			return false;
		list[count].status = (int)status;
		list[count].rate = rate;
		count++;
	}

	double total = 0;
	for (size_t i = 0; i < count; i++)
		total += list[i].rate;
	if (total > 1.0 + 1e-9)
		return false;
	memcpy(faults->errors, list, sizeof(list[0]) * count);
	faults->error_count = count;
	return true;
}

/* Parse "apply,token" into an endpoint bit mask. */
static bool parse_endpoints(const char *value, unsigned *mask)
{
	char buf[256];
	if (strlen(value) >= sizeof(buf))
		return false;
	strcpy(buf, value);

	unsigned bits = 0;
	char *save = NULL;
	for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		int found = -1;
		for (int ep = 0; ep < SB_EP_COUNT; ep++) {
			if (strcmp(item, endpoint_names[ep]) == 0)
				found = ep;
		}
		if (found < 0)
			return false;
		bits |= 1U << found;
	}
	*mask = bits;
	return true;
}

sb_result sb_faults_set(sb_faults *faults, const char *key, const char *value, sb_error *err)
{
	bool ok = false;
	long n = 0;

	if (strcmp(key, "latency_ms") == 0) {
		ok = parse_long(value, 0, FAULT_LATENCY_MAX_MS, &faults->latency_ms);
	} else if (strcmp(key, "errors") == 0) {
		ok = parse_errors(faults, value);
	} else if (strcmp(key, "retry_after") == 0) {
		ok = parse_long(value, 0, FAULT_SECONDS_MAX, &faults->retry_after_s);
	} else if (strcmp(key, "token_expiry") == 0) {
		ok = parse_long(value, 0, FAULT_SECONDS_MAX, &faults->token_expiry_s);
	} else if (strcmp(key, "drop_rate") == 0) {
		ok = parse_rate(value, &faults->drop_rate);
	} else if (strcmp(key, "slow_body_ms") == 0) {
		ok = parse_long(value, 0, FAULT_LATENCY_MAX_MS, &faults->slow_body_ms);
	} else if (strcmp(key, "redirect_rate") == 0) {
		ok = parse_rate(value, &faults->redirect_rate);
	} else if (strcmp(key, "redirect_location") == 0) {
		ok = strlen(value) < sizeof(faults->redirect_location);
		if (ok)
			strcpy(faults->redirect_location, value);
	} else if (strcmp(key, "oversize_rate") == 0) {
		ok = parse_rate(value, &faults->oversize_rate);
	} else if (strcmp(key, "oversize_bytes") == 0) {
		ok = parse_long(value, 1, (long)FAULT_OVERSIZE_MAX, &n);
		if (ok)
			faults->oversize_bytes = (size_t)n;
	} else if (strcmp(key, "endpoints") == 0) {
		ok = parse_endpoints(value, &faults->endpoints);
	} else {
		return sb_error_set(err, SB_ERR_ARGS, "unknown fault key \"%s\"", key);
	}

	if (!ok)
		return sb_error_set(err, SB_ERR_ARGS, "invalid value \"%s\" for fault key %s", value, key);
	return SB_OK;
}

sb_result sb_faults_from_json(sb_faults *faults, const json_t *obj, sb_error *err)
{
	if (!json_is_object(obj))
		return sb_error_set(err, SB_ERR_CONFIG, "\"faults\" must be an object");

	const char *key;
	json_t *value;
	json_object_foreach((json_t *)obj, key, value) {
		char text[256];
		if (json_is_string(value))
			snprintf(text, sizeof(text), "%s", json_string_value(value));
		else if (json_is_integer(value))
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		else if (json_is_real(value))
			snprintf(text, sizeof(text), "%.17g", json_real_value(value));
		else
			return sb_error_set(err, SB_ERR_CONFIG, "fault key %s must be a number or a string", key);

		sb_error inner = {0};
		if (sb_faults_set(faults, key, text, &inner) != SB_OK)
			return sb_error_set(err, SB_ERR_CONFIG, "%s", inner.message);
	}
	return SB_OK;
}

json_t *sb_faults_to_json(const sb_faults *faults)
{
	json_t *errors = json_object();
	for (size_t i = 0; i < faults->error_count; i++) {
		char status[8];
		snprintf(status, sizeof(status), "%d", faults->errors[i].status);
		json_object_set_new(errors, status, json_real(faults->errors[i].rate));
	}
	json_t *endpoints = json_array();
	for (int ep = 0; ep < SB_EP_COUNT; ep++) {
		if (faults->endpoints & (1U << ep))
			json_array_append_new(endpoints, json_string(endpoint_names[ep]));
	}
	return json_pack("{s:I, s:o, s:I, s:I, s:f, s:I, s:f, s:s, s:f, s:I, s:o}",
		"latency_ms", (json_int_t)faults->latency_ms, "errors", errors,
		"retry_after", (json_int_t)faults->retry_after_s,
		"token_expiry", (json_int_t)faults->token_expiry_s,
		"drop_rate", faults->drop_rate, "slow_body_ms", (json_int_t)faults->slow_body_ms,
		"redirect_rate", faults->redirect_rate, "redirect_location", faults->redirect_location,
		"oversize_rate", faults->oversize_rate, "oversize_bytes", (json_int_t)faults->oversize_bytes,
		"endpoints", endpoints);
}

void sb_faults_plan(const sb_faults *faults, sb_endpoint ep, sb_rng *rng, sb_fault_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	if (ep == SB_EP_ADMIN)
		return;
	if (faults->endpoints != 0 && (faults->endpoints & (1U << ep)) == 0)
		return;

	/* Four draws per request, always, in a fixed order. */
	double drop = sb_rng_next(rng);
	double redirect = sb_rng_next(rng);
	double error = sb_rng_next(rng);
	double oversize = sb_rng_next(rng);

	plan->latency_ms = faults->latency_ms;
	plan->slow_body_ms = faults->slow_body_ms;
	plan->retry_after_s = faults->retry_after_s > 0 ? faults->retry_after_s : 1;
	plan->oversize_bytes = faults->oversize_bytes;
	memcpy(plan->redirect_location, faults->redirect_location, sizeof(plan->redirect_location));
	plan->drop = drop < faults->drop_rate;
	if (redirect < faults->redirect_rate)
		plan->redirect = 302;
	double edge = 0;
	for (size_t i = 0; i < faults->error_count; i++) {
		edge += faults->errors[i].rate;
		if (error < edge) {
			plan->error_status = faults->errors[i].status;
			break;
		}
	}
	plan->oversize = oversize < faults->oversize_rate;
}

void sb_faults_init(sb_faults *faults)
{
	memset(faults, 0, sizeof(*faults));
	faults->retry_after_s = 1;
	faults->oversize_bytes = FAULT_OVERSIZE_DEFAULT;
	snprintf(faults->redirect_location, sizeof(faults->redirect_location), "%s",
		"https://127.0.0.1:9/redirected");
}
