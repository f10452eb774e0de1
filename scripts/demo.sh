#!/usr/bin/env bash
# The one-command demo: a bulk migration of customer domains through the
# Domain Connect asynchronous flow, against three simulated DNS providers.
#
# Usage: scripts/demo.sh [--domains N] [--templates DIR] [--template-provider ID] [--keep]
#
#   --domains N             customer domains to migrate (default 1000)
#   --templates DIR         folder of Domain Connect templates (default:
#                           $DC_SHARED_DIR/templates, else ../shared/templates
#                           beside the checkout, else examples/templates)
#   --template-provider ID  providerId whose templates the jobs apply (default:
#                           the one with the most usable templates)
#   --keep                  leave the services running and print how to stop them
#
# Environment: DC_DEMO_BIN_DIR names a build folder whose dcworker, dcctl and
# dcsandbox binaries are used as they are (the ctest sets it); otherwise the
# script configures and builds build-demo/ when needed.
#
# Everything listens on 127.0.0.1 only, in a temporary folder that is removed
# on exit. The exit status is 0 only when every job has exactly one terminal
# result and every zone holds the records expected for its domain.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
domains=1000
keep=false
templates_dir=""
template_provider=""
redirect_uri="https://app.demo.test/domainconnect/callback"
providers=(alpha beta gamma)
worker_processes=2

die() {
	echo "demo: $*" >&2
	exit 1
}

usage() {
	sed -n '5,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--domains)
		[ $# -ge 2 ] || usage
		domains=$2
		shift 2
		;;
	--templates)
		[ $# -ge 2 ] || usage
		templates_dir=$2
		shift 2
		;;
	--template-provider)
		[ $# -ge 2 ] || usage
		template_provider=$2
		shift 2
		;;
	--keep)
		keep=true
		shift
		;;
	-h | --help) usage ;;
	*)
		echo "demo: unknown argument: $1" >&2
		usage
		;;
	esac
done
case "$domains" in
'' | *[!0-9]*) die "invalid --domains '$domains': give a number from 3 to 100000" ;;
esac
[ "$domains" -ge 3 ] && [ "$domains" -le 100000 ] ||
	die "invalid --domains '$domains': give a number from 3 to 100000"

started=$SECONDS
phase() {
	printf '\n== %s (%ds)\n' "$*" $((SECONDS - started))
}

# ---- Packages and binaries ---------------------------------------------------

phase "packages and build"
if [ -z "${DC_DEMO_SKIP_DEPS:-}" ]; then
	bash "$repo/scripts/install-deps.sh"
fi
for tool in jq curl redis-server redis-cli psql setsid ss; do
	command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
done

if [ -n "${DC_DEMO_BIN_DIR:-}" ]; then
	bin_dir=$DC_DEMO_BIN_DIR
else
	bin_dir=$repo/build-demo
	if [ ! -f "$bin_dir/CMakeCache.txt" ]; then
		mkdir -p "$bin_dir"
		cmake -S "$repo" -B "$bin_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDC_TESTS=OFF \
			>"$bin_dir/demo-build.log" 2>&1 || die "cmake failed; see $bin_dir/demo-build.log"
	fi
	cmake --build "$bin_dir" -j "$(nproc)" --target dcworker dcctl dcsandbox >"$bin_dir/demo-build.log" 2>&1 ||
		die "the build failed; see $bin_dir/demo-build.log"
fi
dcworker=$bin_dir/src/dcworker/dcworker
dcctl=$bin_dir/src/dcctl/dcctl
dcsandbox=$bin_dir/src/dcsandbox/dcsandbox
for b in "$dcworker" "$dcctl" "$dcsandbox"; do
	[ -x "$b" ] || die "$b is missing; build it or unset DC_DEMO_BIN_DIR"
done

# ---- Templates -----------------------------------------------------------------

if [ -z "$templates_dir" ]; then
	shared=${DC_SHARED_DIR:-$repo/../shared}
	if [ -d "$shared/templates" ]; then
		templates_dir=$shared/templates
	else
		templates_dir=$repo/examples/templates
	fi
fi
[ -d "$templates_dir" ] || die "templates folder $templates_dir not found"
templates_dir=$(cd "$templates_dir" && pwd)

# ---- Temporary folder and clean-up ---------------------------------------------

work=$(mktemp -d /tmp/dcdemo.XXXXXX)
chmod 755 "$work"
: >"$work/pids"
worker_pid=""

# Stops PID (recorded as NAME) with SIG, then SIGKILL after 15 s.
stop_pid() {
	local name=$1 pid=$2 sig=$3 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -s "$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		# A child of this shell stays a zombie until it is reaped.
		if [ "$(ps -o stat= -p "$pid" 2>/dev/null)" = Z ]; then
			wait "$pid" 2>/dev/null || true
			return 0
		fi
		sleep 0.1
	done
	echo "demo: $name (pid $pid) ignored SIG$sig for 15 s; sending SIGKILL" >&2
	kill -s KILL "$pid" 2>/dev/null || true
}

# Stops the processes in reverse start order, then removes the folder.
stop_all() {
	local lines name pid sig
	[ -f "$work/pids" ] || return 0
	mapfile -t lines < <(tac "$work/pids")
	for line in "${lines[@]}"; do
		read -r name pid sig <<<"$line"
		stop_pid "$name" "$pid" "$sig"
	done
	rm -rf "$work"
}

on_exit() {
	local status=$?
	trap - EXIT INT TERM
	[ -n "${progress_pid:-}" ] && kill "$progress_pid" 2>/dev/null
	if $keep && [ -d "$work" ]; then
		write_stop_script
		echo "demo: the services keep running in $work; stop them with: bash $work/stop.sh"
	else
		stop_all
	fi
	exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

record() {
	echo "$1 $2 $3" >>"$work/pids"
}

write_stop_script() {
	{
		echo "#!/usr/bin/env bash"
		echo "# Stops the services of the demo started in $work and removes the folder."
		tac "$work/pids" | while read -r name pid sig; do
			echo "kill -s $sig $pid 2>/dev/null && echo 'stopping $name (pid $pid)'"
			echo "while kill -0 $pid 2>/dev/null; do sleep 0.1; done"
		done
		echo "rm -rf '$work'"
	} >"$work/stop.sh"
}

# Prints a TCP and UDP port on 127.0.0.1 that nothing uses at the moment.
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

# Waits up to 30 s for "$@" to succeed while PID lives.
wait_for() {
	local name=$1 pid=$2 log=$3 deadline=$((SECONDS + 30))
	shift 3
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "demo: $name did not start; last lines of $log:" >&2
			tail -n 20 "$log" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
}

# ---- Plan: templates, domains, variables and expected records -----------------

phase "plan"
# A template is usable when every record is of type A, AAAA, CNAME, MX or TXT
# with a numeric TTL, no field uses the built-in variables (fqdn, domain, host),
# and every variable appears in one kind of place only, so that one generated
# value fits all its uses. The candidates are then applied once at the sandbox
# (see "probe" below), and only those whose zone comes out as computed here
# are kept.
jq -s --arg provider "$template_provider" '
	def vars: [scan("%([A-Za-z0-9_-]+)%") | .[0]];
	def kind($r; $field):
		if $field == "host" then "label"
		elif $r.type == "A" and ($r.pointsTo | test("^%[^%]+%$")) then "ipv4"
		elif $r.type == "AAAA" and ($r.pointsTo | test("^%[^%]+%$")) then "ipv6"
		elif $r.type == "TXT" then "text"
		else "name" end;
	def uses: [.records[] as $r | ("host", "pointsTo", "data") as $f
		| ($r[$f] // empty) | strings | vars[] | {var: ., kind: kind($r; $f)}];
	[.[] | select(type == "object" and (.records | type) == "array" and (.records | length) > 0)
	 | select(all(.records[]; (.type | IN("A", "AAAA", "CNAME", "MX", "TXT"))
		and ((.ttl // 3600) | type) == "number"
		and (.host | type) == "string"))
	 | select(([uses[].var] | map(ascii_downcase) | any(IN("fqdn", "domain", "host"))) | not)
	 | select((uses | group_by(.var) | all(map(.kind) | unique | length == 1)))
	 | {providerId, serviceId, hostRequired: (.hostRequired // false),
		records: [.records[] | {type, host, value: (.pointsTo // .data), ttl: (.ttl // 3600),
			priority}], vars: (uses | unique_by(.var))}]
	| (if $provider != "" then $provider
	   else group_by(.providerId) | max_by(length) | .[0].providerId end) as $p
	| map(select(.providerId == $p)) | sort_by(.serviceId)' \
	"$templates_dir"/*.json >"$work/candidates.json" 2>"$work/jq.log" ||
	die "reading the templates in $templates_dir failed: $(head -c 300 "$work/jq.log")"
template_provider=$(jq -r '.[0].providerId // empty' "$work/candidates.json")
[ -n "$template_provider" ] || die "no usable template in $templates_dir"
echo "templates: $templates_dir"
echo "template provider: $template_provider, $(jq length "$work/candidates.json") candidate templates"

# The plan, one JSON object per line. Domain I goes to provider I mod 3 and
# template I mod T. Every tenth domain (I mod 10 = 3) gets a record seeded at
# the name of its template's first record, and its job keeps on_conflict=fail,
# so it ends as "conflict" and the zone keeps only the seeded record; I mod 10
# = 7 gets the same seed with on_conflict=force, so the template replaces it.
# shellcheck disable=SC2016
plan_jq='
	def value($kind; $i):
		if $kind == "ipv4" then "192.0.2.\($i % 250 + 1)"
		elif $kind == "ipv6" then "2001:db8::\($i % 65535 | tostring)"
		elif $kind == "label" then "v\($i)"
		elif $kind == "text" then "demo-token-\($i)"
		else "edge\($i).example.net" end;
	def subst($params): reduce ($params | to_entries[]) as $e (.; split("%\($e.key)%") | join($e.value));
	def join_name($rec; $host):
		($rec | ascii_downcase) as $r
		| if $host == "" then $r elif $r == "@" then $host else "\($r).\($host)" end;
	def seed_for($r; $name):
		if $r.type == "MX" then {type: "MX", name: $name, data: "old-mx.example.org", ttl: 300, priority: 5}
		elif $r.type == "TXT" then {type: "CNAME", name: $name, data: "old-edge.example.org", ttl: 300}
		else {type: "A", name: $name, data: "198.51.100.9", ttl: 300} end;
	def norm: {type, name: (.name | ascii_downcase), data, ttl} + (if .type == "MX" then {priority} else {} end);
	. as $templates
	| range(0; $n) as $i
	| $templates[$i % ($templates | length)] as $t
	| "cust\($i + 1 | tostring | ("00000" + .)[-5:]).test" as $zone
	| (if $t.hostRequired then "app" else "" end) as $host
	| (if $host == "" then $zone else "\($host).\($zone)" end) as $fqdn
	| ([$t.vars[] | {key: .var, value: value(.kind; $i + 1)}] | from_entries) as $params
	| [$t.records[] | {type, name: join_name(.host | subst($params); $host),
		data: (if .value == "@" then $fqdn else (.value | subst($params)) end), ttl, priority}
		| norm] as $records
	| (if $i % 10 == 3 then "fail" elif $i % 10 == 7 then "force" else null end) as $conflict
	| (if $conflict then [seed_for($t.records[0]; $records[0].name) | norm] else [] end) as $seed
	| {index: $i, zone: $zone, host: $host, fqdn: $fqdn,
	   provider: $providers[$i % ($providers | length)],
	   service_id: $t.serviceId, params: $params, state: "st-\($i + 1)-\($salt)",
	   on_conflict: ($conflict // "fail"), seed: $seed,
	   expected_status: (if $conflict == "fail" then "conflict" else "succeeded" end),
	   expected: (if $conflict == "fail" then $seed else $records end)}'

# Writes the plan for N domains from TEMPLATES (a JSON file) to OUT.
make_plan() {
	jq -c --argjson n "$1" --argjson providers "$(printf '%s\n' "${providers[@]}" | jq -R . | jq -s .)" \
		--arg salt "$RANDOM$RANDOM" "$plan_jq" "$2" >"$3"
}

# ---- Services ------------------------------------------------------------------

phase "services"
if [ "$(id -u)" -eq 0 ]; then
	as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
	mkdir -p "$work/pg"
	chown postgres "$work/pg"
else
	as_pg=()
	mkdir -p "$work/pg"
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -n 1)
[ -x "$pg_bin/initdb" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"

redis_port=$(free_port)
setsid redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
	--dir "$work" >"$work/redis.log" 2>&1 </dev/null &
record redis $! TERM
wait_for Redis $! "$work/redis.log" redis-cli -p "$redis_port" ping

"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U postgres -A trust -E UTF8 --locale=C \
	--no-sync >"$work/postgres.log" 2>&1 </dev/null || die "initdb failed; see $work/postgres.log"
pg_port=$(free_port)
setsid "${as_pg[@]}" "$pg_bin/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
	-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
	-c max_connections=100 >>"$work/postgres.log" 2>&1 </dev/null &
record postgres $! INT
wait_for PostgreSQL $! "$work/postgres.log" "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U postgres
conninfo="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
psql_q() {
	psql "$conninfo" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# Probe: apply each candidate template once at the sandbox, straight over
# HTTPS, and keep those that apply and give the computed records.
probe_count=$(jq length "$work/candidates.json")
make_plan "$probe_count" "$work/candidates.json" "$work/probe-plan.jsonl"
jq -c '.zone |= sub("^cust"; "probe") | .provider = "alpha" | .seed = [] | .on_conflict = "fail"
	| .expected_status = "succeeded"' "$work/probe-plan.jsonl" >"$work/probe.jsonl"

secret_alpha=demo-alpha-$RANDOM$RANDOM
secret_beta=demo-beta-$RANDOM$RANDOM
secret_gamma=demo-gamma-$RANDOM$RANDOM

# Writes the sandbox config: the three providers, each with its zones
# (customer zones of PLAN, probe zones at alpha), empty.
write_sandbox_config() {
	local plan=$1
	jq -n --slurpfile plan "$plan" --slurpfile probe "$work/probe.jsonl" \
		--arg tpl "$templates_dir" --arg client "$template_provider" --arg redirect "$redirect_uri" \
		--arg sa "$secret_alpha" --arg sb "$secret_beta" --arg sg "$secret_gamma" '
		def zones($p): [$plan[] | select(.provider == $p) | {key: .zone, value: []}]
			+ (if $p == "alpha" then [$probe[] | {key: .zone, value: []}] else [] end) | from_entries;
		def clients($s): [{client_id: $client, client_secret: $s, redirect_uris: [$redirect]}];
		{auto_approve: true, providers: [
		 {id: "alpha.sandbox.test", name: "Alpha DNS", host: "api.alpha.sandbox.test",
		  templates_dir: $tpl, clients: clients($sa), zones: zones("alpha"),
		  access_token_lifetime: 3600, rotate_refresh_tokens: false,
		  quirks: {service_id_in_path: true, refresh_credentials_in_query: true}},
		 {id: "beta.sandbox.test", name: "Beta Domains", host: "api.beta.sandbox.test",
		  templates_dir: $tpl, clients: clients($sb), zones: zones("beta"),
		  access_token_lifetime: 15, rotate_refresh_tokens: true},
		 {id: "gamma.sandbox.test", name: "Gamma Hosting", host: "api.gamma.sandbox.test",
		  templates_dir: $tpl, clients: clients($sg), zones: zones("gamma"),
		  access_token_lifetime: 3600, rotate_refresh_tokens: true,
		  faults: {errors: "429:0.1", retry_after: 1, endpoints: "apply"}}]}' >"$work/dcsandbox.json"
}

# The customer plan needs the probed template list, but the sandbox must host
# every zone from the start; so it starts with the plan built from all
# candidates, whose zone names do not depend on the templates.
make_plan "$domains" "$work/candidates.json" "$work/plan.jsonl"
write_sandbox_config "$work/plan.jsonl"

sandbox_port=$(free_port)
dns_port=$(free_port)
setsid "$dcsandbox" --config "$work/dcsandbox.json" --state-dir "$work/sandbox" --port "$sandbox_port" \
	--auto-approve --quiet --threads 4 --dnsmasq-port "$dns_port" \
	>"$work/sandbox.out" 2>"$work/sandbox.log" </dev/null &
record dcsandbox $! TERM
wait_for dcsandbox $! "$work/sandbox.log" grep -qx ready "$work/sandbox.out"
ca=$work/sandbox/ca.pem
admin=https://127.0.0.1:$sandbox_port/admin
curl_sb=(curl -sS --no-progress-meter --cacert "$ca" --max-time 30)
for p in "${providers[@]}"; do
	curl_sb+=(--resolve "api.$p.sandbox.test:$sandbox_port:127.0.0.1")
done
echo "Redis 127.0.0.1:$redis_port, PostgreSQL 127.0.0.1:$pg_port, dcsandbox https://127.0.0.1:$sandbox_port," \
	"dnsmasq 127.0.0.1:$dns_port; folder $work"

# Prints the value of query parameter NAME in URL (undecoded).
query_value() {
	sed -n "s/.*[?&]$2=\([^&#]*\).*/\1/p" <<<"$1"
}

# Fetches zone ZONE of sandbox provider P (alpha, ...) as records in the plan's form.
zone_records() {
	"${curl_sb[@]}" "$admin/providers/$1.sandbox.test/zones/$2" |
		jq -c '[.records[] | {type, name: (.name | ascii_downcase), data, ttl}
			+ (if .type == "MX" then {priority} else {} end)] | sort_by(.type, .name, .data)'
}

phase "probe: apply each candidate template once at the sandbox"
base_alpha=https://api.alpha.sandbox.test:$sandbox_port
: >"$work/usable.txt"
while read -r row; do
	service=$(jq -r .service_id <<<"$row")
	zone=$(jq -r .zone <<<"$row")
	host=$(jq -r .host <<<"$row")
	consent=$("${curl_sb[@]}" -o /dev/null -w '%{redirect_url}' -G \
		"$base_alpha/consent/v2/domainTemplates/providers/$template_provider/services/$service" \
		--data-urlencode "domain=$zone" --data-urlencode "host=$host" \
		--data-urlencode "client_id=$template_provider" --data-urlencode "redirect_uri=$redirect_uri" \
		--data-urlencode "scope=$service" --data-urlencode "state=probe" --data-urlencode "response_type=code")
	code=$(query_value "$consent" code)
	[ -n "$code" ] || continue
	token=$("${curl_sb[@]}" -X POST "$base_alpha/v2/oauth/access_token" \
		--data-urlencode grant_type=authorization_code --data-urlencode "code=$code" \
		--data-urlencode "redirect_uri=$redirect_uri" --data-urlencode "client_id=$template_provider" \
		--data-urlencode "client_secret=$secret_alpha" | jq -r '.access_token // empty')
	[ -n "$token" ] || continue
	args=(--data-urlencode "domain=$zone" --data-urlencode "host=$host")
	while IFS=$'\t' read -r k v; do
		args+=(--data-urlencode "$k=$v")
	done < <(jq -r '.params | to_entries[] | [.key, .value] | @tsv' <<<"$row")
	status=$("${curl_sb[@]}" -o /dev/null -w '%{http_code}' -X POST -G -H "Authorization: Bearer $token" \
		"$base_alpha/v2/domainTemplates/providers/$template_provider/services/$service/apply" "${args[@]}")
	[ "$status" = 200 ] || continue
	if [ "$(zone_records alpha "$zone")" = "$(jq -c '.expected | sort_by(.type, .name, .data)' <<<"$row")" ]; then
		echo "$service" >>"$work/usable.txt"
	fi
done <"$work/probe.jsonl"
jq --rawfile usable "$work/usable.txt" '($usable | split("\n") | map(select(. != ""))) as $u
	| map(select(.serviceId as $s | $u | index($s)))' "$work/candidates.json" >"$work/templates.json"
template_count=$(jq length "$work/templates.json")
[ "$template_count" -gt 0 ] || die "none of the candidate templates of $template_provider applied as computed"
echo "templates used: $template_count of $(jq length "$work/candidates.json") candidates of $template_provider:" \
	"$(jq -r 'map(.serviceId) | join(", ")' "$work/templates.json")"
make_plan "$domains" "$work/templates.json" "$work/plan.jsonl"
# Zero the counters so that the summary counts the demo's calls only.
"${curl_sb[@]}" -f -o /dev/null -X POST "$admin/reset" || die "resetting the sandbox counters failed"

# ---- dcworker and dcctl ---------------------------------------------------------

phase "schema and worker"
export DCWORKER_TOKEN_KEYS="demo:$(head -c 32 /dev/urandom | base64)"
export DEMO_ALPHA_SECRET=$secret_alpha DEMO_BETA_SECRET=$secret_beta DEMO_GAMMA_SECRET=$secret_gamma
cat >"$work/dcworker.ini" <<INI
; Written by scripts/demo.sh; see config/dcworker.ini.example for every key.
[redis]
host = 127.0.0.1
port = $redis_port

[postgres]
conninfo = $conninfo

[worker]
template_provider_id = $template_provider
in_flight = 256
visibility_timeout_s = 60
max_attempts = 8
backoff_base_ms = 200
backoff_cap_ms = 3000
refresh_skew_s = 10

[log]
level = info

[dns]
servers = 127.0.0.1:$dns_port
timeout_ms = 2000

[guard]
allow_networks = 127.0.0.1/32
allow_ports = $sandbox_port
ca_file = $ca

[provider.alpha]
provider_id = alpha.sandbox.test
url_api = https://api.alpha.sandbox.test:$sandbox_port
client_secret_env = DEMO_ALPHA_SECRET
token_placement = query
service_id_in_path = true
rate = 300
burst = 60
max_concurrency = 32

[provider.beta]
provider_id = beta.sandbox.test
url_api = https://api.beta.sandbox.test:$sandbox_port
client_secret_env = DEMO_BETA_SECRET
rate = 300
burst = 60
max_concurrency = 32

[provider.gamma]
provider_id = gamma.sandbox.test
url_api = https://api.gamma.sandbox.test:$sandbox_port
client_secret_env = DEMO_GAMMA_SECRET
rate = 200
burst = 40
max_concurrency = 16
INI
export DCCTL_CONFIG=$work/dcworker.ini
"$dcctl" migrate
setsid "$dcworker" --config "$work/dcworker.ini" --processes "$worker_processes" \
	>"$work/dcworker.log" 2>&1 </dev/null &
worker_pid=$!
record dcworker "$worker_pid" TERM
sleep 0.5
kill -0 "$worker_pid" 2>/dev/null || die "dcworker exited at start; see $work/dcworker.log: $(tail -n 3 "$work/dcworker.log")"
echo "dcworker: $worker_processes processes (supervisor pid $worker_pid), log $work/dcworker.log"

# Runs dcctl enqueue --bulk FILE --wait with a plain progress line every 2 s.
bulk_wait() {
	local file=$1 timeout=$2
	shift 2
	"$dcctl" enqueue --bulk "$file" --strict --wait --timeout "$timeout" --progress-interval 2 "$@"
}

# Counts jobs whose id starts with PREFIX by state, as "state count" lines.
states_of() {
	psql_q -c "SELECT state, count(*) FROM dc_jobs WHERE id LIKE '$1%' GROUP BY 1 ORDER BY 1" -F ' '
}

# ---- Discovery and consent ------------------------------------------------------

phase "discovery: $domains discover jobs"
jq -c --arg r "$redirect_uri" '{id: "discover-\(.zone)", type: "discover", domain: .fqdn,
	service_ids: [.service_id], redirect_uri: $r, state}' "$work/plan.jsonl" >"$work/discover.jsonl"
bulk_wait "$work/discover.jsonl" 600 >"$work/discover.summary" ||
	die "discovery did not finish: $(cat "$work/discover.summary")"
psql_q -c "SELECT substring(id from 10), result->'discovery'->>'dns_provider',
		result->'discovery'->>'consent_url' FROM dc_jobs WHERE id LIKE 'discover-%'" -F $'\t' \
	>"$work/discovered.tsv"
bad=$(jq -r '[.zone, .provider] | @tsv' "$work/plan.jsonl" | sort |
	join -t $'\t' -a 1 - <(cut -f1,2 "$work/discovered.tsv" | sort) | awk -F'\t' '$2 != $3' | wc -l)
[ "$bad" -eq 0 ] || die "$bad domains were not discovered at their DNS provider; see $work/discovered.tsv"
echo "discovered $domains domains: $(cut -f2 "$work/discovered.tsv" | sort | uniq -c | awk '{printf "%s %s  ", $2, $1}')"

phase "consent: auto-approved at the sandbox, state checked"
awk -F'\t' '{printf "url = \"%s\"\n", $3}' "$work/discovered.tsv" >"$work/consent.curl"
"${curl_sb[@]}" --parallel --parallel-max 16 -K "$work/consent.curl" -o /dev/null \
	-w '%{http_code}\t%{url_effective}\t%{redirect_url}\n' >"$work/consent.out"
jq -r '[.state, .zone, .fqdn, .provider] | @tsv' "$work/plan.jsonl" | sort >"$work/states.tsv"
# Each line becomes "state<TAB>code"; a line without a redirect or a code
# becomes "-<TAB>the status and URL" and stops the demo.
awk -F'\t' '
	function param(url, name) {
		if (match(url, "[?&]" name "=[^&#]*"))
			return substr(url, RSTART + length(name) + 2, RLENGTH - length(name) - 2)
		return ""
	}
	{
		code = param($3, "code")
		if ($1 != "302" || code == "") { print "-\t" $1 " " $2 " -> " $3; next }
		print param($3, "state") "\t" code
	}' "$work/consent.out" | sort >"$work/codes.tsv"
if grep -q '^-' "$work/codes.tsv"; then
	die "consent gave no code: $(grep '^-' "$work/codes.tsv" | head -n 1 | cut -f2)"
fi
matched=$(join -t $'\t' "$work/states.tsv" "$work/codes.tsv" | wc -l)
[ "$matched" -eq "$domains" ] || die "only $matched of $domains consent redirects carried a known state"
echo "consent: $domains codes, every state matched its domain"

phase "authorization: $domains exchange_code jobs"
join -t $'\t' "$work/states.tsv" "$work/codes.tsv" |
	jq -R -c --arg r "$redirect_uri" 'split("\t") | {id: "exchange-\(.[1])", type: "exchange_code",
		dns_provider: .[3], code: .[4], redirect_uri: $r, domain: .[2]}' >"$work/exchange.jsonl"
bulk_wait "$work/exchange.jsonl" 600 >"$work/exchange.summary" ||
	die "code exchange did not finish: $(cat "$work/exchange.summary")"
rm -f "$work/exchange.jsonl" "$work/codes.tsv" "$work/consent.out"
psql_q -c "SELECT substring(id from 10), result->>'authorization_id' FROM dc_jobs
		WHERE id LIKE 'exchange-%' AND state = 'succeeded'" -F $'\t' | sort >"$work/authorizations.tsv"
[ "$(wc -l <"$work/authorizations.tsv")" -eq "$domains" ] ||
	die "only $(wc -l <"$work/authorizations.tsv") of $domains code exchanges succeeded: $(states_of exchange-)"
echo "authorizations: $domains stored in dc_authorizations"

# ---- Conflicts, faults and the bulk apply ----------------------------------------

phase "seeding conflicts and enabling faults"
# One curl run for every seed: "next" starts a new request, which resets every
# option, so each request names the CA again.
jq -r -s --arg admin "$admin" --arg ca "$ca" 'map(select(.seed | length > 0)
	| "url = \"\($admin)/providers/\(.provider).sandbox.test/zones/\(.zone)\"\nrequest = \"POST\"\n"
	+ "cacert = \"\($ca)\"\nsilent\nshow-error\noutput = \"/dev/null\"\nwrite-out = \"%{http_code}\\\\n\"\n"
	+ "header = \"Content-Type: application/json\"\ndata = \(.seed | tojson | tojson)") | join("\nnext\n")' \
	"$work/plan.jsonl" >"$work/seed.curl"
seeded=$(grep -c '^url' "$work/seed.curl" || true)
if [ "$seeded" -gt 0 ]; then
	failed=$(curl --max-time 60 -K "$work/seed.curl" | grep -vc '^200$' || true)
	[ "$failed" -eq 0 ] || die "$failed conflict seeds were rejected by the sandbox"
fi
echo "seeded a conflicting record in $seeded zones:" \
	"$(jq -s 'map(select(.seed != [] and .on_conflict == "fail")) | length' "$work/plan.jsonl") with on_conflict=fail," \
	"$(jq -s 'map(select(.on_conflict == "force")) | length' "$work/plan.jsonl") with on_conflict=force"
set_faults() {
	"${curl_sb[@]}" -f -o /dev/null -X PUT -H 'Content-Type: application/json' \
		--data "$2" "$admin/providers/$1.sandbox.test/faults" || die "the sandbox rejected faults $2 for $1"
}
set_faults alpha '{"errors":"500:0.05","endpoints":"apply"}'
set_faults beta '{"errors":"500:0.05","endpoints":"apply"}'
set_faults gamma '{"errors":"429:0.1,500:0.05","retry_after":1,"endpoints":"apply"}'
echo "faults: 5% of applies answer 500 at every provider; gamma also answers 10% with 429 and Retry-After: 1"

phase "bulk apply: $domains jobs, $worker_processes worker processes"
jq -r '[.zone, .provider, .service_id, .host, .on_conflict, (.params | tojson)] | @tsv' "$work/plan.jsonl" |
	sort | join -t $'\t' - "$work/authorizations.tsv" |
	jq -R -c 'split("\t") | {id: "apply-\(.[0])", type: "apply", authorization_id: .[6],
		service_id: .[2], on_conflict: .[4], params: (.[5] | fromjson)}
		+ (if .[3] != "" then {host: .[3]} else {} end)' >"$work/apply.jsonl"
[ "$(wc -l <"$work/apply.jsonl")" -eq "$domains" ] || die "could not build one apply job per domain"
echo "bulk file: $work/apply.jsonl ($(head -n 1 "$work/apply.jsonl" | head -c 160)...)"

# Token refreshes: alpha's tokens expire now, so its first applies get 401 and
# refresh with the credentials in the query; beta's tokens live 15 s, so the
# worker refreshes them before use (rotating refresh tokens); gamma's expire
# when 40% of the jobs are done (see the loop below).
expire_tokens() {
	"${curl_sb[@]}" -f -o /dev/null -X POST "$admin/providers/$1.sandbox.test/expire-tokens" ||
		die "expiring the access tokens of $1 failed"
}
expire_tokens alpha
echo "expired every access token at alpha"

apply_started_ms=$(($(date +%s%N) / 1000000))
bulk_wait "$work/apply.jsonl" 1200 --failed-out "$work/not-succeeded.jsonl" \
	>"$work/apply.summary" 2>"$work/apply.progress" &
dcctl_pid=$!

# Progress from PostgreSQL every second; at 40% every provider's access
# tokens are expired at the sandbox, so the next calls get 401 and refresh.
expired=false
last_line=""
while true; do
	done_count=$(psql_q -c "SELECT count(*) FROM dc_jobs WHERE id LIKE 'apply-%'
		AND state NOT IN ('queued', 'running')")
	elapsed_ms=$(($(date +%s%N) / 1000000 - apply_started_ms))
	rate=$(awk -v d="$done_count" -v t="$elapsed_ms" 'BEGIN { printf "%.0f", (t > 0 ? d * 1000 / t : 0) }')
	line=$(printf 'apply: %d/%d done (%d%%), %s jobs/s, %ds' "$done_count" "$domains" \
		$((done_count * 100 / domains)) "$rate" $((elapsed_ms / 1000)))
	if [ -t 1 ]; then printf '\r%s ' "$line"; elif [ $((elapsed_ms / 1000 % 3)) -eq 0 ] && [ "$line" != "$last_line" ]; then
		echo "$line"
	fi
	last_line=$line
	if ! $expired && [ $((done_count * 10)) -ge $((domains * 4)) ]; then
		expire_tokens gamma
		expired=true
		[ -t 1 ] && echo
		echo "expired every access token at gamma at $done_count/$domains done"
	fi
	if ! kill -0 "$dcctl_pid" 2>/dev/null; then
		break
	fi
	sleep 1
done
[ -t 1 ] && echo
dcctl_status=0
wait "$dcctl_pid" || dcctl_status=$?
echo "$line"
apply_ms=$(($(date +%s%N) / 1000000 - apply_started_ms))
tail -n 1 "$work/apply.summary"
case "$dcctl_status" in
0 | 5) ;; # 5: some results are not "succeeded", which the conflicts make expected
*) die "dcctl enqueue --bulk --wait ended with status $dcctl_status: $(tail -n 3 "$work/apply.progress")" ;;
esac

# ---- Summary ---------------------------------------------------------------------

phase "summary"
# Enqueue times come from the stream entry ids that dcctl stored in the
# {dc}:enqueued:<id> markers; the finish times from dc_jobs.finished_at.
jq -r '"GET {dc}:enqueued:\(.id)"' "$work/apply.jsonl" | redis-cli -p "$redis_port" >"$work/entries.txt"
jq -r .id "$work/apply.jsonl" | paste - "$work/entries.txt" |
	awk -F'\t' '{ split($2, a, "-"); print $1 "\t" a[1] }' >"$work/enqueued.tsv"
psql_q -F $'\t' <<SQL
CREATE TEMP TABLE enqueued (id text PRIMARY KEY, ms bigint);
\copy enqueued FROM '$work/enqueued.tsv'
\pset format aligned
\pset tuples_only off
\pset footer off
\echo 'apply jobs by DNS provider and status:'
SELECT a.dns_provider AS provider,
	count(*) FILTER (WHERE j.state = 'succeeded') AS succeeded,
	count(*) FILTER (WHERE j.state = 'conflict') AS conflict,
	count(*) FILTER (WHERE j.state NOT IN ('succeeded', 'conflict', 'queued', 'running')) AS other,
	count(*) FILTER (WHERE j.state IN ('queued', 'running')) AS unfinished,
	sum(j.attempts) AS attempts
FROM dc_jobs j JOIN dc_authorizations a ON a.id::text = j.payload->>'authorization_id'
WHERE j.id LIKE 'apply-%' GROUP BY ROLLUP (a.dns_provider) ORDER BY a.dns_provider NULLS LAST;
\echo 'enqueue-to-result latency and throughput:'
SELECT count(*) AS jobs,
	round(count(*) / nullif(extract(epoch FROM max(j.finished_at)) - min(e.ms) / 1000.0, 0), 1) AS jobs_per_s,
	round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at) * 1000 - e.ms)) AS p50_ms,
	round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at) * 1000 - e.ms)) AS p99_ms,
	round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.created_at) * 1000)) AS claim_to_result_p50_ms
FROM dc_jobs j JOIN enqueued e USING (id) WHERE j.finished_at IS NOT NULL;
\echo 'retries and refreshes (dc_job_events, dc_authorizations):'
SELECT (SELECT count(*) FROM dc_job_events WHERE job_id LIKE 'apply-%' AND event = 'retried') AS retried,
	(SELECT count(*) FROM dc_job_events WHERE job_id LIKE 'apply-%' AND event = 'rescheduled') AS rescheduled,
	(SELECT coalesce(sum(version - 1), 0) FROM dc_authorizations) AS token_refreshes,
	(SELECT count(*) FROM dc_authorizations WHERE status <> 'active') AS not_active;
SQL
"${curl_sb[@]}" "$admin/counters" >"$work/counters.json"
echo "sandbox calls per provider and endpoint (status:count):"
jq -r '.requests | to_entries[] | select(.key != "-") | .key as $p | .value | to_entries[]
	| "  \($p | sub("\\.sandbox\\.test$"; "")) \(.key): \(.value | to_entries | map("\(.key):\(.value)") | join(" "))"' \
	"$work/counters.json"
printf 'apply phase: %d jobs in %.1f s\n' "$domains" "$(awk -v t="$apply_ms" 'BEGIN { print t / 1000 }')"

# ---- Checks ----------------------------------------------------------------------

phase "checks: one terminal result per job, every zone as expected"
problems=0
lost=$(psql_q -c "
	SELECT count(*) FROM (SELECT id FROM jsonb_array_elements_text('$(jq -s -c 'map(.id)' "$work/apply.jsonl")') AS e(id)) ids
	LEFT JOIN dc_jobs j USING (id)
	WHERE j.id IS NULL OR j.state NOT IN ('succeeded', 'conflict', 'failed', 'reauthorization_required', 'dead')
		OR (SELECT count(*) FROM dc_job_events v WHERE v.job_id = ids.id
			AND v.event IN ('succeeded', 'conflict', 'failed', 'reauthorization_required', 'dead')) <> 1")
if [ "$lost" -ne 0 ]; then
	echo "FAIL: $lost apply jobs have no terminal dc_jobs row or not exactly one terminal event"
	problems=$((problems + lost))
fi
missing_results=$(jq -r '"HGET {dc}:result:\(.id) status"' "$work/apply.jsonl" | redis-cli -p "$redis_port" |
	grep -cv -e '^succeeded$' -e '^conflict$' || true)
if [ "$missing_results" -ne 0 ]; then
	echo "FAIL: $missing_results apply jobs have no terminal {dc}:result hash in Redis"
	problems=$((problems + missing_results))
fi

psql_q -F $'\t' -c "SELECT substring(id from 7), state FROM dc_jobs WHERE id LIKE 'apply-%'" | sort >"$work/states-final.tsv"
mkdir -p "$work/zones"
jq -r --arg admin "$admin" --arg dir "$work/zones" \
	'"url = \"\($admin)/providers/\(.provider).sandbox.test/zones/\(.zone)\"\noutput = \"\($dir)/\(.zone).json\""' \
	"$work/plan.jsonl" >"$work/zones.curl"
"${curl_sb[@]}" -K "$work/zones.curl"
jq -c '{zone, records: [.records[] | {type, name: (.name | ascii_downcase), data, ttl}
	+ (if .type == "MX" then {priority} else {} end)] | sort_by(.type, .name, .data)}' "$work"/zones/*.json \
	>"$work/zones.jsonl"
jq -n -r --slurpfile plan "$work/plan.jsonl" --slurpfile zones "$work/zones.jsonl" \
	--rawfile states "$work/states-final.tsv" '
	($zones | map({key: .zone, value: .records}) | from_entries) as $actual
	| ($states | split("\n") | map(select(. != "") | split("\t") | {key: .[0], value: .[1]}) | from_entries) as $state
	| $plan[]
	| (.expected | sort_by(.type, .name, .data)) as $want
	| if $state[.zone] != .expected_status then
		"FAIL: \(.zone) (\(.provider), \(.service_id), on_conflict=\(.on_conflict)): status \($state[.zone] // "none"), expected \(.expected_status)"
	  elif $actual[.zone] != $want then
		"FAIL: \(.zone) (\(.provider), \(.service_id)): zone \($actual[.zone] | tojson) differs from the expected \($want | tojson)"
	  else empty end' >"$work/mismatches.txt"
mismatches=$(wc -l <"$work/mismatches.txt")
if [ "$mismatches" -ne 0 ]; then
	head -n 20 "$work/mismatches.txt"
	problems=$((problems + mismatches))
fi
if [ "$problems" -ne 0 ]; then
	echo "demo: FAILED: $problems problems (dcworker log: $work/dcworker.log)" >&2
	$keep || cp "$work/dcworker.log" "/tmp/dcdemo-failed-dcworker.log" 2>/dev/null || true
	exit 1
fi
echo "every one of the $domains apply jobs has exactly one terminal result; all $domains zones hold the expected records"
printf 'demo: passed in %d s\n' $((SECONDS - started))
