-- A small runner: each test is a function in a coroutine; `wait` polls a condition with a deadline
-- from a timer, so the event loop (keys typed by feedkeys, the server's replies) runs meanwhile.
local M = {}

local co
local out = assert(io.open(os.getenv("AIRGAP_TEST_DIR") .. "/results.txt", "w"))

local function resume()
  local ok, err = coroutine.resume(co)
  if not ok then
    out:write("FAIL the runner broke: " .. tostring(err) .. "\n")
    vim.cmd("cquit! 2")
  end
end

--- Poll `cond` every 50 ms until it returns a truthy value, or fail after `ms`.
function M.wait(what, cond, ms)
  local deadline = vim.uv.now() + ms
  while true do
    local ok, value = pcall(cond)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      error(("timed out after %d ms waiting for %s"):format(ms, what), 2)
    end
    vim.defer_fn(resume, 50)
    coroutine.yield()
  end
end

function M.eq(want, got, what)
  if not vim.deep_equal(want, got) then
    error(("%s: want %s, got %s"):format(what or "value", vim.inspect(want), vim.inspect(got)), 2)
  end
end

function M.ok(cond, message)
  if not cond then
    error(message or "assertion failed", 2)
  end
end

function M.audit_lines()
  local path = os.getenv("AIRGAP_TEST_DIR") .. "/audit.jsonl"
  local f = io.open(path, "r")
  if not f then
    return {}
  end
  local lines = {}
  for line in f:lines() do
    if line ~= "" then
      table.insert(lines, vim.json.decode(line))
    end
  end
  f:close()
  return lines
end

--- Type keys as a user would (mappings apply), processed once the test yields.
function M.keys(keys)
  vim.api.nvim_feedkeys(vim.keycode(keys), "mt", false)
end

--- Run the tests in order; print PASS/FAIL lines and a total; exit non-zero on any failure.
function M.run(label, tests)
  local passed, failed = 0, 0
  co = coroutine.create(function()
    for _, t in ipairs(tests) do
      local started = vim.uv.hrtime()
      local ok, err = xpcall(t[2], debug.traceback)
      local secs = (vim.uv.hrtime() - started) / 1e9
      if ok then
        passed = passed + 1
        out:write(("PASS %s: %s (%.1f s)\n"):format(label, t[1], secs))
      else
        failed = failed + 1
        out:write(("FAIL %s: %s (%.1f s)\n%s\n"):format(label, t[1], secs, err))
      end
    end
    out:write(("%s: %d passed, %d failed\n"):format(label, passed, failed))
    out:close()
    for _, client in ipairs(vim.lsp.get_clients()) do
      client:stop()
    end
    vim.cmd(failed == 0 and "qall!" or "cquit! 1")
  end)
  resume()
end

return M
