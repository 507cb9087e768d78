"""The Redis store's Lua scripts. Each touches one key,
so every script runs as is in Redis Cluster. A record is the binary string of `_redis_record`; scripts read
and rewrite only its header (version 3 or 2, see there), its user and its `data` tail.

Invalidations are published by the scripts themselves, right after the write and in the same atomic step:
ARGV carries the channel ('' = none) and the message, so a writer that dies after its script ran cannot leave
a local cache stale (see `sessionward.stores.cache`).
"""

from __future__ import annotations

# -- shared helpers ------------------------------------------------------------------------------------
_REC = """
local H3, H2 = '<BBI6I6I6I6I6IIH', '<BBdddddIIH'
local SIZE = {[3] = 42, [2] = 52}
local function hdr(v)
  local h = {ver = string.byte(v, 1)}
  if h.ver == 3 then
    local c, ls, au, ex, idl
    h.ver, h.kind, c, ls, au, ex, idl, h.ep, h.gen, h.doff = struct.unpack(H3, v)
    h.c, h.ls, h.au, h.ex, h.idl = c / 1000, ls / 1000, au / 1000, ex / 1000, idl / 1000
  elseif h.ver == 2 then
    h.ver, h.kind, h.c, h.ls, h.au, h.ex, h.idl, h.ep, h.gen, h.doff = struct.unpack(H2, v)
  end
  return h
end
local function known(h) return SIZE[h.ver] ~= nil end
local function live(h, now) return now < h.ex and now < h.idl end
-- whole milliseconds if m / 1000 gives back exactly t (as `_redis_record.millis` decides), else nil
local function millis(t)
  local m = math.floor(t * 1000 + 0.5)
  if m >= 0 and m < 281474976710656 and m / 1000 == t then return m end
  return nil
end
-- version 3 when every time is whole milliseconds, else version 2 (exact doubles): a version-2 record
-- becomes version 3 here once its times allow it
local function rebuild(v, h, data)
  local tail = data or string.sub(v, h.doff)
  local old = SIZE[h.ver]
  local body = string.sub(v, old + 1, h.doff - 1)
  local c, ls, au, ex, idl = millis(h.c), millis(h.ls), millis(h.au), millis(h.ex), millis(h.idl)
  if c and ls and au and ex and idl then
    return struct.pack(H3, 3, h.kind, c, ls, au, ex, idl, h.ep, h.gen, h.doff - old + SIZE[3]) .. body .. tail
  end
  return struct.pack(H2, 2, h.kind, h.c, h.ls, h.au, h.ex, h.idl, h.ep, h.gen, h.doff - old + SIZE[2]) .. body .. tail
end
local function ttl_ms(h, now)
  local t = math.ceil((math.min(h.ex, h.idl) - now) * 1000)
  if t < 1 then t = 1 end
  return t
end
local function user(v)
  local o = SIZE[string.byte(v, 1)]
  if not o then return nil end
  local n = struct.unpack('<H', v, o + 1)
  return string.sub(v, o + 3, o + 2 + n)
end
local function announce(chan, msg) if chan ~= '' then redis.call('PUBLISH', chan, msg) end end
"""

# KEYS: rec   ARGV: now, chan, msg, last_seen|'', idle_expires_at|'', auth_at|'', has_data ('1'|''), data
_UPDATE = _REC + """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local now = tonumber(ARGV[1])
local h = hdr(v)
if not known(h) or not live(h, now) then return 0 end
if ARGV[4] ~= '' then h.ls = tonumber(ARGV[4]) end
if ARGV[5] ~= '' then h.idl = tonumber(ARGV[5]) end
if ARGV[6] ~= '' then h.au = tonumber(ARGV[6]) end
local data = nil
if ARGV[7] == '1' then data = ARGV[8] end
redis.call('SET', KEYS[1], rebuild(v, h, data), 'PX', ttl_ms(h, now))
announce(ARGV[2], ARGV[3])
return 1
"""

# KEYS: rec   ARGV: now, chan, msg, expected_generation, last_seen, idle_expires_at
_ADVANCE = _REC + """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local now = tonumber(ARGV[1])
local h = hdr(v)
if not known(h) or not live(h, now) or h.gen ~= tonumber(ARGV[4]) then return 0 end
h.gen = h.gen + 1
h.ls = tonumber(ARGV[5])
h.idl = tonumber(ARGV[6])
redis.call('SET', KEYS[1], rebuild(v, h, nil), 'PX', ttl_ms(h, now))
announce(ARGV[2], ARGV[3])
return 1
"""

# KEYS: rec   ARGV: now ('' = even if dead), user ('' = any), chan, msg, mode ('' = delete; 'dead' = only if
# dead at now).  Returns the deleted record (for the caller to drop its pointer and index entry), or false;
# in mode 'dead', 0 when there is no record at all.
_DELETE = _REC + """
local v = redis.call('GET', KEYS[1])
if not v then
  if ARGV[5] == 'dead' then return 0 end
  return false
end
local h = hdr(v)
if ARGV[5] == 'dead' then
  if known(h) and live(h, tonumber(ARGV[1])) then return false end
elseif ARGV[1] ~= '' and (not known(h) or not live(h, tonumber(ARGV[1]))) then
  return false
end
if ARGV[2] ~= '' and user(v) ~= ARGV[2] then return false end
redis.call('DEL', KEYS[1])
announce(ARGV[3], ARGV[4])
return v
"""

# KEYS: idx   ARGV: expires_at (score), member, ttl_ms, now, prune_limit
# Adds one member and removes at most prune_limit members whose absolute end is past: O(1) amortized.
_INDEX_ADD = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
if #dead > 0 then redis.call('ZREM', KEYS[1], unpack(dead)) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return #dead
"""

# KEYS: d   ARGV: until, ttl_ms, chan, msg   (never shortens an entry)
_DENY = _REC + """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
announce(ARGV[3], ARGV[4])
return 1
"""

# A one-time use (`use_once`): refused while the stored `until` is later than the caller's `now`.
# KEYS: once   ARGV: now, until, ttl ms
_USE_ONCE = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS: e   ARGV: chan, message prefix ('["epoch",<user>,')
_BUMP_EPOCH = _REC + """
local n = redis.call('INCR', KEYS[1])
announce(ARGV[1], ARGV[2] .. n .. ']')
return n
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
