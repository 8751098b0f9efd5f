-- Prepended to admit.lua, settle.lua, reconcile.lua and lookup.lua (see admission_scripts): what an
-- idempotency key's value says of its event. Three forms:
--   '@<at>:<token>|<answer>'  admitted at <at> (Redis's clock, s) by the request <token>; <answer> is the
--       event's stored answer (JSON). The request is settled with one write, its record
--       <record prefix><token>: 'k' (its events are in Kafka) or 's' (in the spool).
--       No record yet: in flight, or, after pending_ttl, abandoned (the gateway never settled it).
--   an answer (JSON)  settled event by event (some of its request's events were not made durable, or it
--       was decided in-process and reconciled since)
--   'pending'  the form before records (kept for keys written by an older gateway; they expire in 60 s)
-- The start of a reservation's value: admitted at now by the request token (the answer follows).
local function reservation(now, token)
  return '@' .. now .. ':' .. token .. '|'
end

-- Whether a key's value is a reservation of the request token (tokens are hex: no pattern characters).
local function reserved_by(value, token)
  return string.match(value, '^@%d+:' .. token .. '|') ~= nil
end

-- Returns 'answer', the stored answer, whether it is in the spool (true, false, or nil: the answer says) |
-- 'pending' | 'abandoned'.
local function idem_state(value, record_prefix, now, pending_ttl)
  if value == 'pending' then return 'pending' end
  if string.sub(value, 1, 1) ~= '@' then return 'answer', value end
  local at, token, answer = string.match(value, '^@(%d+):([%w]+)|(.*)$')
  local record = redis.call('GET', record_prefix .. token)
  if record == 'k' then return 'answer', answer, false end
  if record == 's' then return 'answer', answer, true end
  if now - tonumber(at) < pending_ttl then return 'pending' end
  return 'abandoned'
end
