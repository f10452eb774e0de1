#!/usr/bin/env node
// Enqueues one dcworker apply job with ioredis and waits for its result.
// Usage: node enqueue.js AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]
// REDIS_URL selects the Redis that dcworker reads (default redis://127.0.0.1:6379).
// Needs ioredis 5: npm install ioredis
const crypto = require("crypto");
const Redis = require("ioredis");

const [authorizationId, serviceId, ...pairs] = process.argv.slice(2);
if (!serviceId) {
  console.error("usage: node enqueue.js AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]");
  process.exit(2);
}
const url = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const id = `connect-${crypto.randomUUID()}`;
const params = Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));
const job = { id, type: "apply", authorization_id: authorizationId, service_id: serviceId, params, on_conflict: "fail" };

async function main() {
  const redis = new Redis(url);
  const subscriber = new Redis(url); // a subscribed connection can run no other command

  // Subscribe before enqueueing, then read the hash once, so that a result
  // published in between is not missed.
  const done = new Promise((resolve) => {
    subscriber.on("message", (_channel, message) => {
      if (JSON.parse(message).id === id) resolve(message);
    });
  });
  await subscriber.subscribe("dc:results");
  await redis.xadd("{dc}:queue:interactive", "*", "job", JSON.stringify(job));
  console.log("enqueued", id);

  const stored = await redis.hget(`{dc}:result:${id}`, "result");
  console.log(stored || (await done));
  redis.disconnect();
  subscriber.disconnect();
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
