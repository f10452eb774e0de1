/*
 * Percent-encoding and the query builder: reserved characters, UTF-8,
 * control bytes and the characters that would split a query.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "libdomainconnect/internal.h"

static void expect_encoding(const char *in, const char *want)
{
	char *got = dc_percent_encode(in);

	cr_assert_not_null(got, "dc_percent_encode(\"%s\") returned NULL", in);
	cr_expect_str_eq(got, want, "encoding of \"%s\"", in);
	free(got);
}

Test(encoding, unreserved_kept)
{
	expect_encoding("AZaz09-._~", "AZaz09-._~");
	expect_encoding("", "");
}

Test(encoding, reserved_characters)
{
	expect_encoding(":/?#[]@", "%3A%2F%3F%23%5B%5D%40");
	expect_encoding("!$&'()*+,;=", "%21%24%26%27%28%29%2A%2B%2C%3B%3D");
	expect_encoding("a b", "a%20b");
	expect_encoding("100%", "100%25");
	expect_encoding("\"<>\\^`{|}", "%22%3C%3E%5C%5E%60%7B%7C%7D");
}

Test(encoding, utf8_bytes_upper_hex)
{
	/* "é" and "日" in UTF-8; hex digits must be upper-case. */
	expect_encoding("caf\xc3\xa9", "caf%C3%A9");
	expect_encoding("\xe6\x97\xa5", "%E6%97%A5");
	expect_encoding("\xff", "%FF");
}

Test(encoding, control_bytes)
{
	expect_encoding("a\r\nb", "a%0D%0Ab");
	expect_encoding("\t\x7f", "%09%7F");
}

Test(encoding, null_as_empty)
{
	char *got = dc_percent_encode(NULL);

	cr_assert_not_null(got);
	cr_expect_str_eq(got, "");
	free(got);
}

Test(query, keeps_order_and_encodes)
{
	dc_query *q = dc_query_new();

	cr_assert_not_null(q);
	cr_expect_str_eq(dc_query_str(q), "");
	cr_assert_eq(dc_query_add(q, "zeta", "1"), DC_OK);
	cr_assert_eq(dc_query_add(q, "alpha", "a&b=c#d%e"), DC_OK);
	cr_assert_eq(dc_query_add(q, "x y", "line\r\nbreak"), DC_OK);
	cr_expect_str_eq(dc_query_str(q),
	                 "zeta=1&alpha=a%26b%3Dc%23d%25e&x%20y=line%0D%0Abreak");
	cr_expect_eq(dc_query_len(q), strlen(dc_query_str(q)));
	dc_query_free(q);
}

Test(query, empty_and_null_values)
{
	dc_query *q = dc_query_new();

	cr_assert_not_null(q);
	cr_assert_eq(dc_query_add(q, "host", ""), DC_OK);
	cr_assert_eq(dc_query_add(q, "state", NULL), DC_OK);
	cr_expect_str_eq(dc_query_str(q), "host=&state=");
	dc_query_free(q);
}

Test(query, rejects_empty_name)
{
	dc_query *q = dc_query_new();

	cr_assert_not_null(q);
	cr_assert_eq(dc_query_add(q, "a", "1"), DC_OK);
	cr_expect_eq(dc_query_add(q, "", "x"), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_query_add(q, NULL, "x"), DC_ERR_INVALID_ARGUMENT);
	cr_expect_str_eq(dc_query_str(q), "a=1", "a rejected pair must leave the query unchanged");
	dc_query_free(q);
}

Test(query, grows_past_initial_buffer)
{
	dc_query *q = dc_query_new();
	char value[1001];

	cr_assert_not_null(q);
	memset(value, '/', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	for (int i = 0; i < 4; i++)
		cr_assert_eq(dc_query_add(q, "v", value), DC_OK);

	/* Each pair is "v=" plus 1000 "%2F", joined by three '&'. */
	cr_expect_eq(dc_query_len(q), 4 * (2 + 3000) + 3);
	cr_expect_eq(strncmp(dc_query_str(q), "v=%2F%2F", 8), 0);
	dc_query_free(q);
}

Test(query, free_accepts_null)
{
	dc_query_free(NULL);
	cr_expect_str_eq(dc_query_str(NULL), "");
}
