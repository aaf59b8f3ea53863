--- Ghost text for Neovim 0.11, which has no `vim.lsp.inline_completion`: asks the server for
--- `textDocument/inlineCompletion` after a pause in typing and shows the first item with extmarks.
--- Accepting runs the item's command (the server's `airgap.accept`), so the accept is audited.
local M = {}

M.ns = vim.api.nvim_create_namespace("airgap.ghost")
local augroup = vim.api.nvim_create_augroup("airgap.ghost", { clear = true })

---@class (private) airgap.ghost.State
---@field client_id integer
---@field timer? uv.uv_timer_t
---@field cancel? fun()
---@field items? lsp.InlineCompletionItem[]
---@field index integer
---@field row integer 0-based row of the cursor when asked
---@field col integer 0-based byte column of the cursor when asked
---@field tick integer b:changedtick when asked

---@type table<integer, airgap.ghost.State>
local buffers = {}

---@type airgap.Config
local config

local function client_of(state)
  return state and vim.lsp.get_client_by_id(state.client_id)
end

local function stop_timer(state)
  if state.timer then
    state.timer:stop()
    state.timer:close()
    state.timer = nil
  end
end

--- Hide the ghost text and forget the items (and the request in flight).
---@param bufnr integer
function M.clear(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  stop_timer(state)
  if state.cancel then
    state.cancel()
    state.cancel = nil
  end
  state.items = nil
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

local function text_of(item)
  local t = item.insertText
  return type(t) == "table" and t.value or t
end

local function show(bufnr)
  local state = buffers[bufnr]
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local item = state and state.items and state.items[state.index]
  if not item then
    return
  end
  local lines = vim.split(text_of(item), "\n", { plain = true })
  local hl = config.inline.hl_group
  local virt_lines = {}
  for i = 2, #lines do
    table.insert(virt_lines, { { lines[i], hl } })
  end
  if #state.items > 1 then
    local hint = (" (%d/%d)"):format(state.index, #state.items)
    local last = #virt_lines > 0 and virt_lines[#virt_lines] or nil
    if last then
      table.insert(last, { hint, "Comment" })
    else
      lines[1] = lines[1] .. hint
    end
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, state.row, state.col, {
    virt_text = { { lines[1], hl } },
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
  })
end

local function request(bufnr)
  local state = buffers[bufnr]
  local client = client_of(state)
  if not client or vim.api.nvim_get_current_buf() ~= bufnr or not vim.fn.mode():match("^i") then
    return
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  state.row, state.col = cursor[1] - 1, cursor[2]
  state.tick = vim.b[bufnr].changedtick
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  ---@cast params lsp.InlineCompletionParams
  params.context = { triggerKind = 2 } -- Automatic
  local ok, id = client:request("textDocument/inlineCompletion", params, function(err, result)
    state.cancel = nil
    if err or not result then
      if err then
        vim.notify("airgap-lsp: " .. (err.message or vim.inspect(err)), vim.log.levels.WARN)
      end
      return
    end
    -- Stale if the text or the cursor moved since the question.
    local now = vim.api.nvim_win_get_cursor(0)
    if
      vim.api.nvim_get_current_buf() ~= bufnr
      or vim.b[bufnr].changedtick ~= state.tick
      or now[1] - 1 ~= state.row
      or now[2] ~= state.col
      or not vim.fn.mode():match("^i")
    then
      return
    end
    local items = result.items or result
    state.items = #items > 0 and items or nil
    state.index = 1
    show(bufnr)
  end, bufnr)
  if ok and id then
    state.cancel = function()
      client:cancel_request(id)
    end
  end
end

--- After a key: hide what was shown, ask again once typing pauses.
local function schedule(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  M.clear(bufnr)
  state.timer = vim.uv.new_timer()
  state.timer:start(
    config.inline.debounce_ms,
    0,
    vim.schedule_wrap(function()
      stop_timer(state)
      request(bufnr)
    end)
  )
end

---@param bufnr integer
---@param client_id integer
---@param cfg airgap.Config
function M.attach(bufnr, client_id, cfg)
  config = cfg
  M.clear(bufnr)
  buffers[bufnr] = { client_id = client_id, index = 1, row = 0, col = 0, tick = 0 }
  vim.api.nvim_clear_autocmds({ group = augroup, buffer = bufnr })
  vim.api.nvim_create_autocmd({ "InsertEnter", "InsertCharPre", "TextChangedI", "CursorMovedI" }, {
    group = augroup,
    buffer = bufnr,
    callback = function(ev)
      schedule(ev.buf)
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = augroup,
    buffer = bufnr,
    callback = function(ev)
      M.clear(ev.buf)
    end,
  })
  vim.api.nvim_create_autocmd("LspDetach", {
    group = augroup,
    buffer = bufnr,
    callback = function(ev)
      if ev.data.client_id == client_id then
        M.detach(ev.buf)
      end
    end,
  })
end

---@param bufnr integer
function M.detach(bufnr)
  M.clear(bufnr)
  buffers[bufnr] = nil
  pcall(vim.api.nvim_clear_autocmds, { group = augroup, buffer = bufnr })
end

---@return boolean
function M.visible(bufnr)
  local state = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return state ~= nil and state.items ~= nil
end

--- Insert the shown item at its range (or the cursor), then run its command.
---@return boolean accepted
function M.accept(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local state = buffers[bufnr]
  local item = state and state.items and state.items[state.index]
  local client = client_of(state)
  if not item or not client then
    return false
  end
  local row, col = state.row, state.col
  M.clear(bufnr)
  local text = text_of(item)
  local srow, scol, erow, ecol = row, col, row, col
  if item.range then
    local enc = client.offset_encoding
    local function byte(pos)
      local line = vim.api.nvim_buf_get_lines(bufnr, pos.line, pos.line + 1, false)[1] or ""
      return vim.str_byteindex(line, enc, pos.character, false)
    end
    srow, scol = item.range.start.line, byte(item.range.start)
    erow, ecol = item.range["end"].line, byte(item.range["end"])
  end
  local lines = vim.split(text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, srow, scol, erow, ecol, lines)
  local win = vim.fn.bufwinid(bufnr)
  if win ~= -1 then
    vim.api.nvim_win_set_cursor(win, {
      srow + #lines,
      (#lines == 1 and scol or 0) + #lines[#lines],
    })
  end
  -- The server audits the accept under the suggestion's id.
  if item.command then
    client:exec_cmd(item.command, { bufnr = bufnr })
  end
  return true
end

function M.dismiss(bufnr)
  M.clear(bufnr or vim.api.nvim_get_current_buf())
end

--- Show the next (count 1) or previous (count -1) item.
function M.select(count, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if not state or not state.items then
    return
  end
  state.index = (state.index - 1 + count) % #state.items + 1
  show(bufnr)
end

return M
