/*
 * dcsandbox as a program: flags, clean shutdown on SIGTERM, a given
 * certificate, the dnsmasq config file and a dnsmasq child serving the
 * _domainconnect TXT records on loopback.
 */
#include "test_sandbox_harness.h"

#include "support/support.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <resolv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(sandbox_cli, .timeout = 60);

/* Start dcsandbox with the default config and ARGS; expect it to fail to start. */
static void expect_start_fails(const char *const *args, size_t count)
{
	sbh *h = sbh_new();
	json_t *config = sbh_default_config(h->templates);
	cr_expect_not(sbh_start(h, config, args, count), "dcsandbox started with %s", args[0]);
	int status = 0;
	cr_expect_eq(waitpid(h->pid, &status, 0), h->pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	h->pid = -1;
	json_decref(config);
	sbh_free(h);
}

Test(sandbox_cli, invalid_flags_fail)
{
	const char *port[] = {"--port", "99999"};
	expect_start_fails(port, 2);
	const char *listen[] = {"--listen", "not-an-address"};
	expect_start_fails(listen, 2);
	const char *fault[] = {"--fault", "nosuch.provider:errors=500:1"};
	expect_start_fails(fault, 2);
	const char *key[] = {"--fault", "colour=blue"};
	expect_start_fails(key, 2);
	const char *cert[] = {"--cert", "/nonexistent.pem"};
	expect_start_fails(cert, 2);
}

Test(sandbox_cli, invalid_config_fails)
{
	sbh *h = sbh_new();
	json_t *config = json_pack("{s:[{s:s}]}", "providers", "id", "only-an-id");
	cr_expect_not(sbh_start(h, config, NULL, 0));
	json_decref(config);
	sbh_free(h);
}

Test(sandbox_cli, sigterm_exits_cleanly)
{
	sbh *h = sbh_start_default(NULL, 0);
	cr_assert_not_null(h);
	int status = sbh_stop_process(h);
	cr_expect(WIFEXITED(status), "status %d", status);
	cr_expect_eq(WEXITSTATUS(status), 0);
	sbh_free(h);
}

Test(sandbox_cli, sigterm_with_suspended_request)
{
	const char *args[] = {"--fault", "latency_ms=5000"};
	sbh *h = sbh_start_default(args, 2);
	cr_assert_not_null(h);
	pid_t client = fork();
	if (client == 0) {
		sbh_resp r;
		sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
		_exit(0);
	}
	usleep(300 * 1000);
	int status = sbh_stop_process(h);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	waitpid(client, NULL, 0);
	sbh_free(h);
}

Test(sandbox_cli, given_certificate_is_served)
{
	const char *names[] = {SBH_ALPHA_HOST, SBH_BETA_HOST};
	ts_tls *tls = ts_tls_new(names, 2);
	cr_assert_not_null(tls);
	const char *args[] = {"--cert", tls->cert_file, "--key", tls->key_file};
	sbh *h = sbh_new();
	json_t *config = sbh_default_config(h->templates);
	cr_assert(sbh_start(h, config, args, 4));
	json_decref(config);
	cr_expect_null(h->ca_file, "a CA path was printed for a given certificate");
	h->ca_file = strdup(tls->ca_file);

	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200, "curl code %d", r.curl_code);
	sbh_resp_clear(&r);
	sbh_free(h);
	ts_tls_free(tls);
}

Test(sandbox_cli, generated_ca_is_reused)
{
	sbh *h = sbh_start_default(NULL, 0);
	cr_assert_not_null(h);
	char *first = NULL;
	FILE *f = fopen(h->ca_file, "r");
	cr_assert_not_null(f);
	char pem[8192];
	size_t n = fread(pem, 1, sizeof(pem) - 1, f);
	pem[n] = '\0';
	fclose(f);
	first = strdup(pem);
	sbh_stop_process(h);

	/* Same state folder: the CA stays, a client that trusted it still connects. */
	json_t *config = sbh_default_config(h->templates);
	cr_assert(sbh_start(h, config, NULL, 0));
	json_decref(config);
	f = fopen(h->ca_file, "r");
	n = fread(pem, 1, sizeof(pem) - 1, f);
	pem[n] = '\0';
	fclose(f);
	cr_expect_str_eq(pem, first);
	sbh_resp r;
	sbh_request(h, "GET", SBH_ALPHA_HOST, "/v2/" SBH_ZONE "/settings", NULL, NULL, NULL, &r);
	cr_expect_eq(r.status, 200);
	sbh_resp_clear(&r);
	free(first);
	sbh_free(h);
}

Test(sandbox_cli, dnsmasq_conf_lists_records)
{
	sbh *h = sbh_new();
	char conf[1024];
	snprintf(conf, sizeof(conf), "%s/records.conf", h->dir);
	const char *args[] = {"--dnsmasq-conf", conf};
	json_t *config = sbh_default_config(h->templates);
	cr_assert(sbh_start(h, config, args, 2));
	json_decref(config);

	FILE *f = fopen(conf, "r");
	cr_assert_not_null(f);
	char text[4096];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	char line[256];
	snprintf(line, sizeof(line), "txt-record=_domainconnect." SBH_ZONE "," SBH_ALPHA_HOST ":%d\n", h->port);
	cr_expect_not_null(strstr(text, line), "%s", text);
	cr_expect_not_null(strstr(text, "address=/" SBH_BETA_HOST "/127.0.0.1\n"), "%s", text);
	sbh_free(h);
}

/* Query TXT NAME at 127.0.0.1:PORT and copy the first string into OUT. */
static int query_txt(int port, const char *name, char *out, size_t cap)
{
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) != 0)
		return -1;
	st.nscount = 1;
	st.nsaddr_list[0].sin_family = AF_INET;
	st.nsaddr_list[0].sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &st.nsaddr_list[0].sin_addr);
	st.retry = 2;
	st.retrans = 1;

	unsigned char answer[4096];
	int len = res_nquery(&st, name, ns_c_in, ns_t_txt, answer, sizeof(answer));
	res_nclose(&st);
	if (len < 0)
		return -1;
	ns_msg msg;
	ns_rr rr;
	if (ns_initparse(answer, len, &msg) != 0 || ns_msg_count(msg, ns_s_an) < 1 || ns_parserr(&msg, ns_s_an, 0, &rr) != 0)
		return -1;
	const unsigned char *rdata = ns_rr_rdata(rr);
	size_t slen = rdata[0];
	if (slen + 1 > cap)
		return -1;
	memcpy(out, rdata + 1, slen);
	out[slen] = '\0';
	return 0;
}

Test(sandbox_cli, dnsmasq_serves_txt_records)
{
	int dns_port = ts_free_port();
	cr_assert(dns_port > 0);
	char port_arg[16];
	snprintf(port_arg, sizeof(port_arg), "%d", dns_port);
	const char *args[] = {"--dnsmasq-port", port_arg};
	sbh *h = sbh_new();
	json_t *config = sbh_default_config(h->templates);
	json_t *beta = json_array_get(json_object_get(config, "providers"), 1);
	json_object_set_new(beta, "zones", json_pack("{s:[]}", "store.sandbox.test"));
	cr_assert(sbh_start(h, config, args, 2));
	json_decref(config);

	char txt[256];
	cr_assert_eq(query_txt(dns_port, "_domainconnect." SBH_ZONE, txt, sizeof(txt)), 0);
	char expected[128];
	snprintf(expected, sizeof(expected), SBH_ALPHA_HOST ":%d", h->port);
	cr_expect_str_eq(txt, expected);
	cr_assert_eq(query_txt(dns_port, "_domainconnect.store.sandbox.test", txt, sizeof(txt)), 0);
	snprintf(expected, sizeof(expected), SBH_BETA_HOST ":%d", h->port);
	cr_expect_str_eq(txt, expected);
	cr_expect_neq(query_txt(dns_port, "_domainconnect.unknown.example", txt, sizeof(txt)), 0);

	int status = sbh_stop_process(h);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect_neq(query_txt(dns_port, "_domainconnect." SBH_ZONE, txt, sizeof(txt)), 0, "dnsmasq outlived dcsandbox");
	sbh_free(h);
}
