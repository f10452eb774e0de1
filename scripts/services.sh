#!/usr/bin/env bash
# Start, stop or check throwaway test services on loopback: Redis,
# PostgreSQL, dnsmasq and the HTTPS test server (dctest_https_server).
#
# Usage:
#   scripts/services.sh start DIR    start all four under DIR, write DIR/env
#   scripts/services.sh stop DIR     stop them and remove DIR
#   scripts/services.sh status DIR   print each service's state
#
# DIR/env contains shell "export" lines: DC_TEST_REDIS_URL, DC_TEST_REDIS_PORT,
# DC_TEST_PG_CONNINFO, DC_TEST_DNS_SERVERS, DC_TEST_HTTPS_URL,
# DC_TEST_CA_FILE and DC_TEST_*_PID. Load it with ". DIR/env".
#
# DIR must be reachable by the postgres user, so put it under /tmp.
# Environment:
#   DC_TEST_HTTPS_SERVER       path of dctest_https_server (default: the
#                              newest one in a build*/ directory)
#   DC_SERVICES_DNSMASQ_ARGS   extra dnsmasq arguments, split on spaces, e.g.
#                              "--txt-record=_domainconnect.a.test.example,api.test.example"
#   DC_TEST_PG_BINDIR          PostgreSQL binaries (default: the highest
#                              /usr/lib/postgresql/N/bin)
#
# start is safe to repeat: it does nothing when every service in DIR still
# runs, and replaces a partly stopped set. A failed start stops whatever it
# had started. dnsmasq never forwards a query: it reads no resolv.conf and
# answers NXDOMAIN for every name it does not define.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
marker=.dctest-services
services=(redis postgres dnsmasq https)
ready_timeout=30 # seconds each service may take to become ready

die() {
	echo "services.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# Print a TCP port on 127.0.0.1 that nothing listens on (UDP checked too,
# for dnsmasq). A port can still be taken before the service binds it, so
# callers retry with a new one.
free_port() {
	local port tries=0
	while [ $tries -lt 100 ]; do
		port=$((20000 + RANDOM % 40000))
		tries=$((tries + 1))
		if ! ss -Htanu "( sport = :$port )" | grep -q .; then
			echo "$port"
			return 0
		fi
	done
	die "no free port found on 127.0.0.1 after 100 tries"
}

# Succeed when PID runs and its command line contains MARK; this guards
# against a recycled pid belonging to another program.
pid_matches() {
	local pid=$1 mark=$2
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	{ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$mark"
}

# Succeed while PID runs; a zombie, whose command line is empty, counts as
# exited.
alive() {
	local cmdline
	cmdline=$({ tr -d '\0' <"/proc/$1/cmdline"; } 2>/dev/null) || return 1
	[ -n "$cmdline" ]
}

# Read DIR/pids lines "NAME PID MARK" into the arrays pid_of and mark_of.
declare -A pid_of mark_of
read_pids() {
	local dir=$1 name pid mark
	pid_of=()
	mark_of=()
	[ -f "$dir/pids" ] || return 0
	while read -r name pid mark; do
		pid_of[$name]=$pid
		mark_of[$name]=$mark
	done <"$dir/pids"
}

# Stop the service NAME if it still is the process we started: SIGTERM
# (SIGINT, a fast shutdown, for PostgreSQL), then SIGKILL after 10 s.
stop_service() {
	local name=$1 pid=${pid_of[$1]:-} mark=${mark_of[$1]:-} sig=TERM i
	[ -n "$pid" ] || return 0
	if ! pid_matches "$pid" "$mark"; then
		return 0
	fi
	[ "$name" = postgres ] && sig=INT
	kill -s "$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		pid_matches "$pid" "$mark" || return 0
		sleep 0.1
	done
	echo "services.sh: $name (pid $pid) ignored SIG$sig for 10 s; sending SIGKILL" >&2
	kill -s KILL "$pid" 2>/dev/null || true
}

stop_all() {
	local dir=$1 name
	read_pids "$dir"
	for name in "${services[@]}"; do
		stop_service "$name"
	done
}

# Record a service right after its launch, so that an interrupted start
# still stops it. A later line for the same name replaces an earlier one.
record() {
	echo "$1 $2 $3" >>"$dir/pids"
}

# Wait until the command in "$@" succeeds, the process PID exits or the
# deadline passes. NAME and LOG go into the error message.
wait_ready() {
	local name=$1 pid=$2 log=$3 deadline=$((SECONDS + ready_timeout))
	shift 3
	until "$@" >/dev/null 2>&1; do
		if ! alive "$pid"; then
			echo "services.sh: $name exited during start; last lines of $log:" >&2
			tail -n 20 "$log" >&2 || true
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "services.sh: $name not ready after ${ready_timeout} s; last lines of $log:" >&2
			tail -n 20 "$log" >&2 || true
			return 1
		fi
		sleep 0.05
	done
}

# The services run in their own session (setsid), so they outlive this
# script; in a non-interactive shell setsid execs in place and $! is the
# service's pid.

start_redis() {
	local port
	mkdir -p "$dir/redis"
	for _ in 1 2 3; do
		port=$(free_port)
		setsid redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
			--daemonize no --dir "$dir/redis" >"$dir/redis.log" 2>&1 </dev/null &
		redis_pid=$!
		record redis "$redis_pid" "127.0.0.1:$port"
		if wait_ready redis "$redis_pid" "$dir/redis.log" redis_ping "$port"; then
			redis_port=$port
			return 0
		fi
		kill -s KILL "$redis_pid" 2>/dev/null || true
		grep -q "in use" "$dir/redis.log" || break
	done
	echo "services.sh: Redis failed to start" >&2
	return 1
}

redis_ping() {
	[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

pg_bindir() {
	if [ -n "${DC_TEST_PG_BINDIR:-}" ]; then
		echo "$DC_TEST_PG_BINDIR"
		return
	fi
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -n 1
}

start_postgres() {
	local bindir port as_pg
	bindir=$(pg_bindir)
	if [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/postgres" ]; then
		echo "services.sh: PostgreSQL binaries not found in '$bindir'; install postgresql or set DC_TEST_PG_BINDIR" >&2
		return 1
	fi
	if ! id postgres >/dev/null 2>&1; then
		echo "services.sh: user postgres not found; install the postgresql package" >&2
		return 1
	fi
	as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)

	mkdir -p "$dir/pg"
	chown postgres "$dir/pg"
	chmod 700 "$dir/pg"
	if ! "${as_pg[@]}" test -w "$dir/pg"; then
		echo "services.sh: the postgres user cannot write $dir/pg; use a DIR under /tmp" >&2
		return 1
	fi
	if [ ! -f "$dir/pg/data/PG_VERSION" ]; then
		if ! "${as_pg[@]}" "$bindir/initdb" -D "$dir/pg/data" -U postgres -A trust -E UTF8 \
			--locale=C --no-sync --no-instructions >"$dir/postgres.log" 2>&1 </dev/null; then
			echo "services.sh: initdb failed; last lines of $dir/postgres.log:" >&2
			tail -n 20 "$dir/postgres.log" >&2
			return 1
		fi
	fi

	for _ in 1 2 3; do
		port=$(free_port)
		setsid "${as_pg[@]}" "$bindir/postgres" -D "$dir/pg/data" -p "$port" -k "$dir/pg" \
			-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
			>>"$dir/postgres.log" 2>&1 </dev/null &
		pg_pid=$!
		record postgres "$pg_pid" "$dir/pg/data"
		if wait_ready postgres "$pg_pid" "$dir/postgres.log" \
			"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
			pg_port=$port
			return 0
		fi
		kill -s KILL "$pg_pid" 2>/dev/null || true
		grep -q "already in use" "$dir/postgres.log" || break
	done
	echo "services.sh: PostgreSQL failed to start" >&2
	return 1
}

start_dnsmasq() {
	local port extra=()
	if [ -n "${DC_SERVICES_DNSMASQ_ARGS:-}" ]; then
		read -r -a extra <<<"$DC_SERVICES_DNSMASQ_ARGS"
	fi
	for _ in 1 2 3; do
		port=$(free_port)
		setsid dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
			--listen-address=127.0.0.1 --bind-interfaces --port="$port" --user=root --group=root \
			--pid-file= --local=/#/ "${extra[@]}" >"$dir/dnsmasq.log" 2>&1 </dev/null &
		dns_pid=$!
		record dnsmasq "$dns_pid" "--port=$port"
		if wait_ready dnsmasq "$dns_pid" "$dir/dnsmasq.log" \
			dig +time=1 +tries=1 -p "$port" @127.0.0.1 ready.invalid A; then
			dns_port=$port
			return 0
		fi
		kill -s KILL "$dns_pid" 2>/dev/null || true
		grep -q "in use" "$dir/dnsmasq.log" || break
	done
	echo "services.sh: dnsmasq failed to start" >&2
	return 1
}

find_https_server() {
	if [ -n "${DC_TEST_HTTPS_SERVER:-}" ]; then
		echo "$DC_TEST_HTTPS_SERVER"
		return
	fi
	ls -t "$repo"/build*/tests/support/dctest_https_server 2>/dev/null | head -n 1
}

start_https() {
	local bin
	bin=$(find_https_server)
	if [ -z "$bin" ] || [ ! -x "$bin" ]; then
		echo "services.sh: dctest_https_server not found; build it with" \
			"'cmake --build BUILD_DIR --target dctest_https_server' or set DC_TEST_HTTPS_SERVER" >&2
		return 1
	fi
	rm -f "$dir/https.port"
	setsid "$bin" --ca-out "$dir/ca.pem" >"$dir/https.port" 2>"$dir/https.log" </dev/null &
	https_pid=$!
	record https "$https_pid" "$dir/ca.pem"
	if ! wait_ready dctest_https_server "$https_pid" "$dir/https.log" grep -qx '[0-9]\+' "$dir/https.port"; then
		return 1
	fi
	https_port=$(head -n 1 "$dir/https.port")
	if ! curl -sf --max-time 5 --cacert "$dir/ca.pem" "https://localhost:$https_port/" >/dev/null; then
		echo "services.sh: dctest_https_server started but an HTTPS request to port $https_port failed" >&2
		return 1
	fi
}

write_env() {
	local conninfo="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
	{
		echo "# Written by scripts/services.sh start; load with '. $dir/env'."
		printf 'export DC_TEST_REDIS_PORT=%q\n' "$redis_port"
		printf 'export DC_TEST_REDIS_URL=%q\n' "redis://127.0.0.1:$redis_port"
		printf 'export DC_TEST_PG_PORT=%q\n' "$pg_port"
		printf 'export DC_TEST_PG_CONNINFO=%q\n' "$conninfo"
		printf 'export DC_TEST_DNS_SERVERS=%q\n' "127.0.0.1:$dns_port"
		printf 'export DC_TEST_HTTPS_URL=%q\n' "https://localhost:$https_port"
		printf 'export DC_TEST_CA_FILE=%q\n' "$dir/ca.pem"
		printf 'export DC_TEST_REDIS_PID=%q\n' "$redis_pid"
		printf 'export DC_TEST_PG_PID=%q\n' "$pg_pid"
		printf 'export DC_TEST_DNSMASQ_PID=%q\n' "$dns_pid"
		printf 'export DC_TEST_HTTPS_PID=%q\n' "$https_pid"
	} >"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
}

# Succeed when every service recorded in DIR runs.
all_running() {
	local name
	read_pids "$1"
	for name in "${services[@]}"; do
		pid_matches "${pid_of[$name]:-}" "${mark_of[$name]:-}" || return 1
	done
}

# Refuse to touch a directory that this script did not create, because
# stop removes it recursively.
check_ours() {
	local d=$1
	if [ -d "$d" ] && [ -n "$(ls -A "$d")" ] && [ ! -f "$d/$marker" ]; then
		die "$d is not empty and was not created by services.sh; choose another directory"
	fi
}

# Runs when start exits early: stops what was started and keeps the status.
on_start_exit() {
	local status=$?
	trap - EXIT INT TERM
	if [ $status -ne 0 ]; then
		echo "services.sh: start failed; stopping the services started so far" >&2
		stop_all "$dir"
		rm -f "$dir/env"
	fi
	exit $status
}

cmd_start() {
	check_ours "$dir"
	if [ -f "$dir/env" ] && all_running "$dir"; then
		echo "services.sh: services in $dir already run; nothing to do"
		return 0
	fi
	if [ -f "$dir/$marker" ]; then
		echo "services.sh: $dir holds a partly stopped set; stopping it and starting afresh"
		stop_all "$dir"
		rm -rf "$dir"
	fi
	for tool in redis-server redis-cli dnsmasq dig curl setpriv setsid ss; do
		command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
	done

	mkdir -p "$dir"
	touch "$dir/$marker"
	dir=$(cd "$dir" && pwd)
	: >"$dir/pids"

	# From here on, any failure or interruption stops what was started.
	trap on_start_exit EXIT
	trap 'exit 130' INT TERM

	start_redis || exit 1
	start_postgres || exit 1
	start_dnsmasq || exit 1
	start_https || exit 1
	write_env

	trap - EXIT INT TERM
	echo "services.sh: started Redis on $redis_port, PostgreSQL on $pg_port, dnsmasq on $dns_port," \
		"HTTPS on $https_port; load the settings with '. $dir/env'"
}

cmd_stop() {
	if [ ! -d "$dir" ]; then
		echo "services.sh: $dir does not exist; nothing to stop"
		return 0
	fi
	[ -f "$dir/$marker" ] || die "$dir was not created by services.sh, so it is left alone"
	stop_all "$dir"
	rm -rf "$dir"
	echo "services.sh: stopped the services and removed $dir"
}

cmd_status() {
	local name pid state rc=0
	if [ ! -f "$dir/$marker" ]; then
		echo "services.sh: no services in $dir"
		return 3
	fi
	read_pids "$dir"
	for name in "${services[@]}"; do
		pid=${pid_of[$name]:-}
		if pid_matches "$pid" "${mark_of[$name]:-}"; then
			state="running (pid $pid)"
		else
			state=stopped
			rc=3
		fi
		printf '%-9s %s\n' "$name" "$state"
	done
	return $rc
}

[ $# -eq 2 ] || usage
command=$1
dir=$2
[ -n "$dir" ] || usage
case "$command" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
