"""The clean path's Lua: a request's start and its clean end, one round trip each.

Only what a clean request does runs here: take an in-flight lease, count a request against the
minute, take a probe token, and at the end release the lease, count tokens and a success (or a
neutral end), merge the latency and time-to-first-token averages and record the provider's
quota. Everything that judges a deployment (ejections, expiries, probe verdicts, held failures)
answers ``-2`` here and runs in Python (`turnout.health`) in an optimistic transaction, so the
rules have one copy. The minute roll is the same three lines as `DeploymentState.roll`.

Every key a script touches shares its deployment group's hash tag, so the scripts run on Redis
Cluster. Lease expiry uses Redis' ``TIME`` (how long an instance has been silent is real time
on one clock); the record's times come from the caller, already on Redis' clock.
The records come back as the values of `SNAPSHOT_FIELDS` in order (HMGET), which the store
reads by position.
"""

from __future__ import annotations

from turnout.state.redis_records import SNAPSHOT_FIELDS

_ROLL = (
    "local F = {"
    + ", ".join(f"'{name}'" for name in SNAPSHOT_FIELDS)
    + """}
local function roll(r, wall)
  local m = math.floor(wall / 60)
  local cur = tonumber(redis.call('HGET', r, 'm') or '0')
  if m == cur then return end
  if m == cur + 1 then
    redis.call('HSET', r, 'ps', redis.call('HGET', r, 's') or 0,
      'pf', redis.call('HGET', r, 'f') or 0)
  else
    redis.call('HSET', r, 'ps', 0, 'pf', 0)
  end
  redis.call('HSET', r, 'm', m, 's', 0, 'f', 0, 'ru', 0, 'tu', 0, 'cf', 0)
end
local t = redis.call('TIME')
local rnow = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""
)

#: KEYS: the group's records, then their lease sets (same order), then the group's turn
#: counter. ARGV: the chosen position (1-based; 0: read only), now and wall (Redis time), the
#: probe bound, the lease's member, lease ttl, record ttl, the rpm limit and the
#: parallel-request limit (0: none), then, when the strategy takes turns (round robin), each
#: candidate's position, probe bound, rpm and parallel limit: the turn counter, shared by the
#: fleet, picks among them and overrides the chosen position and its limits. Answers:
#: admission (1 normal, 2 probe, 0 refused, -1 none, -2 the rules must run first), Redis'
#: TIME, the position the admission is for, then each record's fields and lease count.
BEGIN = (
    _ROLL
    + """
local n = math.floor(#KEYS / 2)
local i = tonumber(ARGV[1])
local now, wall = tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_ttl, record_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local adm = -1
local probes, rpm, parallel = tonumber(ARGV[4]), tonumber(ARGV[8]), tonumber(ARGV[9])
if i > 0 and #ARGV > 9 then
  local turn = redis.call('INCR', KEYS[2 * n + 1])
  redis.call('EXPIRE', KEYS[2 * n + 1], record_ttl)
  local k = 10 + 4 * ((turn - 1) % ((#ARGV - 9) / 4))
  i, probes = tonumber(ARGV[k]), tonumber(ARGV[k + 1])
  rpm, parallel = tonumber(ARGV[k + 2]), tonumber(ARGV[k + 3])
end
if i > 0 then
  local r, l = KEYS[i], KEYS[n + i]
  local ph = tonumber(redis.call('HGET', r, 'ph') or '0')
  local full = false
  if rpm > 0 and tonumber(redis.call('HGET', r, 'm') or '0') == math.floor(wall / 60)
      and tonumber(redis.call('HGET', r, 'ru') or '0') >= rpm then full = true end
  if parallel > 0 then
    redis.call('ZREMRANGEBYSCORE', l, '-inf', rnow)
    if redis.call('ZCARD', l) >= parallel then full = true end
  end
  if full then
    adm = 0
  elseif ph == 1 then
    if tonumber(redis.call('HGET', r, 'cu') or '0') > now then adm = 0 else adm = -2 end
  elseif ph == 2 then
    local pr = tonumber(redis.call('HGET', r, 'pr') or '0')
    if pr > 0 and tonumber(redis.call('HGET', r, 'pe') or '0') < rnow then pr = 0 end
    if pr >= probes then adm = 0 else
      redis.call('HSET', r, 'pr', pr + 1, 'pe', rnow + lease_ttl)
      adm = 2
    end
  else
    adm = 1
  end
  if adm > 0 then
    roll(r, wall)
    redis.call('HINCRBY', r, 'ru', 1)
    redis.call('EXPIRE', r, record_ttl)
    redis.call('ZADD', l, rnow + lease_ttl, ARGV[5])
    redis.call('EXPIRE', l, math.ceil(lease_ttl * 2))
  end
end
local out = {adm, tostring(rnow), i}
for j = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[n + j], '-inf', rnow)
  out[#out + 1] = redis.call('HMGET', KEYS[j], unpack(F))
  out[#out + 1] = redis.call('ZCARD', KEYS[n + j])
end
return out
"""
)

#: KEYS: the record, its lease set. ARGV: lease member ('' none), now, wall, kind (1 success,
#: 2 neutral), duration, ttft ('' none), tokens, EWMA alpha, record ttl, then the provider's
#: quota (remaining and limit of requests and tokens, each '' when absent) and its expiry ('':
#: no hints). Answers -2 (the rules must run: held failures on the record) or
#: {1, TIME, fields, lease count}.
FINISH = (
    _ROLL
    + """
local r, l = KEYS[1], KEYS[2]
local kind = tonumber(ARGV[4])
if kind == 1 and redis.call('HEXISTS', r, 'x') == 1 then return {-2} end
if ARGV[1] ~= '' then redis.call('ZREM', l, ARGV[1]) end
local now, wall = tonumber(ARGV[2]), tonumber(ARGV[3])
roll(r, wall)
local tokens = tonumber(ARGV[7])
if tokens > 0 then redis.call('HINCRBY', r, 'tu', tokens) end
if kind == 1 then
  local alpha = tonumber(ARGV[8])
  local function ewma(field, sample)
    local cur = redis.call('HGET', r, field)
    if cur then sample = tonumber(cur) + alpha * (sample - tonumber(cur)) end
    redis.call('HSET', r, field, sample)
  end
  redis.call('HINCRBY', r, 's', 1)
  redis.call('HINCRBY', r, 'sv', 1)
  redis.call('HSET', r, 'cf', 0, 'st', 0, 'ls', now)
  ewma('lat', tonumber(ARGV[5]))
  if ARGV[6] ~= '' then ewma('tt', tonumber(ARGV[6])) end
end
if ARGV[14] ~= '' then
  local names = {'rr', 'lr', 'rt', 'lt'}
  for k = 1, 4 do
    if ARGV[9 + k] == '' then redis.call('HDEL', r, names[k])
    else redis.call('HSET', r, names[k], ARGV[9 + k]) end
  end
  redis.call('HSET', r, 'he', ARGV[14])
end
redis.call('EXPIRE', r, tonumber(ARGV[9]))
redis.call('ZREMRANGEBYSCORE', l, '-inf', rnow)
return {1, tostring(rnow), redis.call('HMGET', r, unpack(F)), redis.call('ZCARD', l)}
"""
)

#: KEYS: lease sets. ARGV: new expiry (seconds from now), then for each key its member.
#: Renews this instance's leases (only those still there).
RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for j = 1, #KEYS do
  redis.call('ZADD', KEYS[j], 'XX', expiry, ARGV[j + 1])
  redis.call('EXPIRE', KEYS[j], math.ceil(tonumber(ARGV[1]) * 2))
end
return tostring(expiry)
"""

#: KEYS: records, then their lease sets (same order). Answers Redis' TIME, then each record's
#: fields and its count of unexpired leases. Reads only: what a transaction applies the rules
#: to, and the records of a group the cache lacks.
READ = """
local t = redis.call('TIME')
local rnow = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS / 2
local out = {tostring(rnow)}
for j = 1, n do
  out[#out + 1] = redis.call('HGETALL', KEYS[j])
  out[#out + 1] = redis.call('ZCOUNT', KEYS[n + j], rnow, '+inf')
end
return out
"""

#: Check-and-set of records the rules were applied to. KEYS: the records, then (when ARGV[3] is
#: not '') the lease set to release ARGV[3] from. ARGV: the count of records, the record ttl,
#: the lease member, then per record: its number of fields as read, those fields and values,
#: its number of new fields, those fields and values. Answers 0, writing nothing, when any
#: record is not exactly as read (another instance wrote it meanwhile: read and apply again);
#: else replaces every record and answers 1. What WATCH/MULTI/EXEC does, in one round trip and
#: on one slot of a Cluster (where a transaction is of one slot anyway).
COMMIT = """
local n, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local at = 4
local writes = {}
for j = 1, n do
  local old = tonumber(ARGV[at])
  if redis.call('HLEN', KEYS[j]) ~= old then return 0 end
  for k = 0, old - 1 do
    if redis.call('HGET', KEYS[j], ARGV[at + 1 + 2 * k]) ~= ARGV[at + 2 + 2 * k] then
      return 0
    end
  end
  at = at + 1 + 2 * old
  local new = tonumber(ARGV[at])
  writes[j] = {at + 1, new}
  at = at + 1 + 2 * new
end
for j = 1, n do
  redis.call('DEL', KEYS[j])
  local first, new = writes[j][1], writes[j][2]
  if new > 0 then
    redis.call('HSET', KEYS[j], unpack(ARGV, first, first + 2 * new - 1))
    redis.call('EXPIRE', KEYS[j], ttl)
  end
end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[n + 1], ARGV[3]) end
return 1
"""
