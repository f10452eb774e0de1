#!/usr/bin/env ruby
# Enqueues one dcworker apply job with redis-rb and waits for its result.
# Usage: ruby enqueue.rb AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]
# REDIS_URL selects the Redis that dcworker reads (default redis://127.0.0.1:6379).
# Needs redis-rb 4.6 or later: gem install redis
require "json"
require "redis"
require "securerandom"

abort "usage: ruby enqueue.rb AUTHORIZATION_ID SERVICE_ID [NAME=VALUE ...]" if ARGV.length < 2
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
# published in between is not missed.
subscriber.subscribe("dc:results") do |on|
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
    end
  end
end
