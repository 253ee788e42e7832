"""A token bucket per destination in Redis, shared by every worker and process.

``rate: 20/m`` is a bucket of 20 tokens that refills at 20 per 60 s, so up to
20 messages can go out at once after a quiet spell and then one every 3 s.
The whole read-refill-take step is one Lua script, so two workers can never
both take the last token. Time comes from Redis (``TIME``) unless the caller
passes ``now``, so hosts with skewed clocks still share one view of the
bucket, and tests can run an injected clock.
"""

from __future__ import annotations

import redis

from worker.core import keys

__all__ = ["take"]

# KEYS[1] bucket hash; ARGV: capacity, refill per second, now ('' = Redis TIME), ttl.
# Returns the seconds to wait as a string: "0" when a token was taken.
_TAKE = """
local capacity = tonumber(ARGV[1])
local per_sec = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * per_sec)
  ts = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / per_sec
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return tostring(wait)
"""


def take(
    client: redis.Redis, destination: str, rate: tuple[int, float], now: float | None = None
) -> float:
    """Take one token for ``destination``; return 0.0, or the seconds until one will be free."""
    count, per = rate
    script = client.register_script(_TAKE)
    wait = script(
        keys=[keys.bucket(destination)],
        args=[count, count / per, "" if now is None else repr(now), keys.BUCKET_TTL],
    )
    return float(wait)
