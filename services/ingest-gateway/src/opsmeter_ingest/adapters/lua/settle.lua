-- After publishing a request's admitted events: make their idempotency keys answer repeats (24 h), and
-- release the reservations of events that could not be made durable (key, quota unit, budget reservation)
-- so a retry counts as new.
-- KEYS[1] quota period   KEYS[2] unsettled budget spend   KEYS[3] the request's record
-- KEYS[3+i] idempotency key of event i (only when each event is settled on its own)
-- ARGV[1] period the reservations were made in   ARGV[2] answer TTL (s)   ARGV[3] the request's token
-- ARGV[4] 'k' every event is in Kafka, 's' every event is in the spool: the record says so, one write for
--   the request; 'e' each event on its own, ARGV[3+2i], ARGV[4+2i] event i: its stored answer, or '-'
--   (release a real event) or '~' (release another); then its event id
-- A key that no longer holds this request's reservation (taken over after it was abandoned) is left alone.
-- (reserved_by() and release() come from idem.lua and release.lua, prepended to this script.)
if ARGV[4] ~= 'e' then
  redis.call('SET', KEYS[3], ARGV[4], 'EX', tonumber(ARGV[2]))
  return 0
end
local released = 0
for i = 1, #KEYS - 3 do
  local outcome = ARGV[3 + 2 * i]
  local key = KEYS[3 + i]
  local value = redis.call('GET', key)
  if value and reserved_by(value, ARGV[3]) then
    if outcome == '-' or outcome == '~' then
      released = released + release(key, ARGV[4 + 2 * i], outcome == '-')
    else
      redis.call('SET', key, outcome, 'EX', tonumber(ARGV[2]))
    end
  end
end
if released > 0 and redis.call('HGET', KEYS[1], 'p') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'n', -released)
end
return released
