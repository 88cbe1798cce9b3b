-- Argo CD health check for edgerollout.dev/ModelDeployment.
-- Install: argocd-cm data key `resource.customizations.health.edgerollout.dev_ModelDeployment`.
-- Tested by tests/unit/docs/test_argocd_health.py with Lua 5.1 (Argo CD runs gopher-lua, 5.1)
-- against status snapshots the planner wrote in every phase (tests/fixtures/gitops/).
-- Healthy: Ready=True and Degraded=False. Suspended: waiting at a pause step or spec.paused.
-- Degraded: Stalled (spec or release unusable, rollout aborted) or Degraded while not rolling,
-- with the failing nodes named. Progressing: everything else.
local hs = { status = "Progressing", message = "Waiting for the edge-rollout operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "The operator has not seen this generation yet"
  return hs
end
local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  conditions[c.type] = c
end
local function isTrue(type)
  return conditions[type] ~= nil and conditions[type].status == "True"
end
local message = obj.status.message or ""
local function failing()
  local names = {}
  if obj.status.worstNodes ~= nil then
    for _, n in ipairs(obj.status.worstNodes) do
      table.insert(names, n.node .. " (" .. (n.reason or n.phase or "") .. ")")
    end
  end
  if #names == 0 then
    return ""
  end
  return "; failing nodes: " .. table.concat(names, ", ")
end
if isTrue("Stalled") then
  return { status = "Degraded", message = conditions["Stalled"].reason .. ": " .. message .. failing() }
end
if obj.status.phase == "Paused" then
  return { status = "Suspended", message = message .. failing() }
end
if isTrue("Degraded") and not isTrue("Progressing") then
  return { status = "Degraded", message = conditions["Degraded"].reason .. ": " .. message .. failing() }
end
if isTrue("Ready") then
  return { status = "Healthy", message = message }
end
return { status = "Progressing", message = message .. failing() }
