-- code-kb next-edit suggestions: asks the server (`textDocument/copilotInlineEdit`) after a pause in
-- typing or on :CodeKbNextEdit, draws the edit it predicts with extmarks, jumps to it and applies it.
-- Thin: the server predicts; this module shows, moves the cursor and edits the buffer.
--
--   removed text  highlighted where it stands (hl_delete: strikethrough unless your scheme sets it)
--   new text      its first line as virtual text after the removed text ('inline' from 0.10, at the
--                 line's end before), further lines as virt_lines; whole new lines as virt_lines
--   off screen    a hint at the cursor's line: "next edit at line N: <Tab>"
-- The server is told what happened: textDocument/didShowInlineEdit when an edit is drawn, the edit's
-- command (codeKb.acceptNextEdit) when it is applied.

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop

local HAS_010 = vim.fn.has("nvim-0.10") == 1
local INVOKED, AUTOMATIC = 1, 2 -- the triggerKind values Copilot's clients send
local METHOD = "textDocument/copilotInlineEdit"
local DID_SHOW = "textDocument/didShowInlineEdit"
local RETRY_LOADING_MS, RETRY_ABSENT_MS = 3000, 30000 -- how soon to ask codeKb.status again

M.ns = api.nvim_create_namespace("code_kb_next_edit")

-- Set by init(): the options table (init.lua's `next_edit`) and init.lua's helpers.
local options = nil
local lib = nil

local state = {} -- bufnr -> { timer, waiting, request = {client, id}, edit, last }
local servers = {} -- client id -> { loaded, at, retry_ms, asking, why } from codeKb.status

local function buf_state(bufnr)
  local s = state[bufnr]
  if not s then
    s = {}
    state[bufnr] = s
  end
  return s
end

local function resolve(bufnr)
  return (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
end

local function is_normal_or_insert()
  local mode = api.nvim_get_mode().mode
  return mode == "n" or mode == "i"
end

local function cursor_row()
  return api.nvim_win_get_cursor(0)[1] - 1
end

local function line_of(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
end

-- What the document's version is for the client: Neovim sends buf_versions[bufnr] in didChange.
local function version_of(bufnr)
  return vim.lsp.util.buf_versions[bufnr]
end

-- Text as one virtual line: tabs as 'tabstop' spaces, control characters as Vim shows them (^X).
local function displayed(bufnr, text)
  return vim.fn.strtrans((text:gsub("\t", string.rep(" ", vim.bo[bufnr].tabstop))))
end

--- Called once by init.lua: `opts` is its `next_edit` options table, `helpers` { client(bufnr),
--- call(client, method, ...), byte_col(bufnr, row, character, encoding), ghost_text() ("plugin"
--- when init.lua draws ghost text, else nil), ghost_shown(bufnr), show_ghost(bufnr, item) }.
function M.init(opts, helpers)
  options, lib = opts, helpers
end

-- -- the edit on screen --------------------------------------------------------------------------

local function clear(bufnr)
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

-- The rows an edit covers, and the ones between it and where the cursor stood when it appeared:
-- the cursor may move within them (towards the edit) without dismissing it.
local function span(edit)
  return math.min(edit.anchor, edit.rows[1]), math.max(edit.anchor, edit.rows[2])
end

local function at_edit(edit, row)
  return row >= edit.rows[1] and row <= edit.rows[2]
end

local function visible(row)
  return row + 1 >= vim.fn.line("w0") and row + 1 <= vim.fn.line("w$")
end

local function draw(bufnr)
  local edit = buf_state(bufnr).edit
  clear(bufnr)
  if not edit then
    return
  end
  local o = options
  local from, to = edit.from, edit.to
  local n_lines = api.nvim_buf_line_count(bufnr)
  if from[1] ~= to[1] or from[2] ~= to[2] then
    api.nvim_buf_set_extmark(bufnr, M.ns, from[1], from[2], {
      end_row = to[1], end_col = to[2], hl_group = o.hl_delete, hl_eol = to[1] > from[1],
    })
  end
  local lines = vim.split(edit.text, "\n", { plain = true })
  if edit.whole_lines then
    table.remove(lines) -- the empty string after the last line break
    if #lines > 0 then
      local virt = {}
      for _, l in ipairs(lines) do
        table.insert(virt, { { displayed(bufnr, l), o.hl_add } })
      end
      -- Above the line the range ends at; below the last line for a range that ends past it.
      local above = not edit.past_end
      api.nvim_buf_set_extmark(bufnr, M.ns, above and to[1] or n_lines - 1, 0,
        { virt_lines = virt, virt_lines_above = above })
    end
  else
    local mark = {}
    if lines[1] ~= "" then
      mark.virt_text = { { displayed(bufnr, lines[1]), o.hl_add } }
      mark.virt_text_pos = HAS_010 and "inline" or "eol"
    end
    if #lines > 1 then
      mark.virt_lines = {}
      for i = 2, #lines do
        table.insert(mark.virt_lines, { { displayed(bufnr, lines[i]), o.hl_add } })
      end
    end
    if next(mark) then
      local at = to[1] < n_lines and to or { n_lines - 1, #line_of(bufnr, n_lines - 1) }
      api.nvim_buf_set_extmark(bufnr, M.ns, at[1], at[2], mark)
    end
  end
  -- An edit the user cannot see: say where it is, at the cursor.
  if api.nvim_get_current_buf() == bufnr then
    local row = cursor_row()
    if not at_edit(edit, row) and not visible(edit.rows[1]) then
      edit.hint = string.format("next edit at line %d", edit.rows[1] + 1) .. (o.key ~= "" and ": " .. o.key or "")
      api.nvim_buf_set_extmark(bufnr, M.ns, row, 0, {
        virt_text = { { "  " .. edit.hint, o.hl_hint } }, virt_text_pos = "eol",
      })
    else
      edit.hint = nil
    end
  end
end

--- The next edit shown in a buffer, or nil: { text, range, version, command, from = {row, col},
--- to = {row, col} (0-based rows, byte columns), rows = {first, last} (the buffer lines it is shown
--- on), anchor (the cursor's row when it appeared), hint }.
function M.current(bufnr)
  local s = state[resolve(bufnr)]
  return s and s.edit
end

--- What became of the last request in a buffer: { reason = "asked" (no answer yet) | "shown" |
--- "none" | "stale" | "moved" | "ghost" (it only adds text after the cursor: ghost text's place) |
--- "error", version, edits = how many came, as_ghost = true when it was shown as ghost text }.
function M.last(bufnr)
  local s = state[resolve(bufnr)]
  return s and s.last
end

--- Whether a request waits on its debounce or on the server.
function M.pending(bufnr)
  local s = state[resolve(bufnr)]
  return s ~= nil and (s.request ~= nil or s.waiting == true)
end

local function cancel(bufnr)
  local s = state[bufnr]
  if not s then
    return
  end
  if s.timer then
    s.timer:stop()
  end
  s.waiting = false
  if s.request then
    pcall(lib.call, s.request.client, "cancel_request", s.request.id)
    s.request = nil
  end
end

--- Hide the shown edit; false when there is none. Nothing is applied.
function M.dismiss(bufnr)
  bufnr = resolve(bufnr)
  local s = state[bufnr]
  local shown = s ~= nil and s.edit ~= nil
  if s then
    s.edit = nil
  end
  clear(bufnr)
  return shown
end

-- An edit from the server as rows and byte columns of the buffer; nil if it is not for this buffer's
-- current text (another document, an older version: the user typed on while it was computed).
local function read_edit(bufnr, client, wire, asked_tick)
  local doc = wire.textDocument or {}
  if doc.uri ~= vim.uri_from_bufnr(bufnr) then
    return nil, "moved"
  end
  if doc.version ~= version_of(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= asked_tick then
    return nil, "stale"
  end
  local n_lines = api.nvim_buf_line_count(bufnr)
  local function pos(p)
    if p.line >= n_lines then -- the end of the document: past its last line
      return { n_lines, 0 }
    end
    return { p.line, lib.byte_col(bufnr, p.line, p.character, client.offset_encoding) }
  end
  local edit = {
    client_id = client.id, text = wire.text or "", range = wire.range, version = doc.version,
    command = wire.command, from = pos(wire.range.start), to = pos(wire.range["end"]),
  }
  -- Whole lines replaced or inserted (the range from a line's start to a line's start, the new text
  -- ending with a line break, or none): drawn as virtual lines, not beside the text.
  edit.whole_lines = edit.from[2] == 0 and edit.to[2] == 0 and (edit.text == "" or edit.text:sub(-1) == "\n")
  edit.past_end = edit.to[1] >= n_lines
  if edit.to[1] == n_lines and edit.from[1] < n_lines then
    -- A range ending past the last line ends at the last line's end for the drawing.
    edit.to = { n_lines - 1, #line_of(bufnr, n_lines - 1) }
  end
  -- The lines it stands on (an insertion past the last line is shown on the last line).
  edit.rows = { math.min(edit.from[1], n_lines - 1), math.min(edit.to[1], n_lines - 1) }
  return edit
end

-- Whether `small` is a subsequence of `big`: replacing it with `big` only adds characters.
local function only_adds(small, big)
  local i = 1
  for j = 1, #big do
    if i > #small then
      break
    end
    if small:byte(i) == big:byte(j) then
      i = i + 1
    end
  end
  return i > #small
end

-- The edit as a ghost-text item at the cursor ({insertText, range, command}), or nil: it must lie on
-- the cursor's line at or after the cursor and only add characters.
local function as_ghost_text(bufnr, client, edit)
  local row, col = unpack(api.nvim_win_get_cursor(0))
  row = row - 1
  if edit.from[1] ~= row or edit.to[1] ~= row or edit.from[2] < col then
    return nil
  end
  local line = line_of(bufnr, row)
  if not only_adds(line:sub(edit.from[2] + 1, edit.to[2]), edit.text) then
    return nil
  end
  local here = vim.lsp.util.make_position_params(0, client.offset_encoding).position
  return {
    insertText = line:sub(col + 1, edit.from[2]) .. edit.text,
    range = { start = here, ["end"] = edit.range["end"] },
    command = edit.command,
  }
end

-- Draw an edit and tell the server it is on screen.
local function show(bufnr, client, edit)
  local s = buf_state(bufnr)
  edit.anchor = cursor_row()
  s.edit = edit
  draw(bufnr)
  if edit.command then
    lib.call(client, "notify", DID_SHOW, { item = { command = edit.command } })
  end
end

--- Take an answer of textDocument/copilotInlineEdit ({edits = [...]}) for a buffer, as the request
--- does: the first edit is shown if it fits the buffer's current text. `asked_tick`: the buffer's
--- changedtick when it was asked (default: now).
function M.handle(bufnr, client, result, kind, asked_tick)
  bufnr = resolve(bufnr)
  local s = buf_state(bufnr)
  local edits = result and result.edits or {}
  s.last = { reason = "none", edits = #edits, version = version_of(bufnr) }
  local wire = edits[1]
  if not wire then
    return nil
  end
  local edit, why = read_edit(bufnr, client, wire, asked_tick or api.nvim_buf_get_changedtick(bufnr))
  if not edit then
    s.last.reason = why
    return nil
  end
  if api.nvim_get_current_buf() ~= bufnr or (kind ~= INVOKED and not is_normal_or_insert()) then
    s.last.reason = "moved"
    return nil
  end
  local item = api.nvim_get_mode().mode == "i" and lib.ghost_text() == "plugin" and as_ghost_text(bufnr, client, edit)
  if item then
    -- While typing, an edit that only adds text after the cursor on its line is ghost text, as in
    -- VS Code: shown as such unless ghost text is already there (the server offers an insertion at
    -- the cursor as ghost text itself when the completion model has none).
    s.last.reason = "ghost"
    if not lib.ghost_shown(bufnr) and lib.show_ghost(bufnr, item) then
      s.last.as_ghost = true
      if edit.command then
        lib.call(client, "notify", DID_SHOW, { item = { command = edit.command } })
      end
    end
    return nil
  end
  s.last.reason = "shown"
  show(bufnr, client, edit)
  return edit
end

-- -- asking --------------------------------------------------------------------------------------

local function notify(msg, level)
  vim.notify("code-kb: " .. msg, level or vim.log.levels.INFO)
end

-- Whether the server has a next-edit model, from codeKb.status (asked at most every few seconds
-- while it has none: it may still be loading, or settings may change); `on_answer(loaded, why)`.
-- False when the request could not be sent.
local function ask_status(client, bufnr, on_answer)
  return lib.call(client, "request", "workspace/executeCommand", { command = "codeKb.status" }, function(err, status)
    local info = (not err and type(status) == "table" and type(status.next_edit) == "table") and status.next_edit
      or {}
    local configured = info.enabled ~= false and info.model_setting ~= nil and info.model_setting ~= vim.NIL
    local why = nil
    if err then
      why = "codeKb.status failed: " .. (err.message or vim.inspect(err))
    elseif info.enabled == false then
      why = "the server's nextEdit setting is false"
    elseif not info.loaded then
      why = configured and "the server's next-edit model is not loaded (yet)"
        or "the server has no next-edit model; set nextEditModel in init_options"
    end
    servers[client.id] = {
      loaded = info.loaded == true, at = uv.now(), why = why,
      retry_ms = configured and RETRY_LOADING_MS or RETRY_ABSENT_MS,
    }
    on_answer(info.loaded == true, why)
  end, bufnr)
end

local function when_available(client, bufnr, then_ask)
  local known = servers[client.id]
  if known and (known.loaded or known.asking or uv.now() - known.at < known.retry_ms) then
    if known.loaded then
      then_ask()
    end
    return
  end
  servers[client.id] = vim.tbl_extend("force", known or { at = 0, retry_ms = 0 }, { asking = true })
  local sent = ask_status(client, bufnr, function(loaded)
    if loaded then
      then_ask()
    end
  end)
  if not sent then
    servers[client.id] = nil
  end
end

--- Ask the server for the next edit at the cursor now. `kind`: 1 invoked (:CodeKbNextEdit: says
--- so when there is none), 2 automatic (default).
function M.request(bufnr, kind)
  bufnr = resolve(bufnr)
  kind = kind or AUTOMATIC
  local client = lib.client(bufnr)
  if not client or api.nvim_get_current_buf() ~= bufnr then
    return false
  end
  cancel(bufnr)
  local s = buf_state(bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.textDocument.version = version_of(bufnr)
  params.context = { triggerKind = kind }
  local tick = api.nvim_buf_get_changedtick(bufnr)
  s.last = { reason = "asked", edits = 0, version = params.textDocument.version }
  local this = {}
  local ok, id = lib.call(client, "request", METHOD, params, function(err, result)
    if s.request ~= this then
      return -- superseded or cancelled
    end
    s.request = nil
    if not api.nvim_buf_is_valid(bufnr) then
      return
    end
    if err then
      s.last = { reason = "error", edits = 0, version = version_of(bufnr) }
      if kind == INVOKED then
        notify(METHOD .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      end
      return
    end
    local edit = M.handle(bufnr, client, result, kind, tick)
    if not edit and kind == INVOKED then
      ask_status(client, bufnr, function(loaded, why)
        notify(loaded and "no next edit here" or ("no next edits: " .. why))
      end)
    end
  end, bufnr)
  if ok then
    this.client, this.id = client, id
    s.request = this
  end
  return ok
end

--- After a pause of `debounce_ms`: ask, if the server has a next-edit model.
function M.schedule(bufnr)
  bufnr = resolve(bufnr)
  local s = buf_state(bufnr)
  s.timer = s.timer or uv.new_timer()
  s.timer:stop()
  s.waiting = true
  s.timer:start(options.debounce_ms, 0, vim.schedule_wrap(function()
    s.waiting = false
    if not api.nvim_buf_is_valid(bufnr) or api.nvim_get_current_buf() ~= bufnr or not is_normal_or_insert() then
      return
    end
    local client = lib.client(bufnr)
    if client then
      when_available(client, bufnr, function()
        if api.nvim_get_current_buf() == bufnr and not s.edit then
          M.request(bufnr, AUTOMATIC)
        end
      end)
    end
  end))
end

-- -- jump and apply ------------------------------------------------------------------------------

--- Move the cursor to the shown edit's start; false when there is none or the cursor is there.
function M.jump(bufnr)
  bufnr = resolve(bufnr)
  local edit = M.current(bufnr)
  if not edit or at_edit(edit, cursor_row()) then
    return false
  end
  if api.nvim_get_mode().mode == "n" then
    vim.cmd("normal! m'") -- back with <C-o>
  end
  local row = edit.rows[1]
  api.nvim_win_set_cursor(0, { row + 1, row == edit.from[1] and edit.from[2] or 0 })
  draw(bufnr) -- the hint goes once the edit is on screen
  return true
end

--- Apply the shown edit (with the client's position encoding), put the cursor after its new text and
--- send its accept command; false when there is none. `on_accepted(result)` gets the command's answer.
function M.apply(bufnr, on_accepted)
  bufnr = resolve(bufnr)
  local edit = M.current(bufnr)
  local client = edit and vim.lsp.get_client_by_id(edit.client_id)
  if not edit or not client or version_of(bufnr) ~= edit.version then
    M.dismiss(bufnr)
    return false
  end
  M.dismiss(bufnr)
  cancel(bufnr)
  local text_edit = { range = vim.deepcopy(edit.range), newText = edit.text }
  vim.lsp.util.apply_text_edits({ text_edit }, bufnr, client.offset_encoding)
  local lines = vim.split(edit.text, "\n", { plain = true })
  if edit.whole_lines and #lines > 1 then
    table.remove(lines) -- new whole lines: the cursor goes to the last of them, not the line after
  end
  local row = edit.from[1] + #lines - 1
  local col = (#lines == 1 and edit.from[2] or 0) + #lines[#lines]
  if api.nvim_get_mode().mode ~= "i" then
    col = math.max(col - 1, 0) -- normal mode: on the last new character
  end
  row = math.min(row, api.nvim_buf_line_count(bufnr) - 1)
  pcall(api.nvim_win_set_cursor, 0, { row + 1, math.min(col, #line_of(bufnr, row)) })
  local s = buf_state(bufnr)
  s.accepted = nil
  if edit.command then
    local command = { command = edit.command.command, arguments = edit.command.arguments }
    lib.call(client, "request", "workspace/executeCommand", command, function(err, result)
      s.accepted = err and { error = err.message or vim.inspect(err) } or result
      if on_accepted then
        on_accepted(s.accepted)
      end
    end, bufnr)
  end
  return true
end

--- The accept command's answer for the last edit applied in a buffer ({accepted = true}), or nil.
function M.accepted(bufnr)
  local s = state[resolve(bufnr)]
  return s and s.accepted
end

--- The key's action: with an edit shown, jump to it, or apply it when the cursor is on it. False when
--- no edit is shown (the key then does what it did before).
function M.tab(bufnr)
  bufnr = resolve(bufnr)
  local edit = M.current(bufnr)
  if not edit then
    return false
  end
  return M.jump(bufnr) or M.apply(bufnr)
end

-- -- wiring --------------------------------------------------------------------------------------

-- The cursor moved: keep the edit while the cursor stays between where it was and the edit, else
-- drop it; redraw the hint.
local function follow_cursor(bufnr)
  local edit = M.current(bufnr)
  if not edit then
    return
  end
  local row = cursor_row()
  local lo, hi = span(edit)
  if row < lo or row > hi then
    M.dismiss(bufnr)
  elseif edit.hint or (not at_edit(edit, row) and not visible(edit.rows[1])) then
    draw(bufnr)
  end
end

local esc_watch = nil

--- Autocommands for a buffer: a text change hides the edit and (with `auto`) asks again after a
--- pause; moving away or leaving the buffer hides it; <Esc> hides it (watched, not mapped).
function M.attach(bufnr)
  local group = api.nvim_create_augroup("code_kb_next_edit_" .. bufnr, { clear = true })
  api.nvim_create_autocmd({ "TextChanged", "TextChangedI" }, { group = group, buffer = bufnr, callback = function()
    M.dismiss(bufnr)
    if options.auto then
      M.schedule(bufnr)
    else
      cancel(bufnr)
    end
  end })
  api.nvim_create_autocmd({ "CursorMoved", "CursorMovedI" }, { group = group, buffer = bufnr, callback = function()
    follow_cursor(bufnr)
  end })
  api.nvim_create_autocmd("BufLeave", { group = group, buffer = bufnr, callback = function()
    cancel(bufnr)
    M.dismiss(bufnr)
  end })
  api.nvim_create_autocmd("BufWipeout", { group = group, buffer = bufnr, callback = function()
    cancel(bufnr)
    local s = state[bufnr]
    if s and s.timer then
      s.timer:close()
    end
    state[bufnr] = nil
  end })
  if not esc_watch then
    local esc = api.nvim_replace_termcodes("<Esc>", true, false, true)
    esc_watch = api.nvim_create_namespace("code_kb_next_edit_esc")
    vim.on_key(function(key)
      if key == esc then
        vim.schedule(function()
          M.dismiss(api.nvim_get_current_buf())
        end)
      end
    end, esc_watch)
  end
end

return M
