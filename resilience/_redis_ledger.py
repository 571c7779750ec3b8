"""Native buckets on Redis: the rules of ``_ledger.py`` in one Lua script, run once per
acquire for all of a limiter's buckets (atomic: Redis runs a script alone).

Time is the server's (``TIME``), so every process sharing the buckets counts on one
clock. Per bucket two keys, both under the limiter's ``{name}`` hash tag (one Redis
Cluster slot): a list of the rolling window's slots, oldest first, and a hash of each
slot's units and their total (a token bucket keeps its level, stamp and running counts in
the hash). Keys expire once nothing in them counts any more.
"""

from __future__ import annotations

from typing import Any

from otpy.resilience._bucket import Bucket
from otpy.resilience._native import Costs, Ledger, Took

__all__ = ["EPOCH", "RedisLedger"]

EPOCH = 1_600_000_000  # seconds; times are µs since then, well inside a double's integers

_SCRIPT = """
local EPOCH, SLOTS, SLACK = %(epoch)d, %(slots)d, 1e-9
local t = redis.call('TIME')
local now = (tonumber(t[1]) - EPOCH) * 1000000 + tonumber(t[2])
local op = ARGV[1]
local function int(x) return string.format('%%.0f', x) end

local function width_of(period) return math.max(1, math.floor(period / SLOTS)) end

local function log_level(list, hash, period)
  local floor = now - period
  local total = tonumber(redis.call('HGET', hash, 'total') or '0')
  local before = total
  while true do
    local first = redis.call('LINDEX', list, 0)
    if not first or tonumber(redis.call('HGET', hash, 't' .. first) or '0') > floor then
      break
    end
    redis.call('LPOP', list)
    total = total - tonumber(redis.call('HGET', hash, first) or '0')
    redis.call('HDEL', hash, first, 't' .. first)
  end
  if total ~= before then redis.call('HSET', hash, 'total', int(total)) end
  return total
end

local function log_wait(list, hash, limit, period, units)
  local excess = log_level(list, hash, period) + units - limit
  if excess <= 0 then return 0 end
  for _, slot in ipairs(redis.call('LRANGE', list, 0, -1)) do
    excess = excess - tonumber(redis.call('HGET', hash, slot) or '0')
    if excess <= 0 then
      return tonumber(redis.call('HGET', hash, 't' .. slot) or '0') + period - now
    end
  end
  return 1
end

local function log_add(list, hash, period, units)
  local width = width_of(period)
  local slot = int(math.floor(now / width))
  local last = redis.call('LINDEX', list, -1)
  local stamp = now
  if last and tonumber(last) >= tonumber(slot) then
    slot = last
    stamp = math.max(stamp, tonumber(redis.call('HGET', hash, 't' .. slot) or '0'))
  else
    redis.call('RPUSH', list, slot)
  end
  redis.call('HINCRBY', hash, slot, int(units))
  redis.call('HINCRBY', hash, 'total', int(units))
  redis.call('HSET', hash, 't' .. slot, int(stamp))
  local ttl = int(math.ceil((period + width) / 1000) + 1000)
  redis.call('PEXPIRE', list, ttl)
  redis.call('PEXPIRE', hash, ttl)
  return slot
end

local function tb_load(hash, limit, period)
  local v = redis.call('HMGET', hash, 'level', 'stamp', 'admitted', 'refunded')
  local s = {level = tonumber(v[1] or '0'), stamp = tonumber(v[2] or now),
             admitted = tonumber(v[3] or '0'), refunded = tonumber(v[4] or '0')}
  if now > s.stamp then
    s.level = math.max(0, s.level - (now - s.stamp) * limit / period)
    s.stamp = now
  end
  return s
end

local function tb_save(hash, s, limit, period)
  redis.call('HSET', hash, 'level', string.format('%%.17g', s.level), 'stamp', int(s.stamp),
             'admitted', int(s.admitted), 'refunded', int(s.refunded))
  redis.call('PEXPIRE', hash, int(math.ceil(s.level * period / limit / 1000) + 1000))
end

local function tb_wait(s, limit, period, units)
  local over = s.level + units - limit
  if over <= SLACK then return 0 end
  return math.max(1, math.ceil(over * period / limit))
end

local function wait_of(i, kind, limit, period, units)
  local list, hash = KEYS[2 * i - 1], KEYS[2 * i]
  if kind == 'w' then return log_wait(list, hash, limit, period, units) end
  return tb_wait(tb_load(hash, limit, period), limit, period, units)
end

local function bucket(i, base)
  return ARGV[base], tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]),
         tonumber(ARGV[base + 3])
end

if op == 'take' or op == 'wait' then
  local n, blocking, most = #KEYS / 2, 0, 0
  for i = 1, n do
    local wait = wait_of(i, bucket(i, 4 * i - 2))
    if wait > 0 and blocking == 0 then blocking = i end
    if wait > most then most = wait end
  end
  if op == 'wait' or blocking > 0 then return {0, int(now), blocking, int(most)} end
  local reply = {1, int(now)}
  for i = 1, n do
    local kind, limit, period, units = bucket(i, 4 * i - 2)
    local list, hash = KEYS[2 * i - 1], KEYS[2 * i]
    if kind == 'w' then
      reply[#reply + 1] = log_add(list, hash, period, units)
      reply[#reply + 1] = '0'
      reply[#reply + 1] = '0'
    else
      local s = tb_load(hash, limit, period)
      reply[#reply + 1] = int(s.admitted)
      reply[#reply + 1] = int(s.refunded)
      reply[#reply + 1] = string.format('%%.17g', s.admitted - s.level)
      s.level = s.level + units
      s.admitted = s.admitted + units
      tb_save(hash, s, limit, period)
    end
  end
  return reply
end

local kind, limit, period, units = bucket(1, 2)
local list, hash = KEYS[1], KEYS[2]
if op == 'level' then
  if kind == 'w' then return int(log_level(list, hash, period)) end
  return string.format('%%.17g', tb_load(hash, limit, period).level)
end
if op == 'charge' then
  if kind == 'w' then log_add(list, hash, period, units) return 0 end
  local s = tb_load(hash, limit, period)
  s.level = s.level + units
  s.admitted = s.admitted + units
  tb_save(hash, s, limit, period)
  return 0
end
-- refund: ARGV[6], ARGV[7], ARGV[8] = where; ARGV[9] = reserved
if kind == 'w' then
  log_level(list, hash, period)
  local held = tonumber(redis.call('HGET', hash, ARGV[6]) or '0')
  local given = math.min(units, held)
  if given > 0 then
    redis.call('HINCRBY', hash, ARGV[6], int(-given))
    redis.call('HINCRBY', hash, 'total', int(-given))
  end
  return given
end
local s = tb_load(hash, limit, period)
local reserved = tonumber(ARGV[9])
local start = math.max(tonumber(ARGV[6]) - (s.refunded - tonumber(ARGV[7])), tonumber(ARGV[8]))
local drained = s.admitted - s.level
local given = math.floor(math.max(0, math.min(units, reserved, start + reserved - drained,
                                              s.level)))
if given > 0 then
  s.level = s.level - given
  s.admitted = s.admitted - given
  s.refunded = s.refunded + given
  tb_save(hash, s, limit, period)
end
return given
"""


class RedisLedger(Ledger):
    """Native buckets in Redis, through ``connection`` (a redis-py client)."""

    shared = True

    def __init__(self, connection: Any) -> None:
        from otpy.resilience._ledger import SLOTS

        self.connection = connection
        self._script = connection.register_script(_SCRIPT % {"epoch": EPOCH, "slots": SLOTS})

    @staticmethod
    def _keys(bucket: Bucket) -> list[str]:
        return [bucket.native_key + ":log", bucket.native_key]

    @staticmethod
    def _args(bucket: Bucket, units: int) -> list[Any]:
        return ["w" if bucket.rolling else "t", bucket.amount, bucket.period_us, units]

    def _run(self, op: str, costs: Costs, *extra: Any) -> Any:
        keys: list[str] = []
        args: list[Any] = [op]
        for bucket, units in costs:
            keys += self._keys(bucket)
            args += self._args(bucket, units)
        return self._script(keys, [*args, *extra])

    def take(self, costs: Costs) -> Took:
        reply = self._run("take", costs)
        at = EPOCH + int(reply[1]) / 1e6
        if int(reply[0]) == 0:
            return Took(None, int(reply[2]) - 1, int(reply[3]) / 1e6, at)
        fields = reply[2:]
        wheres: list[Any] = []
        for i, (bucket, _) in enumerate(costs):
            slot, refunded, drained = fields[3 * i : 3 * i + 3]
            wheres.append(
                int(slot) if bucket.rolling else (int(slot), int(refunded), float(drained))
            )
        return Took(wheres, -1, 0.0, at)

    def wait(self, costs: Costs) -> float:
        return int(self._run("wait", costs)[3]) / 1e6

    def refund(self, bucket: Bucket, where: Any, reserved: int, units: int) -> int:
        spot = (where, 0, 0) if bucket.rolling else where
        return int(self._run("refund", [(bucket, units)], *spot, reserved))

    def charge(self, bucket: Bucket, units: int) -> None:
        self._run("charge", [(bucket, units)])

    def level(self, bucket: Bucket) -> float:
        return float(self._run("level", [(bucket, 0)]))

    def clear(self, bucket: Bucket) -> None:
        self.connection.delete(*self._keys(bucket))
