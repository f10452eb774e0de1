/*
 * The host guard: the decisions that keep server-side requests away from
 * internal networks (SSRF). The owner of a target domain's DNS controls its
 * _domainconnect TXT record and the settings it points to, so every URL is
 * checked before resolution and every resolved address before connecting.
 *
 * URL rules: https only, a DNS host name (no IP literal in any spelling,
 * no userinfo), no whitespace or control bytes, and a port only when
 * allow_ports lists it. Address rules: a deny list of special-purpose
 * ranges, IPv6 forms that embed an IPv4 address checked as that address,
 * minus the networks in allow_networks. These functions decide only; the
 * caller resolves, pins the checked address and connects.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define HTTPS_PORT 443
#define URL_MAX 2048
#define HOST_MAX 253
#define LABEL_MAX 63

/* Maximum length of an allow_networks or allow_ports entry, e.g. a full IPv6 CIDR. */
#define LIST_ENTRY_MAX 64

/* An IPv4 range of the deny list, in host byte order. */
struct v4_range {
	uint32_t network;
	unsigned prefix;
	const char *cidr;
	const char *why;
};

/* Special-purpose IPv4 ranges (IANA registry) that no provider API lives in. */
static const struct v4_range v4_deny[] = {
	{0x00000000, 8, "0.0.0.0/8", "this network"},
	{0x0a000000, 8, "10.0.0.0/8", "private (RFC 1918)"},
	{0x64400000, 10, "100.64.0.0/10", "carrier-grade NAT"},
	{0x7f000000, 8, "127.0.0.0/8", "loopback"},
	{0xa9fe0000, 16, "169.254.0.0/16", "link-local and cloud metadata"},
	{0xac100000, 12, "172.16.0.0/12", "private (RFC 1918)"},
	{0xc0000000, 24, "192.0.0.0/24", "IETF protocol assignments"},
	{0xc0000200, 24, "192.0.2.0/24", "documentation"},
	{0xc0a80000, 16, "192.168.0.0/16", "private (RFC 1918)"},
	{0xc6120000, 15, "198.18.0.0/15", "benchmarking"},
	{0xc6336400, 24, "198.51.100.0/24", "documentation"},
	{0xcb007100, 24, "203.0.113.0/24", "documentation"},
	{0xe0000000, 4, "224.0.0.0/4", "multicast"},
	{0xf0000000, 4, "240.0.0.0/4", "reserved"},
	{0xffffffff, 32, "255.255.255.255/32", "broadcast"},
};

/* An IPv6 range of the deny list. */
struct v6_range {
	uint8_t network[16];
	unsigned prefix;
	const char *cidr;
	const char *why;
};

static const struct v6_range v6_deny[] = {
	{{0}, 128, "::/128", "unspecified"},
	{{[15] = 1}, 128, "::1/128", "loopback"},
	{{0x01, 0x00}, 64, "100::/64", "discard-only"},
	{{0x20, 0x01, 0x0d, 0xb8}, 32, "2001:db8::/32", "documentation"},
	{{0xfc}, 7, "fc00::/7", "unique local"},
	{{0xfe, 0x80}, 10, "fe80::/10", "link-local"},
	{{0xff}, 8, "ff00::/8", "multicast"},
};

/*
 * IPv6 prefixes whose low 32 bits are an IPv4 address, checked as that address.
 * NOTE: 6to4 (2002::/16) and Teredo (2001::/32) also carry IPv4 addresses,
 * in other bits, and are not unpacked here.
 */
static const struct v6_range v6_embedding[] = {
	{{[10] = 0xff, [11] = 0xff}, 96, "::ffff:0:0/96", "IPv4-mapped"},
	{{0x00, 0x64, 0xff, 0x9b}, 96, "64:ff9b::/96", "NAT64"},
	/* Deprecated IPv4-compatible form. The deny list catches :: and ::1 first. */
	{{0}, 96, "::/96", "IPv4-compatible"},
};

/* One parsed allow_networks entry. */
struct network {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

static bool prefix_matches(const uint8_t *addr, const uint8_t *network, unsigned prefix)
{
	unsigned whole = prefix / 8;
	unsigned rest = prefix % 8;

	if (memcmp(addr, network, whole) != 0)
		return false;
	if (rest == 0)
		return true;

	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (addr[whole] & mask) == (network[whole] & mask);
}

/* ---- Lists in the configuration ------------------------------------------ */

/*
 * Calls visit for each comma-separated entry of list, spaces around entries
 * trimmed. An empty entry is an error. Stops at the first failing visit.
 */
static dc_status for_each_entry(const char *list, const char *what,
                                dc_status (*visit)(const char *entry, void *arg, dc_error *err),
                                void *arg, dc_error *err)
{
	const char *p = list;

	for (;;) {
		size_t len = strcspn(p, ",");
		const char *start = p;
		const char *end = p + len;

		while (start < end && *start == ' ')
			start++;
		while (end > start && end[-1] == ' ')
			end--;

		char entry[LIST_ENTRY_MAX + 1];
		size_t entry_len = (size_t)(end - start);
		if (entry_len == 0)
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "%s has an empty entry: separate entries with single commas", what);
		if (entry_len > LIST_ENTRY_MAX) {
			dc_copy_sanitized(entry, sizeof(entry), start, entry_len);
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "%s entry \"%s...\" is too long", what,
			               entry);
		}
		memcpy(entry, start, entry_len);
		entry[entry_len] = '\0';

		dc_status st = visit(entry, arg, err);
		if (st != DC_OK)
			return st;
		if (p[len] == '\0')
			return DC_OK;
		p += len + 1;
	}
}

/* Parses a decimal number of at most max_digits digits, no sign, no spaces. */
static bool parse_decimal(const char *s, unsigned max_digits, unsigned long max,
                          unsigned long *out)
{
	size_t len = strlen(s);

	if (len == 0 || len > max_digits)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
	}

	errno = 0;
	unsigned long value = strtoul(s, NULL, 10);
	if (errno != 0 || value > max)
		return false;
	*out = value;
	return true;
}

/* Parses one CIDR ("10.0.0.0/8", "::1/128", or a bare address) strictly. */
static dc_status parse_network(const char *entry, struct network *net, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];
	char addr[LIST_ENTRY_MAX + 1];

	dc_escape_value(shown, sizeof(shown), entry);
	snprintf(addr, sizeof(addr), "%s", entry);

	char *slash = strchr(addr, '/');
	if (slash != NULL)
		*slash = '\0';

	memset(net, 0, sizeof(*net));
	unsigned max_prefix;
	if (inet_pton(AF_INET, addr, net->addr) == 1) {
		net->family = AF_INET;
		max_prefix = 32;
	} else if (inet_pton(AF_INET6, addr, net->addr) == 1) {
		net->family = AF_INET6;
		max_prefix = 128;
	} else {
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "allow_networks entry \"%s\" is not an IP address or CIDR: write it "
		               "like 127.0.0.0/8 or ::1/128",
		               shown);
	}

	unsigned long prefix = max_prefix;
	if (slash != NULL && !parse_decimal(slash + 1, 3, max_prefix, &prefix))
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "allow_networks entry \"%s\" has an invalid prefix length: use 0 to %u",
		               shown, max_prefix);
	net->prefix = (unsigned)prefix;

	/* Host bits set after the prefix usually mean a typo, so reject them. */
	uint8_t masked[16] = {0};
	memcpy(masked, net->addr, sizeof(masked));
	for (unsigned bit = net->prefix; bit < max_prefix; bit++)
		masked[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	if (memcmp(masked, net->addr, sizeof(masked)) != 0)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "allow_networks entry \"%s\" has host bits set after the prefix: write "
		               "the network address",
		               shown);
	return DC_OK;
}

static dc_status check_network_entry(const char *entry, void *arg, dc_error *err)
{
	struct network net;

	(void)arg;
	return parse_network(entry, &net, err);
}

static dc_status check_port_entry(const char *entry, void *arg, dc_error *err)
{
	unsigned long port;

	(void)arg;
	if (!parse_decimal(entry, 5, 65535, &port) || port == 0) {
		char shown[DC_ESCAPED_MAX];

		dc_escape_value(shown, sizeof(shown), entry);
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "allow_ports entry \"%s\" is not a port number from 1 to 65535", shown);
	}
	return DC_OK;
}

dc_status dc_guard_config_check(const dc_config *cfg, dc_error *err)
{
	if (cfg == NULL)
		return DC_OK;

	if (cfg->allow_networks != NULL) {
		dc_status st = for_each_entry(cfg->allow_networks, "allow_networks",
		                              check_network_entry, NULL, err);
		if (st != DC_OK)
			return st;
	}
	if (cfg->allow_ports != NULL)
		return for_each_entry(cfg->allow_ports, "allow_ports", check_port_entry, NULL, err);
	return DC_OK;
}

/* ---- URLs ----------------------------------------------------------------- */

/* State for finding a port in allow_ports. */
struct port_search {
	unsigned long port;
	bool found;
};

static dc_status match_port_entry(const char *entry, void *arg, dc_error *err)
{
	struct port_search *search = arg;
	unsigned long port;

	dc_status st = check_port_entry(entry, NULL, err);
	if (st != DC_OK)
		return st;
	parse_decimal(entry, 5, 65535, &port);
	if (port == search->port)
		search->found = true;
	return DC_OK;
}

/*
 * Rejects a host that is an IPv4 address in any spelling inet_aton accepts
 * (2130706433, 0177.0.0.1, 0x7f.1, 127.1). The last label of a real domain
 * is never all digits, so such names are rejected outright as well.
 */
static bool is_ipv4_spelling(const char *host)
{
	struct in_addr addr;

	if (inet_aton(host, &addr) != 0)
		return true;

	const char *last = strrchr(host, '.');
	last = last != NULL ? last + 1 : host;
	if (last[0] == '0' && last[1] == 'x')
		return true;
	for (const char *p = last; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
	}
	return true;
}

/* Checks a lower-cased host name: LDH labels of 1..63 bytes, 253 bytes in all. */
static dc_status check_host_name(const char *host, const char *shown, dc_error *err)
{
	size_t len = strlen(host);

	if (len == 0)
		return dc_fail(err, DC_ERR_HOST_REJECTED, "URL \"%s\" has an empty host", shown);
	if (len > HOST_MAX)
		return dc_fail(err, DC_ERR_HOST_REJECTED, "URL \"%s\" has a host longer than %d bytes",
		               shown, HOST_MAX);
	if (is_ipv4_spelling(host))
		return dc_fail(err, DC_ERR_HOST_REJECTED,
		               "URL \"%s\" has an IP address as its host: only DNS names are allowed",
		               shown);

	const char *label = host;
	for (;;) {
		size_t label_len = strcspn(label, ".");

		if (label_len == 0 || label_len > LABEL_MAX || label[0] == '-' ||
		    label[label_len - 1] == '-')
			return dc_fail(err, DC_ERR_HOST_REJECTED,
			               "URL \"%s\" has an invalid host name label", shown);
		for (size_t i = 0; i < label_len; i++) {
			unsigned char c = (unsigned char)label[i];

			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
				return dc_fail(err, DC_ERR_HOST_REJECTED,
				               "URL \"%s\" has an invalid character in its host name", shown);
		}
		if (label[label_len] == '\0')
			return DC_OK;
		label += label_len + 1;
	}
}

/* Parses and checks the port after ':' in the authority. */
static dc_status check_port(const dc_config *cfg, const char *text, const char *shown, int *port,
                            dc_error *err)
{
	unsigned long value;

	if (!parse_decimal(text, 5, 65535, &value) || value == 0)
		return dc_fail(err, DC_ERR_HOST_REJECTED, "URL \"%s\" has an invalid port", shown);
	*port = (int)value;
	if (value == HTTPS_PORT)
		return DC_OK;

	struct port_search search = {value, false};
	const char *list = cfg != NULL ? cfg->allow_ports : NULL;
	if (list != NULL) {
		dc_status st = for_each_entry(list, "allow_ports", match_port_entry, &search, err);
		if (st != DC_OK)
			return st;
	}
	if (!search.found)
		return dc_fail(err, DC_ERR_HOST_REJECTED,
		               "URL \"%s\" uses port %lu, which allow_ports does not list", shown, value);
	return DC_OK;
}

/* Splits the authority into host and port and checks both. *host is malloc'd. */
static dc_status check_authority(const dc_config *cfg, const char *authority, size_t len,
                                 const char *shown, char **host, int *port, dc_error *err)
{
	if (memchr(authority, '@', len) != NULL)
		return dc_fail(err, DC_ERR_HOST_REJECTED,
		               "URL \"%s\" contains user information, which is not allowed", shown);
	if (memchr(authority, '[', len) != NULL || memchr(authority, ']', len) != NULL)
		return dc_fail(err, DC_ERR_HOST_REJECTED,
		               "URL \"%s\" has an IPv6 address as its host: only DNS names are allowed",
		               shown);

	char *name = strndup(authority, len);
	if (name == NULL)
		return dc_fail(err, DC_ERR_NOMEM, "out of memory checking a URL");
	for (char *p = name; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);

	dc_status st = DC_OK;
	*port = HTTPS_PORT;
	char *colon = strchr(name, ':');
	if (colon != NULL) {
		*colon = '\0';
		st = check_port(cfg, colon + 1, shown, port, err);
	}
	if (st == DC_OK)
		st = check_host_name(name, shown, err);
	if (st != DC_OK) {
		free(name);
		return st;
	}
	*host = name;
	return DC_OK;
}

dc_status dc_guard_check_url(const dc_config *cfg, const char *url, char **host, int *port,
                             dc_error *err)
{
	static const char scheme[] = "https://";
	char shown[DC_ESCAPED_MAX];

	if (url == NULL || host == NULL || port == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "dc_guard_check_url: url, host and port are required");
	*host = NULL;
	*port = 0;

	dc_escape_value(shown, sizeof(shown), url);
	size_t len = strlen(url);
	if (len > URL_MAX)
		return dc_fail(err, DC_ERR_HOST_REJECTED, "URL \"%s\" is longer than %d bytes", shown,
		               URL_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];

		if (c <= 0x20 || c >= 0x7f)
			return dc_fail(err, DC_ERR_HOST_REJECTED,
			               "URL \"%s\" contains whitespace, a control byte or non-ASCII", shown);
	}
	if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
		return dc_fail(err, DC_ERR_HOST_REJECTED, "URL \"%s\" is not https: only https is allowed",
		               shown);

	const char *authority = url + sizeof(scheme) - 1;
	size_t authority_len = strcspn(authority, "/?#");
	if (authority_len == 0)
		return dc_fail(err, DC_ERR_HOST_REJECTED, "URL \"%s\" has an empty host", shown);
	return check_authority(cfg, authority, authority_len, shown, host, port, err);
}

/* ---- Addresses ------------------------------------------------------------ */

/* State for matching an address against allow_networks. */
struct network_search {
	int family;
	const uint8_t *addr;
	bool found;
};

static dc_status match_network_entry(const char *entry, void *arg, dc_error *err)
{
	struct network_search *search = arg;
	struct network net;

	dc_status st = parse_network(entry, &net, err);
	if (st != DC_OK)
		return st;
	if (net.family == search->family && prefix_matches(search->addr, net.addr, net.prefix))
		search->found = true;
	return DC_OK;
}

/* Sets *allowed when cfg->allow_networks contains the address. */
static dc_status is_allowed(const dc_config *cfg, int family, const uint8_t *addr, bool *allowed,
                            dc_error *err)
{
	struct network_search search = {family, addr, false};

	*allowed = false;
	if (cfg == NULL || cfg->allow_networks == NULL)
		return DC_OK;

	dc_status st =
		for_each_entry(cfg->allow_networks, "allow_networks", match_network_entry, &search, err);
	*allowed = search.found;
	return st;
}

static dc_status check_v4(const dc_config *cfg, const uint8_t *addr, const char *shown,
                          dc_error *err)
{
	uint32_t host_order = (uint32_t)addr[0] << 24 | (uint32_t)addr[1] << 16 |
	                      (uint32_t)addr[2] << 8 | addr[3];

	for (size_t i = 0; i < sizeof(v4_deny) / sizeof(v4_deny[0]); i++) {
		const struct v4_range *r = &v4_deny[i];
		uint32_t mask = r->prefix == 0 ? 0 : UINT32_MAX << (32 - r->prefix);

		if ((host_order & mask) != r->network)
			continue;

		bool allowed;
		dc_status st = is_allowed(cfg, AF_INET, addr, &allowed, err);
		if (st != DC_OK || allowed)
			return st;
		return dc_fail(err, DC_ERR_HOST_REJECTED,
		               "address %s is in %s (%s): add it to allow_networks only for tests",
		               shown, r->cidr, r->why);
	}
	return DC_OK;
}

static dc_status check_v6(const dc_config *cfg, const uint8_t *addr, const char *shown,
                          dc_error *err)
{
	bool allowed;
	dc_status st = is_allowed(cfg, AF_INET6, addr, &allowed, err);
	if (st != DC_OK || allowed)
		return st;

	for (size_t i = 0; i < sizeof(v6_deny) / sizeof(v6_deny[0]); i++) {
		if (prefix_matches(addr, v6_deny[i].network, v6_deny[i].prefix))
			return dc_fail(err, DC_ERR_HOST_REJECTED,
			               "address %s is in %s (%s): add it to allow_networks only for tests",
			               shown, v6_deny[i].cidr, v6_deny[i].why);
	}

	/* An embedded IPv4 address gets the IPv4 rules, allow_networks included. */
	for (size_t i = 0; i < sizeof(v6_embedding) / sizeof(v6_embedding[0]); i++) {
		if (!prefix_matches(addr, v6_embedding[i].network, v6_embedding[i].prefix))
			continue;

		char v4_shown[INET6_ADDRSTRLEN + 64];
		char v4_text[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, addr + 12, v4_text, sizeof(v4_text));
		snprintf(v4_shown, sizeof(v4_shown), "%s (%s %s)", shown, v6_embedding[i].why,
		         v4_text);
		return check_v4(cfg, addr + 12, v4_shown, err);
	}
	return DC_OK;
}

dc_status dc_guard_check_address(const dc_config *cfg, const struct sockaddr *addr,
                                 dc_error *err)
{
	char text[INET6_ADDRSTRLEN];

	if (addr == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "dc_guard_check_address: addr is required");

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
		uint8_t bytes[4];

		memcpy(bytes, &in->sin_addr, sizeof(bytes));
		inet_ntop(AF_INET, bytes, text, sizeof(text));
		return check_v4(cfg, bytes, text, err);
	}
	if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
		uint8_t bytes[16];

		memcpy(bytes, &in6->sin6_addr, sizeof(bytes));
		inet_ntop(AF_INET6, bytes, text, sizeof(text));
		return check_v6(cfg, bytes, text, err);
	}
	return dc_fail(err, DC_ERR_HOST_REJECTED, "address family %d is not IPv4 or IPv6",
	               (int)addr->sa_family);
}

/* ---- Pinned API URL ------------------------------------------------------- */

/*
 * Splits an https URL into the part before the path (scheme and authority)
 * and the path without one trailing slash. Returns false when url has no
 * "://".
 */
static bool split_api_url(const char *url, size_t *origin_len, size_t *path_len)
{
	const char *sep = strstr(url, "://");
	if (sep == NULL)
		return false;

	const char *path = sep + 3 + strcspn(sep + 3, "/");
	*origin_len = (size_t)(path - url);
	*path_len = strlen(path);
	if (*path_len > 0 && path[*path_len - 1] == '/')
		(*path_len)--;
	return true;
}

dc_status dc_check_pinned_api(const dc_provider *p, const char *discovered_url_api,
                              dc_error *err)
{
	char pinned_shown[DC_ESCAPED_MAX];
	char found_shown[DC_ESCAPED_MAX];
	char name_shown[DC_ESCAPED_MAX];

	if (p == NULL || p->url_api == NULL || p->url_api[0] == '\0')
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "the DNS provider has no pinned url_api: configure the urlAPI given at "
		               "onboarding");
	if (discovered_url_api == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "the discovered urlAPI is missing");

	dc_escape_value(pinned_shown, sizeof(pinned_shown), p->url_api);
	dc_escape_value(found_shown, sizeof(found_shown), discovered_url_api);
	dc_escape_value(name_shown, sizeof(name_shown), p->name != NULL ? p->name : "(unnamed)");

	size_t pinned_origin, pinned_path, found_origin, found_path;
	bool same = split_api_url(p->url_api, &pinned_origin, &pinned_path) &&
	            split_api_url(discovered_url_api, &found_origin, &found_path) &&
	            pinned_origin == found_origin && pinned_path == found_path &&
	            strncasecmp(p->url_api, discovered_url_api, pinned_origin) == 0 &&
	            memcmp(p->url_api + pinned_origin, discovered_url_api + found_origin,
	                   pinned_path) == 0;
	if (!same)
		return dc_fail(err, DC_ERR_API_MISMATCH,
		               "discovered urlAPI \"%s\" differs from the url_api \"%s\" pinned for DNS "
		               "provider %s: the domain's DNS may be hijacked, so no token or secret "
		               "was sent",
		               found_shown, pinned_shown, name_shown);
	return DC_OK;
}
