/*
 * test_ctlcmd.c: TAP unit tests for src/ctlcmd.c (the control grammar).
 *
 * Owns: every command parsed as a control socket request and as
 * pgmirrorctl's command line (words, arguments, options, abbreviations,
 * ambiguities), the error message of each malformed request in both
 * dialects, writing a request back as a line and as an admin console
 * statement (and parsing that again), the translation of console
 * statements, the synopses, and the answer parser on OK, ERROR, tables
 * and malformed answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlcmd.h"
#include "tap.h"

#define MAXW	16

static char	 err[512];

/* Split a copy of text at spaces into words (static storage). */
static int
words(const char *text, char **w)
{
	static char	 buf[CTLCMD_LINE_MAX];

	snprintf(buf, sizeof(buf), "%s", text);
	return ctlcmd_split(buf, w, MAXW);
}

/* Parse text in dialect d; 0 or -1 (err set). */
static int
parse(const char *text, enum ctlcmd_dialect d, struct ctlcmd_req *r)
{
	char		*w[MAXW];
	int		 n = words(text, w);

	err[0] = '\0';
	return ctlcmd_parse(n, w, d, r, err, sizeof(err));
}

/* Parse text as a request, then write it back as a line (static). */
static const char *
req_line(const char *text)
{
	static char	 line[CTLCMD_LINE_MAX];
	struct ctlcmd_req r;

	if (parse(text, CTLCMD_REQUEST, &r) == -1)
		return "(parse failed)";
	if (ctlcmd_format(&r, 0, line, sizeof(line)) == -1)
		return "(format failed)";
	return line;
}

/* Parse text as a command line, then write it as a statement (static). */
static const char *
argv_sql(const char *text)
{
	static char	 sql[CTLCMD_LINE_MAX];
	struct ctlcmd_req r;

	if (parse(text, CTLCMD_ARGV, &r) == -1)
		return "(parse failed)";
	if (ctlcmd_format(&r, 1, sql, sizeof(sql)) == -1)
		return "(format failed)";
	return sql;
}

/* Parse text as a command line, then write it as a line (static). */
static const char *
argv_line(const char *text)
{
	static char	 line[CTLCMD_LINE_MAX];
	struct ctlcmd_req r;

	if (parse(text, CTLCMD_ARGV, &r) == -1)
		return "(parse failed)";
	if (ctlcmd_format(&r, 0, line, sizeof(line)) == -1)
		return "(format failed)";
	return line;
}

/* The message of a request that must fail ("(parsed)" if it did not). */
static const char *
req_err(const char *text)
{
	struct ctlcmd_req r;

	return parse(text, CTLCMD_REQUEST, &r) == -1 ? err : "(parsed)";
}

/* The message of a command line that must fail. */
static const char *
argv_err(const char *text)
{
	struct ctlcmd_req r;

	return parse(text, CTLCMD_ARGV, &r) == -1 ? err : "(parsed)";
}

/* A console statement as a request line ("(-1)" if refused; static). */
static const char *
from_sql(const char *sql)
{
	static char	 line[CTLCMD_LINE_MAX];

	if (ctlcmd_from_sql(sql, line, sizeof(line)) == -1)
		return "(-1)";
	return line;
}

/* Every request of the socket, and its answer to each malformed one. */
static void
test_request(void)
{
	struct ctlcmd_req r;
	static const char *const shows[] = { "clients", "config", "mirrors",
	    "pools", "servers", "stats", "version" };
	char		 line[64];
	size_t		 i;

	tap_is_int(parse("status", CTLCMD_REQUEST, &r), 0, "status parses");
	tap_is_int(r.id, CTLCMD_STATUS, "... as status");
	for (i = 0; i < sizeof(shows) / sizeof(shows[0]); i++) {
		snprintf(line, sizeof(line), "show %s", shows[i]);
		tap_ok(parse(line, CTLCMD_REQUEST, &r) == 0 &&
		    r.id == CTLCMD_SHOW && r.sub == (int)i, "%s parses", line);
	}
	tap_is_int(CTLCMD_SHOW_VERSION, 6, "show words in enum order");

	tap_ok(parse("maintenance on", CTLCMD_REQUEST, &r) == 0 &&
	    r.id == CTLCMD_MAINTENANCE && r.sub == 1 && r.arg[0] == NULL &&
	    r.seconds == -1, "maintenance on");
	tap_ok(parse("maintenance off appdb", CTLCMD_REQUEST, &r) == 0 &&
	    r.sub == 0 && r.arg[0] != NULL && strcmp(r.arg[0], "appdb") == 0,
	    "maintenance off appdb");
	tap_ok(parse("maintenance on appdb --wait 10", CTLCMD_REQUEST,
	    &r) == 0 && r.sub == 1 && strcmp(r.arg[0], "appdb") == 0 &&
	    r.seconds == 10 && r.opts == CTLCMD_OPT_WAIT,
	    "maintenance on appdb --wait 10");
	tap_ok(parse("maintenance on --wait 0", CTLCMD_REQUEST, &r) == 0 &&
	    r.arg[0] == NULL && r.seconds == 0, "maintenance on --wait 0");
	tap_ok(parse("maintenance on -x", CTLCMD_REQUEST, &r) == 0 &&
	    strcmp(r.arg[0], "-x") == 0,
	    "a database may start with one dash");
	tap_ok(parse("maintenance on --timeout 7", CTLCMD_REQUEST, &r) == 0 &&
	    r.seconds == 7 && r.opts == CTLCMD_OPT_WAIT,
	    "the socket takes --timeout for --wait");
	tap_ok(parse("maintenance off --wait 3", CTLCMD_REQUEST, &r) == 0,
	    "... and --wait with off");
	tap_ok(parse("reload", CTLCMD_REQUEST, &r) == 0 &&
	    r.id == CTLCMD_RELOAD && r.opts == 0, "reload");
	tap_ok(parse("reload --check", CTLCMD_REQUEST, &r) == 0 &&
	    r.opts == CTLCMD_OPT_CHECK, "reload --check");
	tap_ok(parse("switchover", CTLCMD_REQUEST, &r) == 0 &&
	    r.id == CTLCMD_SWITCHOVER && r.seconds == -1 && r.opts == 0,
	    "switchover");
	tap_ok(parse("switchover --timeout 30 --sync-sequences",
	    CTLCMD_REQUEST, &r) == 0 && r.seconds == 30 &&
	    r.opts == (CTLCMD_OPT_TIMEOUT | CTLCMD_OPT_SYNC),
	    "switchover --timeout 30 --sync-sequences");
	tap_ok(parse("switchover --sync-sequences --wait 86400",
	    CTLCMD_REQUEST, &r) == 0 && r.seconds == 86400 &&
	    r.opts == (CTLCMD_OPT_TIMEOUT | CTLCMD_OPT_SYNC),
	    "... options in any order, --wait for --timeout");
	tap_ok(parse("sync-sequences", CTLCMD_REQUEST, &r) == 0 &&
	    r.id == CTLCMD_SYNC_SEQUENCES, "sync-sequences");
	tap_ok(parse(" \tstatus  ", CTLCMD_REQUEST, &r) == 0,
	    "spaces and tabs around words");

	/* The answers of t/170_control.t, and the others as they were. */
	tap_is_str(req_err(""), "empty request", "an empty line");
	tap_is_str(req_err("   "), "empty request", "a line of spaces");
	tap_is_str(req_err("frobnicate"), "unknown command \"frobnicate\"",
	    "an unknown command");
	tap_is_str(req_err("STATUS"), "unknown command \"STATUS\"",
	    "words are exact on the socket: no upper case");
	tap_is_str(req_err("stat"), "unknown command \"stat\"",
	    "... and no prefixes");
	tap_is_str(req_err("status please"), "unknown command \"status\"",
	    "status with an argument");
	tap_is_str(req_err("show"), "unknown command \"show\"",
	    "show alone");
	tap_is_str(req_err("show clients now"), "unknown command \"show\"",
	    "show with two words");
	tap_is_str(req_err("show everything"), "show what? clients, config, "
	    "mirrors, pools, servers, stats or version",
	    "show of an unknown table");
	tap_is_str(req_err("sync-sequences now"),
	    "unknown command \"sync-sequences\"", "sync-sequences with a word");
	tap_is_str(req_err("verify a b"), "unknown command \"verify\"",
	    "verify is no request");
	tap_is_str(req_err("maintenance"), "usage: maintenance on|off "
	    "[database] [--wait seconds]", "maintenance alone");
	tap_is_str(req_err("maintenance sideways"), "usage: maintenance "
	    "on|off [database] [--wait seconds]", "maintenance sideways");
	tap_is_str(req_err("maintenance --wait 5"), "usage: maintenance "
	    "on|off [database] [--wait seconds]", "maintenance --wait 5");
	tap_is_str(req_err("maintenance on --wait soon"), "soon: not a "
	    "number of seconds from 0 to 86400", "a bad --wait");
	tap_is_str(req_err("maintenance on --wait 86401"), "86401: not a "
	    "number of seconds from 0 to 86400", "--wait over a day");
	tap_is_str(req_err("maintenance on --wait -1"), "-1: not a "
	    "number of seconds from 0 to 86400", "a negative --wait");
	tap_is_str(req_err("maintenance on --wait +5"), "+5: not a "
	    "number of seconds from 0 to 86400", "a signed --wait");
	tap_is_str(req_err("maintenance on appdb --wait"), "--wait needs a "
	    "number of seconds", "--wait at the end");
	tap_is_str(req_err("maintenance on appdb other"),
	    "unexpected \"other\"", "maintenance with two databases");
	tap_is_str(req_err("maintenance on --wait 5 appdb"),
	    "unexpected \"appdb\"", "the database before the options");
	tap_is_str(req_err("maintenance on --sync-sequences"),
	    "unexpected \"--sync-sequences\"", "switchover's option");
	tap_is_str(req_err("maintenance on --wait=5"),
	    "unexpected \"--wait=5\"", "no --option=value on the socket");
	tap_is_str(req_err("switchover now"), "unexpected \"now\"",
	    "switchover with an argument");
	tap_is_str(req_err("switchover --check"), "unexpected \"--check\"",
	    "reload's option for switchover");
	tap_is_str(req_err("switchover --timeout"), "--timeout needs a "
	    "number of seconds", "--timeout without its number");
	tap_is_str(req_err("reload now"), "usage: reload [--check]",
	    "reload with an argument");
	tap_is_str(req_err("reload --wait 5"), "usage: reload [--check]",
	    "reload with --wait");
	tap_is_str(req_err("reload --check now"), "usage: reload [--check]",
	    "reload --check with an argument");
}

/* pgmirrorctl's command line: abbreviations, and each usage error. */
static void
test_argv(void)
{
	struct ctlcmd_req r;

	tap_is_str(argv_line("status"), "status", "argv: status");
	tap_is_str(argv_line("st"), "status", "argv: st is status");
	tap_is_str(argv_line("sh cl"), "show clients", "argv: sh cl");
	tap_is_str(argv_line("show m"), "show mirrors", "argv: show m");
	tap_is_str(argv_line("show v"), "show version", "argv: show v");
	tap_is_str(argv_line("maint on --w 10"), "maintenance on --wait 10",
	    "argv: maint on --w 10");
	tap_is_str(argv_line("m of appdb"), "maintenance off appdb",
	    "argv: m of appdb");
	tap_is_str(argv_line("maintenance --wait=3 on appdb"),
	    "maintenance on appdb --wait 3",
	    "argv: --wait=3 before the words");
	tap_is_str(argv_line("maintenance on -- -odd"),
	    "maintenance on -odd", "argv: -- ends the options");
	tap_is_str(argv_line("r --c"), "reload --check", "argv: r --c");
	tap_is_str(argv_line("sw --s --t 30"),
	    "switchover --timeout 30 --sync-sequences",
	    "argv: sw --s --t 30");
	tap_is_str(argv_line("switchover --timeout=0"),
	    "switchover --timeout 0", "argv: --timeout=0");
	tap_ok(parse("verify src dst --checksum", CTLCMD_ARGV, &r) == 0 &&
	    r.id == CTLCMD_VERIFY && strcmp(r.arg[0], "src") == 0 &&
	    strcmp(r.arg[1], "dst") == 0 && r.opts == CTLCMD_OPT_CHECKSUM,
	    "argv: verify src dst --checksum");
	tap_ok(parse("ve a b --ch", CTLCMD_ARGV, &r) == 0 &&
	    r.opts == CTLCMD_OPT_CHECKSUM, "argv: ve a b --ch");
	tap_is_str(argv_line("verify a b"), "(format failed)",
	    "verify is not written as a request");
	tap_is_str(argv_err("sync-sequences"), "unknown command "
	    "\"sync-sequences\"; valid ones are: status, show, maintenance, "
	    "reload, switchover, verify", "argv: no sync-sequences");

	tap_is_str(argv_err("s"), "ambiguous command \"s\": status, show, "
	    "switchover", "argv: s is ambiguous");
	tap_is_str(argv_err("frob"), "unknown command \"frob\"; valid ones "
	    "are: status, show, maintenance, reload, switchover, verify",
	    "argv: an unknown command lists the valid ones");
	tap_is_str(argv_err("show c"), "ambiguous show command \"c\": "
	    "clients, config", "argv: show c is ambiguous");
	tap_is_str(argv_err("show x"), "unknown show command \"x\"; valid "
	    "ones are: clients, config, mirrors, pools, servers, stats, "
	    "version", "argv: show x");
	tap_is_str(argv_err("show"), "show wants one of: clients, config, "
	    "mirrors, pools, servers, stats, version", "argv: show alone");
	tap_is_str(argv_err("maintenance o"), "ambiguous maintenance command "
	    "\"o\": on, off", "argv: maintenance o");
	tap_is_str(argv_err("maintenance"), "maintenance wants on or off, "
	    "and optionally a database", "argv: maintenance alone");
	tap_is_str(argv_err("maintenance on a b"), "maintenance wants on or "
	    "off, and optionally a database", "argv: two databases");
	tap_is_str(argv_err("maintenance on a;b"), "invalid database name "
	    "\"a;b\"", "argv: a database name with a semicolon");
	tap_is_str(argv_err("maintenance off --wait 5"), "--wait goes with "
	    "maintenance on", "argv: --wait with off");
	tap_is_str(argv_err("maintenance on --wait"), "--wait wants a number "
	    "of seconds", "argv: --wait at the end");
	tap_is_str(argv_err("maintenance on --wait soon"), "--wait wants a "
	    "number of seconds from 0 to 86400, not \"soon\"",
	    "argv: a bad --wait");
	tap_is_str(argv_err("maintenance on --wait="), "--wait wants a "
	    "number of seconds from 0 to 86400, not \"\"",
	    "argv: an empty --wait=");
	tap_is_str(argv_err("maintenance on --x"), "unknown option \"x\"; "
	    "valid ones are: wait", "argv: an unknown option");
	tap_is_str(argv_err("maintenance on -x"), "unknown option \"-x\"",
	    "argv: a one-dash option");
	tap_is_str(argv_err("reload --check=yes"), "--check takes no value",
	    "argv: --check=yes");
	tap_is_str(argv_err("switchover --t"), "--timeout wants a number of "
	    "seconds", "argv: --t alone");
	tap_is_str(argv_err("switchover --"), "(parsed)",
	    "argv: a lone -- is no option");
	tap_is_str(argv_err("status --x"), "status takes no option, not "
	    "\"--x\"", "argv: status --x");
	tap_is_str(argv_err("status now"), "status takes no argument",
	    "argv: status now");
	tap_is_str(argv_err("status a b c d"), "too many arguments for status",
	    "argv: four arguments");
	tap_is_str(argv_err("verify a"), "verify wants a source and a "
	    "destination database", "argv: verify a");
}

/* Requests written back as lines and as console statements. */
static void
test_format(void)
{
	struct ctlcmd_req r;
	char		 small[8];

	tap_is_str(argv_sql("status"), "STATUS;", "sql: STATUS;");
	tap_is_str(argv_sql("show clients"), "SHOW CLIENTS;",
	    "sql: SHOW CLIENTS;");
	tap_is_str(argv_sql("maintenance on appdb --wait 10"),
	    "MAINTENANCE ON appdb WAIT 10;", "sql: MAINTENANCE ON appdb WAIT");
	tap_is_str(argv_sql("maintenance off"), "MAINTENANCE OFF;",
	    "sql: MAINTENANCE OFF;");
	tap_is_str(argv_sql("reload --check"), "RELOAD CHECK;",
	    "sql: RELOAD CHECK;");
	tap_is_str(argv_sql("switchover --timeout 30 --sync-sequences"),
	    "SWITCHOVER TIMEOUT 30 SYNC SEQUENCES;",
	    "sql: SWITCHOVER TIMEOUT 30 SYNC SEQUENCES;");
	tap_is_str(req_line("sync-sequences"), "sync-sequences",
	    "line: sync-sequences");
	tap_is_str(req_line("maintenance on --timeout 5"),
	    "maintenance on --wait 5", "line: --timeout of maintenance");
	parse("sync-sequences", CTLCMD_REQUEST, &r);
	ctlcmd_format(&r, 1, err, sizeof(err));
	tap_is_str(err, "SYNC SEQUENCES;", "sql: SYNC SEQUENCES;");
	parse("maintenance on", CTLCMD_REQUEST, &r);
	tap_is_int(ctlcmd_format(&r, 0, small, sizeof(small)), -1,
	    "a line that does not fit");
	tap_is_str(ctlcmd_name(CTLCMD_SYNC_SEQUENCES), "sync-sequences",
	    "ctlcmd_name");
}

/* A console statement, translated and parsed, written as a line again. */
static const char *
sql_line(const char *sql)
{
	const char	*line = from_sql(sql);

	return strcmp(line, "(-1)") == 0 ? line : req_line(line);
}

/* Console statements turned into request lines, and back. */
static void
test_sql(void)
{
	static const char *const cmds[] = { "status", "show clients",
	    "show version", "maintenance on", "maintenance off appdb",
	    "maintenance on appdb --wait 10", "reload", "reload --check",
	    "switchover", "switchover --timeout 30",
	    "switchover --sync-sequences",
	    "switchover --timeout 0 --sync-sequences" };
	size_t		 i;

	tap_is_str(from_sql("SHOW MIRRORS"), "show mirrors",
	    "from_sql: SHOW MIRRORS");
	tap_is_str(from_sql("  Show  Pools ;"), "show pools",
	    "from_sql: spaces, case and a semicolon");
	tap_is_str(from_sql("MAINTENANCE ON AppDb WAIT 10;"),
	    "maintenance on AppDb --wait 10",
	    "from_sql: a database name keeps its case");
	tap_is_str(from_sql("RELOAD CHECK"), "reload --check",
	    "from_sql: RELOAD CHECK");
	tap_is_str(from_sql("switchover timeout 30 sync sequences"),
	    "switchover --timeout 30 --sync-sequences",
	    "from_sql: SYNC SEQUENCES as an option");
	tap_is_str(from_sql("SYNC SEQUENCES"), "sync-sequences",
	    "from_sql: SYNC SEQUENCES as the command");
	tap_is_str(from_sql("SYNC"), "sync", "from_sql: SYNC alone");
	tap_is_str(from_sql("FROBNICATE"), "frobnicate",
	    "from_sql: an unknown command in lower case");
	tap_is_str(from_sql("SWITCHOVER --wait 5"), "switchover --wait 5",
	    "from_sql: an option as on the socket");
	tap_is_str(from_sql("VERIFY a b CHECKSUM"), "verify a b CHECKSUM",
	    "from_sql: verify's option is no keyword");
	tap_is_str(from_sql(" ;; "), "(-1)", "from_sql: an empty statement");
	tap_is_str(sql_line("FROBNICATE;"), "(parse failed)",
	    "FROBNICATE; does not parse");
	tap_is_str(err, "unknown command \"frobnicate\"",
	    "... unknown command \"frobnicate\"");

	/* Every request, as pgmirrorctl -H writes it, reads back the same. */
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		tap_is_str(sql_line(argv_sql(cmds[i])), cmds[i],
		    "%s: line -> statement -> line", cmds[i]);
}

/* The synopses of pgmirrorctl's usage, from the table. */
static void
test_synopsis(void)
{
	static const char *const argv[] = { "status",
	    "show clients|config|mirrors|pools|servers|stats|version",
	    "maintenance on|off [database] [--wait seconds]",
	    "reload [--check]",
	    "switchover [--timeout seconds] [--sync-sequences]",
	    "verify source destination [--checksum]" };
	char		 buf[256];
	size_t		 i;

	for (i = 0; i < sizeof(argv) / sizeof(argv[0]); i++) {
		buf[0] = '\0';
		ctlcmd_synopsis(CTLCMD_ARGV, (int)i, buf, sizeof(buf));
		tap_is_str(buf, argv[i], "synopsis %zu", i);
	}
	tap_is_int(ctlcmd_synopsis(CTLCMD_ARGV, (int)i, buf, sizeof(buf)), -1,
	    "no synopsis past the last command");
	tap_ok(ctlcmd_synopsis(CTLCMD_REQUEST, 5, buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "sync-sequences") == 0,
	    "the socket's sixth command is sync-sequences");
}

/* Parse an answer from a copy; 0 or -1 with *why. */
static int
answer(const char *text, struct ctlcmd_answer *a, const char **why)
{
	static char	 buf[1024];

	snprintf(buf, sizeof(buf), "%s", text);
	*why = NULL;
	return ctlcmd_answer_parse(buf, strlen(buf), a, why);
}

/* The fields of a table as "a|b;c|d;" (static). */
static const char *
fields(const char *table)
{
	static char	 out[1024];
	const char	*pos = table, *f;
	size_t		 len, n = 0;
	int		 more;

	out[0] = '\0';
	while (*pos != '\0') {
		do {
			more = ctlcmd_table_field(&pos, &f, &len);
			n += snprintf(out + n, sizeof(out) - n, "%.*s%s",
			    (int)len, f, more ? "|" : ";");
		} while (more);
	}
	return out;
}

/* The answer parser: OK, ERROR, tables, and malformed answers. */
static void
test_answer(void)
{
	struct ctlcmd_answer a;
	const char	*why;
	char		 clean[] = "a\tb\nc\rd", nul[] = "OK\n\0x";

	tap_ok(answer("OK\n", &a, &why) == 0 && a.ok && a.reason == NULL &&
	    a.table == NULL, "answer: OK");
	tap_ok(answer("OK", &a, &why) == 0 && a.ok && a.table == NULL,
	    "answer: OK without a newline");
	tap_ok(answer("OK\nname\tvalue\npid\t42\nversion\t1.0\n", &a,
	    &why) == 0 && a.ok && a.ncols == 2 && a.nrows == 2,
	    "answer: OK and a table of 2 columns, 2 rows");
	tap_is_str(fields(a.table), "name|value;pid|42;version|1.0;",
	    "... its fields");
	tap_ok(answer("OK\nversion\n", &a, &why) == 0 && a.ncols == 1 &&
	    a.nrows == 0, "answer: a header without rows");
	tap_ok(answer("ERROR no database \"x\"\n", &a, &why) == 0 && !a.ok &&
	    strcmp(a.reason, "no database \"x\"") == 0 && a.table == NULL,
	    "answer: ERROR reason");
	tap_ok(answer("ERROR\n", &a, &why) == 0 && !a.ok &&
	    strcmp(a.reason, "unknown error") == 0,
	    "answer: a bare ERROR");
	tap_ok(answer("ERROR \n", &a, &why) == 0 && !a.ok &&
	    strcmp(a.reason, "") == 0, "answer: ERROR and no reason");
	tap_ok(answer("ERROR 1 session still in a transaction\npid\tstate\n"
	    "7\tin transaction\n", &a, &why) == 0 && !a.ok && a.nrows == 1,
	    "answer: ERROR with a table");
	tap_is_str(a.table, "pid\tstate\n7\tin transaction\n",
	    "... the table as sent (an admin console DETAIL)");
	tap_is_str(fields("a\tb\n\t\n"), "a|b;|;", "empty fields");
	tap_is_str(fields("a\tb\nc\t"), "a|b;c|;",
	    "an empty last field at the end of the text");
	tap_ok(answer("OK\n\n", &a, &why) == 0 && a.ncols == 1 &&
	    a.nrows == 0, "answer: a table of one empty line");

	tap_ok(answer("", &a, &why) == -1 && why != NULL &&
	    strcmp(why, "the answer starts with neither OK nor ERROR") == 0,
	    "answer: nothing is malformed");
	tap_ok(answer("OKAY\n", &a, &why) == -1,
	    "answer: OKAY is malformed");
	tap_ok(answer("error x\n", &a, &why) == -1,
	    "answer: error in lower case is malformed");
	tap_ok(answer("OK\na\tb\nc\n", &a, &why) == -1 && why != NULL &&
	    strcmp(why, "a row has not as many fields as the header") == 0,
	    "answer: a short row");
	tap_ok(answer("OK\na\tb\nc\td\te\n", &a, &why) == -1,
	    "answer: a long row");
	tap_ok(answer("OK\na\tb\n\n", &a, &why) == -1,
	    "answer: an empty line after a header of two columns");
	tap_ok(ctlcmd_answer_parse(nul, sizeof(nul) - 1, &a, &why) == -1 &&
	    strcmp(why, "a NUL byte in the answer") == 0,
	    "answer: a NUL byte");
	tap_ok(ctlcmd_table_scan("", &a.ncols, &a.nrows, &why) == -1 &&
	    strcmp(why, "no table") == 0, "an empty table");

	ctlcmd_clean(clean, strlen(clean), 0);
	tap_is_str(clean, "a b c d", "clean: a field keeps no separator");
	snprintf(clean, sizeof(clean), "a\tb\nc\rd");
	ctlcmd_clean(clean, strlen(clean), 1);
	tap_is_str(clean, "a\tb c d", "clean: a row keeps its tabs");
}

/* Arguments that a request line or a statement could not carry. */
static void
test_bad_args(void)
{
	struct ctlcmd_req r;
	char		*w[3], a0[] = "maintenance", a1[] = "on", a2[] = "a\nb";
	char		 a3[] = "a;b";

	w[0] = a0;
	w[1] = a1;
	w[2] = a2;
	tap_ok(ctlcmd_parse(3, w, CTLCMD_ARGV, &r, err, sizeof(err)) == -1,
	    "argv: a database name with a newline is refused (%s)", err);
	w[2] = a3;
	tap_ok(ctlcmd_parse(3, w, CTLCMD_REQUEST, &r, err, sizeof(err)) ==
	    -1 && strstr(err, "invalid character") != NULL,
	    "request: a database name with a semicolon is refused (%s)", err);
	tap_ok(parse("maintenance on -- --w=5", CTLCMD_ARGV, &r) == -1 &&
	    strstr(err, "starts with \"--\"") != NULL,
	    "argv: a database name starting with \"--\" is refused (%s)", err);
}

int
main(void)
{
	tap_plan(161);
	test_request();
	test_argv();
	test_format();
	test_sql();
	test_synopsis();
	test_answer();
	test_bad_args();
	return tap_done();
}
