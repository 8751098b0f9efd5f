-- Prepended to settle.lua, reconcile.lua and admit.lua (see admission_scripts).

-- Give back the budget reservation of a real event from the hash of unsettled budget spend ``pending_key``;
-- returns its cost (0 when it holds none).
local function give_back_reservation(pending_key, event_id)
  local cost = redis.call('HGET', pending_key, event_id)
  if not cost then return 0 end
  redis.call('HDEL', pending_key, event_id)
  redis.call('HINCRBY', pending_key, 'total', -tonumber(cost))
  return tonumber(cost)
end

-- Release the reservation a script made for an event (the caller has checked that its idempotency key holds
-- one): the key, and for a real event its budget reservation in KEYS[2] (unsettled budget spend). Returns 1
-- when a real event's quota unit is to be given back.
local function release(key, event_id, real)
  redis.call('DEL', key)
  if not real then return 0 end
  give_back_reservation(KEYS[2], event_id)
  return 1
end
