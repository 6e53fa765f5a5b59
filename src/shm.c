/*
 * shm.c: the shared-memory segment.
 *
 * The supervisor creates one anonymous shared mapping before the first
 * fork, sized from the config, and never resizes it; every process
 * inherits it at the same address.  Layout: the header, then one
 * scoreboard slot per possible worker, then one counter block per pool
 * ((user, database) pair), then for mirroring: the counters of each
 * mirror, one ring header per (mirror, mirror worker), one entry per
 * mirror worker, the counters and maintenance flag of each database,
 * and the rings' data (mqueue.c says how rings work).
 * The mapping starts zeroed and untouched pages cost no memory, so the
 * rings take real memory only as far as they have been filled.
 *
 * Rules: a scoreboard slot is written by the worker that owns it, and
 * by the supervisor only while no process owns it (before the fork,
 * after the reap), except that it marks an idle slot SLOT_EXITING when
 * it asks that worker to go (a state the worker may overwrite, which
 * is harmless: it exits at its next turn).  Pool counters are changed by any worker with
 * atomic read-modify-write operations only.  A worker records in its
 * slot's held[] each server connection it counts, right after counting
 * it; when a worker dies its connections are closed by the kernel and
 * the supervisor gives back what held[] says (shm_slot_reclaim).  A
 * kill between the count and the record leaks one count of that pool
 * until restart: a window of a few instructions.  A slot's cancel key
 * is written by its worker under a seqlock (cancel_gen, odd during the
 * write); a worker killed inside the write leaves it odd, so readers
 * (shm_cancel_lookup) skip a slot that stays odd after a bounded wait,
 * and the reclaim makes it even again with the key withdrawn.
 */
#include <sys/eventfd.h>
#include <sys/mman.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "pgmirror.h"

struct pgm_shm	*pgm_shm;

#define SHM_MAGIC	0x70676d31	/* "pgm1" */

/* Reads of a cancel key being written, and the pause between two. */
#define SHM_CANCEL_TRIES	100
#define SHM_CANCEL_PAUSE_NS	100000

/* Round up to a cache line. */
static size_t
shm_align(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

/* Bytes of each ring of mirror i: its queue_bytes shared by the workers. */
static size_t
shm_ring_bytes(const struct pgm_config *c, int i)
{
	return ((size_t)c->mirrors[i].queue_bytes / c->mirror_workers) &
	    ~(size_t)7;
}

/* Create the segment for this config.  Returns 0 or -1 with errno. */
int
shm_create(const struct pgm_config *c)
{
	size_t		 hdr, slots, pools, mirrors, rings, mworkers, dbs, data;
	size_t		 total;
	size_t		 off;
	int		 npools = c->nusers * c->ndatabases;
	int		 nmw = c->nmirrors > 0 ? c->mirror_workers : 0;
	int		 i, w;
	uint8_t		*base;

	hdr = shm_align(sizeof(struct pgm_shm));
	if ((size_t)c->workers_max > SIZE_MAX / 2 / sizeof(struct pgm_slot) ||
	    (size_t)npools > SIZE_MAX / 2 / sizeof(struct pgm_pool_shared)) {
		errno = EOVERFLOW;
		return -1;
	}
	/* One slot beyond workers.max for the refuser. */
	slots = shm_align((size_t)(c->workers_max + 1) *
	    sizeof(struct pgm_slot));
	pools = shm_align((size_t)(npools ? npools : 1) *
	    sizeof(struct pgm_pool_shared));
	mirrors = shm_align((size_t)c->nmirrors *
	    sizeof(struct pgm_mirror_shared));
	rings = shm_align((size_t)c->nmirrors * nmw *
	    sizeof(struct pgm_mqueue));
	mworkers = shm_align((size_t)nmw * sizeof(struct pgm_mworker));
	dbs = shm_align((size_t)c->ndatabases * (sizeof(struct pgm_db_stats) +
	    1));
	for (data = 0, i = 0; i < c->nmirrors; i++)
		data += (size_t)nmw * shm_align(shm_ring_bytes(c, i));
	total = hdr + slots + pools + mirrors + rings + mworkers + dbs +
	    PGM_CONFIG_TEXT_MAX + data;
	/* Zero-filled by the kernel, page by page as first touched. */
	base = mmap(NULL, total, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	pgm_shm = (struct pgm_shm *)base;
	pgm_shm->magic = SHM_MAGIC;
	pgm_shm->nslots = c->workers_max + 1;
	pgm_shm->npools = npools;
	pgm_shm->nmirrors = c->nmirrors;
	pgm_shm->nmworkers = nmw;
	off = hdr;
	pgm_shm->slots = (struct pgm_slot *)(base + off);
	off += slots;
	pgm_shm->pools = (struct pgm_pool_shared *)(base + off);
	off += pools;
	pgm_shm->mirrors = (struct pgm_mirror_shared *)(base + off);
	off += mirrors;
	pgm_shm->mqueues = (struct pgm_mqueue *)(base + off);
	off += rings;
	pgm_shm->mworkers = (struct pgm_mworker *)(base + off);
	off += mworkers;
	pgm_shm->dbstats = (struct pgm_db_stats *)(base + off);
	pgm_shm->maint_db = (volatile uint8_t *)(base + off +
	    (size_t)c->ndatabases * sizeof(struct pgm_db_stats));
	off += dbs;
	pgm_shm->conf_text = (char *)(base + off);
	off += PGM_CONFIG_TEXT_MAX;
	for (w = 0; w < nmw; w++)
		if ((pgm_shm->mworkers[w].efd = eventfd(0,
		    EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
			return -1;
	for (i = 0; i < c->nmirrors; i++) {
		const struct pgm_mirror *m = &c->mirrors[i];

		for (w = 0; w < nmw; w++) {
			if (mqueue_init(&pgm_shm->mqueues[i * nmw + w],
			    base + off, shm_ring_bytes(c, i),
			    (uint32_t)((m->queue + nmw - 1) / nmw),
			    shm_ring_bytes(c, i),
			    pgm_shm->mworkers[w].efd) == -1)
				return -1;
			off += shm_align(shm_ring_bytes(c, i));
		}
	}
	return 0;
}

/* The scoreboard slot of worker n. */
struct pgm_slot *
shm_slot(int n)
{
	return &pgm_shm->slots[n];
}

/*
 * Take one server connection of a pool if it has fewer than max.
 * Returns 1 when taken, 0 when the pool is full.
 */
int
shm_pool_try_acquire(int pool, int max)
{
	volatile int	*count = &pgm_shm->pools[pool].count;
	int		 cur;

	cur = __atomic_load_n(count, __ATOMIC_RELAXED);
	while (cur < max) {
		if (__atomic_compare_exchange_n(count, &cur, cur + 1, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return 1;
	}
	return 0;
}

/* Give back one server connection of a pool. */
void
shm_pool_release(int pool)
{
	__atomic_sub_fetch(&pgm_shm->pools[pool].count, 1, __ATOMIC_ACQ_REL);
}

/* How many scoreboard slots are in a state. */
int
shm_count_state(int state)
{
	int		 i, n = 0;

	for (i = 0; i < pgm_shm->nslots; i++)
		if (pgm_shm->slots[i].state == state)
			n++;
	return n;
}

/*
 * Give back the pool counts a dead worker's slot still holds: its
 * server connections, its parked ones and its wait for a pool; and
 * withdraw its cancel key.
 */
void
shm_slot_reclaim(struct pgm_slot *slot)
{
	int		 i, pool;

	for (i = 0; i < PGM_SLOT_HELD; i++) {
		if ((pool = slot->held[i]) != 0 && pool - 1 < pgm_shm->npools)
			shm_pool_release(pool - 1);
		slot->held[i] = 0;
		if ((pool = slot->parked[i]) != 0 && pool - 1 < pgm_shm->npools)
			__atomic_sub_fetch(&pgm_shm->pools[pool - 1].idle, 1,
			    __ATOMIC_RELAXED);
		slot->parked[i] = 0;
	}
	if ((pool = slot->waiting) != 0 && pool - 1 < pgm_shm->npools)
		__atomic_sub_fetch(&pgm_shm->pools[pool - 1].waiters, 1,
		    __ATOMIC_ACQ_REL);
	slot->waiting = 0;
	slot->idle_servers = 0;
	slot->session = 0;
	/*
	 * Withdraw its cancel key, as a write under the seqlock.  A worker
	 * killed inside its own write left cancel_gen odd: then this write
	 * only ends that one, and cancel_gen is even again for the next
	 * worker.
	 */
	if ((__atomic_load_n(&slot->cancel_gen, __ATOMIC_ACQUIRE) & 1) == 0)
		__atomic_add_fetch(&slot->cancel_gen, 1, __ATOMIC_ACQ_REL);
	slot->cancel_pid = 0;
	slot->cancel_key = 0;
	slot->server_pid = 0;
	slot->server_key = 0;
	slot->server_addrlen = 0;
	__atomic_add_fetch(&slot->cancel_gen, 1, __ATOMIC_ACQ_REL);
}

/*
 * Find the slot whose client was given the cancel key (pid, key),
 * compared in constant time, and copy where to forward a cancel into
 * *to.  Returns the slot's index, or -1 when no slot has that key.
 * A slot's key is read under its seqlock (cancel_gen, odd while its
 * worker writes it); one that stays odd or keeps changing for
 * SHM_CANCEL_TRIES reads, some 10 ms (its worker died inside the
 * write, and the supervisor has not reclaimed the slot yet), is
 * skipped with a log line, so that it cannot hold up the search.
 */
int
shm_cancel_lookup(uint32_t pid, uint32_t key, struct pgm_cancel_dest *to)
{
	const struct timespec pause = { 0, SHM_CANCEL_PAUSE_NS };
	struct pgm_slot	*slot;
	uint32_t	 want[2], have[2];
	int		 i, gen, tries;

	want[0] = pid;
	want[1] = key;
	for (i = 0; i < pgm_shm->nslots; i++) {
		slot = &pgm_shm->slots[i];
		for (tries = 0; tries < SHM_CANCEL_TRIES; tries++) {
			if (tries > 0)
				nanosleep(&pause, NULL);
			gen = __atomic_load_n(&slot->cancel_gen,
			    __ATOMIC_ACQUIRE);
			if (gen & 1)
				continue;
			have[0] = slot->cancel_pid;
			have[1] = slot->cancel_key;
			to->pid = slot->server_pid;
			to->key = slot->server_key;
			to->addrlen = slot->server_addrlen;
			if (to->addrlen > sizeof(to->addr))
				to->addrlen = 0;
			memcpy(&to->addr, (const void *)&slot->server_addr,
			    sizeof(to->addr));
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (gen == __atomic_load_n(&slot->cancel_gen,
			    __ATOMIC_ACQUIRE))
				break;
		}
		if (tries == SHM_CANCEL_TRIES) {
			log_warnx("cancel request: the key of worker slot %d "
			    "is still being written: slot skipped", i);
			continue;
		}
		if (have[0] != 0 && to->addrlen > 0 &&
		    CRYPTO_memcmp(want, have, sizeof(want)) == 0)
			return i;
	}
	return -1;
}

/*
 * Publish the text of the running config for generation gen (the
 * supervisor only).  Workers that must act on a reload parse the same
 * text, never a file that may have changed since.
 */
void
shm_config_put(const struct pgm_config *c, int gen)
{
	if (c->text == NULL || c->textlen >= PGM_CONFIG_TEXT_MAX)
		return;
	__atomic_add_fetch(&pgm_shm->conf_seq, 1, __ATOMIC_SEQ_CST);
	memcpy(pgm_shm->conf_text, c->text, c->textlen);
	pgm_shm->conf_text[c->textlen] = '\0';
	pgm_shm->conf_len = c->textlen;
	pgm_shm->conf_gen = gen;
	__atomic_add_fetch(&pgm_shm->conf_seq, 1, __ATOMIC_SEQ_CST);
}

/*
 * A copy of the running config's text (free() it) and its generation,
 * or NULL when memory is short or none was published.
 */
char *
shm_config_get(int *gen)
{
	uint32_t	 s1, s2;
	size_t		 len;
	char		*text;

	for (;;) {
		s1 = __atomic_load_n(&pgm_shm->conf_seq, __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		len = pgm_shm->conf_len;
		if (len == 0 || len >= PGM_CONFIG_TEXT_MAX ||
		    (text = malloc(len + 1)) == NULL)
			return NULL;
		memcpy(text, pgm_shm->conf_text, len);
		text[len] = '\0';
		*gen = pgm_shm->conf_gen;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&pgm_shm->conf_seq, __ATOMIC_ACQUIRE);
		if (s1 == s2)
			return text;
		free(text);
	}
}
