# 160_mirror: committed traffic copied from a source to a destination.
#
# Two clusters, src and dst, each with role app/secret owning appdb.  One
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
# replayed and dropped.  pgbench runs with -n: its own vacuum and
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

# Every complete stats line of a mirror, parsed, oldest first.
sub all_stats {
	my ($name) = @_;
	my @l = $pgm->log =~ /stats: mirror \Q$name\E: ([^\n]*)\n/g;
	return map { +{ /(\w+) (-?\d+)/g } } @l;
}

# The last stats line of a mirror as a hash (sessions, enqueued, replayed,
# errors, dropped, divergent, gaps, queue_length, queue_bytes, lag_ms).
sub stats {
	my ($name) = @_;
	my @all = all_stats($name);
	return $all[-1] // {};
}

# Waits until the mirror is drained (see the header); returns the last
# stats, or undef after $timeout seconds.
sub drained {
	my ($name, $timeout) = @_;
	my $n0 = () = all_stats($name);
	my $ok = wait_until(sub {
		my @all = all_stats($name);
		return 0 if @all < $n0 + 2;
		my ($p, $l) = @all[-2, -1];
		return $p->{queue_length} == 0 && $l->{queue_length} == 0
		  && $p->{enqueued} == $l->{enqueued}
		  && $p->{replayed} + $p->{dropped} == $l->{replayed} + $l->{dropped};
	}, $timeout // 60, 0.2);
	my $st = stats($name);
	diag("$name not drained: " . join(', ', map { "$_ $st->{$_}" } sort keys %$st))
	  unless $ok;
	return $ok ? $st : undef;
}

# The difference of two stats hashes, counter by counter.
sub delta {
	my ($from, $to) = @_;
	return { map { $_ => ($to->{$_} // 0) - ($from->{$_} // 0) } keys %$to };
}

# psql on appdb of a cluster, as the superuser.
sub q_src { $src->psql($_[0], db => 'appdb') }
sub q_dst { $dst->psql($_[0], db => 'appdb') }

# Row count and md5 of a table's rows in key order.
sub table_sig {
	my ($pg, $table, $key) = @_;
	return $pg->psql("SELECT count(*) || ' rows, md5 ' || coalesce(md5(string_agg(t::text, ','"
		. " ORDER BY $key)), '-') FROM $table t", db => 'appdb');
}

# pgbench through pgmirror; checks rc 0 and 0 failed transactions.
sub bench_ok {
	my ($what, $args, %o) = @_;
	my ($rc, $out, $err) = $pgm->pgbench($args, %o);
	bench_check($what, $rc, $out, $err);
	return ($rc, $out, $err);
}

sub bench_check {
	my ($what, $rc, $out, $err) = @_;
	is($rc, 0, "$what: pgbench exits 0") or diag("$out\n$err");
	my ($processed) = $out =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $out =~ /number of failed transactions: (\d+)/;
	cmp_ok($processed // 0, '>', 0, "$what: " . ($processed // 0) . ' transactions');
	is($failed, 0, "$what: 0 failed transactions") or diag("$out\n$err");
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
# is a live child of the supervisor.
sub mirror_pid {
	my ($i) = @_;
	my @p = $pgm->log =~ /mirror worker \Q$i\E started \(pid (\d+)\)/g;
	return undef unless @p;
	my %kids = map { $_ => 1 } $pgm->workers;
	return $kids{ $p[-1] } ? $p[-1] : undef;
}

# --- 1. pgbench -i and TPC-B, simple and prepared --------------------------------

my ($rc, $out, $err);
ok(wait_until(sub { defined mirror_pid(0) && defined mirror_pid(1) }, 10),
	'two mirror workers are running');
ok(drained($MAIN, 10), 'stats lines for the mirror are logged');

for my $mode (qw(simple prepared)) {
	my $what = "TPC-B -M $mode";
	($rc, $out, $err) = $pgm->pgbench([ '-i', '-q', '-s', '1' ]);
	is($rc, 0, "$what: pgbench -i -s 1 through pgmirror") or diag("$out\n$err");
	my $st0 = drained($MAIN, 60);
	ok($st0, "$what: the init is replayed");
	is(q_dst('SELECT count(*) FROM pgbench_accounts'), 100000,
		"$what: dst has the 100000 accounts of the COPY");
	is(q_dst(q{SELECT string_agg(conrelid::regclass || ' ' || contype::text, ', ' ORDER BY 1)
		FROM pg_constraint WHERE conrelid::regclass::text LIKE 'pgbench_%'}),
		q_src(q{SELECT string_agg(conrelid::regclass || ' ' || contype::text, ', ' ORDER BY 1)
		FROM pg_constraint WHERE conrelid::regclass::text LIKE 'pgbench_%'}),
		"$what: dst has the same primary keys");
	bench_ok($what, [ '-n', '-M', $mode, '-c', '8', '-j', '2', '-T', '10' ]);
	my $st = drained($MAIN, 90);
	ok($st, "$what: the queue drains");
	my $d = delta($st0 // {}, $st // {});
	cmp_ok($d->{enqueued}, '>', 0, "$what: $d->{enqueued} transactions enqueued");
	is($d->{replayed}, $d->{enqueued}, "$what: all of them replayed");
	is($d->{errors}, 0, "$what: errors 0");
	is($d->{dropped}, 0, "$what: dropped 0");
	is($d->{gaps}, 0, "$what: gaps 0");
	for my $t ([ 'pgbench_accounts', 'aid' ], [ 'pgbench_tellers', 'tid' ],
		[ 'pgbench_branches', 'bid' ]) {
		is(table_sig($dst, @$t), table_sig($src, @$t), "$what: $t->[0] identical");
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
	my $st0 = drained($MAIN, 30);
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
	my $st = drained($MAIN, 30);
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
	my $st0 = drained($MAIN, 30);
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
	ok(drained($MAIN, 30), '3: the queue drains');
	$pgm->psql('INSERT INTO t3 VALUES (1000)');
	dst_is('SELECT count(*) FROM t3 WHERE id = 1000', '1',
		'3: then the next new session\'s insert reaches dst too', 10);
	my $st = drained($MAIN, 30);
	my $d = delta($st0 // {}, $st // {});
	cmp_ok($d->{dropped}, '>', 0, "3: dropped $d->{dropped}");
	cmp_ok($d->{gaps}, '>', 0, "3: gaps $d->{gaps}");
	cmp_ok($d->{replayed}, '>', 0, "3: replayed $d->{replayed}");
	like(substr($pgm->log, $from), qr/mirror appdb -> newdb: destination reachable again/,
		'3: "destination reachable again" logged');
}

# --- 4. a small queue and a locked destination ---------------------------------------

{
	my $st0 = drained($SMALL, 10);
	my $lock = $dst->dbh(db => 'appdb');
	$lock->begin_work;
	$lock->do('LOCK pgbench_branches IN ACCESS EXCLUSIVE MODE');
	bench_ok('4: queue 10, dst locked', [ '-n', '-c', '8', '-j', '2', '-T', '5' ], db => 'smallq');
	my $st = stats($SMALL);
	my $d = delta($st0 // {}, $st);
	cmp_ok($d->{dropped}, '>', 0, "4: dropped $d->{dropped}");
	cmp_ok($d->{gaps}, '>', 0, "4: gaps $d->{gaps}");
	cmp_ok($d->{enqueued}, '>', 0, "4: enqueued $d->{enqueued}");
	my ($maxlen) = sort { $b <=> $a } map { $_->{queue_length} } all_stats($SMALL);
	cmp_ok($maxlen, '<=', 10, "4: queue_length never over 10 (max $maxlen)");
	cmp_ok($st->{queue_length}, '>', 0, "4: transactions wait for the lock ($st->{queue_length})");
	cmp_ok($st->{lag_ms}, '>', 0, "4: lag_ms $st->{lag_ms} while they wait");
	$lock->rollback;
	$lock->disconnect;
	$st = drained($SMALL, 60);
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
	my $st0 = drained($MAIN, 30);
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
		ok(wait_until(sub { (stats($MAIN)->{divergent} // 0) >= $ndiv }, 10),
			"5: $sql: divergent $ndiv");
		my $new = substr($pgm->log, $from);
		like($new, qr/mirror appdb -> newdb: session \d+ transaction \d+: $re/,
			"5: $sql: the divergence is logged") or diag($new);
	}
	my $st = drained($MAIN, 30);
	my $d = delta($st0 // {}, $st // {});
	is($d->{divergent}, 3, '5: three divergent transactions');
	is($d->{errors}, 0, '5: errors 0');
	is(q_dst('SELECT v FROM t5 WHERE id = 1'), '100', '5: the UPDATE was replayed on dst all the same');
}

# --- 6. exposure 0.5 --------------------------------------------------------------------

{
	my $script = PgMirrorTest::tmp_base() . '/select1.sql';
	write_file($script, "SELECT 1;\n");
	my $main0 = drained($MAIN, 10);
	my $e0 = drained($EXPO, 10);
	bench_ok('6: 200 sessions on expo', [ '-n', '-C', '-c', '1', '-t', '200', '-f', $script ],
		db => 'expo');
	my $e = drained($EXPO, 30);
	my $d = delta($e0 // {}, $e // {});
	cmp_ok($d->{sessions}, '>=', 60, "6: mirrored sessions $d->{sessions} >= 60");
	cmp_ok($d->{sessions}, '<=', 140, "6: mirrored sessions $d->{sessions} <= 140");
	# pgbench's first connection, before the 200, sends no query.
	ok($d->{enqueued} == $d->{sessions} || $d->{enqueued} == $d->{sessions} - 1,
		"6: one transaction enqueued per mirrored session ($d->{enqueued})");
	is($d->{replayed}, $d->{enqueued}, '6: and replayed');
	is($d->{errors}, 0, '6: errors 0');
	is(delta($main0 // {}, stats($MAIN))->{sessions}, 0, '6: no session counted for appdb -> newdb');
}

# --- 7. workers killed under load --------------------------------------------------------

{
	my $st0 = drained($MAIN, 10);
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
	my $st1 = drained($MAIN, 60);
	ok($st1, '7: the queue drains after the kills');
	my $d = delta($st0 // {}, $st1 // {});
	cmp_ok($d->{enqueued}, '>', 0, "7: enqueued $d->{enqueued} during the run");

	# New sessions, on both mirror workers, are mirrored again.
	$pgm->psql("INSERT INTO t3 VALUES (2000 + $_)") for 1 .. 4;
	dst_is('SELECT count(*) FROM t3 WHERE id > 2000', '4', '7: new rows reach dst');
	my $st2 = drained($MAIN, 30);
	ok($st2, '7: the queue drains again');
	$d = delta($st1 // {}, $st2 // {});
	is($d->{enqueued}, 4, '7: enqueued grows by the four inserts');
	is($d->{replayed}, 4, '7: replayed grows by the four inserts');
	is($st2 && $st2->{queue_length}, 0, '7: queue_length 0');
	ok($pgm->alive, '7: the daemon is alive');
	is($pgm->psql('SELECT 1'), '1', '7: and serves clients');
}

my $log = $pgm->log;
is(scalar(() = $log =~ /mirror worker \d+ \(pid \d+\) died/g), 1,
	'no mirror worker died but the one killed');
is(scalar(() = $log =~ /worker \d+ \(pid \d+\) (?:killed by signal|exited with status)/g), 1,
	'no client worker died but the one killed');
unlike($log, qr/AddressSanitizer|runtime error/, 'no sanitizer report in the log');
done_testing();
