-- After Redis was away (or answered too late): settle events the gateway decided in-process, counting
-- each toward the quota once, whatever Redis saw of them.
-- KEYS[1] quota period   KEYS[2] unsettled budget spend   KEYS[2+i] idempotency key of event i
-- ARGV[1] period the events were admitted in   ARGV[2] answer TTL (s)   ARGV[3] record prefix
-- ARGV[4] pending TTL (s)
-- ARGV[2+3i], ARGV[3+3i], ARGV[4+3i] event i: the stored answer, or '-' (not durable); its event id; 'r'
--   for real data (counts toward the quota), else 'o'
-- A durable event whose key does not exist was never seen by Redis: it counts now. One whose key holds a
-- reservation no request settled (in flight or abandoned: a script admitted it, and its answer came too
-- late) is already counted: its answer is stored now. One whose key holds an answer repeats an event
-- settled before: nothing to count. An event that could not be made durable releases a reservation only
-- if a script made one.
-- (idem_state() and release() come from idem.lua and release.lua, prepended to this script.)
local now = tonumber(redis.call('TIME')[1])
local pending_ttl = tonumber(ARGV[4])
local delta = 0
for i = 1, #KEYS - 2 do
  local outcome = ARGV[2 + 3 * i]
  local real = ARGV[4 + 3 * i] == 'r'
  local key = KEYS[2 + i]
  local current = redis.call('GET', key)
  local reserved = current and idem_state(current, ARGV[3], now, pending_ttl) ~= 'answer'
  if outcome == '-' then
    if reserved then delta = delta - release(key, ARGV[3 + 3 * i], real) end
  elseif not current then
    redis.call('SET', key, outcome, 'EX', tonumber(ARGV[2]))
    if real then delta = delta + 1 end
  elseif reserved then
    redis.call('SET', key, outcome, 'EX', tonumber(ARGV[2]))
  end
end
if delta ~= 0 then
  if redis.call('HGET', KEYS[1], 'p') == ARGV[1] then
    if redis.call('HINCRBY', KEYS[1], 'n', delta) < 0 then redis.call('HSET', KEYS[1], 'n', 0) end
  elseif delta > 0 then
    redis.call('HSET', KEYS[1], 'p', ARGV[1], 'n', delta)
  end
end
return delta
