/*
 * Host guard decisions: a table of URLs, a table of addresses, the
 * allow_networks and allow_ports settings, and the pinned urlAPI check.
 * Nothing here opens a socket.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "libdomainconnect/internal.h"

struct url_case {
	const char *url;
	const char *host; /* NULL: rejected */
	int port;
};

Test(guard_url, table)
{
	static const struct url_case cases[] = {
		{"https://api.example.com", "api.example.com", 443},
		{"https://API.Example.COM/v2/x?y=1#z", "api.example.com", 443},
		{"HTTPS://api.example.com:443/", "api.example.com", 443},
		{"https://api.example.com:8443/dc", "api.example.com", 8443},
		{"https://xn--bcher-kva.example/", "xn--bcher-kva.example", 443},
		{"https://a-b.c0.example?q", "a-b.c0.example", 443},
		/* scheme */
		{"http://api.example.com", NULL, 0},
		{"ftp://api.example.com", NULL, 0},
		{"//api.example.com", NULL, 0},
		{"api.example.com", NULL, 0},
		{"https:/api.example.com", NULL, 0},
		/* IP literals in every spelling */
		{"https://127.0.0.1/", NULL, 0},
		{"https://2130706433/", NULL, 0},
		{"https://0177.0.0.1/", NULL, 0},
		{"https://0x7f.1/", NULL, 0},
		{"https://0x7f000001/", NULL, 0},
		{"https://127.1/", NULL, 0},
		{"https://10.1.2/", NULL, 0},
		{"https://169.254.169.254/latest/meta-data", NULL, 0},
		{"https://[::1]/", NULL, 0},
		{"https://[::ffff:127.0.0.1]:443/", NULL, 0},
		{"https://%31%32%37.0.0.1/", NULL, 0},
		/* userinfo */
		{"https://user@api.example.com/", NULL, 0},
		{"https://user:pw@api.example.com/", NULL, 0},
		{"https://api.example.com@127.0.0.1/", NULL, 0},
		{"https://api.example.com\\@evil.example/", NULL, 0},
		/* ports */
		{"https://api.example.com:8080/", NULL, 0},
		{"https://api.example.com:/", NULL, 0},
		{"https://api.example.com:0/", NULL, 0},
		{"https://api.example.com:65536/", NULL, 0},
		{"https://api.example.com:+443/", NULL, 0},
		{"https://api.example.com:443abc/", NULL, 0},
		{"https://api.example.com:443:443/", NULL, 0},
		/* whitespace, control bytes, garbage */
		{"https://api.example.com /", NULL, 0},
		{" https://api.example.com/", NULL, 0},
		{"https://api.example.com/\r\nHost: evil", NULL, 0},
		{"https://api.example.com\t/", NULL, 0},
		{"https://api.ex\xc3\xa4mple.com/", NULL, 0},
		{"https://api.example.com./", NULL, 0},
		{"https://api..example.com/", NULL, 0},
		{"https://-api.example.com/", NULL, 0},
		{"https://api_x.example.com/", NULL, 0},
		{"https://", NULL, 0},
		{"https:///path", NULL, 0},
		{"https://?q", NULL, 0},
		{"", NULL, 0},
	};
	dc_config cfg = {.allow_ports = "8443"};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *host = (char *)"unchanged";
		int port = -1;
		dc_error err = {0};
		dc_status st = dc_guard_check_url(&cfg, cases[i].url, &host, &port, &err);

		if (cases[i].host != NULL) {
			cr_expect_eq(st, DC_OK, "\"%s\": %s", cases[i].url, err.message);
			cr_expect_str_eq(host, cases[i].host, "host of \"%s\"", cases[i].url);
			cr_expect_eq(port, cases[i].port, "port of \"%s\"", cases[i].url);
			free(host);
			continue;
		}
		cr_expect_eq(st, DC_ERR_HOST_REJECTED, "\"%s\" must be rejected", cases[i].url);
		cr_expect_eq(err.status, DC_ERR_HOST_REJECTED);
		cr_expect_null(host, "\"%s\": host must be NULL on failure", cases[i].url);
		cr_expect_null(strchr(err.message, '\n'));
	}
}

Test(guard_url, messages_name_cause)
{
	static const struct {
		const char *url;
		const char *fragment;
	} cases[] = {
		{"http://a.example", "not https"},
		{"https://u@a.example", "user information"},
		{"https://2130706433", "IP address"},
		{"https://[::1]", "IPv6 address"},
		{"https://a.example:8080", "allow_ports does not list"},
		{"https://a .example", "whitespace"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *host = NULL;
		int port = 0;
		dc_error err = {0};

		dc_guard_check_url(NULL, cases[i].url, &host, &port, &err);
		cr_expect_not_null(strstr(err.message, cases[i].fragment), "\"%s\": message \"%s\"",
		                   cases[i].url, err.message);
		free(host);
	}
}

Test(guard_url, default_allows_443_only)
{
	char *host = NULL;
	int port = 0;

	cr_expect_eq(dc_guard_check_url(NULL, "https://a.example:8443/", &host, &port, NULL),
	             DC_ERR_HOST_REJECTED);
	cr_expect_eq(dc_guard_check_url(NULL, "https://a.example:443/", &host, &port, NULL), DC_OK);
	free(host);
	cr_expect_eq(dc_guard_check_url(NULL, NULL, &host, &port, NULL), DC_ERR_INVALID_ARGUMENT);
}

/* Checks text (an IPv4 or IPv6 address) with cfg. */
static dc_status check_text(const dc_config *cfg, const char *text, dc_error *err)
{
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

	if (inet_pton(AF_INET, text, &in.sin_addr) == 1)
		return dc_guard_check_address(cfg, (const struct sockaddr *)&in, err);
	cr_assert_eq(inet_pton(AF_INET6, text, &in6.sin6_addr), 1, "bad test address %s", text);
	return dc_guard_check_address(cfg, (const struct sockaddr *)&in6, err);
}

Test(guard_address, table)
{
	static const struct {
		const char *addr;
		bool allowed;
	} cases[] = {
		{"93.184.216.34", true},
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700::1111", true},
		{"2a00:1450:4001:80b::200e", true},
		{"::ffff:93.184.216.34", true},
		{"64:ff9b::808:808", true},
		/* this network, loopback */
		{"0.0.0.0", false},
		{"0.255.255.255", false},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		/* RFC 1918 */
		{"10.0.0.1", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		/* edges of RFC 1918 that are public */
		{"172.15.255.255", true},
		{"172.32.0.0", true},
		{"11.0.0.0", true},
		/* link-local and metadata */
		{"169.254.169.254", false},
		{"169.254.0.1", false},
		/* CGNAT */
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"100.128.0.0", true},
		/* reserved, documentation, benchmarking */
		{"192.0.0.8", false},
		{"192.0.2.1", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"198.20.0.0", true},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		/* multicast, reserved, broadcast */
		{"224.0.0.1", false},
		{"239.255.255.255", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		/* IPv6 */
		{"::", false},
		{"::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"febf::1", false},
		{"fec0::1", true},
		{"ff02::1", false},
		{"2001:db8::1", false},
		{"100::1", false},
		{"100:0:0:1::1", true},
		/* IPv4 embedded in IPv6 */
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:0.0.0.0", false},
		{"64:ff9b::7f00:1", false},
		{"64:ff9b::a9fe:a9fe", false},
		{"::127.0.0.1", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_error err = {0};
		dc_status st = check_text(NULL, cases[i].addr, &err);

		if (cases[i].allowed) {
			cr_expect_eq(st, DC_OK, "%s must be allowed: %s", cases[i].addr, err.message);
			continue;
		}
		cr_expect_eq(st, DC_ERR_HOST_REJECTED, "%s must be rejected", cases[i].addr);
		cr_expect_not_null(strstr(err.message, "allow_networks"), "%s: message \"%s\"",
		                   cases[i].addr, err.message);
	}
}

Test(guard_address, message_names_range)
{
	dc_error err = {0};

	cr_assert_eq(check_text(NULL, "169.254.169.254", &err), DC_ERR_HOST_REJECTED);
	cr_expect_not_null(strstr(err.message, "169.254.0.0/16"), "%s", err.message);
	cr_assert_eq(check_text(NULL, "::ffff:127.0.0.1", &err), DC_ERR_HOST_REJECTED);
	cr_expect_not_null(strstr(err.message, "127.0.0.0/8"), "%s", err.message);
	cr_expect_not_null(strstr(err.message, "IPv4-mapped"), "%s", err.message);
}

Test(guard_address, allow_networks_host_route)
{
	dc_config cfg = {.allow_networks = "127.0.0.1/32, ::1/128"};
	dc_error err = {0};

	cr_expect_eq(check_text(&cfg, "127.0.0.1", &err), DC_OK, "%s", err.message);
	cr_expect_eq(check_text(&cfg, "127.0.0.2", &err), DC_ERR_HOST_REJECTED);
	cr_expect_eq(check_text(&cfg, "::1", &err), DC_OK, "%s", err.message);
	cr_expect_eq(check_text(&cfg, "::ffff:127.0.0.1", &err), DC_OK, "%s", err.message);
	cr_expect_eq(check_text(&cfg, "::ffff:127.0.0.2", &err), DC_ERR_HOST_REJECTED);
	cr_expect_eq(check_text(&cfg, "10.0.0.1", &err), DC_ERR_HOST_REJECTED);
	cr_expect_eq(check_text(&cfg, "fe80::1", &err), DC_ERR_HOST_REJECTED);
}

Test(guard_address, allow_networks_ranges)
{
	dc_config cfg = {.allow_networks = "127.0.0.0/8,10.1.0.0/16,fd00::/8,192.168.1.5"};
	dc_error err = {0};

	cr_expect_eq(check_text(&cfg, "127.0.0.2", &err), DC_OK, "%s", err.message);
	cr_expect_eq(check_text(&cfg, "10.1.200.3", &err), DC_OK, "%s", err.message);
	cr_expect_eq(check_text(&cfg, "10.2.0.1", &err), DC_ERR_HOST_REJECTED);
	cr_expect_eq(check_text(&cfg, "fd12::1", &err), DC_OK, "%s", err.message);
	cr_expect_eq(check_text(&cfg, "fc00::1", &err), DC_ERR_HOST_REJECTED);
	cr_expect_eq(check_text(&cfg, "192.168.1.5", &err), DC_OK, "%s", err.message);
	cr_expect_eq(check_text(&cfg, "192.168.1.6", &err), DC_ERR_HOST_REJECTED);
}

Test(guard_address, other_family_rejected)
{
	struct sockaddr sa = {.sa_family = AF_UNIX};
	dc_error err = {0};

	cr_expect_eq(dc_guard_check_address(NULL, &sa, &err), DC_ERR_HOST_REJECTED);
	cr_expect_eq(dc_guard_check_address(NULL, NULL, &err), DC_ERR_INVALID_ARGUMENT);
}

Test(guard_config, accepts_valid_lists)
{
	dc_config cfg = {.allow_networks = "127.0.0.0/8, ::1/128,10.0.0.0/8,0.0.0.0/0,::/0",
	                 .allow_ports = "8443, 9443,1"};
	dc_error err = {0};

	cr_expect_eq(dc_guard_config_check(&cfg, &err), DC_OK, "%s", err.message);
	cr_expect_eq(dc_guard_config_check(NULL, &err), DC_OK);
	dc_config empty = {0};
	cr_expect_eq(dc_guard_config_check(&empty, &err), DC_OK);
}

Test(guard_config, rejects_bad_networks)
{
	static const struct {
		const char *list;
		const char *fragment;
	} cases[] = {
		{"127.0.0.1/33", "\"127.0.0.1/33\" has an invalid prefix"},
		{"::1/129", "\"::1/129\" has an invalid prefix"},
		{"127.0.0.0/", "invalid prefix"},
		{"127.0.0.0/8x", "invalid prefix"},
		{"127.0.0.0/-1", "invalid prefix"},
		{"127.0.0.0/+8", "invalid prefix"},
		{"127.0.0.0/0008", "invalid prefix"},
		{"127.0.0.1/8", "\"127.0.0.1/8\" has host bits set"},
		{"fd00::1/8", "host bits set"},
		{"127.1/32", "\"127.1/32\" is not an IP address"},
		{"0177.0.0.1/32", "not an IP address"},
		{"localhost", "not an IP address"},
		{"[::1]/128", "not an IP address"},
		{"127.0.0.0/8,,::1/128", "empty entry"},
		{"127.0.0.0/8,", "empty entry"},
		{"", "empty entry"},
		{"127.0.0.0/8;10.0.0.0/8", "invalid prefix"},
		{"127.0.0.0 /8", "not an IP address"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_config cfg = {.allow_networks = cases[i].list};
		dc_error err = {0};

		cr_expect_eq(dc_guard_config_check(&cfg, &err), DC_ERR_INVALID_ARGUMENT,
		             "\"%s\" must be rejected", cases[i].list);
		cr_expect_not_null(strstr(err.message, cases[i].fragment), "\"%s\": message \"%s\"",
		                   cases[i].list, err.message);
	}
}

Test(guard_config, bad_network_rejected_at_check)
{
	dc_config cfg = {.allow_networks = "127.0.0.0/8,bogus"};
	dc_error err = {0};

	/* The address check reports a malformed list instead of silently skipping it. */
	cr_expect_eq(check_text(&cfg, "10.0.0.1", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_not_null(strstr(err.message, "bogus"), "%s", err.message);
}

Test(guard_config, rejects_bad_ports)
{
	const char *bad[] = {"0", "65536", "84 43", "8443,", "-1", "abc", "+443", "123456"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dc_config cfg = {.allow_ports = bad[i]};
		dc_error err = {0};

		cr_expect_eq(dc_guard_config_check(&cfg, &err), DC_ERR_INVALID_ARGUMENT,
		             "\"%s\" must be rejected", bad[i]);
		cr_expect_not_null(strstr(err.message, "allow_ports"), "%s", err.message);
	}
}

Test(pinned_api, comparison)
{
	dc_provider p = {.name = "ionos", .url_api = "https://api.domainconnect.ionos.com/v1"};
	dc_error err = {0};

	cr_expect_eq(dc_check_pinned_api(&p, "https://api.domainconnect.ionos.com/v1", &err), DC_OK);
	cr_expect_eq(dc_check_pinned_api(&p, "HTTPS://API.DomainConnect.IONOS.com/v1/", &err),
	             DC_OK, "%s", err.message);
	cr_expect_eq(dc_check_pinned_api(&p, "https://api.domainconnect.ionos.com/V1", &err),
	             DC_ERR_API_MISMATCH);
	cr_expect_eq(dc_check_pinned_api(&p, "https://api.domainconnect.ionos.com/v1//", &err),
	             DC_ERR_API_MISMATCH);
	cr_expect_eq(dc_check_pinned_api(&p, "https://api.domainconnect.ionos.com", &err),
	             DC_ERR_API_MISMATCH);
	cr_expect_eq(dc_check_pinned_api(&p, "https://evil.example/v1", &err), DC_ERR_API_MISMATCH);
	cr_expect_eq(dc_check_pinned_api(&p, "http://api.domainconnect.ionos.com/v1", &err),
	             DC_ERR_API_MISMATCH);
	cr_expect_not_null(strstr(err.message, "ionos"), "%s", err.message);
	cr_expect_not_null(strstr(err.message, "hijack"), "%s", err.message);
	cr_expect_eq(dc_check_pinned_api(&p, "garbage", &err), DC_ERR_API_MISMATCH);
}

Test(pinned_api, missing_values)
{
	dc_provider p = {.name = "x"};
	dc_error err = {0};

	cr_expect_eq(dc_check_pinned_api(&p, "https://a.example", &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_pinned_api(NULL, "https://a.example", &err), DC_ERR_INVALID_ARGUMENT);
	p.url_api = "https://a.example";
	cr_expect_eq(dc_check_pinned_api(&p, NULL, &err), DC_ERR_INVALID_ARGUMENT);
	cr_expect_eq(dc_check_pinned_api(&p, "https://a.example/", &err), DC_OK);
}
