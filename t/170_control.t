# 170_control: the control socket, pgmirrorctl and the admin console.
#
# One cluster with role app/secret owning appdb and appdb2, and a table
# ctl_t (k int) in each.  One daemon with two databases entries, appdb and
# appdb2 (one per database, same cluster), and an admin console (admin.user
# "admin", password "adminpw", admin.database the default "pgmirror").
# Requests go through pgmirrorctl ($pgm->ctl) or are written by hand
# ($pgm->ctl_raw: one line, then the whole answer until the daemon closes).
# A DBD::Pg session of app opened at the start lives through the file.
#
#  1. Basics: the socket file exists with mode 0660; status (raw, and
#     pgmirrorctl -t and plain) answers OK with the version of pgmirror -V,
#     the supervisor's pid and maintenance off; every show table has its
#     documented columns, raw and through pgmirrorctl -t (and -j gives
#     JSON objects with those keys); show clients lists the DBD::Pg
#     session (user app, database appdb, its client port in the address,
#     idle, its worker's pid, the backend pid it sees, the server's
#     address); show servers has it "in use"; show pools has open >= 1.
#     show config lists every setting of pgmirror.conf(5) once, in its
#     order (client.*, server.*, tls.*, ... with their defaults), and
#     besides only config_file, listen and the databases entries;
#     admin.password shows as ******** and no password is ever in it.
#  2. Malformed requests: an unknown command, an empty line, binary bytes
#     with a newline, binary bytes without one and then the write side
#     shut, a line of 5000 bytes, an unknown show, bad maintenance
#     arguments: each gets an ERROR (the binary without newline: an ERROR
#     or a close) and never an OK; the long one is logged as refused.  The
#     limit of pgmirrorctl(8): a line of 4096 bytes with its newline is
#     taken, one of 4097 is "ERROR request too long".  A
#     connection that sends nothing does not block others (status answers
#     at once meanwhile) and gets "ERROR no request within 10 s" (collected
#     after 3 and 4, so the wait overlaps them).  The daemon stays up and
#     psql through it works.
#  3. A second daemon with the same control_socket refuses to start, exits
#     1 and names the socket; the first keeps serving.  A stale socket
#     file (nobody listening) is replaced by a new daemon, and a missing
#     directory of control_socket is created (mode 0750).
#  4. Permissions (root only): with the socket chmod 0777, user nobody
#     (setpriv) gets "ERROR permission denied" (pgmirrorctl exits 1 with
#     that reason, a raw connection reads that line) and the log says it
#     refused a peer; nobody with the daemon's group (gid 0) is answered.
#  5. Maintenance: a psql through pgmirror logs in but its SELECT 1 waits
#     (running after 2 s, "waiting (maintenance)" in show clients) until
#     maintenance off, then prints 1.  A DBD::Pg transaction opened before
#     goes on (INSERT, SELECT, COMMIT) while maintenance is on (a watchdog
#     turns maintenance off after 10 s, so a hold fails the checks instead
#     of hanging); the next request of that session (an async INSERT)
#     waits until off.  maintenance on
#     --wait 2 with a transaction open fails after the wait naming the
#     session (worker pid, client port) and leaves maintenance on; after
#     the COMMIT, --wait 5 succeeds.  A held client that goes away (psql
#     killed; a raw client closing its socket) has its INSERT thrown away:
#     the row never reaches PostgreSQL, the log says it was not run.
#     maintenance on appdb2 holds clients of appdb2 only; maintenance off
#     lifts it.  maintenance on for an unknown database is an ERROR.
#  6. Reload through the socket: a syntax error -> pgmirrorctl reload and
#     reload --check exit 1 with FILE:LINE on stderr, generation unchanged,
#     the open session and new ones work; a good changed file (a new
#     pool.wait_timeout): reload --check says OK and applies nothing (same
#     generation, show config unchanged), reload applies it (generation +
#     1, show config shows the new value).  A file that also changes
#     control_socket and log.facility: the reload applies the rest, logs
#     that each of the two needs a restart, and show config keeps their
#     running values (nothing listens at the new socket); the file as
#     before reloads with nothing needing a restart.
#  7. Admin console: psql -A as admin in database pgmirror: SHOW MIRRORS,
#     SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS, SHOW VERSION,
#     STATUS give result sets with the columns of 1; SHOW CONFIG has every
#     setting, admin.password as ******** and no password; MAINTENANCE ON appdb
#     and MAINTENANCE OFF act (seen through the socket), also as one query
#     string; a query over 4 kB is FATAL 08P01; an unknown statement is
#     ERROR 42601 and the next statement
#     still runs; a wrong password is refused with 28P01, user app asking
#     for database pgmirror with 28000; a config whose admin.database is
#     the name of a databases entry is refused by pgmirror -n.  DBD::Pg
#     (simple protocol, pg_server_prepare 0) runs SHOW CLIENTS.
#  8. Cancel of a held request: with maintenance on, a DBD::Pg session's
#     async INSERT (values inline: placeholders would make DBD::Pg prepare
#     synchronously) is "waiting (maintenance)"; $dbh->pg_cancel (a
#     CancelRequest through pgmirror; DBD::Pg reads the answer itself)
#     returns true with SQLSTATE 57014 at once, maintenance still on, the
#     session idle again, the log naming the cancel.  A raw client's held
#     INSERT and its CancelRequest: ERROR "canceling statement due to user
#     request", 57014, no command tag, then ReadyForQuery 'I'.  After
#     maintenance off both sessions answer SELECT 1 (the DBD::Pg one on
#     the same backend) and neither row ever reaches PostgreSQL.
#  9. A Query (an INSERT) and a Terminate in one write while maintenance
#     is on: pgmirror closes the connection without an answer (the client
#     kept its socket open) or drops the session of a client that closed
#     at once, while maintenance stays on; after maintenance off neither
#     row ever reaches PostgreSQL.
# 10. Per-database maintenance survives a switchover: maintenance on
#     appdb2 with a client of appdb2 held; a switchover of a file changed
#     only by a comment (nothing to move) succeeds (generation + 1); status
#     still says maintenance appdb2, the held client still waits and a new
#     one of appdb2 waits too, clients of appdb go on; maintenance off
#     lets both appdb2 clients finish.
#
# The daemon stays up throughout and no worker dies.

use strict;
use warnings;

use DBD::Pg qw(:async);
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP ();
use PgMirrorTest;
use Socket ();
use Test::More;
use Time::HiRes qw(time sleep);

my $T0 = time;

my $CTL = pgmirrorctl_bin();
BAIL_OUT('pgmirrorctl not found next to pgmirror; build it or set PGMIRRORCTL') unless $CTL;

my $pg = pg_start();
$pg->setup_app;
$pg->create_db('appdb2', 'app');
for my $db (qw(appdb appdb2)) {
	$pg->psql('CREATE TABLE ctl_t (k int)', db => $db, user => 'app');
}

my $ADMIN = 'admin = { user = "admin"; password = "adminpw"; };';
my $pgm = pgm_start($pg,
	databases => [ { name => 'appdb', database => 'appdb' },
		{ name => 'appdb2', database => 'appdb2' } ],
	extra => $ADMIN);
my $SOCK = $pgm->{ctlsock};

my ($VERSION) = do {
	my ($rc, $out) = run_cmd([ pgmirror_bin(), '-V' ]);
	$out =~ /^pgmirror (\S+)$/m;
};
ok($VERSION, "pgmirror -V says version " . ($VERSION // '?'));

# Every scalar setting of pgmirror.conf(5), in the order show config gives.
my @SETTINGS = qw(control_socket user group admin.database admin.user admin.password
	auth_type workers.min_spare workers.max_spare workers.max workers.max_clients
	pool.mode pool.default_size pool.min_size pool.wait_timeout pool.reset_query
	shutdown_timeout client.login_timeout client.idle_timeout
	client.idle_transaction_timeout client.max_connections client.max_message_size
	server.connect_timeout server.lifetime server.idle_timeout
	server.allow_cleartext_password mirror_queue mirror.workers mirror.retry_max
	mirror.replay_timeout tls.cert_file tls.key_file tls.ca_file tls.client_ca_file
	tls.client_mode tls.server_mode tls.server_cert_file tls.server_key_file
	metrics.listen log.destination log.facility log.stats_period);

my %COLS = (
	clients => [qw(pid user database address state state_seconds server backend_pid)],
	mirrors => [qw(source destination sessions enqueued replayed errors dropped
		divergent gaps queue_length queue_bytes lag_ms)],
	pools   => [qw(database user size open parked waiting)],
	servers => [qw(pid database user server backend_pid state)],
	stats   => [qw(database clients active queries bytes_in bytes_out)],
	config  => [qw(name value)],
	version => [qw(version)],
	status  => [qw(name value)],
);

# Tab-separated output of pgmirrorctl -t, parsed like an OK answer (see
# PgMirrorTest::parse_answer).
sub parse_tabs {
	my ($text) = @_;
	return parse_answer("OK\n" . ($text // ''));
}

# The show clients row whose address ends in :$port, or undef.
sub client_row {
	my ($port) = @_;
	my ($r) = grep { $_->{address} =~ /:\Q$port\E$/ } $pgm->clients;
	return $r;
}

# Rows of ctl_t with value $k on PostgreSQL directly.
sub count_k {
	my ($k, $db) = @_;
	return $pg->psql("SELECT count(*) FROM ctl_t WHERE k = $k", db => $db // 'appdb') + 0;
}

sub daemon_ok {
	my ($what) = @_;
	ok($pgm->alive, "$what: the daemon is alive");
	my ($out, $err, $rc) = $pgm->psql('SELECT 41 + 1', timeout => 20);
	ok($rc == 0 && $out eq '42', "$what: psql through pgmirror works") or diag("rc $rc: $err");
}

# The long DBD::Pg session.
my $dbh = $pgm->dbh;
my $dport = dbh_port($dbh);
my $dbackend = $dbh->selectrow_array('SELECT pg_backend_pid()');
my $dworker = $pgm->worker_for($dbh);
ok($dworker, "DBD::Pg session open: client port $dport, backend $dbackend, worker $dworker");

# --- 1. basics ----------------------------------------------------------------

{
	ok(-S $SOCK, "1: the control socket $SOCK exists");
	my $mode = (stat $SOCK)[2] & 07777;
	is(sprintf('%04o', $mode), '0660', '1: ... with mode 0660');

	my $raw = $pgm->ctl_raw('status');
	my $a = parse_answer($raw);
	ok($a->{ok}, '1: raw status answers OK') or diag($raw);
	is_deeply($a->{header}, $COLS{status}, '1: raw status: columns name, value');
	my %st = map { $_->{name} => $_->{value} } row_hashes($a);
	is($st{version}, $VERSION, '1: raw status: version is that of pgmirror -V');
	is($st{pid}, $pgm->pid, '1: raw status: pid is the supervisor\'s');
	is($st{maintenance}, 'off', '1: raw status: maintenance off');
	is($st{config_file}, $pgm->conffile, '1: raw status: config_file');
	like($st{generation} // '', qr/^\d+$/, '1: raw status: a generation number');

	my ($rc, $out, $err) = $pgm->ctl('-t', 'status');
	is($rc, 0, '1: pgmirrorctl -t status exits 0') or diag($err);
	is($err, '', '1: ... nothing on stderr');
	my $t = parse_tabs($out);
	is_deeply($t->{header}, $COLS{status}, '1: ... header name, value');
	my %cst = map { $_->{name} => $_->{value} } row_hashes($t);
	is($cst{version}, $VERSION, '1: ... version');
	is($cst{pid}, $pgm->pid, '1: ... pid');
	is($cst{maintenance}, 'off', '1: ... maintenance off');

	($rc, $out, $err) = $pgm->ctl('status');
	is($rc, 0, '1: pgmirrorctl status (for people) exits 0') or diag($err);
	like($out, qr/^maintenance\W+off$/m, '1: ... shows maintenance off') or diag($out);
	like($out, qr/^pid\W+\Q${\ $pgm->pid}\E$/m, '1: ... and the pid') or diag($out);

	for my $what (qw(clients mirrors pools servers stats config version)) {
		my $r = $pgm->ctl_raw("show $what");
		my $p = parse_answer($r);
		ok($p->{ok}, "1: raw show $what answers OK") or diag($r);
		is_deeply($p->{header}, $COLS{$what}, "1: raw show $what: documented columns")
		  or diag($r);
		my $bad = grep { @$_ != @{ $COLS{$what} } } @{ $p->{rows} };
		is($bad, 0, "1: raw show $what: every row has " . @{ $COLS{$what} } . ' fields');
		($rc, $out, $err) = $pgm->ctl('-t', 'show', $what);
		is($rc, 0, "1: pgmirrorctl -t show $what exits 0") or diag($err);
		is_deeply(parse_tabs($out)->{header}, $COLS{$what},
			"1: pgmirrorctl -t show $what: documented columns") or diag($out);
	}

	($rc, $out, $err) = $pgm->ctl('-j', 'show', 'pools');
	is($rc, 0, '1: pgmirrorctl -j show pools exits 0') or diag($err);
	my $j = eval { JSON::PP::decode_json($out) };
	ok(ref $j eq 'ARRAY' && @$j == 2, '1: ... a JSON array of the two pools') or diag($@ || $out);
	is_deeply([ sort keys %{ $j->[0] || {} } ], [ sort @{ $COLS{pools} } ],
		'1: ... objects with the pools columns as keys');

	my @ver = $pgm->rows('show version');
	is(scalar @ver, 1, '1: show version: one row');
	is($ver[0]{version}, "pgmirror $VERSION", '1: show version: "pgmirror VERSION"');

	my %cfg = map { $_->{name} => $_->{value} } $pgm->rows('show config');
	is($cfg{control_socket}, $SOCK, '1: show config: control_socket');
	is($cfg{'admin.database'}, 'pgmirror', '1: show config: admin.database defaults to pgmirror');
	is($cfg{'databases.appdb2'}, "$pg->{host}:$pg->{port}/appdb2", '1: show config: databases.appdb2');
	my $raw = $pgm->ctl_raw('show config');
	my @names = map { $_->[0] } @{ parse_answer($raw)->{rows} };
	my %want = map { $_ => 1 } @SETTINGS;
	is_deeply([ grep { $want{$_} } @names ], \@SETTINGS,
		'1: show config: every setting of pgmirror.conf(5), each once, in order') or diag($raw);
	is_deeply([ grep { !$want{$_} && !/^(config_file|listen|databases\.\w+|mirrors\.\w+)$/ } @names ], [],
		'1: show config: nothing else but config_file, listen and the databases entries') or diag($raw);
	is_deeply([ @cfg{qw(client.idle_timeout client.max_message_size server.connect_timeout
		server.allow_cleartext_password pool.mode pool.reset_query mirror.workers tls.client_mode
		tls.cert_file log.facility admin.user)} ],
		[ 0, 1073741824, 15, 'false', 'session', 'DISCARD ALL', 2, 'disable', '', 'daemon', 'admin' ],
		'1: show config: defaults of client.*, server.*, pool.*, mirror.*, tls.*, log.* as written in the file');
	is($cfg{'admin.password'}, '********', '1: show config: admin.password is set, shown as ********');
	unlike($raw, qr/adminpw|\bsecret\b/, '1: show config: never the admin password nor a user\'s');

	my $c = client_row($dport);
	ok($c, "1: show clients lists the DBD::Pg session (address ends in :$dport)");
	is($c->{user}, 'app', '1: ... user app');
	is($c->{database}, 'appdb', '1: ... database appdb');
	like($c->{address}, qr/^127\.0\.0\.1:\Q$dport\E$/, '1: ... address 127.0.0.1:port');
	is($c->{state}, 'idle', '1: ... state idle');
	like($c->{state_seconds}, qr/^\d+$/, '1: ... state_seconds a number');
	is($c->{pid}, $dworker, '1: ... pid is its worker');
	is($c->{backend_pid}, $dbackend, '1: ... backend_pid is pg_backend_pid()');
	is($c->{server}, "$pg->{host}:$pg->{port}", '1: ... server is the cluster');

	my ($s) = grep { $_->{backend_pid} eq $dbackend }
	  $pgm->rows('show servers');
	ok($s && $s->{state} eq 'in use' && $s->{pid} eq $dworker && $s->{database} eq 'appdb',
		'1: show servers: its server connection, in use by its worker');

	my ($p) = grep { $_->{database} eq 'appdb' && $_->{user} eq 'app' }
	  $pgm->rows('show pools');
	ok($p, '1: show pools: pool appdb/app');
	cmp_ok($p->{open} // 0, '>=', 1, '1: ... open >= 1');
	is($p->{size}, 100, '1: ... size 100 (pool.default_size)');

	my ($sd) = grep { $_->{database} eq 'appdb' }
	  $pgm->rows('show stats');
	cmp_ok($sd->{active} // 0, '>=', 1, '1: show stats: appdb has an active client');
	cmp_ok($sd->{queries} // 0, '>=', 1, '1: show stats: ... and queries counted');
}

# --- 2. malformed requests -------------------------------------------------------

# The silent connection: opened now, collected after 3 and 4.
my $silent = IO::Socket::UNIX->new(Peer => $SOCK, Type => Socket::SOCK_STREAM());
ok($silent, '2: a connection that sends nothing is open');
my $silent_t0 = time;
{
	my $from = length $pgm->log;
	my @cases = (
		[ 'an unknown command', 'frobnicate', qr/^ERROR unknown command "frobnicate"\n$/ ],
		[ 'an empty line', '', qr/^ERROR empty request\n$/ ],
		[ 'binary bytes and a newline', "\xff\xfe\x01 \x80binary\x1b", qr/^ERROR [^\n]+\n$/ ],
		[ 'a NUL first, then a newline', "\x00status", qr/^ERROR [^\n]+\n$/ ],
		[ 'a line of 5000 bytes', 'x' x 5000, qr/^ERROR request too long\n$/ ],
		[ 'show of an unknown table', 'show everything', qr/^ERROR show what\?/ ],
		[ 'maintenance without on/off', 'maintenance sideways', qr/^ERROR usage: maintenance/ ],
		[ 'a bad --wait', 'maintenance on --wait soon', qr/^ERROR .*seconds/ ],
		[ 'status with an argument', 'status please', qr/^ERROR / ],
	);
	for my $c (@cases) {
		my ($what, $line, $re) = @$c;
		my $ans = $pgm->ctl_raw($line, timeout => 5);
		like($ans // '(connect failed)', $re, "2: $what gets an ERROR");
		ok(!$pgm->{ctl_timed_out}, "2: ... at once, and the connection is closed");
	}
	# The limit, as pgmirrorctl(8) gives it: 4096 bytes, the newline
	# included ("status" and spaces, which separate no further word).
	for my $len (4095, 4096) {
		my $ans = $pgm->ctl_raw('status' . (' ' x ($len - 7)), timeout => 5);
		like($ans // '', qr/^OK\n/, "2: a request line of $len bytes, newline included, is taken")
		  or diag('answer: ' . ($ans // 'none'));
	}
	my $ans = $pgm->ctl_raw('status' . (' ' x (4097 - 7)), timeout => 5);
	is($ans, "ERROR request too long\n", '2: one of 4097 bytes is refused: request too long');

	$ans = $pgm->ctl_raw("\x00\xff\x01\x02garbage\x7f", nonl => 1, shut => 1, timeout => 5);
	ok(defined $ans && ($ans eq '' || $ans =~ /^ERROR /),
		'2: binary bytes without a newline, then the write side shut: an ERROR or a close')
	  or diag(defined $ans ? "answer: $ans" : "connect failed: $!");
	ok(!$pgm->{ctl_timed_out}, '2: ... at once');

	# A client that goes away half-way through its line.
	my $half = IO::Socket::UNIX->new(Peer => $SOCK, Type => Socket::SOCK_STREAM());
	syswrite($half, 'show cli');
	close $half;

	# The silent one is still there: others are answered meanwhile.
	my $t = time;
	my $st = parse_answer($pgm->ctl_raw('status', timeout => 5));
	ok($st->{ok} && !$pgm->{ctl_timed_out}, '2: with a silent connection open, status still answers');
	cmp_ok(time - $t, '<', 5, '2: ... without waiting for the silent one');

	is($pgm->status->{maintenance}, 'off', '2: none of them turned maintenance on');
	my $log = substr($pgm->log, $from);
	like($log, qr/control: request longer than \d+ bytes refused/,
		'2: the log says a too long request was refused');
	daemon_ok('2');
}

# --- 3. a second daemon on the same control socket ----------------------------------

{
	my $second = pgm_start($pg, control_socket => $SOCK, wait => 0);
	my $st = $second->wait_exit(15);
	ok(defined $st, '3: a second daemon with the same control_socket exits');
	is(defined $st ? $st >> 8 : undef, 1, '3: ... with status 1');
	like($second->log, qr/control socket \Q$SOCK\E is in use/, '3: ... and says the socket is in use')
	  or diag($second->log);
	ok(-S $SOCK, '3: the socket file of the first is still there');
	my $a = parse_answer($pgm->ctl_raw('status'));
	ok($a->{ok}, '3: the first still answers on it');
	is({ map { $_->{name} => $_->{value} } row_hashes($a) }->{pid}, $pgm->pid,
		'3: ... it is the first daemon that answers');
	daemon_ok('3');

	# A stale socket file: nobody listens on it.
	my $stale = tmp_base() . '/stale.sock';
	{
		my $l = IO::Socket::UNIX->new(Local => $stale, Listen => 1, Type => Socket::SOCK_STREAM())
		  or die "listen $stale: $!";
		close $l;
	}
	ok(-S $stale, '3: a stale socket file exists');
	my $third = pgm_start($pg, control_socket => $stale);
	my $a3 = parse_answer($third->ctl_raw('status'));
	ok($a3->{ok}, '3: a daemon starts over a stale socket file and answers on it');
	is({ map { $_->{name} => $_->{value} } row_hashes($a3) }->{pid}, $third->pid,
		'3: ... it is the new daemon');
	$third->stop;
	ok(!-e $stale, '3: ... and removes the socket file when it stops');

	# A missing directory is created.
	my $newdir = tmp_base() . '/ctl-new';
	my $fourth = pgm_start($pg, control_socket => "$newdir/ctl.sock");
	ok(-d $newdir, '3: a missing directory of control_socket is created');
	is(sprintf('%04o', (stat $newdir)[2] & 07777), '0750', '3: ... with mode 0750');
	ok(parse_answer($fourth->ctl_raw('status'))->{ok}, '3: ... and the socket in it answers');
	$fourth->stop;
}

# --- 4. permissions ------------------------------------------------------------------

SKIP: {
	skip 'permissions: not running as root', 12 if $> != 0;
	skip 'permissions: no setpriv', 12 unless -x '/usr/bin/setpriv' || -x '/bin/setpriv';
	skip 'permissions: no user nobody or group nogroup', 12
	  unless defined getpwnam('nobody') && defined getgrnam('nogroup');

	# Let nobody reach the socket file, so that only SO_PEERCRED refuses.
	chmod 0777, $SOCK or die "chmod $SOCK: $!";
	my $d = $SOCK;
	while (($d =~ s{/[^/]+$}{}) && length $d) {
		my $m = (stat $d)[2] & 07777;
		chmod($m | 0001, $d) unless $m & 0001;
	}
	# Run a copy of pgmirrorctl that nobody surely may read.
	my $ctlcopy = tmp_base() . '/pgmirrorctl';
	system('cp', $CTL, $ctlcopy) == 0 or die "cp $CTL: $?";
	chmod 0755, $ctlcopy;
	my @nobody = ('setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups');
	my @nobody_root_group = ('setpriv', '--reuid=nobody', '--regid=0', '--clear-groups');

	my $from = length $pgm->log;
	my ($rc, $out, $err) = run_cmd([ @nobody, $ctlcopy, '-s', $SOCK, 'status' ], timeout => 30);
	is($rc, 1, '4: pgmirrorctl as nobody exits 1');
	like($err, qr/permission denied/, '4: ... with "permission denied" on stderr') or diag($err);
	is(($err =~ tr/\n//), 1, '4: ... on one line');
	unlike($out, qr/maintenance/, '4: ... and prints no status');

	my $script = 'use IO::Socket::UNIX; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0], '
	  . 'Type => SOCK_STREAM) or die "connect: $!\n"; syswrite($s, "status\n"); '
	  . 'local $/; my $a = <$s>; print $a // "";';
	($rc, $out, $err) = run_cmd([ @nobody, $^X, '-e', $script, $SOCK ], timeout => 30);
	is($rc, 0, '4: a raw connection as nobody connects') or diag($err);
	is($out, "ERROR permission denied\n", '4: ... and reads "ERROR permission denied" alone');

	my $log = '';
	wait_until(sub { $log = substr($pgm->log, $from); $log =~ /control: refused a peer/ }, 5);
	like($log, qr/control: refused a peer/, '4: the log says it refused a peer');
	my @refused = $log =~ /control: refused a peer/g;
	is(scalar @refused, 2, '4: ... once for each of the two connections');
	unlike($log, qr/control: status/, '4: ... and ran no request of theirs');

	($rc, $out, $err) = run_cmd([ @nobody_root_group, $ctlcopy, '-s', $SOCK, '-t', 'status' ],
		timeout => 30);
	is($rc, 0, '4: nobody in the daemon\'s group (gid 0) is answered') or diag($err);
	my %st = map { $_->{name} => $_->{value} } row_hashes(parse_tabs($out));
	is($st{pid}, $pgm->pid, '4: ... with the status');
	ok($pgm->alive, '4: the daemon is alive');

	chmod 0660, $SOCK;
}

# --- 2 (end). the silent connection ----------------------------------------------------

{
	my $ans = '';
	my $sel = IO::Select->new($silent);
	my $deadline = $silent_t0 + 20;
	while (time < $deadline) {
		next unless $sel->can_read($deadline - time);
		my $n = sysread($silent, my $chunk, 4096);
		last unless $n;
		$ans .= $chunk;
	}
	my $waited = time - $silent_t0;
	is($ans, "ERROR no request within 10 s\n", '2: the silent connection gets "ERROR no request within 10 s"');
	ok($waited < 20, sprintf('2: ... and is closed (after %.1f s)', $waited));
	cmp_ok($waited, '>', 5, '2: ... not before it had its time');
	close $silent;
	daemon_ok('2 (end)');
}

# --- 5. maintenance ---------------------------------------------------------------------

{
	# a) A new request waits; the login does not.
	my ($rc, $out, $err) = $pgm->ctl('maintenance', 'on');
	is($rc, 0, '5a: pgmirrorctl maintenance on exits 0') or diag($err);
	is($pgm->status->{maintenance}, 'on', '5a: status says maintenance on');
	my $bg = $pgm->psql_bg('SELECT 1', timeout => 60);
	my $row = $pgm->wait_client_state('waiting (maintenance)');
	ok($row, '5a: a psql logs in and show clients lists it "waiting (maintenance)"');
	is($row && $row->{database}, 'appdb', '5a: ... in appdb');
	sleep 2;
	ok($bg->running, '5a: its SELECT 1 is still waiting after 2 s');
	is($pgm->status->{maintenance}, 'on', '5a: maintenance is still on');
	($rc, $out, $err) = $pgm->ctl('maintenance', 'off');
	is($rc, 0, '5a: pgmirrorctl maintenance off exits 0') or diag($err);
	my ($brc, $bout, $berr) = $bg->finish;
	is($brc, 0, '5a: then the psql finishes, exit 0') or diag($berr);
	is($bout, "1\n", '5a: ... printing 1');
	is($berr, '', '5a: ... and no error');
	is($pgm->status->{maintenance}, 'off', '5a: status says maintenance off');

	# b) A transaction in progress goes on; the next request waits.
	my $tx = $pgm->dbh(attr => { AutoCommit => 0 });
	my $tport = dbh_port($tx);
	$tx->do('INSERT INTO ctl_t VALUES (1)');
	is((client_row($tport) || {})->{state}, 'in transaction', '5b: a DBD::Pg session is in a transaction');
	($rc, undef, $err) = $pgm->ctl('maintenance', 'on');
	is($rc, 0, '5b: maintenance on') or diag($err);
	# Should pgmirror hold it, DBD::Pg would block: a watchdog lifts
	# maintenance after 10 s, which the checks below would see.
	my $dog = start_cmd([ $^X, '-e', 'sleep 10; exec @ARGV', $CTL, '-s', $SOCK, 'maintenance', 'off' ]);
	my ($n, $v) = eval {
		$tx->do('INSERT INTO ctl_t VALUES (2)');
		my $n = $tx->selectrow_array('SELECT count(*) FROM ctl_t WHERE k IN (1, 2)');
		$tx->commit;
		($n, 'committed');
	};
	my $still = $pgm->status->{maintenance};
	$dog->signal('KILL');
	$dog->finish;
	is($v, 'committed', '5b: its INSERT, SELECT and COMMIT run while maintenance is on')
	  or diag($@);
	is($n, 2, '5b: ... the SELECT sees both rows');
	is($still, 'on', '5b: ... without waiting for maintenance to end');
	is(count_k(2), 1, '5b: the committed row is on PostgreSQL');

	# The next transaction: an async INSERT (in autocommit, so that
	# DBD::Pg sends no blocking BEGIN first) must wait.
	$tx->{AutoCommit} = 1;
	$tx->do('INSERT INTO ctl_t VALUES (3)', { pg_async => PG_ASYNC });
	my $w = $pgm->wait_client_state('waiting (maintenance)', port => $tport);
	ok($w, '5b: its next transaction is held: "waiting (maintenance)"');
	sleep 1;
	ok(!$tx->pg_ready, '5b: ... and gets no answer while maintenance is on');
	is(count_k(3), 0, '5b: ... nor reaches PostgreSQL');
	($rc, undef, $err) = $pgm->ctl('maintenance', 'off');
	is($rc, 0, '5b: maintenance off') or diag($err);
	ok(wait_until(sub { $tx->pg_ready }, 10), '5b: then it is answered');
	is($tx->pg_result, 1, '5b: ... INSERT 1');
	is(count_k(3), 1, '5b: ... and the row is on PostgreSQL');
	$tx->{AutoCommit} = 0;

	# c) maintenance on --wait with a transaction open.
	$tx->do('INSERT INTO ctl_t VALUES (4)');
	my $t0 = time;
	($rc, $out, $err) = $pgm->ctl('-t', 'maintenance', 'on', '--wait', '2');
	my $took = time - $t0;
	is($rc, 1, '5c: maintenance on --wait 2 with a transaction open exits 1');
	cmp_ok($took, '>=', 1.8, sprintf('5c: ... after the wait (%.1f s)', $took));
	like($err, qr/1 session still in a transaction or a query after the wait; maintenance stays on/,
		'5c: ... saying one session is in a transaction and maintenance stays on') or diag($err);
	my $tab = parse_tabs($out);
	is_deeply($tab->{header}, $COLS{clients}, '5c: ... with a table of show clients columns')
	  or diag($out);
	my @busy = row_hashes($tab);
	is(scalar @busy, 1, '5c: ... naming one session') or diag($out);
	like($busy[0]{address} // '', qr/:\Q$tport\E$/, '5c: ... the one of the open transaction (address)');
	is($busy[0]{pid}, $pgm->worker_for($tx), '5c: ... (its worker pid)');
	is($busy[0]{state}, 'in transaction', '5c: ... in transaction');
	is($pgm->status->{maintenance}, 'on', '5c: maintenance stays on');
	$tx->commit;
	is(count_k(4), 1, '5c: the open transaction COMMITs while maintenance is on');
	($rc, $out, $err) = $pgm->ctl('maintenance', 'on', '--wait', '5');
	is($rc, 0, '5c: after it, maintenance on --wait 5 succeeds') or diag($err);
	is($pgm->status->{maintenance}, 'on', '5c: maintenance on');

	# d) A held client that goes away: its request is never run.
	my $from = length $pgm->log;
	my $gone = $pgm->psql_bg('INSERT INTO ctl_t VALUES (42)', timeout => 60);
	ok($pgm->wait_client_state('waiting (maintenance)'), '5d: a psql INSERT is held');
	$gone->signal('KILL');
	my ($grc) = $gone->finish;
	is($grc, 128 + 9, '5d: ... and killed (SIGKILL)');
	my ($raw, $r) = $pgm->raw_login;
	ok($r->{ok}, '5d: a raw client logs in while maintenance is on');
	my $rport = $raw->{sock}->sockport;
	$raw->send_msg('Q', "INSERT INTO ctl_t VALUES (43)\0");
	ok($pgm->wait_client_state('waiting (maintenance)', port => $rport), '5d: its INSERT is held');
	$raw->hang_up;
	my $log = '';
	ok(wait_until(sub {
		$log = substr($pgm->log, $from);
		my @l = $log =~ /client left while held by maintenance; its request was not run/g;
		@l >= 2;
	}, 5), '5d: the log says, for both, that the request was not run') or diag($log);
	($rc, undef, $err) = $pgm->ctl('maintenance', 'off');
	is($rc, 0, '5d: maintenance off') or diag($err);
	sleep 1;
	is(count_k(42), 0, '5d: the killed psql\'s row never reaches PostgreSQL');
	is(count_k(43), 0, '5d: nor the closed raw client\'s');
	daemon_ok('5d');

	# e) Maintenance of one database.
	($rc, $out, $err) = $pgm->ctl('maintenance', 'on', 'appdb2');
	is($rc, 0, '5e: maintenance on appdb2 exits 0') or diag($err);
	is($pgm->status->{maintenance}, 'appdb2', '5e: status says maintenance appdb2');
	my $b2 = $pgm->psql_bg('SELECT current_database()', db => 'appdb2', timeout => 60);
	my $r2 = $pgm->wait_client_state('waiting (maintenance)', db => 'appdb2');
	ok($r2, '5e: a client of appdb2 is held');
	my $t1 = time;
	my ($o1, $e1, $rc1) = $pgm->psql('SELECT current_database()', timeout => 20);
	is($rc1, 0, '5e: a client of appdb goes on') or diag($e1);
	is($o1, 'appdb', '5e: ... answered by appdb');
	is($dbh->selectrow_array('SELECT 7'), 7, '5e: the long session of appdb goes on');
	sleep 2 - (time - $t1) if time - $t1 < 2;
	ok($b2->running, '5e: the appdb2 client still waits after 2 s');
	($rc, undef, $err) = $pgm->ctl('maintenance', 'off');
	is($rc, 0, '5e: maintenance off (no database) exits 0') or diag($err);
	my ($rc2, $out2, $err2) = $b2->finish;
	is($rc2, 0, '5e: then the appdb2 client finishes') or diag($err2);
	is($out2, "appdb2\n", '5e: ... answered by appdb2');
	is($pgm->status->{maintenance}, 'off', '5e: maintenance off everywhere');

	($rc, $out, $err) = $pgm->ctl('maintenance', 'on', 'nosuchdb');
	is($rc, 1, '5e: maintenance on of an unknown database exits 1');
	like($err, qr/no database "nosuchdb"/, '5e: ... naming it') or diag($err);
	is($pgm->status->{maintenance}, 'off', '5e: ... and turns nothing on');
	$tx->disconnect;
}

# --- 6. reload through the control socket -------------------------------------------------

{
	my $conf = $pgm->conffile;
	my $good = slurp($conf);
	my $gen0 = $pgm->status->{generation};
	my $s6 = $pgm->dbh;
	my $b6 = $s6->selectrow_array('SELECT pg_backend_pid()');

	# A syntax error on a known line.
	my $line = ($good =~ tr/\n//) + 2;
	write_file($conf, $good . "# next line is broken\npool_oops = = 3;\n");
	my ($rc, $out, $err) = $pgm->ctl('reload');
	is($rc, 1, '6: reload of a file with a syntax error exits 1');
	like($err, qr/\Q$conf\E:$line:/, "6: ... naming $conf:$line on stderr") or diag($err);
	is(($err =~ tr/\n//), 1, '6: ... on one line');
	($rc, $out, $err) = $pgm->ctl('reload', '--check');
	is($rc, 1, '6: reload --check of that file exits 1 too');
	like($err, qr/\Q$conf\E:$line:/, '6: ... naming the line') or diag($err);
	is($pgm->status->{generation}, $gen0, "6: generation unchanged ($gen0)");
	is($s6->selectrow_array('SELECT pg_backend_pid()'), $b6, '6: the open session works, same backend');
	daemon_ok('6: after the failed reload');

	# A good change.
	(my $changed = $good) =~ s/wait_timeout = 30;/wait_timeout = 17;/ or die 'no wait_timeout in the config';
	write_file($conf, $changed);
	my %cfg = map { $_->{name} => $_->{value} } $pgm->rows('show config');
	is($cfg{'pool.wait_timeout'}, 30, '6: show config: pool.wait_timeout 30 before');
	($rc, $out, $err) = $pgm->ctl('reload', '--check');
	is($rc, 0, '6: reload --check of a good changed file exits 0') or diag($err);
	is($err, '', '6: ... quietly');
	is($pgm->status->{generation}, $gen0, '6: ... and applies nothing: generation unchanged');
	%cfg = map { $_->{name} => $_->{value} } $pgm->rows('show config');
	is($cfg{'pool.wait_timeout'}, 30, '6: ... pool.wait_timeout still 30');
	($rc, $out, $err) = $pgm->ctl('reload');
	is($rc, 0, '6: reload exits 0') or diag($err);
	is($pgm->status->{generation}, $gen0 + 1, '6: ... generation + 1');
	%cfg = map { $_->{name} => $_->{value} } $pgm->rows('show config');
	is($cfg{'pool.wait_timeout'}, 17, '6: ... pool.wait_timeout is now 17');
	is($s6->selectrow_array('SELECT pg_backend_pid()'), $b6, '6: the open session goes on, same backend');

	# What needs a restart keeps its running value.
	my $other = tmp_base() . '/other-ctl.sock';
	(my $restart = $changed) =~ s/^control_socket = .*$/control_socket = "$other";/m
	  or die 'no control_socket line';
	$restart =~ s/^log = \{/log = { facility = "local5";/m or die 'no log line';
	$restart =~ s/wait_timeout = 17;/wait_timeout = 18;/ or die 'no wait_timeout';
	write_file($conf, $restart);
	my $from = length $pgm->log;
	($rc, $out, $err) = $pgm->ctl('reload');
	is($rc, 0, '6: reload of a changed control_socket and log.facility exits 0') or diag($err);
	my $log = substr($pgm->log, $from);
	like($log, qr/reload: control_socket needs a restart/, '6: ... the log says control_socket needs a restart');
	like($log, qr/reload: log\.facility needs a restart/, '6: ... and log.facility') or diag($log);
	%cfg = map { $_->{name} => $_->{value} } row_hashes(parse_answer($pgm->ctl_raw('show config')));
	is_deeply([ @cfg{qw(control_socket log.facility pool.wait_timeout)} ], [ $SOCK, 'daemon', 18 ],
		'6: ... show config: the running control_socket and log.facility, the new pool.wait_timeout');
	ok(!-e $other, '6: ... and nothing listens at the new control_socket');
	write_file($conf, $changed);
	$from = length $pgm->log;
	($rc, $out, $err) = $pgm->ctl('reload');
	is($rc, 0, '6: reload of the file as before exits 0') or diag($err);
	unlike(substr($pgm->log, $from), qr/needs a restart/, '6: ... with nothing that needs a restart');
	$s6->disconnect;
	daemon_ok('6: after the reload');
}

# --- 7. the admin console ----------------------------------------------------------------

{
	my $psql = pg_bindir() . '/psql';
	# Runs psql as admin in the console; ($rc, $stdout, $stderr).
	my $console = sub {
		my ($sql, %o) = @_;
		my @cmd = ($psql, '-X', '-A', '-w', '-P', 'footer=off', '-h', $pgm->host,
			'-p', $pgm->port, '-U', $o{user} // 'admin', '-d', 'pgmirror');
		push @cmd, '-c', $sql if defined $sql;
		return run_cmd(\@cmd, env => { PGPASSWORD => $o{password} // 'adminpw' },
			stdin => $o{stdin}, timeout => 30);
	};

	for my $stmt ('SHOW MIRRORS', 'SHOW POOLS', 'SHOW CLIENTS', 'SHOW SERVERS', 'SHOW STATS',
		'SHOW VERSION', 'STATUS')
	{
		my ($what) = $stmt =~ /(\w+)$/;
		$what = lc $what;
		my ($rc, $out, $err) = $console->("$stmt;");
		is($rc, 0, "7: $stmt; in the console works") or diag($err);
		my @lines = split /\n/, $out;
		is_deeply([ split /\|/, $lines[0] // '', -1 ], $COLS{$what},
			"7: $stmt: a result set with the columns of show $what") or diag($out);
		if ($what eq 'pools') {
			ok((grep { /^appdb\|app\|100\|/ } @lines), '7: SHOW POOLS: the appdb/app row') or diag($out);
		} elsif ($what eq 'clients') {
			ok((grep { /^\Q$dworker\E\|app\|appdb\|127\.0\.0\.1:\Q$dport\E\|/ } @lines),
				'7: SHOW CLIENTS: the long DBD::Pg session') or diag($out);
		} elsif ($what eq 'version') {
			is($lines[1], "pgmirror $VERSION", '7: SHOW VERSION: the version');
		} elsif ($what eq 'status') {
			ok((grep { $_ eq 'maintenance|off' } @lines), '7: STATUS: maintenance off') or diag($out);
			ok((grep { $_ eq 'pid|' . $pgm->pid } @lines), '7: STATUS: the pid') or diag($out);
		}
	}

	my ($rc, $out, $err) = $console->('SHOW CONFIG;');
	is($rc, 0, '7: SHOW CONFIG; in the console works') or diag($err);
	my %ccfg = map { split /\|/, $_, 2 } grep { /\|/ } split /\n/, $out;
	is_deeply([ grep { !exists $ccfg{$_} } @SETTINGS ], [], '7: SHOW CONFIG: every setting')
	  or diag($out);
	is($ccfg{'client.idle_timeout'}, 0, '7: SHOW CONFIG: client.idle_timeout 0');
	is($ccfg{'admin.password'}, '********', '7: SHOW CONFIG: admin.password as ********');
	unlike($out, qr/adminpw|\bsecret\b/, '7: SHOW CONFIG: never a password');

	($rc, $out, $err) = $console->('MAINTENANCE ON appdb;');
	is($rc, 0, '7: MAINTENANCE ON appdb; works') or diag($err);
	is($pgm->status->{maintenance}, 'appdb', '7: ... status through the socket: appdb');
	($rc, $out, $err) = $console->('MAINTENANCE OFF;');
	is($rc, 0, '7: MAINTENANCE OFF; works') or diag($err);
	is($pgm->status->{maintenance}, 'off', '7: ... status: off');
	my $from = length $pgm->log;
	($rc, $out, $err) = $console->('MAINTENANCE ON appdb; MAINTENANCE OFF;');
	is($rc, 0, '7: "MAINTENANCE ON appdb; MAINTENANCE OFF;" as one query works') or diag($err);
	like(substr($pgm->log, $from), qr/maintenance on for appdb.*maintenance off/s,
		'7: ... both ran, in order');
	is($pgm->status->{maintenance}, 'off', '7: ... status: off');

	($rc, $out, $err) = $console->(undef,
		stdin => "\\set VERBOSITY verbose\nFROBNICATE;\nSHOW VERSION;\n");
	like($err, qr/ERROR:\s+42601: unknown command "frobnicate"/,
		'7: an unknown statement: ERROR with SQLSTATE 42601') or diag($err);
	like($out, qr/^pgmirror \Q$VERSION\E$/m, '7: ... and the session goes on (SHOW VERSION answered)')
	  or diag($out);

	($rc, $out, $err) = $console->(undef,
		stdin => "\\set VERBOSITY verbose\nSHOW VERSION '" . ('x' x 5000) . "';\n");
	like($err, qr/FATAL:\s+08P01: invalid message length/,
		'7: a query over the console\'s 4 kB: FATAL 08P01') or diag($err);
	($rc, $out, $err) = $console->('SHOW VERSION;');
	like($out, qr/^pgmirror \Q$VERSION\E$/m, '7: ... and the console still answers others')
	  or diag($err);

	my ($c, $r) = $pgm->raw_login(user => 'admin', database => 'pgmirror', password => 'wrong');
	is($r->{error}{C}, '28P01', '7: a wrong admin password: 28P01') or diag(explain($r));
	($c, $r) = $pgm->raw_login(user => 'app', database => 'pgmirror', password => 'secret');
	is($r->{error}{C}, '28000', '7: user app asking for database pgmirror: 28000') or diag(explain($r));
	($c, $r) = $pgm->raw_login(user => 'admin', database => 'pgmirror', password => 'adminpw');
	ok($r->{ok}, '7: the right password logs in (raw)');
	is_deeply($r->{auth}, [ 10, 11, 12, 0 ], '7: ... with SCRAM-SHA-256');
	my $q = $c->query('SHOW VERSION');
	is_deeply($q->{rows}, [ [ "pgmirror $VERSION" ] ], '7: ... and SHOW VERSION without a semicolon');
	$c->close;

	# admin.database may not be the name of a databases entry.
	my $bad = tmp_base() . '/admin-clash.conf';
	(my $text = slurp($pgm->conffile)) =~ s/^admin = \{.*$/admin = { database = "appdb"; password = "adminpw"; };/m
	  or die 'no admin line';
	write_file($bad, $text);
	my ($nrc, $nout, $nerr) = run_cmd([ pgmirror_bin(), '-n', '-c', $bad ]);
	is($nrc, 1, '7: pgmirror -n refuses admin.database = a databases entry name');
	like($nerr, qr/admin\.database "appdb" is also the name of/,
		'7: ... saying admin.database "appdb" is also a databases entry name') or diag($nerr);

	# DBD::Pg: the console speaks the simple query protocol only.
	require DBI;
	my $adbh = DBI->connect('dbi:Pg:host=' . $pgm->host . ';port=' . $pgm->port . ';dbname=pgmirror',
		'admin', 'adminpw', { RaiseError => 0, PrintError => 0, AutoCommit => 1 });
	ok($adbh, '7: DBD::Pg connects to the console') or diag($DBI::errstr);
	if ($adbh) {
		my $sth = $adbh->prepare('SHOW CLIENTS', { pg_server_prepare => 0 });
		my $ok = $sth && $sth->execute;
		ok($ok, '7: DBD::Pg runs SHOW CLIENTS (pg_server_prepare 0)') or diag($adbh->errstr);
		is_deeply($sth->{NAME}, $COLS{clients}, '7: ... with the show clients columns') if $ok;
		my $rows = $ok ? $sth->fetchall_arrayref : [];
		ok((grep { $_->[0] eq $dworker && $_->[3] eq "127.0.0.1:$dport" } @$rows),
			'7: ... listing the long session');
		$adbh->disconnect;
	}
}

# --- 8. cancel of a request held by maintenance ------------------------------------------

{
	# Its backend pid read first: once maintenance is on, that would wait.
	my $c8 = $pgm->dbh;
	my $cport = dbh_port($c8);
	my $cback = $c8->selectrow_array('SELECT pg_backend_pid()');
	my ($rc, $out, $err) = $pgm->ctl('maintenance', 'on');
	is($rc, 0, '8: maintenance on') or diag($err);
	my $from = length $pgm->log;
	# The values inline: with placeholders DBD::Pg would first prepare
	# the statement, synchronously, and block on maintenance.
	$c8->do('INSERT INTO ctl_t VALUES (80)', { pg_async => PG_ASYNC });
	ok($pgm->wait_client_state('waiting (maintenance)', port => $cport),
		'8: an async INSERT of a DBD::Pg session is held: "waiting (maintenance)"');
	# pg_cancel sends the CancelRequest, then waits for the answer of
	# the query: should pgmirror not answer, the watchdog lifts
	# maintenance after 10 s, which the checks below would see.
	my $dog = start_cmd([ $^X, '-e', 'sleep 10; exec @ARGV', $CTL, '-s', $SOCK, 'maintenance', 'off' ]);
	my $t0 = time;
	# DBD::Pg reads the answer itself: true when its SQLSTATE is 57014.
	my $cancelled = eval { $c8->pg_cancel };
	my $took = time - $t0;
	my $sqlstate = $c8->state;
	my $still = $pgm->status->{maintenance};
	$dog->signal('KILL');
	$dog->finish;
	ok($cancelled, '8: $dbh->pg_cancel (a CancelRequest through pgmirror) says it was cancelled')
	  or diag($@ || $c8->errstr);
	is($sqlstate, '57014', '8: ... SQLSTATE 57014 (query_canceled)');
	cmp_ok($took, '<', 5, sprintf('8: ... answered at once (%.1f s)', $took));
	is($still, 'on', '8: ... while maintenance is still on');
	my $c = client_row($cport);
	is($c && $c->{state}, 'idle', '8: show clients: the session is idle again');
	like(substr($pgm->log, $from), qr/cancel request for a request held by maintenance/,
		'8: the log says the cancel request was for a held request');
	like(substr($pgm->log, $from), qr/request held by maintenance cancelled by the client/,
		'8: ... and that the held request was cancelled');

	# DBD::Pg keeps no message text of a cancel: a raw client sees it.
	my ($raw, $r) = $pgm->raw_login;
	ok($r->{ok} && $r->{key}, '8: a raw client logs in, with a cancel key');
	my $rport = $raw->{sock}->sockport;
	$raw->send_msg('Q', "INSERT INTO ctl_t VALUES (81)\0");
	ok($pgm->wait_client_state('waiting (maintenance)', port => $rport), '8: its INSERT is held');
	my $k = PgMirrorTest::raw_connect(host => $pgm->host, port => $pgm->port);
	$k->send_cancel($r->{key});
	my $q = $raw->collect(timeout => 5);
	$k->hang_up;
	is($q->{error}{M}, 'canceling statement due to user request',
		'8: after its CancelRequest: "canceling statement due to user request"') or diag(explain($q));
	is($q->{error}{C}, '57014', '8: ... SQLSTATE 57014');
	is($q->{error}{S}, 'ERROR', '8: ... an ERROR');
	is_deeply($q->{tags}, [], '8: ... no command tag');
	is($q->{status}, 'I', '8: ... then ReadyForQuery, idle');
	is($pgm->status->{maintenance}, 'on', '8: maintenance is still on');

	($rc, undef, $err) = $pgm->ctl('maintenance', 'off');
	is($rc, 0, '8: maintenance off') or diag($err);
	is($c8->selectrow_array('SELECT 1'), 1, '8: the DBD::Pg session works afterwards (SELECT 1)');
	is($c8->selectrow_array('SELECT pg_backend_pid()'), $cback, '8: ... on the same backend');
	my $q2 = $raw->query('SELECT 1', timeout => 10);
	is_deeply($q2->{rows}, [ [ 1 ] ], '8: the raw session works afterwards (SELECT 1)');
	sleep 1;
	is(count_k(80), 0, '8: the cancelled INSERT never reaches PostgreSQL');
	is(count_k(81), 0, '8: ... nor the raw one');
	$raw->close;
	$c8->disconnect;
	daemon_ok('8');
}

# --- 9. a request sent together with Terminate, in maintenance ---------------------------

{
	my ($rc, undef, $err) = $pgm->ctl('maintenance', 'on');
	is($rc, 0, '9: maintenance on') or diag($err);
	my $sql = "INSERT INTO ctl_t VALUES (%d)\0";
	# Query and Terminate in one write.
	my $qx = sub {
		my ($k) = @_;
		my $q = sprintf($sql, $k);
		return 'Q' . pack('N', 4 + length $q) . $q . 'X' . pack('N', 4);
	};

	# a) The client keeps its socket open: pgmirror ends the session
	# because of the Terminate, not because the client went away.
	my ($raw, $r) = $pgm->raw_login;
	ok($r->{ok}, '9: a raw client logs in while maintenance is on');
	my $rport = $raw->{sock}->sockport;
	ok($raw->send_bytes($qx->(90)), '9: it sends Query (an INSERT) and Terminate in one write');
	my @m = $raw->read_msg(5);
	ok(!@m && $raw->{eof}, '9: pgmirror closes the connection without an answer')
	  or diag(@m ? "got a message $m[0]" : 'timed out');
	ok(wait_until(sub { !client_row($rport) }, 5), '9: ... and show clients no longer lists it');
	$raw->hang_up;

	# b) The client closes at once.
	($raw, $r) = $pgm->raw_login;
	ok($r->{ok}, '9: another raw client logs in');
	$rport = $raw->{sock}->sockport;
	ok($raw->send_bytes($qx->(91)), '9: it sends Query and Terminate in one write');
	$raw->hang_up;
	ok(wait_until(sub { !client_row($rport) }, 5), '9: it closes; show clients no longer lists it');
	is($pgm->status->{maintenance}, 'on', '9: all that while maintenance is on');

	($rc, undef, $err) = $pgm->ctl('maintenance', 'off');
	is($rc, 0, '9: maintenance off') or diag($err);
	sleep 1;
	is(count_k(90), 0, '9: the INSERT sent with Terminate never reaches PostgreSQL');
	is(count_k(91), 0, '9: ... nor that of the client that closed');
	daemon_ok('9');
}

# --- 10. per-database maintenance across a switchover ----------------------------------------

{
	my ($rc, $out, $err) = $pgm->ctl('maintenance', 'on', 'appdb2');
	is($rc, 0, '10: maintenance on appdb2') or diag($err);
	my $held = $pgm->psql_bg('SELECT current_database()', db => 'appdb2', timeout => 60);
	ok($pgm->wait_client_state('waiting (maintenance)', db => 'appdb2'), '10: a client of appdb2 is held');
	my $g0 = $pgm->status->{generation};
	my $conf = $pgm->conffile;
	write_file($conf, slurp($conf) . "# 10: a switchover with nothing to move\n");
	($rc, $out, $err) = $pgm->ctl('-t', 'switchover', '--timeout', '10');
	is($rc, 0, '10: a switchover with nothing to move succeeds') or diag("$out\n$err");
	my ($g1) = ($out // '') =~ /^generation\t(\d+)$/m;
	is($g1, $g0 + 1, "10: ... generation $g0 -> " . ($g0 + 1)) or diag($out);
	my $st = $pgm->status;
	is($st->{maintenance}, 'appdb2', '10: status still says maintenance appdb2');
	is($st->{generation}, $g0 + 1, '10: ... and the new generation');
	sleep 1;
	ok($held->running, '10: the held client of appdb2 still waits after the switchover');
	my $held2 = $pgm->psql_bg('SELECT current_database()', db => 'appdb2', timeout => 60);
	ok(wait_until(sub {
		my @w = grep { $_->{state} eq 'waiting (maintenance)' && $_->{database} eq 'appdb2' }
		  $pgm->rows('show clients');
		@w == 2;
	}, 5, 0.05), '10: a new client of appdb2 waits too (two "waiting (maintenance)")');
	my ($o1, $e1, $rc1) = $pgm->psql('SELECT current_database()', timeout => 20);
	is($rc1, 0, '10: a client of appdb goes on') or diag($e1);
	is($o1, 'appdb', '10: ... answered by appdb');
	is($dbh->selectrow_array('SELECT 10'), 10, '10: the long session of appdb goes on');
	ok($held->running && $held2->running, '10: the appdb2 clients still wait');
	($rc, undef, $err) = $pgm->ctl('maintenance', 'off');
	is($rc, 0, '10: maintenance off') or diag($err);
	for my $b ($held, $held2) {
		my ($brc, $bout, $berr) = $b->finish;
		is($brc, 0, '10: then an appdb2 client finishes') or diag($berr);
		is($bout, "appdb2\n", '10: ... answered by appdb2');
	}
	is($pgm->status->{maintenance}, 'off', '10: maintenance off everywhere');
	daemon_ok('10');
}

# --- the end ---------------------------------------------------------------------------------

is($dbh->selectrow_array('SELECT pg_backend_pid()'), $dbackend,
	'the long DBD::Pg session lasted, same backend');
$dbh->disconnect;
ok($pgm->alive, 'the daemon is alive');
unlike($pgm->log, $DEATH, 'no worker died');
note(sprintf('170_control took %.1f s', time - $T0));

done_testing();
