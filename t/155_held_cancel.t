# 155_held_cancel: what maintenance holds, a cancel drops, and the client,
# the source and the mirror agree on exactly what was dropped.
#
# One cluster with two databases, appdb (the source) and mirrordb (the
# destination), and a daemon with the mirror appdb -> mirrordb.  Every
# case runs under maintenance with a raw protocol client, so the bytes
# and their split are exactly the test's:
#
#  1. Two Queries in one write (SELECT 1, INSERT 666), then a
#     CancelRequest: each gets ERROR 57014 and ReadyForQuery, in order;
#     after maintenance off, SELECT 2 answers 2; 666 is on neither side,
#     a later marker row reaches the destination, and the mirror counts
#     no error and no divergence.
#  2. A complete SELECT 1 and a Query (INSERT 777) of which only the
#     header and part of the body were sent, then a CancelRequest: the
#     SELECT is cancelled, the partial INSERT stays held; its rest is
#     sent after maintenance off and it runs (INSERT 0 1), on the source
#     and on the destination.
#  3. Only part of a Query held: a CancelRequest has nothing complete to
#     cancel and is ignored (logged); the Query runs once completed.
#  4. A result the client has not read (larger than the kernel buffers
#     between pgmirror and the client, so pgmirror holds part of it),
#     then a new Query held and cancelled: the client reads every DataRow
#     whole, the CommandComplete, ReadyForQuery, and only then the ERROR
#     57014 and its ReadyForQuery.
#  5. Extended protocol: Parse/Bind/Execute/Sync of an INSERT, and a lone
#     Sync, held and cancelled: ERROR 57014 + ReadyForQuery for the
#     first, ReadyForQuery alone for the second; nothing inserted.
#  6. A session with a result it has not read moves to another server
#     (a reload points movedb at a second cluster whose TimeZone
#     differs): the client reads the result whole, and only then the
#     ParameterStatus TimeZone of the new server, then the answer of its
#     next query, from the new server.

use strict;
use warnings;

use PgMirrorTest;
use Test::More;
use Time::HiRes qw(sleep);

my $pg = pg_start();
$pg->setup_app;
$pg->create_db('mirrordb', 'app');
for my $db (qw(appdb mirrordb)) {
	$pg->psql('CREATE TABLE t (k int)', db => $db, user => 'app');
}

# A second cluster, with another TimeZone, where movedb moves in 6.
my $pg2 = pg_start();
$pg2->setup_app;
$pg2->psql("ALTER SYSTEM SET timezone = 'Asia/Tokyo'");
$pg2->psql('SELECT pg_reload_conf()');

my $pgm = pgm_start($pg,
	databases => [
		{ name => 'appdb', database => 'appdb' },
		{ name => 'mirrordb', database => 'mirrordb' },
		{ name => 'movedb', database => 'appdb' },
	],
	log => { stats_period => 1 },
	extra => <<'EOC');
mirror = { workers = 1; };
mirrors = ( { source = "appdb"; destination = "mirrordb"; } );
EOC

sub count_k {
	my ($db, $k) = @_;
	return $pg->psql("SELECT count(*) FROM t WHERE k = $k", db => $db);
}

sub maintenance {
	my ($on) = @_;
	my ($rc, undef, $err) = $pgm->ctl('maintenance', $on);
	is($rc, 0, "maintenance $on") or diag($err);
}

sub qmsg {
	my ($sql) = @_;
	return 'Q' . pack('N', 5 + length $sql) . "$sql\0";
}

sub cancel {
	my ($key) = @_;
	my $k = PgMirrorTest::raw_connect(host => $pgm->host, port => $pgm->port);
	$k->send_cancel($key);
	# The server side closes once the request is read.
	$k->read_bytes(1, 5);
	$k->hang_up;
}

# Waits until the marker row $k is on the destination.
sub mirrored {
	my ($k) = @_;
	return wait_until(sub { count_k('mirrordb', $k) == 1 }, 30, 0.2);
}

my $marker = 1000;

# A marker row through a new session: once it is on the destination,
# everything enqueued before it was replayed.
sub marker_ok {
	my ($what) = @_;
	$marker++;
	$pgm->psql("INSERT INTO t VALUES ($marker)");
	ok(mirrored($marker), "$what: a later marker row reaches the destination");
}

# --- 1. two Queries in one write, then a cancel --------------------------------------

{
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok} && $r->{key}, '1: raw client logged in');
	my $port = $c->{sock}->sockport;
	maintenance('on');
	$c->send_bytes(qmsg('SELECT 1') . qmsg('INSERT INTO t VALUES (666)'));
	ok($pgm->wait_client_state('waiting (maintenance)', port => $port),
		'1: both queries are held');
	cancel($r->{key});
	my $a1 = $c->collect(timeout => 5);
	my $a2 = $c->collect(timeout => 5);
	is($a1->{error}{C}, '57014', '1: the first query gets ERROR 57014');
	is($a1->{status}, 'I', '1: ... and ReadyForQuery');
	is($a2->{error}{C}, '57014', '1: the second query gets ERROR 57014 too');
	is($a2->{status}, 'I', '1: ... and its own ReadyForQuery');
	maintenance('off');
	my $q = $c->query('SELECT 2', timeout => 10);
	is_deeply($q->{rows}, [ [ 2 ] ], '1: then SELECT 2 answers 2');
	is_deeply($q->{tags}, [ 'SELECT 1' ], '1: ... with its own tag');
	$q = $c->query("INSERT INTO t VALUES (" . ++$marker . ")", timeout => 10);
	is_deeply($q->{tags}, [ 'INSERT 0 1' ], '1: the session writes afterwards');
	ok(mirrored($marker), '1: ... and that write is mirrored');
	$c->close;
	is(count_k('appdb', 666), 0, '1: 666 never reached the source');
	is(count_k('mirrordb', 666), 0, '1: ... nor the destination');
	marker_ok('1');
	sleep 1.2;
	my $st = $pgm->last_logged_stats('appdb -> mirrordb');
	is($st->{errors}, 0, '1: the mirror counts no error');
	is($st->{divergent}, 0, '1: ... and no divergence');
	unlike($pgm->log, qr/statement \d+: source/, '1: no divergence is logged');
}

# --- 2. a complete query and a partial one, then a cancel ---------------------------

{
	my ($c, $r) = $pgm->raw_login;
	my $port = $c->{sock}->sockport;
	maintenance('on');
	my $ins = qmsg('INSERT INTO t VALUES (777)');
	my $cut = 12;	# header and 7 bytes of the body
	$c->send_bytes(qmsg('SELECT 1') . substr($ins, 0, $cut));
	ok($pgm->wait_client_state('waiting (maintenance)', port => $port),
		'2: SELECT 1 and part of an INSERT are held');
	my $from = length $pgm->log;
	cancel($r->{key});
	my $a1 = $c->collect(timeout => 5);
	is($a1->{error}{C}, '57014', '2: the complete SELECT is cancelled');
	is($a1->{status}, 'I', '2: ... ReadyForQuery');
	ok($pgm->wait_client_state('waiting (maintenance)', port => $port),
		'2: the partial INSERT is still held');
	maintenance('off');
	$c->send_bytes(substr($ins, $cut));
	my $a2 = $c->collect(timeout => 10);
	is_deeply($a2->{tags}, [ 'INSERT 0 1' ], '2: the INSERT, completed, runs')
	  or diag(explain($a2));
	is($a2->{status}, 'I', '2: ... ReadyForQuery');
	my $q = $c->query('SELECT 3', timeout => 10);
	is_deeply($q->{rows}, [ [ 3 ] ], '2: the session is in step afterwards');
	$c->close;
	is(count_k('appdb', 777), 1, '2: 777 is on the source once');
	ok(mirrored(777), '2: ... and reaches the destination');
	like(substr($pgm->log, $from), qr/cancelled by the client \(1 request\)/,
		'2: the log says one request was cancelled');
}

# --- 3. only part of a query held: nothing to cancel -------------------------------

{
	my ($c, $r) = $pgm->raw_login;
	my $port = $c->{sock}->sockport;
	maintenance('on');
	my $ins = qmsg('INSERT INTO t VALUES (888)');
	$c->send_bytes(substr($ins, 0, 9));
	ok($pgm->wait_client_state('waiting (maintenance)', port => $port),
		'3: part of an INSERT is held');
	my $from = length $pgm->log;
	cancel($r->{key});
	ok(wait_until(sub { substr($pgm->log, $from) =~ /not complete yet: ignored/ }, 5, 0.05),
		'3: the cancel is ignored, and logged');
	maintenance('off');
	$c->send_bytes(substr($ins, 9));
	my $a = $c->collect(timeout => 10);
	is_deeply($a->{tags}, [ 'INSERT 0 1' ], '3: the INSERT runs once complete')
	  or diag(explain($a));
	$c->close;
	ok(mirrored(888), '3: ... and is mirrored');
}

# --- 4. an unread result, then a held query cancelled ------------------------------

# Bytes the kernel holds for the client's socket (FIONREAD).
sub unread {
	my ($c) = @_;
	my $n = pack('i', 0);
	ioctl($c->{sock}, 0x541B, $n) or die "FIONREAD: $!";
	return unpack('i', $n);
}

# Leaves a result the client $c (over the Unix socket) has not read,
# larger than what the kernel buffers between pgmirror and the client
# and small enough for pgmirror to have read it whole (its
# ReadyForQuery makes the session idle), so that pgmirror holds part of
# it unsent.  Over a Unix socket that capacity is fixed: it is measured
# first with a larger result, which is then read and thrown away.
# Returns the number of rows, each two columns: 8 digits and 80 x.
sub unread_result {
	my ($c, $what) = @_;
	my $rowsql = "SELECT lpad(i::text, 8, '0'), repeat('x', 80) FROM generate_series(1, %d) i";
	my $rowlen = 1 + 4 + 2 + 4 + 8 + 4 + 80;	# one DataRow
	$c->send_bytes(qmsg(sprintf($rowsql, 20000)));
	my $cap = 0;
	wait_until(sub { my $n = unread($c); my $same = $n == $cap && $n > 0; $cap = $n; $same }, 10, 0.3);
	$c->collect(timeout => 20);
	my $rows = int(($cap + 64 * 1024) / $rowlen);
	$c->send_bytes(qmsg(sprintf($rowsql, $rows)));
	ok($pgm->wait_client_state('idle', timeout => 10),
		"$what: the session is idle with its result unread");
	sleep 0.3;
	cmp_ok(unread($c), '<', $rows * $rowlen,
		"$what: (pgmirror holds part of the result, unsent)");
	return $rows;
}

# The answer to unread_result's query, read now: every row whole.
sub result_ok {
	my ($c, $rows, $what) = @_;
	my $a = $c->collect(timeout => 20);
	is(scalar @{ $a->{rows} }, $rows, "$what: the client reads all $rows rows");
	my @bad = grep { @$_ != 2 || $_->[1] ne 'x' x 80 } @{ $a->{rows} };
	is(scalar @bad, 0, "$what: ... every DataRow whole");
	ok(!$a->{error} && !%{ $a->{params} }, "$what: ... nothing of pgmirror's inside the result")
	  or diag(explain([ $a->{error}, $a->{params} ]));
	is_deeply($a->{tags}, [ "SELECT $rows" ], "$what: ... then its CommandComplete");
	is($a->{status}, 'I', "$what: ... and ReadyForQuery");
}

{
	my ($c, $r) = $pgm->raw_login(unix => 1);
	ok($r->{ok}, '4: raw client over the Unix socket');
	my $rows = unread_result($c, '4');
	maintenance('on');
	$c->send_bytes(qmsg('SELECT 4'));
	ok($pgm->wait_client_state('waiting (maintenance)'), '4: the next query is held');
	cancel($r->{key});
	sleep 0.3;
	result_ok($c, $rows, '4');
	my $a2 = $c->collect(timeout => 5);
	is($a2->{error}{C}, '57014', '4: then the held query gets ERROR 57014');
	is($a2->{status}, 'I', '4: ... and ReadyForQuery');
	maintenance('off');
	my $q = $c->query('SELECT 5', timeout => 10);
	is_deeply($q->{rows}, [ [ 5 ] ], '4: the session works afterwards');
	$c->close;
}

# --- 5. extended protocol and a lone Sync -----------------------------------------

{
	my ($c, $r) = $pgm->raw_login;
	my $port = $c->{sock}->sockport;
	maintenance('on');
	my $sql = "INSERT INTO t VALUES (999)\0";
	my $b = 'P' . pack('N', 4 + 1 + length($sql) + 2) . "\0" . $sql . pack('n', 0)
	  . 'B' . pack('N', 4 + 1 + 1 + 2 + 2 + 2) . "\0\0" . pack('n n n', 0, 0, 0)
	  . 'E' . pack('N', 4 + 1 + 4) . "\0" . pack('N', 0)
	  . 'S' . pack('N', 4)
	  . 'S' . pack('N', 4);
	$c->send_bytes($b);
	ok($pgm->wait_client_state('waiting (maintenance)', port => $port),
		'5: Parse/Bind/Execute/Sync and a Sync are held');
	cancel($r->{key});
	my $a1 = $c->collect(timeout => 5);
	is($a1->{error}{C}, '57014', '5: the extended request gets ERROR 57014');
	is($a1->{status}, 'I', '5: ... and ReadyForQuery');
	my $a2 = $c->collect(timeout => 5);
	ok(!$a2->{error}, '5: the lone Sync gets no error');
	is_deeply($a2->{messages}, [ 'Z' ], '5: ... only ReadyForQuery');
	maintenance('off');
	my $q = $c->query('SELECT 6', timeout => 10);
	is_deeply($q->{rows}, [ [ 6 ] ], '5: the session works afterwards');
	$c->close;
	marker_ok('5');
	is(count_k('appdb', 999), 0, '5: nothing was inserted on the source');
	is(count_k('mirrordb', 999), 0, '5: ... nor on the destination');
}

# --- 6. a session with an unread result moves ------------------------------------

{
	my ($c, $r) = $pgm->raw_login(unix => 1, database => 'movedb');
	ok($r->{ok}, '6: raw client of movedb');
	is($r->{params}{TimeZone}, $pg->psql('SHOW timezone'), "6: the first server's TimeZone");
	my $rows = unread_result($c, '6');
	my $conf = slurp($pgm->conffile);
	my $port1 = $pg->port;
	my $port2 = $pg2->port;
	ok($conf =~ s/(name = "movedb";[^}]*port = )$port1;/$1$port2;/, '6: movedb now on the second cluster');
	write_file($pgm->conffile, $conf);
	my ($rc, undef, $err) = $pgm->ctl('reload');
	is($rc, 0, '6: reload') or diag($err);
	$c->send_bytes(qmsg('SELECT inet_server_port()'));
	result_ok($c, $rows, '6');
	my $a = $c->collect(timeout => 20);
	is($a->{messages}[0], 'S', '6: then a ParameterStatus, first') or diag(explain($a->{messages}));
	is($a->{params}{TimeZone}, 'Asia/Tokyo', "6: ... the new server's TimeZone");
	is_deeply($a->{rows}, [ [ $port2 ] ], '6: then the answer, from the new server');
	$c->close;
}

my $st = $pgm->last_logged_stats('appdb -> mirrordb');
is($st->{errors} // -1, 0, 'the mirror counted no error in all');
is($st->{divergent} // -1, 0, '... and no divergence');
ok($pgm->alive, 'the daemon is alive');

done_testing();
