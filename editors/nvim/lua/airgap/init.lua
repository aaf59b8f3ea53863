--- airgap-lsp for Neovim 0.11+: starts `airgap-lsp serve`, shows its suggestions as ghost text,
--- its hovers and code actions through Neovim's LSP client, and its audit records.
local config = require("airgap.config")
local status = require("airgap.status")

local M = {}

M.name = "airgap"
local augroup = vim.api.nvim_create_augroup("airgap", { clear = true })

--- Neovim's own inline completion (0.12) or the plug-in's ghost text (0.11).
---@return boolean
function M.native()
  local want = config.current.inline.native
  if want == "auto" then
    return vim.lsp.inline_completion ~= nil
  end
  return want == true and vim.lsp.inline_completion ~= nil
end

---@return vim.lsp.Client?
function M.client(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr })[1]
end

--- Accept the suggestion shown in the current buffer.
---@return boolean accepted
function M.accept()
  if M.native() then
    return vim.lsp.inline_completion.get()
  end
  local ghost = require("airgap.ghost")
  if not ghost.visible() then
    return false
  end
  vim.schedule(ghost.accept) -- not while a mapping's expression is evaluated (textlock)
  return true
end

--- Hide the suggestion.
function M.dismiss()
  if M.native() then
    vim.lsp.inline_completion.get({ on_accept = function() end }) -- hides, inserts nothing
  else
    require("airgap.ghost").dismiss()
  end
end

---@param count integer 1: the next suggestion, -1: the previous one
function M.cycle(count)
  if M.native() then
    vim.lsp.inline_completion.select({ count = count })
  else
    require("airgap.ghost").select(count)
  end
end

--- The suggestion is on screen (either kind of ghost text).
---@return boolean
function M.visible(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if M.native() then
    local ns = vim.api.nvim_create_namespace("nvim.lsp.inline_completion")
    return #vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { limit = 1 }) > 0
  end
  return require("airgap.ghost").visible(bufnr)
end

--- Ask the server for an audit record: the last suggestion shown in this session, or `id`.
---@param id? string
---@param callback fun(err: lsp.ResponseError?, record: table?)
function M.audit_record(id, callback)
  local client = M.client() or vim.lsp.get_clients({ name = M.name })[1]
  if not client then
    callback({ code = -1, message = "the airgap-lsp server is not running" }, nil)
    return
  end
  client:request("workspace/executeCommand", {
    command = "airgap.auditRecord",
    arguments = (id and id ~= "") and { id } or {},
  }, function(err, result)
    callback(err, result)
  end)
end

--- JSON with two-space indents and sorted keys, for reading.
local function pretty(value, indent)
  indent = indent or ""
  local inner = indent .. "  "
  if type(value) == "table" then
    if next(value) == nil then
      return getmetatable(value) ~= nil and "{}" or "[]" -- vim.json.decode: {} is empty_dict()
    end
    if vim.islist(value) then
      local parts = {}
      for _, v in ipairs(value) do
        table.insert(parts, inner .. pretty(v, inner))
      end
      return "[\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "]"
    end
    local keys = vim.tbl_keys(value)
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      table.insert(parts, inner .. vim.json.encode(tostring(k)) .. ": " .. pretty(value[k], inner))
    end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
  end
  return vim.json.encode(value)
end
M._pretty = pretty

--- `:AirgapAudit [ID]`: the record in a scratch buffer.
function M.show_audit(id)
  M.audit_record(id, function(err, record)
    if err or not record then
      vim.notify(
        "airgap-lsp: no audit record: " .. (err and err.message or "none"),
        vim.log.levels.WARN
      )
      return
    end
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(pretty(record), "\n"))
    vim.bo[buf].filetype = "json"
    vim.bo[buf].modifiable = false
    vim.bo[buf].bufhidden = "wipe"
    pcall(vim.api.nvim_buf_set_name, buf, "airgap://audit/" .. (record.id or "last"))
    vim.cmd("botright split")
    vim.api.nvim_win_set_buf(0, buf)
    M.last_audit_buf = buf
  end)
end

--- `:AirgapStatus`: the model, its version, GPU or CPU, and the inline completion in use.
function M.show_status()
  local s = status.current
  local lines = { status.line() }
  if s then
    table.insert(
      lines,
      ("state %s, device %s (%s)%s"):format(
        s.state,
        s.device or "?",
        s.dtype or "?",
        (s.message and s.message ~= "") and (": " .. s.message) or ""
      )
    )
  end
  table.insert(
    lines,
    "ghost text: " .. (M.native() and "vim.lsp.inline_completion" or "airgap fallback")
  )
  table.insert(
    lines,
    "server: "
      .. table.concat(config.current.cmd, " ")
      .. (M.client() and "" or " (not attached to this buffer)")
  )
  vim.notify(
    table.concat(lines, "\n"),
    s and s.state == "error" and vim.log.levels.ERROR or vim.log.levels.INFO
  )
end

---@param bufnr integer
local function set_keymaps(bufnr)
  local k = config.current.keymaps
  local function map(lhs, rhs, desc, expr)
    if lhs then
      vim.keymap.set("i", lhs, rhs, { buffer = bufnr, expr = expr, desc = desc, silent = true })
    end
  end
  map(k.accept, function()
    if M.visible(bufnr) and M.accept() then
      return ""
    end
    return vim.keycode(k.accept)
  end, "airgap: accept the suggestion", true)
  map(k.dismiss, M.dismiss, "airgap: dismiss the suggestion")
  map(k.next, function()
    M.cycle(1)
  end, "airgap: next suggestion")
  map(k.prev, function()
    M.cycle(-1)
  end, "airgap: previous suggestion")
end

local function on_attach(client, bufnr)
  local cfg = config.current
  set_keymaps(bufnr)
  if not cfg.inline.enabled then
    return
  end
  if M.native() then
    vim.lsp.inline_completion.enable(true, { client_id = client.id })
  else
    require("airgap.ghost").attach(bufnr, client.id, cfg)
  end
end

--- Set up the plug-in; safe to call again (new options replace the old ones, running servers
--- get the new settings).
---@param opts? airgap.Config|table
function M.setup(opts)
  local cfg = config.set(opts)
  vim.api.nvim_set_hl(0, "AirgapGhostText", { link = "Comment", default = true })
  -- Assigned, not merged (`vim.lsp.config(name, ...)` would merge a shorter list into the old).
  vim.lsp.config[M.name] = {
    cmd = cfg.cmd,
    filetypes = cfg.filetypes,
    root_markers = cfg.root_markers,
    init_options = config.wire(cfg.settings),
    handlers = { ["airgap/status"] = status.handler },
  }
  vim.api.nvim_clear_autocmds({ group = augroup })
  vim.api.nvim_create_autocmd("LspAttach", {
    group = augroup,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == M.name then
        on_attach(client, ev.buf)
      end
    end,
  })
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client:notify("workspace/didChangeConfiguration", { settings = config.wire(cfg.settings) })
    for bufnr in pairs(client.attached_buffers) do
      on_attach(client, bufnr)
    end
  end
  vim.lsp.enable(M.name)
end

--- For a statusline: `airgap: NAME@VERSION CPU`.
M.statusline = status.line

return M
