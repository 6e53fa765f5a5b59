/*
 * cancel.c: cancel requests.
 *
 * A session's worker publishes, in its scoreboard slot, the key it gave
 * its client and the server connection to forward a cancel to (a
 * seqlock: cancel_gen is odd while it writes).  A CancelRequest may
 * reach any worker, which finds the session with shm_cancel_lookup and
 * forwards the request with the server's own key, or, when maintenance
 * holds that session's request unsent, flags it for the session's own
 * worker (relay.c), which drops and answers it.
 */
#include <sys/socket.h>

#include <string.h>

#include "pgmirror.h"

/* Publish our client's cancel key and where to forward a cancel. */
void
cancel_publish(const struct pgm_client *cl, const struct pgm_server *s)
{
	struct pgm_slot	*slot = shm_slot(proc_slot);

	__atomic_add_fetch(&slot->cancel_gen, 1, __ATOMIC_ACQ_REL);
	slot->cancel_pid = cl->cancel_pid;
	slot->cancel_key = cl->cancel_key;
	slot->server_pid = s->be_pid;
	slot->server_key = s->be_key;
	memcpy(&slot->server_addr, &s->addr, sizeof(s->addr));
	slot->server_addrlen = s->addrlen;
	__atomic_add_fetch(&slot->cancel_gen, 1, __ATOMIC_ACQ_REL);
}

/* Withdraw our client's cancel key. */
void
cancel_withdraw(void)
{
	struct pgm_slot	*slot = shm_slot(proc_slot);

	__atomic_add_fetch(&slot->cancel_gen, 1, __ATOMIC_ACQ_REL);
	slot->cancel_pid = 0;
	slot->cancel_key = 0;
	__atomic_add_fetch(&slot->cancel_gen, 1, __ATOMIC_ACQ_REL);
}

/*
 * A CancelRequest arrived: find the session it names in the scoreboard
 * (shm_cancel_lookup) and forward it to that session's server with the
 * server's own key.  Unknown keys are ignored, as PostgreSQL does.
 */
void
cancel_request(const struct pgm_startup *st)
{
	struct pgm_cancel_dest to;
	struct pgm_slot	*slot;
	int		 i;

	if ((i = shm_cancel_lookup(st->cancel_pid, st->cancel_key,
	    &to)) == -1) {
		log_info("cancel request with an unknown key ignored");
		return;
	}
	slot = shm_slot(i);
	/* A request held by maintenance never reached the server. */
	__atomic_store_n(&slot->cancel_held, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&slot->txstate, __ATOMIC_SEQ_CST) ==
	    SLOT_TX_WAITING) {
		log_info("cancel request for a request held by maintenance");
		return;
	}
	__atomic_store_n(&slot->cancel_held, 0, __ATOMIC_SEQ_CST);
	if (server_cancel_addr(&to.addr, to.addrlen, to.pid, to.key) == -1)
		log_warn("cannot forward cancel request");
	else
		log_info("cancel request forwarded to backend %u", to.pid);
}
