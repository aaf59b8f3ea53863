-- Minimal init for the headless tests: only this plug-in, the real server, a temporary audit log.
-- AIRGAP_ROOT: the repository; AIRGAP_SERVER: the airgap-lsp executable; AIRGAP_TEST_DIR: temp.
local root = assert(os.getenv("AIRGAP_ROOT"), "AIRGAP_ROOT is not set")
vim.opt.runtimepath = { root .. "/editors/nvim", vim.env.VIMRUNTIME }
vim.opt.packpath = {}
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.cmd("filetype on")
vim.cmd("runtime plugin/airgap.lua")
require("airgap").setup({
  cmd = { assert(os.getenv("AIRGAP_SERVER")), "serve" },
  root_markers = { "sensors.ads" },
  settings = { auditPath = os.getenv("AIRGAP_TEST_DIR") .. "/audit.jsonl" },
  inline = { native = os.getenv("AIRGAP_NATIVE") ~= "0" and "auto" or false },
})
