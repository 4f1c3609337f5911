-- What the headless Neovim scenarios share (nvim_scenario.lua, nvim_next_edit_scenario.lua): a
-- result table written as JSON to P.out, an overall deadline, and a coroutine that sleeps on timers so
-- that the editor's main loop runs between steps. Every path ends in finish(): an error inside an
-- autocmd or timer would otherwise leave headless nvim running.
--
--   local D = dofile(P.driver)
--   D.run(function() ... D.step("x") ... D.wait_for("y", fn, ms) ... D.finish() end)

local P = _G.CODE_KB_TEST
local uv = vim.uv or vim.loop
local api = vim.api

local D = { result = { notifications = {}, steps = {} } }
local result = D.result
local finished = false
local co

function D.encode(value)
  if vim.json then
    return vim.json.encode(value)
  end
  return vim.fn.json_encode(value)
end

function D.finish()
  if finished then
    return
  end
  finished = true
  local f = assert(io.open(P.out, "w"))
  f:write(D.encode(result))
  f:close()
  vim.cmd("qall!")
end

function D.fail(message)
  result.error = message
  D.finish()
end

vim.defer_fn(function()
  D.fail("deadline: still running after " .. P.deadline_ms .. " ms at step " .. tostring(result.steps[#result.steps]))
end, P.deadline_ms)

local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(result.notifications, tostring(msg))
  return notify(msg, level, opts)
end

local function resume()
  if finished then
    return
  end
  local ok, err = coroutine.resume(co)
  if not ok then
    D.fail(debug.traceback(co, tostring(err)))
  end
end

function D.sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

function D.wait_for(what, predicate, timeout_ms)
  local deadline = uv.now() + (timeout_ms or 60000)
  while true do
    local value = predicate()
    if value then
      return value
    end
    if uv.now() > deadline then
      error("timed out waiting for " .. what, 0)
    end
    D.sleep(20)
  end
end

function D.step(name)
  table.insert(result.steps, name)
end

function D.feed(keys, mode)
  api.nvim_feedkeys(api.nvim_replace_termcodes(keys, true, false, true), mode or "m", false)
end

function D.line(buf, row)
  return api.nvim_buf_get_lines(buf, row, row + 1, false)[1]
end

--- Set up the plugin with P.setup, then play `scenario` once Neovim has started.
function D.run(scenario)
  local ok_setup, setup_err = xpcall(function()
    require("code_kb").setup(P.setup)
  end, debug.traceback)
  if not ok_setup then
    D.fail("setup: " .. tostring(setup_err))
    return
  end
  api.nvim_create_autocmd("VimEnter", { once = true, callback = function()
    co = coroutine.create(scenario)
    vim.schedule(resume)
  end })
end

return D
