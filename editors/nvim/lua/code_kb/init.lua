-- code-kb for Neovim: starts `code-kb serve` for code buffers, shows its completions in the
-- completion menu, its inline completions as ghost text and its next-edit suggestions (next_edit.lua).
-- Thin: the server does the work.
--
-- Which API is used depends on the Neovim version:
--   0.11+       vim.lsp.config / vim.lsp.enable, vim.lsp.completion.enable for the menu
--   0.8 - 0.10  vim.lsp.start from a FileType autocmd
--   0.7         vim.lsp.start_client + vim.lsp.buf_attach_client
--   ghost text  vim.lsp.inline_completion where it exists (0.12+), else our own
--               textDocument/inlineCompletion requests drawn as an extmark
--               (virt_text 'overlay' before 0.10, 'inline' from 0.10; further lines as virt_lines)

local M = {}

local next_edit = require("code_kb.next_edit")
local api = vim.api
local uv = vim.uv or vim.loop

local ns = api.nvim_create_namespace("code_kb_ghost")
local has = function(feature) return vim.fn.has(feature) == 1 end
local HAS_011 = has("nvim-0.11")
local HAS_010 = has("nvim-0.10")
local INVOKED, AUTOMATIC = 1, 2 -- lsp.InlineCompletionTriggerKind

M.defaults = {
  name = "code-kb", -- the LSP client's name (sidekick.nvim only talks to names holding "copilot")
  cmd = { "code-kb", "serve" },
  init_options = {}, -- initializationOptions: camelCase keys, see the README's Configuration
  filetypes = {
    "python", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "go", "rust", "java", "c", "cpp",
  },
  root_markers = { ".code-kb", ".git" },
  root_dir = nil, -- a path, or function(bufnr) -> path; default: nearest marker, else cwd
  capabilities = nil,
  on_attach = nil, -- function(client, bufnr), called after ours
  completion = {
    enable = true, -- vim.lsp.completion (0.11+), else 'omnifunc' (<C-x><C-o>)
    autotrigger = false, -- open the menu while typing (0.11+)
  },
  ghost_text = {
    enable = true,
    builtin = true, -- use vim.lsp.inline_completion where Neovim has it (0.12+)
    debounce_ms = 150, -- after the last keystroke; the server debounces too
    accept = "<Tab>", -- only while a suggestion is shown; otherwise the key does what it did
    dismiss = "<C-]>",
    trigger = "<M-\\>", -- ask now (invoked), even without typing
    hl_group = "CodeKbGhost", -- links to Comment unless defined
  },
  next_edit = {
    enable = true, -- false: no requests, no keys (also none while the server has no next-edit model)
    auto = true, -- ask after a pause in typing (normal and insert mode); false: only :CodeKbNextEdit
    debounce_ms = 600, -- the pause
    key = "<Tab>", -- jump to the edit, again to apply it (normal mode; insert mode without ghost text)
    hl_delete = "CodeKbNextEditDelete", -- removed text: strikethrough unless defined
    hl_add = "CodeKbNextEditAdd", -- new text: links to DiffAdd unless defined
    hl_hint = "CodeKbNextEditHint", -- "next edit at line N": links to Comment unless defined
  },
}

M.options = vim.deepcopy(M.defaults)
M.api = nil -- which client API setup used: "vim.lsp.config", "vim.lsp.start" or "start_client"
M.ghost = nil -- which ghost text: "builtin" or "plugin"
M.next_edit = next_edit -- request(bufnr), current(bufnr), tab(bufnr), dismiss(bufnr), ...

-- -- small compatibility helpers --------------------------------------------------------------

-- Client methods became `client:method()` in 0.11; the dot form is deprecated there.
local function call(client, method, ...)
  if HAS_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

local function clients_for(bufnr)
  local found = {}
  if vim.lsp.get_clients then
    found = vim.lsp.get_clients({ bufnr = bufnr, name = M.options.name })
  else
    for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
      if client.name == M.options.name then
        table.insert(found, client)
      end
    end
  end
  return found
end

--- The code-kb client attached to a buffer (default: current), or nil.
function M.client(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  return clients_for(bufnr)[1]
end

-- A UTF-16/32 LSP column on a line as a byte column.
local function byte_col(bufnr, row, character, encoding)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col
  if HAS_011 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  end
  return ok and col or #line
end

local function termcodes(keys)
  return api.nvim_replace_termcodes(keys, true, false, true)
end

-- -- root directory ----------------------------------------------------------------------------

local function find_root(path)
  local dir = vim.fn.fnamemodify(path, ":p:h")
  while dir and dir ~= "" do
    for _, marker in ipairs(M.options.root_markers) do
      if uv.fs_stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      break
    end
    dir = parent
  end
  return nil
end

--- The workspace folder for a buffer: `root_dir` if set, else the nearest directory holding a
--- root marker, else the current directory when the file lies below it, else the file's directory.
function M.root_for(bufnr)
  local opt = M.options.root_dir
  if type(opt) == "function" then
    return opt(bufnr)
  elseif type(opt) == "string" then
    return (vim.fn.fnamemodify(opt, ":p"):gsub("/$", ""))
  end
  local path = api.nvim_buf_get_name(bufnr)
  local root = find_root(path)
  if root then
    return root
  end
  local cwd = vim.fn.getcwd()
  if path:sub(1, #cwd + 1) == cwd .. "/" then
    return cwd
  end
  return vim.fn.fnamemodify(path, ":p:h")
end

-- -- ghost text (our own, before Neovim's built-in inline completion) ---------------------------

local state = {} -- bufnr -> { timer, request = {client, id}, suggestion }

local function buf_state(bufnr)
  local s = state[bufnr]
  if not s then
    s = {}
    state[bufnr] = s
  end
  return s
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == "i"
end

local function cursor(bufnr)
  if api.nvim_get_current_buf() ~= bufnr then
    return nil
  end
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function clear(bufnr)
  local s = state[bufnr]
  if s then
    s.suggestion = nil
  end
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

local function cancel(bufnr)
  local s = state[bufnr]
  if not s then
    return
  end
  if s.timer then
    s.timer:stop()
    s.waiting = false
  end
  if s.request then
    pcall(call, s.request.client, "cancel_request", s.request.id)
    s.request = nil
  end
end

-- Draw the suggestion's remaining text (`s.suggestion.shown`) at the cursor.
local function draw(bufnr)
  local sug = state[bufnr].suggestion
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local hl = M.options.ghost_text.hl_group
  local spaces = string.rep(" ", vim.bo[bufnr].tabstop)
  local lines = {}
  for _, line in ipairs(vim.split(sug.shown, "\n", { plain = true })) do
    table.insert(lines, vim.fn.strtrans((line:gsub("\t", spaces)))) -- control characters as ^X
  end
  local mark = { hl_mode = "combine", virt_text_pos = HAS_010 and "inline" or "overlay" }
  if lines[1] ~= "" then
    mark.virt_text = { { lines[1], hl } }
  end
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      table.insert(mark.virt_lines, { { lines[i], hl } })
    end
  end
  sug.mark = api.nvim_buf_set_extmark(bufnr, ns, sug.row, sug.col, mark)
end

-- An inline completion item became the suggestion at the cursor (row, col), if it still fits.
local function show(bufnr, client, item, row, col)
  local text = type(item.insertText) == "table" and item.insertText.value or item.insertText
  if type(text) ~= "string" or text == "" then
    return
  end
  local start_row, start_col, end_row, end_col = row, col, row, col
  if item.range then
    start_row, end_row = item.range.start.line, item.range["end"].line
    start_col = byte_col(bufnr, start_row, item.range.start.character, client.offset_encoding)
    end_col = byte_col(bufnr, end_row, item.range["end"].character, client.offset_encoding)
  end
  if start_row ~= row or start_col > col then
    return -- a range that does not start on the cursor's line, before it: not ours to show
  end
  -- Text between the range's start and the cursor is typed already: show the rest.
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local typed = line:sub(start_col + 1, col)
  if text:sub(1, #typed) ~= typed or #text == #typed then
    return
  end
  buf_state(bufnr).suggestion = {
    text = text, shown = text:sub(#typed + 1), row = row, col = col,
    range = { start_row, start_col, end_row, math.max(end_col, col) },
    command = item.command, -- run on accept (a next edit offered as ghost text: codeKb.acceptNextEdit)
  }
  draw(bufnr)
end

--- Show an inline completion item ({insertText, range?}) as ghost text at the cursor, as if the
--- server had just sent it.
function M.show_item(bufnr, item)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  local row, col = cursor(bufnr)
  if client and row then
    clear(bufnr)
    show(bufnr, client, item, row, col)
  end
  return M.suggestion(bufnr)
end

--- Ask the server for ghost text at the cursor now. `kind`: 1 invoked, 2 automatic (default).
function M.request(bufnr, kind)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  local row, col = cursor(bufnr)
  if not client or not row then
    return
  end
  cancel(bufnr)
  local s = buf_state(bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = kind or AUTOMATIC }
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local this = {}
  local ok, id = call(client, "request", "textDocument/inlineCompletion", params, function(err, result)
    if s.request ~= this then
      return -- superseded or cancelled
    end
    s.request = nil
    if err or not result or not api.nvim_buf_is_valid(bufnr) then
      return
    end
    local r, c = cursor(bufnr)
    if api.nvim_buf_get_changedtick(bufnr) ~= tick or r ~= row or c ~= col then
      return -- the user moved on; a newer request follows the edit
    end
    if kind ~= INVOKED and not in_insert_mode() then
      return
    end
    local items = result.items or result
    if items[1] then
      show(bufnr, client, items[1], row, col)
    end
  end, bufnr)
  if ok then
    this.client, this.id = client, id
    s.request = this
  end
end

--- The suggestion shown in a buffer, or nil: { text, shown, row, col, range, command }.
function M.suggestion(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local s = state[bufnr]
  return s and s.suggestion
end

--- Whether a ghost-text request is waiting on its debounce or on the server.
function M.pending(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local s = state[bufnr]
  return s ~= nil and (s.request ~= nil or s.waiting == true)
end

--- Insert the shown suggestion; false when there is none.
function M.accept(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local sug = M.suggestion(bufnr)
  if not sug then
    return false
  end
  clear(bufnr)
  cancel(bufnr)
  local r = sug.range
  local lines = vim.split(sug.text, "\n", { plain = true })
  api.nvim_buf_set_text(bufnr, r[1], r[2], r[3], r[4], lines)
  local last_row = r[1] + #lines - 1
  local last_col = (#lines == 1 and r[2] or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { last_row + 1, last_col })
  local client = sug.command and M.client(bufnr)
  if client then
    local command = { command = sug.command.command, arguments = sug.command.arguments }
    call(client, "request", "workspace/executeCommand", command, function(err)
      if err then
        vim.notify("code-kb: " .. command.command .. " failed: " .. (err.message or vim.inspect(err)),
          vim.log.levels.WARN)
      end
    end, bufnr)
  end
  return true
end

--- Hide the shown suggestion; false when there is none.
function M.dismiss(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local shown = M.suggestion(bufnr) ~= nil
  cancel(bufnr)
  clear(bufnr)
  return shown
end

-- The cursor moved: keep the suggestion while the user types its own characters, else drop it.
local function follow_cursor(bufnr)
  local sug = M.suggestion(bufnr)
  if not sug then
    return
  end
  local row, col = cursor(bufnr)
  if row ~= sug.row or col == sug.col then
    if row ~= sug.row then
      clear(bufnr)
    end
    return
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local typed = col > sug.col and line:sub(sug.col + 1, col) or nil
  local first = vim.split(sug.shown, "\n", { plain = true })[1]
  if typed and #typed < #first and first:sub(1, #typed) == typed then
    sug.shown, sug.col = sug.shown:sub(#typed + 1), col
    sug.range[4] = math.max(sug.range[4], col)
    draw(bufnr)
  else
    clear(bufnr)
  end
end

local function schedule_request(bufnr)
  local s = buf_state(bufnr)
  s.timer = s.timer or uv.new_timer()
  s.timer:stop()
  s.waiting = true
  s.timer:start(M.options.ghost_text.debounce_ms, 0, vim.schedule_wrap(function()
    s.waiting = false
    if api.nvim_buf_is_valid(bufnr) and api.nvim_get_current_buf() == bufnr and in_insert_mode() then
      M.request(bufnr, AUTOMATIC)
    end
  end))
end

-- A key (in `mode`, "i" or "n") that acts only while a suggestion is shown (`action(bufnr)` returns
-- true), and otherwise does what it did before.
local function map_when_shown(mode, bufnr, lhs, action, desc)
  if not lhs or lhs == "" then
    return
  end
  local before = vim.fn.maparg(lhs, mode, false, true)
  if before.desc and before.desc:find("^code%-kb") then
    before = {} -- our own mapping from an earlier attach
  end
  vim.keymap.set(mode, lhs, function()
    if action(bufnr) then
      return
    end
    local keys, remap = lhs, "n"
    if before.callback then
      local out = before.callback()
      if before.expr ~= 1 or type(out) ~= "string" then
        return
      end
      keys, remap = out, before.noremap == 1 and "n" or "m"
    elseif before.rhs and before.rhs ~= "" then
      keys = before.expr == 1 and vim.fn.eval(before.rhs) or before.rhs
      remap = before.noremap == 1 and "n" or "m"
    end
    api.nvim_feedkeys(termcodes(keys), remap .. "i", false)
  end, { buffer = bufnr, desc = "code-kb: " .. desc })
end

-- The accept key's action: the shown ghost text, else (when next edits use the same key) the next
-- edit's jump or apply. One mapping, so that the key's own earlier meaning stays the fallback.
local function accept_or_next_edit(accept, lhs)
  local o = M.options.next_edit
  if not (o.enable and o.key == lhs) then
    return accept
  end
  return function(bufnr)
    return accept(bufnr) or next_edit.tab(bufnr)
  end
end

local function attach_plugin_ghost(bufnr)
  local group = api.nvim_create_augroup("code_kb_ghost_" .. bufnr, { clear = true })
  api.nvim_create_autocmd("TextChangedI", { group = group, buffer = bufnr, callback = function()
    schedule_request(bufnr)
  end })
  api.nvim_create_autocmd("CursorHoldI", { group = group, buffer = bufnr, callback = function()
    if not M.suggestion(bufnr) and not M.pending(bufnr) then
      M.request(bufnr, AUTOMATIC)
    end
  end })
  api.nvim_create_autocmd("CursorMovedI", { group = group, buffer = bufnr, callback = function()
    follow_cursor(bufnr)
  end })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, { group = group, buffer = bufnr, callback = function()
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
  local g = M.options.ghost_text
  map_when_shown("i", bufnr, g.accept, accept_or_next_edit(M.accept, g.accept), "accept suggestion")
  map_when_shown("i", bufnr, g.dismiss, M.dismiss, "dismiss suggestion")
  if g.trigger and g.trigger ~= "" then
    vim.keymap.set("i", g.trigger, function()
      M.request(bufnr, INVOKED)
    end, { buffer = bufnr, desc = "code-kb: suggest" })
  end
end

local function attach_builtin_ghost(client, bufnr)
  local inline = vim.lsp.inline_completion
  inline.enable(true, { bufnr = bufnr, client_id = client.id })
  local g = M.options.ghost_text
  local accept = function()
    return inline.get({ bufnr = bufnr })
  end
  map_when_shown("i", bufnr, g.accept, accept_or_next_edit(accept, g.accept), "accept suggestion")
  if g.trigger and g.trigger ~= "" and inline.select then
    vim.keymap.set("i", g.trigger, function()
      inline.select({ bufnr = bufnr })
    end, { buffer = bufnr, desc = "code-kb: next suggestion" })
  end
end

-- -- attach ------------------------------------------------------------------------------------

local function on_attach(client, bufnr)
  local o = M.options
  if o.completion.enable then
    if vim.lsp.completion and vim.lsp.completion.enable then
      vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = o.completion.autotrigger })
    else
      vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
    end
  end
  if o.ghost_text.enable then
    if o.ghost_text.builtin and vim.lsp.inline_completion and vim.lsp.inline_completion.enable then
      M.ghost = "builtin"
      attach_builtin_ghost(client, bufnr)
    else
      M.ghost = "plugin"
      attach_plugin_ghost(bufnr)
    end
  end
  local ne = o.next_edit
  if ne.enable then
    next_edit.attach(bufnr)
    map_when_shown("n", bufnr, ne.key, next_edit.tab, "jump to or apply the next edit")
    if not (o.ghost_text.enable and o.ghost_text.accept == ne.key) then
      map_when_shown("i", bufnr, ne.key, next_edit.tab, "jump to or apply the next edit")
    end
  end
  if o.on_attach then
    o.on_attach(client, bufnr)
  end
end

local function client_config(root)
  local o = M.options
  return {
    name = o.name,
    cmd = o.cmd,
    root_dir = root,
    init_options = o.init_options,
    capabilities = o.capabilities or vim.lsp.protocol.make_client_capabilities(),
    on_attach = on_attach,
  }
end

local function wanted(bufnr)
  return api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].buftype == "" and api.nvim_buf_get_name(bufnr) ~= ""
      and vim.tbl_contains(M.options.filetypes, vim.bo[bufnr].filetype)
end

local started = {} -- 0.7: root -> client id

local function start_for(bufnr)
  if not wanted(bufnr) then
    return
  end
  local root = M.root_for(bufnr)
  if vim.lsp.start then -- 0.8+: reuses the client with this name and root
    vim.lsp.start(client_config(root), { bufnr = bufnr })
    return
  end
  local id = started[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if not client or client.is_stopped() then
    local config = client_config(root)
    config.on_exit = function()
      if started[root] == id then
        started[root] = nil
      end
    end
    id = vim.lsp.start_client(config)
    if not id then
      return
    end
    started[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
end

-- -- commands ----------------------------------------------------------------------------------

local function execute(bufnr, command, arguments, on_result)
  local client = M.client(bufnr)
  if not client then
    vim.notify("code-kb: not running for this buffer", vim.log.levels.WARN)
    return false
  end
  call(client, "request", "workspace/executeCommand", { command = command, arguments = arguments },
    function(err, result)
      if err then
        vim.notify("code-kb: " .. command .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      else
        on_result(result)
      end
    end, bufnr)
  return true
end

-- A readable, sorted, indented rendering of a JSON value.
local function render(value, indent, out)
  out = out or {}
  indent = indent or ""
  if type(value) ~= "table" then
    table.insert(out, indent .. tostring(value))
    return out
  end
  local keys = vim.tbl_keys(value)
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, key in ipairs(keys) do
    local v = value[key]
    local label = type(key) == "number" and "-" or (tostring(key) .. ":")
    if type(v) == "table" and next(v) ~= nil then
      table.insert(out, indent .. label)
      render(v, indent .. "  ", out)
    else
      local shown = type(v) == "table" and "[]" or (v == vim.NIL and "null" or tostring(v))
      table.insert(out, indent .. label .. " " .. shown)
    end
  end
  return out
end

--- codeKb.status for a buffer's server; `on_result(status)` or, without it, a floating window.
function M.status(bufnr, on_result)
  return execute(bufnr or 0, "codeKb.status", nil, on_result or function(status)
    vim.lsp.util.open_floating_preview(render(status), "yaml", { border = "rounded", focus_id = "code_kb_status" })
  end)
end

--- codeKb.reindex for a buffer's server: every workspace folder.
function M.reindex(bufnr, on_result)
  vim.notify("code-kb: reindexing")
  return execute(bufnr or 0, "codeKb.reindex", nil, on_result or function(summary)
    vim.notify("code-kb: reindexed\n" .. table.concat(render(summary or {}), "\n"))
  end)
end

--- Ask for the next edit at the cursor now (:CodeKbNextEdit); says so when there is none.
function M.request_next_edit(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if not M.options.next_edit.enable then
    vim.notify("code-kb: next edits are off (next_edit.enable)", vim.log.levels.WARN)
    return false
  end
  if not M.client(bufnr) then
    vim.notify("code-kb: not running for this buffer", vim.log.levels.WARN)
    return false
  end
  return next_edit.request(bufnr, 1)
end

-- -- setup -------------------------------------------------------------------------------------

-- Default highlights, again after a colour scheme clears them.
local function highlights()
  local o = M.options
  vim.cmd("highlight default link " .. o.ghost_text.hl_group .. " Comment")
  vim.cmd("highlight default " .. o.next_edit.hl_delete .. " cterm=strikethrough gui=strikethrough")
  vim.cmd("highlight default link " .. o.next_edit.hl_add .. " DiffAdd")
  vim.cmd("highlight default link " .. o.next_edit.hl_hint .. " Comment")
end

function M.setup(opts)
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  if opts and opts.filetypes then
    M.options.filetypes = opts.filetypes -- a list replaces the default list, not merged into it
  end
  next_edit.init(M.options.next_edit, {
    client = M.client, call = call, byte_col = byte_col,
    ghost_text = function() return M.options.ghost_text.enable and M.ghost or nil end,
    ghost_shown = function(bufnr) return M.suggestion(bufnr) ~= nil end,
    show_ghost = function(bufnr, item) return M.show_item(bufnr, item) ~= nil end,
  })
  highlights()
  api.nvim_create_autocmd("ColorScheme", {
    group = api.nvim_create_augroup("code_kb_highlights", { clear = true }), callback = highlights,
  })

  api.nvim_create_user_command("CodeKbStatus", function() M.status(0) end,
    { desc = "code-kb: model, index and latency of this buffer's server" })
  api.nvim_create_user_command("CodeKbReindex", function() M.reindex(0) end,
    { desc = "code-kb: reindex the workspace" })
  api.nvim_create_user_command("CodeKbNextEdit", function() M.request_next_edit(0) end,
    { desc = "code-kb: suggest the next edit now" })

  if vim.lsp.config and vim.lsp.enable then
    M.api = "vim.lsp.config"
    local config = client_config(nil)
    config.name = nil
    config.filetypes = M.options.filetypes
    config.root_dir = function(bufnr, on_dir)
      on_dir(M.root_for(bufnr))
    end
    vim.lsp.config(M.options.name, config)
    vim.lsp.enable(M.options.name)
    return
  end

  M.api = vim.lsp.start and "vim.lsp.start" or "start_client"
  local group = api.nvim_create_augroup("code_kb_start", { clear = true })
  api.nvim_create_autocmd("FileType", { group = group, pattern = M.options.filetypes, callback = function(args)
    start_for(args.buf)
  end })
  for _, bufnr in ipairs(api.nvim_list_bufs()) do -- buffers opened before setup
    start_for(bufnr)
  end
end

return M
