/*
 * Syntax checks: template variable names, reserved names, dc-ids, state
 * and display names, and the escaping of values quoted in messages.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "libdomainconnect/internal.h"

static const char *const reserved[] = {
	"domain",       "host",      "groupId", "force",         "providerName",
	"serviceName",  "instanceId", "sig",    "key",           "state",
	"redirect_uri", "client_id", "scope",   "response_type", "code",
	"grant_type",   "error",     "error_description", "fqdn",
};

Test(param_name, accepts_valid_names)
{
	const char *ok[] = {"IP", "RANDOMTEXT", "a", "my-var_2", "Domain", "HOST", "hosts"};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		dc_error err = {0};

		cr_expect_eq(dc_check_param_name(ok[i], &err), DC_OK, "\"%s\": %s", ok[i],
		             err.message);
	}
}

Test(param_name, rejects_reserved_names)
{
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		dc_error err = {0};

		cr_expect_eq(dc_check_param_name(reserved[i], &err), DC_ERR_INVALID_ARGUMENT,
		             "\"%s\" must be reserved", reserved[i]);
		cr_expect_eq(err.status, DC_ERR_INVALID_ARGUMENT);
		cr_expect_not_null(strstr(err.message, "reserved"), "message: %s", err.message);
		cr_expect_not_null(strstr(err.message, reserved[i]), "message: %s", err.message);
	}
}

Test(param_name, rejects_bad_syntax)
{
	const char *bad[] = {"", "a b", "a=b", "a&b", "a.b", "caf\xc3\xa9", "a\r\nb", "%41"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dc_error err = {0};

		cr_expect_eq(dc_check_param_name(bad[i], &err), DC_ERR_INVALID_ARGUMENT,
		             "name #%zu must be rejected", i);
	}
	cr_expect_eq(dc_check_param_name(NULL, NULL), DC_ERR_INVALID_ARGUMENT);
}

Test(param_name, length_limit)
{
	char name[66];
	dc_error err = {0};

	memset(name, 'v', 64);
	name[64] = '\0';
	cr_expect_eq(dc_check_param_name(name, &err), DC_OK);
	name[64] = 'v';
	name[65] = '\0';
	cr_expect_eq(dc_check_param_name(name, &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "maximum is 64"), "message: %s", err.message);
}

Test(param_name, message_escapes_value)
{
	dc_error err = {0};

	cr_assert_eq(dc_check_param_name("a\r\nb", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "a\\x0d\\x0ab"), "message: %s", err.message);
	cr_expect_null(strchr(err.message, '\n'));
}

Test(dc_id, accepts_valid_ids)
{
	char max[64];

	memset(max, 'x', 63);
	max[63] = '\0';
	cr_expect_eq(dc_check_id("provider id", "exampleservice.domainconnect.org", NULL), DC_OK);
	cr_expect_eq(dc_check_id("service id", "template_2-b", NULL), DC_OK);
	cr_expect_eq(dc_check_id("service id", max, NULL), DC_OK);
}

Test(dc_id, rejects_bad_ids)
{
	char long_id[65];
	dc_error err = {0};

	memset(long_id, 'x', 64);
	long_id[64] = '\0';
	cr_expect_eq(dc_check_id("service id", long_id, &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "maximum is 63"), "message: %s", err.message);
	cr_expect_eq(dc_check_id("service id", "", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_id("service id", NULL, &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_id("service id", "a b", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_id("service id", "a/b", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_id("group id", "a,b", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "group id \"a,b\""), "message: %s", err.message);
}

Test(state, accepts_vschar)
{
	cr_expect_eq(dc_check_state("{name=value} ~!", NULL), DC_OK);
	cr_expect_eq(dc_check_state("", NULL), DC_OK);
	cr_expect_eq(dc_check_state(NULL, NULL), DC_OK);
}

Test(state, rejects_control_and_utf8)
{
	dc_error err = {0};

	cr_expect_eq(dc_check_state("a\nb", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "a\\x0ab"), "message: %s", err.message);
	cr_expect_eq(dc_check_state("caf\xc3\xa9", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_state("\x7f", &err), DC_ERR_INVALID_ARGUMENT);
}

Test(display_name, limits_and_utf8)
{
	dc_error err = {0};

	cr_expect_eq(dc_check_display_name("provider name", "Caf\xc3\xa9 DNS", NULL), DC_OK);
	cr_expect_eq(dc_check_display_name("provider name", "", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_display_name("provider name", "a\tb", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_display_name("provider name", "\xc3", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "UTF-8"), "message: %s", err.message);

	/* 255 two-byte characters are allowed; 256 are not. */
	char wide[2 * 256 + 1];
	for (int i = 0; i < 256; i++)
		memcpy(wide + 2 * i, "\xc3\xa9", 2);
	wide[2 * 255] = '\0';
	cr_expect_eq(dc_check_display_name("service name", wide, NULL), DC_OK);
	wide[2 * 255] = '\xc3';
	wide[2 * 256] = '\0';
	cr_expect_eq(dc_check_display_name("service name", wide, &err), DC_ERR_INVALID_ARGUMENT);
}

Test(escape, truncates_long_values)
{
	char out[16];
	char in[100];

	memset(in, 'a', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	dc_escape_value(out, sizeof(out), in);
	cr_expect_str_eq(out, "aaaaaaaaaaaa...");
	in[15] = '\0';
	dc_escape_value(out, sizeof(out), in);
	cr_expect_str_eq(out, "aaaaaaaaaaaaaaa", "a value that fits keeps every byte");
	dc_escape_value(out, 2, in);
	cr_expect_str_eq(out, "a");
	dc_escape_value(out, sizeof(out), "a\\b");
	cr_expect_str_eq(out, "a\\x5cb");
	dc_escape_value(out, sizeof(out), NULL);
	cr_expect_str_eq(out, "(null)");
}
