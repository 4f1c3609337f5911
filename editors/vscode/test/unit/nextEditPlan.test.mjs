// Unit tests of how a next edit is shown (src/nextEditPlan.ts; `npm test` bundles it to out/).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const { planEdit, isSubsequence, oneLine, diffMarkdown, offScreenHint, currentEdit } = require("../../out/nextEditPlan.js");

const URI = "file:///repo/shop/checkout.py";
const LINES = ["def loyalty_price(price, years):", "    percent = min(years * 2, 20)", "    return price"];
const lineText = (n) => LINES[n];
const at = (line, character) => ({ line, character });
const edit = (start, end, text, version = 3) => ({
  text,
  textDocument: { uri: URI, version },
  range: { start, end },
  command: { title: "Accept next edit", command: "codeKb.acceptNextEdit", arguments: ["7"] },
});

test("an insertion at the cursor is ghost text", () => {
  const plan = planEdit(edit(at(2, 16), at(2, 16), " * (100 - percent) / 100"), at(2, 16), lineText);
  assert.deepEqual(plan, { kind: "inline", range: { start: at(2, 16), end: at(2, 16) }, insertText: " * (100 - percent) / 100" });
});

test("an insertion later on the cursor's line is ghost text that keeps the text between", () => {
  // cursor after "    percent = ", the edit appends " + 1" after "min(years * 2, 20)"
  const plan = planEdit(edit(at(1, 32), at(1, 32), " + 1"), at(1, 14), lineText);
  assert.equal(plan.kind, "inline");
  assert.deepEqual(plan.range, { start: at(1, 14), end: at(1, 32) });
  assert.equal(plan.insertText, "min(years * 2, 20) + 1");
});

test("a replacement that only adds characters is ghost text; one that removes some is a preview", () => {
  const adds = planEdit(edit(at(1, 18), at(1, 31), "years * 2, 20, 5"), at(1, 14), lineText);
  assert.equal(adds.kind, "inline");
  assert.equal(adds.insertText, "min(years * 2, 20, 5");
  const removes = planEdit(edit(at(1, 18), at(1, 31), "years * 3, 30"), at(1, 14), lineText);
  assert.equal(removes.kind, "preview");
  assert.deepEqual(removes.removed, { start: at(1, 18), end: at(1, 31) });
  assert.deepEqual(removes.added, ["years * 3, 30"]);
  assert.deepEqual(removes.anchor, at(1, 31));
});

test("edits before the cursor, on other lines or over several lines are previews", () => {
  assert.equal(planEdit(edit(at(2, 4), at(2, 4), "x"), at(2, 16), lineText).kind, "preview"); // before the cursor
  assert.equal(planEdit(edit(at(0, 4), at(0, 4), "x"), at(2, 16), lineText).kind, "preview"); // another line
  const multi = planEdit(edit(at(1, 0), at(2, 0), "    a\n    b\n"), at(1, 0), lineText);
  assert.equal(multi.kind, "preview");
  assert.deepEqual(multi.added, ["    a", "    b", ""]);
});

test("subsequences", () => {
  assert.ok(isSubsequence("", "abc"));
  assert.ok(isSubsequence("ac", "abc"));
  assert.ok(!isSubsequence("ca", "abc"));
  assert.ok(!isSubsequence("abcd", "abc"));
});

test("decoration text: lines joined with ⏎ and clipped", () => {
  assert.equal(oneLine(["a", "b"]), "a ⏎ b");
  assert.equal(oneLine(["x".repeat(200)], 10), "x".repeat(9) + "…");
  assert.equal(oneLine([""]), "");
});

test("the hover's diff", () => {
  const md = diffMarkdown("old line", ["new line", "second"]);
  assert.match(md, /```diff\n- old line\n\+ new line\n\+ second\n```$/);
  assert.match(diffMarkdown("gone", [""]), /```diff\n- gone\n```$/); // a pure deletion adds no line
});

test("the off-screen hint points up or down, and is absent when the edit is visible", () => {
  const visible = [{ start: 10, end: 40 }];
  assert.equal(offScreenHint(20, visible), undefined);
  assert.equal(offScreenHint(3, visible), "$(arrow-up) code-kb: next edit at line 4 (Tab)");
  assert.equal(offScreenHint(80, visible), "$(arrow-down) code-kb: next edit at line 81 (Tab)");
});

test("only an edit for this document at this version is taken", () => {
  const e = edit(at(0, 0), at(0, 0), "x", 3);
  assert.equal(currentEdit({ edits: [e] }, URI, 3), e);
  assert.equal(currentEdit({ edits: [e] }, URI, 4), undefined); // the document moved on
  assert.equal(currentEdit({ edits: [e] }, "file:///other.py", 3), undefined);
  assert.equal(currentEdit({ edits: [] }, URI, 3), undefined);
  assert.equal(currentEdit(null, URI, 3), undefined);
});
