-- Driven by tests/e2e/test_nvim.py inside `nvim --headless`: sets up editors/nvim's plugin against
-- the real server, then plays a user's session (completion menu, ghost text, accept, dismiss,
-- commands) and writes what it saw as JSON to P.out (nvim_driver.lua: deadline, steps, finish).

local P = _G.CODE_KB_TEST
local api = vim.api
local D = dofile(P.driver)
local result, step, wait_for, feed, line = D.result, D.step, D.wait_for, D.feed, D.line
local finish = D.finish

local function items_of(response)
  for _, r in pairs(response or {}) do
    if r.error then
      error("request failed: " .. vim.inspect(r.error), 0)
    end
    if r.result then
      return r.result.items or r.result
    end
  end
  return {}
end

local function marks(buf)
  local ns = api.nvim_create_namespace("code_kb_ghost")
  local out = {}
  for _, m in ipairs(api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })) do
    local d = m[4]
    local text = {}
    for _, chunk in ipairs(d.virt_text or {}) do
      table.insert(text, chunk[1])
    end
    local extra = {}
    for _, vline in ipairs(d.virt_lines or {}) do
      local parts = {}
      for _, chunk in ipairs(vline) do
        table.insert(parts, chunk[1])
      end
      table.insert(extra, table.concat(parts))
    end
    table.insert(out, { row = m[2], col = m[3], virt_text = table.concat(text), virt_lines = extra,
                        pos = d.virt_text_pos })
  end
  return out
end

local function scenario()
  local code_kb = require("code_kb")
  local buf = api.nvim_get_current_buf()
  local v = vim.version()
  result.version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  result.api = code_kb.api
  result.tabstop = vim.bo[buf].tabstop

  step("attach")
  local client = wait_for("the client to attach and initialize", function()
    local c = code_kb.client(buf)
    return c and c.server_capabilities and next(c.server_capabilities) and c
  end, 60000)
  result.client_name = client.name
  result.root = client.config.root_dir
  result.ghost = code_kb.ghost
  result.inline_provider = client.server_capabilities.inlineCompletionProvider ~= nil
  result.completion_provider = client.server_capabilities.completionProvider ~= nil

  local here = { textDocument = { uri = vim.uri_from_bufnr(buf) },
                 position = { line = P.line, character = P.character } }

  step("textDocument/completion")
  local completion = items_of(vim.lsp.buf_request_sync(buf, "textDocument/completion", here, 120000))
  result.completion = {}
  for _, item in ipairs(completion) do
    table.insert(result.completion, { label = item.label, new_text = item.textEdit and item.textEdit.newText,
                                      detail = item.detail })
  end

  step("textDocument/inlineCompletion")
  local inline_params = vim.deepcopy(here)
  inline_params.context = { triggerKind = 1 }
  result.inline = items_of(vim.lsp.buf_request_sync(buf, "textDocument/inlineCompletion", inline_params, 120000))

  step("completion menu")
  api.nvim_win_set_cursor(0, { P.line + 1, 0 })
  feed("A", "n")
  wait_for("insert mode", function() return api.nvim_get_mode().mode == "i" end, 5000)
  feed("<C-x><C-o>", "n")
  wait_for("the completion menu", function() return vim.fn.pumvisible() == 1 end, 60000)
  result.menu = {}
  for _, item in ipairs(vim.fn.complete_info({ "items" }).items) do
    table.insert(result.menu, { word = item.word, abbr = item.abbr })
  end
  feed("<C-e>", "n")
  wait_for("the menu to close", function() return vim.fn.pumvisible() == 0 end, 5000)
  result.line_before_typing = line(buf, P.line)

  step("ghost text while typing")
  feed("p", "n")
  local sug = wait_for("ghost text", function() return code_kb.suggestion(buf) end, 60000)
  local row, col = unpack(api.nvim_win_get_cursor(0))
  result.cursor_at_ghost = { row - 1, col }
  result.suggestion = { text = sug.text, shown = sug.shown, row = sug.row, col = sug.col }
  result.marks = marks(buf)
  result.line_before_accept = line(buf, P.line)
  local direct = items_of(vim.lsp.buf_request_sync(buf, "textDocument/inlineCompletion", {
    textDocument = here.textDocument, position = { line = row - 1, character = col },
    context = { triggerKind = 1 } }, 120000))
  result.direct_at_ghost = direct[1] and direct[1].insertText
  -- A request of our own must not have taken the suggestion off the screen.
  wait_for("the suggestion to stay", function() return code_kb.suggestion(buf) end, 5000)

  step("dismiss with <C-]>, ask again with the trigger key")
  feed("<C-]>")
  wait_for("dismissal", function() return code_kb.suggestion(buf) == nil end, 5000)
  result.marks_after_dismiss = #marks(buf)
  result.line_after_dismiss = line(buf, P.line)
  feed("<M-\\>")
  local again = wait_for("invoked ghost text", function() return code_kb.suggestion(buf) end, 60000)
  result.invoked = again.text

  step("type-through")
  -- Typing the suggestion's own next character keeps the rest on screen (no model needed: the
  -- plugin trims it at once, and the server answers from its type-through cache).
  local first = again.text:sub(1, 1)
  if first:match("^[%w%p ]$") then
    api.nvim_feedkeys(first, "n", false)
    local s = wait_for("the rest of the suggestion", function()
      local cur = code_kb.suggestion(buf)
      return cur and cur.col == P.character + 2 and cur
    end, 60000)
    result.type_through = { typed = first, shown = s.shown, marks = marks(buf) }
    wait_for("requests to settle", function() return not code_kb.pending(buf) end, 60000)
  end

  step("accept with <Tab>")
  local lines_before = api.nvim_buf_line_count(buf)
  local before_tab = line(buf, P.line)
  result.shown_before_tab = code_kb.suggestion(buf) ~= nil
  feed("<Tab>")
  wait_for("the buffer to change", function() return line(buf, P.line) ~= before_tab end, 5000)
  local n = #vim.split(again.text, "\n", { plain = true })
  result.accepted_lines = api.nvim_buf_get_lines(buf, P.line, P.line + n, false)
  result.line_count_delta = api.nvim_buf_line_count(buf) - lines_before
  local r, c = unpack(api.nvim_win_get_cursor(0))
  result.cursor_after_accept = { r - 1, c }
  wait_for("requests to settle", function() return not code_kb.pending(buf) end, 60000)
  code_kb.dismiss(buf)

  step("<Tab> without a suggestion inserts a tab")
  r, c = unpack(api.nvim_win_get_cursor(0))
  local tab_line = line(buf, r - 1)
  result.tab = { before = tab_line, col = c }
  feed("<Tab>")
  wait_for("the tab", function() return line(buf, r - 1) ~= tab_line end, 5000)
  result.tab.after = line(buf, r - 1)

  step("multi-line suggestion")
  -- The tiny random model writes one line at this cursor, so the multi-line drawing gets an item
  -- of our own, through the same code path as the server's.
  r, c = unpack(api.nvim_win_get_cursor(0))
  local multi = code_kb.show_item(buf, { insertText = "first\n\tsecond\nthird" })
  result.multi = { shown = multi and multi.shown, marks = marks(buf), cursor = { r - 1, c },
                   before = line(buf, r - 1) }
  feed("<Tab>")
  wait_for("the multi-line accept", function() return api.nvim_buf_line_count(buf) >= r + 2 end, 5000)
  result.multi.after = api.nvim_buf_get_lines(buf, r - 1, r + 2, false)
  local r2, c2 = unpack(api.nvim_win_get_cursor(0))
  result.multi.cursor_after = { r2 - 1, c2 }

  step("leave insert mode")
  feed("<Esc>", "n")
  wait_for("normal mode", function() return api.nvim_get_mode().mode == "n" end, 5000)
  result.marks_in_normal_mode = #marks(buf)

  step(":CodeKbStatus")
  local status
  code_kb.status(buf, function(s) status = s end)
  status = wait_for("codeKb.status", function() return status end, 30000)
  result.status = { model_loaded = status.model.loaded, indexes = status.indexes }
  vim.cmd("CodeKbStatus")
  local float = wait_for("the status window", function()
    for _, win in ipairs(api.nvim_list_wins()) do
      if api.nvim_win_get_config(win).relative ~= "" then
        return win
      end
    end
  end, 30000)
  result.status_window = api.nvim_buf_get_lines(api.nvim_win_get_buf(float), 0, -1, false)

  step(":CodeKbReindex")
  vim.cmd("CodeKbReindex")
  wait_for("the reindex summary", function()
    for _, m in ipairs(result.notifications) do
      if m:find("reindexed", 1, true) then
        return true
      end
    end
  end, 60000)

  step("done")
  finish()
end

D.run(scenario)
