-- Argo CD health check for clodo.dev/Portfolio.
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

local services = ""
if status.readyServices ~= nil and status.readyServices ~= "" then
  services = status.readyServices .. " services ready"
end

local function with_services(text)
  if services == "" then
    return text
  end
  return services .. "; " .. text
end

local ready = find_condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = with_services(describe(ready))
  return hs
end

local degraded = find_condition(status.conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = with_services(describe(degraded))
  return hs
end

hs.status = "Progressing"
local progressing = find_condition(status.conditions, "Progressing")
if progressing ~= nil then
  hs.message = with_services(describe(progressing))
elseif ready ~= nil then
  hs.message = with_services(describe(ready))
else
  hs.message = with_services("Waiting for the first wave")
end
return hs
