# 200_fuzz: each libFuzzer target of t/fuzz (the protocol codec, the
# capture, the control request parser, the config loader) runs for
# FUZZ_SECONDS (default 5) over its seed corpus under ASan and UBSan
# without a crash, a sanitizer report, a leak, a hang or a broken
# invariant (t/fuzz/run-fuzz.sh says what counts).  Skipped, saying why,
# when configure found no compiler that builds the targets; a target
# that configure promised and that is missing is a failure.

use strict;
use warnings;

use Test::More;

my $built = $ENV{PGM_FUZZERS} // '';
plan skip_all => 'the fuzzers are not built: configure found no compiler '
  . 'that accepts -fsanitize=fuzzer (configure CC=clang, with libclang-rt-dev)'
  unless $built eq 'yes';

for my $v (qw(top_srcdir top_builddir FUZZ_TARGETS)) {
	BAIL_OUT("$v is not set: run this through make check") unless $ENV{$v};
}
my $secs = $ENV{FUZZ_SECONDS} // 5;
my @targets = split ' ', $ENV{FUZZ_TARGETS};
plan tests => scalar @targets;

for my $t (@targets) {
	my $out = `sh '$ENV{top_srcdir}/t/fuzz/run-fuzz.sh' '$t' '$secs' 2>&1`;
	my $rc = $? >> 8;
	chomp $out;
	ok($rc == 0, "$t runs $secs s with no report") or diag($out);
	note($out) if $rc == 0;
}
