-- After publishing: mark durable events' idempotency keys with their answer (24 h), and release the
-- reservations of events that could not be made durable (their key and their quota unit) so a retry counts.
-- KEYS[1] quota period   KEYS[1+i] idempotency key of event i
-- ARGV[1] period the reservations were made in   ARGV[2] answer TTL (s)
-- ARGV[2+i] event i: the stored answer, or '-' (release, counted toward quota) or '~' (release, not counted)
local released = 0
for i = 2, #KEYS do
  local outcome = ARGV[1 + i]
  if outcome == '-' or outcome == '~' then
    if redis.call('GET', KEYS[i]) == 'pending' then
      redis.call('DEL', KEYS[i])
      if outcome == '-' then released = released + 1 end
    end
  else
    redis.call('SET', KEYS[i], outcome, 'EX', tonumber(ARGV[2]))
  end
end
if released > 0 and redis.call('HGET', KEYS[1], 'p') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'n', -released)
end
return released
