#!/usr/bin/env node
// Enqueues one dcworker apply job with node-redis and waits for its result.
// Usage: node enqueue.js AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]
// REDIS_URL selects the Redis that dcworker reads (default redis://127.0.0.1:6379).
// Prints the result JSON and exits 0 once the job has a result, whatever its
// status. It exits 1 when no result arrives within 60 s.
// Needs node-redis 4.5 or later: on Debian, apt-get install nodejs node-redis.
// A Node.js from outside Debian finds Debian's module with NODE_PATH=/usr/share/nodejs.
const crypto = require("crypto");
const { createClient } = require("redis");

const TIMEOUT_MS = 60000;
const USAGE = "usage: node enqueue.js AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]";

const [authorizationId, serviceId, ...pairs] = process.argv.slice(2);
if (!serviceId || pairs.some((p) => !p.includes("="))) {
  console.error(USAGE);
  process.exit(2);
}
const url = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const id = `connect-${crypto.randomUUID()}`;
const params = Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));
const job = { id, type: "apply", authorization_id: authorizationId, service_id: serviceId, params, on_conflict: "fail" };

async function main() {
  const redis = createClient({ url });
  redis.on("error", (err) => console.error("redis:", err.message));
  await redis.connect();
  const subscriber = redis.duplicate(); // a subscribed connection can run no other command
  subscriber.on("error", (err) => console.error("redis:", err.message));
  await subscriber.connect();

  // Subscribe before enqueueing, then read the hash once, so that a result
  // published in between is not missed. subscribe() resolves once Redis has
  // confirmed the subscription.
  let onMessage;
  const published = new Promise((resolve) => {
    onMessage = (message) => {
      if (JSON.parse(message).id === id) resolve(message);
    };
  });
  await subscriber.subscribe("dc:results", onMessage);
  await redis.xAdd("{dc}:queue:interactive", "*", { job: JSON.stringify(job) });
  console.log("enqueued", id);

  let timer;
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no result for ${id} after ${TIMEOUT_MS / 1000} s; ` +
                                              `check it later with: dcctl job ${id}`)), TIMEOUT_MS);
  });
  try {
    const stored = await redis.hGet(`{dc}:result:${id}`, "result");
    console.log(stored || (await Promise.race([published, timeout])));
  } finally {
    clearTimeout(timer);
    await subscriber.quit();
    await redis.quit();
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
