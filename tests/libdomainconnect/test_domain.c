/*
 * dc_split_domain: the public suffix list vectors of the reference library,
 * normalization, internationalized names and rejected names.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "libdomainconnect/domainconnect.h"

struct split_case {
	const char *input;
	const char *zone;
	const char *host;
};

static void expect_split(const struct split_case *c)
{
	char *zone = NULL;
	char *host = NULL;
	dc_error err = {0};

	dc_status st = dc_split_domain(c->input, &zone, &host, &err);
	cr_assert_eq(st, DC_OK, "\"%s\": %s", c->input, err.message);
	cr_expect_str_eq(zone, c->zone, "zone of \"%s\"", c->input);
	cr_expect_str_eq(host, c->host, "host of \"%s\"", c->input);
	free(zone);
	free(host);
}

static void expect_rejected(const char *input, const char *fragment)
{
	char *zone = (char *)"unchanged";
	char *host = (char *)"unchanged";
	dc_error err = {0};

	dc_status st = dc_split_domain(input, &zone, &host, &err);
	cr_expect_eq(st, DC_ERR_INVALID_ARGUMENT, "\"%s\" must be rejected", input);
	cr_expect_eq(err.status, DC_ERR_INVALID_ARGUMENT);
	cr_expect_null(zone, "zone must be NULL after a failure");
	cr_expect_null(host, "host must be NULL after a failure");
	if (fragment != NULL)
		cr_expect_not_null(strstr(err.message, fragment), "\"%s\": message \"%s\"", input,
		                   err.message);
}

Test(split_domain, reference_psl_vectors)
{
	static const struct split_case cases[] = {
		{"test.com", "test.com", ""},
		{"sub.subdomain.test.com", "test.com", "sub.subdomain"},
		{"subdomain.test.co.uk", "test.co.uk", "subdomain"},
		{"test.uk", "test.uk", ""},
		{"sub.subdomain.test.com.de", "test.com.de", "sub.subdomain"},
		{"subdomain.test.poznan.pl", "test.poznan.pl", "subdomain"},
		{"sub.subdomain.get.app", "get.app", "sub.subdomain"},
		{"subdomain.get.unkownnewtld", "get.unkownnewtld", "subdomain"},
		{"rent.theirplace.co.uk", "theirplace.co.uk", "rent"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_split(&cases[i]);
}

Test(split_domain, private_section_used)
{
	/* github.io is in the private section of the list. */
	static const struct split_case c = {"www.foo.github.io", "foo.github.io", "www"};

	expect_split(&c);
	expect_rejected("github.io", "public suffix");
}

Test(split_domain, normalizes_input)
{
	static const struct split_case cases[] = {
		{"  Sub.Example.COM.  ", "example.com", "sub"},
		{"example.com.", "example.com", ""},
		{"\tWWW.example.com", "example.com", "www"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_split(&cases[i]);
}

Test(split_domain, idn_to_a_labels)
{
	static const struct split_case cases[] = {
		{"shop.b\xc3\xbc" "cher.example", "xn--bcher-kva.example", "shop"},
		{"M\xc3\xbcnchen.de", "xn--mnchen-3ya.de", ""},
		{"xn--mnchen-3ya.de", "xn--mnchen-3ya.de", ""},
		{"www.\xe4\xbe\x8b\xe5\xad\x90.\xe4\xb8\xad\xe5\x9b\xbd", "xn--fsqu00a.xn--fiqs8s", "www"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_split(&cases[i]);
}

Test(split_domain, underscore_only_in_host)
{
	static const struct split_case c = {"_dmarc.example.com", "example.com", "_dmarc"};

	expect_split(&c);
	expect_rejected("my_shop.com", "underscore");
	expect_rejected("a.my_shop.co.uk", "underscore");
}

Test(split_domain, rejects_public_suffix)
{
	expect_rejected("com", "public suffix");
	expect_rejected("co.uk", "public suffix");
	expect_rejected("localhost", "public suffix");
	expect_rejected("unkownnewtld", "public suffix");
}

Test(split_domain, rejects_ip_literals)
{
	expect_rejected("127.0.0.1", "IP address");
	expect_rejected("10.1", "IP address");
	expect_rejected("2130706433", "IP address");
	expect_rejected("0x7f.1", "IP address");
	expect_rejected("[::1]", "invalid character");
	expect_rejected("::1", "invalid character");
}

Test(split_domain, rejects_bad_syntax)
{
	expect_rejected("", "empty");
	expect_rejected("   ", "empty");
	expect_rejected(".", "empty");
	expect_rejected("example.com..", "empty label");
	expect_rejected("a..example.com", "empty label");
	expect_rejected(".example.com", "empty label");
	expect_rejected("exa mple.com", "whitespace");
	expect_rejected("example.com\r\n", "whitespace");
	expect_rejected("-bad.example.com", "'-'");
	expect_rejected("bad-.example.com", "'-'");
	expect_rejected("user@example.com", "invalid character");
	expect_rejected("example.com/path", "invalid character");
	expect_rejected("example.com:443", "invalid character");
	expect_rejected("xn--zz.example", "internationalized");
	expect_rejected(NULL, "missing");
}

Test(split_domain, length_limits)
{
	char label[80];
	char name[300];

	/* A 63-byte label is allowed, a 64-byte one is not. */
	memset(label, 'a', 63);
	strcpy(label + 63, ".com");
	static struct split_case ok;
	ok.input = label;
	ok.zone = label;
	ok.host = "";
	expect_split(&ok);

	memset(label, 'a', 64);
	strcpy(label + 64, ".com");
	expect_rejected(label, "maximum is 63");

	/* 4 labels of 61 bytes plus "abcd.com": 4 * 62 + 8 = 256 bytes. */
	name[0] = '\0';
	for (int i = 0; i < 4; i++) {
		memset(label, 'b', 61);
		strcpy(label + 61, ".");
		strcat(name, label);
	}
	strcat(name, "abcd.com");
	expect_rejected(name, "maximum is 253");

	/* Exactly 253 bytes is allowed: 4 * 62 + "a.com" = 253. */
	name[4 * 62] = '\0';
	strcat(name, "a.com");
	cr_assert_eq(strlen(name), 253);
	char *zone = NULL;
	char *host = NULL;
	cr_expect_eq(dc_split_domain(name, &zone, &host, NULL), DC_OK);
	cr_expect_str_eq(zone, "a.com");
	free(zone);
	free(host);
}
