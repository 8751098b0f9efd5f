-- After publishing: mark durable events' idempotency keys with their answer (24 h), and release the
-- reservations of events that could not be made durable (key, quota unit, budget reservation) so a
-- retry counts as new.
-- KEYS[1] quota period   KEYS[2] unsettled budget spend   KEYS[2+i] idempotency key of event i
-- ARGV[1] period the reservations were made in   ARGV[2] answer TTL (s)
-- ARGV[1+2i], ARGV[2+2i] event i: the stored answer, or '-' (release a real event) or '~' (release another);
--   then its event id
-- (release() comes from release.lua, prepended to this script.)
local released = 0
for i = 1, #KEYS - 2 do
  local outcome = ARGV[1 + 2 * i]
  local key = KEYS[2 + i]
  if outcome == '-' or outcome == '~' then
    released = released + release(key, ARGV[2 + 2 * i], outcome == '-')
  else
    redis.call('SET', key, outcome, 'EX', tonumber(ARGV[2]))
  end
end
if released > 0 and redis.call('HGET', KEYS[1], 'p') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'n', -released)
end
return released
