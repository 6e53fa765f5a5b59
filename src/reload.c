/*
 * reload.c: the config side of a reload.
 *
 * The file is read and checked again (reload_check says whether it
 * would be taken); what sizes shared memory cannot change, and what
 * needs a restart (the listening addresses, logging, the control
 * socket) keeps its running value, with a warning.  When all is well
 * the new config becomes pgm_conf, its text is published in shared
 * memory and the generation moves on.  What the processes must then do
 * (idle workers of the old generation leave, mirror workers whose
 * destinations changed restart) is the supervisor's: reload_apply says
 * it in its result, so that this module, which control.c calls too,
 * never signals a process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirror.h"

/*
 * Do two configs size shared memory the same: the settings that size
 * it, the same databases and users in the same order, the same mirrors?
 */
static int
reload_same_shape(const struct pgm_config *a, const struct pgm_config *b)
{
	const struct pgm_setting *s;
	int		 i;

	if (a->ndatabases != b->ndatabases || a->nusers != b->nusers ||
	    a->nmirrors != b->nmirrors)
		return 0;
	for (s = config_settings; s->key != NULL; s++)
		if (((s->flags & SET_SHM) || ((s->flags & SET_SHM_MIRRORS) &&
		    a->nmirrors > 0)) && !config_setting_same(s, a, b))
			return 0;
	for (i = 0; i < a->nmirrors; i++)
		if (a->mirrors[i].src != b->mirrors[i].src ||
		    a->mirrors[i].dst != b->mirrors[i].dst ||
		    a->mirrors[i].queue != b->mirrors[i].queue ||
		    a->mirrors[i].queue_bytes != b->mirrors[i].queue_bytes)
			return 0;
	for (i = 0; i < a->ndatabases; i++)
		if (strcmp(a->databases[i].name, b->databases[i].name) != 0)
			return 0;
	for (i = 0; i < a->nusers; i++)
		if (strcmp(a->users[i].name, b->users[i].name) != 0 ||
		    (a->users[i].database == NULL) !=
		    (b->users[i].database == NULL) ||
		    (a->users[i].database != NULL &&
		    strcmp(a->users[i].database, b->users[i].database) != 0))
			return 0;
	return 1;
}

/* Do two strings, either maybe NULL, say the same? */
static int
reload_same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/*
 * Would mirror workers connect to the destinations the same way under
 * both configs (same servers, credentials, TLS, clear-text password
 * policy and timeouts)?  The
 * shapes are known to be the same.
 */
static int
reload_same_mirroring(const struct pgm_config *a, const struct pgm_config *b)
{
	int		 i;

	for (i = 0; i < a->nmirrors; i++)
		if (!config_same_connection(&a->databases[a->mirrors[i].dst],
		    &b->databases[b->mirrors[i].dst]) ||
		    config_allow_cleartext(a, &a->databases[a->mirrors[i].dst])
		    != config_allow_cleartext(b,
		    &b->databases[b->mirrors[i].dst]))
			return 0;
	for (i = 0; i < a->nusers; i++) {
		const struct pgm_user *x = &a->users[i], *y = &b->users[i];

		if (!reload_same_str(x->plain, y->plain) ||
		    x->has_md5 != y->has_md5 ||
		    memcmp(x->md5, y->md5, sizeof(x->md5)) != 0 ||
		    x->has_scram != y->has_scram ||
		    memcmp(&x->scram, &y->scram, sizeof(x->scram)) != 0)
			return 0;
	}
	return a->tls_server_mode == b->tls_server_mode &&
	    reload_same_str(a->tls_ca_file, b->tls_ca_file) &&
	    reload_same_str(a->tls_server_cert_file, b->tls_server_cert_file) &&
	    reload_same_str(a->tls_server_key_file, b->tls_server_key_file) &&
	    a->server_connect_timeout == b->server_connect_timeout &&
	    a->mirror_retry_max == b->mirror_retry_max &&
	    a->mirror_replay_timeout == b->mirror_replay_timeout;
}

/* Do two configs listen on the same addresses? */
static int
reload_same_listen(const struct pgm_config *a, const struct pgm_config *b)
{
	int		 i;

	if (a->nlisten != b->nlisten)
		return 0;
	for (i = 0; i < a->nlisten; i++) {
		const struct pgm_listen *x = &a->listen[i], *y = &b->listen[i];

		if (x->port != y->port || (x->host == NULL) != (y->host == NULL)
		    || (x->path == NULL) != (y->path == NULL) ||
		    (x->host && strcmp(x->host, y->host) != 0) ||
		    (x->path && strcmp(x->path, y->path) != 0))
			return 0;
	}
	return 1;
}

/*
 * Load the config file again and check that it can replace the running
 * one without a restart.  Returns it, or NULL with the reason in why
 * (and every error logged).
 */
static struct pgm_config *
reload_load_checked(char *why, size_t len, int *refused)
{
	static struct pgm_config_errors errs;
	struct pgm_config *nc;
	int		 i;

	if ((nc = config_load(pgm_conf->path, &errs)) == NULL) {
		for (i = 0; i < errs.n; i++)
			log_warnx("reload: %s:%d: %s", errs.file,
			    errs.err[i].line, errs.err[i].msg);
		snprintf(why, len, "%s:%d: %s%s", errs.file,
		    errs.n ? errs.err[0].line : 0,
		    errs.n ? errs.err[0].msg : "cannot load",
		    errs.n > 1 ? " (and more errors, see the log)" : "");
		return NULL;
	}
	*refused = 0;
	if (!reload_same_shape(pgm_conf, nc)) {
		*refused = 1;
		snprintf(why, len, "workers.max, the names and order of the "
		    "databases and users entries, the mirrors (their source, "
		    "destination, queue and queue_bytes) or mirror.workers "
		    "changed; they size shared memory: restart pgmirror to "
		    "apply this file");
		config_free(nc);
		return NULL;
	}
	return nc;
}

/* Would a reload take the file on disk?  0, or -1 with the reason. */
int
reload_check(char *why, size_t len)
{
	struct pgm_config *nc;
	int		 refused;

	if ((nc = reload_load_checked(why, len, &refused)) == NULL)
		return -1;
	config_free(nc);
	return 0;
}

/* What the supervisor must do after reloads, since it last asked. */
static int	 reload_todo;

/*
 * Reload (SIGHUP, pgmirrorctl reload, the admin console's RELOAD, a
 * switchover): read and check the config file again, load its
 * certificates, and if all is well make it the running config: new
 * workers are forked with it, idle workers of the old one leave at once
 * (RELOAD_NEW_GENERATION) and busy ones when their client does.
 * Shared memory, and so every counter, stays.  What it sizes cannot
 * change without a restart, nor can the listening addresses.  Returns
 * 0 when the new config runs, -1 when the old one stays, with the
 * reason in why (and in the log).
 */
int
reload_apply(char *why, size_t len)
{
	struct pgm_config *nc, *old = pgm_conf;
	const struct pgm_setting *s;
	char		 tlserr[512];
	int		 retire, refused = 0;

	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)(mqueue_now_ns() / 1000));
	log_info("reloading %s", old->path);
	if ((nc = reload_load_checked(why, len, &refused)) == NULL)
		goto keep;
	if (tls_init(nc, tlserr, sizeof(tlserr)) == -1) {
		snprintf(why, len, "%s", tlserr);
		config_free(nc);
		goto keep;
	}
	/*
	 * What needs a restart keeps its running value, so the running
	 * config always says which addresses are open and where logs go.
	 */
	if (!reload_same_listen(old, nc)) {
		struct pgm_listen *l = nc->listen;
		int		 n = nc->nlisten;

		log_warnx("reload: listen changed, which needs a restart; "
		    "still listening on the old addresses");
		nc->listen = old->listen;
		nc->nlisten = old->nlisten;
		old->listen = l;
		old->nlisten = n;
	}
	for (s = config_settings; s->key != NULL; s++)
		if ((s->flags & SET_RESTART) && !config_setting_same(s, old, nc)) {
			log_warnx("reload: %s needs a restart", s->key);
			config_setting_take(s, nc, old);
		}
	/*
	 * Mirror workers keep their destination sessions unless what they
	 * connect with changed: then each replays what it took and leaves,
	 * and its successor, forked with the new config, takes the ring
	 * over.
	 */
	retire = nc->nmirrors > 0 && !reload_same_mirroring(old, nc);
	pgm_conf = nc;
	config_free(old);
	/* The text first: a worker that sees the generation reads it. */
	shm_config_put(nc, pgm_shm->generation + 1);
	__atomic_add_fetch(&pgm_shm->generation, 1, __ATOMIC_SEQ_CST);
	reload_todo |= RELOAD_NEW_GENERATION;
	if (retire) {
		log_info("reload: what mirror workers connect with changed; "
		    "they finish what they hold and restart");
		reload_todo |= RELOAD_RETIRE_MIRRORS;
	}
	log_info("configuration reloaded (generation %d)",
	    pgm_shm->generation);
	sd_notify(0, "READY=1");
	return 0;
keep:
	if (refused)
		log_warnx("reload refused: %s", why);
	else
		log_warnx("reload failed: %s; keeping the running "
		    "configuration", why);
	sd_notify(0, "READY=1");
	return -1;
}


/*
 * What the processes must do after the reloads applied since the last
 * call (RELOAD_* bits), for the supervisor; 0 when nothing.
 */
int
reload_take(void)
{
	int		 todo = reload_todo;

	reload_todo = 0;
	return todo;
}
