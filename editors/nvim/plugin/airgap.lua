-- The commands exist from start-up; the server starts once `require("airgap").setup{}` is called.
if vim.g.loaded_airgap then
  return
end
vim.g.loaded_airgap = true

vim.api.nvim_create_user_command("AirgapStatus", function()
  require("airgap").show_status()
end, { desc = "airgap: the model, its version, GPU or CPU" })

vim.api.nvim_create_user_command("AirgapAudit", function(o)
  require("airgap").show_audit(o.args)
end, { nargs = "?", desc = "airgap: the audit record of the last suggestion (or of ID)" })
