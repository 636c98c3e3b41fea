#!/usr/bin/env bash
# targets.sh measures the performance targets that README.md's "Figures"
# table reports: reclaim and the Go runtime side by side, each workload in
# a process of its own (Go's side of a workload depends on what ran
# before it in the same process), ROUNDS rounds, and binary-trees at
# depth 18 against the Boehm GC peer when gcc and libgc are present.
#
# Usage: bench/targets.sh [ROUNDS]      (default 3; under a minute a round)
#
# Every line it prints is one measurement: the workload, reclaim's figure,
# Go's (or the peer's), and their ratio, with the machine's core-to-core
# round trip at the start of the round (BenchmarkCoreToCore), which moves
# the workloads that hand data between cores.
set -euo pipefail

rounds=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
go test -c -o "$tmp/reclaim.test" .
peer=""
if command -v gcc >/dev/null && gcc -O2 -o "$tmp/boehm" bench/peers/boehm/peer.c -lgc 2>/dev/null; then
	peer="$tmp/boehm"
fi

# bench PATTERN prints the benchmark lines of one process.
bench() {
	"$tmp/reclaim.test" -test.run '^$' -test.benchtime="${2:-1s}" -test.count=1 -test.bench "$1" | grep '^Benchmark'
}

# field NAME UNIT < lines prints the value before UNIT on NAME's line.
field() {
	awk -v name="$1" -v unit="$2" '$1 ~ name { for (i = 3; i <= NF; i++) if ($i == unit) print $(i-1) }' | head -1
}

for r in $(seq "$rounds"); do
	c2c=$(bench 'BenchmarkCoreToCore' | field 'CoreToCore' 'ns/op')
	echo "# round $r (core to core ${c2c} ns)"
	for w in new get finalizer-setclear finalizer-run cleanup-run cleanup-stop weak; do
		out=$(bench "BenchmarkWorkloads/^$w\$")
		rc=$(field "/$w/reclaim" 'ns/op' <<<"$out")
		gc=$(field "/$w/go" 'ns/op' <<<"$out")
		awk -v w="$w" -v r="$rc" -v g="$gc" 'BEGIN { printf "%-20s reclaim %9.2f ns   go %9.2f ns   go/reclaim %6.2fx\n", w, r, g, g / r }'
	done
	out=$(bench 'BenchmarkWorkloads/^cleanup-burst-(1w|2w)$/reclaim')
	awk -v a="$(field '/cleanup-burst-1w/reclaim' 'ns/op' <<<"$out")" -v b="$(field '/cleanup-burst-2w/reclaim' 'ns/op' <<<"$out")" 'BEGIN { printf "%-20s 1 goroutine %7.1f ns   2 goroutines %7.1f ns   2 vs 1 %5.2fx the time\n", "cleanup-burst", a, b, b / a }'
	out=$(bench 'BenchmarkFinalizerDelay' 3000x)
	echo "finalizer delay      p50 $(field 'FinalizerDelay' 'p50-delay-µs' <<<"$out") µs   p99 $(field 'FinalizerDelay' 'p99-delay-µs' <<<"$out") µs"
	out=$(bench 'BenchmarkWorkloads/^(mark-1w|mark-2w)$/reclaim')
	m1=$(field '/mark-1w/reclaim' 'mark-ms' <<<"$out")
	m2=$(field '/mark-2w/reclaim' 'mark-ms' <<<"$out")
	b1=$(field '/mark-1w/reclaim' 'best-Mobj/s' <<<"$out")
	awk -v a="$m1" -v b="$m2" -v c="$b1" 'BEGIN { printf "%-20s 1 worker %6.1f ms (%5.1f M objects/s, fastest %5.1f)   2 workers %6.1f ms   speed-up %5.2fx\n", "mark 1M objects", a, 1048.576 / a, c, b, a / b }'
	out=$(bench 'BenchmarkWorkloads/^mark-speedup$' 30x)
	echo "mark speed-up, paired  2 workers vs 1 $(field '/mark-speedup/reclaim' 'speedup' <<<"$out")x (fastest $(field '/mark-speedup/reclaim' 'speedup-best' <<<"$out")x)   sharing nothing $(field '/mark-speedup/reclaim' 'apart-speedup' <<<"$out")x   Go GOMAXPROCS 2 vs 1 $(field '/mark-speedup/go' 'speedup' <<<"$out")x"
	out=$(bench 'BenchmarkWorkloads/^(mark-1w)$/go')
	echo "mark 1M objects, Go  runtime.GC $(field '/mark-1w/go' 'Mobj/s' <<<"$out") M objects/s"
	out=$(bench 'BenchmarkWorkloads/^binary-trees$/reclaim' 1x)
	bt=$(field '/binary-trees/reclaim' 'ns/op' <<<"$out")
	rss=$(field '/binary-trees/reclaim' 'peak-RSS-MB' <<<"$out")
	if [ -n "$peer" ]; then
		read -r bn brss < <("$peer" binary-trees 18 1 | sed 's/.*"ns_per_op":\([0-9.]*\).*"peak_rss_kib":\([0-9]*\).*/\1 \2/')
		awk -v t="$bt" -v m="$rss" -v b="$bn" -v k="$brss" 'BEGIN { printf "%-20s reclaim %6.0f ms %5.1f MB   boehm %6.0f ms %5.1f MB   reclaim/boehm time %5.2fx\n", "binary-trees 18", t / 1e6, m, b / 1e6, k / 1024, t / b }'
	else
		awk -v t="$bt" -v m="$rss" 'BEGIN { printf "%-20s reclaim %6.0f ms %5.1f MB   (no Boehm peer: gcc and libgc-dev)\n", "binary-trees 18", t / 1e6, m }'
	fi
	out=$(bench 'BenchmarkWorkloads/^binary-trees$/go' 1x)
	awk -v t="$(field '/binary-trees/go' 'ns/op' <<<"$out")" -v m="$(field '/binary-trees/go' 'peak-RSS-MB' <<<"$out")" 'BEGIN { printf "%-20s go      %6.0f ms %5.1f MB\n", "binary-trees 18", t / 1e6, m }'
done
