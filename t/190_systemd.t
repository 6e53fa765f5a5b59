# 190_systemd: what pgmirror does for systemd.
#
# Skipped as a whole when the daemon is not linked with libsystemd (ldd).
# One cluster with role app/secret owning appdb.
#
#  1. sd_notify: a Unix datagram socket stands in for systemd's
#     NOTIFY_SOCKET.  A daemon started with it (log.stats_period 1)
#     sends READY=1 and a STATUS= summary ("clients N, maintenance off,
#     mirror queue N"), again every stats period; "maintenance on" makes
#     STATUS say "maintenance on", "maintenance off" says off again.
#     SIGHUP: RELOADING=1 with MONOTONIC_USEC, a CLOCK_MONOTONIC time
#     taken between the signal and its receipt, then READY=1.  SIGTERM:
#     STOPPING=1.  Without WATCHDOG_USEC it never sends WATCHDOG=1; a
#     second daemon started with WATCHDOG_USEC=500000 (and no
#     WATCHDOG_PID, which sd_watchdog_enabled accepts) sends WATCHDOG=1
#     over and over: at least 4 in 2.5 s (twice per period would be 10).
#  2. Socket activation (skipped without systemd-socket-activate): a
#     daemon started by systemd-socket-activate -l 127.0.0.1:P, whose
#     config listens on another port Q: psql on P works through it
#     (SELECT 1, and the backend is the cluster's), it logs that it uses
#     1 listening socket from systemd, nothing listens on Q, and SIGTERM
#     stops it.
#  3. Privilege drop (skipped unless run as root): a config with user
#     "nobody", group "nogroup" and a control socket in a directory that
#     does not exist yet: the supervisor and its workers run as
#     nobody:nogroup (real, effective and saved ids, from /proc), psql
#     through it works, the control socket and the directory pgmirror
#     made for it belong to nobody, pgmirrorctl run as nobody is
#     answered, and a reload (the file is mode 0644) succeeds.
#  4. systemd-analyze verify (skipped without it): the unit files of
#     contrib/systemd, with /usr/sbin/pgmirror and /usr/sbin/pgmirrorctl
#     rewritten to the built binaries, verify cleanly: exit 0 and nothing
#     said about pgmirror.

use strict;
use warnings;

use File::Basename qw(dirname);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use PgMirrorTest;
use Socket qw(SOCK_DGRAM);
use Test::More;
use Time::HiRes qw(time sleep clock_gettime CLOCK_MONOTONIC);

my $BIN = pgmirror_bin();
my $ldd = `ldd '$BIN' 2>&1`;
plan skip_all => 'pgmirror is not linked with libsystemd' unless $ldd =~ /libsystemd/;

my $pg = pg_start();
$pg->setup_app;

sub which {
	my ($name) = @_;
	for my $d (split /:/, ($ENV{PATH} // '') . ':/usr/bin:/bin:/usr/sbin:/sbin') {
		return "$d/$name" if $d && -x "$d/$name";
	}
	return undef;
}

# --- 1. sd_notify ------------------------------------------------------------

# The notification socket and what came on it.
my $NPATH = tmp_base() . '/notify.sock';
my $nsock = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $NPATH)
  or die "bind $NPATH: $!";
my @MSGS;

# Reads what arrives for up to $t seconds, or until a message matches $re;
# returns that message (undef if none came).
sub next_msg {
	my ($re, $t) = @_;
	my $sel = IO::Select->new($nsock);
	my $deadline = time + ($t // 10);
	while ((my $left = $deadline - time) > 0) {
		last unless $sel->can_read($left);
		my $m;
		defined $nsock->recv($m, 65536) or last;
		push @MSGS, $m;
		return $m if $re && $m =~ $re;
	}
	return undef;
}

{
	my $what = 'sd_notify';
	my $pgm = pgm_start($pg, log => { stats_period => 1 },
		env => { NOTIFY_SOCKET => $NPATH, WATCHDOG_USEC => undef, WATCHDOG_PID => undef });
	ok(defined next_msg(qr/^READY=1$/), "$what: READY=1 at startup");
	like(next_msg(qr/^STATUS=/), qr/^STATUS=clients \d+, maintenance off, mirror queue \d+$/,
		"$what: STATUS= with a summary");
	my $n0 = grep { /^STATUS=/ } @MSGS;
	next_msg(undef, 2.5);
	cmp_ok(scalar(grep { /^STATUS=/ } @MSGS) - $n0, '>=', 2,
		"$what: STATUS= again every stats period (1 s)");

	is($pgm->ctl_raw('maintenance on'), "OK\n", "$what: maintenance on");
	ok(defined next_msg(qr/^STATUS=.*maintenance on/), "$what: STATUS= says maintenance on");
	is($pgm->ctl_raw('maintenance off'), "OK\n", "$what: maintenance off");
	ok(defined next_msg(qr/^STATUS=.*maintenance off/), "$what: STATUS= says maintenance off");

	my $t0 = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
	$pgm->kill('HUP');
	my $r = next_msg(qr/RELOADING=1/);
	my $t1 = int(clock_gettime(CLOCK_MONOTONIC) * 1e6);
	like($r // '', qr/^RELOADING=1\nMONOTONIC_USEC=\d+$/, "$what: SIGHUP: RELOADING=1 with MONOTONIC_USEC");
	my ($usec) = ($r // '') =~ /MONOTONIC_USEC=(\d+)/;
	ok(defined $usec && $usec >= $t0 && $usec <= $t1,
		"$what: MONOTONIC_USEC is CLOCK_MONOTONIC ($t0 <= " . ($usec // '?') . " <= $t1)");
	ok(defined next_msg(qr/^READY=1$/), "$what: READY=1 when the reload ends");
	like($pgm->log, qr/configuration reloaded \(generation 1\)/, "$what: the reload applied");

	$pgm->kill('TERM');
	ok(defined next_msg(qr/^STOPPING=1$/), "$what: SIGTERM: STOPPING=1");
	ok(defined $pgm->wait_exit(10), "$what: the daemon exits");
	is(scalar(grep { /WATCHDOG=/ } @MSGS), 0, "$what: no WATCHDOG=1 without WATCHDOG_USEC");

	@MSGS = ();
	my $pgm2 = pgm_start($pg, env => { NOTIFY_SOCKET => $NPATH, WATCHDOG_USEC => 500000,
		WATCHDOG_PID => undef });
	ok(defined next_msg(qr/^READY=1$/), "$what: watchdog: READY=1");
	my $w0 = grep { /^WATCHDOG=1$/ } @MSGS;
	next_msg(undef, 2.5);
	my $nw = grep { /^WATCHDOG=1$/ } @MSGS;
	cmp_ok($nw - $w0, '>=', 4, "$what: WATCHDOG_USEC=500000: WATCHDOG=1 sent repeatedly ("
	  . ($nw - $w0) . ' in 2.5 s)');
	$pgm2->stop;
}

# --- 2. socket activation ------------------------------------------------------

SKIP: {
	my $sa = which('systemd-socket-activate');
	skip 'systemd-socket-activate not found', 6 unless $sa;
	my $what = 'socket activation';
	my $dir = tmp_base() . '/sockact';
	mkdir $dir;
	my ($P, $Q) = (free_port(), free_port());
	my $conf = "$dir/pgmirror.conf";
	write_file($conf, <<"EOC");
listen = [ "127.0.0.1:$Q" ];
control_socket = "$dir/pgmirror.sock";
shutdown_timeout = 5;
workers = { min_spare = 2; max_spare = 4; max = 8; };
log = { destination = "stderr"; };
databases = ( { name = "appdb"; host = "127.0.0.1"; port = ${\ $pg->port }; database = "appdb"; } );
users = ( { name = "app"; password = "secret"; } );
EOC
	chmod 0600, $conf;
	my $log = "$dir/log";
	# The shell's pid becomes systemd-socket-activate's, then pgmirror's.
	my $bg = start_cmd([ 'sh', '-c', "echo \$\$ > '$dir/pid'; exec '$sa' -l 127.0.0.1:$P -- '$BIN' -d -c '$conf' >>'$log' 2>&1" ],
		timeout => 120);
	our $SA_PID;
	ok(wait_until(sub { slurp($log) =~ /Listening on 127\.0\.0\.1:$P/ }, 10),
		"$what: systemd-socket-activate listens on $P") or diag(slurp($log));
	$SA_PID = slurp("$dir/pid") =~ /(\d+)/ ? $1 : undef;
	my @cmd = (PgMirrorTest::_bin('psql'), '-X', '-A', '-t', '-q', '-w', '-h', '127.0.0.1',
		'-p', $P, '-U', 'app', '-d', 'appdb', '-c', 'SELECT 1, inet_server_port()');
	my ($rc, $o, $e) = run_cmd(\@cmd, env => { PGPASSWORD => 'secret' }, timeout => 30);
	is($rc, 0, "$what: psql on port $P works") or diag("$e\n" . slurp($log));
	is($o, "1|" . $pg->port . "\n", "$what: SELECT 1 answers, from the cluster");
	like(slurp($log), qr/using 1 listening sockets? from systemd/, "$what: it took the socket from systemd");
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $Q, Proto => 'tcp',
		Timeout => 2);
	ok(!$s, "$what: nothing listens on the config's port $Q");
	kill 'TERM', $SA_PID if $SA_PID;
	my ($brc) = $bg->finish;
	is($brc, 0, "$what: SIGTERM stops it, exit 0") or diag(slurp($log));
	$SA_PID = undef;
}

END {
	our $SA_PID;
	kill 'KILL', $SA_PID if $SA_PID && pid_alive($SA_PID);
}

# --- 3. privilege drop ---------------------------------------------------------

SKIP: {
	skip 'not running as root', 11 if $> != 0;
	my @nobody = getpwnam('nobody');
	my @nogroup = getgrnam('nogroup');
	skip 'no user nobody or group nogroup', 11 unless @nobody && @nogroup;
	my ($uid, $gid) = ($nobody[2], $nogroup[2]);
	my $what = 'privilege drop';
	my $ctldir = tmp_base() . '/ctl-nobody';
	my $pgm = pgm_start($pg, control_socket => "$ctldir/pgmirror.sock",
		extra => qq{user = "nobody";\ngroup = "nogroup";});
	chmod 0644, $pgm->conffile;
	my ($w) = $pgm->workers;
	for ([ 'supervisor', $pgm->pid ], [ 'worker', $w ]) {
		my ($who, $pid) = @$_;
		my $user = `ps -o user= -p $pid`;
		$user =~ s/\s+//g;
		is($user, 'nobody', "$what: the $who runs as nobody (ps)");
		my $st = slurp("/proc/$pid/status");
		like($st, qr/^Uid:\t$uid\t$uid\t$uid\t$uid$/m, "$what: ${who}'s uids are all $uid");
		like($st, qr/^Gid:\t$gid\t$gid\t$gid\t$gid$/m, "$what: ${who}'s gids are all $gid");
	}
	is($pgm->psql('SELECT 1'), '1', "$what: psql through it works");
	is((stat "$ctldir/pgmirror.sock")[4], $uid, "$what: the control socket belongs to nobody");
	is((stat $ctldir)[4], $uid, "$what: so does the directory pgmirror made for it");
	my $ctl = pgmirrorctl_bin();
	my $setpriv = which('setpriv');
	if ($ctl && $setpriv) {
		my ($rc, $o, $e) = $pgm->ctl({ prefix => [ $setpriv, "--reuid=$uid", "--regid=$gid",
			'--clear-groups' ] }, '-t', 'status');
		is($rc, 0, "$what: pgmirrorctl run as nobody is answered") or diag("$o$e");
	} else {
		like($pgm->ctl_raw('status'), qr/^OK\n/, "$what: the control socket answers");
	}
	is($pgm->ctl_raw('reload'), "OK\n", "$what: reload as nobody reads the file");
	$pgm->stop;
}

# --- 4. systemd-analyze verify -------------------------------------------------

SKIP: {
	my $sa = which('systemd-analyze');
	skip 'systemd-analyze not found', 4 unless $sa;
	my $what = 'systemd-analyze verify';
	my $src = dirname(__FILE__) . '/../contrib/systemd';
	$src = "$ENV{top_srcdir}/contrib/systemd" if $ENV{top_srcdir};
	my $dir = tmp_base() . '/units';
	mkdir $dir;
	my $ctl = pgmirrorctl_bin();
	for my $u (qw(pgmirror.service pgmirror.socket)) {
		my $t = slurp("$src/$u");
		die "$src/$u missing" unless length $t;
		# Without pgmirrorctl, a stand-in that verify accepts.
		my $c = $ctl // which('true') // '/bin/true';
		$t =~ s{/usr/sbin/pgmirrorctl\b}{$c}g;
		$t =~ s{/usr/sbin/pgmirror\b}{$BIN}g;
		write_file("$dir/$u", $t);
	}
	my $svc = slurp("$dir/pgmirror.service");
	like($svc, qr/^ExecStart=\Q$BIN\E /m, "$what: ExecStart runs the built pgmirror");
	SKIP: {
		skip 'pgmirrorctl not built', 1 unless $ctl;
		like($svc, qr/^ExecReload=\Q$ctl\E /m, "$what: ExecReload runs the built pgmirrorctl");
	}
	my ($rc, $o, $e) = run_cmd([ $sa, 'verify', '--man=no', "$dir/pgmirror.service",
		"$dir/pgmirror.socket" ], timeout => 60);
	is($rc, 0, "$what: exit 0") or diag("$o$e");
	unlike("$o$e", qr/pgmirror/, "$what: nothing said about pgmirror") or diag("$o$e");
}

done_testing();
