--- `:checkhealth airgap`: the server's path and version, the model and the device.
local M = {}

function M.check()
  local health = vim.health
  local config = require("airgap.config").current
  local airgap = require("airgap")
  local status = require("airgap.status")

  health.start("airgap: Neovim")
  local v = vim.version()
  local version = ("%d.%d.%d"):format(v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.11") == 0 then
    health.error("Neovim " .. version .. ": airgap needs 0.11 or later (vim.lsp.config)")
  else
    health.ok("Neovim " .. version)
  end
  if vim.lsp.inline_completion then
    health.ok(
      "ghost text: " .. (airgap.native() and "vim.lsp.inline_completion" or "the plug-in's own")
    )
  else
    health.ok("ghost text: the plug-in's own (this Neovim has no vim.lsp.inline_completion)")
  end

  health.start("airgap: server")
  local exe = config.cmd[1]
  local path = vim.fn.exepath(exe)
  if path == "" then
    health.error(("server not found: %q"):format(exe), {
      "Install airgap-lsp, or give its full path: require('airgap').setup{ cmd = { '/path/to/airgap-lsp', 'serve' } }",
    })
    return
  end
  health.ok("server: " .. path)
  local ok, r = pcall(function()
    return vim.system({ path, "--version" }, { text = true }):wait(10000)
  end)
  if ok and r.code == 0 and r.stdout ~= "" then
    health.ok("version: " .. vim.trim(r.stdout))
  else
    health.warn("version: unknown (`" .. exe .. " --version` does not answer)")
  end

  local wanted = config.settings.model or "smollm2-135m-instruct (the server's default)"
  local s = status.current
  if s then
    local model = s.version ~= "" and (s.model .. "@" .. s.version) or s.model
    local line = ("model %s on %s (%s, %s): %s"):format(
      model,
      s.device,
      status.hardware(s.device),
      s.dtype,
      s.state
    )
    if s.state == "error" then
      health.error(line .. ": " .. s.message)
    elseif s.state == "loading" then
      health.info(line)
    else
      health.ok(line)
    end
  else
    health.info(
      "model "
        .. wanted
        .. ", device "
        .. (config.settings.device or "auto")
        .. ": the server has not reported yet (open a file it serves)"
    )
  end
  local list = vim.system({ path, "model", "list" }, { text = true }):wait(30000)
  if list.code == 0 then
    local models = vim.split(vim.trim(list.stdout), "\n", { trimempty = true })
    local name = (config.settings.model or "smollm2-135m-instruct"):gsub("@.*", "")
    local found = vim.tbl_contains(models, config.settings.model or "")
      or vim.iter(models):any(function(m)
        return vim.startswith(m, name .. "@")
      end)
    if found then
      health.ok("model store holds " .. table.concat(models, ", "))
    else
      local holds = #models > 0 and table.concat(models, ", ") or "nothing"
      health.error(
        ("model store lacks %s (holds: %s)"):format(name, holds),
        { "Import it: airgap-lsp model import PATH --name NAME --version VERSION" }
      )
    end
  else
    health.warn("`airgap-lsp model list` failed: " .. vim.trim(list.stderr or ""))
  end
end

return M
