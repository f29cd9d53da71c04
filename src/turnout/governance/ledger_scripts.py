"""The Redis ledger's Lua: one script per operation, over every key the request touches.

Redis runs a script without interleaving any other command, so a script is the atomic step:
admission checks every budget and limit and then writes every hold, or writes none. All the
keys of one script share one hash tag (`turnout.governance.redis_ledger` picks it), so a script
runs on one Redis Cluster node.

Keys, in this order (the ledger builds them):

- ``KEYS[1]``: the ticket's record (``o`` while open, ``d`` once settled or released), so that a
  ticket is charged once however often its end is sent again;
- per budget, its hash (``s`` spent in the period, ``o`` held, ``f`` first use, ``ps``/``pe``
  the period's start and end in ms, both 0 without a period) and its sorted set of holds
  (member ``<ticket id>:<micro-dollars>``, score the hold's expiry in ms);
- per limit scope, its hash (``rw``/``rn`` the minute and its requests, ``tw``/``tn`` the
  minute and its tokens: a window per kind, so one kind's reset never skips another's) and its
  sorted set of parallel-request leases (member the ticket id, score its expiry).

Time is Redis' own (``TIME``), never a gateway's: instances whose clocks disagree still agree on
minutes, periods and expiries. Amounts are integers: counters change by ``HINCRBY`` only, and
Lua (whose numbers are doubles) compares amounts below 2**53, where doubles are exact; numbers
written are formatted with ``%d`` so no exponent form reaches Redis. Every key carries a TTL,
set when it is created and pushed out as it is used.
"""

from __future__ import annotations

_COMMON = r"""
local function fmt(n) return string.format('%d', n) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Days since 1970-01-01 to year and month (the proleptic Gregorian calendar, UTC).
local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

-- Unix ms of 00:00 UTC on the 1st of month `index` (year * 12 + month - 1).
local function month_start(index)
  local y, m = math.floor(index / 12), index % 12 + 1
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100)
    + math.floor((153 * mp + 2) / 5)
  return (era * 146097 + doe - 719468) * 86400000
end

local function bounds(now, first, seconds, months, anchor)
  if months > 0 then
    local y, m = civil(math.floor(now / 86400000))
    local index = y * 12 + m - 1
    index = index - index % months
    return month_start(index), month_start(index + months)
  end
  local length = seconds * 1000
  if anchor < 0 then anchor = first end
  local start = anchor + math.floor((now - anchor) / length) * length
  return start, start + length
end

-- A budget at `now`: created with its seed when missing, its lapsed holds dropped, its period
-- rolled over when ended (spent back to 0, holds kept). Returns spent, held, period end (0: none).
local function budget(h, z, now, seconds, months, anchor, seed, keep)
  local st = redis.call('HMGET', h, 's', 'o', 'f', 'ps', 'pe')
  if not st[1] then
    st = {seed, 0, now, 0, 0}
    redis.call('HSET', h, 's', seed, 'o', 0, 'f', fmt(now), 'ps', 0, 'pe', 0)
  end
  local s, o = tonumber(st[1]), tonumber(st[2])
  local first, ps, pe = tonumber(st[3]), tonumber(st[4]), tonumber(st[5])
  local lapsed = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 1000)
  for _, member in ipairs(lapsed) do
    local amount = tonumber(string.match(member, ':(%d+)$'))
    if amount > 0 then o = redis.call('HINCRBY', h, 'o', fmt(-amount)) end
    redis.call('ZREM', z, member)
  end
  if seconds > 0 or months > 0 then
    if not (ps <= now and now < pe) then
      local start, stop = bounds(now, first, seconds, months, anchor)
      if pe > 0 and start >= pe then
        s = 0
        redis.call('HSET', h, 's', 0)
      end
      ps, pe = start, stop
      redis.call('HSET', h, 'ps', fmt(ps), 'pe', fmt(pe))
    end
  elseif pe > 0 then
    pe = 0
    redis.call('HSET', h, 'ps', 0, 'pe', 0)
  end
  local ttl = keep
  if pe - now > ttl then ttl = pe - now end
  redis.call('PEXPIRE', h, ttl)
  return s, o, pe, ttl
end

-- A limit scope's counts in minute `window`.
local function limit(lh, now, window)
  local st = redis.call('HMGET', lh, 'rw', 'rn', 'tw', 'tn')
  local rn, tn = 0, 0
  if tonumber(st[1]) == window then rn = tonumber(st[2]) end
  if tonumber(st[3]) == window then tn = tonumber(st[4]) end
  return rn, tn
end

local function budget_args(i, base)
  local a = base + (i - 1) * 5
  return tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]),
    tonumber(ARGV[a + 4]), ARGV[a + 5]
end
"""

#: ARGV: ticket id, cost, tokens, hold ms, budgets n, limits n, keep ms; per budget: max,
#: seconds, months, anchor ms (-1: first use), seed; per limit: rpm, tpm, parallel (-1: none).
#: Answers {1, now, expiry, window, per limit: requests, tokens, tokens held} or a refusal:
#: {0, 'budget', index, spent, held, period end} / {0, kind, index, remaining, reset ms}.
ADMIT = (
    _COMMON
    + r"""
local id, cost, tokens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local hold, nb, nl, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])
local now = now_ms()
local window = now - now % 60000
local reset = window + 60000 - now
local ttls = {}
for i = 1, nb do
  local max, seconds, months, anchor, seed = budget_args(i, 7)
  local s, o, pe, ttl = budget(KEYS[2 * i], KEYS[2 * i + 1], now, seconds, months, anchor, seed,
    keep)
  if s + o + cost > max then return {0, 'budget', i, s, o, pe} end
  ttls[i] = ttl
end
local lbase, kbase = 7 + nb * 5, 1 + 2 * nb
local held, counts = {}, {}
for j = 1, nl do
  local a = lbase + (j - 1) * 3
  local rpm, tpm, par = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local lh, pz = KEYS[kbase + 2 * j - 1], KEYS[kbase + 2 * j]
  local rn, tn = limit(lh, now, window)
  if rpm >= 0 and rn + 1 > rpm then return {0, 'requests', j, 0, reset} end
  local take = 0
  if tpm >= 0 then
    take = math.min(tokens, tpm)
    if tn + take > tpm then return {0, 'tokens', j, math.max(0, tpm - tn), reset} end
  end
  if par >= 0 then
    redis.call('ZREMRANGEBYSCORE', pz, '-inf', now)
    if redis.call('ZCARD', pz) >= par then return {0, 'parallel_requests', j, 0, 1000} end
  end
  held[j], counts[j] = take, {rn, tn, par}
end
local expiry = now + hold
for i = 1, nb do
  if cost > 0 then redis.call('HINCRBY', KEYS[2 * i], 'o', fmt(cost)) end
  redis.call('ZADD', KEYS[2 * i + 1], fmt(expiry), id .. ':' .. fmt(cost))
  redis.call('PEXPIRE', KEYS[2 * i + 1], ttls[i])
end
local reply = {1, now, expiry, window}
for j = 1, nl do
  local lh, pz = KEYS[kbase + 2 * j - 1], KEYS[kbase + 2 * j]
  local rn, tn, par = counts[j][1] + 1, counts[j][2] + held[j], counts[j][3]
  redis.call('HSET', lh, 'rw', fmt(window), 'rn', fmt(rn), 'tw', fmt(window), 'tn', fmt(tn))
  redis.call('PEXPIRE', lh, 120000)
  if par >= 0 then
    redis.call('ZADD', pz, fmt(expiry), id)
    redis.call('PEXPIRE', pz, 2 * hold)
  end
  reply[#reply + 1] = rn
  reply[#reply + 1] = tn
  reply[#reply + 1] = held[j]
end
redis.call('SET', KEYS[1], 'o', 'PX', fmt(2 * hold))
return reply
"""
)

#: ARGV: ticket id, cost held, cost consumed, tokens consumed, window, hold ms, budgets n,
#: limits n, keep ms; per budget as ADMIT; per limit: tpm (-1: none), tokens held.
#: Answers 1, or 0 when the ticket had already ended (nothing charged again).
SETTLE = (
    _COMMON
    + r"""
if redis.call('GET', KEYS[1]) == 'd' then return 0 end
local id, held, cost, tokens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window, hold = tonumber(ARGV[5]), tonumber(ARGV[6])
local nb, nl, keep = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local now = now_ms()
for i = 1, nb do
  local _, seconds, months, anchor, seed = budget_args(i, 9)
  local h, z = KEYS[2 * i], KEYS[2 * i + 1]
  budget(h, z, now, seconds, months, anchor, seed, keep)
  if redis.call('ZREM', z, id .. ':' .. fmt(held)) == 1 and held > 0 then
    redis.call('HINCRBY', h, 'o', fmt(-held))
  end
  if cost > 0 then redis.call('HINCRBY', h, 's', fmt(cost)) end
end
local lbase, kbase = 9 + nb * 5, 1 + 2 * nb
for j = 1, nl do
  local tpm, took = tonumber(ARGV[lbase + 2 * j - 1]), tonumber(ARGV[lbase + 2 * j])
  local lh, pz = KEYS[kbase + 2 * j - 1], KEYS[kbase + 2 * j]
  redis.call('ZREM', pz, id)
  if tpm >= 0 and tonumber(redis.call('HGET', lh, 'tw')) == window then
    if redis.call('HINCRBY', lh, 'tn', fmt(tokens - took)) < 0 then
      redis.call('HSET', lh, 'tn', 0)
    end
  end
end
redis.call('SET', KEYS[1], 'd', 'PX', fmt(hold))
return 1
"""
)

#: ARGV: ticket id, cost held, hold ms, budgets n, limits n; per limit: 1 when it holds a
#: parallel lease, else 0. Answers 1 when every hold was still there (now extended), else 0.
RENEW = (
    _COMMON
    + r"""
local id, held, hold = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nb, nl = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local expiry = fmt(now + hold)
local whole = redis.call('GET', KEYS[1]) == 'o' and 1 or 0
for i = 1, nb do
  local z, member = KEYS[2 * i + 1], id .. ':' .. fmt(held)
  local score = redis.call('ZSCORE', z, member)
  if score and tonumber(score) > now then redis.call('ZADD', z, expiry, member) else whole = 0 end
end
for j = 1, nl do
  if ARGV[5 + j] == '1' then
    local pz = KEYS[1 + 2 * nb + 2 * j]
    local score = redis.call('ZSCORE', pz, id)
    if score and tonumber(score) > now then
      redis.call('ZADD', pz, expiry, id)
      redis.call('PEXPIRE', pz, 2 * hold)
    else
      whole = 0
    end
  end
end
if whole == 1 then redis.call('PEXPIRE', KEYS[1], 2 * hold) end
return whole
"""
)

#: KEYS: the budget's hash and holds. ARGV: seconds, months, anchor ms, seed, keep ms.
#: Answers {spent, held, period end ms (0: none)}.
READ_BUDGET = (
    _COMMON
    + r"""
local s, o, pe = budget(KEYS[1], KEYS[2], now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]))
return {s, o, pe}
"""
)
