# 160_mirror: committed traffic copied from a source to a destination.
#
# Two clusters, src and dst, each with role app/secret owning appdb.  A
# daemon (mirror.workers 2, mirror.retry_max 2, log.stats_period 1) with
# three database pairs over the same two databases (appdb on src, appdb
# on dst), each a mirror:
#   appdb  -> newdb       queue = 100000 (never full in 1., however fast
#                         the machine)
#   smallq -> smallq_dst  queue = 10
#   expo   -> expo_dst    exposure = 0.5
# The counters come from the last "stats: mirror A -> B: ..." line of the
# daemon's log.  "Drained" means: two stats lines written after we
# started waiting, both with queue_length 0 and the same enqueued,
# replayed and dropped (Pgm::logged_drained).  pgbench runs with -n: its own vacuum and
# truncate of pgbench_history come from a session of their own, and a
# mirror only keeps the order within a session.
#
#  1. pgbench -i -s 1 through pgmirror: tables, keys and the COPY reach
#     dst.  Then TPC-B, pgbench -c 8 -T 10 (simple protocol); after a
#     re-init, again with -M prepared: 0 failed transactions, and once
#     drained pgbench_accounts, _tellers and _branches are identical on
#     both sides (count and md5 of the rows in key order) and
#     pgbench_history has as many rows; errors 0, dropped 0.
#  2. Not replayed: BEGIN; INSERT; ROLLBACK (two ways); a failed INSERT
#     in autocommit (simple and extended protocol, one that would fail
#     on dst too and ones that would succeed there); an implicit
#     transaction whose second statement fails; a transaction with a
#     failed statement that then COMMITs.  dst lacks every one of those
#     rows, a later committed marker row arrives, enqueued and replayed
#     grow by exactly that marker, errors stay 0.
#  3. dst stopped (pg_ctl -m fast) in the middle of pgbench -c 8 -T 10,
#     started again 2 s later: pgbench exits 0 with 0 failed
#     transactions; dropped > 0 and gaps > 0; "destination unreachable"
#     logged; once dst is back, new sessions' inserts reach it (retried
#     every <= 2 s), and then every new session's insert does.
#  4. queue = 10 under pgbench -c 8 -T 5 while dst has pgbench_branches
#     locked (ACCESS EXCLUSIVE, held by a direct session): dropped > 0,
#     gaps > 0, 0 failed transactions, the queue never holds more than
#     10, lag_ms > 0; after the lock is released the queue drains to 0.
#  5. Divergences: a row whose value differs on dst (UPDATE .. RETURNING
#     and a SELECT return other rows), and a row that only the source has
#     (UPDATE 1 on src, UPDATE 0 on dst): divergent grows by one each
#     time, errors do not, and the rate-limited log line names the
#     session, the transaction, the statement and both tags.
#  6. exposure 0.5: 200 sessions (pgbench -C, a connection per
#     transaction): between 60 and 140 of them are mirrored, and every
#     mirrored session's one transaction is enqueued and replayed (pgbench's
#     first connection sends nothing); appdb -> newdb counts none of them.
#  7. SIGKILL to a mirror worker and to a client worker (one serving a
#     DBD::Pg session of its own, so that pgbench may not lose a client)
#     during pgbench -c 8 -T 8: pgbench exits 0 with 0 failed
#     transactions, the supervisor logs both deaths and forks a new mirror
#     worker, new sessions are served and mirrored again (enqueued and
#     replayed grow, a new row reaches dst), the queue drains, and the
#     daemon is alive.  Every wait has a timeout, so a deadlock fails.
#  8. Savepoints (DBD::Pg): BEGIN; SAVEPOINT; an INSERT of a duplicate
#     key (fails on both sides); ROLLBACK TO SAVEPOINT; a good INSERT;
#     COMMIT, in the simple and the extended protocol: both commit and
#     are replayed, dst has the good rows, and errors and divergent do
#     not grow (the source's result "ERROR 23505" matches dst's).  The
#     same with a duplicate of a row only the source has: dst's INSERT
#     succeeds and is rolled back to the savepoint there too, and it is
#     one divergence, logged as source "ERROR 23505", destination
#     "INSERT 0 1", not an error.
#  9. Named statements first prepared in transactions that are not
#     replayed.  DBD::Pg (pg_server_prepare; pg_prepare_now, or a second
#     execute): an INSERT and an UPDATE prepared inside two transactions
#     that fail and roll back, a failed autocommit statement between
#     them; then autocommit executes of both.  Raw protocol: Parse,
#     Bind and a failing Execute in one Sync, then Bind/Execute of that
#     statement.  dst has the later rows and none of the others, errors
#     0.  Then a statement kept from a failed transaction that dst
#     cannot prepare (its table is only on the source): errors grows by
#     one, and the session's next transactions still reach dst.
#
# Sections 10 and 11 use a second daemon: databases appdb (appdb on src)
# and newdb (appdb on dst), mirror appdb -> newdb, mirror.workers 1,
# retry_max 2, replay_timeout 2, log.stats_period 1.
# 10. replay_timeout: with t10 locked on dst (ACCESS EXCLUSIVE, held by a
#     direct session), an INSERT through the daemon commits on the source
#     at once; no sooner than 2 s later "replay took longer than
#     mirror.replay_timeout" is logged, the replayed INSERT no longer
#     waits on dst (cancelled), dropped and gaps grow by one.  After the
#     lock is released, the same session's next INSERT (on a new
#     destination connection) and a new session's reach dst, and the
#     cancelled one never does.
# 11. Switchover by hand: the config is rewritten with the servers of
#     appdb and newdb swapped, SIGHUP: "configuration reloaded", the
#     mirror workers are told to restart and mirror worker 0 has a new
#     pid.  A new session to appdb reaches the dst cluster
#     (inet_server_port()); its INSERT is there at once and is mirrored
#     to the src cluster; enqueued never went back after the reload.
#     No worker of the second daemon died.
# 12. A mirror worker that fails at run time: prlimit(1) lowers the
#     RLIMIT_NOFILE of mirror worker 0 of the second daemon to 1, so its
#     poll(2) of two descriptors fails with EINVAL.  It logs why it
#     leaves, counts one error for its mirror and exits; the supervisor
#     logs its death and forks a new one, which mirrors a new session's
#     INSERT; the daemon is alive.
# The tag mirroring gives an ErrorResponse ("ERROR " and the SQLSTATE,
# from a body that may be cut short) is unit-tested in
# t/unit/test_proto.c.

use strict;
use warnings;

use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $src = pg_start();
$src->setup_app;
my $dst = pg_start();
$dst->setup_app;

my $pgm = pgm_start($src,
	databases => [
		{ name => 'appdb',      database => 'appdb' },
		{ name => 'newdb',      database => 'appdb', pg => $dst },
		{ name => 'smallq',     database => 'appdb' },
		{ name => 'smallq_dst', database => 'appdb', pg => $dst },
		{ name => 'expo',       database => 'appdb' },
		{ name => 'expo_dst',   database => 'appdb', pg => $dst },
	],
	users => [ { name => 'app', password => 'secret' } ],
	log => { stats_period => 1 },
	extra => <<'EOC');
mirror = { workers = 2; retry_max = 2; };
mirrors = (
  { source = "appdb"; destination = "newdb"; queue = 100000; },
  { source = "smallq"; destination = "smallq_dst"; queue = 10; queue_bytes = 1048576; },
  { source = "expo"; destination = "expo_dst"; exposure = 0.5; queue_bytes = 1048576; }
);
EOC

my $MAIN = 'appdb -> newdb';
my $SMALL = 'smallq -> smallq_dst';
my $EXPO = 'expo -> expo_dst';

# --- helpers ---------------------------------------------------------------------

# The difference of two stats hashes, counter by counter.
sub delta {
	my ($from, $to) = @_;
	return { map { $_ => ($to->{$_} // 0) - ($from->{$_} // 0) } keys %$to };
}

# psql on appdb of a cluster, as the superuser.
sub q_src { $src->psql($_[0], db => 'appdb') }
sub q_dst { $dst->psql($_[0], db => 'appdb') }

# pgbench through pgmirror; checks rc 0 and 0 failed transactions.
sub bench_ok {
	my ($what, $args, %o) = @_;
	my ($rc, $out, $err) = $pgm->pgbench($args, %o);
	bench_check($what, $rc, $out, $err);
	return ($rc, $out, $err);
}

# Waits for a statement on dst to return $want.
sub dst_is {
	my ($sql, $want, $what, $timeout) = @_;
	my $got;
	wait_until(sub {
		my ($o, $e, $rc) = $dst->psql($sql, db => 'appdb', allow_fail => 1);
		$got = $rc == 0 ? $o : "error: $e";
		return $got eq $want;
	}, $timeout // 20, 0.2);
	is($got, $want, $what);
}

# The pid of the mirror worker of index $i, from the supervisor's debug
# line "mirror worker N started (pid P)" (pgmirror runs with -d), if it
# is a live child of the supervisor (of daemon $inst, default the main).
sub mirror_pid {
	my ($i, $inst) = @_;
	$inst //= $pgm;
	my @p = $inst->log =~ /mirror worker \Q$i\E started \(pid (\d+)\)/g;
	return undef unless @p;
	my %kids = map { $_ => 1 } $inst->workers;
	return $kids{ $p[-1] } ? $p[-1] : undef;
}

# --- 1. pgbench -i and TPC-B, simple and prepared --------------------------------

my ($rc, $out, $err);
ok(wait_until(sub { defined mirror_pid(0) && defined mirror_pid(1) }, 10),
	'two mirror workers are running');
ok($pgm->logged_drained($MAIN, 10), 'stats lines for the mirror are logged');

for my $mode (qw(simple prepared)) {
	my $what = "TPC-B -M $mode";
	($rc, $out, $err) = $pgm->pgbench([ '-i', '-q', '-s', '1' ]);
	is($rc, 0, "$what: pgbench -i -s 1 through pgmirror") or diag("$out\n$err");
	my $st0 = $pgm->logged_drained($MAIN, 60);
	ok($st0, "$what: the init is replayed");
	is(q_dst('SELECT count(*) FROM pgbench_accounts'), 100000,
		"$what: dst has the 100000 accounts of the COPY");
	is(q_dst(q{SELECT string_agg(conrelid::regclass || ' ' || contype::text, ', ' ORDER BY 1)
		FROM pg_constraint WHERE conrelid::regclass::text LIKE 'pgbench_%'}),
		q_src(q{SELECT string_agg(conrelid::regclass || ' ' || contype::text, ', ' ORDER BY 1)
		FROM pg_constraint WHERE conrelid::regclass::text LIKE 'pgbench_%'}),
		"$what: dst has the same primary keys");
	bench_ok($what, [ '-n', '-M', $mode, '-c', '8', '-j', '2', '-T', '10' ]);
	my $st = $pgm->logged_drained($MAIN, 90);
	ok($st, "$what: the queue drains");
	my $d = delta($st0 // {}, $st // {});
	cmp_ok($d->{enqueued}, '>', 0, "$what: $d->{enqueued} transactions enqueued");
	is($d->{replayed}, $d->{enqueued}, "$what: all of them replayed");
	is($d->{errors}, 0, "$what: errors 0");
	is($d->{dropped}, 0, "$what: dropped 0");
	is($d->{gaps}, 0, "$what: gaps 0");
	for my $t ([ 'pgbench_accounts', 'aid' ], [ 'pgbench_tellers', 'tid' ],
		[ 'pgbench_branches', 'bid' ]) {
		is($dst->table_sig(@$t), $src->table_sig(@$t), "$what: $t->[0] identical");
	}
	is(q_dst('SELECT count(*) FROM pgbench_history'), q_src('SELECT count(*) FROM pgbench_history'),
		"$what: pgbench_history has as many rows");
}

# --- 2. rolled back and failed transactions are not replayed ---------------------------

{
	$pgm->psql('CREATE TABLE t2 (id int PRIMARY KEY, v text)');
	$pgm->psql(q{INSERT INTO t2 VALUES (1, 'one')});
	q_src(q{INSERT INTO t2 VALUES (5, 'only on the source')});
	dst_is('SELECT string_agg(id::text, \',\' ORDER BY id) FROM t2', '1',
		'2: t2 and its row 1 reach dst');
	my $st0 = $pgm->logged_drained($MAIN, 30);
	my $h = $pgm->dbh;
	my $ok;

	$h->begin_work;
	$h->do(q{INSERT INTO t2 VALUES (10, 'rolled back')});
	$h->rollback;
	$h->do(q{BEGIN; INSERT INTO t2 VALUES (11, 'rolled back'); ROLLBACK});
	# Would fail on dst as well (an error if replayed).
	$ok = eval { $h->do(q{INSERT INTO t2 VALUES (1, 'dup')}); 1 };
	ok(!$ok, '2: duplicate INSERT fails on the source');
	# Would succeed on dst (a row there if replayed).
	$ok = eval { $h->do(q{INSERT INTO t2 VALUES (21, 'x'), (5, 'dup')}); 1 };
	ok(!$ok, '2: INSERT of two rows, one a duplicate, fails');
	$ok = eval { $h->prepare('INSERT INTO t2 VALUES ($1, $2)')->execute(5, 'dup'); 1 };
	ok(!$ok, '2: duplicate INSERT, extended protocol, fails');
	$ok = eval { $h->do(q{INSERT INTO t2 VALUES (23, 'x'); SELECT 1/0}); 1 };
	ok(!$ok, '2: implicit transaction with a failing second statement fails');
	$h->begin_work;
	$h->do(q{INSERT INTO t2 VALUES (22, 'x')});
	$ok = eval { $h->do(q{INSERT INTO t2 VALUES (5, 'dup')}); 1 };
	ok(!$ok, '2: duplicate INSERT inside a transaction fails');
	{
		local $h->{RaiseError} = 0;
		local $h->{PrintWarn} = 0;
		$h->commit;
	}
	$h->do(q{INSERT INTO t2 VALUES (30, 'marker')});
	$h->disconnect;

	is(q_src('SELECT string_agg(id::text, \',\' ORDER BY id) FROM t2'), '1,5,30',
		'2: the source has 1, 5 and the marker 30');
	dst_is('SELECT string_agg(id::text, \',\' ORDER BY id) FROM t2', '1,30',
		'2: dst has 1 and the marker 30, none of the failed or rolled back rows');
	my $st = $pgm->logged_drained($MAIN, 30);
	my $d = delta($st0 // {}, $st // {});
	is($d->{enqueued}, 1, '2: only the marker transaction was enqueued');
	is($d->{replayed}, 1, '2: and replayed');
	is($d->{errors}, 0, '2: errors 0');
	is($d->{divergent}, 0, '2: divergent 0');
	is($d->{dropped}, 0, '2: dropped 0');
}

# --- 3. the destination goes away and comes back ------------------------------------

{
	$pgm->psql('CREATE TABLE t3 (id int PRIMARY KEY)');
	dst_is(q{SELECT to_regclass('t3') IS NOT NULL}, 't', '3: t3 reaches dst');
	my $st0 = $pgm->logged_drained($MAIN, 30);
	my $from = length $pgm->log;
	my $bg = PgMirrorTest::start_cmd([ PgMirrorTest::_bin('pgbench'), '-n', '-h', $pgm->host,
		'-p', $pgm->port, '-U', 'app', '-c', '8', '-j', '2', '-T', '10', 'appdb' ],
		env => { PGPASSWORD => 'secret' }, timeout => 60);
	sleep 3;
	$dst->stop;
	ok(!$dst->{running}, '3: dst stopped during pgbench');
	sleep 2;
	$dst->start;
	ok($dst->{running}, '3: dst started again');
	bench_check('3: pgbench while dst restarts', $bg->finish);
	like(substr($pgm->log, $from), qr/mirror appdb -> newdb: destination unreachable/,
		'3: "destination unreachable" logged');

	# New sessions until one reaches dst: while the mirror waits before
	# its next try, what needs a new connection is dropped.
	my $n = 0;
	my $t0 = time;
	my $back = wait_until(sub {
		$n++;
		$pgm->psql("INSERT INTO t3 VALUES ($n)");
		sleep 0.5;
		my ($o) = $dst->psql('SELECT count(*) FROM t3', db => 'appdb', allow_fail => 1);
		return defined $o && $o =~ /^\d+$/ && $o > 0;
	}, 35, 0.5);
	ok($back, sprintf('3: a new session\'s insert reached dst %.1f s after pgbench', time - $t0));
	ok($pgm->logged_drained($MAIN, 30), '3: the queue drains');
	$pgm->psql('INSERT INTO t3 VALUES (1000)');
	dst_is('SELECT count(*) FROM t3 WHERE id = 1000', '1',
		'3: then the next new session\'s insert reaches dst too', 10);
	my $st = $pgm->logged_drained($MAIN, 30);
	my $d = delta($st0 // {}, $st // {});
	cmp_ok($d->{dropped}, '>', 0, "3: dropped $d->{dropped}");
	cmp_ok($d->{gaps}, '>', 0, "3: gaps $d->{gaps}");
	cmp_ok($d->{replayed}, '>', 0, "3: replayed $d->{replayed}");
	like(substr($pgm->log, $from), qr/mirror appdb -> newdb: destination reachable again/,
		'3: "destination reachable again" logged');
}

# --- 4. a small queue and a locked destination ---------------------------------------

{
	my $st0 = $pgm->logged_drained($SMALL, 10);
	my $lock = $dst->dbh(db => 'appdb');
	$lock->begin_work;
	$lock->do('LOCK pgbench_branches IN ACCESS EXCLUSIVE MODE');
	bench_ok('4: queue 10, dst locked', [ '-n', '-c', '8', '-j', '2', '-T', '5' ], db => 'smallq');
	my $st = $pgm->last_logged_stats($SMALL);
	my $d = delta($st0 // {}, $st);
	cmp_ok($d->{dropped}, '>', 0, "4: dropped $d->{dropped}");
	cmp_ok($d->{gaps}, '>', 0, "4: gaps $d->{gaps}");
	cmp_ok($d->{enqueued}, '>', 0, "4: enqueued $d->{enqueued}");
	my ($maxlen) = sort { $b <=> $a } map { $_->{queue_length} } $pgm->logged_stats($SMALL);
	cmp_ok($maxlen, '<=', 10, "4: queue_length never over 10 (max $maxlen)");
	cmp_ok($st->{queue_length}, '>', 0, "4: transactions wait for the lock ($st->{queue_length})");
	cmp_ok($st->{lag_ms}, '>', 0, "4: lag_ms $st->{lag_ms} while they wait");
	$lock->rollback;
	$lock->disconnect;
	$st = $pgm->logged_drained($SMALL, 60);
	ok($st, '4: after the lock is released the queue drains');
	is($st && $st->{queue_length}, 0, '4: queue_length 0');
	is(delta($st0 // {}, $st // {})->{errors}, 0, '4: errors 0');
}

# --- 5. divergences ------------------------------------------------------------------------

{
	$pgm->psql('CREATE TABLE t5 (id int PRIMARY KEY, v int)');
	$pgm->psql('INSERT INTO t5 VALUES (1, 10)');
	dst_is('SELECT v FROM t5 WHERE id = 1', '10', '5: t5 row 1 reaches dst');
	q_dst('UPDATE t5 SET v = 99 WHERE id = 1');
	q_src('INSERT INTO t5 VALUES (2, 20)');
	my $st0 = $pgm->logged_drained($MAIN, 30);
	my $ndiv = ($st0 // {})->{divergent} // 0;

	my @cases = (
		[ 'UPDATE t5 SET v = v + 1 WHERE id = 1 RETURNING v', '11',
		  qr/statement 1 \(UPDATE 1\): the rows returned differ, in: UPDATE t5 SET v = v \+ 1 WHERE id = 1 RETURNING v/ ],
		[ 'SELECT v FROM t5 WHERE id = 1', '11',
		  qr/statement 1 \(SELECT 1\): the rows returned differ, in: SELECT v FROM t5 WHERE id = 1/ ],
		[ 'UPDATE t5 SET v = 0 WHERE id = 2', '',
		  qr/statement 1: source "UPDATE 1", destination "UPDATE 0", in: UPDATE t5 SET v = 0 WHERE id = 2/ ],
	);
	for my $c (@cases) {
		my ($sql, $want, $re) = @$c;
		sleep 1.1;    # divergence lines are limited to one a second
		my $from = length $pgm->log;
		is($pgm->psql($sql), $want, "5: $sql returns what the source has");
		$ndiv++;
		ok(wait_until(sub { ($pgm->last_logged_stats($MAIN)->{divergent} // 0) >= $ndiv }, 10),
			"5: $sql: divergent $ndiv");
		my $new = substr($pgm->log, $from);
		like($new, qr/mirror appdb -> newdb: session \d+ transaction \d+: $re/,
			"5: $sql: the divergence is logged") or diag($new);
	}
	my $st = $pgm->logged_drained($MAIN, 30);
	my $d = delta($st0 // {}, $st // {});
	is($d->{divergent}, 3, '5: three divergent transactions');
	is($d->{errors}, 0, '5: errors 0');
	is(q_dst('SELECT v FROM t5 WHERE id = 1'), '100', '5: the UPDATE was replayed on dst all the same');
}

# --- 6. exposure 0.5 --------------------------------------------------------------------

{
	my $script = PgMirrorTest::tmp_base() . '/select1.sql';
	write_file($script, "SELECT 1;\n");
	my $main0 = $pgm->logged_drained($MAIN, 10);
	my $e0 = $pgm->logged_drained($EXPO, 10);
	bench_ok('6: 200 sessions on expo', [ '-n', '-C', '-c', '1', '-t', '200', '-f', $script ],
		db => 'expo');
	my $e = $pgm->logged_drained($EXPO, 30);
	my $d = delta($e0 // {}, $e // {});
	cmp_ok($d->{sessions}, '>=', 60, "6: mirrored sessions $d->{sessions} >= 60");
	cmp_ok($d->{sessions}, '<=', 140, "6: mirrored sessions $d->{sessions} <= 140");
	# pgbench's first connection, before the 200, sends no query.
	ok($d->{enqueued} == $d->{sessions} || $d->{enqueued} == $d->{sessions} - 1,
		"6: one transaction enqueued per mirrored session ($d->{enqueued})");
	is($d->{replayed}, $d->{enqueued}, '6: and replayed');
	is($d->{errors}, 0, '6: errors 0');
	is(delta($main0 // {}, $pgm->last_logged_stats($MAIN))->{sessions}, 0, '6: no session counted for appdb -> newdb');
}

# --- 7. workers killed under load --------------------------------------------------------

{
	my $st0 = $pgm->logged_drained($MAIN, 10);
	my $from = length $pgm->log;
	my $h = $pgm->dbh;
	$h->do('SELECT 1');
	my $cw = $pgm->worker_for($h);
	ok($cw, "7: the worker of a DBD::Pg session: pid " . ($cw // 'none'));
	my $mw = mirror_pid(1);
	ok($mw, "7: mirror worker 1: pid " . ($mw // 'none'));
	my $bg = PgMirrorTest::start_cmd([ PgMirrorTest::_bin('pgbench'), '-n', '-h', $pgm->host,
		'-p', $pgm->port, '-U', 'app', '-c', '8', '-j', '2', '-T', '8', 'appdb' ],
		env => { PGPASSWORD => 'secret' }, timeout => 60);
	sleep 2;
	ok(kill('KILL', $mw), '7: SIGKILL to the mirror worker') if $mw;
	sleep 1;
	ok(kill('KILL', $cw), '7: SIGKILL to the client worker') if $cw;
	bench_check('7: pgbench while workers are killed', $bg->finish);
	my $new = substr($pgm->log, $from);
	my ($mwp, $cwp) = ($mw // 0, $cw // 0);
	like($new, qr/mirror worker 1 \(pid $mwp\) died/, '7: the mirror worker\'s death is logged');
	like($new, qr/worker \d+ \(pid $cwp\) killed by signal 9/,
		'7: the client worker\'s death is logged');
	ok(!eval { $h->do('SELECT 1'); 1 }, '7: the killed worker\'s session is gone');
	my $mw2;
	ok(wait_until(sub { $mw2 = mirror_pid(1); $mw2 && $mw2 != $mw }, 10),
		'7: a new mirror worker 1 runs: pid ' . ($mw2 // 'none'));
	ok(mirror_pid(0), '7: mirror worker 0 still runs');
	my $st1 = $pgm->logged_drained($MAIN, 60);
	ok($st1, '7: the queue drains after the kills');
	my $d = delta($st0 // {}, $st1 // {});
	cmp_ok($d->{enqueued}, '>', 0, "7: enqueued $d->{enqueued} during the run");

	# New sessions, on both mirror workers, are mirrored again.
	$pgm->psql("INSERT INTO t3 VALUES (2000 + $_)") for 1 .. 4;
	dst_is('SELECT count(*) FROM t3 WHERE id > 2000', '4', '7: new rows reach dst');
	my $st2 = $pgm->logged_drained($MAIN, 30);
	ok($st2, '7: the queue drains again');
	$d = delta($st1 // {}, $st2 // {});
	is($d->{enqueued}, 4, '7: enqueued grows by the four inserts');
	is($d->{replayed}, 4, '7: replayed grows by the four inserts');
	is($st2 && $st2->{queue_length}, 0, '7: queue_length 0');
	ok($pgm->alive, '7: the daemon is alive');
	is($pgm->psql('SELECT 1'), '1', '7: and serves clients');
}

# --- 8. a transaction that recovers with a savepoint ----------------------------------

{
	$pgm->psql('CREATE TABLE t8 (id int PRIMARY KEY, v text)');
	$pgm->psql(q{INSERT INTO t8 VALUES (1, 'one')});
	q_src(q{INSERT INTO t8 VALUES (5, 'only on the source')});
	my $ids = q{SELECT string_agg(id::text, ',' ORDER BY id) FROM t8};
	dst_is($ids, '1', '8: t8 and its row 1 reach dst');
	my $st0 = $pgm->logged_drained($MAIN, 30);
	my $h = $pgm->dbh;
	# An INSERT, in the simple protocol or (with parameters) the extended one.
	my $ins = sub {
		my ($ext, $id, $v) = @_;
		return $ext ? $h->do('INSERT INTO t8 VALUES ($1, $2)', undef, $id, $v)
		  : $h->do("INSERT INTO t8 VALUES ($id, '$v')");
	};
	for my $ext (0, 1) {
		my $what = $ext ? 'extended protocol' : 'simple protocol';
		$h->begin_work;
		$h->do('SAVEPOINT s');
		ok(!eval { $ins->($ext, 1, 'dup'); 1 }, "8: $what: a duplicate INSERT fails");
		is($h->state, '23505', "8: $what: with SQLSTATE 23505");
		$h->do('ROLLBACK TO SAVEPOINT s');
		$ins->($ext, 2 + $ext, 'good');
		ok($h->commit, "8: $what: ROLLBACK TO SAVEPOINT, a good INSERT, COMMIT");
	}
	is(q_src($ids), '1,2,3,5', '8: the source committed both good rows');
	dst_is($ids, '1,2,3', '8: they are replayed on dst');
	my $st1 = $pgm->logged_drained($MAIN, 30);
	my $d = delta($st0 // {}, $st1 // {});
	is($d->{enqueued}, 2, '8: both transactions enqueued');
	is($d->{replayed}, 2, '8: and replayed');
	is($d->{errors}, 0, q{8: errors 0: the source's "ERROR 23505" matches dst's});
	is($d->{divergent}, 0, '8: divergent 0');

	# Row 5 is only on the source: its duplicate succeeds on dst.
	sleep 1.1;    # divergence lines are limited to one a second
	my $from = length $pgm->log;
	$h->begin_work;
	$h->do('SAVEPOINT s');
	ok(!eval { $ins->(0, 5, 'dup'); 1 }, '8: a duplicate of the row only the source has fails');
	$h->do('ROLLBACK TO SAVEPOINT s');
	$ins->(0, 4, 'good');
	ok($h->commit, '8: and its transaction commits after ROLLBACK TO SAVEPOINT');
	$h->disconnect;
	dst_is($ids, '1,2,3,4', '8: dst has the good row, and not the one rolled back to the savepoint');
	ok(wait_until(sub { ($pgm->last_logged_stats($MAIN)->{divergent} // 0) > ($st1 // {})->{divergent} }, 10),
		'8: a divergence is counted');
	like(substr($pgm->log, $from), qr/mirror appdb -> newdb: session \d+ transaction \d+: statement 3: source "ERROR 23505", destination "INSERT 0 1", in: INSERT INTO t8 VALUES \(5, 'dup'\)/,
		'8: logged: the source\'s result "ERROR 23505" against dst\'s "INSERT 0 1"');
	my $st2 = $pgm->logged_drained($MAIN, 30);
	$d = delta($st1 // {}, $st2 // {});
	is($d->{replayed}, 1, '8: that transaction is replayed');
	is($d->{divergent}, 1, '8: divergent 1');
	is($d->{errors}, 0, '8: errors 0');
}

# --- 9. named statements prepared in a transaction that is not replayed -----------------

# Extended protocol by hand on a PgMirrorTest::Raw: Bind (of the named
# statement $stmt, text parameters), Execute, Sync; with $parse first a
# Parse of it.  Returns collect's result.
sub raw_exec {
	my ($c, $stmt, $parse, @params) = @_;
	$c->send_msg('P', "$stmt\0$parse\0" . pack('n', 0)) if defined $parse;
	$c->send_msg('B', "\0$stmt\0" . pack('n', 0) . pack('n', scalar @params)
		. join('', map { pack('N', length $_) . $_ } @params) . pack('n', 0));
	$c->send_msg('E', "\0" . pack('N', 0));
	$c->send_msg('S', '');
	return $c->collect;
}

{
	$pgm->psql('CREATE TABLE t9 (id int PRIMARY KEY, v text)');
	$pgm->psql(q{INSERT INTO t9 VALUES (1, 'one')});
	my $rows = q{SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t9};
	dst_is($rows, '1:one', '9: t9 and its row 1 reach dst');
	my $st0 = $pgm->logged_drained($MAIN, 30);

	# DBD::Pg: BEGIN goes with a transaction's first statement, so the
	# statements below are prepared (Parse) inside transactions that
	# fail; two of them, with a failed statement in between.
	my $h = $pgm->dbh;
	$h->begin_work;
	$h->do(q{INSERT INTO t9 VALUES (90, 'rolled back')});
	my $ins = $h->prepare('INSERT INTO t9 VALUES ($1, $2)',
		{ pg_server_prepare => 1, pg_prepare_now => 1 });
	ok(!eval { $h->do('SELECT 1/0'); 1 }, '9: DBD::Pg: a later statement of the transaction fails');
	ok($h->rollback, '9: DBD::Pg: ROLLBACK');
	ok(!eval { $h->do('SELECT 1/0'); 1 }, '9: DBD::Pg: then a statement fails in autocommit');
	$h->begin_work;
	$h->do(q{INSERT INTO t9 VALUES (91, 'rolled back')});
	my $upd = $h->prepare('UPDATE t9 SET v = $2 WHERE id = $1', { pg_server_prepare => 1 });
	$upd->execute(91, 'x');
	$upd->execute(91, 'y');    # DBD::Pg prepares on the second execute
	ok(!eval { $h->do('SELECT 1/0'); 1 }, '9: DBD::Pg: a second transaction fails');
	ok($h->rollback, '9: DBD::Pg: ROLLBACK');
	like($ins->{pg_prepare_name} // '', qr/^dbdpg_/,
		'9: DBD::Pg: the INSERT is a named server-side statement: ' . ($ins->{pg_prepare_name} // 'none'));
	like($upd->{pg_prepare_name} // '', qr/^dbdpg_/,
		'9: DBD::Pg: so is the UPDATE: ' . ($upd->{pg_prepare_name} // 'none'));
	is($ins->execute($_, 'later'), 1, "9: DBD::Pg: autocommit execute of the INSERT ($_)") for 101 .. 103;
	is($upd->execute(101, 'updated'), 1, '9: DBD::Pg: autocommit execute of the UPDATE');

	# A pipeline: Parse, Bind and a failing Execute in one Sync, in
	# autocommit; the statement stays on the source.
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '9: raw protocol session logged in');
	my $res = raw_exec($c, 's9', 'INSERT INTO t9 VALUES ($1, $2)', 1, 'dup');
	is($res->{error} && $res->{error}{C}, '23505',
		'9: raw: Parse, Bind and a failing Execute in one Sync: 23505');
	for my $id (201, 202) {
		$res = raw_exec($c, 's9', undef, $id, 'raw');
		is(join(',', @{ $res->{tags} }) . ($res->{error} ? " $res->{error}{C}" : ''), 'INSERT 0 1',
			"9: raw: Bind and Execute of s9 ($id)");
	}
	$c->close;

	my $want = '1:one,101:updated,102:later,103:later,201:raw,202:raw';
	is(q_src($rows), $want, '9: the source has the later rows');
	dst_is($rows, $want, '9: so has dst, and none of the rolled back or failed ones');
	my $st = $pgm->logged_drained($MAIN, 30);
	my $d = delta($st0 // {}, $st // {});
	cmp_ok($d->{enqueued}, '>=', 6, "9: enqueued $d->{enqueued} (6 executes, and the statements kept)");
	is($d->{replayed}, $d->{enqueued}, '9: all replayed');
	is($d->{errors}, 0, '9: errors 0: dst knew the statements');
	is($d->{divergent}, 0, '9: divergent 0');
	is($d->{dropped}, 0, '9: dropped 0');

	# A statement kept from a failed transaction that dst cannot prepare
	# (its table is only on the source): no mirror error, as kept
	# statements may have failed on the source too, and the session's
	# next transactions are replayed all the same.
	q_src('CREATE TABLE t9_src_only (id int)');
	$h->begin_work;
	$h->do(q{INSERT INTO t9 VALUES (92, 'rolled back')});
	my $only = $h->prepare('INSERT INTO t9_src_only VALUES ($1)',
		{ pg_server_prepare => 1, pg_prepare_now => 1 });
	ok(!eval { $h->do('SELECT 1/0'); 1 }, '9: a transaction preparing a statement on t9_src_only fails');
	$h->rollback;
	$h->do(q{INSERT INTO t9 VALUES (301, 'after')});
	$ins->execute(302, 'after');
	$h->disconnect;
	dst_is(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM t9 WHERE id > 300}, '301,302',
		'9: the next transactions of that session reach dst');
	my $st2 = $pgm->logged_drained($MAIN, 30);
	$d = delta($st // {}, $st2 // {});
	is($d->{errors}, 0, '9: errors 0: a kept statement dst could not prepare is not counted');
	is($d->{replayed}, $d->{enqueued}, "9: all $d->{enqueued} replayed");
	is($d->{divergent}, 0, '9: divergent 0');
}

# --- 10. mirror.replay_timeout ---------------------------------------------------------

# The config of the second daemon (after the listen line): appdb and
# newdb, both database appdb, one on src and one on dst, or swapped.
sub conf2 {
	my ($swap) = @_;
	my ($from, $to) = $swap ? ($dst, $src) : ($src, $dst);
	return <<"EOC";
# 160_mirror, second daemon, swapped $swap
shutdown_timeout = 5;
workers = { min_spare = 2; max_spare = 4; max = 16; };
pool = { mode = "session"; default_size = 20; wait_timeout = 10; };
log = { destination = "stderr"; stats_period = 1; };
databases = (
  { name = "appdb"; host = "127.0.0.1"; port = $from->{port}; database = "appdb"; },
  { name = "newdb"; host = "127.0.0.1"; port = $to->{port}; database = "appdb"; }
);
users = ( { name = "app"; password = "secret"; } );
mirror = { workers = 1; retry_max = 2; replay_timeout = 2; };
mirrors = ( { source = "appdb"; destination = "newdb"; queue = 1000; } );
EOC
}

my $pgm2 = pgm_start($src, config => conf2(0));
my ($LISTEN2) = slurp($pgm2->conffile) =~ /^(listen = [^\n]*\n)/;

{
	ok(wait_until(sub { defined mirror_pid(0, $pgm2) }, 10),
		'10: the second daemon runs its mirror worker');
	$pgm2->psql('CREATE TABLE t10 (id int PRIMARY KEY)');
	dst_is(q{SELECT to_regclass('t10') IS NOT NULL}, 't', '10: t10 reaches dst');
	my $st0 = $pgm2->logged_drained($MAIN, 30);
	ok($st0, '10: the second daemon logs its mirror\'s stats');
	my $lock = $dst->dbh(db => 'appdb');
	$lock->begin_work;
	$lock->do('LOCK TABLE t10 IN ACCESS EXCLUSIVE MODE');
	my $h = $pgm2->dbh;
	my $from = length $pgm2->log;
	my $t0 = time;
	$h->do('INSERT INTO t10 VALUES (1)');
	is(q_src('SELECT count(*) FROM t10 WHERE id = 1'), '1',
		'10: the INSERT is committed on the source at once');
	my $re = qr/mirror appdb -> newdb: session \d+: replay took longer than mirror\.replay_timeout; closing its destination connection/;
	ok(wait_until(sub { substr($pgm2->log, $from) =~ $re }, 15, 0.1),
		'10: "replay took longer than mirror.replay_timeout" logged');
	my $waited = time - $t0;
	cmp_ok($waited, '>=', 1.9, sprintf('10: not before the 2 s of replay_timeout (%.1f s)', $waited));
	ok(wait_until(sub {
		q_dst(q{SELECT count(*) FROM pg_stat_activity WHERE datname = 'appdb'
			AND wait_event_type = 'Lock'}) eq '0' }, 5, 0.1),
		'10: the replayed INSERT no longer waits for the lock on dst');
	my $st = {};
	wait_until(sub { $st = $pgm2->last_logged_stats($MAIN); ($st->{dropped} // 0) > ($st0 // {})->{dropped} }, 5);
	my $d = delta($st0 // {}, $st);
	is($d->{dropped}, 1, '10: dropped 1');
	is($d->{gaps}, 1, '10: gaps 1');
	$lock->rollback;
	$lock->disconnect;

	# The same session's next transaction opens a new destination session.
	$h->do('INSERT INTO t10 VALUES (2)');
	$h->disconnect;
	$pgm2->psql('INSERT INTO t10 VALUES (3)');
	my $ids = q{SELECT string_agg(id::text, ',' ORDER BY id) FROM t10};
	dst_is($ids, '2,3', '10: after the lock, that session\'s next INSERT and a new session\'s reach dst');
	my $st1 = $pgm2->logged_drained($MAIN, 30);
	is(q_dst($ids), '2,3', '10: the cancelled INSERT never ran on dst');
	$d = delta($st0 // {}, $st1 // {});
	is($d->{enqueued}, 3, '10: enqueued 3');
	is($d->{replayed}, 2, '10: replayed 2');
	is($d->{dropped}, 1, '10: dropped still 1');
	is($d->{errors}, 0, '10: errors 0');
}

# --- 11. switchover by hand, the mirror running back ------------------------------------

{
	my $st0 = $pgm2->logged_drained($MAIN, 10);
	my $mw = mirror_pid(0, $pgm2);
	ok($mw, '11: mirror worker 0 of the second daemon: pid ' . ($mw // 'none'));
	write_file($pgm2->conffile, $LISTEN2 . conf2(1));
	my $from = length $pgm2->log;
	$pgm2->kill('HUP');
	my $new = '';
	wait_until(sub { $new = substr($pgm2->log, $from);
		$new =~ /configuration reloaded \(generation \d+\)|reload failed|reload refused/ }, 10, 0.02);
	like($new, qr/configuration reloaded \(generation 1\)/, '11: appdb and newdb swapped: configuration reloaded')
	  or diag($new);
	like($new, qr/reload: what mirror workers connect with changed; they finish what they hold and restart/,
		'11: the mirror workers are told to restart');
	my $mw2;
	ok(wait_until(sub { $mw2 = mirror_pid(0, $pgm2); $mw2 && $mw2 != ($mw // 0) }, 10),
		'11: a new mirror worker 0 runs: pid ' . ($mw2 // 'none'));
	ok(wait_until(sub { !pid_alive($mw // 0) }, 10), '11: the old one left');

	my $h = $pgm2->dbh;
	$h->begin_work;
	is(($h->selectrow_array('SELECT inet_server_port()'))[0], $dst->port,
		'11: a new session to appdb reaches the dst cluster');
	$h->rollback;
	$h->do('INSERT INTO t10 VALUES (1100)');
	$h->disconnect;
	is(q_dst('SELECT count(*) FROM t10 WHERE id = 1100'), '1',
		'11: its INSERT is written on the dst cluster, now the source');
	my $got;
	ok(wait_until(sub { $got = q_src('SELECT count(*) FROM t10 WHERE id = 1100'); $got eq '1' }, 20, 0.2),
		'11: and mirrored to the src cluster, now the destination');
	my $st1 = $pgm2->logged_drained($MAIN, 30);
	ok($st1, '11: the queue drains');
	my ($min) = sort { $a <=> $b } map { $_->{enqueued} } $pgm2->logged_stats($MAIN, $from);
	cmp_ok($min // -1, '>=', ($st0 // {})->{enqueued} // 0,
		'11: enqueued did not go back after the reload (' . ($min // 'none') . ')');
	my $d = delta($st0 // {}, $st1 // {});
	is($d->{enqueued}, 1, '11: enqueued 1');
	is($d->{replayed}, 1, '11: replayed 1');
	is($d->{errors}, 0, '11: errors 0');
	is($d->{dropped}, 0, '11: dropped 0');
	my $log2 = $pgm2->log;
	unlike($log2, qr/died|killed by signal|exited with status/, '11: no worker of the second daemon died');
	unlike($log2, qr/AddressSanitizer|runtime error/, '11: no sanitizer report in its log');
}

# --- 12. a mirror worker whose poll fails ----------------------------------------------

SKIP: {
	my ($prlimit) = grep { -x } map { "$_/prlimit" } split /:/, "$ENV{PATH}:/usr/bin:/bin";
	skip 'no prlimit(1) to make a poll fail', 9 unless $prlimit;
	my $st0 = $pgm2->logged_drained($MAIN, 10);
	my $mw = mirror_pid(0, $pgm2);
	ok($mw, '12: mirror worker 0 of the second daemon: pid ' . ($mw // 'none'));
	$mw //= 0;
	my $from = length $pgm2->log;
	# poll(2) of more descriptors than RLIMIT_NOFILE gives EINVAL.
	my ($rc, $out, $err) = PgMirrorTest::run_cmd([ $prlimit, "--pid=$mw", '--nofile=1:1' ]);
	is($rc, 0, '12: its RLIMIT_NOFILE is lowered to 1') or diag($err);
	my $new = '';
	ok(wait_until(sub { $new = substr($pgm2->log, $from);
		$new =~ /mirror worker 0 \(pid $mw\) died/ }, 10, 0.05),
		'12: it dies, and the supervisor logs it');
	like($new, qr/mirror 0: poll: Invalid argument; exiting, for the supervisor to start this mirror worker again/,
		'12: the mirror worker logs why it leaves');
	my $mw2;
	ok(wait_until(sub { $mw2 = mirror_pid(0, $pgm2); $mw2 && $mw2 != $mw }, 10),
		'12: a new mirror worker 0 runs: pid ' . ($mw2 // 'none'));
	my $st1 = {};
	wait_until(sub { $st1 = $pgm2->last_logged_stats($MAIN); ($st1->{errors} // 0) > (($st0 // {})->{errors} // 0) }, 5);
	is(delta($st0 // {}, $st1)->{errors}, 1, '12: the failure is counted: errors 1');
	$pgm2->psql('INSERT INTO t10 VALUES (1200)');
	my $got;
	ok(wait_until(sub { $got = q_src('SELECT count(*) FROM t10 WHERE id = 1200'); $got eq '1' }, 20, 0.2),
		'12: a new session\'s INSERT is mirrored by the new mirror worker');
	my $d = delta($st0 // {}, $pgm2->logged_drained($MAIN, 30) // {});
	ok($d->{enqueued} == 1 && $d->{replayed} == 1 && $d->{errors} == 1,
		"12: enqueued 1, replayed 1, errors still 1 ($d->{enqueued}, $d->{replayed}, $d->{errors})");
	ok($pgm2->alive, '12: the daemon is alive');
}

# --- 13. stopped workers do not stall the supervisor ----------------------------------
#
# Every client worker and mirror worker is stopped (SIGSTOP) for 3 s in
# the middle of a mirrored pgbench run: whatever ring lock one of them
# holds, the supervisor still answers pgmirrorctl status and still logs
# its stats line, as it reads shared memory without taking any lock
# (that a producer stopped inside the lock cannot stall mqueue_stats is
# shown exactly in t/unit/test_mqueue).  After SIGCONT pgbench ends with
# no failed transaction.
{
	my $bg = PgMirrorTest::start_cmd([ PgMirrorTest::_bin('pgbench'), '-n', '-h', $pgm->host,
		'-p', $pgm->port, '-U', 'app', '-c', '4', '-j', '2', '-T', '8', 'appdb' ],
		env => { PGPASSWORD => 'secret' }, timeout => 60);
	sleep 2;
	my @kids = $pgm->workers;
	ok(@kids >= 3, '13: ' . scalar(@kids) . ' workers to stop');
	kill 'STOP', @kids;
	my $from = length $pgm->log;
	my $t0 = time;
	my ($rc, $out, $err) = $pgm->ctl({ timeout => 10 }, 'status');
	my $took = time - $t0;
	is($rc, 0, '13: with every worker stopped, pgmirrorctl status answers') or diag($err);
	cmp_ok($took, '<', 5, sprintf('13: ... at once (%.1f s)', $took));
	ok(wait_until(sub { substr($pgm->log, $from) =~ /stats: mirror \Q$MAIN\E: / }, 5, 0.1),
		'13: ... and the supervisor logs its stats line');
	kill 'CONT', @kids;
	bench_check('13: pgbench around the stop', $bg->finish);
	ok($pgm->alive, '13: the daemon is alive');
}

my $log = $pgm->log;
is(scalar(() = $log =~ /mirror worker \d+ \(pid \d+\) died/g), 1,
	'no mirror worker died but the one killed');
is(scalar(() = $log =~ /worker \d+ \(pid \d+\) (?:killed by signal|exited with status)/g), 1,
	'no client worker died but the one killed');
unlike($log, qr/AddressSanitizer|runtime error/, 'no sanitizer report in the log');
done_testing();
