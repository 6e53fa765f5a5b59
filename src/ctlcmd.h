/*
 * ctlcmd.h: the control grammar (ctlcmd.c), shared by pgmirror and
 * pgmirrorctl.
 *
 * A command is parsed from words into a struct ctlcmd_req, in one of
 * two dialects: a request line of the control socket (exact words, as
 * control.c and admin.c read them) or pgmirrorctl's command line
 * (unique prefixes, --option=value).  A request is written back as a
 * request line or as an admin console statement by ctlcmd_format.
 *
 * The answer to a request: "OK" or "ERROR reason" on the first line,
 * then maybe a table: a line of column names, then one line per row,
 * the fields separated by tabs; no field holds a tab or a newline.
 * The daemon closes the connection after it.
 */
#ifndef CTLCMD_H
#define CTLCMD_H

#include <stddef.h>

#define CTLCMD_LINE_MAX		4096	/* a request line, newline included */
#define CTLCMD_WORDS_MAX	16	/* words of a request line read */
#define CTLCMD_SECONDS_MAX	86400	/* --wait, --timeout */

enum ctlcmd_id {
	CTLCMD_STATUS,
	CTLCMD_SHOW,
	CTLCMD_MAINTENANCE,
	CTLCMD_RELOAD,
	CTLCMD_SWITCHOVER,
	CTLCMD_SYNC_SEQUENCES,		/* the socket only: a fleet step */
	CTLCMD_VERIFY			/* pgmirrorctl only: no daemon */
};

/* What show shows (ctlcmd_req.sub). */
enum ctlcmd_show {
	CTLCMD_SHOW_CLIENTS,
	CTLCMD_SHOW_CONFIG,
	CTLCMD_SHOW_MIRRORS,
	CTLCMD_SHOW_POOLS,
	CTLCMD_SHOW_SERVERS,
	CTLCMD_SHOW_STATS,
	CTLCMD_SHOW_VERSION
};

/* The options given (ctlcmd_req.opts). */
#define CTLCMD_OPT_CHECK	0x01	/* reload --check */
#define CTLCMD_OPT_CHECKSUM	0x02	/* verify --checksum */
#define CTLCMD_OPT_TIMEOUT	0x04	/* switchover --timeout */
#define CTLCMD_OPT_SYNC		0x08	/* switchover --sync-sequences */
#define CTLCMD_OPT_WAIT		0x10	/* maintenance on --wait */

enum ctlcmd_dialect {
	CTLCMD_REQUEST,			/* a control socket request line */
	CTLCMD_ARGV			/* pgmirrorctl's command line */
};

/* A parsed command; the strings point into the words parsed. */
struct ctlcmd_req {
	enum ctlcmd_id	 id;
	int		 sub;		/* show: enum ctlcmd_show; */
					/* maintenance: 1 on, 0 off */
	const char	*arg[2];	/* maintenance: database, or NULL; */
					/* verify: source, destination */
	long		 seconds;	/* --wait or --timeout, -1: none */
	int		 opts;		/* CTLCMD_OPT_* given */
};

/* An answer, parsed in place by ctlcmd_answer_parse. */
struct ctlcmd_answer {
	int		 ok;
	const char	*reason;	/* ERROR: why; OK: NULL */
	const char	*table;		/* the table's lines, or NULL */
	size_t		 ncols;		/* of its header */
	size_t		 nrows;		/* not counting the header */
};

int	 ctlcmd_split(char *, char **, int);
int	 ctlcmd_parse(int, char *const *, enum ctlcmd_dialect,
	    struct ctlcmd_req *, char *, size_t);
int	 ctlcmd_format(const struct ctlcmd_req *, int, char *, size_t);
int	 ctlcmd_from_sql(const char *, char *, size_t);
const char *ctlcmd_name(enum ctlcmd_id);
int	 ctlcmd_synopsis(enum ctlcmd_dialect, int, char *, size_t);
void	 ctlcmd_clean(char *, size_t, int);
int	 ctlcmd_answer_parse(char *, size_t, struct ctlcmd_answer *,
	    const char **);
int	 ctlcmd_table_scan(const char *, size_t *, size_t *, const char **);
int	 ctlcmd_table_field(const char **, const char **, size_t *);

#endif /* CTLCMD_H */
