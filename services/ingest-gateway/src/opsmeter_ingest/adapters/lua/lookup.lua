-- A repeat waiting for the first event of its externalRequestId, as JSON: {state='answer', answer=the first's
-- stored answer, spooled=...}, {state='pending'} while it is in flight, or nil (no key, or an abandoned one:
-- the repeat may go in as new).
-- KEYS[1] idempotency key   ARGV[1] record prefix   ARGV[2] pending TTL (s)
-- (idem_state() comes from idem.lua, prepended to this script.)
local value = redis.call('GET', KEYS[1])
if not value then return false end
local state, answer, spooled = idem_state(value, ARGV[1], tonumber(redis.call('TIME')[1]), tonumber(ARGV[2]))
if state == 'answer' then return cjson.encode({state = 'answer', answer = answer, spooled = spooled}) end
if state == 'pending' then return cjson.encode({state = 'pending'}) end
return false
