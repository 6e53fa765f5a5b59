# PgMirrorTest: harness for the pgmirror integration tests.
#
# Starts real PostgreSQL clusters (initdb/pg_ctl, as an unprivileged user
# when run as root) on free loopback ports and real pgmirror daemons in
# front of them, runs clients (psql, pgbench, DBD::Pg, a raw protocol
# client) and always cleans up: every process it started is stopped in an
# END block, even when a test dies.  Temporary files live under
# /tmp/pgmirror-test.XXXXXX; they are removed when the test passes, kept
# (and named in a diag) when it fails or when PGMIRROR_KEEP_TMP is set.
#
# Environment: PGMIRROR (the daemon), PGMIRRORCTL (its control program;
# default: the pgmirrorctl next to the daemon), PQPIPE (the t/pqpipe
# helper), PG_BINDIR (PostgreSQL binaries), top_builddir,
# PGMIRROR_KEEP_TMP.
#
#   use PgMirrorTest;
#   my $pg  = pg_start();                  # PostgreSQL, SCRAM on TCP
#   $pg->setup_app;                        # role app/secret, database appdb
#   my $pgm = pgm_start($pg, users => [ { name => 'app', password => 'secret' } ]);
#   is($pgm->psql('SELECT 1'), '1');       # psql through pgmirror
#   my $dbh = $pgm->dbh;                   # DBD::Pg through pgmirror
#   my ($conn, $r) = $pgm->raw_login;      # raw protocol: $r->{auth}, {error}{C}
#   my ($rc, $out, $err) = $pgm->ctl('-t', 'status');   # pgmirrorctl
#   my $answer = $pgm->ctl_raw('show pools');  # control protocol, by hand
#
# This file holds the exported utilities, pg_start, pgm_start and the
# cleanup; the classes are in t/PgMirrorTest/: Pg.pm (a cluster), Pgm.pm
# (a daemon), Raw.pm (the raw protocol client), Bg.pm (a command in the
# background).  `use PgMirrorTest;` loads them all.

package PgMirrorTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use File::Copy ();
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IPC::Run ();
use POSIX ();
use Socket ();
use Test::More;
use Time::HiRes qw(time sleep);

use Carp ();
use PgMirrorTest::Bg;
use PgMirrorTest::Pg;
use PgMirrorTest::Pgm;
use PgMirrorTest::Raw;

our @EXPORT = qw(pg_start pgm_start pgmirror_bin pgmirrorctl_bin pqpipe_bin pg_bindir
  run_cmd start_cmd fork_server free_port wait_until tmp_base write_file slurp
  raw_connect children_of pid_alive socket_owner dbh_port
  cert_dir make_cert openssl_run tls_group
  parse_answer row_hashes pgbench_counts bench_check $DEATH);

our $TEST_USER = 'pgmirror-test';
our $SUPERUSER = 'postgres';
our $SUPERPASS = 'superpw';

# Log lines of pgmirror saying that one of its processes died:
# unlike($pgm->log, $DEATH, 'no worker died').
our $DEATH = qr/killed by signal|exited with status|died before serving|AddressSanitizer|runtime error/;

my $MODDIR = dirname(abs_path(__FILE__));
my $MAINPID = $$;
our @PGMS_LIST;      # pgmirror instances started, stopped first at END
my @PGS;             # PostgreSQL clusters started
my @SERVERS;         # fork_server processes, killed first at END
my $BASE;            # per-test temp dir
my $SEQ = 0;
my %PORTS_GIVEN;

# Clients must not pick up settings from the caller's environment.
delete @ENV{qw(PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD
  PGPASSFILE PGOPTIONS PGSERVICE PGSERVICEFILE PGSSLMODE PGAPPNAME
  PGREQUIRESSL PGCONNECT_TIMEOUT PGTARGETSESSIONATTRS PGCHANNELBINDING
  PGTZ PGDATESTYLE PGCLIENTENCODING PSQLRC)};
$ENV{PGCONNECT_TIMEOUT} = 20;
$ENV{PGPASSFILE} = '/nonexistent/pgpass';
$ENV{LC_ALL} = 'C';
delete $ENV{LANG};

$SIG{INT} = $SIG{TERM} = sub { die "killed by signal $_[0]\n" };
$SIG{PIPE} = 'IGNORE';

# --- small utilities -------------------------------------------------------

# Returns the per-test temporary directory, creating it (mode 0755).
sub tmp_base {
	return $BASE if $BASE;
	$BASE = tempdir('pgmirror-test.XXXXXX', TMPDIR => 1, CLEANUP => 0);
	chmod 0755, $BASE or die "chmod $BASE: $!";
	return $BASE;
}

# Returns a fresh subdirectory of the temp dir.
sub new_dir {
	my ($prefix) = @_;
	my $d = tmp_base() . '/' . $prefix . (++$SEQ);
	make_path($d);
	chmod 0755, $d;
	return $d;
}

sub write_file {
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or die "open $path: $!";
	binmode $fh;
	print $fh $content;
	close($fh) or die "close $path: $!";
}

sub slurp {
	my ($path) = @_;
	open(my $fh, '<', $path) or return '';
	binmode $fh;
	local $/;
	my $c = <$fh>;
	return defined $c ? $c : '';
}

# Returns a TCP port on 127.0.0.1 that was free a moment ago and that this
# process has not handed out before.
sub free_port {
	my (%o) = @_;
	for (1 .. 100) {
		my $s = IO::Socket::INET->new(LocalAddr => $o{addr} // '127.0.0.1',
			LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 0)
		  or die "cannot bind a free port: $!";
		my $p = $s->sockport;
		close $s;
		next if $PORTS_GIVEN{$p}++;
		return $p;
	}
	die "no free port found";
}

# Polls $code every $interval seconds until it returns true or $timeout
# seconds passed; returns the last value.
sub wait_until {
	my ($code, $timeout, $interval) = @_;
	$timeout //= 10;
	$interval //= 0.1;
	my $deadline = time + $timeout;
	while (1) {
		my $v = $code->();
		return $v if $v;
		return $v if time > $deadline;
		sleep $interval;
	}
}

# Child set-up for IPC::Run: environment overrides and working directory.
sub _init_sub {
	my (%o) = @_;
	my $env = $o{env} || {};
	my $cwd = $o{cwd} // tmp_base();
	return sub {
		chdir $cwd;
		for my $k (keys %$env) {
			if (defined $env->{$k}) { $ENV{$k} = $env->{$k} }
			else { delete $ENV{$k} }
		}
	};
}

# Runs a command; returns ($rc, $stdout, $stderr) where $rc is the exit
# code (or 128+signal, or -1 on timeout).  Options: env, stdin (string or
# \*FH or file name via stdin_file), timeout (default 120), cwd.
sub run_cmd {
	my ($cmd, %o) = @_;
	my ($out, $err) = ('', '');
	my $in = $o{stdin} // '';
	my @io = defined $o{stdin_file} ? ('<', $o{stdin_file}) : ('<', \$in);
	my @outio = defined $o{stdout_file} ? ('>', $o{stdout_file}) : ('>', \$out);
	my $t = IPC::Run::timeout($o{timeout} // 120);
	my $h = IPC::Run::start($cmd, @io, @outio, '2>', \$err,
		init => _init_sub(%o), $t);
	my $rc;
	eval { $h->finish; 1 } or do {
		my $e = $@;
		eval { $h->kill_kill(grace => 2) };
		$err .= "\n[run_cmd: $e]";
		return (-1, $out, $err);
	};
	my $st = $h->full_result(0);
	$rc = ($st & 127) ? 128 + ($st & 127) : ($st >> 8);
	return ($rc, $out, $err);
}

# Starts a command in the background; returns a PgMirrorTest::Bg whose
# finish method returns ($rc, $stdout, $stderr).
sub start_cmd {
	my ($cmd, %o) = @_;
	my $self = bless { out => '', err => '', cmd => $cmd,
		deadline => time + ($o{timeout} // 120) }, 'PgMirrorTest::Bg';
	my $in = $o{stdin} // '';
	$self->{timer} = IPC::Run::timeout($o{timeout} // 120);
	$self->{h} = IPC::Run::start($cmd, '<', \$in, '>', \$self->{out},
		'2>', \$self->{err}, init => _init_sub(%o), $self->{timer});
	return $self;
}

# Starts a server of the test's own on a free port of 127.0.0.1, in a
# process (and process group) of its own: it accepts connections and runs
# $serve->($socket) for each, one after the other (a die ends the
# server), or with fork_each => 1 in a child per connection (so they run
# side by side).  It ends after alarm => seconds (default 120) at the
# latest; the cleanup at END kills its process group.  Returns the port.
sub fork_server {
	my ($serve, %o) = @_;
	my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16,
		ReuseAddr => 1, Proto => 'tcp') or die "fork_server: $!";
	my $port = $l->sockport;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		POSIX::setpgid(0, 0);
		alarm($o{alarm} // 120);
		$SIG{CHLD} = 'IGNORE' if $o{fork_each};
		while (my $c = $l->accept) {
			if (!$o{fork_each}) {
				eval { $serve->($c); 1 } or POSIX::_exit(1);
				next;
			}
			my $k = fork();
			if (defined $k && $k == 0) {
				close $l;
				eval { $serve->($c) };
				POSIX::_exit(0);
			}
			close $c;
		}
		POSIX::_exit(0);
	}
	POSIX::setpgid($pid, $pid);    # also here: no race with a kill at END
	close $l;
	push @SERVERS, $pid;
	return $port;
}

# The local TCP port of a DBD::Pg handle's connection.
sub dbh_port {
	my ($dbh) = @_;
	open(my $fh, '+<&', $dbh->{pg_socket}) or die "dup pg_socket: $!";
	my ($p) = Socket::sockaddr_in(getsockname($fh));
	close $fh;
	return $p;
}

# The "number of transactions actually processed" and "number of failed
# transactions" of pgbench's output; undef where it has no such line.
sub pgbench_counts {
	my ($out) = @_;
	my ($processed) = $out =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $out =~ /number of failed transactions: (\d+)/;
	return ($processed, $failed);
}

# Checks the result of a pgbench run ($rc, $stdout, $stderr, as run_cmd
# or Bg::finish return it): "$what: pgbench exits 0", "$what: N
# transactions" (N > 0), "$what: 0 failed transactions", and with
# no_abort => 1 also "$what: no client aborted" (nothing on stderr
# matching aborted or error).
sub bench_check {
	my ($what, $rc, $out, $err, %o) = @_;
	is($rc, 0, "$what: pgbench exits 0") or diag("$out\n$err");
	my ($processed, $failed) = pgbench_counts($out);
	cmp_ok($processed // 0, '>', 0, "$what: " . ($processed // 0) . ' transactions');
	is($failed, 0, "$what: 0 failed transactions") or diag("$out\n$err");
	unlike($err, qr/aborted|error/i, "$what: no client aborted") or diag($err)
	  if $o{no_abort};
}

# Lists the pids whose parent is $ppid (from /proc).
sub children_of {
	my ($ppid) = @_;
	my @kids;
	opendir(my $dh, '/proc') or return ();
	for my $p (grep { /^\d+$/ } readdir $dh) {
		my $st = slurp("/proc/$p/stat");
		next unless $st;
		my $r = rindex($st, ')');
		next if $r < 0;
		my @f = split ' ', substr($st, $r + 2);
		# f[0] = state, f[1] = ppid
		push @kids, $p + 0 if $f[1] == $ppid && $f[0] ne 'Z';
	}
	closedir $dh;
	my @sorted = sort { $a <=> $b } @kids;
	return @sorted;
}

# True if $pid exists and is not a zombie.
sub pid_alive {
	my ($pid) = @_;
	my $st = slurp("/proc/$pid/stat");
	return 0 unless $st;
	my $r = rindex($st, ')');
	return substr($st, $r + 2, 1) ne 'Z' ? 1 : 0;
}

# Returns the pid, among @pids, that holds the TCP connection whose local
# port is $lport and remote port $rport (from /proc/net/tcp{,6} and
# /proc/PID/fd), or undef.
sub socket_owner {
	my ($lport, $rport, @pids) = @_;
	my %inodes;
	for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
		for my $line (split /\n/, slurp($f)) {
			my @f = split ' ', $line;
			next unless @f > 9 && $f[1] =~ /:([0-9A-F]{4})$/;
			my $lp = hex($1);
			next unless $f[2] =~ /:([0-9A-F]{4})$/;
			my $rp = hex($1);
			$inodes{ $f[9] } = 1 if $lp == $lport && $rp == $rport && $f[9];
		}
	}
	return undef unless %inodes;
	for my $pid (@pids) {
		opendir(my $dh, "/proc/$pid/fd") or next;
		for my $fd (readdir $dh) {
			my $l = readlink("/proc/$pid/fd/$fd") // next;
			return $pid if $l =~ /^socket:\[(\d+)\]$/ && $inodes{$1};
		}
	}
	return undef;
}

# --- locating binaries ----------------------------------------------------

my $PGBIN;

# Returns the directory holding initdb/pg_ctl/postgres/psql, or undef.
sub pg_bindir {
	return $PGBIN if defined $PGBIN;
	my @cand;
	push @cand, $ENV{PG_BINDIR} if $ENV{PG_BINDIR};
	my $pgc = `pg_config --bindir 2>/dev/null`;
	chomp $pgc if defined $pgc;
	push @cand, $pgc if $pgc;
	push @cand, '/usr/lib/postgresql/15/bin';
	push @cand, sort { ($b =~ /(\d+)/)[0] <=> ($a =~ /(\d+)/)[0] }
	  glob('/usr/lib/postgresql/*/bin');
	for my $d (@cand) {
		if (-x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" && -x "$d/psql") {
			$PGBIN = $d;
			return $d;
		}
	}
	return undef;
}

sub _bin {
	my ($name) = @_;
	my $d = pg_bindir();
	return "$d/$name" if $d && -x "$d/$name";
	return $name;
}

# Returns the path of the pgmirror binary (dies if none).
sub pgmirror_bin {
	my @cand;
	push @cand, $ENV{PGMIRROR} if $ENV{PGMIRROR};
	push @cand, "$ENV{top_builddir}/src/pgmirror" if $ENV{top_builddir};
	push @cand, 'build/gcc/src/pgmirror', "$MODDIR/../build/gcc/src/pgmirror",
	  'src/pgmirror', "$MODDIR/../src/pgmirror";
	for my $c (@cand) {
		return abs_path($c) if -f $c && -x _;
	}
	BAIL_OUT("pgmirror binary not found (tried @cand); set PGMIRROR");
}

# Returns the path of the pgmirrorctl binary: $PGMIRRORCTL if set, else
# the pgmirrorctl in the directory of the pgmirror binary; undef if that
# file is not an executable.
sub pgmirrorctl_bin {
	my $c = $ENV{PGMIRRORCTL};
	if (!$c) {
		my $pgm = eval { pgmirror_bin() };
		return undef unless $pgm;
		$c = dirname($pgm) . '/pgmirrorctl';
	}
	return -f $c && -x _ ? abs_path($c) : undef;
}

my $PQPIPE;

# Returns the path of the t/pqpipe libpq helper; builds it into the temp
# dir from t/pqpipe.c if no built copy is found.
sub pqpipe_bin {
	return $PQPIPE if $PQPIPE;
	my @cand;
	push @cand, $ENV{PQPIPE} if $ENV{PQPIPE};
	push @cand, "$ENV{top_builddir}/t/pqpipe" if $ENV{top_builddir};
	my $pgm = eval { pgmirror_bin() };
	push @cand, dirname($pgm) . '/../t/pqpipe' if $pgm;
	push @cand, 'build/gcc/t/pqpipe', "$MODDIR/../build/gcc/t/pqpipe";
	for my $c (@cand) {
		return $PQPIPE = abs_path($c) if -f $c && -x _;
	}
	my $src = "$MODDIR/pqpipe.c";
	die "no pqpipe binary and no $src" unless -f $src;
	my $cflags = `pkg-config --cflags libpq 2>/dev/null` || '-I/usr/include/postgresql';
	my $libs = `pkg-config --libs libpq 2>/dev/null` || '-lpq';
	chomp($cflags, $libs);
	my $out = tmp_base() . '/pqpipe';
	my ($rc, undef, $err) = run_cmd(['sh', '-c',
		"cc -O1 -Wall -o '$out' $cflags '$src' $libs"]);
	die "building pqpipe failed: $err" if $rc != 0;
	note("built $out from $src");
	return $PQPIPE = $out;
}

# --- the unprivileged user -------------------------------------------------

my $user_ready;

# Returns the command prefix that runs a program as the test user.
sub _as_user {
	return () if $> != 0;
	unless ($user_ready) {
		if (!defined getpwnam($TEST_USER)) {
			my ($rc, $o, $e) = run_cmd(['useradd', '--system', '--no-create-home',
				'--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin',
				'--user-group', $TEST_USER]);
			die "useradd $TEST_USER failed: $e"
			  if $rc != 0 && !defined getpwnam($TEST_USER);
		}
		$user_ready = 1;
	}
	return ('runuser', '-u', $TEST_USER, '--');
}

sub _chown_user {
	my (@paths) = @_;
	return if $> != 0;
	my (undef, undef, $uid, $gid) = getpwnam($TEST_USER);
	chown $uid, $gid, @paths;
}

# --- PostgreSQL -----------------------------------------------------------

# --- certificates for the TLS tests ------------------------------------------

my $cert_serial = 1000;

# Makes and returns a fresh directory for certificates, with an
# openssl.cnf holding the extension sections the tests sign with
# (v3_ca, v3_server for DNS:localhost and IP:127.0.0.1, v3_server_noip
# for DNS:localhost alone, v3_client), and points libpq's certificate
# variables at files that do not exist, so no certificate of the user
# running the tests (~/.postgresql/) is picked up.
sub cert_dir {
	my ($name) = @_;
	my $dir = new_dir($name);
	$ENV{PGSSLCERT} = "$dir/none.crt";
	$ENV{PGSSLKEY} = "$dir/none.key";
	$ENV{PGSSLROOTCERT} = "$dir/none-root.crt";
	write_file("$dir/openssl.cnf", <<'EOC');
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_server_noip]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOC
	return $dir;
}

# Runs the openssl command in $dir; dies on failure, returns stdout.
sub openssl_run {
	my ($dir, @args) = @_;
	my ($rc, $out, $err) = run_cmd([ 'openssl', @args ], cwd => $dir, timeout => 60);
	die "openssl @args failed ($rc): $out$err" if $rc != 0;
	return $out;
}

# Makes $dir/NAME.key (mode 0600) and $dir/NAME.crt: a self-signed CA
# when $ca is undef, else signed by $ca with the extensions section
# $ext.  Keys are RSA 2048, or EC P-256 with key => 'ec'.
sub make_cert {
	my ($dir, $name, $cn, $ca, $ext, %o) = @_;
	my @key = ($o{key} // '') eq 'ec'
	  ? ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1')
	  : ('-newkey', 'rsa:2048');
	push @key, '-nodes', '-keyout', "$dir/$name.key";
	if (!$ca) {
		openssl_run($dir, 'req', '-x509', '-new', @key, '-out', "$dir/$name.crt",
			'-days', '2', '-subj', "/CN=$cn", '-config', "$dir/openssl.cnf",
			'-extensions', 'v3_ca');
	} else {
		openssl_run($dir, 'req', '-new', @key, '-out', "$dir/$name.csr",
			'-subj', "/CN=$cn", '-config', "$dir/openssl.cnf");
		openssl_run($dir, 'x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.crt",
			'-CAkey', "$dir/$ca.key", '-set_serial', ++$cert_serial, '-days', '2',
			'-out', "$dir/$name.crt", '-extfile', "$dir/openssl.cnf",
			'-extensions', $ext);
	}
	chmod 0600, "$dir/$name.key" or die "chmod $name.key: $!";
}

# The tls group of a pgmirror config, as text.
sub tls_group {
	my (%t) = @_;
	return 'tls = { ' . join(' ', map { "$_ = \"$t{$_}\";" } sort keys %t) . ' };';
}

# Starts a PostgreSQL cluster.  Options: auth_host (default
# scram-sha-256), max_connections (300), conf (extra postgresql.conf
# text), hba (text inserted before the generated host lines),
# ssl => { cert => PATH, key => PATH, ca => PATH } (ssl = on: the files
# are copied into the data directory, owned by the server's user, the
# key mode 0600, and named by ssl_cert_file, ssl_key_file and, when ca
# is given, ssl_ca_file), hba_hostssl => 1 (the generated host lines
# become hostssl lines: TCP clients must use TLS).
sub pg_start {
	my (%o) = @_;
	my $bindir = pg_bindir();
	plan skip_all => 'PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; set PG_BINDIR'
	  unless $bindir;
	my @as = _as_user();
	my $dir = new_dir('pg');
	my $data = "$dir/data";
	my $self = bless {
		dir => $dir, data => $data, sockdir => $dir, host => '127.0.0.1',
		port => free_port(), logfile => "$dir/postgres.log", bindir => $bindir,
		as => \@as,
	}, 'PgMirrorTest::Pg';
	write_file("$dir/pwfile", "$SUPERPASS\n");
	_chown_user($dir, "$dir/pwfile");
	my $auth_host = $o{auth_host} // 'scram-sha-256';
	my ($rc, $out, $err) = run_cmd([@as, "$bindir/initdb", '-D', $data, '-U', $SUPERUSER,
		"--pwfile=$dir/pwfile", '--auth-local=trust', "--auth-host=$auth_host",
		'-E', 'UTF8', '--locale=C', '--no-sync'], cwd => $dir, timeout => 120);
	die "initdb failed ($rc): $out\n$err" if $rc != 0;
	my $maxc = $o{max_connections} // 300;
	my $conf = <<"EOC";
port = $self->{port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = $maxc
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 2GB
checkpoint_timeout = 30min
log_min_messages = warning
log_connections = off
log_line_prefix = '%m [%p] %u\@%d '
dynamic_shared_memory_type = posix
EOC
	$conf .= "password_encryption = '$o{password_encryption}'\n" if $o{password_encryption};
	if (my $ssl = $o{ssl}) {
		die "pg_start: ssl needs cert and key" unless $ssl->{cert} && $ssl->{key};
		my %file = (cert => 'server.crt', key => 'server.key', ca => 'root.crt');
		my %setting = (cert => 'ssl_cert_file', key => 'ssl_key_file', ca => 'ssl_ca_file');
		$conf .= "ssl = on\n";
		for my $k (qw(cert key ca)) {
			next unless defined $ssl->{$k};
			my $dst = "$data/$file{$k}";
			File::Copy::copy($ssl->{$k}, $dst) or die "copy $ssl->{$k} to $dst: $!";
			chmod($k eq 'key' ? 0600 : 0644, $dst) or die "chmod $dst: $!";
			_chown_user($dst);
			$conf .= "$setting{$k} = '$dst'\n";
		}
	}
	$conf .= $o{conf} . "\n" if $o{conf};
	open(my $fh, '>>', "$data/postgresql.conf") or die $!;
	print $fh $conf;
	close $fh;
	if ($o{hba_hostssl}) {
		my $hba = slurp("$data/pg_hba.conf");
		$hba =~ s/^host(?=\s)/hostssl/mg;
		write_file("$data/pg_hba.conf", $hba);
	}
	if ($o{hba}) {
		my $hba = slurp("$data/pg_hba.conf");
		write_file("$data/pg_hba.conf", "$o{hba}\n$hba");
	}
	push @PGS, $self;
	$self->start;
	return $self;
}

# --- pgmirror -------------------------------------------------------------

# Serialises a libconfig value.
sub _cfgval {
	my ($v) = @_;
	return $v if $v =~ /^-?\d+(\.\d+)?$/;
	return $v if $v eq 'true' || $v eq 'false';
	(my $s = $v) =~ s/(["\\])/\\$1/g;
	return qq{"$s"};
}

my @KEYORDER = qw(name host port database password auth_type pool_size);

sub _cfggroup {
	my ($h) = @_;
	my %rank;
	@rank{@KEYORDER} = (0 .. $#KEYORDER);
	my @keys = sort { ($rank{$a} // 99) <=> ($rank{$b} // 99) || $a cmp $b } keys %$h;
	return '{ ' . join(' ', map { "$_ = " . _cfgval($h->{$_}) . ';' } @keys) . ' }';
}

# Starts pgmirror in front of $pg.  Options:
#   databases  => [ { name =>, database =>, host =>, port =>, pool_size => } ]
#                 (default [ { name => 'appdb', database => 'appdb' } ];
#                 host/port default to $pg's TCP address; pg => $other
#                 selects another cluster)
#   users      => [ { name =>, password =>, database =>, auth_type =>, pool_size => } ]
#                 (default [ { name => 'app', password => 'secret' } ])
#   auth_type, shutdown_timeout, workers => {..}, pool => {..},
#   log => {..} (merged over destination = "stderr"),
#   control_socket => PATH (default DIR/pgmirror.sock),
#   listen_v6  => 1 (also listen on [::1]),
#   extra      => raw config text appended,
#   config     => full config text (overrides everything but listen),
#   wait       => 0 (do not wait for the port),
#   env        => { NAME => value } (the daemon's environment: set, or
#                 removed when the value is undef; also taken by start).
sub pgm_start {
	my ($pg, %o) = @_;
	my $bin = pgmirror_bin();
	my $dir = new_dir('pgm');
	my $port = free_port();
	my $self = bless {
		dir => $dir, port => $port, host => '127.0.0.1', sockdir => $dir,
		logfile => "$dir/pgmirror.log", conffile => "$dir/pgmirror.conf",
		ctlsock => $o{control_socket} // "$dir/pgmirror.sock",
		pg => $pg, bin => $bin,
	}, 'PgMirrorTest::Pgm';

	my @listen = ("127.0.0.1:$port", "$dir:$port");
	if ($o{listen_v6}) {
		$self->{port6} = $port;
		push @listen, "[::1]:$port";
	}
	my $listen = 'listen = [ ' . join(', ', map { _cfgval($_) } @listen) . " ];\n";
	my $conf;
	if (defined $o{config}) {
		$conf = $listen . $o{config};
		$conf .= "\ncontrol_socket = " . _cfgval($self->{ctlsock}) . ";\n"
			unless $o{config} =~ /^\s*control_socket\s*=/m;
	} else {
		my $dbs = $o{databases} // [ { name => 'appdb', database => 'appdb' } ];
		my $users = $o{users} // [ { name => 'app', password => 'secret' } ];
		my %workers = (min_spare => 2, max_spare => 8, max => 64, %{ $o{workers} || {} });
		my %pool = (mode => 'session', default_size => 100, wait_timeout => 30,
			%{ $o{pool} || {} });
		$conf = "# written by PgMirrorTest\n" . $listen;
		$conf .= 'auth_type = ' . _cfgval($o{auth_type}) . ";\n" if $o{auth_type};
		$conf .= "shutdown_timeout = " . ($o{shutdown_timeout} // 5) . ";\n";
		$conf .= 'control_socket = ' . _cfgval($o{control_socket} // "$dir/pgmirror.sock") . ";\n";
		$conf .= 'workers = ' . _cfggroup(\%workers) . ";\n";
		$conf .= 'pool = ' . _cfggroup(\%pool) . ";\n";
		my %log = (destination => 'stderr', %{ $o{log} || {} });
		$conf .= 'log = ' . _cfggroup(\%log) . ";\n";
		$conf .= "databases = (\n" . join(",\n", map {
			my %d = %$_;
			my $p = delete $d{pg} // $pg;
			$d{host} //= $p ? $p->{host} : '127.0.0.1';
			$d{port} //= $p ? $p->{port} : 5432;
			'  ' . _cfggroup(\%d)
		} @$dbs) . "\n);\n";
		$conf .= "users = (\n" . join(",\n", map { '  ' . _cfggroup($_) } @$users) . "\n);\n";
		$conf .= $o{extra} . "\n" if $o{extra};
	}
	write_file($self->{conffile}, $conf);
	chmod 0600, $self->{conffile};
	$self->{default_user} = $o{users} && @{ $o{users} } ? $o{users}[0]{name} : 'app';
	$self->{default_password} = $o{users} && @{ $o{users} } ? $o{users}[0]{password} : 'secret';
	$self->{default_db} = $o{databases} && @{ $o{databases} } ? $o{databases}[0]{name} : 'appdb';
	$self->start(%o);
	return $self;
}

# --- control answers, psql, raw connections ---------------------------------

# Parses an answer of the control protocol: { ok => 1|0, reason =>,
# header => [..], rows => [[..], ..] }; the first line must be OK or
# ERROR.
sub parse_answer {
	my ($text) = @_;
	return { ok => 0, reason => '(no answer)', header => [], rows => [] }
	  unless defined $text && length $text;
	my @lines = split /\n/, $text;
	my $first = shift @lines;
	my %a = (header => [], rows => []);
	if ($first eq 'OK') {
		$a{ok} = 1;
	} elsif ($first =~ /^ERROR (.*)$/) {
		$a{ok} = 0;
		$a{reason} = $1;
	} else {
		$a{ok} = 0;
		$a{reason} = "(malformed first line: $first)";
		$a{malformed} = 1;
	}
	if (@lines) {
		$a{header} = [ split /\t/, shift(@lines), -1 ];
		$a{rows} = [ map { [ split /\t/, $_, -1 ] } @lines ];
	}
	return \%a;
}

# The rows of a parsed answer as hashes keyed by the column names.
sub row_hashes {
	my ($a) = @_;
	my @h = @{ $a->{header} };
	return map { my $r = $_; +{ map { $h[$_] => $r->[$_] } 0 .. $#h } } @{ $a->{rows} };
}

# Common psql runner; see Pg::psql for the return convention.
sub _psql_result {
	my ($cmd, $env, %o) = @_;
	my ($rc, $out, $err) = run_cmd($cmd, env => $env, stdin => $o{stdin},
		stdin_file => $o{stdin_file}, stdout_file => $o{stdout_file},
		timeout => $o{timeout} // 120);
	if (wantarray) {
		chomp $out;
		return ($out, $err, $rc);
	}
	if ($rc != 0 && !$o{allow_fail}) {
		Carp::confess("psql failed (rc=$rc): @$cmd\n$err");
	}
	chomp $out;
	return $out;
}

# Opens a raw protocol connection: host+port or path.  Returns a
# PgMirrorTest::Raw.
sub raw_connect {
	my (%o) = @_;
	return PgMirrorTest::Raw->new(%o);
}

# --- cleanup ----------------------------------------------------------------

sub _cleanup {
	my $failed = !Test::More->builder->is_passing || $? != 0;
	CORE::kill('KILL', -$_) for @SERVERS;
	for my $m (reverse @PGMS_LIST) {
		eval { $m->_shutdown_for_cleanup };
	}
	if ($failed) {
		for my $m (@PGMS_LIST) {
			my $log = slurp($m->{logfile});
			my @l = split /\n/, $log;
			@l = @l[-40 .. -1] if @l > 40;
			diag("pgmirror log $m->{logfile} (last lines):\n" . join("\n", @l));
		}
	}
	for my $p (reverse @PGS) {
		eval { $p->stop(mode => 'immediate') };
	}
	return unless $BASE;
	if ($ENV{PGMIRROR_KEEP_TMP} || $failed) {
		diag("test files kept in $BASE");
	} else {
		remove_tree($BASE);
	}
}

END {
	if ($$ == $MAINPID) {
		local $? = $?;
		local ($@, $!);
		_cleanup();
	}
}

1;
