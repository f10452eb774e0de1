#!/usr/bin/env bash
# Enqueues one apply job with redis-cli and prints its result when it arrives.
# Usage: redis-cli.sh AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]
# REDIS_HOST and REDIS_PORT select the Redis that dcworker reads (default 127.0.0.1:6379).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '3p' "$0" >&2; exit 2; }
host=${REDIS_HOST:-127.0.0.1}
port=${REDIS_PORT:-6379}
id="connect-$(date +%s)-$RANDOM"

# The job is JSON; jq builds it so that every value is escaped correctly.
params=$(printf '%s\n' "${@:3}" | jq -R 'select(. != "") | capture("^(?<key>[^=]+)=(?<value>.*)$")' | jq -s from_entries)
job=$(jq -n -c --arg id "$id" --arg auth "$1" --arg service "$2" --argjson params "$params" \
	'{id: $id, type: "apply", authorization_id: $auth, service_id: $service, params: $params, on_conflict: "fail"}')

redis-cli -h "$host" -p "$port" XADD '{dc}:queue:interactive' '*' job "$job" >/dev/null
echo "enqueued $id"

# Poll the result hash; the worker writes it before it publishes on dc:results.
for _ in $(seq 300); do
	status=$(redis-cli -h "$host" -p "$port" HGET "{dc}:result:$id" status)
	if [ -n "$status" ]; then
		redis-cli -h "$host" -p "$port" HGET "{dc}:result:$id" result
		exit 0
	fi
	sleep 0.2
done
echo "no result for $id after 60 s; check it later with: dcctl job $id" >&2
exit 1
