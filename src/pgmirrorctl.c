/*
 * pgmirrorctl.c: the control program of pgmirror.
 *
 * Owns the command line (the grammar is ctlcmd.c's: words matched by
 * unique prefix), the output formats (aligned for people, -t tab-separated, -j JSON),
 * and the ways of driving pgmirror:
 *
 *  - the control socket: one request line out ("maintenance on appdb
 *    --wait 10\n"); "OK" or "ERROR reason", maybe a table of
 *    tab-separated lines (header first), and EOF back;
 *  - with -H, the admin consoles of one or more instances, through
 *    libpq, the same commands as statements ("MAINTENANCE ON appdb WAIT
 *    10;"), all instances at once; an error's table is in its DETAIL;
 *  - the fleet switchover: several instances through their consoles,
 *    step by step, each step with a deadline; maintenance turned off
 *    everywhere on a failure or a signal before the reload, kept on
 *    everywhere when only some instances reloaded;
 *  - verify: no daemon at all; two databases of the config file,
 *    connected to directly, their tables compared.
 *
 * libc and libpq, and of the daemon the control grammar (ctlcmd.c)
 * and the config loader (config.c, with scram.c and log.c); the pgmctl_
 * prefix keeps its names apart from control.c's.  The config file is
 * read only when a setting of it is needed, and checked as pgmirror
 * checks it.  Errors
 * go to stderr, one line each; the exit status is 0 or 1.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ctlcmd.h"
#include "pgmirror.h"

#define PGMCTL_ADMIN_DATABASE	"pgmirror"	/* without a config file */
#define PGMCTL_ADMIN_USER	"admin"
#define PGMCTL_ADMIN_PORT		"6432"	/* -H HOST without a port */
#define PGMCTL_ANSWER_MAX		(64 * 1024 * 1024)
#define PGMCTL_READ_TIMEOUT	60	/* s, commands without their own */
#define PGMCTL_GRACE		30	/* s beyond a command's own timeout */
#define PGMCTL_FLEET_TIMEOUT	60	/* s, fleet switchover, as pgmirror's */
#define PGMCTL_DRAIN_POLL_MS	250	/* fleet switchover: SHOW MIRRORS */
#define PGMCTL_CONNECT_TIMEOUT	"10"	/* s, libpq, unless PGCONNECT_TIMEOUT */
#define PGMCTL_FLEET_GRACE		10	/* s, fleet: an answer beyond its wait */
#define PGMCTL_KEEPALIVES_IDLE	"10"	/* s, -H: TCP keepalives */
#define PGMCTL_KEEPALIVES_INTERVAL	"5"
#define PGMCTL_KEEPALIVES_COUNT	"3"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* A table: the header row, then nrows rows, ncols cells each. */
struct pgmctl_table {
	size_t		 ncols;
	size_t		 nrows;
	size_t		 cap;		/* rows, header included, with room */
	char		**cell;
};

#define PGMCTL_CELL(t, r, c)	((t)->cell[(size_t)(r) * (t)->ncols + (c)])

/* An answer: OK, or ERROR and its reason; either may carry a table. */
struct pgmctl_answer {
	int		 ok;
	char		*reason;
	struct pgmctl_table *table;
};

/* Where an instance is in pgmctl_inst_run. */
enum pgmctl_inst_state {
	INST_IDLE,			/* nothing in flight */
	INST_CONNECTING,		/* PQconnectPoll */
	INST_SENDING,			/* libpq holds part of the statement */
	INST_WAITING			/* for the answer */
};

/* One pgmirror instance reached through its admin console (-H). */
struct pgmctl_inst {
	char		*name;		/* HOST:PORT as given */
	char		*host;
	char		*port;
	PGconn		*conn;
	enum pgmctl_inst_state state;
	PostgresPollingStatusType polling;	/* INST_CONNECTING */
	int64_t		 until;		/* ms: given up on then */
	int		 skip;		/* left out of pgmctl_inst_run */
	int		 unanswered;	/* the statement went out, no answer */
	int		 late;		/* given up on at the deadline */
	struct pgmctl_answer ans;	/* of the last statement */
};

/* Output formats. */
enum pgmctl_format {
	FMT_ALIGNED,
	FMT_TABS,			/* -t */
	FMT_JSON			/* -j */
};

static enum pgmctl_format pgmctl_format = FMT_ALIGNED;
static const char	*pgmctl_conffile;	/* -c, or NULL */
static struct pgm_config *pgmctl_conf;	/* once pgmctl_conf_load'ed */
/* Fleet switchover: the signal caught, and a pipe to wake poll with. */
static volatile sig_atomic_t pgmctl_interrupted;
static int		 pgmctl_sigfd[2] = { -1, -1 };

/* Print the usage summary and exit with status. */
static void __attribute__((noreturn))
pgmctl_usage(int status)
{
	FILE		*f = status ? stderr : stdout;
	char		 line[256];
	int		 i;

	fprintf(f, "usage: pgmirrorctl [-hjt] [-c config] [-H host:port,...] "
	    "[-s socket] command\n"
	    "commands:\n");
	for (i = 0; ctlcmd_synopsis(CTLCMD_ARGV, i, line, sizeof(line)) == 0;
	    i++)
		fprintf(f, "  %s\n", line);
	fprintf(f,
	    "options:\n"
	    "  -c config  configuration file (default %s)\n"
	    "  -H hosts   use the admin consoles of these instances\n"
	    "  -j         print tables as JSON\n"
	    "  -s socket  control socket (default %s)\n"
	    "  -t         print tables as tab-separated lines\n"
	    "  -h         print this help and exit\n",
	    PGM_CONFIG_FILE, PGM_CONTROL_SOCKET);
	exit(status);
}

/* Report a command line error, then the usage, and exit 1. */
static void __attribute__((noreturn, format(printf, 1, 2)))
pgmctl_usage_err(const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	pgmctl_usage(1);
}

/* malloc or die. */
static void *
pgmctl_alloc(size_t n)
{
	void		*p;

	if ((p = malloc(n ? n : 1)) == NULL)
		err(1, NULL);
	return p;
}

/* realloc of n elements of size each, or die. */
static void *
pgmctl_realloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		errx(1, "out of memory");
	if ((p = realloc(p, n * size != 0 ? n * size : 1)) == NULL)
		err(1, NULL);
	return p;
}

/* strdup or die. */
static char *
pgmctl_strdup(const char *s)
{
	char		*p;

	if ((p = strdup(s)) == NULL)
		err(1, NULL);
	return p;
}

/* strndup or die. */
static char *
pgmctl_strndup(const char *s, size_t n)
{
	char		*p;

	if ((p = strndup(s, n)) == NULL)
		err(1, NULL);
	return p;
}

/* A malloc'ed printf, or die. */
static char * __attribute__((format(printf, 1, 2)))
pgmctl_printf(const char *fmt, ...)
{
	va_list		 ap;
	char		*s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		err(1, NULL);
	va_end(ap);
	return s;
}

/* Milliseconds on the monotonic clock. */
static int64_t
pgmctl_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turn a multi-line message into one line, in place; drop the end. */
static char *
pgmctl_oneline(char *s)
{
	char		*r, *w;
	size_t		 n;

	for (r = w = s; *r != '\0'; r++) {
		if (*r == '\n' || *r == '\r' || *r == '\t') {
			if (w > s && w[-1] != ' ')
				*w++ = ' ';
		} else
			*w++ = *r;
	}
	*w = '\0';
	n = strlen(s);
	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
	return s;
}

/* --- the config file ------------------------------------------------- */

/* The config file: -c, or the default one. */
static const char *
pgmctl_conf_path(void)
{
	return pgmctl_conffile ? pgmctl_conffile : PGM_CONFIG_FILE;
}

/*
 * Load and check the config file into pgmctl_conf: -c, or the default
 * one.  A missing default file is no error when optional is set:
 * pgmctl_conf stays NULL, and the settings keep their defaults.  -1
 * after printing why, each error on its line.
 */
static int
pgmctl_conf_load(int optional)
{
	static struct pgm_config_errors errs;
	static int	 missing;
	const char	*path = pgmctl_conf_path();
	int		 i;

	if (pgmctl_conf != NULL || missing)
		return 0;
	if (pgmctl_conffile == NULL && optional && access(path, F_OK) == -1 &&
	    errno == ENOENT) {
		missing = 1;
		return 0;
	}
	if ((pgmctl_conf = config_load(path, &errs)) != NULL)
		return 0;
	for (i = 0; i < errs.n; i++)
		if (errs.err[i].line > 0)
			warnx("%s:%d: %s", errs.file, errs.err[i].line,
			    errs.err[i].msg);
		else
			warnx("%s: %s", errs.file, errs.err[i].msg);
	return -1;
}

/* --- tables and answers ---------------------------------------------- */

/* A new table with this header (ncols strings, copied). */
static struct pgmctl_table *
pgmctl_table_new(size_t ncols, const char *const *header)
{
	struct pgmctl_table *t;
	size_t		 i;

	t = pgmctl_alloc(sizeof(*t));
	t->ncols = ncols;
	t->nrows = 0;
	t->cap = 8;
	t->cell = pgmctl_realloc(NULL, t->cap * (ncols ? ncols : 1),
	    sizeof(char *));
	for (i = 0; i < ncols; i++)
		PGMCTL_CELL(t, 0, i) = pgmctl_strdup(header[i]);
	return t;
}

/* Append a row of t->ncols strings (copied). */
static void
pgmctl_table_add(struct pgmctl_table *t, const char *const *row)
{
	size_t		 i;

	if (t->nrows + 1 >= t->cap) {
		t->cap *= 2;
		t->cell = pgmctl_realloc(t->cell, t->cap * (t->ncols ?
		    t->ncols : 1), sizeof(char *));
	}
	t->nrows++;
	for (i = 0; i < t->ncols; i++)
		PGMCTL_CELL(t, t->nrows, i) = pgmctl_strdup(row[i]);
}

/* Free a table. */
static void
pgmctl_table_free(struct pgmctl_table *t)
{
	size_t		 i;

	if (t == NULL)
		return;
	for (i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cell[i]);
	free(t->cell);
	free(t);
}

/* Index of the column named name, or -1. */
static int
pgmctl_table_col(const struct pgmctl_table *t, const char *name)
{
	size_t		 i;

	for (i = 0; i < t->ncols; i++)
		if (strcmp(PGMCTL_CELL(t, 0, i), name) == 0)
			return (int)i;
	return -1;
}

/*
 * Parse tab-separated lines, header first, into a table (ctlcmd.c's
 * format).  NULL if there are fewer than min_rows rows or a row has not
 * as many fields as the header, with *why saying which.
 */
static struct pgmctl_table *
pgmctl_table_parse(const char *text, size_t min_rows, const char **why)
{
	struct pgmctl_table *t;
	const char	*pos = text, *f;
	size_t		 ncols, nrows, i, len;

	if (ctlcmd_table_scan(text, &ncols, &nrows, why) == -1)
		return NULL;
	if (nrows < min_rows) {
		*why = "a header without rows";
		return NULL;
	}
	t = pgmctl_alloc(sizeof(*t));
	t->ncols = ncols;
	t->nrows = nrows;
	t->cap = nrows + 1;
	t->cell = pgmctl_realloc(NULL, t->cap * ncols, sizeof(char *));
	for (i = 0; *pos != '\0'; i++) {
		(void)ctlcmd_table_field(&pos, &f, &len);
		t->cell[i] = pgmctl_strndup(f, len);
	}
	return t;
}

/* Forget an answer. */
static void
pgmctl_answer_clear(struct pgmctl_answer *a)
{
	free(a->reason);
	pgmctl_table_free(a->table);
	memset(a, 0, sizeof(*a));
}

/* Make a an ERROR with this reason, unless it already is one. */
static void __attribute__((format(printf, 2, 3)))
pgmctl_answer_fail(struct pgmctl_answer *a, const char *fmt, ...)
{
	va_list		 ap;

	if (!a->ok && a->reason != NULL)
		return;
	a->ok = 0;
	va_start(ap, fmt);
	if (vasprintf(&a->reason, fmt, ap) == -1)
		err(1, NULL);
	va_end(ap);
	pgmctl_oneline(a->reason);
}

/*
 * Parse a control socket answer of len bytes (buf[len] is a NUL):
 * "OK" or "ERROR reason", then an optional table.  -1 with *why if it
 * is malformed.
 */
static int
pgmctl_answer_parse(char *buf, size_t len, struct pgmctl_answer *a,
    const char **why)
{
	struct ctlcmd_answer ca;

	memset(a, 0, sizeof(*a));
	if (ctlcmd_answer_parse(buf, len, &ca, why) == -1)
		return -1;
	a->ok = ca.ok;
	if (!ca.ok)
		a->reason = pgmctl_strdup(ca.reason);
	if (ca.table != NULL &&
	    (a->table = pgmctl_table_parse(ca.table, 0, why)) == NULL) {
		pgmctl_answer_clear(a);
		return -1;
	}
	return 0;
}

/* --- output ---------------------------------------------------------- */

/* Columns a string takes on a terminal: UTF-8 characters. */
static size_t
pgmctl_width(const char *s)
{
	size_t		 w = 0;

	for (; *s != '\0'; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Spaces owed by pgmctl_pad, printed only if something follows them. */
static size_t	 pgmctl_padding;

/* Print a cell for people or -t: control characters become spaces. */
static void
pgmctl_put(const char *s)
{
	if (*s == '\0')
		return;
	for (; pgmctl_padding > 0; pgmctl_padding--)
		putchar(' ');
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < ' ' || *s == 0x7f ? ' ' : *s);
}

/* Owe n spaces, so that lines never end with spaces. */
static void
pgmctl_pad(size_t n)
{
	pgmctl_padding += n;
}

/* End a line, dropping the spaces still owed. */
static void
pgmctl_endline(void)
{
	pgmctl_padding = 0;
	putchar('\n');
}

/* Is s a number, to be right-aligned? */
static int
pgmctl_numeric(const char *s)
{
	if (*s == '-')
		s++;
	if (!isdigit((unsigned char)*s))
		return 0;
	while (isdigit((unsigned char)*s))
		s++;
	if (*s == '.') {
		if (!isdigit((unsigned char)*++s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

/* Print a table for people: columns padded, numbers to the right. */
static void
pgmctl_print_aligned(const struct pgmctl_table *t)
{
	size_t		*width, r, c, w;
	int		*num;

	width = pgmctl_realloc(NULL, t->ncols, sizeof(*width));
	num = pgmctl_realloc(NULL, t->ncols, sizeof(*num));
	for (c = 0; c < t->ncols; c++) {
		width[c] = 0;
		num[c] = t->nrows > 0;
		for (r = 0; r <= t->nrows; r++) {
			if ((w = pgmctl_width(PGMCTL_CELL(t, r, c))) > width[c])
				width[c] = w;
			if (r > 0 && *PGMCTL_CELL(t, r, c) != '\0' &&
			    !pgmctl_numeric(PGMCTL_CELL(t, r, c)))
				num[c] = 0;
		}
	}
	for (r = 0; r <= t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			w = width[c] - pgmctl_width(PGMCTL_CELL(t, r, c));
			if (c > 0)
				pgmctl_pad(2);
			if (num[c])
				pgmctl_pad(w);
			pgmctl_put(PGMCTL_CELL(t, r, c));
			if (!num[c])
				pgmctl_pad(w);
		}
		pgmctl_endline();
	}
	free(width);
	free(num);
}

/* Print a name/value table for people as "name: value" lines. */
static void
pgmctl_print_list(const struct pgmctl_table *t)
{
	size_t		 r, w, width = 0;

	for (r = 1; r <= t->nrows; r++)
		if ((w = pgmctl_width(PGMCTL_CELL(t, r, 0))) > width)
			width = w;
	for (r = 1; r <= t->nrows; r++) {
		pgmctl_put(PGMCTL_CELL(t, r, 0));
		pgmctl_put(":");
		pgmctl_pad(width - pgmctl_width(PGMCTL_CELL(t, r, 0)) + 1);
		pgmctl_put(PGMCTL_CELL(t, r, 1));
		pgmctl_endline();
	}
}

/* Print a table as tab-separated lines, header first (-t). */
static void
pgmctl_print_tabs(const struct pgmctl_table *t)
{
	size_t		 r, c;

	for (r = 0; r <= t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			if (c > 0)
				putchar('\t');
			pgmctl_put(PGMCTL_CELL(t, r, c));
		}
		pgmctl_endline();
	}
}

/* Length of the valid UTF-8 sequence at p (not ASCII), or 0. */
static size_t
pgmctl_utf8_len(const unsigned char *p)
{
	uint32_t	 cp;
	size_t		 i, n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Print s as a JSON string; invalid UTF-8 becomes U+FFFD. */
static void
pgmctl_json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t		 n;

	putchar('"');
	while (*p != '\0') {
		if (*p == '"' || *p == '\\') {
			putchar('\\');
			putchar(*p++);
		} else if (*p == '\n') {
			fputs("\\n", stdout);
			p++;
		} else if (*p == '\t') {
			fputs("\\t", stdout);
			p++;
		} else if (*p < ' ') {
			printf("\\u%04x", *p++);
		} else if (*p < 0x80) {
			putchar(*p++);
		} else if ((n = pgmctl_utf8_len(p)) > 0) {
			fwrite(p, 1, n, stdout);
			p += n;
		} else {
			fputs("\\ufffd", stdout);
			p++;
		}
	}
	putchar('"');
}

/* Print a table as a JSON array of objects, every value a string (-j). */
static void
pgmctl_print_json(const struct pgmctl_table *t)
{
	size_t		 r, c;

	if (t == NULL || t->nrows == 0) {
		puts("[]");
		return;
	}
	puts("[");
	for (r = 1; r <= t->nrows; r++) {
		fputs("  {", stdout);
		for (c = 0; c < t->ncols; c++) {
			if (c > 0)
				fputs(", ", stdout);
			pgmctl_json_str(PGMCTL_CELL(t, 0, c));
			fputs(": ", stdout);
			pgmctl_json_str(PGMCTL_CELL(t, r, c));
		}
		fputs(r < t->nrows ? "},\n" : "}\n", stdout);
	}
	puts("]");
}

/*
 * Print a table, or NULL for none, in the chosen format.  A table of
 * two columns "name" and "value" (status, show config) is shown to
 * people as "name: value" lines.  Without a table, -j prints an empty
 * array and the other formats nothing.
 */
static void
pgmctl_print(const struct pgmctl_table *t)
{
	if (pgmctl_format == FMT_JSON)
		pgmctl_print_json(t);
	else if (t == NULL)
		return;
	else if (pgmctl_format == FMT_TABS)
		pgmctl_print_tabs(t);
	else if (t->ncols == 2 &&
	    strcmp(PGMCTL_CELL(t, 0, 0), "name") == 0 &&
	    strcmp(PGMCTL_CELL(t, 0, 1), "value") == 0)
		pgmctl_print_list(t);
	else
		pgmctl_print_aligned(t);
	fflush(stdout);
}

/*
 * One table from the tables of several instances: a first column
 * "instance", then the union of their columns in order of first
 * appearance; a cell an instance has no column for is empty.  Only the
 * instances that failed, with failed set.  NULL if no instance has a
 * table.
 */
static struct pgmctl_table *
pgmctl_table_merge(struct pgmctl_inst *in, size_t n, int failed)
{
	struct pgmctl_table *m = NULL, *t;
	const char	**hdr, **row;
	size_t		 i, r, c, ncols = 1, cap = 1;
	int		*map, k, seen = 0;

	hdr = pgmctl_realloc(NULL, cap, sizeof(*hdr));
	hdr[0] = "instance";
	for (i = 0; i < n; i++) {
		if ((t = in[i].ans.table) == NULL || (failed && in[i].ans.ok))
			continue;
		for (c = 0; c < t->ncols; c++) {
			for (k = 0; (size_t)k < ncols; k++)
				if (strcmp(hdr[k], PGMCTL_CELL(t, 0, c)) == 0)
					break;
			if ((size_t)k < ncols)
				continue;
			if (ncols == cap) {
				cap *= 2;
				hdr = pgmctl_realloc(hdr, cap, sizeof(*hdr));
			}
			hdr[ncols++] = PGMCTL_CELL(t, 0, c);
		}
		seen = 1;
	}
	if (!seen) {
		free(hdr);
		return NULL;
	}
	m = pgmctl_table_new(ncols, hdr);
	row = pgmctl_realloc(NULL, ncols, sizeof(*row));
	map = pgmctl_realloc(NULL, ncols, sizeof(*map));
	for (i = 0; i < n; i++) {
		if ((t = in[i].ans.table) == NULL || (failed && in[i].ans.ok))
			continue;
		for (c = 1; c < ncols; c++)
			map[c] = pgmctl_table_col(t, hdr[c]);
		for (r = 1; r <= t->nrows; r++) {
			row[0] = in[i].name;
			for (c = 1; c < ncols; c++)
				row[c] = map[c] >= 0 ?
				    PGMCTL_CELL(t, r, map[c]) : "";
			pgmctl_table_add(m, row);
		}
	}
	free(row);
	free(map);
	free(hdr);
	return m;
}

/* --- the control socket ---------------------------------------------- */

/*
 * Send one request line to the control socket at path and read the
 * answer into a, waiting at most timeout seconds for it (-1: forever).
 * -1 after printing why there is no answer.
 */
static int
pgmctl_sock_call(const char *path, const char *line, int timeout,
    struct pgmctl_answer *a)
{
	struct sockaddr_un sun;
	struct pollfd	 pfd;
	const char	*why;
	char		*buf = NULL;
	size_t		 len = 0, cap = 0, off = 0, linelen = strlen(line);
	ssize_t		 n;
	int64_t		 deadline = 0, left;
	int		 fd, werr = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		warnx("cannot connect to %s: the path is too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		warn("socket");
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		warn("cannot connect to %s", path);
		close(fd);
		return -1;
	}

	/*
	 * The write side stays open: the daemon may take a closed one for
	 * a client that went away.  If the daemon refuses us before
	 * reading, the send fails but its answer may still be there.
	 */
	while (off < linelen) {
		if ((n = send(fd, line + off, linelen - off,
		    MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			werr = errno;
			break;
		}
		off += n;
	}

	if (timeout >= 0)
		deadline = pgmctl_now_ms() + (int64_t)timeout * 1000;
	for (;;) {
		if (cap - len < 4096) {
			if (cap >= PGMCTL_ANSWER_MAX) {
				warnx("the answer from %s is too long", path);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			buf = pgmctl_realloc(buf, cap, 1);
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		left = -1;
		if (timeout >= 0 && (left = deadline - pgmctl_now_ms()) < 0)
			left = 0;
		if ((n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX :
		    (int)left)) == -1) {
			if (errno == EINTR)
				continue;
			warn("poll");
			goto fail;
		}
		if (n == 0) {
			if (pgmctl_now_ms() < deadline)
				continue;
			warnx("no answer from %s within %d seconds", path,
			    timeout);
			goto fail;
		}
		if ((n = read(fd, buf + len, cap - len - 1)) == -1) {
			if (errno == EINTR)
				continue;
			/*
			 * Closed without reading our request (a refused
			 * peer): what it sent before is still the answer.
			 */
			if (errno == ECONNRESET || (len == 0 && werr != 0))
				break;
			warn("cannot read from %s", path);
			goto fail;
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	if (len == 0) {
		if (werr != 0 && werr != EPIPE && werr != ECONNRESET)
			warnx("cannot send to %s: %s", path, strerror(werr));
		else
			warnx("%s closed the connection without answering "
			    "(is this user allowed to use it?)", path);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	if (pgmctl_answer_parse(buf, len, a, &why) == -1) {
		warnx("malformed answer from %s: %s", path, why);
		free(buf);
		return -1;
	}
	free(buf);
	return 0;
fail:
	close(fd);
	free(buf);
	return -1;
}

/* Run a command through the control socket; the exit status. */
static int
pgmctl_local(const char *path, const struct ctlcmd_req *r)
{
	struct pgmctl_answer a;
	char		 line[CTLCMD_LINE_MAX + 1];
	int		 timeout = PGMCTL_READ_TIMEOUT, rc;

	if (path == NULL) {
		path = PGM_CONTROL_SOCKET;
		if (pgmctl_conffile != NULL) {
			if (pgmctl_conf_load(0) == -1)
				return 1;
			path = pgmctl_conf->control_socket;
		}
	}
	/* The newline makes it CTLCMD_LINE_MAX at most. */
	if (ctlcmd_format(r, 0, line, sizeof(line) - 1) == -1) {
		warnx("the request is longer than %d bytes", CTLCMD_LINE_MAX);
		return 1;
	}
	strcat(line, "\n");
	/* --wait and --timeout are at most CTLCMD_SECONDS_MAX. */
	if (r->id == CTLCMD_MAINTENANCE && r->seconds >= 0)
		timeout = (int)r->seconds + PGMCTL_GRACE;
	else if (r->id == CTLCMD_SWITCHOVER)
		timeout = r->seconds >= 0 ? (int)r->seconds + PGMCTL_GRACE : -1;
	if (pgmctl_sock_call(path, line, timeout, &a) == -1)
		return 1;
	if (!a.ok)
		warnx("%s", a.reason);
	if (a.ok || a.table != NULL)
		pgmctl_print(a.table);
	rc = a.ok ? 0 : 1;
	pgmctl_answer_clear(&a);
	return rc;
}

/* --- admin consoles (-H) --------------------------------------------- */

/* Parse -H "HOST[:PORT],..." into instances; NULL after a usage error. */
static struct pgmctl_inst *
pgmctl_inst_parse(const char *list, size_t *np)
{
	struct pgmctl_inst	*in = NULL, *p;
	char		*copy, *tok, *save, *colon, *host;
	size_t		 n = 0;

	copy = pgmctl_strdup(list);
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		in = pgmctl_realloc(in, n + 1, sizeof(*in));
		p = &in[n++];
		memset(p, 0, sizeof(*p));
		p->name = pgmctl_strdup(tok);
		if (tok[0] == '[') {
			if ((colon = strchr(tok, ']')) == NULL ||
			    (colon[1] != '\0' && colon[1] != ':'))
				pgmctl_usage_err("-H: bad address \"%s\"", tok);
			*colon++ = '\0';
			host = tok + 1;
			colon = *colon == ':' ? colon : NULL;
		} else {
			host = tok;
			colon = strrchr(tok, ':');
			if (colon != NULL && strchr(tok, ':') != colon)
				pgmctl_usage_err("-H: write an IPv6 address as "
				    "[ADDRESS]:PORT, not \"%s\"", tok);
		}
		if (colon != NULL)
			*colon++ = '\0';
		if (*host == '\0' || (colon != NULL && (*colon == '\0' ||
		    strspn(colon, "0123456789") != strlen(colon))))
			pgmctl_usage_err("-H: bad address \"%s\"", p->name);
		p->host = pgmctl_strdup(host);
		p->port = pgmctl_strdup(colon ? colon : PGMCTL_ADMIN_PORT);
	}
	free(copy);
	if (n == 0)
		pgmctl_usage_err("-H wants HOST:PORT[,HOST:PORT...]");
	*np = n;
	return in;
}

/* Seconds to connect to an admin console: PGCONNECT_TIMEOUT, or ours. */
static long
pgmctl_connect_timeout(void)
{
	const char	*s = getenv("PGCONNECT_TIMEOUT");
	char		*end;
	long		 v;

	if (s != NULL) {
		errno = 0;
		v = strtol(s, &end, 10);
		/* As libpq: at least 2 s. */
		if (errno == 0 && end != s && *end == '\0' && v > 0)
			return v < 2 ? 2 : v > CTLCMD_SECONDS_MAX ?
			    CTLCMD_SECONDS_MAX : v;
	}
	return atol(PGMCTL_CONNECT_TIMEOUT);
}

/* Close an instance's connection, whatever is in flight on it. */
static void
pgmctl_inst_close(struct pgmctl_inst *p)
{
	if (p->conn != NULL)
		PQfinish(p->conn);
	p->conn = NULL;
	p->state = INST_IDLE;
}

/*
 * Give up on what is in flight at an instance: fail its answer with
 * this reason and close its connection.  A statement sent is marked
 * unanswered: it may have run there, or may still run.
 */
static void __attribute__((format(printf, 2, 3)))
pgmctl_inst_drop(struct pgmctl_inst *p, const char *fmt, ...)
{
	va_list		 ap;
	char		*why;

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) == -1)
		err(1, NULL);
	va_end(ap);
	if (p->state == INST_SENDING || p->state == INST_WAITING)
		p->unanswered = 1;
	pgmctl_answer_fail(&p->ans, "%s", why);
	free(why);
	pgmctl_inst_close(p);
}

/*
 * Start connecting to an instance's admin console, without waiting:
 * pgmctl_inst_run drives PQconnectPoll, which ignores connect_timeout,
 * so the instance gets until to be connected.  With the error in ans
 * if it cannot even start.
 */
static void
pgmctl_inst_start(struct pgmctl_inst *p, int64_t deadline)
{
	const char	*keys[16], *vals[16], *pw;
	int64_t		 limit;
	int		 k = 0;

	keys[k] = "host";
	vals[k++] = p->host;
	keys[k] = "port";
	vals[k++] = p->port;
	keys[k] = "dbname";
	vals[k++] = pgmctl_conf ? pgmctl_conf->admin_database :
	    PGMCTL_ADMIN_DATABASE;
	keys[k] = "user";
	vals[k++] = pgmctl_conf ? pgmctl_conf->admin_user : PGMCTL_ADMIN_USER;
	/* Without one, libpq looks at PGPASSWORD and ~/.pgpass. */
	pw = pgmctl_conf ? pgmctl_conf->admin.plain : NULL;
	if (pw != NULL) {
		keys[k] = "password";
		vals[k++] = pw;
	}
	keys[k] = "fallback_application_name";
	vals[k++] = "pgmirrorctl";
	/* A peer gone without a word is noticed in about 25 s. */
	keys[k] = "keepalives";
	vals[k++] = "1";
	keys[k] = "keepalives_idle";
	vals[k++] = PGMCTL_KEEPALIVES_IDLE;
	keys[k] = "keepalives_interval";
	vals[k++] = PGMCTL_KEEPALIVES_INTERVAL;
	keys[k] = "keepalives_count";
	vals[k++] = PGMCTL_KEEPALIVES_COUNT;
	keys[k] = NULL;
	vals[k] = NULL;
	if ((p->conn = PQconnectStartParams(keys, vals, 0)) == NULL)
		err(1, NULL);
	if (PQstatus(p->conn) == CONNECTION_BAD || PQsocket(p->conn) < 0) {
		pgmctl_answer_fail(&p->ans, "cannot connect: %s",
		    PQerrorMessage(p->conn));
		pgmctl_inst_close(p);
		return;
	}
	/* Before the first PQconnectPoll, wait as for writing. */
	p->state = INST_CONNECTING;
	p->polling = PGRES_POLLING_WRITING;
	limit = pgmctl_now_ms() + (int64_t)pgmctl_connect_timeout() * 1000;
	p->until = limit < deadline ? limit : deadline;
}

/*
 * The reason of an error result, and its table: the DETAIL field when it
 * holds tab-separated lines, header first (so a table of one column is
 * not told from text); otherwise a DETAIL is added to the reason.
 */
static void
pgmctl_inst_error(struct pgmctl_inst *p, const PGresult *res)
{
	const char	*msg, *detail, *why;
	char		*prefix;

	if ((msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) == NULL) {
		msg = PQresultErrorMessage(res);
		if (*msg == '\0')
			msg = PQerrorMessage(p->conn);
		if ((prefix = strstr(msg, ":  ")) != NULL &&
		    prefix - msg < 10)
			msg = prefix + 3;
	}
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	if (detail == NULL || p->ans.table != NULL) {
		pgmctl_answer_fail(&p->ans, "%s", msg);
		return;
	}
	if (strchr(detail, '\t') != NULL &&
	    (p->ans.table = pgmctl_table_parse(detail, 1, &why)) != NULL)
		pgmctl_answer_fail(&p->ans, "%s", msg);
	else
		pgmctl_answer_fail(&p->ans, "%s (%s)", msg, detail);
}

/* Take one result of the statement running at an instance. */
static void
pgmctl_inst_result(struct pgmctl_inst *p, PGresult *res)
{
	struct pgmctl_table *t;
	const char	**row;
	int		 r, c, nc;

	switch (PQresultStatus(res)) {
	case PGRES_TUPLES_OK:
		nc = PQnfields(res);
		row = pgmctl_realloc(NULL, nc, sizeof(*row));
		for (c = 0; c < nc; c++)
			row[c] = PQfname(res, c);
		t = pgmctl_table_new(nc, row);
		for (r = 0; r < PQntuples(res); r++) {
			for (c = 0; c < nc; c++)
				row[c] = PQgetvalue(res, r, c);
			pgmctl_table_add(t, row);
		}
		free(row);
		pgmctl_table_free(p->ans.table);
		p->ans.table = t;
		break;
	case PGRES_COMMAND_OK:
		break;
	case PGRES_FATAL_ERROR:
	case PGRES_NONFATAL_ERROR:
		pgmctl_inst_error(p, res);
		break;
	default:
		pgmctl_answer_fail(&p->ans, "unexpected answer: %s",
		    PQresStatus(PQresultStatus(res)));
		break;
	}
}

/* Send what libpq still holds of the statement. */
static void
pgmctl_inst_flush(struct pgmctl_inst *p)
{
	switch (PQflush(p->conn)) {
	case 0:
		p->state = INST_WAITING;
		break;
	case 1:
		break;
	default:
		pgmctl_inst_drop(p, "cannot send: %s",
		    PQerrorMessage(p->conn));
		break;
	}
}

/* Send the statement to a connected instance; NULL: just connect. */
static void
pgmctl_inst_send(struct pgmctl_inst *p, const char *sql, int64_t deadline)
{
	p->state = INST_IDLE;
	p->until = deadline;
	if (sql == NULL)
		return;
	if (PQsetnonblocking(p->conn, 1) == -1 || !PQsendQuery(p->conn, sql)) {
		pgmctl_answer_fail(&p->ans, "cannot send: %s",
		    PQerrorMessage(p->conn));
		pgmctl_inst_close(p);
		return;
	}
	p->state = INST_SENDING;
	pgmctl_inst_flush(p);
}

/* Go on with a connection attempt whose socket is ready. */
static void
pgmctl_inst_connecting(struct pgmctl_inst *p, const char *sql,
    int64_t deadline)
{
	switch ((p->polling = PQconnectPoll(p->conn))) {
	case PGRES_POLLING_OK:
		pgmctl_inst_send(p, sql, deadline);
		break;
	case PGRES_POLLING_FAILED:
		pgmctl_answer_fail(&p->ans, "cannot connect: %s",
		    PQerrorMessage(p->conn));
		pgmctl_inst_close(p);
		break;
	default:		/* reading or writing */
		break;
	}
}

/* Read what came from an instance whose statement is in flight. */
static void
pgmctl_inst_input(struct pgmctl_inst *p)
{
	PGresult	*res;

	if (!PQconsumeInput(p->conn)) {
		pgmctl_inst_drop(p, "connection lost: %s",
		    PQerrorMessage(p->conn));
		return;
	}
	if (p->state == INST_SENDING)
		pgmctl_inst_flush(p);
	while (p->state == INST_WAITING && !PQisBusy(p->conn)) {
		if ((res = PQgetResult(p->conn)) == NULL) {
			p->state = INST_IDLE;
			break;
		}
		pgmctl_inst_result(p, res);
		PQclear(res);
	}
	/*
	 * After an error that is the end of the connection, the fate of
	 * the statement is not known.
	 */
	if (p->state == INST_IDLE && PQstatus(p->conn) != CONNECTION_OK) {
		if (!p->ans.ok)
			p->unanswered = 1;
		pgmctl_inst_close(p);
	}
}

/*
 * Run one statement at the n instances at once (but those with skip
 * set) and wait for all the answers, each in its in[i].ans, until
 * deadline (ms, pgmctl_now_ms).  Instances not connected yet, or that
 * lost their connection, are connected first, each for at most the
 * connect timeout; sql NULL only connects.  An instance that does not
 * answer by the deadline fails and its connection is closed.  With
 * intr, a SIGINT or SIGTERM ends the wait at once, the instances still
 * in flight failing as interrupted.  The number of failures.
 */
static int
pgmctl_inst_run(struct pgmctl_inst *in, size_t n, const char *sql,
    int64_t deadline, int intr)
{
	struct pgmctl_inst *p;
	struct pollfd	*pfd;
	size_t		*idx, i, k, np;
	int64_t		 start = pgmctl_now_ms(), now, next;
	int		 failed = 0;

	for (i = 0; i < n; i++) {
		p = &in[i];
		if (p->skip)
			continue;
		pgmctl_answer_clear(&p->ans);
		p->ans.ok = 1;
		p->unanswered = p->late = 0;
		p->state = INST_IDLE;
		if (intr && pgmctl_interrupted) {
			pgmctl_answer_fail(&p->ans, "interrupted");
			continue;
		}
		if (p->conn != NULL && PQstatus(p->conn) != CONNECTION_OK)
			pgmctl_inst_close(p);
		if (p->conn != NULL)
			pgmctl_inst_send(p, sql, deadline);
		else
			pgmctl_inst_start(p, deadline);
	}

	pfd = pgmctl_realloc(NULL, n + 1, sizeof(*pfd));
	idx = pgmctl_realloc(NULL, n + 1, sizeof(*idx));
	for (;;) {
		now = pgmctl_now_ms();
		next = INT64_MAX;
		for (i = np = 0; i < n; i++) {
			p = &in[i];
			if (p->skip || p->state == INST_IDLE)
				continue;
			if (intr && pgmctl_interrupted) {
				pgmctl_inst_drop(p, "interrupted");
				continue;
			}
			if (now >= p->until) {
				p->late = 1;
				if (p->state == INST_CONNECTING)
					pgmctl_inst_drop(p, "cannot connect: "
					    "no answer within %lld s",
					    (long long)(p->until - start +
					    500) / 1000);
				else
					pgmctl_inst_drop(p, "no answer within "
					    "%lld s; connection closed",
					    (long long)(p->until - start +
					    500) / 1000);
				continue;
			}
			if (p->until < next)
				next = p->until;
			pfd[np].fd = PQsocket(p->conn);
			if (p->state == INST_CONNECTING)
				pfd[np].events = p->polling ==
				    PGRES_POLLING_READING ? POLLIN : POLLOUT;
			else if (p->state == INST_SENDING)
				pfd[np].events = POLLIN | POLLOUT;
			else
				pfd[np].events = POLLIN;
			pfd[np].revents = 0;
			idx[np++] = i;
		}
		if (np == 0)
			break;
		if (intr && pgmctl_sigfd[0] != -1) {
			pfd[np].fd = pgmctl_sigfd[0];
			pfd[np].events = POLLIN;
			pfd[np].revents = 0;
			idx[np++] = n;
		}
		if (poll(pfd, np, next - now > INT_MAX ? INT_MAX :
		    (int)(next - now)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		for (k = 0; k < np; k++) {
			if (pfd[k].revents == 0 || idx[k] == n)
				continue;
			p = &in[idx[k]];
			if (p->state == INST_CONNECTING)
				pgmctl_inst_connecting(p, sql, deadline);
			else if (p->state == INST_SENDING &&
			    (pfd[k].revents & (POLLIN | POLLERR | POLLHUP)) == 0)
				pgmctl_inst_flush(p);
			else
				pgmctl_inst_input(p);
		}
	}
	free(pfd);
	free(idx);
	for (i = 0; i < n; i++)
		failed += !in[i].skip && !in[i].ans.ok;
	return failed;
}

/*
 * Print the failures of the last statement, one line each, and the
 * tables that came with them.  The number of failures.
 */
static int
pgmctl_inst_report(struct pgmctl_inst *in, size_t n)
{
	struct pgmctl_table *t;
	size_t		 i;
	int		 failed = 0;

	for (i = 0; i < n; i++)
		if (!in[i].ans.ok) {
			warnx("%s: %s", in[i].name, in[i].ans.reason);
			failed++;
		}
	if (failed && (t = pgmctl_table_merge(in, n, 1)) != NULL) {
		pgmctl_print(t);
		pgmctl_table_free(t);
	}
	return failed;
}

/* --- fleet switchover ------------------------------------------------ */

/* SIGINT and SIGTERM: note it, and wake the poll of pgmctl_inst_run. */
static void
pgmctl_on_signal(int sig)
{
	int		 saved = errno;

	pgmctl_interrupted = sig;
	if (pgmctl_sigfd[1] != -1 && write(pgmctl_sigfd[1], "", 1) == -1) {
		/* full: it is readable already */
	}
	errno = saved;
}

/* From now on, SIGINT and SIGTERM set pgmctl_interrupted. */
static void
pgmctl_catch_signals(void)
{
	struct sigaction sa;
	int		 i;

	if (pipe(pgmctl_sigfd) == -1)
		err(1, "pipe");
	for (i = 0; i < 2; i++)
		if (fcntl(pgmctl_sigfd[i], F_SETFL, O_NONBLOCK) == -1 ||
		    fcntl(pgmctl_sigfd[i], F_SETFD, FD_CLOEXEC) == -1)
			err(1, "fcntl");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pgmctl_on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;		/* no SA_RESTART: poll returns */
	if (sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1)
		err(1, "sigaction");
}

/* Sleep ms milliseconds, or less if a signal is caught. */
static void
pgmctl_nap(int64_t ms)
{
	struct pollfd	 pfd;

	pfd.fd = pgmctl_sigfd[0];
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (!pgmctl_interrupted)
		poll(&pfd, pgmctl_sigfd[0] != -1, ms > INT_MAX ? INT_MAX :
		    (int)ms);
}

/*
 * The names of the instances whose mark is one of those in which,
 * joined by sep: "a, b" to read, "a,b" for -H.  "" if there are none.
 */
static char *
pgmctl_names(const struct pgmctl_inst *in, size_t n, const char *mark,
    const char *which, const char *sep)
{
	size_t		 i, len = 1;
	char		*s;

	for (i = 0; i < n; i++)
		len += strlen(in[i].name) + strlen(sep);
	s = pgmctl_alloc(len);
	s[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strchr(which, mark[i]) == NULL)
			continue;
		if (s[0] != '\0')
			strcat(s, sep);
		strcat(s, in[i].name);
	}
	return s;
}

/* A progress line of the fleet switchover, on stderr. */
static void __attribute__((format(printf, 1, 2)))
pgmctl_progress(const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The deadline of a step that only waits for its answer. */
static int64_t
pgmctl_grace(void)
{
	return pgmctl_now_ms() + (int64_t)PGMCTL_FLEET_GRACE * 1000;
}

/*
 * Fleet switchover: turn maintenance off everywhere after a failure or
 * an interruption at step, each instance given PGMCTL_FLEET_GRACE
 * seconds, so that one that does not answer holds up none of the
 * others.
 */
static int
pgmctl_fleet_rollback(struct pgmctl_inst *in, size_t n, const char *step)
{
	const char	*how = pgmctl_interrupted ? "interrupted" : "failed";
	char		*mark, *late;
	size_t		 i;
	int		 failed;

	/*
	 * A MAINTENANCE ON given up on may still run where maintenance
	 * is turned off now, later.
	 */
	mark = pgmctl_alloc(n);
	for (i = 0; i < n; i++)
		mark[i] = strcmp(step, "pause") == 0 && in[i].late &&
		    in[i].unanswered ? 'l' : '-';
	pgmctl_progress("resume: %zu instances (rolling back)", n);
	failed = pgmctl_inst_run(in, n, "MAINTENANCE OFF;", pgmctl_grace(), 0);
	for (i = 0; i < n; i++)
		if (!in[i].ans.ok)
			mark[i] = '-';
	late = pgmctl_names(in, n, mark, "l", ",");
	if (failed) {
		pgmctl_inst_report(in, n);
		warnx("switchover %s at %s; maintenance may still be on "
		    "at the instances named above", how, step);
	} else
		warnx("switchover %s at %s; maintenance is off again", how,
		    step);
	if (*late != '\0')
		warnx("%s did not answer MAINTENANCE ON in time: should it "
		    "still run it, maintenance would be on there again; "
		    "check with \"pgmirrorctl -H %s status\"", late, late);
	free(mark);
	free(late);
	return 1;
}

/*
 * Fleet switchover: wait until the queue_length of every mirror of
 * every instance is 0, or fail at deadline naming what is still queued.
 * -1 also when interrupted.
 */
static int
pgmctl_fleet_drain(struct pgmctl_inst *in, size_t n, int64_t deadline)
{
	struct pgmctl_table *t;
	const char	*sname, *dname;
	size_t		 i, r, pending;
	int64_t		 now, nap;
	int		 q, src, dst, late;

	for (;;) {
		if (pgmctl_interrupted)
			return -1;
		if (pgmctl_inst_run(in, n, "SHOW MIRRORS;", deadline +
		    (int64_t)PGMCTL_FLEET_GRACE * 1000, 1) != 0) {
			pgmctl_inst_report(in, n);
			return -1;
		}
		if (pgmctl_interrupted)
			return -1;
		now = pgmctl_now_ms();
		late = now >= deadline;
		pending = 0;
		for (i = 0; i < n; i++) {
			if ((t = in[i].ans.table) == NULL ||
			    (q = pgmctl_table_col(t, "queue_length")) == -1) {
				warnx("%s: SHOW MIRRORS has no queue_length "
				    "column", in[i].name);
				return -1;
			}
			src = pgmctl_table_col(t, "source");
			dst = pgmctl_table_col(t, "destination");
			for (r = 1; r <= t->nrows; r++) {
				if (strcmp(PGMCTL_CELL(t, r, q), "0") == 0)
					continue;
				pending++;
				if (!late)
					continue;
				sname = src >= 0 ? PGMCTL_CELL(t, r, src) : "?";
				dname = dst >= 0 ? PGMCTL_CELL(t, r, dst) : "?";
				warnx("%s: mirror %s -> %s not drained: "
				    "queue_length %s", in[i].name, sname,
				    dname, PGMCTL_CELL(t, r, q));
			}
		}
		if (pending == 0)
			return 0;
		if (late)
			return -1;
		nap = deadline - now;
		if (nap > PGMCTL_DRAIN_POLL_MS)
			nap = PGMCTL_DRAIN_POLL_MS;
		pgmctl_nap(nap);
	}
}

/*
 * Fleet switchover: the reload failed at some instances.  If none may
 * have reloaded, roll back.  Otherwise retry once where it failed; if
 * some still did not reload, fail closed: maintenance stays on
 * everywhere (turning it off would send the clients of a database to
 * the old server from some instances and to the new one from others),
 * and say which instance runs which configuration and what to do.
 * 0 if all have reloaded in the end, else the exit status.
 */
static int
pgmctl_fleet_reload_failed(struct pgmctl_inst *in, size_t n)
{
	char		*mark, *reloaded, *old, *unknown, *unknown_h;
	char		*redo, *undo, *all, *ctl;
	size_t		 i, nnew = 0, nunknown = 0;

	pgmctl_inst_report(in, n);
	/* n: new configuration, o: old one, u: not known */
	mark = pgmctl_alloc(n);
	for (i = 0; i < n; i++) {
		mark[i] = in[i].ans.ok ? 'n' : in[i].unanswered ? 'u' : 'o';
		nnew += mark[i] == 'n';
		nunknown += mark[i] == 'u';
	}
	if (nnew == 0 && nunknown == 0) {
		free(mark);
		warnx("no instance reloaded: none changed its "
		    "configuration");
		return pgmctl_fleet_rollback(in, n, "reload");
	}

	pgmctl_progress("reload: retrying at %zu instance%s", n - nnew,
	    n - nnew == 1 ? "" : "s");
	for (i = 0; i < n; i++)
		in[i].skip = mark[i] == 'n';
	pgmctl_inst_run(in, n, "RELOAD;", pgmctl_grace(), 0);
	for (i = 0; i < n; i++) {
		if (in[i].skip) {
			in[i].skip = 0;
			continue;
		}
		if (in[i].ans.ok) {
			mark[i] = 'n';
			nnew++;
			continue;
		}
		warnx("%s: %s", in[i].name, in[i].ans.reason);
		if (in[i].unanswered)
			mark[i] = 'u';
	}
	if (nnew == n) {
		free(mark);
		return 0;
	}

	ctl = pgmctl_conffile != NULL ? pgmctl_printf("pgmirrorctl -c %s",
	    pgmctl_conffile) : pgmctl_strdup("pgmirrorctl");
	reloaded = pgmctl_names(in, n, mark, "n", ", ");
	old = pgmctl_names(in, n, mark, "o", ", ");
	unknown = pgmctl_names(in, n, mark, "u", ", ");
	unknown_h = pgmctl_names(in, n, mark, "u", ",");
	redo = pgmctl_names(in, n, mark, "ou", ",");
	undo = pgmctl_names(in, n, mark, "nu", ",");
	all = pgmctl_names(in, n, mark, "nou", ",");
	warnx("switchover failed at reload, %s at some instances only: "
	    "MAINTENANCE STAYS ON at all of them, so that no database is "
	    "sent to the old server by some and to the new one by others",
	    nnew == 0 ? "maybe done" : "done");
	if (*reloaded != '\0')
		warnx("running the new configuration: %s", reloaded);
	if (*old != '\0')
		warnx("running the old configuration: %s", old);
	if (*unknown != '\0')
		warnx("not known (RELOAD unanswered; see the generation in "
		    "\"%s -H %s status\"): %s", ctl, unknown_h, unknown);
	warnx("to go forward, fix the configuration file at %s%s%s, then "
	    "run \"%s -H %s reload\" and \"%s -H %s maintenance off\"", old,
	    *old && *unknown ? ", " : "", unknown, ctl, redo, ctl, all);
	warnx("or, to go back, put the old configuration file back at all "
	    "of them, then run \"%s -H %s reload\" and \"%s -H %s "
	    "maintenance off\"", ctl, undo, ctl, all);
	free(ctl);
	free(mark);
	free(reloaded);
	free(old);
	free(unknown);
	free(unknown_h);
	free(redo);
	free(undo);
	free(all);
	return 1;
}

/*
 * Switch several instances over together, through their admin consoles:
 * check the configs, pause, drain the mirrors, sync the sequences if
 * asked, reload, resume.  Every step has a deadline; a failure, or a
 * SIGINT or SIGTERM, before the reload turns maintenance off
 * everywhere; a reload done at some instances only keeps it on.
 */
static int
pgmctl_fleet_switchover(struct pgmctl_inst *in, size_t n,
    const struct ctlcmd_req *r)
{
	long		 timeout = r->seconds >= 0 ? r->seconds :
			    PGMCTL_FLEET_TIMEOUT;
	int64_t		 start = pgmctl_now_ms(), deadline;
	char		 sql[64];

	deadline = start + (int64_t)timeout * 1000;
	pgmctl_catch_signals();
	if (pgmctl_inst_run(in, n, NULL, start +
	    (int64_t)pgmctl_connect_timeout() * 1000, 1) != 0 ||
	    pgmctl_interrupted) {
		if (pgmctl_interrupted)
			warnx("switchover interrupted; nothing was changed");
		else {
			pgmctl_inst_report(in, n);
			warnx("switchover stopped; nothing was changed");
		}
		return 1;
	}

	pgmctl_progress("check: %zu instances", n);
	if (pgmctl_inst_run(in, n, "RELOAD CHECK;", pgmctl_grace(), 1) != 0 ||
	    pgmctl_interrupted) {
		if (pgmctl_interrupted)
			warnx("switchover interrupted at check; nothing was "
			    "changed");
		else {
			pgmctl_inst_report(in, n);
			warnx("switchover stopped at check; nothing was "
			    "changed");
		}
		return 1;
	}

	pgmctl_progress("pause: %zu instances, waiting up to %ld s", n,
	    timeout);
	snprintf(sql, sizeof(sql), "MAINTENANCE ON WAIT %ld;", timeout);
	if (pgmctl_inst_run(in, n, sql, deadline +
	    (int64_t)PGMCTL_FLEET_GRACE * 1000, 1) != 0) {
		pgmctl_inst_report(in, n);
		return pgmctl_fleet_rollback(in, n, "pause");
	}
	if (pgmctl_interrupted)
		return pgmctl_fleet_rollback(in, n, "pause");

	pgmctl_progress("drain: %zu instances", n);
	if (pgmctl_fleet_drain(in, n, deadline) == -1)
		return pgmctl_fleet_rollback(in, n, "drain");

	if (r->opts & CTLCMD_OPT_SYNC) {
		pgmctl_progress("sync sequences: %s", in[0].name);
		if (pgmctl_inst_run(in, 1, "SYNC SEQUENCES;", pgmctl_now_ms() +
		    ((int64_t)timeout + PGMCTL_FLEET_GRACE) * 1000, 1) != 0) {
			pgmctl_inst_report(in, 1);
			return pgmctl_fleet_rollback(in, n, "sync sequences");
		}
		if (pgmctl_interrupted)
			return pgmctl_fleet_rollback(in, n, "sync sequences");
	}

	/* From here on, a signal no longer stops the switchover. */
	pgmctl_progress("reload: %zu instances", n);
	if (pgmctl_inst_run(in, n, "RELOAD;", pgmctl_grace(), 0) != 0 &&
	    pgmctl_fleet_reload_failed(in, n) != 0)
		return 1;

	pgmctl_progress("resume: %zu instances", n);
	if (pgmctl_inst_run(in, n, "MAINTENANCE OFF;", pgmctl_grace(),
	    0) != 0) {
		pgmctl_inst_report(in, n);
		warnx("switched over, but maintenance is still on at the "
		    "instances named above");
		return 1;
	}
	pgmctl_progress("switchover done in %.1f s%s",
	    (double)(pgmctl_now_ms() - start) / 1000, pgmctl_interrupted ?
	    " (the signal came after the reload had begun)" : "");
	return 0;
}

/* Run a command through the admin consoles of -H; the exit status. */
static int
pgmctl_remote(const char *hosts, const struct ctlcmd_req *r)
{
	struct pgmctl_inst	*in;
	struct pgmctl_table *t;
	char		 sql[CTLCMD_LINE_MAX];
	size_t		 i, n;
	long		 timeout = PGMCTL_READ_TIMEOUT;
	int		 failed;

	in = pgmctl_inst_parse(hosts, &n);
	if (pgmctl_conf_load(1) == -1)
		return 1;
	if (ctlcmd_format(r, 1, sql, sizeof(sql)) == -1) {
		warnx("the statement is longer than %d bytes", CTLCMD_LINE_MAX);
		return 1;
	}
	/* As through the control socket, but never forever. */
	if (r->id == CTLCMD_MAINTENANCE && r->seconds >= 0)
		timeout = r->seconds + PGMCTL_GRACE;
	else if (r->id == CTLCMD_SWITCHOVER)
		timeout = (r->seconds >= 0 ? r->seconds :
		    PGMCTL_FLEET_TIMEOUT) + PGMCTL_GRACE;
	if (r->id == CTLCMD_SWITCHOVER && n > 1)
		failed = pgmctl_fleet_switchover(in, n, r);
	else {
		pgmctl_inst_run(in, n, sql, pgmctl_now_ms() +
		    (int64_t)timeout * 1000, 0);
		for (i = failed = 0; i < n; i++)
			if (!in[i].ans.ok) {
				if (n > 1)
					warnx("%s: %s", in[i].name,
					    in[i].ans.reason);
				else
					warnx("%s", in[i].ans.reason);
				failed++;
			}
		if (n > 1)
			t = pgmctl_table_merge(in, n, 0);
		else {
			t = in[0].ans.table;
			in[0].ans.table = NULL;
		}
		if (t != NULL || !failed)
			pgmctl_print(t);
		pgmctl_table_free(t);
	}
	for (i = 0; i < n; i++) {
		pgmctl_inst_close(&in[i]);
		pgmctl_answer_clear(&in[i].ans);
		free(in[i].name);
		free(in[i].host);
		free(in[i].port);
	}
	free(in);
	return failed ? 1 : 0;
}

/* --- verify ---------------------------------------------------------- */

/* One side of verify: a databases entry and a connection to it. */
struct pgmctl_side {
	const char	*label;		/* "source", "destination" */
	const char	*entry;		/* databases entry name */
	PGconn		*conn;
	char		**tables;	/* quoted schema.table, sorted */
	size_t		 ntables;
};

/* Sessions settings that make the text of a row the same everywhere. */
static const char pgmctl_verify_setup[] =
    "SET search_path = pg_catalog; "
    "SET default_transaction_read_only = on; "
    "SET DateStyle = 'ISO, MDY'; "
    "SET IntervalStyle = 'postgres'; "
    "SET TimeZone = 'UTC'; "
    "SET extra_float_digits = 3; "
    "SET bytea_output = 'hex'; "
    "SET lc_monetary = 'C';";

/* The user tables, schema-qualified and quoted. */
static const char pgmctl_verify_tables[] =
    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) "
    "FROM pg_catalog.pg_tables "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
    "AND schemaname !~ '^pg_(toast_)?temp_'";

/* Compare two strings through pointers to them, for qsort. */
static int
pgmctl_strpcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * libpq's sslmode for a databases entry: its tls_mode, else
 * tls.server_mode; NULL (libpq's default) when neither says more than
 * "disable", which is also what pgmirror does without either.
 */
static const char *
pgmctl_verify_sslmode(const struct pgm_database *d)
{
	static const char *const modes[] = { "disable", "allow", "prefer",
	    "require", "verify-ca", "verify-full" };
	int		 m;

	if (d->tls_mode >= 0)
		m = d->tls_mode;
	else if ((m = pgmctl_conf->tls_server_mode) == TLS_DISABLE)
		return NULL;
	return m >= 0 && (size_t)m < nitems(modes) ? modes[m] : NULL;
}

/*
 * Connect one side of verify as user, with its users entry's plain
 * password if it has one, and list its tables.  -1 after saying why.
 */
static int
pgmctl_verify_open(struct pgmctl_side *s, const char *user)
{
	const struct pgm_config *cf = pgmctl_conf;
	const struct pgm_database *d;
	const char	*keys[14], *vals[14], *mode;
	char		 port[16];
	PGresult	*res;
	int		 k = 0, i, db, u;

	db = config_find_database(cf, s->entry);
	d = &cf->databases[db];
	u = config_find_user(cf, user, db);
	snprintf(port, sizeof(port), "%d", d->port);
	keys[k] = "host";
	vals[k++] = d->host;
	keys[k] = "port";
	vals[k++] = port;
	keys[k] = "dbname";
	vals[k++] = d->dbname;
	keys[k] = "user";
	vals[k++] = user;
	if (u >= 0 && cf->users[u].plain != NULL) {
		keys[k] = "password";
		vals[k++] = cf->users[u].plain;
	}
	if ((mode = pgmctl_verify_sslmode(d)) != NULL) {
		keys[k] = "sslmode";
		vals[k++] = mode;
	}
	if ((vals[k] = cf->tls_ca_file) != NULL)
		keys[k++] = "sslrootcert";
	if ((vals[k] = cf->tls_server_cert_file) != NULL)
		keys[k++] = "sslcert";
	if ((vals[k] = cf->tls_server_key_file) != NULL)
		keys[k++] = "sslkey";
	keys[k] = "fallback_application_name";
	vals[k++] = "pgmirrorctl verify";
	keys[k] = "client_encoding";
	vals[k++] = "UTF8";
	if (getenv("PGCONNECT_TIMEOUT") == NULL) {
		keys[k] = "connect_timeout";
		vals[k++] = PGMCTL_CONNECT_TIMEOUT;
	}
	keys[k] = NULL;
	vals[k] = NULL;
	if ((s->conn = PQconnectdbParams(keys, vals, 0)) == NULL)
		err(1, NULL);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		warnx("cannot connect to %s \"%s\" (%s port %s, database %s, "
		    "user %s): %s", s->label, s->entry, d->host, port, d->dbname,
		    user,
		    pgmctl_oneline(PQerrorMessage(s->conn)));
		return -1;
	}
	res = PQexec(s->conn, pgmctl_verify_setup);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		warnx("%s: %s", s->label,
		    pgmctl_oneline(PQresultErrorMessage(res)));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	res = PQexec(s->conn, pgmctl_verify_tables);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		warnx("%s: cannot list the tables: %s", s->label,
		    pgmctl_oneline(PQresultErrorMessage(res)));
		PQclear(res);
		return -1;
	}
	s->ntables = PQntuples(res);
	s->tables = pgmctl_realloc(NULL, s->ntables, sizeof(char *));
	for (i = 0; i < (int)s->ntables; i++)
		s->tables[i] = pgmctl_strdup(PQgetvalue(res, i, 0));
	PQclear(res);
	qsort(s->tables, s->ntables, sizeof(char *), pgmctl_strpcmp);
	return 0;
}

/*
 * Count the rows of a table on one side and, with checksum, the md5 of
 * its rows: the md5 of the concatenated md5s of the rows' text, in
 * byte order, so that neither the physical order nor the collation
 * matters.  0, or -1 after saying why.
 */
static int
pgmctl_verify_table(struct pgmctl_side *s, const char *table, int checksum,
    char **rows, char **md5)
{
	PGresult	*res;
	char		*sql;
	int		 rc = -1;

	if (checksum)
		sql = pgmctl_printf("SELECT count(*), md5(coalesce("
		    "string_agg(h, '' ORDER BY h COLLATE \"C\"), '')) FROM "
		    "(SELECT md5(ROW(r.*)::text) AS h FROM %s AS r) AS s",
		    table);
	else
		sql = pgmctl_printf("SELECT count(*) FROM %s", table);
	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*rows = pgmctl_strdup(PQgetvalue(res, 0, 0));
		if (checksum)
			*md5 = pgmctl_strdup(PQgetvalue(res, 0, 1));
		rc = 0;
	} else
		warnx("%s: %s: %s", s->label, table,
		    pgmctl_oneline(PQresultErrorMessage(res)));
	PQclear(res);
	free(sql);
	return rc;
}

/*
 * The user name verify logs in with: the first one with users entries
 * usable for both databases, else the first one usable for the source.
 */
static const char *
pgmctl_verify_user(int src, int dst)
{
	const struct pgm_config *cf = pgmctl_conf;
	const char	*name, *first = NULL;
	int		 i;

	for (i = 0; i < cf->nusers; i++) {
		name = cf->users[i].name;
		if (config_find_user(cf, name, src) == -1)
			continue;
		if (config_find_user(cf, name, dst) != -1)
			return name;
		if (first == NULL)
			first = name;
	}
	return first;
}

/* Compare the tables of two databases of the config; the exit status. */
static int
pgmctl_verify(const struct ctlcmd_req *r)
{
	struct pgmctl_side	 side[2];
	struct pgmctl_table *t;
	const char	*user, *row[6], *name, *status;
	char		*rows[2], *md5[2];
	size_t		 i[2], k, nc;
	int		 checksum = (r->opts & CTLCMD_OPT_CHECKSUM) != 0;
	int		 c, have[2], db[2], bad = 0, rc = 1;

	if (pgmctl_conf_load(0) == -1)
		return 1;
	memset(side, 0, sizeof(side));
	side[0].label = "source";
	side[0].entry = r->arg[0];
	side[1].label = "destination";
	side[1].entry = r->arg[1];
	for (k = 0; k < 2; k++)
		if ((db[k] = config_find_database(pgmctl_conf,
		    side[k].entry)) == -1) {
			warnx("%s: no databases entry \"%s\" with a host",
			    pgmctl_conf_path(), side[k].entry);
			return 1;
		}
	if ((user = pgmctl_verify_user(db[0], db[1])) == NULL) {
		warnx("%s: no users entry for database \"%s\"",
		    pgmctl_conf_path(), r->arg[0]);
		return 1;
	}
	for (k = 0; k < 2; k++)
		if (pgmctl_verify_open(&side[k], user) == -1)
			goto out;

	nc = 0;
	row[nc++] = "table";
	row[nc++] = "source_rows";
	row[nc++] = "destination_rows";
	if (checksum) {
		row[nc++] = "source_md5";
		row[nc++] = "destination_md5";
	}
	row[nc++] = "status";
	t = pgmctl_table_new(nc, row);
	i[0] = i[1] = 0;
	while (i[0] < side[0].ntables || i[1] < side[1].ntables) {
		/* Walk both sorted lists: the smaller name, or both. */
		if (i[1] >= side[1].ntables)
			c = -1;
		else if (i[0] >= side[0].ntables)
			c = 1;
		else
			c = strcmp(side[0].tables[i[0]],
			    side[1].tables[i[1]]);
		have[0] = c <= 0;
		have[1] = c >= 0;
		name = have[0] ? side[0].tables[i[0]] : side[1].tables[i[1]];
		status = NULL;
		for (k = 0; k < 2; k++) {
			rows[k] = md5[k] = NULL;
			if (have[k] && pgmctl_verify_table(&side[k], name,
			    checksum, &rows[k], &md5[k]) == -1)
				status = "error";
			if (have[k])
				i[k]++;
		}
		if (status == NULL) {
			if (!have[0] || !have[1])
				status = "missing";
			else if (strcmp(rows[0], rows[1]) != 0 || (checksum &&
			    strcmp(md5[0], md5[1]) != 0))
				status = "DIFFERENT";
			else
				status = "same";
		}
		bad += strcmp(status, "same") != 0;
		nc = 0;
		row[nc++] = name;
		row[nc++] = rows[0] ? rows[0] : "";
		row[nc++] = rows[1] ? rows[1] : "";
		if (checksum) {
			row[nc++] = md5[0] ? md5[0] : "";
			row[nc++] = md5[1] ? md5[1] : "";
		}
		row[nc++] = status;
		pgmctl_table_add(t, row);
		for (k = 0; k < 2; k++) {
			free(rows[k]);
			free(md5[k]);
		}
	}
	pgmctl_print(t);
	pgmctl_table_free(t);
	rc = bad ? 1 : 0;
out:
	for (k = 0; k < 2; k++) {
		if (side[k].conn != NULL)
			PQfinish(side[k].conn);
		for (i[0] = 0; i[0] < side[k].ntables; i[0]++)
			free(side[k].tables[i[0]]);
		free(side[k].tables);
	}
	return rc;
}

/* --- main ------------------------------------------------------------ */

/* Parse the options and run the command. */
int
main(int argc, char *argv[])
{
	struct ctlcmd_req req;
	char		 why[512];
	const char	*sock = NULL, *hosts = NULL;
	int		 ch, rc;

	log_setproc("pgmirrorctl", -1);	/* should config.c say a word */
	/* "+": stop at the command, whose own options start with "--". */
	while ((ch = getopt(argc, argv, "+c:hH:js:t")) != -1) {
		switch (ch) {
		case 'c':
			pgmctl_conffile = optarg;
			break;
		case 'H':
			hosts = optarg;
			break;
		case 'j':
			if (pgmctl_format == FMT_TABS)
				pgmctl_usage_err("choose -j or -t");
			pgmctl_format = FMT_JSON;
			break;
		case 's':
			sock = optarg;
			break;
		case 't':
			if (pgmctl_format == FMT_JSON)
				pgmctl_usage_err("choose -j or -t");
			pgmctl_format = FMT_TABS;
			break;
		case 'h':
			pgmctl_usage(0);
		default:
			pgmctl_usage(1);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		pgmctl_usage(1);
	if (sock != NULL && hosts != NULL)
		pgmctl_usage_err("-s and -H do not go together");
	if (ctlcmd_parse(argc, argv, CTLCMD_ARGV, &req, why, sizeof(why)) == -1)
		pgmctl_usage_err("%s", why);
	if (req.id == CTLCMD_VERIFY) {
		if (sock != NULL || hosts != NULL)
			pgmctl_usage_err("verify reads the config file; "
			    "it takes no -s or -H");
		rc = pgmctl_verify(&req);
	} else if (hosts != NULL)
		rc = pgmctl_remote(hosts, &req);
	else
		rc = pgmctl_local(sock, &req);
	config_free(pgmctl_conf);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warn("stdout");
		rc = 1;
	}
	return rc;
}
