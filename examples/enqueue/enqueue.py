#!/usr/bin/env python3
"""Enqueue one dcworker apply job with redis-py and wait for its result.

Usage: enqueue.py AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]
REDIS_URL selects the Redis that dcworker reads (default redis://127.0.0.1:6379).
Needs redis-py 4 or later: pip install redis
"""
import json
import os
import sys
import uuid

import redis

if len(sys.argv) < 3:
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
# published in between is not missed.
pubsub = r.pubsub()
pubsub.subscribe("dc:results")
r.xadd("{dc}:queue:interactive", {"job": json.dumps(job)})
print("enqueued", job_id)

stored = r.hget(f"{{dc}}:result:{job_id}", "result")
if stored:
    print(stored)
    sys.exit(0)
for message in pubsub.listen():
    if message["type"] == "message" and json.loads(message["data"]).get("id") == job_id:
        print(message["data"])
        break
