# 110_bad_input: whatever a client sends, it gets a clear answer and
# nobody else notices.  Each case of issue 3's "Bad input" list is sent
# on a raw socket; the answer must be an ErrorResponse with the right
# SQLSTATE where the protocol allows one, else a clean close within a few
# seconds.  After each case a concurrent DBD::Pg session (opened before
# the first case, queried between cases) must be untouched, on the same
# server backend, and a new client must still be served.
#
#   startup packet too short (length 4, 7), too long (20000), malformed
#   (no terminator, a key without a value, bytes after the terminator);
#   protocol versions 2.0 and 4.0 (0A000); after login a message of an
#   unknown type, with a length below 4 or above client.max_message_size
#   (08P01); a client that stops mid-message or mid-startup (its worker
#   and its server connection are freed: pool_size 1); no user (28000),
#   a user name that is not UTF-8, an unknown database (3D000) or user
#   (28000), a wrong password (28P01), a user name with a newline (one
#   log line, no forged ones); a Query before authenticating (08P01), a
#   cleartext password where SCRAM was asked for (08P01).  At the end: no worker died, and the log never shows a
#   configured password nor the wrong one a client tried.

use strict;
use warnings;

use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my %PW = (app => 'Pw-App-91x7Q', solo => 'Pw-Solo-44kZ');
my $WRONG = 'Wrong-Pw-Zq83Lm';

my $pg = pg_start();
$pg->setup_app(password => $PW{app});
$pg->create_role('solo', $PW{solo});
$pg->psql('GRANT CONNECT ON DATABASE appdb TO solo');

my $MAXMSG = 1024 * 1024;
my $pgm = pgm_start($pg,
	users => [ { name => 'app', password => $PW{app} },
		{ name => 'solo', password => $PW{solo}, pool_size => 1 } ],
	pool => { wait_timeout => 5 },
	extra => "client = { max_message_size = $MAXMSG; };");

# --- helpers ------------------------------------------------------------------

# Sends raw bytes on a fresh connection and returns its read_until_close.
sub send_fresh {
	my ($bytes, %o) = @_;
	my $c = $pgm->raw;
	$c->send_bytes($bytes);
	return $c->read_until_close($o{timeout});
}

# A startup packet: version, then key/value strings, as given (no
# terminator added).
sub startup_packet {
	my ($version, $body) = @_;
	my $p = pack('N', $version) . $body;
	return pack('N', 4 + length $p) . $p;
}

# The concurrent healthy session.
my $healthy = $pgm->dbh;
my $hpid = $healthy->selectrow_array('SELECT pg_backend_pid()');
ok($hpid, "healthy DBD::Pg session open (backend $hpid)");
my $round = 0;

# After each case: the healthy session is untouched and a new client is
# served.
sub others_fine {
	my ($what) = @_;
	$round++;
	my ($pid, $v) = eval { $healthy->selectrow_array('SELECT pg_backend_pid(), ?::int * 3', undef, $round) };
	ok(defined $v && $v == 3 * $round && $pid == $hpid,
		"$what: the concurrent session is untouched (same backend, right answer)")
	  or diag($@ || $DBI::errstr);
	my ($c, $r) = $pgm->raw_login(timeout => 10);
	my $q = $r->{ok} ? $c->query("SELECT $round") : {};
	ok($r->{ok} && $q->{rows} && $q->{rows}[0][0] == $round, "$what: a new client is served")
	  or diag(explain($r));
	$c->close if $c->{sock};
}

# Checks an answer that must be a FATAL ErrorResponse then the close.
sub is_fatal {
	my ($a, $state, $what, $msg_re) = @_;
	is($a->{type}, 'E', "$what: ErrorResponse") or diag(explain($a));
	is($a->{fields}{S}, 'FATAL', "$what: FATAL");
	is($a->{fields}{C}, $state, "$what: SQLSTATE $state") or diag(explain($a->{fields}));
	like($a->{fields}{M} // '', $msg_re, "$what: message") if $msg_re;
	ok($a->{closed}, sprintf("$what: then the connection is closed (%.2f s)", $a->{secs}));
}

# Checks an answer that must be a close, with nothing sent.
sub is_closed {
	my ($a, $what) = @_;
	ok($a->{closed}, sprintf("$what: the connection is closed (%.2f s)", $a->{secs}));
	is(length $a->{got}, 0, "$what: without an answer") or diag(explain($a));
}

# Log size before a case, to check it was logged.
my $logpos = length $pgm->log;
sub logged {
	my ($what, $re) = @_;
	my $log = $pgm->log;
	my $new = substr($log, $logpos);
	$logpos = length $log;
	like($new, $re, "$what: logged");
}

# --- the startup packet ---------------------------------------------------------

is_closed(send_fresh(pack('N', 4)), 'startup length 4');
logged('startup length 4', qr/invalid length of startup packet \(4\)/);
others_fine('startup length 4');

is_closed(send_fresh(pack('N', 7) . "\0\3\0"), 'startup length 7');
logged('startup length 7', qr/invalid length of startup packet \(7\)/);
others_fine('startup length 7');

is_closed(send_fresh(pack('N', 20000) . pack('N', 196608) . "user\0app\0"), 'startup length 20000');
logged('startup length 20000', qr/invalid length of startup packet \(20000\)/);
others_fine('startup length 20000');

is_fatal(send_fresh(startup_packet(196608, "user\0app\0database\0appdb\0")), '08P01',
	'startup without terminator', qr/invalid startup packet/);
logged('startup without terminator', qr/08P01/);
others_fine('startup without terminator');

is_fatal(send_fresh(startup_packet(196608, "user\0app\0database\0")), '08P01',
	'startup with a key without value', qr/invalid startup packet/);
others_fine('startup with a key without value');

is_fatal(send_fresh(startup_packet(196608, "user\0app\0\0junk")), '08P01',
	'startup with bytes after the terminator', qr/invalid startup packet/);
others_fine('startup with bytes after the terminator');

for my $v ([ '2.0', 2 << 16 ], [ '4.0', 4 << 16 ]) {
	is_fatal(send_fresh(startup_packet($v->[1], "user\0app\0database\0appdb\0\0")), '0A000',
		"protocol $v->[0]", qr/unsupported frontend protocol/);
	logged("protocol $v->[0]", qr/0A000/);
	others_fine("protocol $v->[0]");
}

# --- after login ----------------------------------------------------------------

# Logs in as app and runs a query; returns the raw connection.
sub logged_in {
	my ($what, %o) = @_;
	my ($c, $r) = $pgm->raw_login(%o);
	ok($r->{ok}, "$what: logged in") or diag(explain($r));
	my $q = $c->query('SELECT 1');
	is($q->{rows}[0][0], 1, "$what: a first query works");
	return $c;
}

{
	my $c = logged_in('type Z');
	$c->send_msg('Z', '');
	is_fatal($c->read_until_close, '08P01', 'a message of type Z', qr/invalid frontend message/);
	logged('a message of type Z', qr/invalid message type 90/);
	others_fine('a message of type Z');
}

for my $len (3, 0) {
	my $c = logged_in("length $len");
	$c->send_bytes('Q' . pack('N', $len));
	my $a = $c->read_until_close;
	ok($a->{closed}, sprintf("a message of length $len: the connection is closed (%.2f s)", $a->{secs}));
	ok(!length $a->{got} || ($a->{type} eq 'E' && ($a->{fields}{C} // '') eq '08P01'),
		"a message of length $len: nothing or 08P01 before") or diag(explain($a));
	logged("a message of length $len", qr/invalid length $len/);
	others_fine("a message of length $len");
}

{
	my $c = logged_in('2 MB message');
	$c->send_bytes('Q' . pack('N', 2 * 1024 * 1024));
	is_fatal($c->read_until_close, '08P01', 'a message of 2 MB over a 1 MB limit', qr/invalid message length/);
	logged('a message of 2 MB', qr/more than client.max_message_size/);
	others_fine('a message of 2 MB');

	# Just under the limit is fine.
	$c = logged_in('a 1 MB message');
	my $sql = 'SELECT length(\'' . ('x' x ($MAXMSG - 100)) . "')";
	my $q = $c->query($sql, timeout => 20);
	is($q->{rows}[0][0], $MAXMSG - 100, 'a Query just under client.max_message_size is served')
	  or diag(explain($q->{error}));
	$c->close;
}

# --- a client that stops mid-message: its worker and server connection are freed --

{
	# solo has pool_size 1: a leaked server connection would make the next
	# solo client wait 5 s and get 53300.
	my %solo = (user => 'solo', password => $PW{solo});
	for my $case ([ 'half a Query', sub { $_[0]->send_bytes('Q' . pack('N', 100) . 'SELECT 1') } ],
		[ 'half a Parse', sub { $_[0]->send_bytes('P' . pack('N', 100) . "s1\0SELECT") } ],
		[ 'half a CopyData', sub { $_[0]->send_bytes('d' . pack('N', 100) . 'abc') } ]) {
		my ($what, $send) = @$case;
		my $c = logged_in("$what, solo", %solo);
		$send->($c);
		sleep 0.2;
		$c->hang_up;
		my $t0 = time;
		my ($c2, $r2) = $pgm->raw_login(%solo, timeout => 10);
		my $el = time - $t0;
		ok($r2->{ok}, "stops after $what: the next solo client gets the only server connection")
		  or diag(explain($r2));
		cmp_ok($el, '<', 2, sprintf("stops after $what: ... without waiting (%.2f s)", $el));
		my $q = $r2->{ok} ? $c2->query('SELECT 42') : {};
		is($q->{rows} && $q->{rows}[0][0], 42, "stops after $what: ... and its query works")
		  or diag(explain($q));
		$c2->close if $c2->{sock};
		ok(wait_until(sub { $pg->backends('solo') <= 1 }, 5),
			"stops after $what: solo has at most one server connection");
		others_fine("stops after $what");
	}

	# Stops in the middle of the startup packet.
	my $c = $pgm->raw;
	$c->send_bytes(substr(startup_packet(196608, "user\0solo\0database\0appdb\0\0"), 0, 15));
	sleep 0.2;
	$c->hang_up;
	others_fine('stops mid-startup');
}

# --- routing and authentication ---------------------------------------------------

# Logs in with the given options and returns the startup result.
sub login_result {
	my (%o) = @_;
	my ($c, $r) = $pgm->raw_login(timeout => 10, %o);
	my @more = $c->read_msg(3);
	$r->{closed} = !@more && $c->{eof} ? 1 : 0;
	$c->hang_up;
	return $r;
}

# Checks a login that must fail with FATAL $state.
sub login_fails {
	my ($r, $state, $what, $msg_re) = @_;
	ok(!$r->{ok}, "$what: no session");
	is($r->{error}{S}, 'FATAL', "$what: FATAL");
	is($r->{error}{C}, $state, "$what: SQLSTATE $state") or diag(explain($r));
	like($r->{error}{M} // '', $msg_re, "$what: message") if $msg_re;
	ok($r->{closed}, "$what: then the connection is closed");
}

{
	my $c = $pgm->raw;
	$c->startup(undef, database => 'appdb');
	is_fatal($c->read_until_close, '28000', 'no user', qr/no PostgreSQL user name/);
	others_fine('no user');
}

login_fails(login_result(user => "\xff\xfeapp"), '28000', 'a user name that is not UTF-8',
	qr/role .* does not exist/);
others_fine('a user name that is not UTF-8');

# A newline in a user name must not let a client write lines of its own
# into the log: the case stays one log line.
{
	my $forged = 'FORGED-LINE supervisor: all workers gone; exiting';
	login_fails(login_result(user => "evil\n$forged"), '28000', 'a user name with a newline',
		qr/does not exist/);
	my $log = $pgm->log;
	unlike($log, qr/^\Q$forged\E/m, 'a user name with a newline: no forged line in the log');
	$logpos = length $log;
	others_fine('a user name with a newline');
}

login_fails(login_result(database => 'nosuchdb'), '3D000', 'unknown database',
	qr/database "nosuchdb" does not exist/);
logged('unknown database', qr/3D000/);
others_fine('unknown database');

login_fails(login_result(user => 'nosuchuser'), '28000', 'unknown user',
	qr/role "nosuchuser" does not exist/);
others_fine('unknown user');

login_fails(login_result(password => $WRONG), '28P01', 'wrong password',
	qr/password authentication failed for user "app"/);
logged('wrong password', qr/28P01/);
others_fine('wrong password');

{
	my $c = $pgm->raw;
	$c->startup(undef, user => 'app', database => 'appdb');
	my $r = $c->authenticate(user => 'app', no_answer => 1);
	is_deeply($r->{auth}, [10], 'Query before authenticating: AuthenticationSASL came');
	$c->send_msg('Q', "SELECT 1\0");
	is_fatal($c->read_until_close, '08P01', 'Query before authenticating', qr/expected password response/);
	others_fine('Query before authenticating');
}

{
	# A confused client sends its password in clear where SCRAM's
	# SASLInitialResponse belongs.
	my $c = $pgm->raw;
	$c->startup(undef, user => 'app', database => 'appdb');
	my $r = $c->authenticate(user => 'app', no_answer => 1);
	$c->send_msg('p', "$WRONG\0");
	is_fatal($c->read_until_close, '08P01', 'a cleartext password instead of SCRAM');
	others_fine('a cleartext password instead of SCRAM');
}

# --- the aftermath ------------------------------------------------------------------

is($healthy->selectrow_array('SELECT pg_backend_pid()'), $hpid,
	'the concurrent session kept its backend through every case');
$healthy->disconnect;
ok($pgm->alive, 'the supervisor is alive');
my $log = $pgm->log;
unlike($log, qr/killed by signal|exited with status|died before serving/, 'no worker died');
for my $k (sort keys %PW) {
	unlike($log, qr/\Q$PW{$k}\E/, "the log never shows the password of $k");
}
unlike($log, qr/\Q$WRONG\E/, 'the log never shows the wrong password a client tried');
my $conf_pw = 0;
for my $k (sort keys %PW) { $conf_pw++ if index(slurp($pgm->conffile), $PW{$k}) >= 0 }
is($conf_pw, 2, '(the passwords are in the config file, so the check above means something)');

done_testing();
