#!/usr/bin/env bash
# check.sh builds every peer whose toolchain is present, runs each workload
# once with a small N, and fails if a peer fails or prints a line that is not
# a result of the protocol in README.md. Peers without a toolchain are
# skipped. Usage: bench/peers/check.sh
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

workloads="finalizer-setclear finalizer-run cleanup-run cleanup-stop weak binary-trees"
failed=0
checked=0

# validate SYSTEM WORKLOAD N RUNS < output: every line a JSON result.
if command -v node >/dev/null; then
	validate() {
		node -e '
const [system, workload, n, runs] = process.argv.slice(1);
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l !== "");
const bad = (why, l) => { console.error(`  bad line (${why}): ${l}`); process.exit(1); };
if (lines.length !== Number(runs)) bad(`${lines.length} lines, want ${runs}`, lines.join(" | "));
for (const l of lines) {
  let r;
  try { r = JSON.parse(l); } catch { bad("not JSON", l); }
  if (r === null || typeof r !== "object" || Array.isArray(r)) bad("not an object", l);
  if (r.system !== system || r.workload !== workload) bad("system or workload", l);
  if ("error" in r) bad("error", l);
  if (r.n !== Number(n)) bad("n", l);
  if (!Number.isInteger(r.ops) || r.ops <= 0) bad("ops", l);
  if (typeof r.ns_per_op !== "number" || !(r.ns_per_op > 0)) bad("ns_per_op", l);
  if (workload === "binary-trees" && !(Number.isInteger(r.peak_rss_kib) && r.peak_rss_kib > 0)) bad("peak_rss_kib", l);
}' "$@"
	}
else
	echo "check.sh: node is needed to validate output" >&2
	exit 2
fi

# check SYSTEM CMD...: runs every workload through CMD and validates it.
check() {
	local system=$1 w n out
	shift
	for w in $workloads; do
		n=100
		[ "$w" = binary-trees ] && n=8
		if out=$("$@" "$w" "$n" 2 2>"$tmp/stderr") && validate "$system" "$w" "$n" 2 <<<"$out"; then
			echo "ok   $system $w: $(head -n1 <<<"$out")"
		else
			echo "FAIL $system $w" >&2
			{ printf '%s\n' "$out"; cat "$tmp/stderr"; } | sed 's/^/  /' >&2
			failed=1
		fi
		checked=$((checked + 1))
	done
}

# Boehm: gcc and libgc (pkg-config bdw-gc, else a test compile with -lgc).
if command -v gcc >/dev/null; then
	if pkg-config --exists bdw-gc 2>/dev/null; then
		gcflags=$(pkg-config --cflags --libs bdw-gc)
	else
		gcflags=-lgc
	fi
	# shellcheck disable=SC2086
	if gcc -O2 -o "$tmp/boehm-peer" "$dir/boehm/peer.c" $gcflags 2>"$tmp/gcc.log"; then
		check boehm "$tmp/boehm-peer"
	else
		echo "skip boehm: cannot build with libgc (apt-get install libgc-dev)" >&2
	fi
else
	echo "skip boehm: no gcc" >&2
fi

# JVM: javac and java.
if command -v javac >/dev/null && command -v java >/dev/null; then
	javac -d "$tmp/jvm" "$dir/jvm/Peer.java"
	check jvm java -cp "$tmp/jvm" Peer
else
	echo "skip jvm: no javac or java" >&2
fi

# V8: node.
check v8 node --expose-gc "$dir/v8/peer.js"

if [ "$failed" != 0 ]; then
	echo "check.sh: FAIL" >&2
	exit 1
fi
echo "check.sh: ok ($checked workload runs)"
