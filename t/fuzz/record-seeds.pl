# t/fuzz/record-seeds.pl: record the seed corpora of fuzz_proto and
# fuzz_capture from real sessions.
#
#   cd build/gcc && top_srcdir=../.. perl -I../../t ../../t/fuzz/record-seeds.pl
#
# Starts a PostgreSQL (t/PgMirrorTest.pm), puts a recording relay in
# front of it and runs real clients through that: pgbench (tpcb-like,
# over the simple, extended and prepared protocols) and psql (a script
# with a rollback, an error, a savepoint, PREPARE, COPY both ways and a
# multi-statement query).  Each connection's bytes are written, as the
# relay read them, to
#   t/fuzz/corpus/fuzz_proto/NAME-client   2 option bytes + the client's stream
#   t/fuzz/corpus/fuzz_proto/NAME-server   2 option bytes + the server's stream
#   t/fuzz/corpus/fuzz_capture/NAME        the reads after login, as records
# and the SSLRequest, GSSENCRequest and CancelRequest packets as
# fuzz_proto inputs of their own
# (the input formats of fuzz_proto.c and fuzz_capture.c).  Not part of
# the test suite; run it again when the seeds should cover more.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use POSIX ':sys_wait_h';
use PgMirrorTest;
use Test::More;

my $src = $ENV{top_srcdir} or die "set top_srcdir\n";
my $out = "$src/t/fuzz/corpus";

my $pg = pg_start();
$pg->setup_app;
my %env = (PGHOST => $pg->host, PGPORT => $pg->port, PGUSER => 'app',
	PGPASSWORD => 'secret', PGDATABASE => 'appdb', PGSSLMODE => 'disable',
	PGGSSENCMODE => 'disable');
my ($rc, $o, $e) = run_cmd([PgMirrorTest::_bin('pgbench'), '-i', '-s', '1', '-q'],
	env => \%env);
die "pgbench -i: $e" if $rc != 0;

# Runs @cmd against a relay to $pg; returns one list of [from_server, bytes]
# reads per connection the command made.
sub record {
	my (@cmd) = @_;
	my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
		Listen => 5, ReuseAddr => 1) or die "listen: $!";
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		@ENV{keys %env} = values %env;
		$ENV{PGPORT} = $l->sockport;
		$ENV{PGHOST} = '127.0.0.1';
		open(STDOUT, '>', '/dev/null');
		exec(@cmd) or die "exec $cmd[0]: $!";
	}
	my $sel = IO::Select->new($l);
	my (%peer, %conn, @conns);
	my $done = 0;
	while (1) {
		$done ||= waitpid($pid, WNOHANG) == $pid;
		last if $done && $sel->count == 1;
		for my $fh ($sel->can_read(0.2)) {
			if ($fh == $l) {
				my $c = $l->accept or next;
				my $s = IO::Socket::INET->new(PeerAddr => $pg->host,
					PeerPort => $pg->port) or die "connect: $!";
				my $rec = [];
				push @conns, $rec;
				$peer{$c} = $s;
				$peer{$s} = $c;
				$conn{$c} = [$rec, 0];
				$conn{$s} = [$rec, 1];
				$sel->add($c, $s);
				next;
			}
			my $n = sysread($fh, my $buf, 65536);
			my $other = $peer{$fh};
			if (!$n) {
				$sel->remove($fh, $other);
				close $fh;
				close $other;
				next;
			}
			push @{ $conn{$fh}[0] }, [$conn{$fh}[1], $buf];
			syswrite($other, $buf) == $n or die "relay write: $!";
		}
	}
	die "@cmd failed: $?" if $? != 0;
	return @conns;
}

# The reads after login: from the end of the server's first ReadyForQuery.
sub after_login {
	my ($rec) = @_;
	my ($sbuf, $off, $i) = ('', 0, 0);
	for ($i = 0; $i < @$rec; $i++) {
		next unless $rec->[$i][0];
		my $base = length $sbuf;
		$sbuf .= $rec->[$i][1];
		while (length($sbuf) - $off >= 5) {
			my ($t, $len) = unpack('a N', substr($sbuf, $off, 5));
			last if length($sbuf) - $off < 1 + $len;
			$off += 1 + $len;
			if ($t eq 'Z') {
				my @rest = ([1, substr($sbuf, $off)]);
				@rest = () if $off == length $sbuf;
				return (@rest, @$rec[$i + 1 .. $#$rec]);
			}
		}
	}
	die "no ReadyForQuery";
}

# fuzz_capture records: a header byte (bit 7: server; bit 6: a two-byte
# length follows; else the length), then the bytes.
sub capture_input {
	my ($opt, @reads) = @_;
	my $s = chr($opt);
	for my $r (@reads) {
		my ($srv, $b) = @$r;
		while (length $b) {
			my $piece = substr($b, 0, 65535, '');
			my $n = length $piece;
			$s .= $n <= 63 ? chr(($srv ? 0x80 : 0) | $n)
			  : chr(($srv ? 0x80 : 0) | 0x40) . pack('n', $n);
			$s .= $piece;
		}
	}
	return $s;
}

sub save {
	my ($name, $rec) = @_;
	my $c = join('', map { $_->[1] } grep { !$_->[0] } @$rec);
	my $s = join('', map { $_->[1] } grep { $_->[0] } @$rec);
	write_file("$out/fuzz_proto/$name-client", "\x01\x00" . $c);
	write_file("$out/fuzz_proto/$name-server", "\x02\x00" . $s);
	write_file("$out/fuzz_capture/$name", capture_input(0, after_login($rec)));
}

my $pgbench = PgMirrorTest::_bin('pgbench');
for my $mode (qw(simple extended prepared)) {
	my @c = record($pgbench, '-n', '-c', '1', '-t', '3', '-M', $mode);
	# The last connection runs the transactions.
	save("pgbench-$mode", $c[-1]);
}

my $script = <<'EOS';
BEGIN;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 5, now());
ROLLBACK;
SELECT 1/0;
BEGIN;
SAVEPOINT s;
SELECT nosuchcolumn FROM pgbench_branches;
ROLLBACK TO SAVEPOINT s;
UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1;
COMMIT;
PREPARE q (int) AS SELECT abalance FROM pgbench_accounts WHERE aid = $1;
EXECUTE q(7);
DEALLOCATE q;
CREATE TEMP TABLE t (id int, v text);
COPY t FROM STDIN;
1	one
2	two
\.
COPY t TO STDOUT;
SELECT count(*) FROM t; UPDATE t SET v = 'x' WHERE id = 1;
SELECT aid, abalance FROM pgbench_accounts ORDER BY aid LIMIT 20;
EOS
write_file(tmp_base() . '/session.sql', $script);
my @c = record(PgMirrorTest::_bin('psql'), '-X', '-q', '-f', tmp_base() . '/session.sql');
save('psql-session', $c[-1]);

# The same session with max_bytes 16: every transaction overflows.
my $b = PgMirrorTest::slurp("$out/fuzz_capture/psql-session");
write_file("$out/fuzz_capture/psql-session-overflow", "\x03" . substr($b, 1));

# The startup packets that are not a StartupMessage, as libpq sends them.
write_file("$out/fuzz_proto/sslrequest", "\x01\x00" . pack('N N', 8, 80877103));
write_file("$out/fuzz_proto/gssencrequest", "\x01\x00" . pack('N N', 8, 80877104));
write_file("$out/fuzz_proto/cancelrequest",
	"\x01\x00" . pack('N N N N', 16, 80877102, 4242, 0x5eed1e55));

ok(1, 'seeds written');
done_testing();
