/*
 * tap.h: a tiny header-only TAP producer for pgmirror's C unit tests.
 *
 * Owns the test plan/counter state (one per test program) and the
 * "ok N - desc" / "not ok N - desc" output.  Usage:
 *
 *	tap_plan(3);
 *	tap_ok(x == 1, "x is %d", 1);
 *	tap_is_int(got, 42, "answer");
 *	tap_is_str(name, "bob", "name");
 *	return tap_done();
 *
 * tap_done() returns 0 if every test passed and the plan was met, else 1.
 */
#ifndef PGMIRROR_TAP_H
#define PGMIRROR_TAP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tap_state {
	int	 planned;
	int	 run;
	int	 failed;
};

/* The single per-program counter state. */
static inline struct tap_state *
tap_state_(void)
{
	static struct tap_state st;

	return &st;
}

/* Prints the plan line "1..n". */
static inline void
tap_plan_(int n)
{
	tap_state_()->planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

/* Records one result and prints its ok/not ok line; returns ok. */
static inline int __attribute__((format(printf, 4, 0)))
tap_vresult_(int ok, const char *file, int line, const char *fmt, va_list ap)
{
	struct tap_state *st = tap_state_();

	st->run++;
	if (!ok)
		st->failed++;
	printf("%sok %d - ", ok ? "" : "not ", st->run);
	vprintf(fmt, ap);
	printf("\n");
	if (!ok)
		printf("#   Failed test at %s line %d.\n", file, line);
	fflush(stdout);
	return ok;
}

/* Records one boolean result. */
static inline int __attribute__((format(printf, 4, 5)))
tap_ok_(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	ok = tap_vresult_(ok, file, line, fmt, ap);
	va_end(ap);
	return ok;
}

/* Records an integer comparison, with a diagnostic on failure. */
static inline int __attribute__((format(printf, 5, 6)))
tap_is_int_(long long got, long long want, const char *file, int line,
    const char *fmt, ...)
{
	va_list		 ap;
	int		 ok;

	va_start(ap, fmt);
	ok = tap_vresult_(got == want, file, line, fmt, ap);
	va_end(ap);
	if (!ok)
		printf("#          got: %lld\n#     expected: %lld\n", got,
		    want);
	return ok;
}

/* Records a string comparison (NULL-safe), with a diagnostic on failure. */
static inline int __attribute__((format(printf, 5, 6)))
tap_is_str_(const char *got, const char *want, const char *file, int line,
    const char *fmt, ...)
{
	va_list		 ap;
	int		 ok;

	if (got == NULL || want == NULL)
		ok = got == want;
	else
		ok = strcmp(got, want) == 0;
	va_start(ap, fmt);
	ok = tap_vresult_(ok, file, line, fmt, ap);
	va_end(ap);
	if (!ok)
		printf("#          got: '%s'\n#     expected: '%s'\n",
		    got ? got : "(null)", want ? want : "(null)");
	return ok;
}

/* Prints a "# ..." diagnostic line. */
static inline void __attribute__((format(printf, 1, 2)))
tap_diag(const char *fmt, ...)
{
	va_list		 ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Checks the plan; returns the program's exit code. */
static inline int
tap_done_(void)
{
	struct tap_state *st = tap_state_();

	if (st->run != st->planned) {
		printf("# planned %d tests but ran %d\n", st->planned, st->run);
		return 1;
	}
	if (st->failed != 0) {
		printf("# failed %d of %d tests\n", st->failed, st->run);
		return 1;
	}
	return 0;
}

/*
 * Test fixtures the unit tests share.  tap_dup_exact copies n bytes
 * into a heap buffer of exactly that size, so ASan catches a read past
 * what a parser was given; tap_rng is a fixed-seed xorshift generator,
 * so "random" splits are the same on every run.
 */
static inline uint8_t *
tap_dup_exact(const void *p, size_t n)
{
	uint8_t		*q = malloc(n == 0 ? 1 : n);

	if (q == NULL)
		abort();
	if (n > 0)
		memcpy(q, p, n);
	return q;
}

static inline uint32_t
tap_rng(uint32_t *state)
{
	uint32_t	 x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

#define tap_plan(n)		tap_plan_(n)
#define tap_ok(cond, ...) \
	tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define tap_is_int(got, want, ...) \
	tap_is_int_((long long)(got), (long long)(want), __FILE__, __LINE__, \
	    __VA_ARGS__)
#define tap_is_str(got, want, ...) \
	tap_is_str_((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define tap_done()		tap_done_()

#endif /* PGMIRROR_TAP_H */
