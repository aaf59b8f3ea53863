-- Headless tests of the plug-in against the real server on the default model.
-- Run with `nvim --headless -u init.lua -c "luafile test.lua"` (see run.sh).
local h = require("helpers")
local airgap = require("airgap")
local dir = os.getenv("AIRGAP_TEST_DIR")
local ws = dir .. "/workspace"
local native = airgap.native()
local label = ("nvim %s (%s)"):format(
  tostring(vim.version()),
  native and "vim.lsp.inline_completion" or "fallback ghost text"
)

local function ghost_ns()
  return vim.api.nvim_create_namespace(native and "nvim.lsp.inline_completion" or "airgap.ghost")
end

local function open(name)
  vim.cmd("edit " .. vim.fn.fnameescape(ws .. "/" .. name))
  local buf = vim.api.nvim_get_current_buf()
  h.wait("the server to attach to " .. name, function()
    return airgap.client(buf)
  end, 30000)
  return buf
end

local function request(buf, method, params)
  local client = assert(airgap.client(buf))
  local reply
  client:request(method, params, function(err, result)
    reply = { err = err, result = result }
  end, buf)
  h.wait(method .. " to answer", function()
    return reply
  end, 120000)
  h.ok(not reply.err, method .. ": " .. vim.inspect(reply.err))
  return reply.result
end

local function position(buf, row, text)
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, true)[1]
  return { line = row, character = assert(line:find(text, 1, true), text .. " not on line " .. row) }
end

--- A nested settings table by dotted names: { context = { maxTokens = 1 } } -> context.maxTokens.
local function flat(tbl, prefix, out)
  out = out or {}
  for key, value in pairs(tbl) do
    local name = (prefix and prefix .. "." or "") .. key
    if type(value) == "table" and not vim.islist(value) then
      flat(value, name, out)
    else
      out[name] = value
    end
  end
  return out
end

h.run(label, {
  {
    "the settings sent hold every setting the server knows at its default, so a removed one goes back",
    function()
      local python = os.getenv("AIRGAP_ROOT") .. "/.venv/bin/python"
      local server = vim.json.decode(vim.fn.system({
        python,
        "-c",
        "import json; from airgap_lsp.settings import setting_defaults; print(json.dumps(setting_defaults()))",
      }))
      h.eq(server, flat(require("airgap.config").wire({})), "the settings sent on every change")
    end,
  },
  {
    "setup() twice: one autocommand group, one server config",
    function()
      local opts = vim.deepcopy(require("airgap.config").current)
      airgap.setup(vim.tbl_extend("force", vim.deepcopy(opts), { filetypes = { "ada" } }))
      h.eq({ "ada" }, vim.lsp.config.airgap.filetypes, "filetypes after a second setup()")
      airgap.setup(vim.deepcopy(opts))
      airgap.setup(vim.deepcopy(opts))
      h.eq(opts.filetypes, vim.lsp.config.airgap.filetypes, "filetypes after a third")
      h.eq(
        1,
        #vim.api.nvim_get_autocmds({ group = "airgap", event = "LspAttach" }),
        "LspAttach autocommands"
      )
    end,
  },
  {
    "the server reports the default model ready",
    function()
      open("geometry.py")
      local s = h.wait("airgap/status ready or error", function()
        local st = require("airgap.status").current
        return st and st.state ~= "loading" and st
      end, 180000)
      h.eq("ready", s.state, "state (" .. tostring(s.message) .. ")")
      h.ok(vim.startswith(s.model, "smollm2-135m-instruct"), "model " .. s.model)
      h.ok(s.device == "cpu" or vim.startswith(s.device, "cuda"), "device " .. s.device)
      h.ok(airgap.statusline():find("smollm2", 1, true), airgap.statusline())
    end,
  },
  {
    "ghost text appears as an extmark, <C-]> dismisses it, <Tab> accepts it (audited)",
    function()
      local buf = open("geometry.py")
      local last = vim.api.nvim_buf_line_count(buf)
      local row = vim.api.nvim_buf_get_lines(buf, last - 1, last, true)[1] == "" and last - 1
        or last
      local before = vim.api.nvim_buf_get_lines(buf, row - 1, row, true)[1] -- "    return "
      vim.api.nvim_win_set_cursor(0, { row, 0 })
      local function suggestions()
        return vim.tbl_filter(function(l)
          return l.kind == "inline_completion"
        end, h.audit_lines())
      end
      local shown = #suggestions()
      local function ghost()
        return vim.api.nvim_buf_get_extmarks(buf, ghost_ns(), 0, -1, { details = true })[1]
      end
      h.keys("A") -- insert at the end of `    return `
      h.wait("ghost text in the buffer", ghost, 120000)
      h.keys("<C-]>") -- dismiss
      h.wait("the ghost text to go", function()
        return not ghost()
      end, 10000)
      h.eq(before, vim.api.nvim_buf_get_lines(buf, row - 1, row, true)[1], "the line after dismiss")
      h.keys(" <BS>") -- the same text again, so the same suggestion again
      local mark = h.wait("ghost text in the buffer again", ghost, 120000)
      local virt = mark[4].virt_text and mark[4].virt_text[1] and mark[4].virt_text[1][1] or ""
      h.ok(vim.trim(virt) ~= "", "the extmark has no text: " .. vim.inspect(mark))
      -- Written before the reply: there once the ghost text is.
      local all = suggestions()
      h.ok(#all >= shown + 2, "no audit line for each suggestion shown")
      local record = all[#all]
      h.keys("<Tab>")
      local after = h.wait("the suggestion in the buffer", function()
        local l = vim.api.nvim_buf_get_lines(buf, row - 1, row, true)[1]
        return l ~= before and l
      end, 10000)
      local first = vim.split(record.text, "\n", { plain = true })[1]
      h.eq(before .. first, after, "the accepted line")
      h.wait("an accept line for " .. record.id, function()
        return vim.iter(h.audit_lines()):find(function(l)
          return l.kind == "accept" and l.id == record.id
        end)
      end, 30000)
      h.keys("<Esc>")
      h.wait("normal mode", function()
        return vim.fn.mode() == "n"
      end, 5000)
    end,
  },
  {
    ":AirgapAudit shows the record of the last suggestion",
    function()
      local last = vim.tbl_filter(function(l)
        return l.kind == "inline_completion"
      end, h.audit_lines())
      last = last[#last]
      airgap.last_audit_buf = nil
      vim.cmd("AirgapAudit")
      local buf = h.wait("the audit buffer", function()
        return airgap.last_audit_buf
      end, 30000)
      local record =
        vim.json.decode(table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, true), "\n"))
      h.eq(last.id, record.id, "id")
      h.eq("smollm2-135m-instruct", record.model.name, "model")
      h.eq("json", vim.bo[buf].filetype, "filetype")
      vim.cmd("close")
    end,
  },
  {
    ":AirgapStatus names the model and the device",
    function()
      local seen
      local notify = vim.notify
      vim.notify = function(msg)
        seen = msg
      end
      vim.cmd("AirgapStatus")
      vim.notify = notify
      h.ok(seen and seen:find("smollm2-135m-instruct@0.1.2", 1, true), tostring(seen))
      h.ok(seen:find("CPU", 1, true) or seen:find("GPU", 1, true), seen)
    end,
  },
  {
    "hover: an Ada call shows the declaration from the spec",
    function()
      local buf = open("sensors.adb")
      local params =
        { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = position(buf, 13, "Read") }
      local hover = request(buf, "textDocument/hover", params)
      h.ok(hover and hover.contents, "no hover")
      local value = hover.contents.value or vim.inspect(hover.contents)
      h.ok(value:find("function Read", 1, true), "hover: " .. value)
    end,
  },
  {
    "code action: SPARK contracts and a refactor for a SPARK procedure, resolved to an edit",
    function()
      local buf = open("clamp.adb")
      local n = vim.api.nvim_buf_line_count(buf)
      local params = {
        textDocument = { uri = vim.uri_from_bufnr(buf) },
        range = { start = { line = 0, character = 0 }, ["end"] = { line = n - 1, character = 0 } },
        context = { diagnostics = {} },
      }
      local actions = request(buf, "textDocument/codeAction", params) or {}
      local titles = vim.tbl_map(function(a)
        return a.title
      end, actions)
      local contracts = vim.iter(actions):find(function(a)
        return vim.startswith(a.title, "Suggest SPARK contracts")
      end)
      h.ok(contracts, "actions: " .. vim.inspect(titles))
      h.ok(vim.tbl_contains(titles, "Suggest a refactor"), "actions: " .. vim.inspect(titles))
      local refactor = vim.iter(actions):find(function(a)
        return a.title == "Suggest a refactor"
      end)
      h.ok(not refactor.edit, "an edit before codeAction/resolve")
      local resolved = request(buf, "codeAction/resolve", refactor)
      local changes = resolved.edit and (resolved.edit.changes or resolved.edit.documentChanges)
      h.ok(changes and next(changes), "no edit: " .. vim.inspect(resolved))
    end,
  },
  {
    "setup() again sends new settings: an unknown model turns the status to error, and back",
    function()
      local opts = vim.deepcopy(require("airgap.config").current)
      local model = opts.settings.model
      opts.settings.model = "no-such-model"
      local notify = vim.notify
      vim.notify = function() end -- the error is expected
      airgap.setup(opts)
      local failed = h.wait("status error", function()
        local st = require("airgap.status").current
        return st.state == "error" and st
      end, 60000)
      vim.notify = notify
      h.ok(failed.message ~= "", "an error without a message")
      opts.settings.model = model
      airgap.setup(opts)
      h.wait("status ready again", function()
        return require("airgap.status").current.state == "ready"
      end, 120000)
    end,
  },
  {
    ":checkhealth airgap reports the server, its version, the model and the device",
    function()
      vim.cmd("checkhealth airgap")
      local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, true), "\n")
      h.ok(text:find("server: " .. os.getenv("AIRGAP_SERVER"), 1, true), text)
      h.ok(text:find("version: airgap-lsp", 1, true), text)
      h.ok(text:find("model smollm2-135m-instruct@0.1.2 on", 1, true), text)
      h.ok(not text:find("ERROR", 1, true), text)
    end,
  },
})
