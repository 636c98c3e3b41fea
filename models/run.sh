#!/usr/bin/env bash
# run.sh verifies the Promela models of reclaim's concurrency protocols.
#
# Every models/*.pml must verify: spin -a, then pan built twice (plain and
# -DSAFETY), each run with invalid end states checked (the default) and
# a search depth of -m$DEPTH; both must say "errors: 0" and report no
# assertion violation, invalid end state or truncated search.
#
# Every models/broken/*.pml is a deliberately broken variant and must FAIL:
# both pan builds must report "errors: N" with N > 0. A broken variant
# that verifies means the model has stopped being able to catch the bug.
# These are compiled with -O0: they fail within a few thousand states, and
# compiling pan.c would otherwise take most of the time.
#
# Prints one line per model and a final "N passed, M failed"; exits
# non-zero if anything failed. Without spin (or gcc) it says so and exits
# 0, unless RECLAIM_REQUIRE_SPIN=1, then it exits 1.
#
# Environment:
#   RECLAIM_REQUIRE_SPIN=1   a missing spin or gcc is an error
#   RECLAIM_SPIN_DEPTH       pan -m depth (default 1000000)
#   RECLAIM_SPIN_TIMEOUT     seconds per pan run (default 600)

set -u

here=$(cd "$(dirname "$0")" && pwd)
depth=${RECLAIM_SPIN_DEPTH:-1000000}
limit=${RECLAIM_SPIN_TIMEOUT:-600}

for tool in spin gcc; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "models: $tool is not installed; models not verified (apt-get install spin gcc)"
		if [ "${RECLAIM_REQUIRE_SPIN:-}" = 1 ]; then
			exit 1
		fi
		exit 0
	fi
done

runtimeout=()
if command -v timeout >/dev/null 2>&1; then
	runtimeout=(timeout "$limit")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reclaim-models.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0

# errors_of FILE prints N from pan's "errors: N" line, or nothing.
errors_of() {
	sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$1" | tail -n 1
}

# states_of FILE prints N from pan's "N states, stored" line.
states_of() {
	sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$1" | tail -n 1
}

# first_violation FILE prints pan's first error line, if any.
first_violation() {
	# pan reports each error as "pan:N: <what> (at depth D)"; the header
	# lines ("invalid end states +") must not match.
	grep -m 1 -E '^pan:[0-9]+: |assertion violated|depth too small|out of memory|MEMLIM' "$1"
}

# build MODEL DIR OPT compiles the verifiers DIR/pan and DIR/pan_safety
# with gcc OPT. On failure prints the reason and returns 1.
build() {
	local model=$1 dir=$2 opt=$3
	mkdir -p "$dir"
	if ! (cd "$dir" && spin -a "$model") >"$dir/spin.out" 2>&1; then
		echo "spin -a failed: $(tail -n 1 "$dir/spin.out")"
		return 1
	fi
	if ! (cd "$dir" && gcc "$opt" -o pan pan.c) >"$dir/gcc.out" 2>&1; then
		echo "gcc failed: $(head -n 1 "$dir/gcc.out")"
		return 1
	fi
	if ! (cd "$dir" && gcc "$opt" -DSAFETY -o pan_safety pan.c) >"$dir/gcc_safety.out" 2>&1; then
		echo "gcc -DSAFETY failed: $(head -n 1 "$dir/gcc_safety.out")"
		return 1
	fi
}

# search DIR BIN runs one verifier; its output goes to DIR/BIN.out.
search() {
	local dir=$1 bin=$2
	(cd "$dir" && "${runtimeout[@]}" "./$bin" -m"$depth") >"$dir/$bin.out" 2>&1
}

# check_good MODEL NAME: the model must verify with both builds.
check_good() {
	local model=$1 name=$2 dir why bin errs v summary=""
	dir="$tmp/$(echo "$name" | tr '/' '_')"
	if ! why=$(build "$model" "$dir" -O2); then
		echo "FAIL $name: $why"
		failed=$((failed + 1))
		return
	fi
	for bin in pan pan_safety; do
		search "$dir" "$bin"
		errs=$(errors_of "$dir/$bin.out")
		v=$(first_violation "$dir/$bin.out")
		if [ -z "$errs" ]; then
			echo "FAIL $name: ./$bin gave no result: $(tail -n 1 "$dir/$bin.out")"
			failed=$((failed + 1))
			return
		fi
		if [ "$errs" != 0 ] || [ -n "$v" ]; then
			echo "FAIL $name: ./$bin: errors: $errs ${v:+($v)}"
			failed=$((failed + 1))
			return
		fi
		summary="$summary $bin: $(states_of "$dir/$bin.out") states, errors: 0;"
	done
	echo "PASS $name:${summary%;}"
	passed=$((passed + 1))
}

# check_broken MODEL NAME: the model must fail with both builds.
check_broken() {
	local model=$1 name=$2 dir why bin errs v
	dir="$tmp/$(echo "$name" | tr '/' '_')"
	if ! why=$(build "$model" "$dir" -O0); then
		echo "FAIL $name: $why"
		failed=$((failed + 1))
		return
	fi
	for bin in pan pan_safety; do
		search "$dir" "$bin"
		errs=$(errors_of "$dir/$bin.out")
		if [ -z "$errs" ]; then
			echo "FAIL $name: ./$bin gave no result: $(tail -n 1 "$dir/$bin.out")"
			failed=$((failed + 1))
			return
		fi
		if [ "$errs" = 0 ]; then
			echo "FAIL $name: broken variant verified (./$bin: errors: 0); the model no longer catches this bug"
			failed=$((failed + 1))
			return
		fi
		v=$(first_violation "$dir/$bin.out")
	done
	echo "PASS $name: fails as it must (errors: $errs; ${v:-see pan output})"
	passed=$((passed + 1))
}

shopt -s nullglob
for model in "$here"/*.pml; do
	check_good "$model" "$(basename "$model")"
done
for model in "$here"/broken/*.pml; do
	check_broken "$model" "broken/$(basename "$model")"
done

echo "$passed passed, $failed failed"
if [ "$failed" != 0 ] || [ "$passed" = 0 ]; then
	exit 1
fi
