/*
 * The synchronous apply URL and its RSA-SHA256 signature.
 *
 * The signed string is the canonical query of the IETF draft: every
 * parameter except sig and key, name and value percent-encoded per RFC 3986,
 * sorted by encoded name and joined with '&'. The URL carries that string
 * unchanged, followed by &key=<id>&sig=<signature>. sig comes last because
 * Cloudflare's verifier requires it there, and verifiers that strip both
 * parameters before checking accept either order.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "internal.h"

/* Maximum size of a PEM key. A 16384-bit RSA key in PEM is about 12 KB. */
#define PEM_MAX (64 * 1024)

/*
 * Protocol parameters a sync URL may carry besides the template variables:
 * domain, host, redirect_uri, state, groupId, providerName, serviceName and
 * instanceId.
 */
#define SYNC_FIXED_PARAMS 8

/* One parameter of the canonical query, with the encoded name it sorts by. */
struct sync_param {
	const char *name;
	const char *value;
	char *encoded_name;
};

/* Never prompt for a passphrase: an encrypted key is reported as unusable. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return -1;
}

static EVP_PKEY *load_private_key(const char *pem)
{
	size_t len = strnlen(pem, PEM_MAX + 1);
	if (len > PEM_MAX)
		return NULL;

	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return NULL;
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return key;
}

/* Signs msg with key (RSA, SHA-256, PKCS#1 v1.5) into *sig, a malloc'd buffer. */
static bool sign_raw(EVP_PKEY *key, const char *msg, size_t len, unsigned char **sig,
                     size_t *sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;

	*sig = NULL;
	if (ctx == NULL)
		return false;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	if (EVP_DigestSign(ctx, NULL, sig_len, (const unsigned char *)msg, len) != 1)
		goto out;
	*sig = malloc(*sig_len);
	if (*sig == NULL)
		goto out;
	ok = EVP_DigestSign(ctx, *sig, sig_len, (const unsigned char *)msg, len) == 1;

out:
	if (!ok) {
		free(*sig);
		*sig = NULL;
	}
	EVP_MD_CTX_free(ctx);
	return ok;
}

dc_status dc_sign(const char *private_key_pem, const char *msg, size_t len, char **sig_base64,
                  dc_error *err)
{
	EVP_PKEY *key = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	dc_status st;

	if (sig_base64 == NULL || msg == NULL || private_key_pem == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "dc_sign: key, message and output are required");
	*sig_base64 = NULL;

	/* The key's bytes never reach a message: only its kind of failure does. */
	key = load_private_key(private_key_pem);
	if (key == NULL) {
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		             "the signing key is not a readable unencrypted PEM private key: give "
		             "the PKCS#1 or PKCS#8 PEM of the RSA key whose public half is published");
		goto out;
	}
	if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		             "the signing key is not an RSA key: Domain Connect signatures use RS256");
		goto out;
	}
	if (!sign_raw(key, msg, len, &sig, &sig_len)) {
		st = dc_fail(err, DC_ERR_INTERNAL, "RSA-SHA256 signing failed in OpenSSL");
		goto out;
	}

	/* EVP_EncodeBlock writes standard base64 with padding and no newlines. */
	*sig_base64 = malloc(4 * ((sig_len + 2) / 3) + 1);
	if (*sig_base64 == NULL) {
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory encoding a signature");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)*sig_base64, sig, (int)sig_len);
	st = DC_OK;

out:
	/* Leave no OpenSSL error behind for an unrelated caller to find. */
	ERR_clear_error();
	free(sig);
	EVP_PKEY_free(key);
	return st;
}

/* Checks a key id: an A-label or an underscore label, at most 63 bytes. */
static dc_status check_key_id(const char *key_id, dc_error *err)
{
	char shown[DC_ESCAPED_MAX];
	size_t len = key_id != NULL ? strlen(key_id) : 0;

	if (len == 0)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "a signing key is given without key_id: set key_id to the DNS label "
		               "that publishes the public key");

	dc_escape_value(shown, sizeof(shown), key_id);
	if (len > DC_ID_MAX)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		               "key_id \"%s\" is longer than %d bytes", shown, DC_ID_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key_id[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          c == '-' || (c == '_' && i == 0);

		if (!ok)
			return dc_fail(err, DC_ERR_INVALID_ARGUMENT,
			               "key_id \"%s\" is not a DNS label: use letters, digits and '-', "
			               "with an optional leading '_'",
			               shown);
	}
	return DC_OK;
}

/* Checks the optional fields of a sync request; the template variables come first. */
static dc_status check_sync_request(const dc_sync_request *req, dc_error *err)
{
	dc_status st = dc_check_params(req->params, req->params_count, err);
	if (st != DC_OK)
		return st;

	if (req->url_sync_ux == NULL)
		return dc_fail(err, DC_ERR_NOT_SUPPORTED,
		               "the DNS provider's settings have no urlSyncUX, so it does not support "
		               "the synchronous flow");
	st = dc_check_base_url("urlSyncUX", req->url_sync_ux, DC_ERR_INVALID_ARGUMENT, err);
	if (st == DC_OK)
		st = dc_check_id("provider id", req->provider_id, err);
	if (st == DC_OK)
		st = dc_check_id("service id", req->service_id, err);
	if (st == DC_OK && req->redirect_uri != NULL)
		st = dc_check_redirect_uri(req->redirect_uri, err);
	if (st == DC_OK)
		st = dc_check_state(req->state, err);
	if (st == DC_OK && req->group_ids_count > 0 && req->group_ids == NULL)
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT, "group ids are missing");
	for (size_t i = 0; st == DC_OK && i < req->group_ids_count; i++)
		st = dc_check_id("group id", req->group_ids[i], err);
	if (st == DC_OK && req->provider_name != NULL)
		st = dc_check_display_name("providerName", req->provider_name, err);
	if (st == DC_OK && req->service_name != NULL)
		st = dc_check_display_name("serviceName", req->service_name, err);
	if (st == DC_OK && req->instance_id != NULL)
		st = dc_check_id("instance id", req->instance_id, err);
	if (st == DC_OK && req->private_key_pem != NULL)
		st = check_key_id(req->key_id, err);
	if (st == DC_OK && req->private_key_pem == NULL && req->key_id != NULL)
		st = dc_fail(err, DC_ERR_INVALID_ARGUMENT,
		             "key_id is given without a signing key: set private_key_pem or drop key_id");
	return st;
}

/* Joins the group ids with ',' into a malloc'd string; "" when there are none. */
static char *join_group_ids(const dc_sync_request *req)
{
	size_t len = 1;
	for (size_t i = 0; i < req->group_ids_count; i++)
		len += strlen(req->group_ids[i]) + 1;

	char *out = malloc(len);
	if (out == NULL)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < req->group_ids_count; i++) {
		if (i > 0)
			strcat(out, ",");
		strcat(out, req->group_ids[i]);
	}
	return out;
}

static int compare_encoded_names(const void *a, const void *b)
{
	const struct sync_param *pa = a;
	const struct sync_param *pb = b;

	return strcmp(pa->encoded_name, pb->encoded_name);
}

/*
 * Collects the parameters to sign into list (sized params_count +
 * SYNC_FIXED_PARAMS), encodes their names and sorts them. Returns the
 * number of entries, or 0 with *ok false on ENOMEM.
 */
static size_t collect_params(const dc_sync_request *req, const char *zone, const char *host,
                             const char *groups, struct sync_param *list, bool *ok)
{
	size_t n = 0;

	list[n++] = (struct sync_param){"domain", zone, NULL};
	if (host[0] != '\0')
		list[n++] = (struct sync_param){"host", host, NULL};
	if (req->redirect_uri != NULL)
		list[n++] = (struct sync_param){"redirect_uri", req->redirect_uri, NULL};
	if (req->state != NULL)
		list[n++] = (struct sync_param){"state", req->state, NULL};
	if (groups[0] != '\0')
		list[n++] = (struct sync_param){"groupId", groups, NULL};
	if (req->provider_name != NULL)
		list[n++] = (struct sync_param){"providerName", req->provider_name, NULL};
	if (req->service_name != NULL)
		list[n++] = (struct sync_param){"serviceName", req->service_name, NULL};
	if (req->instance_id != NULL)
		list[n++] = (struct sync_param){"instanceId", req->instance_id, NULL};
	for (size_t i = 0; i < req->params_count; i++)
		list[n++] = (struct sync_param){req->params[i].name, req->params[i].value, NULL};

	*ok = true;
	for (size_t i = 0; i < n; i++) {
		list[i].encoded_name = dc_percent_encode(list[i].name);
		if (list[i].encoded_name == NULL)
			*ok = false;
	}
	if (*ok)
		qsort(list, n, sizeof(*list), compare_encoded_names);
	return n;
}

/* Builds the canonical query into q: encoded pairs in the order of their encoded names. */
static dc_status build_canonical(const dc_sync_request *req, const char *zone, const char *host,
                                 dc_query *q)
{
	struct sync_param *list = NULL;
	char *groups = join_group_ids(req);
	size_t n = 0;
	bool ok = false;
	dc_status st = DC_ERR_NOMEM;

	if (groups == NULL)
		goto out;
	list = calloc(req->params_count + SYNC_FIXED_PARAMS, sizeof(*list));
	if (list == NULL)
		goto out;

	n = collect_params(req, zone, host, groups, list, &ok);
	if (!ok)
		goto out;

	st = DC_OK;
	for (size_t i = 0; i < n && st == DC_OK; i++)
		st = dc_query_add(q, list[i].name, list[i].value);

out:
	for (size_t i = 0; list != NULL && i < req->params_count + SYNC_FIXED_PARAMS; i++)
		free(list[i].encoded_name);
	free(list);
	free(groups);
	return st;
}

/* Signs the canonical query in q and appends key and then sig. */
static dc_status append_signature(const dc_sync_request *req, dc_query *q, dc_error *err)
{
	char *sig = NULL;

	dc_status st = dc_sign(req->private_key_pem, dc_query_str(q), dc_query_len(q), &sig, err);
	if (st != DC_OK)
		return st;

	st = dc_query_add(q, "key", req->key_id);
	if (st == DC_OK)
		st = dc_query_add(q, "sig", sig);
	free(sig);
	if (st != DC_OK)
		return dc_fail(err, st, "out of memory building the sync apply URL");
	return DC_OK;
}

dc_status dc_sync_apply_url(const dc_sync_request *req, char **url, dc_error *err)
{
	char *zone = NULL;
	char *host = NULL;
	char *path = NULL;
	dc_query *q = NULL;
	dc_status st;

	if (req == NULL || url == NULL)
		return dc_fail(err, DC_ERR_INVALID_ARGUMENT, "dc_sync_apply_url: req and url are required");
	*url = NULL;

	/* Reserved variable names are rejected before anything else is looked at. */
	st = check_sync_request(req, err);
	if (st != DC_OK)
		return st;
	st = dc_normalize_zone(req->domain, &zone, err);
	if (st != DC_OK)
		goto out;
	st = dc_normalize_host(zone, req->host, &host, err);
	if (st != DC_OK)
		goto out;

	/* Provider and service ids are dc-ids, all unreserved characters, so need no encoding. */
	if (asprintf(&path, "/v2/domainTemplates/providers/%s/services/%s/apply", req->provider_id,
	             req->service_id) < 0)
		path = NULL;
	q = dc_query_new();
	if (path == NULL || q == NULL || build_canonical(req, zone, host, q) != DC_OK) {
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory building the sync apply URL");
		goto out;
	}

	if (req->private_key_pem != NULL) {
		st = append_signature(req, q, err);
		if (st != DC_OK)
			goto out;
	}

	*url = dc_build_url(req->url_sync_ux, path, q);
	if (*url == NULL)
		st = dc_fail(err, DC_ERR_NOMEM, "out of memory building the sync apply URL");

out:
	free(zone);
	free(host);
	free(path);
	dc_query_free(q);
	return st;
}
