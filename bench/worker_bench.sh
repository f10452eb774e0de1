#!/usr/bin/env bash
# Benchmark of dcworker against dcsandbox on loopback: apply jobs/s,
# enqueue-to-result p50/p99, worker CPU per 1000 jobs, worker RSS per 1000
# in-flight jobs, and the ceilings measured in the same run (dcsandbox alone
# with bench/sandbox_apply, redis-benchmark for the Redis commands the worker
# uses). Results go to docs/BENCHMARKS.md by hand.
#
# Usage: bench/worker_bench.sh [--bin-dir DIR] [--jobs N] [--latencies "0 50"]
#                              [--processes N] [--in-flight N] [--rss-in-flight N]
#                              [--rss-latency-ms N] [--perf]
#
#   --bin-dir DIR       build folder with dcworker, dcctl, dcsandbox, sandbox_apply
#                       and worker_load (default: build-bench)
#   --jobs N            apply jobs per latency (default 5000)
#   --latencies LIST    provider latencies in ms, one run each (default "0 50")
#   --processes N       dcworker processes (default 2)
#   --in-flight N       [worker] in_flight per process for the throughput runs (default 256)
#   --rss-in-flight N   jobs in flight over all processes for the RSS run (default 2000; 0 skips it)
#   --rss-latency-ms N  provider latency of the RSS run (default 1000)
#   --perf              record a 5 s system-wide perf profile during the first run
#
# Everything listens on 127.0.0.1 in a temporary folder; every process started
# here is stopped and the folder removed on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=$repo/build-bench
jobs=5000
latencies="0 50"
processes=2
in_flight=256
rss_in_flight=2000
rss_latency_ms=1000
use_perf=false
redirect_uri="https://app.bench.test/callback"

die() {
	echo "worker_bench: $*" >&2
	exit 1
}

usage() {
	sed -n '7,19p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

number() {
	case "$2" in
	'' | *[!0-9]*) die "invalid $1 '$2': give a whole number" ;;
	esac
}

while [ $# -gt 0 ]; do
	case "$1" in
	--bin-dir) bin_dir=${2:?}; shift 2 ;;
	--jobs) number --jobs "${2:-}"; jobs=$2; shift 2 ;;
	--latencies) latencies=${2:?}; shift 2 ;;
	--processes) number --processes "${2:-}"; processes=$2; shift 2 ;;
	--in-flight) number --in-flight "${2:-}"; in_flight=$2; shift 2 ;;
	--rss-in-flight) number --rss-in-flight "${2:-}"; rss_in_flight=$2; shift 2 ;;
	--rss-latency-ms) number --rss-latency-ms "${2:-}"; rss_latency_ms=$2; shift 2 ;;
	--perf) use_perf=true; shift ;;
	-h | --help) usage ;;
	*) echo "worker_bench: unknown argument: $1" >&2; usage ;;
	esac
done
for l in $latencies; do number --latencies "$l"; done
[ "$jobs" -ge 1 ] && [ "$jobs" -le 200000 ] || die "--jobs must be 1 to 200000"
[ "$processes" -ge 1 ] && [ "$processes" -le 16 ] || die "--processes must be 1 to 16"

dcworker=$bin_dir/src/dcworker/dcworker
dcctl=$bin_dir/src/dcctl/dcctl
dcsandbox=$bin_dir/src/dcsandbox/dcsandbox
sandbox_apply=$bin_dir/bench/sandbox_apply
worker_load=$bin_dir/bench/worker_load
for b in "$dcworker" "$dcctl" "$dcsandbox" "$sandbox_apply" "$worker_load"; do
	[ -x "$b" ] || die "$b is missing; build it: cmake --build $bin_dir -j2 --target dcworker dcctl dcsandbox sandbox_apply worker_load"
done
for tool in jq curl redis-server redis-cli redis-benchmark psql setsid ss; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -n 1)
[ -x "$pg_bin/initdb" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"

# Zones: one per job in flight at the most, so the per-zone lock never makes a job wait.
zones=$((processes * in_flight))
[ "$rss_in_flight" -gt "$zones" ] && zones=$rss_in_flight

# ---- Temporary folder, process list and clean-up ------------------------------

work=$(mktemp -d /tmp/dcwbench.XXXXXX)
chmod 755 "$work"
: >"$work/pids"

# Stops PID with SIG, then SIGKILL after 15 s.
stop_pid() {
	local pid=$1 sig=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -s "$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		if [ "$(ps -o stat= -p "$pid" 2>/dev/null)" = Z ]; then
			wait "$pid" 2>/dev/null || true
			return 0
		fi
		sleep 0.1
	done
	echo "worker_bench: pid $pid ignored SIG$sig for 15 s; sending SIGKILL" >&2
	kill -s KILL "$pid" 2>/dev/null || true
}

stop_all() {
	local name pid sig
	tac "$work/pids" | while read -r name pid sig; do
		stop_pid "$pid" "$sig"
	done
	rm -rf "$work"
}

on_exit() {
	local status=$?
	trap - EXIT INT TERM
	[ -n "${load_pid:-}" ] && kill "$load_pid" 2>/dev/null
	stop_all
	exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

record() {
	echo "$1 $2 $3" >>"$work/pids"
}

free_port() {
	local port
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 40000))
		if ! ss -Htanu "( sport = :$port )" | grep -q .; then
			echo "$port"
			return 0
		fi
	done
	die "no free port on 127.0.0.1 after 100 tries"
}

wait_for() {
	local name=$1 pid=$2 log=$3 deadline=$((SECONDS + 30))
	shift 3
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "worker_bench: $name did not start; last lines of $log:" >&2
			tail -n 20 "$log" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
}

# Prints user+system CPU seconds of the processes named by pid, with their
# live children (a PostgreSQL backend, a dcworker worker) and the children
# they have reaped.
cpu_seconds() {
	local pids=() p
	for p in "$@"; do
		pids+=("$p")
		mapfile -t -O "${#pids[@]}" pids < <(ps -o pid= --ppid "$p" 2>/dev/null | tr -d ' ')
	done
	for p in "${pids[@]}"; do
		cat "/proc/$p/stat" 2>/dev/null || true
	done | awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15 } END { printf "%.2f", t / hz }'
}

machine_load() {
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes:"
	{ ps -eo pcpu=,comm= --sort=-pcpu || true; } | awk 'NR <= 6 { print "    " $0 }'
}

# ---- Services -------------------------------------------------------------------

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
	"$(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)"
machine_load

redis_port=$(free_port)
setsid redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
	--dir "$work" >"$work/redis.log" 2>&1 </dev/null &
redis_pid=$!
record redis "$redis_pid" TERM
wait_for Redis "$redis_pid" "$work/redis.log" redis-cli -p "$redis_port" ping

if [ "$(id -u)" -eq 0 ]; then
	as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
	mkdir -p "$work/pg"
	chown postgres "$work/pg"
else
	as_pg=()
	mkdir -p "$work/pg"
fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U postgres -A trust -E UTF8 --locale=C \
	--no-sync >"$work/postgres.log" 2>&1 </dev/null || die "initdb failed: $(tail -n 3 "$work/postgres.log")"
pg_port=$(free_port)
setsid "${as_pg[@]}" "$pg_bin/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
	-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
	-c max_connections=100 >>"$work/postgres.log" 2>&1 </dev/null &
pg_pid=$!
record postgres "$pg_pid" INT
wait_for PostgreSQL "$pg_pid" "$work/postgres.log" "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U postgres
conninfo="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
psql_q() {
	psql "$conninfo" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# The template of bench/sandbox_apply: an A record at the apex and a TXT record.
mkdir -p "$work/templates"
cat >"$work/templates/bench.service.site.json" <<'JSON'
{"providerId":"bench.service","providerName":"Bench","serviceId":"site","serviceName":"Site","version":1,
 "records":[{"type":"A","host":"@","pointsTo":"%ip%","ttl":600},
            {"type":"TXT","host":"_verify","data":"v=%token%","ttl":600}]}
JSON
seq -f 'z%05g.test' 1 "$zones" >"$work/zones.txt"
secret=bench-$RANDOM$RANDOM
jq -n --rawfile zones "$work/zones.txt" --arg tpl "$work/templates" --arg secret "$secret" \
	--arg redirect "$redirect_uri" '
	{auto_approve: true, providers: [{id: "bench.sandbox.test", name: "Bench DNS",
	  host: "api.bench.sandbox.test", templates_dir: $tpl,
	  clients: [{client_id: "bench.service", client_secret: $secret, redirect_uris: [$redirect]}],
	  zones: ($zones | split("\n") | map(select(. != "") | {key: ., value: []}) | from_entries),
	  access_token_lifetime: 86400, rotate_refresh_tokens: false}]}' >"$work/dcsandbox.json"

sandbox_port=$(free_port)
dns_port=$(free_port)
setsid "$dcsandbox" --config "$work/dcsandbox.json" --state-dir "$work/sandbox" --port "$sandbox_port" \
	--auto-approve --quiet --threads 2 --dnsmasq-port "$dns_port" \
	>"$work/sandbox.out" 2>"$work/sandbox.log" </dev/null &
sandbox_pid=$!
record dcsandbox "$sandbox_pid" TERM
wait_for dcsandbox "$sandbox_pid" "$work/sandbox.log" grep -qx ready "$work/sandbox.out"
ca=$work/sandbox/ca.pem
base=https://api.bench.sandbox.test:$sandbox_port
admin=https://127.0.0.1:$sandbox_port/admin
curl_sb=(curl -sS --no-progress-meter --cacert "$ca" --max-time 60
	--resolve "api.bench.sandbox.test:$sandbox_port:127.0.0.1")

set_latency() {
	local body='{}'
	[ "$1" -gt 0 ] && body="{\"latency_ms\":$1,\"endpoints\":\"apply\"}"
	"${curl_sb[@]}" -f -o /dev/null -X PUT -H 'Content-Type: application/json' --data "$body" \
		"$admin/providers/bench.sandbox.test/faults" || die "the sandbox rejected faults $body"
}

# ---- dcworker ---------------------------------------------------------------------

export DCWORKER_TOKEN_KEYS="bench:$(head -c 32 /dev/urandom | base64)"
export BENCH_CLIENT_SECRET=$secret
# Writes the config with in_flight $1. rate, burst and max_concurrency are
# the maximum values the config accepts, so pacing does not limit the runs.
# The recorded figures were measured with these values; rate = 0, which now
# turns the rate token off, would skip the token step altogether.
write_config() {
	cat >"$work/dcworker.ini" <<INI
[redis]
host = 127.0.0.1
port = $redis_port

[postgres]
conninfo = $conninfo

[worker]
template_provider_id = bench.service
in_flight = $1
visibility_timeout_s = 120
keepalive_days = 0

[log]
level = warn

[dns]
servers = 127.0.0.1:$dns_port
timeout_ms = 2000

[guard]
allow_networks = 127.0.0.1/32
allow_ports = $sandbox_port
ca_file = $ca

[provider.bench]
provider_id = bench.sandbox.test
url_api = $base
client_secret_env = BENCH_CLIENT_SECRET
rate = 100000
burst = 100000
max_concurrency = 100000
total_timeout_ms = 30000
INI
}

worker_pid=""
start_worker() {
	write_config "$1"
	setsid "$dcworker" --config "$work/dcworker.ini" --processes "$processes" \
		>>"$work/dcworker.log" 2>&1 </dev/null &
	worker_pid=$!
	record dcworker "$worker_pid" TERM
	local i n=0
	for ((i = 0; i < 50; i++)); do
		n=$({ ps -o pid= --ppid "$worker_pid" || true; } | wc -l)
		[ "$n" -ge "$processes" ] && break
		sleep 0.1
	done
	[ "$n" -ge "$processes" ] || die "dcworker did not start $processes workers: $(tail -n 3 "$work/dcworker.log")"
	sleep 1
}

worker_children() {
	{ ps -o pid= --ppid "$worker_pid" || true; } | tr -d " "
}

export DCCTL_CONFIG=$work/dcworker.ini
write_config "$in_flight"
"$dcctl" migrate >"$work/migrate.log" 2>&1 || die "dcctl migrate failed: $(tail -n 3 "$work/migrate.log")"
start_worker "$in_flight"
echo "== services: Redis :$redis_port, PostgreSQL :$pg_port (fsync off), dcsandbox :$sandbox_port," \
	"dnsmasq :$dns_port, dcworker $processes processes; folder $work"

# ---- Authorizations: consent at the sandbox, code exchange by the worker -------------

echo "== authorizations: $zones zones"
awk -v base="$base" -v r="$redirect_uri" '{
	printf "url = \"%s/consent/v2/domainTemplates/providers/bench.service?domain=%s&client_id=bench.service&redirect_uri=%s&scope=site&state=%s&response_type=code\"\n", base, $1, r, $1
}' "$work/zones.txt" >"$work/consent.curl"
"${curl_sb[@]}" --parallel --parallel-max 16 -K "$work/consent.curl" -o /dev/null -w '%{redirect_url}\n' \
	>"$work/consent.out"
sed -n 's/.*[?&]code=\([^&]*\).*[?&]state=\([^&]*\).*/\2\t\1/p; s/.*[?&]state=\([^&]*\).*[?&]code=\([^&]*\).*/\1\t\2/p' \
	"$work/consent.out" >"$work/codes.tsv"
[ "$(wc -l <"$work/codes.tsv")" -eq "$zones" ] || die "consent gave $(wc -l <"$work/codes.tsv") codes for $zones zones"
jq -R -c --arg r "$redirect_uri" 'split("\t") | {id: "exchange-\(.[0])", type: "exchange_code",
	dns_provider: "bench", code: .[1], redirect_uri: $r, domain: .[0]}' "$work/codes.tsv" >"$work/exchange.jsonl"
"$dcctl" enqueue --bulk "$work/exchange.jsonl" --strict --wait --timeout 600 >"$work/exchange.summary" 2>&1 ||
	die "code exchange failed: $(tail -n 3 "$work/exchange.summary")"
psql_q -c "SELECT result->>'authorization_id' FROM dc_jobs WHERE id LIKE 'exchange-%' AND state = 'succeeded'" \
	>"$work/auths.txt"
[ "$(wc -l <"$work/auths.txt")" -eq "$zones" ] || die "only $(wc -l <"$work/auths.txt") of $zones code exchanges succeeded"

# ---- Throughput runs ------------------------------------------------------------------

run_id=r$$
results=()
first_run=true
for latency in $latencies; do
	set_latency "$latency"
	"${curl_sb[@]}" -f -o /dev/null -X POST "$admin/reset" || die "resetting the sandbox failed"
	echo "== run: $jobs apply jobs, provider latency $latency ms, in_flight $in_flight x $processes processes"
	mapfile -t children < <(worker_children)
	w0=$(cpu_seconds "${children[@]}"); s0=$(cpu_seconds "$sandbox_pid")
	r0=$(cpu_seconds "$redis_pid"); p0=$(cpu_seconds "$pg_pid")
	perf_pid=""
	if $use_perf && $first_run && command -v perf >/dev/null; then
		(sleep 1 && perf record -F 499 -a -g -o "$work/perf.data" -- sleep 5 >/dev/null 2>&1) &
		perf_pid=$!
	fi
	"$worker_load" --redis-port "$redis_port" --conninfo "$conninfo" --auth-file "$work/auths.txt" \
		--jobs "$jobs" --prefix "$run_id-l$latency" --timeout 900 >"$work/load.out" 2>"$work/load.err" ||
		die "worker_load failed: $(cat "$work/load.err" "$work/load.out")"
	w1=$(cpu_seconds "${children[@]}"); s1=$(cpu_seconds "$sandbox_pid")
	r1=$(cpu_seconds "$redis_pid"); p1=$(cpu_seconds "$pg_pid")
	line=$(cat "$work/load.out")
	grep -v 'enqueued' "$work/load.err" >&2 || true
	cpu_line=$(awk -v n="$jobs" -v w="$(echo "$w1 - $w0" | bc)" -v s="$(echo "$s1 - $s0" | bc)" \
		-v r="$(echo "$r1 - $r0" | bc)" -v p="$(echo "$p1 - $p0" | bc)" 'BEGIN {
		printf "CPU seconds: dcworker %.2f, dcsandbox %.2f, redis %.2f, postgres %.2f; dcworker CPU per 1000 jobs %.0f ms",
			w, s, r, p, w * 1000000 / n }')
	echo "$line"
	echo "$cpu_line"
	results+=("latency ${latency} ms: $line; $cpu_line")
	if [ -n "$perf_pid" ]; then
		wait "$perf_pid" || true
		echo "perf profile (system-wide, 5 s during the run), CPU share by process and library:"
		perf report -i "$work/perf.data" --no-children --sort comm,dso --stdio -g none \
			>"$work/perf-dso.txt" 2>/dev/null || true
		grep -v -e '^#' -e '^$' "$work/perf-dso.txt" | awk 'NR <= 15 { print "    " $0 }'
		echo "top symbols:"
		perf report -i "$work/perf.data" --no-children --sort comm,sym --stdio -g none \
			>"$work/perf-sym.txt" 2>/dev/null || true
		grep -v -e '^#' -e '^$' "$work/perf-sym.txt" | awk 'NR <= 25 { print "    " $0 }'
	fi
	first_run=false
done

# ---- RSS with many jobs in flight ----------------------------------------------------

if [ "$rss_in_flight" -gt 0 ]; then
	per_process=$(((rss_in_flight + processes - 1) / processes))
	echo "== RSS: in_flight $per_process x $processes processes, provider latency $rss_latency_ms ms"
	stop_pid "$worker_pid" TERM
	start_worker "$per_process"
	mapfile -t children < <(worker_children)
	rss_idle=0
	for c in "${children[@]}"; do
		rss_idle=$((rss_idle + $(awk '/VmRSS/ { print $2 }' "/proc/$c/status")))
	done
	set_latency "$rss_latency_ms"
	rss_jobs=$((rss_in_flight * 3))
	"$worker_load" --redis-port "$redis_port" --conninfo "$conninfo" --auth-file "$work/auths.txt" \
		--jobs "$rss_jobs" --prefix "$run_id-rss" --timeout 900 >"$work/rss-load.out" 2>"$work/rss-load.err" &
	load_pid=$!
	max_pending=0
	max_rss=0
	while kill -0 "$load_pid" 2>/dev/null; do
		pending=$(redis-cli -p "$redis_port" XPENDING '{dc}:queue:bulk' dcworker | head -n 1)
		rss=0
		for c in "${children[@]}"; do
			rss=$((rss + $(awk '/VmRSS/ { print $2 }' "/proc/$c/status" 2>/dev/null || echo 0)))
		done
		[ "${pending:-0}" -gt "$max_pending" ] && max_pending=$pending
		[ "$rss" -gt "$max_rss" ] && max_rss=$rss
		sleep 0.2
	done
	wait "$load_pid" || die "worker_load failed: $(cat "$work/rss-load.err" "$work/rss-load.out")"
	load_pid=""
	hwm=0
	for c in "${children[@]}"; do
		hwm=$((hwm + $(awk '/VmHWM/ { print $2 }' "/proc/$c/status")))
	done
	cat "$work/rss-load.out"
	grep -v 'enqueued' "$work/rss-load.err" >&2 || true
	rss_line=$(awk -v idle="$rss_idle" -v rss="$max_rss" -v hwm="$hwm" -v inflight="$max_pending" 'BEGIN {
		printf "max in flight %d; VmRSS idle %.1f MB, max %.1f MB; VmHWM %.1f MB (sums over workers); (max - idle) per 1000 in flight %.1f MB",
			inflight, idle / 1024, rss / 1024, hwm / 1024, (rss - idle) / 1024 * 1000 / (inflight > 0 ? inflight : 1) }')
	echo "$rss_line"
	results+=("RSS at latency $rss_latency_ms ms: $(cat "$work/rss-load.out"); $rss_line")
fi

# ---- Ceilings: dcsandbox alone, Redis alone ------------------------------------------

stop_pid "$worker_pid" TERM
echo "== ceiling: dcsandbox alone (bench/sandbox_apply, $jobs requests per phase)"
for latency in $latencies; do
	# sandbox_apply has no latency flag, so a wrapper adds the fault to dcsandbox's arguments.
	printf '#!/bin/sh\nexec %q "$@" --fault latency_ms=%d --fault endpoints=apply\n' "$dcsandbox" "$latency" \
		>"$work/sandbox-l$latency.sh"
	chmod +x "$work/sandbox-l$latency.sh"
	connections=64
	[ "$latency" -gt 0 ] && connections=256
	out=$("$sandbox_apply" --sandbox "$work/sandbox-l$latency.sh" --requests "$jobs" --seconds 120 \
		--connections "$connections" 2>&1 | grep -E '^apply' || true)
	echo "latency $latency ms, $connections connections: $out"
	results+=("sandbox alone, latency $latency ms, $connections connections: $out")
done

echo "== ceiling: redis-benchmark (50 clients, no pipelining, 100000 requests each)"
job_json=$(head -c 230 /dev/zero | tr '\0' x)
rb=(redis-benchmark -h 127.0.0.1 -p "$redis_port" -n 100000 -c 50 -q)
redis-cli -p "$redis_port" XGROUP CREATE '{bench}:s' g '$' MKSTREAM >/dev/null
{
	"${rb[@]}" XADD '{bench}:s' '*' job "$job_json"
	"${rb[@]}" XREADGROUP GROUP g c COUNT 1 STREAMS '{bench}:s' '>'
	"${rb[@]}" XACK '{bench}:s' g 1-1
	"${rb[@]}" EVAL "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1]) redis.call('SET', KEYS[3], id, 'EX', 60) return id" \
		3 '{bench}:q' '{bench}:r' '{bench}:m:__rand_int__' "$job_json"
} 2>&1 | tr '\r' '\n' | grep -E 'requests per second' | sed 's/^/    /' | tee "$work/redis-bench.txt"

echo
echo "== summary"
printf '%s\n' "${results[@]}"
sed 's/^ *//' "$work/redis-bench.txt"
machine_load
