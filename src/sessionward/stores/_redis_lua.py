"""The Redis store's Lua scripts: every multi-step change of a record and its user index, atomic on one
hash slot (see the key layout in `sessionward.stores.redis`)."""

from __future__ import annotations

# -- Lua ------------------------------------------------------------------------------------------
# Shared helper: drop index members whose record is gone; set the index TTL to its longest record's.
_PRUNE = """
local function prune(idx, recprefix)
  local maxttl = 0
  for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    local t = redis.call('PTTL', recprefix .. m)
    if t == -2 then redis.call('ZREM', idx, m) elseif t > maxttl then maxttl = t end
  end
  if maxttl > 0 then redis.call('PEXPIRE', idx, maxttl) end
end
local function live(key, now)
  local v = redis.call('HMGET', key, 'expires_at', 'idle_expires_at')
  return v[1] and now < tonumber(v[1]) and now < tonumber(v[2])
end
local function retime(key, now)
  local v = redis.call('HMGET', key, 'expires_at', 'idle_expires_at')
  local ttl = math.ceil((math.min(tonumber(v[1]), tonumber(v[2])) - now) * 1000)
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', key, ttl)
end
"""

# KEYS: rec, idx   ARGV: recprefix, member, created_at, ttl_ms, field, value, ...
_CREATE = _PRUNE + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
prune(KEYS[2], ARGV[1])
return 1
"""

# KEYS: rec, idx   ARGV: recprefix, now, field, value, ...
_UPDATE = _PRUNE + """
local now = tonumber(ARGV[2])
if not live(KEYS[1], now) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
retime(KEYS[1], now)
prune(KEYS[2], ARGV[1])
return 1
"""

# KEYS: rec, idx   ARGV: recprefix, now, expected_generation, last_seen, idle_expires_at
_ADVANCE = _PRUNE + """
local now = tonumber(ARGV[2])
if not live(KEYS[1], now) then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'generation')) ~= tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'last_seen', ARGV[4], 'idle_expires_at', ARGV[5])
retime(KEYS[1], now)
prune(KEYS[2], ARGV[1])
return 1
"""

# KEYS: rec, idx   ARGV: recprefix, member, now ('' = delete even if expired)
# Returns false if there was no (live) record, else its secret hash ('' if none).
_DELETE = _PRUNE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[3] ~= '' and not live(KEYS[1], tonumber(ARGV[3])) then return false end
local sh = redis.call('HGET', KEYS[1], 'secret_hash') or ''
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
prune(KEYS[2], ARGV[1])
return sh
"""

# KEYS: oldrec, oldidx, newrec, newidx
# ARGV: oldprefix, oldmember, newprefix, newmember, now, created_at, ttl_ms, field, value, ...
# Returns 0 if the old record is gone, -1 if the new one exists, else {old secret hash}.
_REPLACE = _PRUNE + """
if not live(KEYS[1], tonumber(ARGV[5])) then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local sh = redis.call('HGET', KEYS[1], 'secret_hash') or ''
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], unpack(ARGV, 8))
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[4])
prune(KEYS[2], ARGV[1])
prune(KEYS[4], ARGV[3])
return {sh}
"""

# KEYS: idx   ARGV: recprefix, except_member ('' = none), now ('' = all, else only records dead at now)
# Returns {id, secret_hash, id, secret_hash, ...} of the deleted records.
_DELETE_USER = _PRUNE + """
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. m
  if m ~= ARGV[2] and (ARGV[3] == '' or not live(key, tonumber(ARGV[3]))) then
    local v = redis.call('HMGET', key, 'id', 'secret_hash')
    if v[1] then
      redis.call('DEL', key)
      table.insert(out, v[1]); table.insert(out, v[2] or '')
    end
    redis.call('ZREM', KEYS[1], m)
  end
end
prune(KEYS[1], ARGV[1])
return out
"""

# KEYS: idx   ARGV: recprefix.  Prunes dead members (idempotent) and returns every record as HGETALL.
_LIST = _PRUNE + """
prune(KEYS[1], ARGV[1])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HGETALL', ARGV[1] .. m)
  if #h > 0 then table.insert(out, h) end
end
return out
"""

# KEYS: d   ARGV: until, ttl_ms   (never shortens an entry)
_DENY = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Compare-and-set over throttle counters (all in one slot: the `{t}` hash tag).
# KEYS: t1..tn   ARGV: now, window, then per key: expected f, expected l, new f, new l, new x (= l + window)
# A counter reads as zero when absent or when its last failure is `window` or more before `now`. Every key
# must still read as its expected (f, l) or nothing is written (returns 0). Then each key whose new state
# differs is written (new f = 0 deletes it), its TTL running to l + window. Numbers are compared with
# tonumber and written as the caller's strings, never formatted by Lua (which would round them).
_THROTTLE_SWAP = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local function base(i) return 2 + (i - 1) * 5 end
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'f', 'l')
  local f, l = 0, 0
  if v[1] and tonumber(v[1]) > 0 and tonumber(v[2]) > now - window then f, l = tonumber(v[1]), tonumber(v[2]) end
  local b = base(i)
  local ef, el = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  if f ~= ef or (ef ~= 0 and l ~= el) then return 0 end
end
for i, key in ipairs(KEYS) do
  local b = base(i)
  if ARGV[b + 1] ~= ARGV[b + 3] or ARGV[b + 2] ~= ARGV[b + 4] then
    if tonumber(ARGV[b + 3]) == 0 then
      redis.call('DEL', key)
    else
      redis.call('HSET', key, 'f', ARGV[b + 3], 'l', ARGV[b + 4], 'x', ARGV[b + 5])
      local ttl = math.ceil((tonumber(ARGV[b + 5]) - now) * 1000)
      if ttl < 1 then ttl = 1 end
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
return 1
"""

# KEYS: key  ARGV: now, field ('' for a string value).  Deletes the key if its stored end is <= now.
_PURGE_ONE = """
local v
if ARGV[2] == '' then v = redis.call('GET', KEYS[1]) else v = redis.call('HGET', KEYS[1], ARGV[2]) end
if v and tonumber(v) <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
