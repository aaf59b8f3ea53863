--- The model's state as the server reports it (`airgap/status`), for `:AirgapStatus` and a statusline.
local M = {}

---@class airgap.Status
---@field state "loading"|"ready"|"error"
---@field model string
---@field version string
---@field device string
---@field dtype string
---@field message string

---@type airgap.Status?
M.current = nil

--- "GPU" for a CUDA device, "CPU" otherwise.
---@param device string
---@return string
function M.hardware(device)
  if device == nil or device == "" then
    return ""
  end
  return vim.startswith(device, "cuda") and "GPU" or "CPU"
end

--- One line: `airgap: NAME@VERSION CPU (ready)`.
---@return string
function M.line()
  local s = M.current
  if not s then
    return "airgap: not started"
  end
  local model = (s.version ~= nil and s.version ~= "") and (s.model .. "@" .. s.version) or s.model
  local parts = { "airgap:", model }
  if s.state == "ready" then
    table.insert(parts, M.hardware(s.device))
  else
    table.insert(parts, s.state)
  end
  return table.concat(
    vim.tbl_filter(function(p)
      return p ~= nil and p ~= ""
    end, parts),
    " "
  )
end

--- Handler of the server's `airgap/status` notification.
---@param params airgap.Status
function M.handler(_, params, _)
  M.current = params
  if params.state == "error" then
    vim.notify("airgap-lsp: " .. (params.message or "error"), vim.log.levels.ERROR)
  end
  vim.api.nvim_exec_autocmds("User", { pattern = "AirgapStatus", modeline = false, data = params })
end

return M
