--- The plug-in's settings: defaults, merged with what `setup()` is given.
local M = {}

---@class airgap.ServerSettings
--- The server's own settings, under its names (editors/README.md). Unset: the server's default.
---@field model? string NAME or NAME@VERSION in the model store
---@field device? "auto"|"cpu"|"cuda"
---@field dtype? "auto"|"float32"|"bfloat16"|"float16"
---@field multiline? "auto"|"always"|"never"
---@field maxTokensLine? integer
---@field maxTokensBlock? integer
---@field maxPrefixChars? integer
---@field maxSuffixChars? integer
---@field auditPath? string
---@field context? airgap.ContextSettings
---@field hover? { explain?: boolean, maxTokens?: integer, timeBudgetMs?: integer }
---@field codeActions? { maxTokens?: integer }
---@field debounceMs? integer
---@field decoding? { promptLookup?: integer, threads?: integer }
---@field backend? { url?: string } a team's inference server (usually the policy's)

---@class airgap.ContextSettings
---@field crossFile? boolean
---@field maxTokens? integer
---@field keepLines? integer lines the cursor may move before the context is chosen again
---@field exclude? string[]
---@field knowledgeBase? string[]

---@class airgap.Keymaps
--- Insert-mode keys; `false` leaves a key unmapped.
---@field accept string|false Accept the suggestion (the key keeps its meaning when there is none)
---@field dismiss string|false Hide the suggestion
---@field next string|false The next suggestion
---@field prev string|false The previous suggestion

---@class airgap.Inline
---@field enabled boolean Ghost text as you type
---@field native "auto"|boolean auto: Neovim's `vim.lsp.inline_completion` where it exists (0.12), else the plug-in's
---@field debounce_ms integer Wait this long after the last key before asking (the plug-in's ghost text)
---@field hl_group string Highlight of the plug-in's ghost text

---@class airgap.Config
---@field cmd string[] The server's command line; nothing is ever downloaded
---@field filetypes string[]
---@field root_markers string[]
---@field settings airgap.ServerSettings Sent as `initializationOptions`, and again when `setup()` changes them
---@field inline airgap.Inline
---@field keymaps airgap.Keymaps

---@type airgap.Config
M.defaults = {
  cmd = { "airgap-lsp", "serve" },
  filetypes = {
    "ada",
    "vhdl",
    "verilog",
    "systemverilog",
    "c",
    "cpp",
    "python",
    "rust",
    "go",
    "java",
    "javascript",
    "javascriptreact",
    "typescript",
    "typescriptreact",
  },
  root_markers = { ".git" },
  settings = {},
  inline = { enabled = true, native = "auto", debounce_ms = 150, hl_group = "AirgapGhostText" },
  keymaps = { accept = "<Tab>", dismiss = "<C-]>", next = "<M-]>", prev = "<M-[>" },
}

--- The server's defaults (editors/README.md), one for each of its settings. The whole table is
--- sent each time, so that a setting removed from `setup()` goes back to its default in a
--- running server too (a setting missing here would keep what `initializationOptions` gave it).
---@type airgap.ServerSettings
M.server_defaults = {
  model = "smollm2-135m-instruct",
  device = "auto",
  dtype = "auto",
  multiline = "auto",
  maxTokensLine = 48,
  maxTokensBlock = 160,
  maxPrefixChars = 3000,
  maxSuffixChars = 1000,
  auditPath = "",
  context = { crossFile = true, maxTokens = 1024, keepLines = 8, exclude = {}, knowledgeBase = {} },
  hover = { explain = true, maxTokens = 64, timeBudgetMs = 8000 },
  codeActions = { maxTokens = 400 },
  debounceMs = 60,
  decoding = { promptLookup = 8, threads = 0 },
  backend = { url = "" },
}

---@type airgap.Config
M.current = vim.deepcopy(M.defaults)

--- Merge user options over the defaults (not over a previous `setup()`: calling it again with
--- the same options gives the same result).
---@param opts? table
---@return airgap.Config
function M.set(opts)
  opts = opts or {}
  vim.validate("opts", opts, "table")
  local merged = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  -- Lists replace, they do not merge.
  for _, key in ipairs({ "cmd", "filetypes", "root_markers" }) do
    if opts[key] then
      merged[key] = opts[key]
    end
  end
  vim.validate("cmd", merged.cmd, "table")
  vim.validate("filetypes", merged.filetypes, "table")
  vim.validate("settings", merged.settings, "table")
  M.current = merged
  return merged
end

--- The settings sent to the server: the user's over the server's defaults.
---@param settings airgap.ServerSettings
---@return airgap.ServerSettings
function M.wire(settings)
  local wire = vim.tbl_deep_extend("force", vim.deepcopy(M.server_defaults), settings)
  for _, key in ipairs({ "exclude", "knowledgeBase" }) do -- lists replace, they do not merge
    if settings.context and settings.context[key] then
      wire.context[key] = settings.context[key]
    end
  end
  return wire
end

return M
