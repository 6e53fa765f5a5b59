/*
 * fuzz_control.c: libFuzzer target for the control grammar (ctlcmd.c).
 *
 * The input's first byte picks what it is: a control socket request
 * line, a pgmirrorctl command line, an admin console statement, or an
 * answer of the daemon.  A request is split into words and parsed in
 * its dialect; what parses is written back as a line and must parse
 * again to the same request (and a console statement made of one
 * without arguments must come back as that line).  An answer is parsed, and its table walked
 * row by row and field by field within its bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctlcmd.h"
#include "fuzz.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Two parsed requests say the same. */
static int
same_req(const struct ctlcmd_req *a, const struct ctlcmd_req *b)
{
	int		 i;

	if (a->id != b->id || a->sub != b->sub || a->seconds != b->seconds ||
	    a->opts != b->opts)
		return 0;
	for (i = 0; i < 2; i++)
		if ((a->arg[i] == NULL) != (b->arg[i] == NULL) ||
		    (a->arg[i] != NULL && strcmp(a->arg[i], b->arg[i]) != 0))
			return 0;
	return 1;
}

/* Parse the words of line in dialect d; check what comes out. */
static void
fuzz_request(char *line, enum ctlcmd_dialect d)
{
	char		*w[CTLCMD_WORDS_MAX], *w2[CTLCMD_WORDS_MAX];
	char		 err[256], out[CTLCMD_LINE_MAX], again[CTLCMD_LINE_MAX];
	char		 sql[CTLCMD_LINE_MAX], back[CTLCMD_LINE_MAX];
	struct ctlcmd_req r, r2;
	int		 n, n2, rc;

	n = ctlcmd_split(line, w, CTLCMD_WORDS_MAX);
	FUZZ_CHECK(n >= 0 && n <= CTLCMD_WORDS_MAX);
	memset(err, 'x', sizeof(err));
	rc = ctlcmd_parse(n, w, d, &r, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == -1) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(err[0] != '\0');
		return;
	}
	FUZZ_CHECK(r.seconds >= -1 && r.seconds <= CTLCMD_SECONDS_MAX);
	FUZZ_CHECK(ctlcmd_name(r.id) != NULL);
	if (ctlcmd_format(&r, 0, out, sizeof(out)) == -1)
		return;		/* no request of the socket (verify) */
	FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
	memcpy(again, out, sizeof(out));
	n2 = ctlcmd_split(again, w2, CTLCMD_WORDS_MAX);
	FUZZ_CHECK(ctlcmd_parse(n2, w2, CTLCMD_REQUEST, &r2, err,
	    sizeof(err)) == 0);
	FUZZ_CHECK(same_req(&r, &r2));
	/*
	 * The console round trip, for requests without an argument: a
	 * database named as an option word ("wait") cannot be said there.
	 */
	if (r.arg[0] == NULL && r.arg[1] == NULL &&
	    ctlcmd_format(&r, 1, sql, sizeof(sql)) == 0 &&
	    ctlcmd_from_sql(sql, back, sizeof(back)) == 0) {
		n2 = ctlcmd_split(back, w2, CTLCMD_WORDS_MAX);
		FUZZ_CHECK(ctlcmd_parse(n2, w2, CTLCMD_REQUEST, &r2, err,
		    sizeof(err)) == 0);
		FUZZ_CHECK(r2.id == r.id && r2.sub == r.sub &&
		    r2.opts == r.opts && r2.seconds == r.seconds);
	}
}

/* A console statement becomes a line, which is a request or refused. */
static void
fuzz_sql(const char *stmt)
{
	char		 line[CTLCMD_LINE_MAX];

	if (ctlcmd_from_sql(stmt, line, sizeof(line)) == -1)
		return;
	FUZZ_CHECK(memchr(line, '\0', sizeof(line)) != NULL);
	fuzz_request(line, CTLCMD_REQUEST);
}

/* An answer of the daemon, parsed and walked. */
static void
fuzz_answer(char *buf, size_t len)
{
	struct ctlcmd_answer a;
	const char	*why, *p, *f;
	size_t		 ncols, nrows, flen, r, c;

	if (ctlcmd_answer_parse(buf, len, &a, &why) == -1) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(a.ok || a.reason != NULL);
	if (a.table == NULL)
		return;
	FUZZ_CHECK(a.table >= buf && a.table <= buf + len);
	if (ctlcmd_table_scan(a.table, &ncols, &nrows, &why) == -1)
		return;
	FUZZ_CHECK(ncols == a.ncols && nrows == a.nrows);
	/* Every row has ncols fields, each inside the answer. */
	p = a.table;
	for (r = 0; r <= nrows; r++) {
		for (c = 1; ctlcmd_table_field(&p, &f, &flen) == 1; c++)
			FUZZ_CHECK(f >= buf && f + flen <= buf + len);
		FUZZ_CHECK(f >= buf && f + flen <= buf + len);
		FUZZ_CHECK(c == ncols);
	}
	FUZZ_CHECK(*p == '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*s;

	if (size < 1 || size > CTLCMD_LINE_MAX)
		return 0;
	/* A NUL-terminated heap copy of exactly the rest, as the daemon has. */
	if ((s = malloc(size)) == NULL)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		fuzz_request(s, CTLCMD_REQUEST);
		break;
	case 1:
		fuzz_request(s, CTLCMD_ARGV);
		break;
	case 2:
		fuzz_sql(s);
		break;
	case 3:
		fuzz_answer(s, size - 1);
		break;
	}
	free(s);
	return 0;
}
