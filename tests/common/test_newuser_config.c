/* Config errors found by a first-time user: each one names its section. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/config.h"

Test(newuser_config, http_url_api_names_section)
{
	char dir[] = "/tmp/dc-nu-config.XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/bad.ini", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("[worker]\ntemplate_provider_id = a.test\n[provider.acme]\nurl_api = http://x\n", f);
	fclose(f);

	common_error err;
	common_error_clear(&err);
	config *cfg = config_load(path, NULL, &err);
	unlink(path);
	rmdir(dir);

	cr_assert_null(cfg);
	cr_assert_not_null(strstr(err.message, "[provider.acme] url_api = \"http://x\""),
	                   "message: %s", err.message);
	cr_assert_not_null(strstr(err.message, "e.g. https://"), "message: %s", err.message);
}
