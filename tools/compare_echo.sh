#!/usr/bin/env bash
# compare_echo.sh — TCP echo: nuproc's server against the raw liburing
# baseline and the BEAM and Go anchors, in one session, one load client.
#
#   tools/compare_echo.sh [BUILD_DIR]   (default: build; also SET=echo
#                                        tools/compare.sh [BUILD_DIR])
#
# Servers, each alone on CPU 0 (taskset -c SRV_CPU) with one core:
#   nuproc  nuproc-bench --schedulers 1 echo_server PORT
#   uring   BUILD_DIR/tools/uring-echo PORT (single-threaded liburing)
#   beam    erl -noshell +S 1:1 -run echo_server main PORT passive
#           (../shared/anchors/echo/echo_server.erl, gen_tcp:recv)
#   go      GOMAXPROCS=1 go-echo PORT (../shared/anchors/echo/go)
# Load: nuproc-bench echo_load on CPU 1 (taskset -c LOAD_CPU) for every
# server — one 64-byte message in flight per connection, 0.5 s warm-up,
# DUR seconds measured; the same workload as ../shared/anchors/echo/run.sh.
#
# Env: REPS (default 3), DUR (seconds, default 5), CONNS (default
# "1 100 1000"), SERVERS (default "nuproc uring beam go"), PORT0 (server k
# listens on PORT0+k, default 15600), SRV_CPU (0), LOAD_CPU (1), ANCHORS
# (default ../shared/anchors next to the repository), RAW_OUT (a file to
# keep every run's "SERVER C METRIC VALUE" lines in). BEAM and Go need
# erlang-base and golang-go (apt-get install -y erlang-base golang-go);
# without them their rows and ratios are left out, with a note.
#
# Runs are interleaved: in each rep every server is started, waited for
# until it accepts connections, loaded at each C in turn (one instance
# serves all C, as in run.sh), then killed and reaped, so machine noise
# hits all servers alike. The order rotates from rep to rep (rep r starts
# with the r-th server), so no server always runs right after another's
# teardown (its sockets in TIME_WAIT, its memory going back). The tables
# have medians over REPS: per server and C, then nuproc's ratios at each
# C (req/s to uring as %, to BEAM and Go as x; p99 to uring's p99, below
# 1: nuproc's tail is shorter).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
ANCH=${ANCHORS:-$ROOT/../shared/anchors}
REPS=${REPS:-3}
DUR=${DUR:-5}
CONNS=${CONNS:-"1 100 1000"}
SERVERS=${SERVERS:-"nuproc uring beam go"}
PORT0=${PORT0:-15600}
SRV_CPU=${SRV_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCH=$BUILD/tools/nuproc-bench
URING=$BUILD/tools/uring-echo
TMP=$(mktemp -d)

[ -x "$BENCH" ] || { echo "build nuproc-bench first ($BENCH)"; exit 2; }
[ -x "$URING" ] || { echo "build uring-echo first ($URING)"; exit 2; }

# The client and each server need one descriptor per connection (+ a
# few); raise the soft limit, as run.sh does.
MAXC=1; for c in $CONNS; do [ "$c" -gt "$MAXC" ] && MAXC=$c; done
NEED=$((MAXC + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
	ulimit -n "$NEED" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
	echo "open-file limit $(ulimit -n) < $NEED; run as root or lower CONNS" >&2
	exit 1
fi

# The running server: killed and reaped on every way out.
SPID=""
SPORT=""
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
stop_server() {
	[ -n "$SPID" ] || return 0
	kill -KILL "$SPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
	# nuproc-bench serves from a child that dies with it (PDEATHSIG),
	# after this wait: give the port back before going on
	for _ in $(seq 100); do listening "$SPORT" || break; sleep 0.05; done
	SPID=""
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# BEAM and Go servers, when their toolchains are here.
have_erl=0; have_go=0
if command -v erlc >/dev/null && erlc -o "$TMP" "$ANCH/echo/echo_server.erl"; then have_erl=1; fi
if command -v go >/dev/null && (cd "$ANCH/echo/go" && GOFLAGS=-mod=mod go build -o "$TMP/go-echo" . 2>/dev/null); then have_go=1; fi
[ $have_erl = 1 ] || echo "# no BEAM (apt-get install erlang-base): BEAM rows and nuproc/BEAM left out"
[ $have_go = 1 ] || echo "# no Go (apt-get install golang-go): Go rows and nuproc/Go left out"
RUN=""
for s in $SERVERS; do
	case $s in
	beam) [ $have_erl = 1 ] || continue ;;
	go) [ $have_go = 1 ] || continue ;;
	nuproc | uring) ;;
	*) echo "unknown server $s (nuproc uring beam go)" >&2; exit 2 ;;
	esac
	RUN="$RUN $s"
done

# Start server $1 on port $2 pinned to SRV_CPU; return once it accepts.
start_server() {
	local log=$TMP/server-$1.log
	if listening "$2"; then echo "# port $2 already in use" >&2; return 1; fi
	# each branch backgrounds the server itself, so $! is its PID
	# (taskset, erl and beam.smp exec one another: the same PID)
	case $1 in
	nuproc) taskset -c "$SRV_CPU" "$BENCH" --schedulers 1 echo_server "$2" \
		>>"$log" 2>&1 & ;;
	uring) taskset -c "$SRV_CPU" "$URING" "$2" >>"$log" 2>&1 & ;;
	beam) taskset -c "$SRV_CPU" erl -noshell +S 1:1 -pa "$TMP" \
		-run echo_server main "$2" passive >>"$log" 2>&1 & ;;
	go) GOMAXPROCS=1 taskset -c "$SRV_CPU" "$TMP/go-echo" "$2" >>"$log" 2>&1 & ;;
	esac
	SPID=$! SPORT=$2
	for _ in $(seq 200); do
		listening "$2" && return 0
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.05
	done
	echo "# $1 did not start listening on $2 (log: $(tail -1 "$log"))" >&2
	stop_server
	return 1
}

# Raw lines: "SERVER C METRIC VALUE" (METRIC: rps, p50, p99 in us, cpu:
# the client's CPU share, near 100: the client may be the limit).
RAW=$TMP/raw
: >"$RAW"
echo "# $(nproc) cpus, $(uname -r); servers on CPU $SRV_CPU, echo_load on CPU $LOAD_CPU;" \
	"C: $CONNS; ${DUR}s + 0.5 s warm-up; reps $REPS; ulimit -n $(ulimit -n)"
echo "# loadavg at start: $(cat /proc/loadavg)"
read -ra SRV <<<"$RUN"
NS=${#SRV[@]}
for r in $(seq "$REPS"); do
	# rep r starts at server (r - 1) mod NS: none always follows another
	for i in $(seq 0 $((NS - 1))); do
		k=$(((r - 1 + i) % NS + 1)); s=${SRV[$((k - 1))]}
		port=$((PORT0 + k))
		start_server "$s" "$port" || continue
		for c in $CONNS; do
			# its JSON lines: echo_load_cC[_p50|_p99|_client_cpu], value
			if ! taskset -c "$LOAD_CPU" timeout --foreground $((DUR + 60)) "$BENCH" \
				--json --reps 1 echo_load "127.0.0.1:$port" "$c" "$DUR" |
				awk -F'"' -v s="$s" -v c="$c" '$2 == "name" {
					m = $4; sub(/^echo_load_c[0-9]+/, "", m)
					m = m == "" ? "rps" : m == "_client_cpu" ? "cpu" : substr(m, 2)
					v = $7; gsub(/[:,]/, "", v); print s, c, m, v }' >>"$RAW"; then
				echo "# $s c$c failed (rep $r)" >&2
			fi
		done
		stop_server
	done
done
echo "# loadavg at end: $(cat /proc/loadavg)"
[ -z "${RAW_OUT:-}" ] || cp "$RAW" "$RAW_OUT"

# Medians per server, C and metric; a row per server and C, then ratios.
awk -v servers="$RUN" -v conns="$CONNS" '
function median(k,   n, i, j, t, a) {
	n = split(vals[k], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
		if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function med(s, c, m) { return (s SUBSEP c SUBSEP m) in vals ? median(s SUBSEP c SUBSEP m) : "" }
function num(v, f) { return v == "" ? "-" : sprintf(f, v) }
function ratio(a, b, f) { return a == "" || b == "" || b == 0 ? "-" : sprintf(f, a / b) }
NF == 4 { vals[$1, $2, $3] = vals[$1, $2, $3] " " $4; runs[$1, $2, $3]++ }
END {
	ns = split(servers, S, " "); nc = split(conns, C, " ")
	print "| server | C | req/s | p50 µs | p99 µs | client CPU % | runs |"
	print "|---|---:|---:|---:|---:|---:|---:|"
	for (i = 1; i <= ns; i++) for (j = 1; j <= nc; j++) {
		s = S[i]; c = C[j]
		printf "| %s | %s | %s | %s | %s | %s | %d |\n", s, c,
			num(med(s, c, "rps"), "%.0f"), num(med(s, c, "p50"), "%.1f"),
			num(med(s, c, "p99"), "%.1f"), num(med(s, c, "cpu"), "%.1f"),
			runs[s, c, "rps"]
	}
	print ""
	print "| C | nuproc/uring req/s | nuproc/BEAM req/s | nuproc/Go req/s | nuproc p99 / uring p99 |"
	print "|---:|---:|---:|---:|---:|"
	for (j = 1; j <= nc; j++) {
		c = C[j]; nu = med("nuproc", c, "rps")
		printf "| %s | %s | %s | %s | %s |\n", c,
			ratio(100 * nu, med("uring", c, "rps"), "%.1f%%"),
			ratio(nu, med("beam", c, "rps"), "%.2fx"),
			ratio(nu, med("go", c, "rps"), "%.2fx"),
			ratio(med("nuproc", c, "p99"), med("uring", c, "p99"), "%.2f")
	}
}' "$RAW"
