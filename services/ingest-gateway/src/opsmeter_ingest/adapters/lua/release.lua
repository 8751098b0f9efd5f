-- Prepended to settle.lua and reconcile.lua (see admission_scripts): release an event's reservation if a
-- script made one (its idempotency key 'pending'): the key, and for a real event its budget reservation
-- in KEYS[2] (unsettled budget spend). Returns 1 when a real event's quota unit is to be given back.
local function release(key, event_id, real)
  if redis.call('GET', key) ~= 'pending' then return 0 end
  redis.call('DEL', key)
  if not real then return 0 end
  local cost = redis.call('HGET', KEYS[2], event_id)
  if cost then
    redis.call('HDEL', KEYS[2], event_id)
    redis.call('HINCRBY', KEYS[2], 'total', -tonumber(cost))
  end
  return 1
end
