# 000_deps: scripts/deps, the install step of both README commands, finds
# and installs what a fresh machine lacks.  dpkg-query and apt-get are
# replaced by stand-ins on PATH, so the test sees what a machine without
# the packages would get, without installing anything.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $top = $ENV{top_srcdir} // '.';
my $deps = "$top/scripts/deps";
my $bogus = 'pgmirror-no-such-package-' . $$;

# run(ENV, ARGS...): run scripts/deps; returns (exit status, stdout, stderr).
sub run {
	my ($env, @args) = @_;
	my $dir = tempdir(CLEANUP => 1);
	my $cmd = join(' ', map { "'$_'" } 'bash', $deps, @args);
	my $pre = join(' ', map { "$_='$env->{$_}'" } sort keys %$env);
	system("env $pre $cmd </dev/null >$dir/out 2>$dir/err");
	my $rc = $? >> 8;
	local $/;
	open(my $o, '<', "$dir/out") or die; my $out = <$o>;
	open(my $e, '<', "$dir/err") or die; my $err = <$e>;
	return ($rc, $out, $err);
}

my @list = split(/\n/, `bash '$deps' --list`);
ok(@list >= 10, 'deps --list names the packages');
ok((grep { $_ eq 'autoconf' } @list) && (grep { $_ eq 'postgresql-15' } @list),
	'the list has the build tools and the server');

# --check against the real dpkg database.
my ($rc, $out) = run({}, '--check', $bogus);
is($rc, 1, '--check of a package that cannot exist exits 1');
is($out, "$bogus\n", '... and names it');
($rc, $out) = run({}, '--check', 'dpkg', $bogus, 'coreutils');
is($rc, 1, '--check of a mixed list exits 1');
is($out, "$bogus\n", '... and names only the missing one');
($rc, $out) = run({}, '--check', 'dpkg', 'coreutils');
is($rc, 0, '--check of installed packages exits 0');
is($out, '', '... and prints nothing');

# A machine where nothing is installed: stand-ins for dpkg-query (it
# knows no package, as on a fresh machine, and fails like the real one)
# and for apt-get (it records what it was asked).
my $shim = tempdir(CLEANUP => 1);
sub shim {
	my ($name, $body) = @_;
	open(my $f, '>', "$shim/$name") or die "$shim/$name: $!";
	print $f "#!/bin/sh\n$body\n";
	close($f);
	chmod(0755, "$shim/$name");
}
shim('dpkg-query', "echo \"dpkg-query: no packages found matching \$3\" >&2; exit 1");
shim('dpkg', 'exit 1');
shim('apt-get', "echo \"\$*\" >>'$shim/apt.log'; exit 0");
my $path = "$shim:$ENV{PATH}";

SKIP: {
	skip('installing is tried only as root', 6) if $> != 0;

	($rc, $out) = run({ PATH => $path }, '--check');
	is($rc, 1, 'fresh machine: --check exits 1');
	is_deeply([ split(/\n/, $out) ], \@list, '... and lists every package');

	my $err;
	($rc, $out, $err) = run({ PATH => $path });
	my $log = -f "$shim/apt.log" ? do { local (@ARGV, $/) = "$shim/apt.log"; <> } : '';
	like($log, qr/^update/m, 'fresh machine: apt-get update is run');
	my ($install) = $log =~ /^(install .*)$/m;
	ok(defined $install, 'fresh machine: apt-get install is run');
	is_deeply([ sort grep { !/^-/ && $_ ne 'install' } split(' ', $install // '') ],
		[ sort @list ], '... with every missing package');
	# The stand-in installed nothing: deps must notice, not say all is well.
	isnt($rc, 0, 'packages still missing after apt-get: deps fails');
	diag($err) if $rc == 0;
}

# A failing apt-get is a failure of deps, not a silent success.
unlink("$shim/apt.log");
shim('apt-get', "echo \"\$*\" >>'$shim/apt.log'; exit 100");
SKIP: {
	skip('installing is tried only as root', 1) if $> != 0;
	($rc) = run({ PATH => $path });
	isnt($rc, 0, 'apt-get failing makes deps fail');
}

done_testing();
