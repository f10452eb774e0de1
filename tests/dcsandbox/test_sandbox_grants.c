/*
 * Grants whose codes expire unexchanged are freed, so a client calling the
 * consent endpoint in a loop cannot grow the sandbox's memory forever.
 */
#include "test_sandbox_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONSENT_PATH                                                                   \
	"/consent/v2/domainTemplates/providers/exampleservice.test?domain=" SBH_ZONE          \
	"&host=&client_id=" SBH_CLIENT                                                      \
	"&redirect_uri=https%3A%2F%2Fapp.sandbox.test%2Fcallback&scope=web&state=s"

/* Must exceed the sandbox's sweep interval of 1024 issued codes. */
#define CODES_PER_ROUND 1100

static json_int_t grant_count(sbh *h)
{
	sbh_resp r;

	sbh_request(h, "GET", SBH_ALPHA_HOST, "/admin/counters", NULL, NULL, NULL, &r);
	cr_assert_eq(r.status, 200, "admin counters returned %ld", r.status);
	json_t *body = json_loads(r.body, 0, NULL);
	cr_assert_not_null(body, "counters are not JSON: %s", r.body);
	json_t *grants = json_object_get(body, "grants");
	cr_assert(json_is_integer(grants), "counters have no grants field: %s", r.body);
	json_int_t count = json_integer_value(grants);
	json_decref(body);
	sbh_resp_clear(&r);
	return count;
}

static void consent_many(sbh *h, int count)
{
	for (int i = 0; i < count; i++) {
		sbh_resp r;

		sbh_request(h, "GET", SBH_ALPHA_HOST, CONSENT_PATH, NULL, NULL, NULL, &r);
		cr_assert_eq(r.status, 302, "consent %d returned %ld", i, r.status);
		sbh_resp_clear(&r);
	}
}

Test(sandbox_grants, unexchanged_codes_freed, .timeout = 120)
{
	sbh *h = sbh_new();
	cr_assert_not_null(h, "harness folder not created");
	json_t *config = sbh_default_config(h->templates);
	json_t *alpha = json_array_get(json_object_get(config, "providers"), 0);
	json_object_set_new(alpha, "code_lifetime", json_integer(1));
	cr_assert(sbh_start(h, config, NULL, 0), "dcsandbox did not start");
	json_decref(config);

	consent_many(h, CODES_PER_ROUND);
	cr_assert_leq(grant_count(h), CODES_PER_ROUND, "more grants than codes issued");

	sleep(2); /* every code issued so far has expired */
	consent_many(h, CODES_PER_ROUND);
	json_int_t after = grant_count(h);
	cr_assert_lt(after, 2 * CODES_PER_ROUND, "expired grants were not freed: %lld",
	             (long long)after);
	cr_assert_gt(after, 0, "the grants of live codes were freed too");
	sbh_free(h);
}
