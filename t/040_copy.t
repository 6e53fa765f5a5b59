# 040_copy: COPY through pgmirror.  100 MB in (COPY FROM STDIN) and out
# (COPY TO STDOUT) arrive byte for byte, checked by md5 against the input
# and a direct run; COPY errors and CopyFail leave the session usable; a
# 64 MB message crosses pgmirror without a worker holding it whole in
# memory.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start();
$pg->setup_app;
$pg->psql('CREATE UNLOGGED TABLE big (id int, h text, pad text);'
	. ' CREATE TABLE small (id int, t text)', db => 'appdb', user => 'app');
my $pgm = pgm_start($pg);
my $dir = PgMirrorTest::tmp_base();

sub file_md5 {
	my ($path) = @_;
	open(my $fh, '<', $path) or die "$path: $!";
	binmode $fh;
	return Digest::MD5->new->addfile($fh)->hexdigest;
}

# About 100 MB of COPY text, in id order.
my $rows = 1_000_000;
{
	open(my $fh, '>', "$dir/in.copy") or die $!;
	my $buf = '';
	for my $i (1 .. $rows) {
		$buf .= "$i\t" . md5_hex($i) . "\t" . ('abcdefghij' x 6) . ('x' x ($i % 20)) . "\n";
		if (length $buf > 1 << 20) { print $fh $buf; $buf = '' }
	}
	print $fh $buf;
	close $fh;
}
my $size = -s "$dir/in.copy";
cmp_ok($size, '>=', 100_000_000, "generated $size bytes of COPY data");
my $in_md5 = file_md5("$dir/in.copy");

# COPY FROM STDIN through pgmirror.
my $t0 = time;
my ($out, $err, $rc) = $pgm->psql('COPY big FROM STDIN', stdin_file => "$dir/in.copy",
	timeout => 300);
is($rc, 0, 'COPY FROM STDIN of 100 MB through pgmirror succeeds') or diag($err);
note(sprintf('COPY in: %.1f s', time - $t0));
is($pg->psql('SELECT count(*) FROM big', db => 'appdb'), $rows, "all $rows rows arrived");

# COPY TO STDOUT, direct and through pgmirror.
my $copy_out = 'COPY (SELECT * FROM big ORDER BY id) TO STDOUT';
($out, $err, $rc) = $pg->psql($copy_out, db => 'appdb', stdout_file => "$dir/direct.copy",
	timeout => 300);
is($rc, 0, 'direct COPY TO STDOUT succeeds') or diag($err);
is(file_md5("$dir/direct.copy"), $in_md5, 'data stored is exactly the data sent (direct read)');

$t0 = time;
($out, $err, $rc) = $pgm->psql($copy_out, stdout_file => "$dir/via.copy", timeout => 300);
is($rc, 0, 'COPY TO STDOUT of 100 MB through pgmirror succeeds') or diag($err);
note(sprintf('COPY out: %.1f s', time - $t0));
is(-s "$dir/via.copy", -s "$dir/direct.copy", 'same size as direct');
is(file_md5("$dir/via.copy"), file_md5("$dir/direct.copy"), 'same md5 as direct');
unlink "$dir/via.copy", "$dir/direct.copy";

# Binary COPY out is identical too.
my $bin_q = 'COPY (SELECT * FROM big WHERE id <= 100000 ORDER BY id) TO STDOUT (FORMAT binary)';
$pg->psql($bin_q, db => 'appdb', stdout_file => "$dir/direct.bin");
$pgm->psql($bin_q, stdout_file => "$dir/via.bin");
is(file_md5("$dir/via.bin"), file_md5("$dir/direct.bin"), 'binary COPY out identical to direct');

# --- errors during COPY ---------------------------------------------------

{
	my $data = join('', map { "$_\tok\n" } 1 .. 50_000) . "notanumber\tbad\n"
	  . join('', map { "$_\tok\n" } 50_001 .. 60_000);
	($out, $err, $rc) = $pgm->psql('COPY small FROM STDIN', stdin => $data);
	isnt($rc, 0, 'COPY with a bad row fails');
	like($err, qr/invalid input syntax for type integer/, 'with the server\'s error');
	is($pg->psql('SELECT count(*) FROM small', db => 'appdb'), 0, 'nothing was loaded');

	# A raw client: CopyFail, then an error in COPY, then normal queries.
	my ($c, $r) = $pgm->raw_login;
	my ($d, $dr) = $pg->raw_login;
	for my $conn ($c, $d) {
		$conn->send_msg('Q', "COPY small FROM STDIN\0");
		my ($t) = $conn->read_msg(10);
		is($t, 'G', 'CopyInResponse');
		$conn->send_msg('d', "1\tone\n2\ttwo\n");
		$conn->send_msg('f', "client gave up\0");
		my $res = $conn->collect;
		is($res->{error}{C}, '57014', 'CopyFail gives 57014');
		like($res->{error}{M}, qr/client gave up/, 'with the client\'s reason');
		is($res->{status}, 'I', 'then ReadyForQuery');

		$conn->send_msg('Q', "COPY small FROM STDIN\0");
		($t) = $conn->read_msg(10);
		$conn->send_msg('d', "1\tone\n");
		$conn->send_msg('d', "2\ttwo\n");
		$conn->send_msg('c', '');
		$res = $conn->collect;
		is_deeply($res->{tags}, [ 'COPY 2' ], 'CopyDone: COPY 2');
		$conn->query('DELETE FROM small');
		$res = $conn->query('COPY small TO STDOUT');
		is_deeply($res->{messages}, [ 'H', 'c', 'C', 'Z' ], 'COPY out of an empty table: H c C Z');
	}
	my $q = $c->query('SELECT count(*) FROM small');
	is_deeply($q->{rows}, [ [0] ], 'session through pgmirror usable after COPY errors');
	$c->close;
	$d->close;
}

# --- COPY with DBD::Pg ------------------------------------------------------

{
	my $dbh = $pgm->dbh;
	$dbh->do('COPY small FROM STDIN');
	$dbh->pg_putcopydata("$_\tdbd $_\n") for 1 .. 10_000;
	$dbh->pg_putcopyend;
	is($dbh->selectrow_array('SELECT count(*) FROM small'), 10_000, 'pg_putcopydata rows arrived');
	$dbh->do('COPY (SELECT * FROM small ORDER BY id) TO STDOUT');
	my ($n, $line, $sum) = (0, '', 0);
	while ($dbh->pg_getcopydata($line) >= 0) {
		$n++;
		$sum += (split /\t/, $line)[0];
	}
	is($n, 10_000, 'pg_getcopydata returns every row');
	is($sum, 10_000 * 10_001 / 2, 'with the right content');
	$dbh->disconnect;
}

# --- large messages are streamed ------------------------------------------

# Polls every worker's peak RSS while $bg runs; returns the max in kB.
sub peak_worker_rss {
	my ($bg) = @_;
	my $max = 0;
	while ($bg->running) {
		for my $w ($pgm->workers) {
			my ($hwm) = slurp("/proc/$w/status") =~ /^VmHWM:\s+(\d+)/m;
			$max = $hwm if $hwm && $hwm > $max;
		}
		sleep 0.02;
	}
	return $max;
}

{
	my $mb64 = 64 * 1024 * 1024;

	# Server to client: one 64 MB CopyData message.
	my $bg = PgMirrorTest::start_cmd([ PgMirrorTest::_bin('psql'), '-X', '-q', '-w', '-h', $pgm->host,
		'-p', $pgm->port, '-U', 'app', '-d', 'appdb', '-o', "$dir/big1",
		'-c', "COPY (SELECT repeat('x', $mb64)) TO STDOUT" ], env => { PGPASSWORD => 'secret' });
	my $peak = peak_worker_rss($bg);
	my ($brc, undef, $berr) = $bg->finish;
	is($brc, 0, 'a 64 MB CopyData message reaches the client') or diag($berr);
	is(-s "$dir/big1", $mb64 + 1, '... whole');
	cmp_ok($peak, '<', 32 * 1024, "worker peak RSS stays well below 64 MB ($peak kB)");
	unlink "$dir/big1";

	# Client to server: one 64 MB Query message.
	write_file("$dir/bigq.sql", "SELECT length('" . ('y' x $mb64) . "');\n");
	$bg = PgMirrorTest::start_cmd([ PgMirrorTest::_bin('psql'), '-X', '-A', '-t', '-q', '-w',
		'-h', $pgm->host, '-p', $pgm->port, '-U', 'app', '-d', 'appdb', '-f', "$dir/bigq.sql" ],
		env => { PGPASSWORD => 'secret' });
	$peak = peak_worker_rss($bg);
	my ($qrc, $qout, $qerr) = $bg->finish;
	is($qrc, 0, 'a 64 MB Query message reaches the server') or diag($qerr);
	is($qout, "$mb64\n", '... whole');
	cmp_ok($peak, '<', 32 * 1024, "worker peak RSS stays well below 64 MB ($peak kB)");
	unlink "$dir/bigq.sql";
}

unlink "$dir/in.copy";
ok($pgm->alive, 'pgmirror still running');
done_testing();
