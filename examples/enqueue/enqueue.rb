#!/usr/bin/env ruby
# Enqueues one dcworker apply job with redis-rb and waits for its result.
# Usage: ruby enqueue.rb AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]
# REDIS_URL selects the Redis that dcworker reads (default redis://127.0.0.1:6379).
# Prints the result JSON and exits 0 once the job has a result, whatever its
# status. It exits 1 when no result arrives within 60 s.
# Needs redis-rb 4.6 or later: on Debian, apt-get install ruby-redis.
require "json"
require "redis"
require "securerandom"

$stdout.sync = true # show "enqueued ID" while the job runs
TIMEOUT_S = 60
USAGE = "usage: ruby enqueue.rb AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]"

abort USAGE if ARGV.length < 2 || ARGV[2..].any? { |pair| !pair.include?("=") }
url = ENV.fetch("REDIS_URL", "redis://127.0.0.1:6379")
redis = Redis.new(url: url)
subscriber = Redis.new(url: url) # a subscribed connection can run no other command
id = "connect-#{SecureRandom.uuid}"
job = {
  id: id,
  type: "apply",
  authorization_id: ARGV[0],
  service_id: ARGV[1],
  params: ARGV[2..].to_h { |pair| pair.split("=", 2) },
  on_conflict: "fail"
}

# Subscribe before enqueueing, then read the hash once, so that a result
# published in between is not missed. The read timeout ends a quiet wait and
# the deadline a wait among other jobs' results.
deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + TIMEOUT_S
timed_out = false
begin
  subscriber.subscribe_with_timeout(TIMEOUT_S, "dc:results") do |on|
    on.subscribe do
      redis.xadd("{dc}:queue:interactive", { job: JSON.generate(job) })
      puts "enqueued #{id}"
      stored = redis.hget("{dc}:result:#{id}", "result")
      if stored
        puts stored
        subscriber.unsubscribe
      end
    end
    on.message do |_channel, message|
      if JSON.parse(message)["id"] == id
        puts message
        subscriber.unsubscribe
      elsif Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        timed_out = true
        subscriber.unsubscribe
      end
    end
  end
rescue Redis::TimeoutError
  timed_out = true
end
if timed_out
  abort "no result for #{id} after #{TIMEOUT_S} s; check it later with: dcctl job #{id}"
end
