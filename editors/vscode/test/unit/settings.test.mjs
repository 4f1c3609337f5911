// Unit tests of the settings mapping and the status bar text (node's built-in test runner).
// `npm test` bundles src/settings.ts to out/settings.js first.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const {
  SERVER_KEYS,
  expandHome,
  serverSettings,
  initializationOptions,
  toggledLanguages,
  completionsEnabled,
  statusText,
  lastCompletionLine,
  SCOPES,
} = require("../../out/settings.js");
const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
const serverConfig = readFileSync(new URL("../../../../lsp_server/config.py", import.meta.url), "utf8");

/** A stand-in for vscode.WorkspaceConfiguration.inspect over user / workspace / folder scopes. */
function source(user = {}, workspace = {}, folder = {}) {
  return {
    inspect: (key) => ({ globalValue: user[key], workspaceValue: workspace[key], workspaceFolderValue: folder[key] }),
  };
}

test("every server key is a contributed codeKb.* setting, and nothing else is sent", () => {
  const contributed = Object.keys(manifest.contributes.configuration.properties);
  for (const key of SERVER_KEYS) {
    assert.ok(contributed.includes(`codeKb.${key}`), `codeKb.${key} is not contributed`);
  }
  const clientOnly = contributed.filter((k) => !SERVER_KEYS.includes(k.slice("codeKb.".length)));
  assert.deepEqual(clientOnly.sort(), [
    "codeKb.enable",
    "codeKb.nextEditDelayMs",
    "codeKb.serverArgs",
    "codeKb.serverPath",
    "codeKb.trace.server",
  ]);
});

test("the keys are exactly the server's (lsp_server/config.py SETTINGS)", () => {
  const table = serverConfig.slice(serverConfig.indexOf("SETTINGS:"), serverConfig.indexOf("\n}\n"));
  const keys = [...table.matchAll(/^\s+"(\w+)": \(/gm)].map((m) => m[1]);
  assert.ok(keys.length > 10, "could not read SETTINGS from lsp_server/config.py");
  assert.deepEqual([...SERVER_KEYS].sort(), keys.sort());
});

test("only keys the user set are sent; the rest are null so the server's defaults apply", () => {
  const all = serverSettings(source({ maxTokens: 32, disabledLanguages: ["markdown"], warm: false }));
  assert.equal(Object.keys(all).length, SERVER_KEYS.length);
  assert.equal(all.maxTokens, 32);
  assert.deepEqual(all.disabledLanguages, ["markdown"]);
  assert.equal(all.warm, false); // false is a value, not "unset"
  assert.equal(all.modelPath, null);
  assert.deepEqual(initializationOptions(source({ maxTokens: 32, warm: false })), { maxTokens: 32, warm: false });
});

test("workspace folder beats workspace beats user; empty strings are unset", () => {
  const s = serverSettings(
    source({ debounceMs: 10, endpoint: "http://a" }, { debounceMs: 20, endpoint: "" }, { debounceMs: 30 }),
  );
  assert.equal(s.debounceMs, 30);
  assert.equal(s.endpoint, "http://a");
});

test("~ in paths is the home directory", () => {
  const s = serverSettings(source({ modelPath: "~/models/m.gguf", endpoint: "~/not-a-path" }), "/home/u");
  assert.equal(s.modelPath, "/home/u/models/m.gguf");
  assert.equal(s.endpoint, "~/not-a-path");
  assert.equal(expandHome("~/code-kb/.venv/bin/code-kb", "/home/u"), "/home/u/code-kb/.venv/bin/code-kb");
  assert.equal(expandHome("code-kb", "/home/u"), "code-kb");
});

test("toggling a language adds it, toggling again removes it", () => {
  const off = toggledLanguages(["markdown"], "python");
  assert.deepEqual(off, ["markdown", "python"]);
  assert.equal(completionsEnabled(true, off, "python"), false);
  assert.deepEqual(toggledLanguages(off, "python"), ["markdown"]);
  assert.equal(completionsEnabled(false, [], "python"), false);
});

test("status bar text: indexing, model name, last latency, off", () => {
  const status = {
    model: { loaded: true, name: "tiny" },
    indexes: [{ ready: true }],
    last_completion: { latency_ms: 12.4 },
  };
  assert.equal(statusText(status, true), "$(sparkle) code-kb: tiny · 12 ms");
  assert.equal(statusText(status, true, 40), "$(sync~spin) code-kb: indexing 40% · tiny · 12 ms");
  assert.equal(statusText({ model: { loaded: false, path: null }, indexes: [{ ready: false }] }, true),
    "$(sparkle) code-kb: indexing · no model");
  assert.equal(statusText(status, false), "$(circle-slash) code-kb: off");
  // A loaded next-edit model is named; one still loading is not.
  assert.equal(statusText({ ...status, next_edit: { loaded: true, name: "sweep" } }, true), "$(sparkle) code-kb: tiny · next edit · 12 ms");
  assert.equal(statusText({ ...status, next_edit: { loaded: false, model_setting: "x.gguf" } }, true), "$(sparkle) code-kb: tiny · 12 ms");
});

test("the tooltip says which prompt answered the last completion", () => {
  assert.equal(lastCompletionLine(undefined), "no completion yet");
  assert.equal(lastCompletionLine(null), "no completion yet");
  assert.equal(
    lastCompletionLine({ latency_ms: 812.4, prompt_scope: "full", prompt_tokens: 4050, kv_reuse: 0.987, context_from: ["a.py", "b.py"] }),
    "last completion: 812 ms; full prompt, 4050 tokens, 99% cached; context from 2 files",
  );
  assert.equal(
    lastCompletionLine({ latency_ms: 95, prompt_scope: "quick", prompt_tokens: 900, kv_reuse: 0, context_from: ["a.py"] }),
    "last completion: 95 ms; quick prompt, the full one evaluating, 900 tokens, 0% cached; context from 1 file",
  );
  assert.equal(lastCompletionLine({ latency_ms: 3, prompt_scope: "type-through", prompt_tokens: 0 }), "last completion: 3 ms; typed through the shown suggestion");
  assert.equal(lastCompletionLine({ latency_ms: 40, prompt_scope: "later" }), "last completion: 40 ms; later prompt");
  // Every scope the server reports has its words here.
  const session = readFileSync(new URL("../../../../lsp_server/session.py", import.meta.url), "utf8");
  const scopes = session.match(/prompt_scope: str {2}# (.*)/)[1];
  for (const scope of ["full", "quick", "steady", "type-through"]) {
    assert.ok(scopes.includes(scope), `${scope} is not a scope the server names`);
    assert.ok(scope in SCOPES, `${scope} has no words in the tooltip`);
  }
});
