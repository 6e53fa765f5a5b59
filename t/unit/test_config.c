/*
 * test_config.c: TAP unit tests for src/config.c (loading pgmirror.conf).
 *
 * Owns: loading a full config and a minimal one (every field and every
 * default), syntax and semantic errors with their line numbers, the
 * password forms (plain, md5 verifier, SCRAM verifier), the look-ups
 * (database, user, pool index and size), the mirrors list and the
 * mirror group (values, defaults, and each error with its line), every
 * row of the settings table (its default, its value loaded, bad values
 * refused at their line, how SHOW CONFIG shows it, never a password) and
 * a missing file.  Config files are written to a fresh mkdtemp
 * directory, removed at the end.
 */
#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "pgmirror.h"
#include "tap.h"

static char	 tmpdir[] = "/tmp/pgm-unit-config-XXXXXX";
static int	 nfiles;

/* md5("secret" || "app"), from: printf '%s' secretapp | md5sum */
#define APP_MD5		"md56a422f785c9e20873908ce25d1736ae2"
/* md5("hunter2" || "bob"), from: printf '%s' hunter2bob | md5sum */
#define BOB_MD5		"md5a2cc14bcc08bcb211f578153967abd6d"

/* Writes text to a new file in the temp dir; returns its path (static). */
static const char *
write_conf(const char *text)
{
	static char	 path[256];
	FILE		*f;

	snprintf(path, sizeof(path), "%s/conf%d.conf", tmpdir, ++nfiles);
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) == EOF ||
	    fclose(f) == EOF) {
		perror(path);
		abort();
	}
	return path;
}

/* Loads text as a config file. */
static struct pgm_config *
load(const char *text, struct pgm_config_errors *errs)
{
	return config_load(write_conf(text), errs);
}

/* Prints the errors of a load, for a failing test's diagnostics. */
static void
show_errors(const struct pgm_config_errors *errs)
{
	int		 i;

	for (i = 0; i < errs->n; i++)
		tap_diag("%s:%d: %s", errs->file, errs->err[i].line,
		    errs->err[i].msg);
}

/* Is there an error at line containing text? */
static int
has_error(const struct pgm_config_errors *errs, int line, const char *text)
{
	int		 i;

	for (i = 0; i < errs->n; i++)
		if (errs->err[i].line == line &&
		    strstr(errs->err[i].msg, text) != NULL)
			return 1;
	return 0;
}

/* Removes the temp files and directory. */
static void
cleanup(void)
{
	char		 path[256];
	int		 i;

	for (i = 1; i <= nfiles; i++) {
		snprintf(path, sizeof(path), "%s/conf%d.conf", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
}

/* A full config: every key of the spec, none left to its default. */
static void
test_full(const char *scram_verifier)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;
	const struct pgm_user *u;
	char		 text[4096];
	const char	*path;

	snprintf(text, sizeof(text),
	    "listen = [ \"127.0.0.1:6432\", \"[::1]:6433\", \"*:6434\",\n"
	    "    \"/tmp/sock:6435\", \"/tmp/sock2\" ];\n"
	    "control_socket = \"/run/pgm-test/ctl.sock\";\n"
	    "admin = { database = \"pgmadmin\"; user = \"root\";\n"
	    "    password = \"adminpw\"; };\n"
	    "auth_type = \"md5\";\n"
	    "workers = { min_spare = 2; max_spare = 8; max = 64; };\n"
	    "pool = { mode = \"session\"; default_size = 50; min_size = 1;\n"
	    "    wait_timeout = 7; reset_query = \"RESET ALL\"; };\n"
	    "shutdown_timeout = 11;\n"
	    "mirror_queue = 1234;\n"
	    "metrics = { listen = \"0.0.0.0:9999\"; };\n"
	    "log = { destination = \"stderr\"; facility = \"local3\";\n"
	    "    stats_period = 15; };\n"
	    "databases = (\n"
	    "  { name = \"original\"; host = \"127.0.0.1\"; port = 5433;\n"
	    "    database = \"postgres\"; pool_size = 20; },\n"
	    "  { name = \"other\"; host = \"/var/run/postgresql\"; }\n"
	    ");\n"
	    "users = (\n"
	    "  { name = \"app\"; password = \"secret\"; database = \"original\";\n"
	    "    auth_type = \"scram-sha-256\"; pool_size = 10; },\n"
	    "  { name = \"bob\"; password = \"" BOB_MD5 "\"; },\n"
	    "  { name = \"scr\"; password = \"%s\";\n"
	    "    auth_type = \"scram-sha-256\"; },\n"
	    "  { name = \"guest\"; auth_type = \"trust\"; database = \"other\"; }\n"
	    ");\n", scram_verifier);
	path = write_conf(text);
	c = config_load(path, &errs);
	if (!tap_ok(c != NULL && errs.n == 0, "full config loads"))
		show_errors(&errs);
	if (c == NULL) {
		tap_ok(0, "full config fields (not loaded)");
		return;
	}
	tap_is_str(c->path, path, "path kept");

	tap_is_int(c->nlisten, 5, "5 listen entries");
	tap_ok(c->nlisten == 5 && c->listen[0].host &&
	    strcmp(c->listen[0].host, "127.0.0.1") == 0 &&
	    c->listen[0].path == NULL && c->listen[0].port == 6432,
	    "listen 127.0.0.1:6432");
	tap_ok(c->nlisten == 5 && c->listen[1].host &&
	    strcmp(c->listen[1].host, "::1") == 0 &&
	    c->listen[1].path == NULL && c->listen[1].port == 6433,
	    "listen [::1]:6433 -> host ::1");
	tap_ok(c->nlisten == 5 && (c->listen[2].host == NULL ||
	    strcmp(c->listen[2].host, "*") == 0) &&
	    c->listen[2].path == NULL && c->listen[2].port == 6434,
	    "listen *:6434 -> any address");
	tap_ok(c->nlisten == 5 && c->listen[3].host == NULL &&
	    c->listen[3].path && strcmp(c->listen[3].path, "/tmp/sock") == 0 &&
	    c->listen[3].port == 6435, "listen /tmp/sock:6435 -> Unix dir");
	tap_ok(c->nlisten == 5 && c->listen[4].host == NULL &&
	    c->listen[4].path && strcmp(c->listen[4].path, "/tmp/sock2") == 0 &&
	    c->listen[4].port == 6432, "listen /tmp/sock2 -> port 6432");
	tap_ok(c->nlisten == 5 && c->listen[0].line == 1 &&
	    c->listen[4].line == 1, "listen entries carry line 1");

	tap_is_str(c->control_socket, "/run/pgm-test/ctl.sock",
	    "control_socket");
	tap_ok(c->admin_database && strcmp(c->admin_database, "pgmadmin") == 0 &&
	    c->admin_user && strcmp(c->admin_user, "root") == 0 &&
	    c->admin_password && strcmp(c->admin_password, "adminpw") == 0,
	    "admin database, user and password");
	tap_is_int(c->auth_type, AUTH_MD5, "auth_type md5");
	tap_ok(c->workers_min_spare == 2 && c->workers_max_spare == 8 &&
	    c->workers_max == 64, "workers 2/8/64");
	tap_ok(c->pool_default_size == 50 && c->pool_min_size == 1 &&
	    c->pool_wait_timeout == 7, "pool default_size, min_size, "
	    "wait_timeout");
	tap_is_str(c->pool_reset_query, "RESET ALL", "pool.reset_query");
	tap_is_int(c->shutdown_timeout, 11, "shutdown_timeout");
	tap_is_int(c->mirror_queue, 1234, "mirror_queue");
	tap_is_str(c->metrics_listen, "0.0.0.0:9999", "metrics.listen");
	tap_ok(c->log_stderr == 1 && c->log_facility == LOG_LOCAL3 &&
	    c->stats_period == 15, "log destination, facility, stats_period");

	tap_is_int(c->ndatabases, 2, "2 databases");
	tap_ok(c->ndatabases == 2 &&
	    strcmp(c->databases[0].name, "original") == 0 &&
	    strcmp(c->databases[0].host, "127.0.0.1") == 0 &&
	    c->databases[0].port == 5433 &&
	    strcmp(c->databases[0].dbname, "postgres") == 0 &&
	    c->databases[0].pool_size == 20 && c->databases[0].line == 16,
	    "database original: host, port, database, pool_size, line");
	tap_ok(c->ndatabases == 2 &&
	    strcmp(c->databases[1].name, "other") == 0 &&
	    strcmp(c->databases[1].host, "/var/run/postgresql") == 0 &&
	    c->databases[1].port == 5432 &&
	    strcmp(c->databases[1].dbname, "other") == 0 &&
	    c->databases[1].pool_size == -1 && c->databases[1].line == 18,
	    "database other: defaults port 5432, database = name, no cap");

	tap_is_int(c->nusers, 4, "4 users");
	if (c->nusers == 4) {
		u = &c->users[0];
		tap_ok(strcmp(u->name, "app") == 0 && u->database &&
		    strcmp(u->database, "original") == 0 &&
		    u->auth_type == AUTH_SCRAM && u->pool_size == 10 &&
		    u->line == 21, "user app: database, auth_type, pool_size");
		u = &c->users[1];
		tap_ok(strcmp(u->name, "bob") == 0 && u->database == NULL &&
		    u->auth_type == AUTH_DEFAULT && u->pool_size == -1 &&
		    u->line == 23, "user bob: all databases, defaults");
		u = &c->users[2];
		tap_ok(strcmp(u->name, "scr") == 0 && u->auth_type ==
		    AUTH_SCRAM && u->has_scram && !u->has_md5,
		    "user scr: SCRAM verifier with scram-sha-256");
		u = &c->users[3];
		tap_ok(strcmp(u->name, "guest") == 0 &&
		    u->auth_type == AUTH_TRUST && !u->has_md5 &&
		    !u->has_scram && u->plain == NULL,
		    "user guest: trust without a password");
	} else {
		tap_ok(0, "user app");
		tap_ok(0, "user bob");
		tap_ok(0, "user scr");
		tap_ok(0, "user guest");
	}
	config_free(c);
}

/* A minimal config: every default. */
static void
test_defaults(void)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	if (!tap_ok(c != NULL && errs.n == 0, "minimal config loads"))
		show_errors(&errs);
	if (c == NULL) {
		tap_ok(0, "defaults (not loaded)");
		return;
	}
	tap_ok(c->workers_min_spare == 4 && c->workers_max_spare == 32 &&
	    c->workers_max == 512, "workers default to 4/32/512");
	tap_ok(c->pool_default_size == 100 && c->pool_min_size == 0 &&
	    c->pool_wait_timeout == 30, "pool defaults 100, 0, wait 30");
	tap_is_str(c->pool_reset_query, "DISCARD ALL",
	    "reset_query defaults to DISCARD ALL");
	tap_is_int(c->shutdown_timeout, 30, "shutdown_timeout defaults to 30");
	tap_is_int(c->auth_type, AUTH_SCRAM, "auth_type defaults to scram");
	tap_is_int(c->mirror_queue, 20000, "mirror_queue defaults to 20000");
	tap_is_str(c->control_socket, PGM_CONTROL_SOCKET,
	    "control_socket default");
	tap_ok(c->admin_database && strcmp(c->admin_database, "pgmirror") ==
	    0 && c->admin_user && strcmp(c->admin_user, "admin") == 0 &&
	    c->admin_password == NULL, "admin defaults pgmirror/admin, "
	    "no password");
	tap_is_str(c->metrics_listen, "127.0.0.1:9930", "metrics default");
	tap_ok(c->log_stderr == 0 && c->log_facility == LOG_DAEMON &&
	    c->stats_period == 60, "log defaults syslog, daemon, 60");
	tap_ok(c->ndatabases == 1 && c->databases[0].port == 5432 &&
	    strcmp(c->databases[0].dbname, "d") == 0 &&
	    c->databases[0].pool_size == -1,
	    "database defaults: port 5432, database = name, pool_size -1");
	tap_ok(c->nusers == 1 && c->users[0].database == NULL &&
	    c->users[0].auth_type == AUTH_DEFAULT &&
	    c->users[0].pool_size == -1,
	    "user defaults: all databases, global auth, no pool_size");
	tap_ok(config_pool_size(c, config_pool_index(c, 0, 0)) == 100,
	    "pool size falls back to the default 100");
	config_free(c);
}

/* A syntax error: one error, its line. */
static void
test_syntax(void)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "\n"
	    "pool = {\n"
	    "    default_size = ;\n"
	    "};\n", &errs);
	tap_ok(c == NULL && errs.n == 1, "syntax error: one error, no config");
	tap_ok(errs.n >= 1 && errs.err[0].line == 4 &&
	    errs.err[0].msg[0] != '\0', "syntax error reported at line 4");
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ]\n"
	    "databases = ( { name = \"d\" host = \"h\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } ) );\n", &errs);
	tap_ok(c == NULL && errs.n == 1 && errs.err[0].line == 3,
	    "unbalanced parenthesis: one error at line 3");
	config_free(c);
}

/* Semantic errors are all collected at once, each with its line. */
static void
test_semantic(const char *scram_verifier)
{
	static const struct {
		int		 line;
		const char	*text;
	} want[] = {
		{ 1, "port must be a number from 1 to 65535" },
		{ 2, "unknown setting \"bogus_key\"" },
		{ 3, "auth_type must be" },
		{ 4, "workers.min_spare (10) is larger than workers.max_spare"
		    " (5)" },
		{ 5, "pool.mode \"transaction\" is not supported" },
		{ 6, "unknown setting \"pool.frobnicate\"" },
		{ 7, "log.destination must be" },
		{ 9, "databases.port must be between 1 and 65535, not 70000" },
		{ 10, "database \"db1\" is already defined at line 9" },
		{ 13, "refers to database \"nosuchdb\"" },
		{ 15, "user \"u2\" for db1 is already defined at line 14" },
		{ 16, "user \"u3\": md5 authentication needs a plain or md5 "
		    "password" },
	};
	struct pgm_config_errors errs;
	struct pgm_config *c;
	char		 text[2048];
	size_t		 i;
	int		 missing = 0;

	snprintf(text, sizeof(text),
	    "listen = [ \"127.0.0.1:70000\", \"127.0.0.1:6432\" ];\n"	/* 1 */
	    "bogus_key = 1;\n"						/* 2 */
	    "auth_type = \"bogus\";\n"					/* 3 */
	    "workers = { min_spare = 10; max_spare = 5; };\n"		/* 4 */
	    "pool = { mode = \"transaction\";\n"			/* 5 */
	    "    frobnicate = 3; };\n"					/* 6 */
	    "log = { destination = \"file\"; };\n"			/* 7 */
	    "databases = (\n"						/* 8 */
	    "  { name = \"db1\"; host = \"h\"; port = 70000; },\n"	/* 9 */
	    "  { name = \"db1\"; host = \"h2\"; }\n"			/* 10 */
	    ");\n"							/* 11 */
	    "users = (\n"						/* 12 */
	    "  { name = \"u1\"; password = \"p\"; database = \"nosuchdb\"; },\n"
	    "  { name = \"u2\"; password = \"p\"; database = \"db1\"; },\n"
	    "  { name = \"u2\"; password = \"q\"; database = \"db1\"; },\n"
	    "  { name = \"u3\"; password = \"%s\"; auth_type = \"md5\"; }\n"
	    ");\n", scram_verifier);
	c = load(text, &errs);
	tap_ok(c == NULL, "config with semantic errors is refused");
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!tap_ok(has_error(&errs, want[i].line, want[i].text),
		    "error at line %d: %s", want[i].line, want[i].text))
			missing++;
	}
	if (!tap_is_int(errs.n, sizeof(want) / sizeof(want[0]),
	    "exactly %zu errors, no spurious ones",
	    sizeof(want) / sizeof(want[0])) || missing)
		show_errors(&errs);
	config_free(c);

	/* Each whole-config check also alone. */
	snprintf(text, sizeof(text),
	    "listen = [ \"127.0.0.1:6432\" ];\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = (\n"
	    "  { name = \"u3\"; password = \"%s\";\n"
	    "    auth_type = \"md5\"; }\n"
	    ");\n", scram_verifier);
	c = load(text, &errs);
	tap_ok(c == NULL && errs.n == 1 && has_error(&errs, 4,
	    "user \"u3\": md5 authentication needs a plain or md5 password"),
	    "md5 auth with a SCRAM verifier alone: one error at line 4");
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "auth_type = \"scram-sha-256\";\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"bob\"; password = \"" BOB_MD5 "\"; } );\n",
	    &errs);
	tap_ok(c == NULL && errs.n == 1 && has_error(&errs, 4,
	    "scram-sha-256 authentication needs a plain password or a SCRAM "
	    "verifier"), "scram auth with an md5 verifier: one error");
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"nopw\"; } );\n", &errs);
	tap_ok(c == NULL && errs.n == 1 && has_error(&errs, 3,
	    "user \"nopw\" has no password but auth_type is scram-sha-256"),
	    "user without password under scram: one error");
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "workers = { min_spare = 600; max_spare = 700; };\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	tap_ok(c == NULL && errs.n == 1 && has_error(&errs, 2,
	    "workers.min_spare (600) is larger than workers.max (512)"),
	    "min_spare above the default max: one error");
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "log = { facility = \"kern\"; };\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\";\n"
	    "    auth_type = \"nope\"; } );\n", &errs);
	tap_ok(c == NULL && errs.n == 2 &&
	    has_error(&errs, 2, "log.facility \"kern\" is not a syslog") &&
	    has_error(&errs, 4, "user \"u\": auth_type must be"),
	    "bad facility and bad user auth_type: two errors");
	config_free(c);

	/* Missing sections and bad listen entries. */
	c = load("workers = { max = 8; };\n", &errs);
	tap_ok(c == NULL && errs.n == 3 &&
	    has_error(&errs, 0, "listen is not set") &&
	    has_error(&errs, 0, "databases is not set") &&
	    has_error(&errs, 0, "users is not set"),
	    "listen, databases and users missing: three errors at line 0");
	config_free(c);

	c = load("listen = [ \"[::1]\", \"localhost\", \":6432\",\n"
	    "  \"127.0.0.1:0\", \"127.0.0.1:64x\", \"127.0.0.1:\" ];\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	tap_ok(c == NULL && errs.n == 6 &&
	    has_error(&errs, 1, "listen \"[::1]\"") &&
	    has_error(&errs, 1, "listen \"localhost\"") &&
	    has_error(&errs, 1, "listen \":6432\"") &&
	    has_error(&errs, 1, "listen \"127.0.0.1:0\": port must be") &&
	    has_error(&errs, 1, "listen \"127.0.0.1:64x\": port must be") &&
	    has_error(&errs, 1, "listen \"127.0.0.1:\": port must be"),
	    "six malformed listen entries: six errors");
	config_free(c);
}

/* The three password forms. */
static void
test_passwords(const char *scram_verifier, const struct scram_secret *sec)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;
	struct scram_secret again;
	const struct pgm_user *u;
	char		 text[2048];

	snprintf(text, sizeof(text),
	    "listen = [ \"127.0.0.1:6432\" ];\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = (\n"
	    "  { name = \"app\"; password = \"secret\"; },\n"
	    "  { name = \"bob\"; password = \"" BOB_MD5 "\";"
	    " auth_type = \"md5\"; },\n"
	    "  { name = \"scr\"; password = \"%s\"; }\n"
	    ");\n", scram_verifier);
	c = load(text, &errs);
	if (!tap_ok(c != NULL && c->nusers == 3, "password config loads"))
		show_errors(&errs);
	if (c == NULL || c->nusers != 3) {
		tap_ok(0, "passwords (not loaded)");
		config_free(c);
		return;
	}

	u = &c->users[0];
	tap_ok(u->has_md5 && u->has_scram, "plain password: md5 and SCRAM");
	tap_is_str(u->md5, APP_MD5, "plain password: md5(secret || app)");
	tap_is_str(u->plain, "secret", "plain password kept");
	tap_ok(u->scram.iterations == SCRAM_DEFAULT_ITERATIONS &&
	    u->scram.saltlen == SCRAM_DEFAULT_SALT_LEN,
	    "plain password: SCRAM secret with 4096 iterations, 16-byte salt");
	tap_ok(scram_secret_from_password_salt("secret", u->scram.salt,
	    u->scram.saltlen, u->scram.iterations, &again) == 0 &&
	    memcmp(again.stored_key, u->scram.stored_key, SCRAM_KEY_LEN) ==
	    0 && memcmp(again.server_key, u->scram.server_key,
	    SCRAM_KEY_LEN) == 0,
	    "plain password: SCRAM keys derive from \"secret\"");

	u = &c->users[1];
	tap_ok(u->has_md5 && !u->has_scram && u->plain == NULL,
	    "md5 verifier: md5 only");
	tap_is_str(u->md5, BOB_MD5, "md5 verifier kept as is");

	u = &c->users[2];
	tap_ok(u->has_scram && !u->has_md5 && u->plain == NULL,
	    "SCRAM verifier: SCRAM only");
	tap_ok(u->scram.iterations == sec->iterations &&
	    u->scram.saltlen == sec->saltlen &&
	    memcmp(u->scram.salt, sec->salt, sec->saltlen) == 0 &&
	    memcmp(u->scram.stored_key, sec->stored_key, SCRAM_KEY_LEN) == 0 &&
	    memcmp(u->scram.server_key, sec->server_key, SCRAM_KEY_LEN) == 0 &&
	    !u->scram.has_client_key,
	    "SCRAM verifier parsed into the same secret, no client key");
	config_free(c);
}

/* config_find_database, config_find_user, pool index and size. */
static void
test_lookups(void)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;
	int		 orig, other, third, u, d, seen[64], ok;

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "pool = { default_size = 50; };\n"
	    "databases = (\n"
	    "  { name = \"original\"; host = \"h\"; pool_size = 20; },\n"
	    "  { name = \"other\"; host = \"h\"; },\n"
	    "  { name = \"third\"; host = \"h\"; pool_size = 7; }\n"
	    ");\n"
	    "users = (\n"
	    "  { name = \"app\"; password = \"p\"; },\n"
	    "  { name = \"app\"; password = \"p\"; database = \"original\";\n"
	    "    pool_size = 10; },\n"
	    "  { name = \"solo\"; password = \"p\"; database = \"other\"; },\n"
	    "  { name = \"app\"; password = \"p\"; database = \"third\"; }\n"
	    ");\n", &errs);
	if (!tap_ok(c != NULL, "look-up config loads"))
		show_errors(&errs);
	if (c == NULL) {
		tap_ok(0, "look-ups (not loaded)");
		return;
	}
	orig = config_find_database(c, "original");
	other = config_find_database(c, "other");
	third = config_find_database(c, "third");
	tap_ok(orig == 0 && other == 1 && third == 2,
	    "config_find_database finds each entry");
	tap_ok(config_find_database(c, "nope") == -1 &&
	    config_find_database(c, "") == -1 &&
	    config_find_database(c, "Original") == -1,
	    "config_find_database: unknown names (case-sensitive) give -1");

	tap_is_int(config_find_user(c, "app", orig), 1,
	    "user entry for the database wins over an earlier all-databases "
	    "one");
	tap_is_int(config_find_user(c, "app", third), 3,
	    "user entry for the database wins over an all-databases one");
	tap_is_int(config_find_user(c, "app", other), 0,
	    "all-databases entry used when none names the database");
	tap_is_int(config_find_user(c, "app", -1), 0,
	    "no database index: all-databases entry");
	tap_ok(config_find_user(c, "solo", other) == 2 &&
	    config_find_user(c, "solo", orig) == -1 &&
	    config_find_user(c, "solo", -1) == -1,
	    "user restricted to one database is not found for others");
	tap_ok(config_find_user(c, "nobody", orig) == -1 &&
	    config_find_user(c, "APP", orig) == -1,
	    "unknown user gives -1");

	ok = 1;
	memset(seen, 0, sizeof(seen));
	for (u = 0; u < c->nusers; u++)
		for (d = 0; d < c->ndatabases; d++) {
			int	 p = config_pool_index(c, u, d);

			if (p < 0 || p >= c->nusers * c->ndatabases || seen[p]++)
				ok = 0;
		}
	tap_ok(ok, "pool indexes are distinct and within users x databases");
	tap_is_int(config_pool_size(c, config_pool_index(c, 1, orig)), 10,
	    "user pool_size wins over database pool_size");
	tap_is_int(config_pool_size(c, config_pool_index(c, 0, orig)), 20,
	    "database pool_size when the user has none");
	tap_is_int(config_pool_size(c, config_pool_index(c, 3, third)), 7,
	    "database pool_size of the third database");
	tap_is_int(config_pool_size(c, config_pool_index(c, 0, other)), 50,
	    "pool.default_size when neither has one");
	tap_is_int(config_pool_size(c, config_pool_index(c, 1, other)), 10,
	    "user pool_size over the default");
	config_free(c);

	tap_ok(strcmp(config_auth_name(AUTH_SCRAM), "scram-sha-256") == 0 &&
	    strcmp(config_auth_name(AUTH_MD5), "md5") == 0 &&
	    strcmp(config_auth_name(AUTH_TRUST), "trust") == 0 &&
	    strcmp(config_auth_name(AUTH_DEFAULT), "default") == 0,
	    "config_auth_name");
}

/*
 * A config with databases src and dst, the given users list (one line)
 * and the given mirrors entries from line 8 on.
 */
static struct pgm_config *
load_mirrors(const char *users, const char *entries,
    struct pgm_config_errors *errs)
{
	char		 text[2048];

	snprintf(text, sizeof(text),
	    "listen = [ \"127.0.0.1:6432\" ];\n"			/* 1 */
	    "databases = (\n"						/* 2 */
	    "  { name = \"src\"; host = \"h\"; },\n"			/* 3 */
	    "  { name = \"dst\"; host = \"h\"; }\n"			/* 4 */
	    ");\n"							/* 5 */
	    "users = ( %s );\n"						/* 6 */
	    "mirrors = (\n"						/* 7 */
	    "%s\n"							/* 8 */
	    ");\n", users ? users : "{ name = \"u\"; password = \"p\"; }",
	    entries);
	return load(text, errs);
}

/* A mirrors config refused with exactly one error: at line, with text. */
static void
mirror_refused(const char *users, const char *entries, int line,
    const char *text, const char *what)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;

	c = load_mirrors(users, entries, &errs);
	if (!tap_ok(c == NULL && errs.n == 1 && has_error(&errs, line, text),
	    "%s: one error at line %d", what, line)) {
		tap_diag("want: %d: %s", line, text);
		show_errors(&errs);
	}
	config_free(c);
}

/* A mirrors config that loads. */
static void
mirror_loads(const char *users, const char *entries, const char *what)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;

	c = load_mirrors(users, entries, &errs);
	if (!tap_ok(c != NULL && errs.n == 0 && c->nmirrors == 1, "%s", what))
		show_errors(&errs);
	config_free(c);
}

/* The mirrors list and the mirror group. */
static void
test_mirrors(void)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;
	const struct pgm_mirror *m;

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"			/* 1 */
	    "mirror_queue = 777;\n"					/* 2 */
	    "mirror = { workers = 3; retry_max = 10; };\n"		/* 3 */
	    "databases = (\n"						/* 4 */
	    "  { name = \"src\"; host = \"h\"; },\n"			/* 5 */
	    "  { name = \"dst\"; host = \"h\"; },\n"			/* 6 */
	    "  { name = \"third\"; host = \"h\"; }\n"			/* 7 */
	    ");\n"							/* 8 */
	    "users = (\n"						/* 9 */
	    "  { name = \"u\"; password = \"p\"; },\n"			/* 10 */
	    "  { name = \"v\"; password = \"p\"; database = \"src\"; },\n"
	    "  { name = \"v\"; password = \"q\"; database = \"dst\"; }\n"
	    ");\n"							/* 13 */
	    "mirrors = (\n"						/* 14 */
	    "  { source = \"src\"; destination = \"dst\"; queue = 500;\n"
	    "    queue_bytes = 1048576; exposure = 0.5; },\n"		/* 16 */
	    "  { source = \"third\"; destination = \"src\"; }\n"	/* 17 */
	    ");\n", &errs);
	if (!tap_ok(c != NULL && errs.n == 0, "mirrors config loads"))
		show_errors(&errs);
	if (c == NULL) {
		tap_ok(0, "mirrors (not loaded)");
		tap_ok(0, "mirrors (not loaded)");
		tap_ok(0, "mirrors (not loaded)");
		tap_ok(0, "mirrors (not loaded)");
	} else {
		tap_is_int(c->nmirrors, 2, "2 mirrors");
		m = &c->mirrors[0];
		tap_ok(c->nmirrors == 2 && strcmp(m->source, "src") == 0 &&
		    strcmp(m->destination, "dst") == 0 && m->src == 0 &&
		    m->dst == 1 && m->queue == 500 &&
		    m->queue_bytes == 1048576 && m->exposure == 0.5 &&
		    m->line == 15, "mirror src -> dst: indexes 0 -> 1, queue, "
		    "queue_bytes, exposure 0.5, line 15");
		m = &c->mirrors[1];
		tap_ok(c->nmirrors == 2 && strcmp(m->source, "third") == 0 &&
		    m->src == 2 && m->dst == 0 && m->queue == 777 &&
		    m->queue_bytes == 64 * 1024 * 1024 && m->exposure == 1.0 &&
		    m->line == 17, "mirror third -> src: queue from "
		    "mirror_queue, queue_bytes 64 MiB, exposure 1.0");
		tap_ok(c->mirror_workers == 3 && c->mirror_retry_max == 10,
		    "mirror = { workers = 3; retry_max = 10; }");
	}
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	tap_ok(c != NULL && c->nmirrors == 0 && c->mirror_workers == 2 &&
	    c->mirror_retry_max == 30, "no mirrors: nmirrors 0, mirror "
	    "workers 2, retry_max 30 by default");
	config_free(c);

	c = load_mirrors(NULL, "  { source = \"src\"; destination = \"dst\";"
	    " exposure = 0; }", &errs);
	tap_ok(c != NULL && c->nmirrors == 1 && c->mirrors[0].exposure == 0.0,
	    "exposure = 0 (an integer) loads as 0.0");
	config_free(c);

	mirror_loads(NULL, "  { source = \"src\"; destination = \"dst\"; }",
	    "a user entry with no database serves the destination: loads");
	mirror_loads("{ name = \"a\"; password = \"p\"; database = \"src\"; },"
	    " { name = \"a\"; password = \"q\"; database = \"dst\"; }",
	    "  { source = \"src\"; destination = \"dst\"; }",
	    "a user with an entry for each database: loads");

	mirror_refused(NULL, "  { source = \"nope\"; destination = \"dst\"; }",
	    8, "mirror source \"nope\" is not in databases",
	    "unknown source database");
	mirror_refused(NULL, "  { source = \"src\"; destination = \"nope\"; }",
	    8, "mirror destination \"nope\" is not in databases",
	    "unknown destination database");
	mirror_refused(NULL, "  { source = \"src\"; destination = \"src\"; }",
	    8, "mirror source and destination are both \"src\"",
	    "source == destination");
	mirror_refused(NULL, "  { source = \"src\"; destination = \"dst\";\n"
	    "    exposure = 1.5; }", 9,
	    "mirrors.exposure must be a number from 0.0 to 1.0",
	    "exposure 1.5");
	mirror_refused(NULL, "  { source = \"src\"; destination = \"dst\";\n"
	    "    exposure = \"x\"; }", 9,
	    "mirrors.exposure must be a number from 0.0 to 1.0",
	    "exposure \"x\"");
	mirror_refused("{ name = \"a\"; password = \"p\";"
	    " database = \"src\"; }",
	    "  { source = \"src\"; destination = \"dst\"; }", 8,
	    "mirror src -> dst: user \"a\" has no users entry for database "
	    "\"dst\"", "a user of the source with no entry for the "
	    "destination");
	mirror_refused(NULL, "  { source = \"src\"; destination = \"dst\"; },\n"
	    "  { source = \"src\"; destination = \"dst\"; }", 9,
	    "mirror src -> dst is already defined at line 8",
	    "duplicate mirror");
	mirror_refused(NULL, "  { source = \"src\"; destination = \"dst\";\n"
	    "    bogus = 1; }", 9, "unknown setting \"mirrors.bogus\"",
	    "unknown key in a mirrors entry");
	mirror_refused(NULL, "  { source = \"src\"; }", 8,
	    "a mirror needs a source and a destination",
	    "mirror without a destination");
	mirror_refused(NULL, "  { source = \"src\"; destination = \"dst\";\n"
	    "    queue_bytes = 1024; }", 9,
	    "mirrors.queue_bytes must be between 65536 and",
	    "queue_bytes below 64 KiB");

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "mirror = { workers = 65;\n"
	    "    colour = 1; };\n"
	    "databases = ( { name = \"d\"; host = \"h\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	if (!tap_ok(c == NULL && errs.n == 2 &&
	    has_error(&errs, 2, "mirror.workers must be between 1 and 64") &&
	    has_error(&errs, 3, "unknown setting \"mirror.colour\""),
	    "mirror group: workers 65 and an unknown key: two errors"))
		show_errors(&errs);
	config_free(c);
}

/*
 * allow_cleartext_password: off by default, server.* for every database,
 * a databases entry's own value over it, and only true or false.
 */
static void
test_cleartext(void)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "databases = ( { name = \"d\"; host = \"h\"; },\n"
	    "  { name = \"on\"; host = \"h\"; allow_cleartext_password = true; }"
	    " );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	if (!tap_ok(c != NULL && errs.n == 0, "cleartext: config loads"))
		show_errors(&errs);
	tap_ok(c != NULL && c->server_allow_cleartext == 0 &&
	    c->databases[0].allow_cleartext == -1 &&
	    config_allow_cleartext(c, &c->databases[0]) == 0,
	    "cleartext: refused by default");
	tap_ok(c != NULL && config_allow_cleartext(c, &c->databases[1]) == 1,
	    "cleartext: a databases entry allows it for itself");
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "server = { allow_cleartext_password = true; };\n"
	    "databases = ( { name = \"d\"; host = \"h\"; },\n"
	    "  { name = \"off\"; host = \"h\"; allow_cleartext_password = false; }"
	    " );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	if (!tap_ok(c != NULL && errs.n == 0, "cleartext: global on loads"))
		show_errors(&errs);
	tap_ok(c != NULL && c->server_allow_cleartext == 1 &&
	    config_allow_cleartext(c, &c->databases[0]) == 1,
	    "cleartext: server.allow_cleartext_password applies to an entry "
	    "without its own");
	tap_ok(c != NULL && config_allow_cleartext(c, &c->databases[1]) == 0,
	    "cleartext: an entry's false overrides the global true");
	config_free(c);

	c = load("listen = [ \"127.0.0.1:6432\" ];\n"
	    "server = { allow_cleartext_password = 1; };\n"
	    "databases = ( { name = \"d\"; host = \"h\";\n"
	    "  allow_cleartext_password = \"yes\"; } );\n"
	    "users = ( { name = \"u\"; password = \"p\"; } );\n", &errs);
	tap_ok(c == NULL && has_error(&errs, 2,
	    "server.allow_cleartext_password must be true or false") &&
	    has_error(&errs, 4,
	    "databases.allow_cleartext_password must be true or false"),
	    "cleartext: values other than true or false are errors, with "
	    "their lines");
	if (c != NULL || errs.n != 2)
		show_errors(&errs);
	config_free(c);
}

/*
 * The settings table (config_settings[]).  Its rows are checked against
 * the loader through their own fields, so a row added to the table is
 * tested without a line here.
 */

/* The minimal config, with one more line (4) before databases. */
#define TABLE_HEAD	"listen = [ \"127.0.0.1:6432\" ];\n"	/* 1 */
#define TABLE_TAIL	"databases = ( { name = \"d\"; host = \"h\"; } );\n" \
			"users = ( { name = \"u\"; password = \"p\"; } );\n"

/* Length of the group of a key ("client" of "client.x"); 0: top. */
static size_t
key_group_len(const char *key)
{
	const char	*dot = strchr(key, '.');

	return dot ? (size_t)(dot - key) : 0;
}

/* Are two keys in the same group? */
static int
key_same_group(const char *a, const char *b)
{
	size_t		 n = key_group_len(a);

	return n == key_group_len(b) && strncmp(a, b, n) == 0;
}

/* The int a setting is stored in. */
static int
setting_int(const struct pgm_config *c, const struct pgm_setting *s)
{
	int		 v;

	memcpy(&v, (const char *)c + s->off, sizeof(v));
	return v;
}

/* The string a setting is stored in. */
static const char *
setting_str(const struct pgm_config *c, const struct pgm_setting *s)
{
	const char	*v;

	memcpy(&v, (const char *)c + s->off, sizeof(v));
	return v;
}

/* The name of value v of enum setting s. */
static const char *
enum_name(const struct pgm_setting *s, int v)
{
	int		 i;

	for (i = 0; s->names[i].name != NULL; i++)
		if (s->names[i].value == v)
			return s->names[i].name;
	return "(none)";
}

/*
 * A value of s other than its default that the loader takes alone and
 * with every other such value at once: the smallest integer (the next
 * one if that is the default), the other boolean, a string made of the
 * key, the last name of another value.  *want: the int it gives.
 */
static const char *
setting_other(const struct pgm_setting *s, char *buf, size_t len, int *want)
{
	int		 i, j;

	switch (s->type) {
	case SET_INT:
		*want = s->def != s->min ? s->min : s->min + 1;
		snprintf(buf, len, "%d", *want);
		break;
	case SET_BOOL:
		*want = !s->def;
		snprintf(buf, len, "%s", *want ? "true" : "false");
		break;
	case SET_STR:
		*want = 0;
		snprintf(buf, len, "\"v-%s\"", s->key);
		break;
	case SET_ENUM:
		for (i = 0, j = 0; s->names[i].name != NULL; i++)
			if (s->names[i].value != s->def)
				j = i;
		*want = s->names[j].value;
		snprintf(buf, len, "\"%s\"", s->names[j].name);
		break;
	}
	return buf;
}

/* Append "key = value;" to text, inside a group of its own if any. */
static void
setting_line(char *text, size_t len, const struct pgm_setting *s,
    const char *value)
{
	size_t		 n = key_group_len(s->key), used = strlen(text);

	if (n == 0)
		snprintf(text + used, len - used, "%s = %s;\n", s->key, value);
	else
		snprintf(text + used, len - used, "%.*s = { %s = %s; };\n",
		    (int)n, s->key, s->key + n + 1, value);
}

/* Loads the minimal config with s = value at line 4: one error there? */
static void
setting_refused(const struct pgm_setting *s, const char *value,
    const char *msg, const char *what)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;
	char		 text[1024];

	snprintf(text, sizeof(text), TABLE_HEAD "\n\n");
	setting_line(text, sizeof(text), s, value);
	strncat(text, TABLE_TAIL, sizeof(text) - strlen(text) - 1);
	c = load(text, &errs);
	if (!tap_ok(c == NULL && errs.n == 1 && has_error(&errs, 4, msg),
	    "%s = %s (%s): one error at line 4", s->key, value, what)) {
		tap_diag("want: 4: %s", msg);
		show_errors(&errs);
	}
	config_free(c);
}

/* How many tests test_table runs. */
static int
test_table_count(void)
{
	const struct pgm_setting *s;
	int		 n = 7;

	for (s = config_settings; s->key != NULL; s++)
		n += 3 + (s->type == SET_INT ? 2 : 0) +
		    (s->type == SET_ENUM ? 1 : 0);
	return n;
}

/* Every row of the table: defaulted, loaded, bad values refused. */
static void
test_table(void)
{
	const struct pgm_setting *s, *t;
	struct pgm_config_errors errs;
	struct pgm_config *c, *d;
	char		 text[8192], val[128], msg[256], buf[32];
	const char	*txt;
	int		 want, ok, i;
	size_t		 n;

	/* The loader reads a group once: its rows must be together. */
	ok = 1;
	for (s = config_settings; s->key != NULL; s++)
		for (t = config_settings; t < s; t++)
			if (strcmp(s->key, t->key) == 0 ||
			    (t + 1 < s && key_same_group(s->key, t->key) &&
			    key_group_len(s->key) > 0 &&
			    !key_same_group(s->key, (s - 1)->key))) {
				tap_diag("%s after %s", s->key, t->key);
				ok = 0;
			}
	tap_ok(ok, "table: keys unique, the rows of a group together");

	/* Every default. */
	c = load(TABLE_HEAD TABLE_TAIL, &errs);
	if (!tap_ok(c != NULL, "table: minimal config loads"))
		show_errors(&errs);
	for (s = config_settings; c != NULL && s->key != NULL; s++) {
		if (s->type == SET_STR)
			tap_ok(s->defstr == NULL ? setting_str(c, s) == NULL :
			    setting_str(c, s) != NULL &&
			    strcmp(setting_str(c, s), s->defstr) == 0,
			    "%s defaults to %s", s->key,
			    s->defstr ? s->defstr : "unset");
		else if (strcmp(s->key, "tls.client_mode") == 0)
			tap_is_int(setting_int(c, s), TLS_DISABLE,
			    "%s without a certificate defaults to disable",
			    s->key);
		else
			tap_is_int(setting_int(c, s), s->def,
			    "%s defaults to %d", s->key, s->def);
	}
	config_free(c);

	/* Every setting written with another value, all at once. */
	snprintf(text, sizeof(text), "%s", TABLE_HEAD);
	for (s = config_settings; s->key != NULL; s++) {
		n = key_group_len(s->key);
		if (s == config_settings || !key_same_group(s->key,
		    (s - 1)->key)) {
			if (s != config_settings && key_group_len((s - 1)->key))
				strncat(text, "};\n", sizeof(text) -
				    strlen(text) - 1);
			if (n > 0)
				snprintf(text + strlen(text), sizeof(text) -
				    strlen(text), "%.*s = {\n", (int)n, s->key);
		}
		setting_other(s, val, sizeof(val), &want);
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
		    "  %s = %s;\n", s->key + (n ? n + 1 : 0), val);
	}
	if (key_group_len((s - 1)->key))
		strncat(text, "};\n", sizeof(text) - strlen(text) - 1);
	strncat(text, TABLE_TAIL, sizeof(text) - strlen(text) - 1);
	c = load(text, &errs);
	if (!tap_ok(c != NULL && errs.n == 0, "table: every setting set "
	    "to another value loads")) {
		show_errors(&errs);
		tap_diag("%s", text);
	}
	for (s = config_settings; c != NULL && s->key != NULL; s++) {
		setting_other(s, val, sizeof(val), &want);
		if (s->type == SET_STR) {
			snprintf(val, sizeof(val), "v-%s", s->key);
			tap_is_str(setting_str(c, s), val, "%s is loaded",
			    s->key);
		} else
			tap_is_int(setting_int(c, s), want, "%s = %s is "
			    "loaded", s->key, val);
	}

	/* As SHOW CONFIG shows them: a password never. */
	ok = 1;
	for (s = config_settings; c != NULL && s->key != NULL; s++) {
		txt = config_setting_text(s, c, buf, sizeof(buf));
		if (s->flags & SET_SECRET)
			ok &= strcmp(txt, "********") == 0;
		else if (s->type == SET_STR)
			ok &= strcmp(txt, setting_str(c, s)) == 0;
		else if (s->type == SET_BOOL)
			ok &= strcmp(txt, setting_int(c, s) ? "true" :
			    "false") == 0;
		if (!ok) {
			tap_diag("%s shown as \"%s\"", s->key, txt);
			break;
		}
	}
	tap_ok(c != NULL && ok && c->admin_password != NULL &&
	    strcmp(c->admin_password, "v-admin.password") == 0,
	    "table: shown as written, admin.password as ********");
	d = load(TABLE_HEAD TABLE_TAIL, &errs);
	ok = c != NULL && d != NULL;
	for (s = config_settings; ok && s->key != NULL; s++) {
		txt = config_setting_text(s, d, buf, sizeof(buf));
		if (s->type == SET_ENUM)
			ok = strcmp(txt, enum_name(s, setting_int(d, s))) == 0;
		else if (s->type == SET_INT) {
			snprintf(val, sizeof(val), "%d", setting_int(d, s));
			ok = strcmp(txt, val) == 0;
		} else if (s->type == SET_STR && setting_str(d, s) == NULL)
			ok = strcmp(txt, "") == 0;
		if (!ok)
			tap_diag("%s shown as \"%s\"", s->key, txt);
	}
	tap_ok(ok, "table: defaults shown: integers in decimal, enums by "
	    "name, unset strings empty");

	/* What a reload does with a setting that needs a restart. */
	ok = c != NULL && d != NULL;
	for (s = config_settings; ok && s->key != NULL; s++) {
		/* pool.mode has one value only. */
		if (!config_setting_same(s, c, c) ||
		    config_setting_same(s, c, d) !=
		    (s->type == SET_ENUM && s->names[1].name == NULL))
			ok = 0;
		if (!ok)
			tap_diag("%s: config_setting_same", s->key);
	}
	tap_ok(ok, "table: config_setting_same tells each changed setting");
	for (s = config_settings; ok && s->key != NULL; s++) {
		config_setting_take(s, d, c);
		if (s->type == SET_STR && setting_str(c, s) != NULL)
			ok = 0;
		setting_other(s, val, sizeof(val), &want);
		if (s->type == SET_STR ? strncmp(setting_str(d, s), "v-", 2)
		    != 0 : setting_int(d, s) != want)
			ok = 0;
		if (!ok)
			tap_diag("%s: config_setting_take", s->key);
	}
	tap_ok(ok, "table: config_setting_take moves each value over");
	config_free(c);
	config_free(d);

	/* Every setting refuses what it cannot take, at its line. */
	for (s = config_settings; s->key != NULL; s++) {
		switch (s->type) {
		case SET_INT:
			snprintf(msg, sizeof(msg), "%s must be an integer",
			    s->key);
			setting_refused(s, "\"x\"", msg, "a string");
			snprintf(val, sizeof(val), "%lldL",
			    (long long)s->min - 1);
			snprintf(msg, sizeof(msg), "%s must be between %d and "
			    "%d, not %lld", s->key, s->min, s->max,
			    (long long)s->min - 1);
			setting_refused(s, val, msg, "below");
			snprintf(val, sizeof(val), "%lldL",
			    (long long)s->max + 1);
			snprintf(msg, sizeof(msg), "%s must be between %d and "
			    "%d, not %lld", s->key, s->min, s->max,
			    (long long)s->max + 1);
			setting_refused(s, val, msg, "above");
			break;
		case SET_BOOL:
			snprintf(msg, sizeof(msg), "%s must be true or false",
			    s->key);
			setting_refused(s, "1", msg, "a number");
			break;
		case SET_STR:
		case SET_ENUM:
			snprintf(msg, sizeof(msg), "%s must be a string",
			    s->key);
			setting_refused(s, "5", msg, "a number");
			if (s->type == SET_STR)
				break;
			if (s->bad != NULL)
				snprintf(msg, sizeof(msg), "%s \"no-such\" %s",
				    s->key, s->bad);
			else {
				snprintf(msg, sizeof(msg), "%s must be ",
				    s->key);
				for (i = 0; s->names[i].name != NULL; i++)
					snprintf(msg + strlen(msg),
					    sizeof(msg) - strlen(msg),
					    "%s\"%s\"", i == 0 ? "" :
					    s->names[i + 1].name ? ", " :
					    " or ", s->names[i].name);
			}
			setting_refused(s, "\"no-such\"", msg, "no such name");
			break;
		}
	}
}

/* A file that cannot be read. */
static void
test_missing(void)
{
	struct pgm_config_errors errs;
	struct pgm_config *c;
	char		 path[256];

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	c = config_load(path, &errs);
	tap_ok(c == NULL && errs.n == 1, "missing file: no config, one error");
	tap_ok(errs.n == 1 && errs.err[0].line == 0 &&
	    strncmp(errs.err[0].msg, "cannot read", 11) == 0,
	    "missing file: line 0, \"cannot read\"");
	tap_ok(errs.file == path, "errors name the file");
	config_free(c);
}

int
main(void)
{
	struct scram_secret sec;
	char		 verifier[SCRAM_VERIFIER_MAX];

	tap_plan(121 + test_table_count());
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (scram_secret_from_password("scrpw", &sec) != 0 ||
	    scram_secret_format(&sec, verifier, sizeof(verifier)) != 0) {
		fprintf(stderr, "cannot make a SCRAM verifier\n");
		cleanup();
		return 1;
	}
	test_full(verifier);
	test_defaults();
	test_syntax();
	test_semantic(verifier);
	test_passwords(verifier, &sec);
	test_lookups();
	test_mirrors();
	test_cleartext();
	test_table();
	test_missing();
	cleanup();
	return tap_done();
}
