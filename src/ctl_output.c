/*
 * ctl_output.c: pgmirrorctl's tables, answers and output formats.
 *
 * Owns struct pgmctl_table (a header and rows of strings, built from a
 * control socket answer, an admin console result or verify's rows) and
 * struct pgmctl_answer (OK, or ERROR and its reason, either with a
 * table), read with ctlcmd.c's answer parser; and printing a table for
 * people (columns aligned, numbers to the right, name/value tables as
 * "name: value" lines), as tab-separated lines (-t) or as JSON (-j).
 * Control characters never reach the terminal.
 */
#include <ctype.h>
#include <err.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirrorctl.h"

enum pgmctl_format pgmctl_format = FMT_ALIGNED;

/* --- tables and answers ---------------------------------------------- */

/* A new table with this header (ncols strings, copied). */
struct pgmctl_table *
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
void
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
void
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
int
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
struct pgmctl_table *
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
void
pgmctl_answer_clear(struct pgmctl_answer *a)
{
	free(a->reason);
	pgmctl_table_free(a->table);
	memset(a, 0, sizeof(*a));
}

/* Make a an ERROR with this reason, unless it already is one. */
void
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
int
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
void
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
