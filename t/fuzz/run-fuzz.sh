#!/bin/sh
# t/fuzz/run-fuzz.sh: run one libFuzzer target for a bounded time.
#
#   run-fuzz.sh NAME SECONDS
#
# Runs $top_builddir/t/fuzz/NAME for SECONDS (-max_total_time) over
# t/fuzz/work/NAME in the build tree, a copy of the seed corpus
# $top_srcdir/t/fuzz/corpus/NAME (new inputs are added there, never to
# the source tree), with the dictionary t/fuzz/NAME.dict and the flags of
# t/fuzz/NAME.options if there are, and the leak suppressions of
# t/fuzz/lsan.supp.
# The output goes to t/fuzz/work/NAME.log; an input that fails is kept in
# t/fuzz/work/NAME-artifacts/.  Prints one line saying what happened
# (and, on a failure, the end of the log and how to run the input again).
# Exit status: 0 when the target ran its time without any crash,
# sanitizer report, leak, hang (10 s on one input) or broken invariant;
# 1 otherwise; 2 when it could not be run at all.
#
# make fuzz and t/200_fuzz.t call it, with top_srcdir and top_builddir
# set in the environment (absolute paths).

set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 NAME SECONDS" >&2
	exit 2
fi
name=$1
secs=$2
: "${top_srcdir:?top_srcdir is not set}"
: "${top_builddir:?top_builddir is not set}"

case $secs in
''|*[!0-9]*) echo "run-fuzz: $name: SECONDS must be a number" >&2; exit 2 ;;
esac
bin=$top_builddir/t/fuzz/$name
seeds=$top_srcdir/t/fuzz/corpus/$name
dict=$top_srcdir/t/fuzz/$name.dict
opts=$top_srcdir/t/fuzz/$name.options
work=$top_builddir/t/fuzz/work/$name
art=$work-artifacts
log=$work.log

if [ ! -x "$bin" ]; then
	echo "run-fuzz: $name: $bin is not built" >&2
	exit 2
fi
if [ ! -d "$seeds" ]; then
	echo "run-fuzz: $name: no seed corpus $seeds" >&2
	exit 2
fi
mkdir -p "$work" "$art" || exit 2
rm -f "$art"/*
cp "$seeds"/* "$work"/ || exit 2
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/"
if [ -f "$dict" ]; then
	set -- "$@" -dict="$dict"
fi
if [ -f "$opts" ]; then
	# One flag a line, no spaces in them: split on purpose.
	# shellcheck disable=SC2046
	set -- "$@" $(sed -e 's/#.*//' "$opts")
fi

# Leaks that are not pgmirror's (see the file).
LSAN_OPTIONS="suppressions=$top_srcdir/t/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
"$bin" "$@" "$work" >"$log" 2>&1
rc=$?

# A clean exit is not enough: the run must have happened, and said
# nothing of a report (a sanitizer that recovers still prints).
runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs in.*/\1/p' "$log" | tail -n 1)
why=
if [ "$rc" -ne 0 ]; then
	why="exit status $rc"
elif [ -z "$runs" ]; then
	why="no \"Done N runs\" line"
elif grep -q -e 'ERROR: ' -e 'runtime error:' -e '^SUMMARY: ' \
    -e 'invariant does not hold' "$log"; then
	why="a report in the log"
elif [ -n "$(ls "$art")" ]; then
	why="an artifact was written"
fi

if [ -z "$why" ]; then
	inputs=$(find "$work" -type f | wc -l)
	echo "$name: $runs runs in $secs s, no report ($inputs inputs in t/fuzz/work/$name)"
	exit 0
fi
echo "$name: FAILED ($why); log: $log"
grep -m 5 -e 'ERROR: ' -e 'runtime error:' -e 'invariant does not hold' \
    -e '^SUMMARY: ' "$log" | sed 's/^/  /'
tail -n 30 "$log" | sed 's/^/  | /'
for f in "$art"/*; do
	[ -e "$f" ] && echo "  run it again: $bin $f"
done
exit 1
