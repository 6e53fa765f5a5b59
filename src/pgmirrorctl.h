/*
 * pgmirrorctl.h: the internal header of pgmirrorctl, the control
 * program of pgmirror.
 *
 * pgmirrorctl drives pgmirror in one of three ways:
 *
 *  - the control socket: one request line out ("maintenance on appdb
 *    --wait 10\n"); "OK" or "ERROR reason", maybe a table of
 *    tab-separated lines (header first), and EOF back;
 *  - with -H, the admin consoles of one or more instances, through
 *    libpq, the same commands as statements ("MAINTENANCE ON appdb WAIT
 *    10;"), all instances at once; an error's table is in its DETAIL;
 *    with several instances, switchover is the fleet switchover;
 *  - verify: no daemon at all; two databases of the config file,
 *    connected to directly, their tables compared.
 *
 * One file per concern, the prototypes grouped below under the file
 * that defines them:
 *
 *  - ctl_main.c: the command line (the grammar is ctlcmd.c's, shared
 *    with the daemon), the config file (config.c's loader, shared too),
 *    small helpers, main;
 *  - ctl_output.c: tables, answers, and the three output formats
 *    (aligned for people, -t tab-separated, -j JSON);
 *  - ctl_socket.c: one command through the control socket;
 *  - ctl_fleet.c: the admin consoles of -H through a libpq
 *    multiplexer, and the fleet switchover;
 *  - ctl_verify.c: verify.
 *
 * Errors go to stderr, one line each (err(3)); the exit status is 0 or
 * 1.  Names are prefixed pgmctl_, apart from the daemon's.
 */
#ifndef PGMIRRORCTL_H
#define PGMIRRORCTL_H

#include <stddef.h>
#include <stdint.h>

#include "ctlcmd.h"

struct pgm_config;

#define PGMCTL_READ_TIMEOUT	60	/* s, commands without their own */
#define PGMCTL_GRACE		30	/* s beyond a command's own timeout */
#define PGMCTL_CONNECT_TIMEOUT	"10"	/* s, libpq, unless PGCONNECT_TIMEOUT */

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

/* Output formats. */
enum pgmctl_format {
	FMT_ALIGNED,
	FMT_TABS,			/* -t */
	FMT_JSON			/* -j */
};

/* ctl_main.c */
extern const char *pgmctl_conffile;	/* -c, or NULL */
extern struct pgm_config *pgmctl_conf;	/* once pgmctl_conf_load'ed */
__attribute__((noreturn, format(printf, 1, 2)))
void	 pgmctl_usage_err(const char *, ...);
void	*pgmctl_alloc(size_t);
void	*pgmctl_realloc(void *, size_t, size_t);
char	*pgmctl_strdup(const char *);
char	*pgmctl_strndup(const char *, size_t);
char	*pgmctl_printf(const char *, ...) __attribute__((format(printf, 1, 2)));
int64_t	 pgmctl_now_ms(void);
char	*pgmctl_oneline(char *);
const char *pgmctl_conf_path(void);
int	 pgmctl_conf_load(int);

/* ctl_output.c */
extern enum pgmctl_format pgmctl_format;
struct pgmctl_table *pgmctl_table_new(size_t, const char *const *);
void	 pgmctl_table_add(struct pgmctl_table *, const char *const *);
void	 pgmctl_table_free(struct pgmctl_table *);
int	 pgmctl_table_col(const struct pgmctl_table *, const char *);
struct pgmctl_table *pgmctl_table_parse(const char *, size_t,
	    const char **);
int	 pgmctl_answer_parse(char *, size_t, struct pgmctl_answer *,
	    const char **);
void	 pgmctl_answer_clear(struct pgmctl_answer *);
void	 pgmctl_answer_fail(struct pgmctl_answer *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 pgmctl_print(const struct pgmctl_table *);

/* ctl_socket.c */
int	 pgmctl_local(const char *, const struct ctlcmd_req *);

/* ctl_fleet.c */
int	 pgmctl_remote(const char *, const struct ctlcmd_req *);

/* ctl_verify.c */
int	 pgmctl_verify(const struct ctlcmd_req *);

#endif /* PGMIRRORCTL_H */
