-- Driven by tests/e2e/test_nvim_copilot_clients.py inside `nvim --headless` 0.11: code-kb's next
-- edits through a plugin written for GitHub's Copilot language server, as the README configures it.
-- P.client "sidekick": folke/sidekick.nvim, code-kb started by our plugin under a name holding
-- "copilot". P.client "copilot-lsp": copilotlsp-nvim/copilot-lsp's NES, wired from our on_attach.
-- The server's test hook makes every prediction replace the first FIND with TEXT
-- (test_nvim_next_edit.py). Neovim's lsp.log and the server's stderr come back on failure.

local P = _G.CODE_KB_TEST
local api = vim.api
local D = dofile(P.driver)
local result, step, sleep, wait_for, feed = D.result, D.step, D.sleep, D.wait_for, D.feed

vim.opt.runtimepath:prepend(P.plugin_dir)

local sent = {}
local function count_messages(client)
  for _, kind in ipairs({ "request", "notify" }) do
    local original = client[kind]
    client[kind] = function(self, method, ...)
      sent[method] = (sent[method] or 0) + 1
      return original(self, method, ...)
    end
  end
end

local function lines(buf)
  return api.nvim_buf_get_lines(buf, 0, -1, false)
end

local function status_of(code_kb, buf)
  local status
  code_kb.status(buf, function(s) status = s end)
  return wait_for("codeKb.status", function() return status end, 30000)
end

local function sidekick(code_kb, buf, client)
  -- sidekick.nvim since its commit f8eac10 drops an answer whose handler context has no request_id:
  -- does this Neovim's context carry one?
  local probe
  client:request("workspace/executeCommand", { command = "codeKb.status" }, function(_, _, ctx) probe = ctx end, buf)
  probe = wait_for("the probe's answer", function() return probe end, 30000)
  result.ctx_has_request_id = probe.request_id ~= nil
  require("sidekick").setup({})
  local nes = require("sidekick.nes")
  step("sidekick: a change in normal mode asks")
  api.nvim_win_set_cursor(0, { P.type_row + 1, 0 })
  feed("A", "n")
  wait_for("insert mode", function() return api.nvim_get_mode().mode == "i" end, 5000)
  feed(" <Esc>", "n")
  wait_for("the server's suggestion", function() return status_of(code_kb, buf).next_edit.suggested > 0 end, 60000)
  sleep(500) -- its answer reaches sidekick
  result.have = nes.have()
  if not result.have then
    return
  end
  local edit = nes.get(buf)[1]
  result.edit = { from = edit.from, to = edit.to, text = edit.text }
  result.marks = #api.nvim_buf_get_extmarks(buf, require("sidekick.config").ns, 0, -1, {})
  step("sidekick: jump, then apply")
  require("sidekick").nes_jump_or_apply()
  wait_for("the jump", function() return api.nvim_win_get_cursor(0)[1] - 1 == edit.from[1] end, 5000)
  result.cursor = api.nvim_win_get_cursor(0)
  local before = lines(buf)
  require("sidekick").nes_jump_or_apply()
  wait_for("the edit applied", function() return #lines(buf) ~= #before end, 5000)
  result.lines = lines(buf)
  wait_for("the accept command", function() return status_of(code_kb, buf).next_edit.accepted > 0 end, 30000)
end

local function copilot_lsp(code_kb, buf)
  local nes = require("copilot-lsp.nes")
  step("copilot-lsp: a change asks")
  api.nvim_win_set_cursor(0, { P.type_row + 1, 0 })
  feed("A", "n")
  wait_for("insert mode", function() return api.nvim_get_mode().mode == "i" end, 5000)
  feed(" <Esc>", "n")
  local state = wait_for("copilot-lsp's edit", function() return vim.b[buf].nes_state end, 60000)
  result.edit = { range = state.range, text = state.text }
  result.marks = #api.nvim_buf_get_extmarks(buf, api.nvim_create_namespace("copilotlsp.nes"), 0, -1, {})
  step("copilot-lsp: jump, then apply (its README's <Tab>)")
  local before = lines(buf)
  if not nes.walk_cursor_start_edit() then
    error("walk_cursor_start_edit did not move", 0)
  end
  wait_for("the jump", function() return api.nvim_win_get_cursor(0)[1] - 1 == state.range.start.line end, 5000)
  result.cursor = api.nvim_win_get_cursor(0)
  local _ = nes.walk_cursor_start_edit() or (nes.apply_pending_nes() and nes.walk_cursor_end_edit())
  wait_for("the edit applied", function() return #lines(buf) ~= #before end, 5000)
  result.lines = lines(buf)
  sleep(300) -- a command, had it sent one, would be counted by now
end

if P.client == "copilot-lsp" then
  -- copilot-lsp sends and applies positions in UTF-16 whatever was negotiated: offer only UTF-16.
  P.setup.capabilities = vim.tbl_deep_extend("force", vim.lsp.protocol.make_client_capabilities(),
    { general = { positionEncodings = { "utf-16" } } })
  P.setup.on_attach = function(client)
    require("copilot-lsp.nes").lsp_on_init(client, api.nvim_create_augroup("copilotlsp.init", { clear = true }))
  end
end

D.run(function()
  local code_kb = require("code_kb")
  local buf = api.nvim_get_current_buf()
  step("attach")
  local client = wait_for("the client to attach and initialize", function()
    local c = code_kb.client(buf)
    return c and c.server_capabilities and next(c.server_capabilities) and c
  end, 60000)
  count_messages(client)
  result.client_name = client.name
  result.offset_encoding = client.offset_encoding
  result.commands = client.server_capabilities.executeCommandProvider
  wait_for("the next-edit model", function() return status_of(code_kb, buf).next_edit.loaded end, 60000)
  if P.client == "sidekick" then
    sidekick(code_kb, buf, client)
  else
    copilot_lsp(code_kb, buf)
  end
  step("the server's counts")
  result.status = status_of(code_kb, buf).next_edit
  result.sent = sent
  step("done")
  D.finish()
end)
