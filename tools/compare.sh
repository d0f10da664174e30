#!/usr/bin/env bash
# compare.sh — nuproc-bench against the BEAM and Go anchors, in one session.
#
#   tools/compare.sh [BUILD_DIR]        (default: build)
#
# Env: REPS (runs per program and scenario, default 5), SCHEDS (default 1:
# BEAM +S 1:1, GOMAXPROCS=1, nuproc --schedulers 1), ANCHORS (default
# ../shared/anchors next to the repository), ONLY (regex over scenario
# lines), SET (msg: the messaging scenarios, the default; mem:
# churn_latency at 0, 5k and 10k workers/s, and noise, the machine's own
# stalls, which bound its p99.9; otp: gen_server call against
# BEAM's gen_server:call and Go's request/reply over channels; echo: TCP
# echo servers under one load client, run by tools/compare_echo.sh). Needs erlang-base and
# golang-go (apt-get install -y erlang-base golang-go). Runs are interleaved (nuproc, BEAM, Go, nuproc, ...) so
# machine noise hits all three alike; the table has medians and the ratio
# other/nuproc (above 1: nuproc is faster, for time-per-unit figures).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# TCP echo has its own servers and table: see compare_echo.sh
[ "${SET:-msg}" != echo ] || exec "$ROOT/tools/compare_echo.sh" "$@"
BUILD=${1:-$ROOT/build}
ANCH=${ANCHORS:-$ROOT/../shared/anchors}
REPS=${REPS:-5}
S=${SCHEDS:-1}
ONLY=${ONLY:-.}
BENCH=$BUILD/tools/nuproc-bench
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

[ -x "$BENCH" ] || { echo "build nuproc-bench first ($BENCH)"; exit 2; }
have_erl=0; have_go=0
if command -v erlc >/dev/null && erlc -o "$TMP" "$ANCH/erlang/anchors.erl"; then have_erl=1; fi
if command -v go >/dev/null && (cd "$ANCH/go" && GOFLAGS=-mod=mod go build -o "$TMP/go-anchors" . 2>/dev/null); then have_go=1; fi
[ $have_erl = 1 ] || echo "# no BEAM (apt-get install erlang-base): BEAM column empty"
[ $have_go = 1 ] || echo "# no Go (apt-get install golang-go): Go column empty"

if [ "${SET:-msg}" = otp ]; then
CONFIGS=(
	"call 1000000"
)
elif [ "${SET:-msg}" = mem ]; then
CONFIGS=(
	"churn_latency 0 5000 4096"
	"churn_latency 5000 5000 4096"
	"churn_latency 10000 5000 4096"
	"noise 2000"
)
else
CONFIGS=(
	"spawn_exit 1000000"
	"spawn_wait_seq 1000000"
	"idle 1000000"
	"pingpong 1000000"
	"ring 10000 1000"
	"ring 100000 60"
	"selrecv 10000 100000"
	"fanin 1000 1000"
	"spawn_monitor_all 1000000"
)
fi

RAW=$TMP/raw
: >"$RAW"
echo "# loadavg at start: $(cat /proc/loadavg)"
for r in $(seq "$REPS"); do
	for c in "${CONFIGS[@]}"; do
		[[ "$c" =~ $ONLY ]] || continue
		# nuproc: "name value unit" lines, prefixed nu_, suffixed _sK
		"$BENCH" --schedulers "$S" --reps 1 --json $c |
			sed -E 's/.*"name":"([^"]*)","value":([^,]*),"unit":"([^"]*)".*/nu_\1_s'"$S"' \2 \3/' >>"$RAW"
		# the machine's own stalls: no anchor runs it
		[[ "$c" != noise* ]] || continue
		if [ $have_erl = 1 ]; then
			# (BEAM's name for the gen_server call is gen_call)
			timeout 300 erl -noshell +S "$S:$S" +P 2000000 -pa "$TMP" \
				-run anchors main ${c/#call /gen_call } >>"$RAW" ||
				echo "# BEAM $c failed" >&2
		fi
		if [ $have_go = 1 ] && [[ "$c" == fanin* ]]; then
			# Go's fan-in names the channel: compare with the
			# buffered one (the faster), as the issue asks
			GOMAXPROCS=$S timeout 300 "$TMP/go-anchors" $c 1024 |
				sed 's/^go_fanin_buf1024_/go_fanin_/' >>"$RAW" ||
				echo "# Go $c failed" >&2
		elif [ $have_go = 1 ] && [[ "$c" == call* ]]; then
			# Go's request/reply makes a reply channel per call
			GOMAXPROCS=$S timeout 300 "$TMP/go-anchors" $c |
				sed 's/^go_call_newchan_/go_gen_server_call_/' >>"$RAW" ||
				echo "# Go $c failed" >&2
		elif [ $have_go = 1 ] && ! [[ "$c" =~ ^(selrecv|spawn_monitor_all) ]]; then
			# (the Go anchors have no selective receive or monitors)
			GOMAXPROCS=$S timeout 300 "$TMP/go-anchors" $c >>"$RAW" ||
				echo "# Go $c failed" >&2
		fi
	done
done
echo "# loadavg at end: $(cat /proc/loadavg)"

# Medians per name, then one row per nuproc metric with its peers.
awk -v S="$S" '
function median(k,   n, i, j, t, a) {
	n = split(vals[k], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
		if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
NF == 3 && $1 !~ /^#/ { vals[$1] = vals[$1] " " $2; unit[$1] = $3 }
END {
	printf "%-32s %12s %12s %12s %9s %9s  %s\n", "metric", "nuproc", "beam", "go",
		"beam/nu", "go/nu", "unit"
	for (k in vals) {
		if (k !~ /^nu_/) continue
		base = substr(k, 4); sub("_s" S "$", "", base)
		e = "erl_" base "_s" S; g = "go_" base "_s" S
		nu = median(k)
		ev = (e in vals) ? median(e) : ""; gv = (g in vals) ? median(g) : ""
		er = (ev != "" && nu > 0) ? sprintf("%.1f", ev / nu) : "-"
		gr = (gv != "" && nu > 0) ? sprintf("%.1f", gv / nu) : "-"
		printf "%-32s %12.1f %12s %12s %9s %9s  %s\n", base, nu,
			ev == "" ? "-" : sprintf("%.1f", ev), gv == "" ? "-" : sprintf("%.1f", gv),
			er, gr, unit[k]
	}
}' "$RAW" | sort
