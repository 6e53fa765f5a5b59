# 070_config_check: `pgmirror -n` checks a config file: "configuration OK"
# and exit 0 when it is valid, else one "FILE:LINE: message" per error and
# exit 1.  Also -V, -h, and a daemon refusing to start on a bad config or a
# busy port.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 sha256);
use FindBin;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time);

my $bin = pgmirror_bin();
my $dir = PgMirrorTest::new_dir('conf');
my $n = 0;

# The lines of a valid config; tests replace one line by number (1-based).
my @valid = (
	'listen = [ "127.0.0.1:16432", "/tmp:16432" ];',                       # 1
	'auth_type = "scram-sha-256";',                                         # 2
	'workers = { min_spare = 2; max_spare = 4; max = 16; };',              # 3
	'pool = { mode = "session"; default_size = 10; min_size = 0; wait_timeout = 5; reset_query = "DISCARD ALL"; };', # 4
	'shutdown_timeout = 5;',                                                # 5
	'log = { destination = "stderr"; };',                                   # 6
	'databases = (',                                                        # 7
	'  { name = "appdb"; host = "127.0.0.1"; port = 5432; database = "appdb"; pool_size = 5; }', # 8
	');',                                                                   # 9
	'users = (',                                                            # 10
	'  { name = "app"; password = "secret"; database = "appdb"; auth_type = "md5"; }', # 11
	');',                                                                   # 12
);

# Writes a config from @lines; returns its path.
sub config_file {
	my (@lines) = @_;
	my $f = "$dir/c" . (++$n) . '.conf';
	write_file($f, join("\n", @lines) . "\n");
	return $f;
}

# Runs pgmirror -n -c FILE; returns ($rc, $stdout . $stderr).
sub check {
	my ($file) = @_;
	my ($rc, $out, $err) = run_cmd([ $bin, '-n', '-c', $file ], timeout => 20);
	return ($rc, $out . $err);
}

# --- valid configs ----------------------------------------------------------------

{
	my $f = config_file(@valid);
	my ($rc, $out) = check($f);
	is($rc, 0, 'valid config: exit 0') or diag($out);
	like($out, qr/configuration OK/, 'valid config: "configuration OK"');

	# A SCRAM verifier in pg_authid's format.
	my $salt = 'saltsaltsaltsalt';
	my $salted = PgMirrorTest::Raw::_hi('pw', $salt, 4096);
	my $verifier = 'SCRAM-SHA-256$4096:' . encode_base64($salt, '') . '$'
	  . encode_base64(sha256(hmac_sha256('Client Key', $salted)), '') . ':'
	  . encode_base64(hmac_sha256('Server Key', $salted), '');

	# Keys accepted now and used by later issues; comments; IPv6 and wildcard listen.
	$f = config_file(
		'# a comment',
		'listen = [ "*:16433", "[::1]:16433", "/tmp:16433" ];',
		'control_socket = "/run/pgmirror/pgmirror.sock";',
		'admin = { database = "pgmirror"; user = "admin"; password = "change-me"; };',
		'mirror_queue = 20000;',
		'metrics = { listen = "127.0.0.1:9930"; };',
		'log = { destination = "syslog"; facility = "daemon"; stats_period = 60; };',
		'databases = ( { name = "original"; host = "/var/run/postgresql"; port = 5432; database = "postgres"; } );',
		'users = ( { name = "app"; password = "md5' . ('0' x 32) . '"; auth_type = "md5"; },',
		qq{          { name = "other"; password = "$verifier"; } );},
	);
	($rc, $out) = check($f);
	is($rc, 0, 'config with later-issue keys, unix host, verifiers: exit 0') or diag($out);
	like($out, qr/configuration OK/, '... "configuration OK"');

	my $sample = ($ENV{top_srcdir} // "$FindBin::Bin/..") . '/etc/pgmirror.conf';
	SKIP: {
		skip "no sample config at $sample", 2 unless -f $sample;
		($rc, $out) = check($sample);
		is($rc, 0, 'the shipped etc/pgmirror.conf is valid') or diag($out);
		like($out, qr/configuration OK/, '... "configuration OK"');
	}
}

# --- one error each, with its line --------------------------------------------------

# [ description, line number, replacement line, message pattern ]
my @cases = (
	[ 'syntax error', 5, 'shutdown_timeout = = 5;', qr/syntax|parse|unexpected/i ],
	[ 'syntax error in a list', 8,
	  '  { name = "appdb" host = = "127.0.0.1"; }', qr/syntax|parse|unexpected/i ],
	[ 'unknown top-level key', 5, 'shutdown_timeot = 5;', qr/shutdown_timeot/ ],
	[ 'unknown key in a group', 3, 'workers = { min_spare = 2; max_spares = 4; max = 16; };',
	  qr/max_spares/ ],
	[ 'unknown key in a database entry', 8,
	  '  { name = "appdb"; host = "127.0.0.1"; port = 5432; database = "appdb"; colour = "red"; }',
	  qr/colour/ ],
	[ 'string where a number belongs', 5, 'shutdown_timeout = "five";', qr/shutdown_timeout/ ],
	[ 'number where a string belongs', 2, 'auth_type = 5;', qr/auth_type/ ],
	[ 'database port out of range', 8,
	  '  { name = "appdb"; host = "127.0.0.1"; port = 70000; database = "appdb"; }', qr/port/ ],
	[ 'listen port out of range', 1, 'listen = [ "127.0.0.1:99999" ];', qr/99999|port|listen/ ],
	[ 'listen port that is not a number', 1, 'listen = [ "127.0.0.1:abc" ];',
	  qr/listen|port|abc/ ],
	[ 'user referring to a missing database', 11,
	  '  { name = "app"; password = "secret"; database = "nosuch"; }', qr/nosuch/ ],
	[ 'pool.mode transaction', 4,
	  'pool = { mode = "transaction"; default_size = 10; };', qr/transaction/ ],
	[ 'unknown auth_type', 2, 'auth_type = "kerberos";', qr/kerberos|auth_type/ ],
	[ 'unknown per-user auth_type', 11,
	  '  { name = "app"; password = "secret"; auth_type = "ident"; }', qr/ident|auth_type/ ],
	[ 'unknown log destination', 6, 'log = { destination = "carrier-pigeon"; };',
	  qr/carrier-pigeon|destination/ ],
	[ 'negative worker count', 3, 'workers = { min_spare = -1; max_spare = 4; max = 16; };',
	  qr/min_spare/ ],
	[ 'database entry without a name', 8, '  { host = "127.0.0.1"; port = 5432; database = "appdb"; }',
	  qr/name/ ],
);

for my $c (@cases) {
	my ($what, $line, $text, $pat) = @$c;
	my @lines = @valid;
	$lines[ $line - 1 ] = $text;
	my $f = config_file(@lines);
	my ($rc, $out) = check($f);
	is($rc, 1, "$what: exit 1");
	like($out, qr/^\Q$f\E:$line: /m, "$what: reported as FILE:$line") or diag($out);
	like($out, $pat, "$what: message names the problem");
	unlike($out, qr/configuration OK/, "$what: not OK");
}

# --- every error is reported --------------------------------------------------------

{
	my @lines = @valid;
	$lines[1] = 'auth_type = "kerberos";';
	$lines[7] = '  { name = "appdb"; host = "127.0.0.1"; port = 70000; database = "appdb"; }';
	$lines[10] = '  { name = "app"; password = "secret"; database = "nosuch"; }';
	my $f = config_file(@lines);
	my ($rc, $out) = check($f);
	is($rc, 1, 'three errors: exit 1');
	like($out, qr/^\Q$f\E:2: /m, 'error on line 2 reported');
	like($out, qr/^\Q$f\E:8: /m, 'error on line 8 reported');
	like($out, qr/^\Q$f\E:11: /m, 'error on line 11 reported');
}

# --- missing and empty files -------------------------------------------------------

{
	my ($rc, $out) = check("$dir/does-not-exist.conf");
	is($rc, 1, 'missing config file: exit 1');
	like($out, qr/does-not-exist\.conf/, 'missing config file: named');

	my $f = config_file('# nothing here');
	($rc, $out) = check($f);
	is($rc, 1, 'config without listen/databases/users: exit 1') or diag($out);
}

# --- -V, -h, bad options -----------------------------------------------------------

{
	my ($rc, $out, $err) = run_cmd([ $bin, '-V' ]);
	is($rc, 0, '-V exits 0');
	like($out . $err, qr/^pgmirror \S+/m, '-V prints "pgmirror VERSION"');

	($rc, $out, $err) = run_cmd([ $bin, '-h' ]);
	is($rc, 0, '-h exits 0');
	like($out . $err, qr/-c/, '-h shows the options');
	like($out . $err, qr/-n/, '-h mentions -n');

	($rc, $out, $err) = run_cmd([ $bin, '-Z' ]);
	isnt($rc, 0, 'unknown option: non-zero exit');
}

# --- the daemon refuses a bad config and a busy port ------------------------------

{
	my @lines = @valid;
	$lines[3] = 'pool = { mode = "transaction"; };';
	my $f = config_file(@lines);
	my $t0 = time;
	my ($rc, $out, $err) = run_cmd([ $bin, '-d', '-c', $f ], timeout => 15);
	is($rc, 1, 'daemon with an invalid config exits 1');
	cmp_ok(time - $t0, '<', 5, '... at once');
	like($out . $err, qr/^\Q$f\E:4: /m, '... saying where the error is');

	my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5,
		ReuseAddr => 0) or die "bind: $!";
	my $port = $busy->sockport;
	@lines = @valid;
	$lines[0] = qq{listen = [ "127.0.0.1:$port" ];};
	$f = config_file(@lines);
	$t0 = time;
	($rc, $out, $err) = run_cmd([ $bin, '-d', '-c', $f ], timeout => 15);
	isnt($rc, 0, 'daemon whose listen port is busy exits non-zero');
	isnt($rc, -1, '... rather than running on');
	like($out . $err, qr/$port/, '... naming the address') or diag($out . $err);
	close $busy;
}

done_testing();
