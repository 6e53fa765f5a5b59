/*
 * fuzz.h: what the libFuzzer targets in t/fuzz share.
 *
 * FUZZ_CHECK aborts with the file, line and condition when an invariant
 * of the code under test does not hold, so libFuzzer records the input
 * as a crash.  fuzz_dup copies bytes into a heap buffer of exactly
 * their size (none for 0 bytes under ASan), so a read past what a
 * parser was given is a heap-buffer-overflow.  fuzz_rng is an xorshift
 * generator the targets seed from their input, so that a split of the
 * input is the same every time that input is run.
 */
#ifndef PGM_FUZZ_H
#define PGM_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant does not hold: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/* A heap copy of exactly n bytes (malloc(0) for none). */
static inline uint8_t *
fuzz_dup(const void *p, size_t n)
{
	uint8_t		*q = malloc(n);

	if (q == NULL && n > 0)
		abort();
	if (n > 0)
		memcpy(q, p, n);
	return q;
}

/* The next number of an xorshift generator (state must not be 0). */
static inline uint32_t
fuzz_rng(uint32_t *state)
{
	uint32_t	 x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

/* Does s hold a NUL within its first n bytes? */
static inline int
fuzz_has_nul(const void *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#endif /* PGM_FUZZ_H */
