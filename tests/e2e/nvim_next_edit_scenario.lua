-- Driven by tests/e2e/test_nvim_next_edit.py inside `nvim --headless`: editors/nvim's next edits
-- against the real server, whose test hook (CODE_KB_TEST_NEXT_EDIT) makes every prediction replace
-- the first P.find in the document with the hook's text. Plays a user's session and writes what it saw
-- as JSON to P.out (nvim_driver.lua: deadline, steps, finish).
--
-- P.mode "with": the automatic request after typing, the off-screen hint, <Tab> in insert mode to jump
-- and to apply, the request after an applied edit and after accepted ghost text, :CodeKbNextEdit,
-- <Esc>, moving away, <Tab> in normal mode, stale answers, the server's counts.
-- P.mode "without": a server without a next-edit model gets no automatic requests.
-- P.mode "insert": no completion model, the hook inserts at the cursor: the server's ghost text is that
-- next edit (with its accept command), not drawn a second time; without ghost text on screen the
-- plugin shows the next-edit answer as ghost text itself.

local P = _G.CODE_KB_TEST
local api = vim.api
local D = dofile(P.driver)
local result, step, sleep, wait_for, feed, line = D.result, D.step, D.sleep, D.wait_for, D.feed, D.line

local function lines(buf)
  return api.nvim_buf_get_lines(buf, 0, -1, false)
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return { pos[1] - 1, pos[2] }
end

local function marks(buf)
  local ns = api.nvim_create_namespace("code_kb_next_edit")
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
    table.insert(out, {
      row = m[2], col = m[3], end_row = d.end_row, end_col = d.end_col, hl_group = d.hl_group,
      virt_text = #text > 0 and table.concat(text) or nil, virt_text_hl = d.virt_text and d.virt_text[1][2],
      pos = d.virt_text_pos, virt_lines = #extra > 0 and extra or nil, above = d.virt_lines_above,
    })
  end
  return out
end

-- Every request and notification the client sends, by method.
local sent = {}
local function count_messages(client)
  local new_api = vim.fn.has("nvim-0.11") == 1
  for _, kind in ipairs({ "request", "notify" }) do
    local original = client[kind]
    client[kind] = function(...)
      local method = select(new_api and 2 or 1, ...)
      sent[method] = (sent[method] or 0) + 1
      return original(...)
    end
  end
end

local function status_of(code_kb, buf)
  local status
  code_kb.status(buf, function(s) status = s end)
  return wait_for("codeKb.status", function() return status end, 30000)
end

local function edit_record(ne, buf)
  local e = ne.current(buf)
  return e and { from = e.from, to = e.to, rows = e.rows, text = e.text, hint = e.hint,
                 version = e.version, command = e.command and e.command.command }
end

local function shown(ne, buf, what)
  return wait_for(what, function() return ne.current(buf) end, 60000)
end

-- :CodeKbNextEdit, and its answer in.
local function ask(ne, buf)
  vim.cmd("CodeKbNextEdit")
  wait_for("the answer to :CodeKbNextEdit", function() return ne.last(buf).reason ~= "asked" end, 60000)
  return ne.current(buf)
end

-- Autocommands (CursorMoved, TextChanged) run once the main loop has had its turn.
local function after_events()
  sleep(100)
end

-- The edit a request brings, once it has come: the last answer is in and settled.
local function settle(code_kb, buf)
  wait_for("requests to settle", function()
    return not code_kb.next_edit.pending(buf) and not code_kb.pending(buf)
  end, 60000)
end

local function attach(code_kb, buf)
  step("attach")
  local client = wait_for("the client to attach and initialize", function()
    local c = code_kb.client(buf)
    return c and c.server_capabilities and next(c.server_capabilities) and c
  end, 60000)
  count_messages(client)
  local v = vim.version()
  result.version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  result.offset_encoding = client.offset_encoding
  result.window = { height = api.nvim_win_get_height(0) }
  return client
end

local function with_model(code_kb, buf, client)
  local ne = code_kb.next_edit
  local status = status_of(code_kb, buf)
  result.loaded_at_start = status.next_edit.loaded
  wait_for("the next-edit model", function()
    return status_of(code_kb, buf).next_edit.loaded
  end, 60000)

  step("typing, then a pause: an automatic request")
  api.nvim_win_set_cursor(0, { P.type_row + 1, 0 })
  feed("A", "n")
  wait_for("insert mode", function() return api.nvim_get_mode().mode == "i" end, 5000)
  feed(" ", "n")
  local auto = {}
  shown(ne, buf, "the automatic next edit")
  auto.edit = edit_record(ne, buf)
  auto.marks = marks(buf)
  auto.cursor = cursor()
  auto.mode = api.nvim_get_mode().mode
  auto.w0, auto.wlast = vim.fn.line("w0"), vim.fn.line("w$")
  auto.last = ne.last(buf)
  result.auto = auto

  step("<Tab> in insert mode jumps to the edit")
  settle(code_kb, buf)
  code_kb.dismiss(buf) -- the random model's ghost text, if any: <Tab> would accept that first
  result.jump = { ghost_before = code_kb.suggestion(buf) ~= nil }
  feed("<Tab>")
  wait_for("the jump", function() return cursor()[1] == P.edit_row end, 5000)
  result.jump.cursor = cursor()
  result.jump.mode = api.nvim_get_mode().mode
  result.jump.edit = edit_record(ne, buf)
  result.jump.marks = marks(buf)

  step("<Tab> again applies it")
  local before_apply = lines(buf)
  feed("<Tab>")
  wait_for("the edit applied", function() return #lines(buf) ~= #before_apply end, 5000)
  result.apply = { lines = lines(buf), cursor = cursor(), mode = api.nvim_get_mode().mode,
                   marks_right_after = #marks(buf) }
  result.apply.accepted = wait_for("the accept command's answer", function() return ne.accepted(buf) end, 30000)

  step("the applied edit's change asks again")
  shown(ne, buf, "the next edit after the applied one")
  result.after_apply = { edit = edit_record(ne, buf), marks = marks(buf), lines = lines(buf) }

  step("ghost text accepted with <Tab> while a next edit is shown, then the next edit after it")
  settle(code_kb, buf)
  shown(ne, buf, "a next edit")
  code_kb.dismiss(buf)
  local row = cursor()[1]
  local ghost = code_kb.show_item(buf, { insertText = P.ghost })
  result.ghost = { shown = ghost and ghost.shown, next_edit_before = edit_record(ne, buf), row = row,
                   line_before = line(buf, row) }
  feed("<Tab>")
  wait_for("the ghost text accepted", function() return line(buf, row) ~= result.ghost.line_before end, 5000)
  result.ghost.line_after = line(buf, row)
  result.ghost.cursor_after = cursor()
  result.ghost.next_edit_right_after = edit_record(ne, buf)
  shown(ne, buf, "the next edit after accepted ghost text")
  result.ghost.next_edit_later = edit_record(ne, buf)
  result.ghost.lines = lines(buf)

  step("leave insert mode")
  feed("<Esc>", "n")
  wait_for("normal mode", function() return api.nvim_get_mode().mode == "n" end, 5000)
  settle(code_kb, buf)
  sleep(P.debounce_ms + 200)
  settle(code_kb, buf)

  step("moving away dismisses")
  ask(ne, buf)
  result.moved_away = { before = edit_record(ne, buf), cursor_before = cursor() }
  api.nvim_win_set_cursor(0, { 1, 0 })
  after_events()
  result.moved_away.edit = edit_record(ne, buf)
  result.moved_away.marks = #marks(buf)

  step(":CodeKbNextEdit in normal mode")
  ask(ne, buf)
  local invoked = { edit = edit_record(ne, buf), marks = marks(buf), cursor = cursor(), lines = lines(buf) }
  result.invoked = invoked

  step("<Esc> dismisses, nothing applied, nothing asked again")
  local asked = sent["textDocument/copilotInlineEdit"]
  feed("<Esc>")
  wait_for("the edit to go", function() return ne.current(buf) == nil end, 5000)
  sleep(P.debounce_ms + 300)
  result.escaped = { edit = edit_record(ne, buf), marks = #marks(buf), lines = lines(buf),
                     pending = ne.pending(buf), cursor = cursor(),
                     asked_again = sent["textDocument/copilotInlineEdit"] - asked }

  step("<Tab> in normal mode jumps, moving off the edit and away dismisses")
  ask(ne, buf)
  feed("<Tab>")
  wait_for("the jump", function() return cursor()[1] ~= 0 end, 5000)
  after_events()
  result.normal_jump = { cursor = cursor(), edit = edit_record(ne, buf) }
  api.nvim_win_set_cursor(0, { P.away_row + 1, 0 })
  after_events()
  result.normal_jump.after_moving = { edit = edit_record(ne, buf), marks = #marks(buf) }

  step("<Tab> in normal mode applies")
  ask(ne, buf)
  local applying = edit_record(ne, buf)
  feed("<Tab>")
  wait_for("the jump", function() return cursor()[1] == applying.rows[1] end, 5000)
  local before = lines(buf)
  feed("<Tab>")
  wait_for("the edit applied", function() return #lines(buf) ~= #before end, 5000)
  result.normal_apply = { edit = applying, before = before, lines = lines(buf), cursor = cursor(),
                          mode = api.nvim_get_mode().mode }
  result.normal_apply.accepted = wait_for("the accept answer", function() return ne.accepted(buf) end, 30000)

  step("whole lines: inserted ones drawn as virtual lines and applied, removed ones highlighted")
  settle(code_kb, buf)
  sleep(P.debounce_ms + 200)
  settle(code_kb, buf)
  ne.dismiss(buf)
  local function answer(text, from_line, to_line)
    return { edits = { {
      text = text, textDocument = { uri = vim.uri_from_bufnr(buf), version = vim.lsp.util.buf_versions[buf] },
      range = { start = { line = from_line, character = 0 }, ["end"] = { line = to_line, character = 0 } },
    } } } -- no command: the server never offered it, so nothing to tell it
  end
  api.nvim_win_set_cursor(0, { 2, 0 })
  local whole = { before = lines(buf) }
  whole.shown = ne.handle(buf, client, answer("import json\nimport os\n", 1, 1), 1) ~= nil
  whole.marks = marks(buf)
  feed("<Tab>")
  wait_for("the lines inserted", function() return #lines(buf) == #whole.before + 2 end, 5000)
  whole.lines, whole.cursor = lines(buf), cursor()
  settle(code_kb, buf)
  ne.dismiss(buf)
  whole.removed = ne.handle(buf, client, answer("", 1, 3), 1) ~= nil
  whole.removed_marks = marks(buf)
  feed("<Esc>")
  wait_for("the edit to go", function() return ne.current(buf) == nil end, 5000)
  result.whole = whole

  step("a stale answer is dropped")
  settle(code_kb, buf)
  sleep(P.debounce_ms + 200)
  settle(code_kb, buf)
  ne.dismiss(buf)
  local version = vim.lsp.util.buf_versions[buf]
  local old = {
    text = "stale", command = { title = "Accept next edit", command = "codeKb.acceptNextEdit", arguments = { "x" } },
    textDocument = { uri = vim.uri_from_bufnr(buf), version = version - 1 },
    range = { start = { line = 0, character = 0 }, ["end"] = { line = 0, character = 3 } },
  }
  local stale = { injected = ne.handle(buf, client, { edits = { old } }, 1) ~= nil }
  stale.injected_last = ne.last(buf)
  stale.injected_marks = #marks(buf)
  -- A real answer: asked at one version, the buffer changed before it came.
  local here = lines(buf)
  ne.request(buf, 1)
  api.nvim_buf_set_lines(buf, 0, 0, false, { "# changed while asking" })
  wait_for("the answer", function() return ne.last(buf).reason ~= "asked" end, 30000)
  stale.real_last = ne.last(buf)
  stale.real_marks = #marks(buf)
  stale.real_edit = edit_record(ne, buf)
  stale.lines_unchanged = vim.deep_equal(vim.list_slice(lines(buf), 2), here)
  result.stale = stale

  step("the server's counts")
  settle(code_kb, buf)
  result.status = status_of(code_kb, buf).next_edit
  result.sent = sent
end

local function without_model(code_kb, buf)
  local ne = code_kb.next_edit
  step("typing, then a pause: no request without a next-edit model")
  api.nvim_win_set_cursor(0, { P.type_row + 1, 0 })
  feed("A", "n")
  wait_for("insert mode", function() return api.nvim_get_mode().mode == "i" end, 5000)
  feed(" ", "n")
  sleep(P.debounce_ms + 100)
  wait_for("the status answer", function() return (sent["workspace/executeCommand"] or 0) > 0 end, 30000)
  settle(code_kb, buf)
  feed(" ", "n") -- another pause: the status answer is remembered
  sleep(P.debounce_ms + 300)
  settle(code_kb, buf)
  result.typed = { edit = edit_record(ne, buf), marks = #marks(buf), sent = vim.deepcopy(sent) }
  feed("<Esc>", "n")
  wait_for("normal mode", function() return api.nvim_get_mode().mode == "n" end, 5000)

  step(":CodeKbNextEdit says why")
  vim.cmd("CodeKbNextEdit")
  wait_for("the message", function()
    for _, m in ipairs(result.notifications) do
      if m:find("next edit", 1, true) then
        return true
      end
    end
  end, 30000)
  result.invoked = { last = ne.last(buf), sent = vim.deepcopy(sent) }
  result.status = status_of(code_kb, buf).next_edit
end

local function insertion(code_kb, buf)
  local ne = code_kb.next_edit
  wait_for("the next-edit model", function() return status_of(code_kb, buf).next_edit.loaded end, 60000)
  step("typing: an insertion at the cursor comes as ghost text")
  api.nvim_win_set_cursor(0, { P.type_row + 1, 0 })
  feed("A", "n")
  wait_for("insert mode", function() return api.nvim_get_mode().mode == "i" end, 5000)
  feed(" ", "n")
  local sug = wait_for("ghost text", function() return code_kb.suggestion(buf) end, 60000)
  wait_for("the next edit's answer", function()
    local last = ne.last(buf)
    return last and last.reason ~= "asked"
  end, 60000)
  result.ghost = { text = sug.text, command = sug.command and sug.command.command, last = ne.last(buf),
                   edit = edit_record(ne, buf), marks = #marks(buf), line = line(buf, P.type_row) }
  step("<Tab> takes it and runs its accept command")
  feed("<Tab>")
  wait_for("the ghost text taken", function() return line(buf, P.type_row) ~= result.ghost.line end, 5000)
  result.line_after = line(buf, P.type_row)
  result.status = wait_for("the accept counted", function()
    local status = status_of(code_kb, buf).next_edit
    return status.accepted > 0 and status
  end, 30000)

  step("a next-edit answer that only adds text at the cursor becomes ghost text")
  settle(code_kb, buf)
  code_kb.dismiss(buf)
  local row_line = line(buf, P.type_row)
  ne.request(buf, 1)
  wait_for("the answer", function() return ne.last(buf).reason ~= "asked" end, 60000)
  local converted = code_kb.suggestion(buf)
  result.converted = { last = ne.last(buf), text = converted and converted.text,
                       command = converted and converted.command and converted.command.command,
                       edit = edit_record(ne, buf), marks = #marks(buf) }
  feed("<Tab>")
  wait_for("the ghost text taken", function() return line(buf, P.type_row) ~= row_line end, 5000)
  result.converted.line_before, result.converted.line_after = row_line, line(buf, P.type_row)
  result.converted.status = wait_for("the accept counted", function()
    local status = status_of(code_kb, buf).next_edit
    return status.accepted > 1 and status
  end, 30000)
end

D.run(function()
  local code_kb = require("code_kb")
  local buf = api.nvim_get_current_buf()
  local client = attach(code_kb, buf)
  if P.mode == "with" then
    with_model(code_kb, buf, client)
  elseif P.mode == "insert" then
    insertion(code_kb, buf)
  else
    without_model(code_kb, buf)
  end
  step("done")
  D.finish()
end)
