/*
 * fuzz_config.c: libFuzzer target for the config loader
 * (config_load_text in src/config.c, with log.c and scram.c).
 *
 * An input is the text of a config file.  A config that loads must be
 * one the daemon can use: its listen entries, databases, users and
 * mirrors all there, every look-up (database, user, pool) answering
 * within its tables; one that does not load must say why, at a line.
 * Then it is freed: LeakSanitizer reports what is not.  Inputs with an
 * @include directive are skipped, since libconfig would read that file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirror.h"
#include "fuzz.h"

/* A string a config holds: set, and not so long that it never ends. */
static void
check_str(const char *s)
{
	FUZZ_CHECK(s != NULL);
	(void)strlen(s);
}

/* Every look-up of a loaded config answers within its tables. */
static void
check_config(const struct pgm_config *c)
{
	const struct pgm_user *u;
	int		 i, j, k, pool;

	check_str(c->path);
	FUZZ_CHECK(c->nlisten >= 0 && (c->nlisten == 0 || c->listen != NULL));
	for (i = 0; i < c->nlisten; i++) {
		FUZZ_CHECK(c->listen[i].port >= 0 &&
		    c->listen[i].port <= 65535);
		if (c->listen[i].host != NULL)
			check_str(c->listen[i].host);
		if (c->listen[i].path != NULL)
			check_str(c->listen[i].path);
	}
	FUZZ_CHECK(c->ndatabases >= 0 && c->nusers >= 0 && c->nmirrors >= 0);
	for (i = 0; i < c->ndatabases; i++) {
		check_str(c->databases[i].name);
		check_str(c->databases[i].host);
		check_str(c->databases[i].dbname);
		j = config_find_database(c, c->databases[i].name);
		FUZZ_CHECK(j >= 0 && j <= i);
		(void)config_allow_cleartext(c, &c->databases[i]);
	}
	for (i = 0; i < c->nusers; i++) {
		u = &c->users[i];
		check_str(u->name);
		if (u->database != NULL) {
			check_str(u->database);
			FUZZ_CHECK(config_find_database(c, u->database) >= 0);
		}
		check_str(config_auth_name(u->auth_type));
		if (u->plain != NULL)
			check_str(u->plain);
		if (u->has_md5)
			FUZZ_CHECK(fuzz_has_nul(u->md5, sizeof(u->md5)));
		for (j = -1; j < c->ndatabases; j++) {
			k = config_find_user(c, u->name, j);
			FUZZ_CHECK(k >= -1 && k < c->nusers);
			FUZZ_CHECK(k == -1 ||
			    strcmp(c->users[k].name, u->name) == 0);
			if (u->database == NULL)
				FUZZ_CHECK(k != -1);
			if (j < 0)
				continue;
			pool = config_pool_index(c, i, j);
			FUZZ_CHECK(pool >= 0 && pool < c->nusers * c->ndatabases);
			if (config_pool_valid(c, pool))
				(void)config_pool_size(c, pool);
		}
	}
	FUZZ_CHECK(!config_pool_valid(c, -1));
	FUZZ_CHECK(!config_pool_valid(c, c->nusers * c->ndatabases));
	for (i = 0; i < c->nmirrors; i++) {
		check_str(c->mirrors[i].source);
		check_str(c->mirrors[i].destination);
		FUZZ_CHECK(c->mirrors[i].src >= 0 &&
		    c->mirrors[i].src < c->ndatabases);
		FUZZ_CHECK(c->mirrors[i].dst >= 0 &&
		    c->mirrors[i].dst < c->ndatabases);
	}
	if (c->admin_database != NULL)
		check_str(c->admin_database);
	check_str(c->control_socket);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pgm_config_errors *errs;
	struct pgm_config *c;
	char		*text;
	int		 i;

	if ((text = malloc(size + 1)) == NULL ||
	    (errs = malloc(sizeof(*errs))) == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	if (strcasestr(text, "@include") != NULL)
		goto out;
	c = config_load_text("fuzz.conf", text, errs);
	FUZZ_CHECK(errs->n >= 0 && errs->n <= PGM_CONFIG_MAXERR);
	for (i = 0; i < errs->n; i++) {
		FUZZ_CHECK(errs->err[i].line >= 0);
		FUZZ_CHECK(fuzz_has_nul(errs->err[i].msg,
		    sizeof(errs->err[i].msg)));
	}
	if (c == NULL) {
		FUZZ_CHECK(errs->n >= 1 && errs->err[0].msg[0] != '\0');
		goto out;
	}
	FUZZ_CHECK(errs->n == 0);
	check_config(c);
	config_free(c);
out:
	free(errs);
	free(text);
	return 0;
}
