/*
 * test_shm.c: TAP unit tests for src/shm.c (the shared-memory segment).
 *
 * Owns: the cancel-key lookup over the scoreboard (shm_cancel_lookup)
 * and what shm_slot_reclaim does to a slot's cancel key.  A worker
 * killed inside its seqlock write (worker_cancel_publish) leaves its
 * slot's cancel_gen odd: the lookup must still return, skipping that
 * slot with a log line and serving the others, and reclaiming the slot
 * must make it even again, with the key gone, so that the next worker
 * there publishes with the right parity.
 *
 * The segment is the one shm_create makes for a config of 3 workers
 * (4 slots with the refuser's).  Each lookup runs in a child process
 * that the test kills if it has not returned in 5 seconds, so a lookup
 * that spins fails a test instead of hanging the suite; what the child
 * logs goes to a file the test reads.
 */
#include <sys/mman.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgmirror.h"
#include "tap.h"

#define LOOKUP_TIMEOUT	5000	/* ms a lookup may take before it is killed */

/* What a lookup in a child gave. */
struct result {
	int		 slot;
	struct pgm_cancel_dest to;
	long		 ms;		/* how long it took */
	char		 log[512];	/* what it logged */
};

static long
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The address a slot's session forwards cancels to: 127.0.0.1:port. */
static void
slot_addr(struct pgm_slot *s, int port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&s->server_addr, 0, sizeof(s->server_addr));
	memcpy(&s->server_addr, &sin, sizeof(sin));
	s->server_addrlen = sizeof(sin);
}

/*
 * Write a slot's cancel key as worker_cancel_publish does; with
 * killed, stop before the closing increment, as a worker killed there.
 */
static void
publish(struct pgm_slot *s, uint32_t pid, uint32_t key, int port, int killed)
{
	__atomic_add_fetch(&s->cancel_gen, 1, __ATOMIC_ACQ_REL);
	s->cancel_pid = pid;
	s->cancel_key = key;
	s->server_pid = pid + 4000;
	s->server_key = key ^ 0x5555;
	slot_addr(s, port);
	if (!killed)
		__atomic_add_fetch(&s->cancel_gen, 1, __ATOMIC_ACQ_REL);
}

/*
 * shm_cancel_lookup(pid, key) in a child.  Returns 0 with *res filled,
 * or -1 when the child had not returned after LOOKUP_TIMEOUT ms.
 */
static int
lookup(uint32_t pid, uint32_t key, struct result *res)
{
	struct result	*sh;
	FILE		*lf;
	pid_t		 child;
	long		 t0;
	size_t		 n;
	int		 status, done = 0;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || (lf = tmpfile()) == NULL) {
		perror("mmap/tmpfile");
		abort();
	}
	memset(sh, 0, sizeof(*sh));
	sh->slot = -99;
	fflush(stdout);
	fflush(stderr);
	if ((child = fork()) == -1) {
		perror("fork");
		abort();
	}
	if (child == 0) {
		dup2(fileno(lf), 2);
		t0 = now_ms();
		sh->slot = shm_cancel_lookup(pid, key, &sh->to);
		sh->ms = now_ms() - t0;
		fflush(stderr);
		_exit(0);
	}
	for (t0 = now_ms(); now_ms() - t0 < LOOKUP_TIMEOUT; usleep(5000))
		if (waitpid(child, &status, WNOHANG) == child) {
			done = 1;
			break;
		}
	if (!done) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		tap_diag("lookup of key (%u, %u): no answer after %d ms",
		    pid, key, LOOKUP_TIMEOUT);
	}
	*res = *sh;
	rewind(lf);
	n = fread(res->log, 1, sizeof(res->log) - 1, lf);
	res->log[n] = '\0';
	fclose(lf);
	munmap(sh, sizeof(*sh));
	return done ? 0 : -1;
}

static int
port_of(const struct pgm_cancel_dest *to)
{
	const struct sockaddr_in *sin = (const void *)&to->addr;

	return to->addrlen == sizeof(*sin) && sin->sin_family == AF_INET ?
	    ntohs(sin->sin_port) : -1;
}

static void
test_cancel_lookup(void)
{
	struct pgm_slot	*s1 = shm_slot(1), *s2 = shm_slot(2);
	struct result	 r;
	int		 rc, gen;

	publish(s2, 1002, 0xabc2, 5432, 0);
	rc = lookup(1002, 0xabc2, &r);
	tap_ok(rc == 0 && r.slot == 2 && r.to.pid == 5002 &&
	    r.to.key == (0xabc2 ^ 0x5555) && port_of(&r.to) == 5432,
	    "a published key is found: slot 2, its server's pid, key and "
	    "address");
	rc = lookup(1002, 0xabc3, &r);
	tap_ok(rc == 0 && r.slot == -1, "a wrong key is found nowhere");

	/* Slot 1: its worker was killed inside worker_cancel_publish. */
	publish(s1, 1001, 0xabc1, 5433, 1);
	tap_ok(s1->cancel_gen & 1, "slot 1 left odd, as by a worker killed "
	    "while publishing (cancel_gen %d)", s1->cancel_gen);
	rc = lookup(1002, 0xabc2, &r);
	tap_ok(rc == 0 && r.slot == 2 && port_of(&r.to) == 5432,
	    "with slot 1 stuck odd, a cancel for slot 2 (after it) is still "
	    "found, with its server's address");
	tap_ok(rc == 0 && r.ms < 2000, "and the lookup returns within its "
	    "bound (%ld ms)", r.ms);
	tap_ok(rc == 0 && strstr(r.log, "slot 1") != NULL &&
	    strstr(r.log, "skipped") != NULL, "the skipped slot is logged");
	if (rc == 0 && r.log[0] != '\0')
		tap_diag("logged: %s", r.log);
	rc = lookup(1001, 0xabc1, &r);
	tap_ok(rc == 0 && r.slot == -1, "the key half written in slot 1 is "
	    "not trusted: not found, and the lookup returns");

	/* The supervisor reaps that worker and reclaims its slot. */
	shm_slot_reclaim(s1);
	gen = s1->cancel_gen;
	tap_ok((gen & 1) == 0 && s1->cancel_pid == 0 && s1->cancel_key == 0 &&
	    s1->server_addrlen == 0, "shm_slot_reclaim: cancel_gen even "
	    "again (%d), the key and address cleared", gen);
	rc = lookup(1001, 0xabc1, &r);
	tap_ok(rc == 0 && r.slot == -1 && r.log[0] == '\0',
	    "after the reclaim: the old key is not found, and no slot is "
	    "skipped");
	publish(s1, 1011, 0xdef1, 5434, 0);
	rc = lookup(1011, 0xdef1, &r);
	tap_ok(rc == 0 && r.slot == 1 && port_of(&r.to) == 5434,
	    "the next worker in slot 1 publishes its key and it is found");

	/* A slot reclaimed between two whole writes. */
	gen = s2->cancel_gen;
	shm_slot_reclaim(s2);
	rc = lookup(1002, 0xabc2, &r);
	tap_ok((s2->cancel_gen & 1) == 0 && s2->cancel_gen != gen &&
	    rc == 0 && r.slot == -1, "reclaiming a slot with a whole key: "
	    "cancel_gen moves on, even, and the key is gone");
}

int
main(void)
{
	struct pgm_config c;

	log_init(1, 0);
	log_setproc("test_shm", -1);
	memset(&c, 0, sizeof(c));
	c.workers_max = 3;
	if (shm_create(&c) == -1) {
		perror("shm_create");
		return 1;
	}
	tap_plan(12);
	tap_is_int(pgm_shm->nslots, 4, "shm_create: 3 workers and the "
	    "refuser, 4 slots");
	test_cancel_lookup();
	return tap_done();
}
