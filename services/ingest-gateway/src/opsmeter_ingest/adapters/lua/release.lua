-- Prepended to settle.lua and reconcile.lua (see admission_scripts): release the reservation a script made
-- for an event (the caller has checked that its idempotency key holds one): the key, and for a real event
-- its budget reservation in KEYS[2] (unsettled budget spend). Returns 1 when a real event's quota unit is
-- to be given back.
local function release(key, event_id, real)
  redis.call('DEL', key)
  if not real then return 0 end
  local cost = redis.call('HGET', KEYS[2], event_id)
  if cost then
    redis.call('HDEL', KEYS[2], event_id)
    redis.call('HINCRBY', KEYS[2], 'total', -tonumber(cost))
  end
  return 1
end
