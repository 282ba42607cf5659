-- Argo CD health check for clodo.dev/Customer.
-- Argo CD calls it with the live object in the global `obj` and reads {status=..., message=...}.
-- Written for Lua 5.1 (Argo CD's gopher-lua); tested by tests/argocd_health.rs.
local hs = {}

local function find_condition(conditions, ctype)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.type
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " (" .. c.reason .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for clodo-operator to report status"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for clodo-operator to observe generation " .. generation
  return hs
end

local ready = find_condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

-- A token or zone the operator could not verify needs a person: the Secret or spec must change.
-- Unknown (not checked yet, Cloudflare unreachable) stays Progressing.
for _, ctype in ipairs({ "CredentialsValid", "ZonesResolved" }) do
  local c = find_condition(status.conditions, ctype)
  if c ~= nil and c.status == "False" then
    hs.status = "Degraded"
    hs.message = describe(c)
    return hs
  end
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the credentials check"
end
return hs
