-- Admission for one request of N events, atomically, on Redis's clock:
-- rate limit (fixed per-minute window) -> [validation outcome] -> idempotency -> plan quota -> budget hard-stop
-- (SPEC §5's order). Quota and hard-stop apply to real events only: test and demo data count toward neither.
-- KEYS[1] plan projection   KEYS[2] policy status   KEYS[3] rate window   KEYS[4] quota period
-- KEYS[5] spend admitted but not yet settled by the policy engine (event id -> micro-USD, 'total')
-- KEYS[5+i] idempotency key of event i
-- ARGV[1] default rate limit per minute   ARGV[2] default monthly quota   ARGV[3] pending TTL (s)
-- ARGV[4] answer TTL (s)   ARGV[5] this request's token   ARGV[6] the workspace's record prefix
-- ARGV[7i..7i+6] event i: kind, cost (micro-USD), event id, its stored answer once in Kafka (see idem.lua),
--   endpointTag, normalized model, userId. Kind: 'x' invalid, 'r' valid and counted toward quota
--   and budgets (dataMode=real), 'o' valid and counted toward neither.
-- Budgets (reserve, then the policy engine settles): with a budget, a real event reserves its cost;
-- its answer's flags include the reserved spend, and under hard-stop an event is refused once the
-- reserved spend has reached the budget, so the overshoot is at most the one event that crosses it.
-- An exceeded scoped budget (the policy status's stopped_scopes) stops only the events of its endpoint, model
-- or user; a status written before scoped stops (no workspace_exceeded field) stops on any exceeded budget.
-- Returns JSON: {rate = {limit, used, window_end}, quota = {limit (absent: none), used, period},
--   policy = {budget_warning, budget_exceeded, enforcement, kill_switch}, plan (absent: none),
--   decisions = one per event, in order: {outcome = 'admitted', budget_warning, budget_exceeded} (quota
--   reserved, key holding the reservation) | {outcome = 'repeat', answer = the first's stored answer,
--   spooled} | {outcome = 'rate_limited' | 'invalid' | 'in_flight' | 'plan_limit' | 'budget_stop'}}.
-- A key abandoned in flight (see idem.lua) is taken over: its reservation is given back and the event goes in
-- as new (an abandoned event of another dataMode than its retry would be given back as the retry's kind).
-- (reservation() and idem_state() come from idem.lua, give_back_reservation() from release.lua, prepended to
-- this script.)
local function year_month(epoch)
  local z = math.floor(epoch / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d', y, m)
end

local t = redis.call('TIME')
local now = tonumber(t[1])
local window = math.floor(now / 60)
local window_end = (window + 1) * 60

local plan = redis.call('HMGET', KEYS[1], 'plan', 'rate_limit_per_minute', 'monthly_request_quota')
local limit = tonumber(plan[2] or '') or tonumber(ARGV[1])
local quota_limit = tonumber(plan[3] or '')
if plan[1] == false and quota_limit == nil then quota_limit = tonumber(ARGV[2]) end

local policy = redis.call('HMGET', KEYS[2], 'budget_warning', 'budget_exceeded', 'enforcement', 'kill_switch',
  'warning_headroom_micro_usd', 'exceeded_headroom_micro_usd', 'workspace_exceeded', 'stopped_scopes')
local enforcing = policy[3] == 'hard_stop' and policy[4] ~= '1'
local workspace_exceeded = policy[7] or policy[2]
local blocks = enforcing and workspace_exceeded == '1'
local stopped = {}
local stopped_list = {}
if policy[8] and policy[8] ~= '' then stopped_list = cjson.decode(policy[8]) end
for _, pair in ipairs(stopped_list) do stopped[pair[1] .. '\31' .. pair[2]] = true end
local function scope_stopped(base)
  if not enforcing or next(stopped) == nil then return false end
  return stopped['endpoint_tag\31' .. ARGV[base + 5]] or stopped['model\31' .. ARGV[base + 6]]
    or stopped['user_id\31' .. ARGV[base + 7]] or false
end
local warn_head = tonumber(policy[5] or '')
local exceed_head = tonumber(policy[6] or '')
local budgeted = warn_head ~= nil or exceed_head ~= nil
local reserved = tonumber(redis.call('HGET', KEYS[5], 'total') or '0')

local rate = redis.call('HMGET', KEYS[3], 'w', 'n')
local used = 0
if tonumber(rate[1] or '') == window then used = tonumber(rate[2]) end

local period = year_month(now)
local quota = redis.call('HMGET', KEYS[4], 'p', 'n')
local quota_used = 0
if quota[1] == period then quota_used = tonumber(quota[2]) end

local n = #KEYS - 5
local stride = 7
local codes = {}
local pending_ttl = tonumber(ARGV[3])
local answer_ttl = tonumber(ARGV[4])
local mark = reservation(now, ARGV[5])
for i = 1, n do
  local base = 6 + stride * (i - 1)
  local kind = ARGV[base + 1]
  local cost = tonumber(ARGV[base + 2])
  local event_id = ARGV[base + 3]
  local code
  if used >= limit then
    code = {outcome = 'rate_limited'}
  else
    used = used + 1
    if kind == 'x' then
      code = {outcome = 'invalid'}
    else
      -- Reserve the key if it is new (one call for the common case); an existing key is a repeat.
      -- A new key refused below (budget, quota) is removed again. No key expires while a script runs.
      local key = KEYS[5 + i]
      local value = mark .. ARGV[base + 4]
      if not redis.call('SET', key, value, 'NX', 'EX', answer_ttl) then
        local current = redis.call('GET', key)
        local state, answer, spooled = idem_state(current, ARGV[6], now, pending_ttl)
        if state == 'pending' then
          code = {outcome = 'in_flight'}
        elseif state == 'answer' then
          code = {outcome = 'repeat', answer = answer, spooled = spooled}
        else
          -- Abandoned: its gateway died before settling it. Give back what its admission took (the quota
          -- unit, if taken this period; the budget reservation of the event) as a settlement would have,
          -- then admit the event as new below: counted once, whether or not the first copy reached Kafka
          -- (the copies share the event id, and every consumer counts an event id once).
          if kind == 'r' then
            if year_month(tonumber(string.match(current, '^@(%d+):'))) == period and quota_used > 0 then
              quota_used = quota_used - 1
            end
            reserved = reserved - give_back_reservation(KEYS[5], event_id)
          end
          redis.call('SET', key, value, 'EX', answer_ttl)
        end
      end
      if code then
        -- a repeat: answered above
      elseif kind == 'r' and quota_limit ~= nil and quota_used >= quota_limit then
        redis.call('DEL', key)
        code = {outcome = 'plan_limit'}
      elseif kind == 'r' and (blocks or (enforcing and exceed_head ~= nil and reserved >= exceed_head)
          or scope_stopped(base)) then
        redis.call('DEL', key)
        code = {outcome = 'budget_stop'}
      else
        local warned, exceeded = policy[1] == '1', policy[2] == '1'
        if kind == 'r' then
          quota_used = quota_used + 1
          if budgeted then
            reserved = reserved + cost
            redis.call('HSET', KEYS[5], event_id, cost)
            redis.call('HINCRBY', KEYS[5], 'total', cost)
          end
        end
        if warn_head ~= nil and reserved >= warn_head then warned = true end
        if exceed_head ~= nil and reserved >= exceed_head then exceeded = true end
        code = {outcome = 'admitted', budget_warning = warned, budget_exceeded = exceeded}
      end
    end
  end
  codes[i] = code
end

redis.call('HSET', KEYS[3], 'w', window, 'n', used)
redis.call('EXPIRE', KEYS[3], 120)
redis.call('HSET', KEYS[4], 'p', period, 'n', quota_used)
redis.call('EXPIRE', KEYS[4], 40 * 86400)
if budgeted then redis.call('EXPIRE', KEYS[5], 2 * 86400) end

return cjson.encode({
  rate = {limit = limit, used = used, window_end = window_end},
  quota = {limit = quota_limit, used = quota_used, period = period},
  policy = {budget_warning = policy[1] == '1', budget_exceeded = policy[2] == '1',
            enforcement = policy[3] or 'advisory', kill_switch = policy[4] == '1',
            workspace_exceeded = workspace_exceeded == '1', stopped_scopes = stopped_list},
  plan = plan[1] or nil,
  decisions = codes,
})
