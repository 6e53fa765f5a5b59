/*
 * ctlcmd.c: the control grammar, one table for all who speak it.
 *
 * Owns the commands of the control socket and of pgmirrorctl: their
 * second words, arguments and options (ctlcmd_cmds and ctlcmd_opts;
 * OpenBSD relayctl's token table is the model), and the ways a command
 * is written:
 *
 *  - a request line of the control socket, "maintenance on appdb
 *    --wait 10": exact words, options after the arguments.  control.c
 *    parses it; admin.c and pgmirrorctl write it.
 *  - pgmirrorctl's command line: every word and option may be a unique
 *    prefix ("maint on --w 10"), options go anywhere, "--wait=10" is
 *    "--wait 10", "--" ends the options.
 *  - a statement of the admin console, "MAINTENANCE ON appdb WAIT 10;":
 *    admin.c turns it into a request line (ctlcmd_from_sql), pgmirrorctl
 *    -H writes it (ctlcmd_format).
 *
 * The error messages of the two dialects differ where their users do:
 * pgmirrorctl lists the words that would fit; the socket answers as it
 * always has (t/170_control.t holds some of them).
 *
 * And the answer (see ctlcmd.h): control.c writes it with ctlcmd_clean
 * keeping fields whole, admin.c and pgmirrorctl read it with
 * ctlcmd_answer_parse and ctlcmd_table_field.
 *
 * Pure: no I/O and no allocation, so t/unit/test_ctlcmd drives it
 * alone; compiled into both pgmirror and pgmirrorctl.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ctlcmd.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* Where a command is known (ctlcmd_def.flags). */
#define CTLCMD_F_REQUEST	0x01	/* a request of the control socket */
#define CTLCMD_F_ARGV		0x02	/* a command of pgmirrorctl */
/* How the socket answers a malformed request of it. */
#define CTLCMD_F_WHAT		0x04	/* a wrong second word: "show what?" */
#define CTLCMD_F_USAGE		0x08	/* any error: its usage */

#define CTLCMD_OPT_SECONDS	(CTLCMD_OPT_WAIT | CTLCMD_OPT_TIMEOUT)

/* The most positional words pgmirrorctl takes after a command. */
#define CTLCMD_ARGV_POS		3

/* A second word and what it stands for (ctlcmd_req.sub). */
struct ctlcmd_word {
	const char	*name;
	int		 value;
};

/* An option: "--name", or "--name SECONDS". */
struct ctlcmd_opt {
	const char	*name;
	int		 flag;		/* CTLCMD_OPT_* */
	int		 seconds;	/* takes a number of seconds */
};

/* A command. */
struct ctlcmd_def {
	const char	*name;
	enum ctlcmd_id	 id;
	int		 flags;		/* CTLCMD_F_* */
	const struct ctlcmd_word *words; /* its second word, or NULL */
	int		 minargs;	/* arguments after the second word */
	int		 maxargs;
	const char	*args;		/* them, for the synopsis */
	const char	*argname;	/* a name put in a request line */
	const char	*wants;		/* pgmirrorctl: the wrong count */
	int		 opts;		/* the options it takes */
};

static const struct ctlcmd_word ctlcmd_shows[] = {
	{ "clients",	CTLCMD_SHOW_CLIENTS },
	{ "config",	CTLCMD_SHOW_CONFIG },
	{ "mirrors",	CTLCMD_SHOW_MIRRORS },
	{ "pools",	CTLCMD_SHOW_POOLS },
	{ "servers",	CTLCMD_SHOW_SERVERS },
	{ "stats",	CTLCMD_SHOW_STATS },
	{ "version",	CTLCMD_SHOW_VERSION },
	{ NULL,		0 }
};

static const struct ctlcmd_word ctlcmd_onoff[] = {
	{ "on",		1 },
	{ "off",	0 },
	{ NULL,		0 }
};

/* In the order of the synopsis and of the request line. */
static const struct ctlcmd_opt ctlcmd_opts[] = {
	{ "check",		CTLCMD_OPT_CHECK,	0 },
	{ "checksum",		CTLCMD_OPT_CHECKSUM,	0 },
	{ "timeout",		CTLCMD_OPT_TIMEOUT,	1 },
	{ "sync-sequences",	CTLCMD_OPT_SYNC,	0 },
	{ "wait",		CTLCMD_OPT_WAIT,	1 }
};

/* In the order of pgmirrorctl's usage. */
static const struct ctlcmd_def ctlcmd_cmds[] = {
	{ "status", CTLCMD_STATUS, CTLCMD_F_REQUEST | CTLCMD_F_ARGV,
	    NULL, 0, 0, NULL, NULL, NULL, 0 },
	{ "show", CTLCMD_SHOW, CTLCMD_F_REQUEST | CTLCMD_F_ARGV |
	    CTLCMD_F_WHAT, ctlcmd_shows, 0, 0, NULL, NULL, NULL, 0 },
	{ "maintenance", CTLCMD_MAINTENANCE, CTLCMD_F_REQUEST | CTLCMD_F_ARGV,
	    ctlcmd_onoff, 0, 1, "[database]", "database",
	    "on or off, and optionally a database", CTLCMD_OPT_WAIT },
	{ "reload", CTLCMD_RELOAD, CTLCMD_F_REQUEST | CTLCMD_F_ARGV |
	    CTLCMD_F_USAGE, NULL, 0, 0, NULL, NULL, NULL, CTLCMD_OPT_CHECK },
	{ "switchover", CTLCMD_SWITCHOVER, CTLCMD_F_REQUEST | CTLCMD_F_ARGV,
	    NULL, 0, 0, NULL, NULL, NULL,
	    CTLCMD_OPT_TIMEOUT | CTLCMD_OPT_SYNC },
	{ "sync-sequences", CTLCMD_SYNC_SEQUENCES, CTLCMD_F_REQUEST,
	    NULL, 0, 0, NULL, NULL, NULL, 0 },
	{ "verify", CTLCMD_VERIFY, CTLCMD_F_ARGV,
	    NULL, 2, 2, "source destination", NULL,
	    "a source and a destination database", CTLCMD_OPT_CHECKSUM }
};

/* A bounded string being built; overflow is sticky. */
struct ctlcmd_out {
	char		*p;
	size_t		 size;
	size_t		 len;
	int		 over;
};

/* Start building into buf of size bytes (at least 1). */
static void
ctlcmd_out_init(struct ctlcmd_out *o, char *buf, size_t size)
{
	o->p = buf;
	o->size = size;
	o->len = 0;
	o->over = size == 0;
	if (size > 0)
		buf[0] = '\0';
}

/* Append a printf to o. */
static void __attribute__((format(printf, 2, 3)))
ctlcmd_add(struct ctlcmd_out *o, const char *fmt, ...)
{
	va_list		 ap;
	int		 n;

	if (o->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->len)
		o->over = 1;
	else
		o->len += n;
}

/*
 * Append a name of the table as a word of a statement when sql is set:
 * upper case, "sync-sequences" as "SYNC SEQUENCES"; else as it is.
 */
static void
ctlcmd_add_name(struct ctlcmd_out *o, const char *name, int sql)
{
	size_t		 start = o->len;

	ctlcmd_add(o, "%s", name);
	if (!sql || o->over)
		return;
	for (; start < o->len; start++)
		o->p[start] = o->p[start] == '-' ? ' ' :
		    (char)toupper((unsigned char)o->p[start]);
}

/* Put a message in err; returns -1, for the parser's returns. */
static int __attribute__((format(printf, 3, 4)))
ctlcmd_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* The names of n words, for matching. */
static size_t
ctlcmd_word_names(const struct ctlcmd_word *w, const char **names, size_t n)
{
	size_t		 i;

	for (i = 0; i < n && w[i].name != NULL; i++)
		names[i] = w[i].name;
	return i;
}

/*
 * Index of the name that word is, or (with prefix) a unique prefix of,
 * an exact match winning; -1 if none, -2 if several.
 */
static int
ctlcmd_match(const char *word, const char *const *names, size_t n,
    int prefix)
{
	size_t		 i, len = strlen(word);
	int		 found = -1;

	if (len == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(word, names[i]) == 0)
			return (int)i;
		if (prefix && strncmp(word, names[i], len) == 0)
			found = found == -1 ? (int)i : -2;
	}
	return found;
}

/*
 * Append the names (only those starting with prefix, if not NULL),
 * separated by sep, the last two by last.
 */
static void
ctlcmd_add_list(struct ctlcmd_out *o, const char *const *names, size_t n,
    const char *prefix, const char *sep, const char *last)
{
	size_t		 i, k, m = 0, len = prefix ? strlen(prefix) : 0;

	for (i = 0; i < n; i++)
		m += prefix == NULL || strncmp(names[i], prefix, len) == 0;
	for (i = k = 0; i < n; i++) {
		if (prefix != NULL && strncmp(names[i], prefix, len) != 0)
			continue;
		ctlcmd_add(o, "%s%s", k == 0 ? "" : k + 1 == m ? last : sep,
		    names[i]);
		k++;
	}
}

/*
 * pgmirrorctl: match word against names, or say why not in err ("what"
 * names them: "command", "option", "show command").  The index, or -1.
 */
static int
ctlcmd_lookup(const char *word, const char *const *names, size_t n,
    const char *what, char *err, size_t errlen)
{
	struct ctlcmd_out o;
	int		 k;

	if ((k = ctlcmd_match(word, names, n, 1)) >= 0)
		return k;
	ctlcmd_out_init(&o, err, errlen);
	if (k == -2) {
		ctlcmd_add(&o, "ambiguous %s \"%s\": ", what, word);
		ctlcmd_add_list(&o, names, n, word, ", ", ", ");
	} else {
		ctlcmd_add(&o, "unknown %s \"%s\"; valid ones are: ", what,
		    word);
		ctlcmd_add_list(&o, names, n, NULL, ", ", ", ");
	}
	return -1;
}

/* The command of an id, or NULL. */
static const struct ctlcmd_def *
ctlcmd_def(enum ctlcmd_id id)
{
	size_t		 i;

	for (i = 0; i < nitems(ctlcmd_cmds); i++)
		if (ctlcmd_cmds[i].id == id)
			return &ctlcmd_cmds[i];
	return NULL;
}

/* The dialect's flag in ctlcmd_def.flags. */
static int
ctlcmd_flag(enum ctlcmd_dialect d)
{
	return d == CTLCMD_ARGV ? CTLCMD_F_ARGV : CTLCMD_F_REQUEST;
}

/* The word of a command whose value is v, or "?". */
static const char *
ctlcmd_word_name(const struct ctlcmd_word *w, int v)
{
	for (; w->name != NULL; w++)
		if (w->value == v)
			return w->name;
	return "?";
}

/* Is s a number of seconds, 0 to CTLCMD_SECONDS_MAX?  Its value, or -1. */
static long
ctlcmd_seconds(const char *s)
{
	long		 v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (*s - '0');
		if (v > CTLCMD_SECONDS_MAX)
			return -1;
	}
	return v;
}

/*
 * Is s usable as a name in a request?  Requests are words separated by
 * spaces, and admin console statements end with ';'.
 */
static int
ctlcmd_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == ';' ||
		    *s == '"' || *s == '\'')
			return 0;
	return 1;
}

/*
 * The synopsis of command c: "maintenance on|off [database] [--wait
 * seconds]".
 */
static void
ctlcmd_add_synopsis(struct ctlcmd_out *o, const struct ctlcmd_def *c)
{
	const char	*names[16];
	size_t		 i, n;

	ctlcmd_add(o, "%s", c->name);
	if (c->words != NULL) {
		n = ctlcmd_word_names(c->words, names, nitems(names));
		ctlcmd_add(o, " ");
		ctlcmd_add_list(o, names, n, NULL, "|", "|");
	}
	if (c->args != NULL)
		ctlcmd_add(o, " %s", c->args);
	for (i = 0; i < nitems(ctlcmd_opts); i++)
		if (c->opts & ctlcmd_opts[i].flag)
			ctlcmd_add(o, " [--%s%s]", ctlcmd_opts[i].name,
			    ctlcmd_opts[i].seconds ? " seconds" : "");
}

/* The socket's answer to a malformed request of c: its usage. */
static int
ctlcmd_req_usage(const struct ctlcmd_def *c, char *err, size_t errlen)
{
	struct ctlcmd_out o;

	ctlcmd_out_init(&o, err, errlen);
	ctlcmd_add(&o, "usage: ");
	ctlcmd_add_synopsis(&o, c);
	return -1;
}

/* The socket's answer to a wrong second word of c. */
static int
ctlcmd_req_word(const struct ctlcmd_def *c, char *err, size_t errlen)
{
	struct ctlcmd_out o;
	const char	*names[16];
	size_t		 n;

	if (!(c->flags & CTLCMD_F_WHAT))
		return ctlcmd_req_usage(c, err, errlen);
	n = ctlcmd_word_names(c->words, names, nitems(names));
	ctlcmd_out_init(&o, err, errlen);
	ctlcmd_add(&o, "%s what? ", c->name);
	ctlcmd_add_list(&o, names, n, NULL, ", ", " or ");
	return -1;
}

/*
 * The option of a request line word "--name" for command c, or NULL.
 * On the socket --wait and --timeout have always stood for one another.
 */
static const struct ctlcmd_opt *
ctlcmd_req_opt(const struct ctlcmd_def *c, const char *word)
{
	size_t		 i;

	if (strncmp(word, "--", 2) != 0)
		return NULL;
	for (i = 0; i < nitems(ctlcmd_opts); i++) {
		const struct ctlcmd_opt *o = &ctlcmd_opts[i];

		if (strcmp(word + 2, o->name) != 0)
			continue;
		if ((c->opts & o->flag) ||
		    (o->seconds && (c->opts & CTLCMD_OPT_SECONDS)))
			return o;
	}
	return NULL;
}

/* Parse the words after the command word of a request line. */
static int
ctlcmd_parse_request(const struct ctlcmd_def *c, int argc,
    char *const *argv, struct ctlcmd_req *r, char *err, size_t errlen)
{
	const struct ctlcmd_opt *o;
	const char	*names[16];
	int		 i = 1, nargs = 0, k, usage = c->flags & CTLCMD_F_USAGE;
	size_t		 n;

	/* Without options, the number of words is part of the name. */
	if (c->opts == 0 && c->minargs == c->maxargs &&
	    argc != 1 + (c->words != NULL) + c->maxargs)
		return ctlcmd_err(err, errlen, "unknown command \"%s\"",
		    argv[0]);
	if (c->words != NULL) {
		n = ctlcmd_word_names(c->words, names, nitems(names));
		if (argc < 2 || (k = ctlcmd_match(argv[1], names, n, 0)) < 0)
			return ctlcmd_req_word(c, err, errlen);
		r->sub = c->words[k].value;
		i = 2;
	}
	while (i < argc && nargs < c->maxargs &&
	    strncmp(argv[i], "--", 2) != 0)
		r->arg[nargs++] = argv[i++];
	if (nargs < c->minargs)
		return ctlcmd_req_usage(c, err, errlen);
	for (; i < argc; i++) {
		if ((o = ctlcmd_req_opt(c, argv[i])) == NULL) {
			if (usage)
				return ctlcmd_req_usage(c, err, errlen);
			return ctlcmd_err(err, errlen, "unexpected \"%s\"",
			    argv[i]);
		}
		if (!o->seconds) {
			r->opts |= o->flag;
			continue;
		}
		if (i + 1 == argc) {
			if (usage)
				return ctlcmd_req_usage(c, err, errlen);
			return ctlcmd_err(err, errlen, "%s needs a number of "
			    "seconds", argv[i]);
		}
		if ((r->seconds = ctlcmd_seconds(argv[++i])) == -1) {
			if (usage)
				return ctlcmd_req_usage(c, err, errlen);
			return ctlcmd_err(err, errlen, "%s: not a number of "
			    "seconds from 0 to %d", argv[i],
			    CTLCMD_SECONDS_MAX);
		}
		r->opts |= c->opts & CTLCMD_OPT_SECONDS;
	}
	return 0;
}

/* pgmirrorctl: parse the option "--name[=value]" of c at argv[*i]. */
static int
ctlcmd_argv_opt(const struct ctlcmd_def *c, int argc, char *const *argv,
    int *i, struct ctlcmd_req *r, char *err, size_t errlen)
{
	const char	*names[nitems(ctlcmd_opts)];
	const struct ctlcmd_opt *o;
	const char	*arg = argv[*i] + 2, *value = NULL, *eq;
	char		 name[64];
	size_t		 j, n = 0;
	int		 map[nitems(ctlcmd_opts)], k;

	for (j = 0; j < nitems(ctlcmd_opts); j++)
		if (c->opts & ctlcmd_opts[j].flag) {
			map[n] = (int)j;
			names[n++] = ctlcmd_opts[j].name;
		}
	if ((eq = strchr(arg, '=')) != NULL) {
		value = eq + 1;
		snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
	} else
		snprintf(name, sizeof(name), "%s", arg);
	if (n == 0)
		return ctlcmd_err(err, errlen, "%s takes no option, not \"%s\"",
		    c->name, argv[*i]);
	if ((k = ctlcmd_lookup(name, names, n, "option", err, errlen)) < 0)
		return -1;
	o = &ctlcmd_opts[map[k]];
	if (!o->seconds) {
		if (value != NULL)
			return ctlcmd_err(err, errlen, "--%s takes no value",
			    o->name);
	} else {
		if (value == NULL) {
			if (*i + 1 >= argc)
				return ctlcmd_err(err, errlen, "--%s wants a "
				    "number of seconds", o->name);
			value = argv[++*i];
		}
		if ((r->seconds = ctlcmd_seconds(value)) == -1)
			return ctlcmd_err(err, errlen, "--%s wants a number of "
			    "seconds from 0 to %d, not \"%s\"", o->name,
			    CTLCMD_SECONDS_MAX, value);
	}
	r->opts |= o->flag;
	return 0;
}

/* pgmirrorctl: parse the words after the command word. */
static int
ctlcmd_parse_argv(const struct ctlcmd_def *c, int argc, char *const *argv,
    struct ctlcmd_req *r, char *err, size_t errlen)
{
	struct ctlcmd_out o;
	const char	*pos[CTLCMD_ARGV_POS], *names[16];
	char		 what[64];
	int		 i, npos = 0, endopts = 0, nw = c->words != NULL, k;
	size_t		 n;

	for (i = 1; i < argc; i++) {
		if (!endopts && strcmp(argv[i], "--") == 0)
			endopts = 1;
		else if (!endopts && strncmp(argv[i], "--", 2) == 0) {
			if (ctlcmd_argv_opt(c, argc, argv, &i, r, err,
			    errlen) == -1)
				return -1;
		} else if (!endopts && argv[i][0] == '-')
			return ctlcmd_err(err, errlen, "unknown option \"%s\"",
			    argv[i]);
		else if (npos == CTLCMD_ARGV_POS)
			return ctlcmd_err(err, errlen, "too many arguments for "
			    "%s", c->name);
		else
			pos[npos++] = argv[i];
	}
	if (npos < nw + c->minargs || npos > nw + c->maxargs) {
		ctlcmd_out_init(&o, err, errlen);
		if (c->wants != NULL)
			ctlcmd_add(&o, "%s wants %s", c->name, c->wants);
		else if (c->words != NULL) {
			n = ctlcmd_word_names(c->words, names, nitems(names));
			ctlcmd_add(&o, "%s wants one of: ", c->name);
			ctlcmd_add_list(&o, names, n, NULL, ", ", ", ");
		} else
			ctlcmd_add(&o, "%s takes no argument", c->name);
		return -1;
	}
	if (c->words != NULL) {
		n = ctlcmd_word_names(c->words, names, nitems(names));
		snprintf(what, sizeof(what), "%s command", c->name);
		if ((k = ctlcmd_lookup(pos[0], names, n, what, err,
		    errlen)) < 0)
			return -1;
		r->sub = c->words[k].value;
	}
	for (i = nw; i < npos; i++) {
		if (c->argname != NULL && !ctlcmd_name_ok(pos[i]))
			return ctlcmd_err(err, errlen, "invalid %s name "
			    "\"%s\"", c->argname, pos[i]);
		r->arg[i - nw] = pos[i];
	}
	if (c->id == CTLCMD_MAINTENANCE && !r->sub && r->seconds >= 0)
		return ctlcmd_err(err, errlen, "--wait goes with maintenance "
		    "on");
	return 0;
}

/*
 * Split a request line into words separated by spaces and tabs, in
 * place; at most max words are taken.  Their number.
 */
int
ctlcmd_split(char *line, char **w, int max)
{
	int		 n = 0;
	char		*p = line;

	while (*p != '\0' && n < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		w[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	return n;
}

/*
 * Parse the words of a command in dialect d into r: the command word
 * first, then its words, arguments and options.  0, or -1 with the
 * reason in err (errlen bytes).  r's strings point into argv.
 */
int
ctlcmd_parse(int argc, char *const *argv, enum ctlcmd_dialect d,
    struct ctlcmd_req *r, char *err, size_t errlen)
{
	const struct ctlcmd_def *defs[nitems(ctlcmd_cmds)];
	const char	*names[nitems(ctlcmd_cmds)];
	size_t		 i, n = 0;
	int		 k;

	memset(r, 0, sizeof(*r));
	r->seconds = -1;
	if (argc < 1)
		return ctlcmd_err(err, errlen, "empty request");
	for (i = 0; i < nitems(ctlcmd_cmds); i++)
		if (ctlcmd_cmds[i].flags & ctlcmd_flag(d)) {
			defs[n] = &ctlcmd_cmds[i];
			names[n++] = ctlcmd_cmds[i].name;
		}
	if (d == CTLCMD_ARGV) {
		if ((k = ctlcmd_lookup(argv[0], names, n, "command", err,
		    errlen)) < 0)
			return -1;
	} else if ((k = ctlcmd_match(argv[0], names, n, 0)) < 0)
		return ctlcmd_err(err, errlen, "unknown command \"%s\"",
		    argv[0]);
	r->id = defs[k]->id;
	if ((d == CTLCMD_ARGV ? ctlcmd_parse_argv(defs[k], argc, argv, r, err,
	    errlen) : ctlcmd_parse_request(defs[k], argc, argv, r, err,
	    errlen)) == -1)
		return -1;
	/*
	 * An argument goes into a request line and a console statement: it
	 * may not hold what ends them (a control character, a semicolon),
	 * nor start as an option does ("--").
	 */
	for (k = 0; k < (int)nitems(r->arg); k++) {
		const char	*p;

		if (r->arg[k] != NULL && strncmp(r->arg[k], "--", 2) == 0)
			return ctlcmd_err(err, errlen, "invalid argument "
			    "\"%s\": it starts with \"--\"", r->arg[k]);

		for (p = r->arg[k]; p != NULL && *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ';')
				return ctlcmd_err(err, errlen, "invalid "
				    "character in \"%s\"", r->arg[k]);
	}
	return 0;
}

/*
 * Write a request as a control socket line without its newline
 * ("maintenance on appdb --wait 10"), or with sql as an admin console
 * statement ("MAINTENANCE ON appdb WAIT 10;").  0, or -1 if it does
 * not fit in size bytes or is no request of the socket.
 */
int
ctlcmd_format(const struct ctlcmd_req *r, int sql, char *buf, size_t size)
{
	const struct ctlcmd_def *c = ctlcmd_def(r->id);
	struct ctlcmd_out o;
	size_t		 i;
	int		 k;

	ctlcmd_out_init(&o, buf, size);
	if (c == NULL || !(c->flags & CTLCMD_F_REQUEST))
		return -1;
	ctlcmd_add_name(&o, c->name, sql);
	if (c->words != NULL) {
		ctlcmd_add(&o, " ");
		ctlcmd_add_name(&o, ctlcmd_word_name(c->words, r->sub), sql);
	}
	for (k = 0; k < c->maxargs && k < (int)nitems(r->arg); k++)
		if (r->arg[k] != NULL)
			ctlcmd_add(&o, " %s", r->arg[k]);
	for (i = 0; i < nitems(ctlcmd_opts); i++) {
		const struct ctlcmd_opt *op = &ctlcmd_opts[i];

		if (!(c->opts & op->flag) || (op->seconds ? r->seconds < 0 :
		    !(r->opts & op->flag)))
			continue;
		ctlcmd_add(&o, sql ? " " : " --");
		ctlcmd_add_name(&o, op->name, sql);
		if (op->seconds)
			ctlcmd_add(&o, " %ld", r->seconds);
	}
	if (sql)
		ctlcmd_add(&o, ";");
	return o.over ? -1 : 0;
}

/*
 * How many words at w (n of them) spell name as a statement does, case
 * aside: "sync-sequences" is "SYNC SEQUENCES".  0 if they do not.
 */
static int
ctlcmd_sql_spells(const char *name, char *const *w, int n)
{
	size_t		 len;
	int		 k;

	for (k = 0; k < n; k++) {
		len = strcspn(name, "-");
		if (strlen(w[k]) != len || strncasecmp(w[k], name, len) != 0)
			return 0;
		if (name[len] == '\0')
			return k + 1;
		name += len + 1;
	}
	return 0;
}

/*
 * Turn an admin console statement into a request line: the command and
 * its second word in lower case, the options written as words ("WAIT
 * 10", "CHECK", "SYNC SEQUENCES") as "--wait 10", "--check",
 * "--sync-sequences"; other words as they are.  Words end at spaces and
 * semicolons; at most CTLCMD_WORDS_MAX are taken.  0, or -1 if the
 * statement is empty or the line would not fit in size bytes.
 */
int
ctlcmd_from_sql(const char *sql, char *line, size_t size)
{
	const struct ctlcmd_def *c0 = NULL;
	struct ctlcmd_out o;
	char		 buf[CTLCMD_LINE_MAX], *w[CTLCMD_WORDS_MAX], *p;
	const char	*name;
	size_t		 j;
	int		 nw = 0, i, used, reqopts = 0;

	snprintf(buf, sizeof(buf), "%s", sql);
	for (p = buf; *p != '\0' && nw < CTLCMD_WORDS_MAX; ) {
		while (isspace((unsigned char)*p) || *p == ';')
			*p++ = '\0';
		if (*p == '\0')
			break;
		w[nw++] = p;
		while (*p != '\0' && !isspace((unsigned char)*p) && *p != ';')
			p++;
	}
	if (nw == 0)
		return -1;
	/* The options of the requests (not verify's). */
	for (j = 0; j < nitems(ctlcmd_cmds); j++)
		if (ctlcmd_cmds[j].flags & CTLCMD_F_REQUEST)
			reqopts |= ctlcmd_cmds[j].opts;
	ctlcmd_out_init(&o, line, size);
	for (i = 0; i < nw; i += used) {
		ctlcmd_add(&o, "%s", i > 0 ? " " : "");
		used = 0;
		for (j = 0; i == 0 && j < nitems(ctlcmd_cmds) && !used; j++)
			if ((ctlcmd_cmds[j].flags & CTLCMD_F_REQUEST) &&
			    (used = ctlcmd_sql_spells(ctlcmd_cmds[j].name,
			    w, nw)) > 0) {
				ctlcmd_add(&o, "%s", ctlcmd_cmds[j].name);
				c0 = &ctlcmd_cmds[j];
			}
		for (j = 0; j < nitems(ctlcmd_opts) && !used; j++) {
			name = ctlcmd_opts[j].name;
			if ((ctlcmd_opts[j].flag & reqopts) && (used =
			    ctlcmd_sql_spells(name, w + i, nw - i)) > 0)
				ctlcmd_add(&o, "--%s", name);
		}
		if (used)
			continue;
		used = 1;
		if (i == 0 || (i == 1 && c0 != NULL && c0->words != NULL))
			for (p = w[i]; *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
		ctlcmd_add(&o, "%s", w[i]);
	}
	return o.over ? -1 : 0;
}

/* The command word of an id. */
const char *
ctlcmd_name(enum ctlcmd_id id)
{
	const struct ctlcmd_def *c = ctlcmd_def(id);

	return c != NULL ? c->name : "?";
}

/*
 * The synopsis of the i-th command of dialect d, for a usage: "show
 * clients|config|...".  0, or -1 past the last command (or if it does
 * not fit).
 */
int
ctlcmd_synopsis(enum ctlcmd_dialect d, int i, char *buf, size_t size)
{
	struct ctlcmd_out o;
	size_t		 j;

	for (j = 0; j < nitems(ctlcmd_cmds); j++) {
		if (!(ctlcmd_cmds[j].flags & ctlcmd_flag(d)) || i-- > 0)
			continue;
		ctlcmd_out_init(&o, buf, size);
		ctlcmd_add_synopsis(&o, &ctlcmd_cmds[j]);
		return o.over ? -1 : 0;
	}
	return -1;
}

/*
 * Make len bytes at s fit in an answer, in place: newlines and carriage
 * returns become spaces, and tabs too unless tabs is set (a row whose
 * fields are already separated by tabs).
 */
void
ctlcmd_clean(char *s, size_t len, int tabs)
{
	size_t		 i;

	for (i = 0; i < len; i++)
		if (s[i] == '\n' || s[i] == '\r' || (s[i] == '\t' && !tabs))
			s[i] = ' ';
}

/*
 * Parse an answer of len bytes at buf (buf[len] is a NUL): "OK" or
 * "ERROR reason" (a bare "ERROR" is an "unknown error"), then maybe a
 * table.  The first line is cut off in place.  0, or -1 with *why if
 * the answer is malformed.
 */
int
ctlcmd_answer_parse(char *buf, size_t len, struct ctlcmd_answer *a,
    const char **why)
{
	char		*rest;

	memset(a, 0, sizeof(*a));
	if (memchr(buf, '\0', len) != NULL) {
		*why = "a NUL byte in the answer";
		return -1;
	}
	if ((rest = strchr(buf, '\n')) != NULL)
		*rest++ = '\0';
	else
		rest = buf + len;
	if (strcmp(buf, "OK") == 0)
		a->ok = 1;
	else if (strcmp(buf, "ERROR") == 0)
		a->reason = "unknown error";
	else if (strncmp(buf, "ERROR ", 6) == 0)
		a->reason = buf + 6;
	else {
		*why = "the answer starts with neither OK nor ERROR";
		return -1;
	}
	if (*rest == '\0')
		return 0;
	if (ctlcmd_table_scan(rest, &a->ncols, &a->nrows, why) == -1)
		return -1;
	a->table = rest;
	return 0;
}

/*
 * Check a table: lines of tab-separated fields, the header first, a
 * final newline ending the last line.  Sets its columns and rows (the
 * header not counted).  0, or -1 with *why if it is empty or a row has
 * not as many fields as the header.
 */
int
ctlcmd_table_scan(const char *text, size_t *ncols, size_t *nrows,
    const char **why)
{
	const char	*p = text;
	size_t		 n, lines = 0;

	*ncols = *nrows = 0;
	if (*text == '\0') {
		*why = "no table";
		return -1;
	}
	while (*p != '\0') {
		for (n = 1; *p != '\0' && *p != '\n'; p++)
			n += *p == '\t';
		if (*p == '\n')
			p++;
		if (lines++ == 0)
			*ncols = n;
		else if (n != *ncols) {
			*why = "a row has not as many fields as the header";
			return -1;
		}
	}
	*nrows = lines - 1;
	return 0;
}

/*
 * The next field of a table checked by ctlcmd_table_scan, at *pos:
 * *field and *len (not NUL-terminated); *pos moves past it.  Returns 1
 * if more fields follow in its row, 0 if it ends its row.  The table
 * is over when **pos is a NUL at the start of a row.
 */
int
ctlcmd_table_field(const char **pos, const char **field, size_t *len)
{
	const char	*p = *pos;
	size_t		 n = strcspn(p, "\t\n");

	*field = p;
	*len = n;
	if (p[n] == '\t') {
		*pos = p + n + 1;
		return 1;
	}
	*pos = p[n] == '\n' ? p + n + 1 : p + n;
	return 0;
}
