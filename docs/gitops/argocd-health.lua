-- Argo CD health check for edgerollout.dev/ModelDeployment.
-- Install: argocd-cm data key `resource.customizations.health.edgerollout.dev_ModelDeployment`.
-- Tested by tests/unit/docs/test_argocd_health.py with Lua 5.1 (Argo CD runs gopher-lua, 5.1).
local hs = { status = "Progressing", message = "Waiting for the edge-rollout operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "The operator has not seen this generation yet"
  return hs
end
local ready, stalled, reconciling = nil, nil, nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Stalled" then stalled = c end
  if c.type == "Reconciling" then reconciling = c end
end
local message = obj.status.message or ""
if stalled ~= nil and stalled.status == "True" then
  return { status = "Degraded", message = stalled.reason .. ": " .. message }
end
if obj.status.phase == "Paused" then
  return { status = "Suspended", message = message }
end
if ready ~= nil and ready.status == "True" then
  return { status = "Healthy", message = message }
end
if reconciling ~= nil and reconciling.status == "True" then
  return { status = "Progressing", message = message }
end
return { status = "Progressing", message = message }
