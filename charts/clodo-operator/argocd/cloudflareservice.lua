-- Argo CD health check for clodo.dev/CloudflareService.
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

local phase = status.phase or "Pending"
local ready = find_condition(status.conditions, "Ready")

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  if status.url ~= nil and status.url ~= "" then
    hs.message = "Ready: " .. status.url
  else
    hs.message = describe(ready)
  end
  return hs
end

if phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "Phase " .. phase
  -- Name the first failing step; fall back to the Ready condition's summary.
  local culprit = nil
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type ~= "Ready" and c.status == "False" then
        culprit = c
        break
      end
    end
  end
  if culprit == nil then
    culprit = ready
  end
  if culprit ~= nil then
    hs.message = hs.message .. ": " .. describe(culprit)
  end
  return hs
end

if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "Reconciliation suspended (spec.suspend)"
  return hs
end

hs.status = "Progressing"
hs.message = "Phase " .. phase
if ready ~= nil then
  hs.message = hs.message .. ": " .. describe(ready)
end
return hs
