/*
 * pool.c: session pooling of server connections.
 *
 * Each worker keeps the server connections its clients left behind, in
 * an idle list, for the next client with the same user, database and
 * startup parameters.  The cap on server connections per pool holds
 * across all workers through the counters in shared memory: a
 * connection is counted before it is opened and uncounted when it is
 * closed.  A client that finds its pool full waits, and asks the
 * workers that park idle connections of that pool (SIGUSR1) to close
 * one, up to pool.wait_timeout; then it is refused with 53300.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgmirror.h"

#define POOL_WAIT_STEP		50	/* ms between tries of a full pool */
#define POOL_RETRY_MIN		1000	/* ms, back-off of a failed fill */
#define POOL_RETRY_MAX		60000

static struct pgm_server *pool_idle;	/* this worker's parked connections */
static int	 pool_nheld;		/* counted connections we hold */
static char	**pool_last_key;	/* per pool: last client's parameters */
static struct {
	int64_t		 at;		/* no min_size fill before this */
	int64_t		 delay;		/* back-off after a failed fill */
} *pool_retry;

static void	 pool_remember(int, const char *);

/* Record in our scoreboard slot that we hold one connection of pool. */
static void
pool_hold(int pool)
{
	struct pgm_slot *slot = shm_slot(proc_slot);
	int		 i;

	for (i = 0; i < PGM_SLOT_HELD; i++)
		if (slot->held[i] == 0) {
			slot->held[i] = pool + 1;
			break;
		}
	pool_nheld++;
}

/* Uncount one connection of pool, in shared memory and in our slot. */
static void
pool_unhold(int pool)
{
	struct pgm_slot *slot = shm_slot(proc_slot);
	int		 i;

	for (i = 0; i < PGM_SLOT_HELD; i++)
		if (slot->held[i] == pool + 1) {
			slot->held[i] = 0;
			break;
		}
	shm_pool_release(pool);
	pool_nheld--;
}

/* Close a counted connection and give its count back. */
static void
pool_drop(struct pgm_server *s)
{
	int		 pool = s->pool;

	server_close(s);
	pool_unhold(pool);
}

/* Has a connection lived longer than server.lifetime? */
static int
pool_expired(const struct pgm_server *s, int64_t now)
{
	return pgm_conf->server_lifetime > 0 && now - s->created >
	    (int64_t)pgm_conf->server_lifetime * 1000;
}

/* Put a connection on the idle list, and say so in shared memory. */
static void
pool_park(struct pgm_server *s)
{
	struct pgm_slot *slot = shm_slot(proc_slot);
	int		 i;

	s->used = net_now_ms();
	s->next = pool_idle;
	pool_idle = s;
	for (i = 0; i < PGM_SLOT_HELD; i++)
		if (slot->parked[i] == 0) {
			slot->parked[i] = s->pool + 1;
			break;
		}
	slot->idle_servers++;
	__atomic_add_fetch(&pgm_shm->pools[s->pool].idle, 1,
	    __ATOMIC_RELAXED);
}

/* Take a connection off the idle list. */
static void
pool_unlink(struct pgm_server *s)
{
	struct pgm_slot *slot = shm_slot(proc_slot);
	struct pgm_server **pp;
	int		 i;

	for (pp = &pool_idle; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	s->next = NULL;
	for (i = 0; i < PGM_SLOT_HELD; i++)
		if (slot->parked[i] == s->pool + 1) {
			slot->parked[i] = 0;
			break;
		}
	slot->idle_servers--;
	__atomic_sub_fetch(&pgm_shm->pools[s->pool].idle, 1,
	    __ATOMIC_RELAXED);
}

/* Ask the workers that park idle connections of a pool to close one. */
static void
pool_poke_holders(int pool)
{
	int		 i, j;

	for (i = 0; i < pgm_shm->nslots; i++) {
		struct pgm_slot *slot = shm_slot(i);

		if (i == proc_slot || slot->pid <= 0 ||
		    slot->idle_servers <= 0)
			continue;
		for (j = 0; j < PGM_SLOT_HELD; j++)
			if (slot->held[j] == pool + 1) {
				kill(slot->pid, SIGUSR1);
				break;
			}
	}
}

/* Close our parked connections of pools that others are waiting for. */
void
pool_release_for_waiters(void)
{
	struct pgm_server *s, *next;

	for (s = pool_idle; s != NULL; s = next) {
		next = s->next;
		if (pgm_shm->pools[s->pool].waiters > 0) {
			pool_unlink(s);
			log_debug("closing a parked server connection: a client"
			    " is waiting for its pool");
			pool_drop(s);
		}
	}
}

/* Close the least recently used parked connection, if any. */
static int
pool_evict_one(int pool)
{
	struct pgm_server *s, *victim = NULL;

	for (s = pool_idle; s != NULL; s = s->next)
		if ((pool < 0 || s->pool == pool) &&
		    (victim == NULL || s->used < victim->used))
			victim = s;
	if (victim == NULL)
		return 0;
	pool_unlink(victim);
	pool_drop(victim);
	return 1;
}

/*
 * Wait for room in a full pool until the deadline or the client leaves.
 * Returns 1 when a count was taken, 0 on timeout, -1 if the client left
 * or we must stop.  The wait is recorded in our slot so the supervisor
 * can take it back if we die.
 */
static int
pool_wait(const struct pgm_client *cl, int pool, int max, int64_t deadline)
{
	struct pgm_slot	*slot = shm_slot(proc_slot);
	struct pollfd	 pfd[2];
	int		 rc = 0;

	slot->waiting = pool + 1;
	__atomic_add_fetch(&pgm_shm->pools[pool].waiters, 1, __ATOMIC_ACQ_REL);
	for (;;) {
		pool_poke_holders(pool);
		if (shm_pool_try_acquire(pool, max)) {
			rc = 1;
			break;
		}
		if (net_now_ms() >= deadline || proc_interrupted())
			break;
		/* Sleep one step; wake early only if the client hangs up. */
		pfd[0].fd = cl->fd;
		pfd[0].events = POLLRDHUP;
		pfd[1].fd = proc_death_fd;
		pfd[1].events = POLLIN;
		if (proc_poll(pfd, 2, POOL_WAIT_STEP) > 0) {
			if (pfd[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
				rc = -1;
				break;
			}
			if (pfd[1].revents) {
				proc_orphaned();
				break;
			}
		}
	}
	__atomic_sub_fetch(&pgm_shm->pools[pool].waiters, 1, __ATOMIC_ACQ_REL);
	slot->waiting = 0;
	if (rc == 0 && proc_interrupted())
		rc = -1;
	return rc;
}

/*
 * A server connection for the client: a parked one with the same
 * parameters, or a new one within the pool's cap.  Returns NULL with an
 * ErrorResponse for the client in out (empty if the client left).
 */
struct pgm_server *
pool_get(const struct pgm_client *cl, struct pgm_buf *out)
{
	const struct pgm_database *d = &pgm_conf->databases[cl->database];
	const struct pgm_user *u = &pgm_conf->users[cl->user];
	struct pgm_server *s, *next;
	struct pgm_login lg;
	struct pgm_server_error err;
	int		 pool, max, rc;
	char		*key;

	pool = config_pool_index(pgm_conf, cl->user, cl->database);
	max = config_pool_size(pgm_conf, pool);
	if ((key = proto_params_key(&cl->startup)) == NULL) {
		proto_error(out, "FATAL", "53200", "out of memory");
		return NULL;
	}
	for (s = pool_idle; s != NULL; s = next) {
		next = s->next;
		if (s->pool != pool || strcmp(s->params, key) != 0)
			continue;
		pool_unlink(s);
		if (!server_alive(s) || pool_expired(s, net_now_ms())) {
			log_debug("parked server connection closed or expired");
			pool_drop(s);
			continue;
		}
		free(key);
		s->used = net_now_ms();
		return s;
	}
	/* Keep within the slot's record; make room by closing the oldest. */
	while (pool_nheld >= PGM_SLOT_HELD - 1 && pool_evict_one(-1))
		;
	if (!shm_pool_try_acquire(pool, max)) {
		/* One of ours with other parameters is a slot we can free. */
		if (pool_evict_one(pool) && shm_pool_try_acquire(pool, max))
			rc = 1;
		else
			rc = pool_wait(cl, pool, max, net_now_ms() +
			    (int64_t)pgm_conf->pool_wait_timeout * 1000);
		if (rc != 1) {
			free(key);
			if (rc == 0) {
				log_warnx("pool %s/%s is full (%d server "
				    "connections): client refused after %d s",
				    d->name, u->name, max,
				    pgm_conf->pool_wait_timeout);
				proto_error(out, "FATAL", "53300", "too many "
				    "server connections for pool \"%s/%s\" "
				    "(pool_size %d)", d->name, u->name, max);
			}
			return NULL;
		}
	}
	pool_hold(pool);
	pool_remember(pool, key);
	lg.user = cl->user;
	lg.database = cl->database;
	lg.startup = &cl->startup;
	lg.client_key = cl->have_client_key ? cl->scram.client_key : NULL;
	server_error_init(&err);
	s = server_open(&lg, key, &err);
	free(key);
	if (s == NULL) {
		server_error_response(&err, out);
		server_error_free(&err);
		pool_unhold(pool);
		return NULL;
	}
	server_error_free(&err);
	return s;
}

/*
 * Take a connection back from a finished session.  A reusable one is
 * reset and parked unless clients wait for its pool; any other is
 * closed.
 */
void
pool_put(struct pgm_server *s, int reusable)
{
	if (s == NULL)
		return;
	if (!reusable || pgm_shm->pools[s->pool].waiters > 0 ||
	    proc_interrupted() || pool_expired(s, net_now_ms()) ||
	    server_reset(s) == -1) {
		pool_drop(s);
		return;
	}
	pool_park(s);
}

/*
 * Remember the parameter key of the last client of a pool, so min_size
 * connections are opened in the shape clients actually ask for.
 */
static void
pool_remember(int pool, const char *key)
{
	static int	 npools;
	char		*k;

	if (pool_last_key == NULL) {
		npools = pgm_shm->npools;
		if ((pool_last_key = calloc(npools ? npools : 1,
		    sizeof(*pool_last_key))) == NULL)
			return;
	}
	if (pool >= npools || (k = strdup(key)) == NULL)
		return;
	free(pool_last_key[pool]);
	pool_last_key[pool] = k;
}

/*
 * Open one parked connection for a pool below pool.min_size, with the
 * startup parameters of its last client here (none if there was none).
 * The count is taken against min_size itself, so idle workers doing
 * this at once never overshoot it.
 */
static int
pool_fill_min(int pool)
{
	static struct pgm_startup startup;
	struct pgm_login lg;
	struct pgm_server_error err;
	struct pgm_server *s;
	char		*key;
	int		 min = pgm_conf->pool_min_size;

	if (config_pool_size(pgm_conf, pool) < min)
		min = config_pool_size(pgm_conf, pool);
	if (!shm_pool_try_acquire(pool, min))
		return 0;
	memset(&lg, 0, sizeof(lg));
	memset(&startup, 0, sizeof(startup));
	lg.user = pool / pgm_conf->ndatabases;
	lg.database = pool % pgm_conf->ndatabases;
	lg.startup = &startup;
	key = strdup(pool_last_key != NULL && pool_last_key[pool] != NULL ?
	    pool_last_key[pool] : "");
	if (key == NULL) {
		shm_pool_release(pool);
		return -1;
	}
	/* The startup parameters back from the key, exactly as sent. */
	if (proto_params_split(key, &startup) == -1) {
		log_warnx("pool.min_size: a stored parameter key is corrupt");
		free(key);
		shm_pool_release(pool);
		return -1;
	}
	pool_hold(pool);
	server_error_init(&err);
	s = server_open(&lg, pool_last_key != NULL &&
	    pool_last_key[pool] != NULL ? pool_last_key[pool] : "", &err);
	server_error_free(&err);
	free(key);
	if (s == NULL) {
		pool_unhold(pool);
		return -1;
	}
	log_debug("opened a server connection to keep pool.min_size");
	pool_park(s);
	return 0;
}

/*
 * Periodic care of parked connections, run by idle workers: drop the
 * ones that died, outlived server.lifetime or sat parked longer than
 * server.idle_timeout (unless the pool would fall below pool.min_size),
 * and keep pool.min_size open per pool (at most one new connection per
 * pool and tick from each worker).
 */
void
pool_maintain(void)
{
	struct pgm_slot	*slot = shm_slot(proc_slot);
	struct pgm_server *s, *next;
	int64_t		 now;
	int		 pool;

	now = net_now_ms();
	for (s = pool_idle; s != NULL; s = next) {
		next = s->next;
		if (!server_alive(s) || pool_expired(s, now) ||
		    (pgm_conf->server_idle_timeout > 0 && now - s->used >
		    (int64_t)pgm_conf->server_idle_timeout * 1000 &&
		    pgm_shm->pools[s->pool].count > pgm_conf->pool_min_size)) {
			pool_unlink(s);
			pool_drop(s);
		}
	}
	if (pgm_conf->pool_min_size == 0)
		return;
	if (pool_retry == NULL && (pool_retry = calloc(pgm_shm->npools ?
	    pgm_shm->npools : 1, sizeof(*pool_retry))) == NULL)
		return;
	now = net_now_ms();
	for (pool = 0; pool < pgm_shm->npools; pool++) {
		if (!config_pool_valid(pgm_conf, pool) ||
		    pgm_shm->pools[pool].count >= pgm_conf->pool_min_size ||
		    pool_nheld >= PGM_SLOT_HELD - 1 || proc_interrupted() ||
		    now < pool_retry[pool].at)
			continue;
		/* Busy while connecting, so the supervisor forks spares. */
		slot->state = SLOT_BUSY;
		if (pool_fill_min(pool) == -1) {
			pool_retry[pool].delay = pool_retry[pool].delay ?
			    pool_retry[pool].delay * 2 : POOL_RETRY_MIN;
			if (pool_retry[pool].delay > POOL_RETRY_MAX)
				pool_retry[pool].delay = POOL_RETRY_MAX;
			pool_retry[pool].at = net_now_ms() +
			    pool_retry[pool].delay;
		} else
			pool_retry[pool].delay = 0;
		slot->state = SLOT_IDLE;
	}
}

/* Close every parked connection (worker exit). */
void
pool_close_all(void)
{
	while (pool_evict_one(-1))
		;
}
