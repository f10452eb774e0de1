#!/usr/bin/env python3
"""Enqueue one dcworker apply job with redis-py and wait for its result.

Usage: enqueue.py AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]
REDIS_URL selects the Redis that dcworker reads (default redis://127.0.0.1:6379).
Prints the result JSON and exits 0 once the job has a result, whatever its
status. It exits 1 when no result arrives within 60 s.
Needs redis-py 4.3 or later: on Debian, apt-get install python3-redis.
"""
import json
import os
import sys
import time
import uuid

import redis

TIMEOUT_S = 60

if len(sys.argv) < 3 or any("=" not in arg for arg in sys.argv[3:]):
    sys.exit(__doc__)
r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"), decode_responses=True)
job_id = f"connect-{uuid.uuid4()}"
job = {
    "id": job_id,
    "type": "apply",
    "authorization_id": sys.argv[1],
    "service_id": sys.argv[2],
    "params": dict(arg.split("=", 1) for arg in sys.argv[3:]),
    "on_conflict": "fail",
}

# Subscribe before enqueueing, then read the hash once, so that a result
# published in between is not missed. The first message is the
# confirmation of the subscription.
pubsub = r.pubsub()
pubsub.subscribe("dc:results")
pubsub.get_message(timeout=5)
r.xadd("{dc}:queue:interactive", {"job": json.dumps(job)})
print("enqueued", job_id, flush=True)

stored = r.hget(f"{{dc}}:result:{job_id}", "result")
if stored:
    print(stored)
    sys.exit(0)
deadline = time.monotonic() + TIMEOUT_S
while time.monotonic() < deadline:
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    if message and json.loads(message["data"]).get("id") == job_id:
        print(message["data"])
        sys.exit(0)
sys.exit(f"no result for {job_id} after {TIMEOUT_S} s; check it later with: dcctl job {job_id}")
