// Drives a real VS Code (code-server in headless chromium, through playwright-core) with the code-kb
// extension installed. Scenario "completion": ghost text from textDocument/inlineCompletion accepted
// with Tab, a code-kb item in the completion widget, the status bar, and the extension's commands.
// Scenario "next-edit": next edits previewed in place, dismissed with Escape, asked for with the
// command, jumped to and applied with Tab, and one drawn as ghost text and accepted. It records what
// the user saw in OUT/result.json and screenshots in OUT/; tests/e2e/test_vscode.py starts
// code-server, runs this, and checks the record against the file on disk and the server's log.
//
// node test/e2e.mjs --url http://127.0.0.1:PORT/?folder=/path --chromium /usr/bin/chromium --out DIR \
//   [--scenario completion|next-edit] [--saved-file /path/shop/checkout.py]
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    out: { type: "string" },
    file: { type: "string", default: "checkout.py" }, // quick-open query
    line: { type: "string", default: "14" }, // 1-based
    column: { type: "string", default: "12" }, // 1-based: after "    return "
    type: { type: "string", default: "price" },
    "saved-file": { type: "string" }, // the file on disk that Ctrl+S writes, to wait for the save
    scenario: { type: "string", default: "completion" },
  },
});
if (!opts.url || !opts.out) {
  console.error("usage: e2e.mjs --url URL --out DIR [--chromium PATH]");
  process.exit(2);
}
mkdirSync(opts.out, { recursive: true });

const result = { steps: [] };
const t0 = Date.now();
const NBSP = /\u00a0/g; // Monaco renders spaces as U+00A0
// ... and control characters as their Control Pictures (U+2400-U+241F, U+2421 for DEL): the tiny
// model's random output has some, and what is compared with the file must be the file's text.
const CONTROL_PICTURES = /[\u2400-\u241f\u2421]/g;
const text = (s) =>
  (s ?? "")
    .replace(NBSP, " ")
    .replace(CONTROL_PICTURES, (c) => (c === "\u2421" ? "\x7f" : String.fromCharCode(c.charCodeAt(0) - 0x2400)));

function step(name) {
  result.steps.push({ name, at_s: (Date.now() - t0) / 1000 });
  console.error(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${name}`);
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible" });
  await input.fill(`>${title}`);
  // The row whose label is exactly `title`: "Toggle Completions" also matches a longer command,
  // which the palette may list first once recently used.
  const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
  const row = page
    .locator(".quick-input-list .monaco-list-row")
    .filter({ has: page.locator(".label-name", { hasText: exact }) })
    .first();
  await row.waitFor({ state: "visible", timeout: 15_000 });
  await row.click();
  await page.locator(".quick-input-widget").waitFor({ state: "hidden" });
}

const statusItem = (page) => page.locator(".statusbar-item", { hasText: "code-kb" }).first();

async function statusBarText(page) {
  return text(await statusItem(page).innerText()).trim();
}

/** The text of the line the cursor is on in the active editor, as rendered. */
async function currentLineText(page) {
  return page.evaluate(() => {
    const editor = document.querySelector(".editor-group-container.active .monaco-editor");
    // Each overlay row (the current-line highlight) has the same style.top as its view-line.
    const top = editor?.querySelector(".view-overlays .current-line")?.parentElement?.style.top;
    const line = [...(editor?.querySelectorAll(".view-lines .view-line") ?? [])].find((l) => l.style.top === top);
    return line ? line.textContent : null;
  });
}

const browser = await chromium.launch({
  executablePath: opts.chromium,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1400, height: 850 } });
page.setDefaultTimeout(30_000);
/** The completion scenario, from the open file on: ghost text, the completion widget, the commands. */
async function completionScenario(page) {
  step(`go to ${opts.line}:${opts.column} and type ${JSON.stringify(opts.type)}`);
  await page.keyboard.press("Control+G");
  await page.locator(".quick-input-widget input").fill(`:${opts.line}:${opts.column}`);
  await page.keyboard.press("Enter");
  await page.keyboard.type(opts.type, { delay: 60 });
  await page.keyboard.press("Escape"); // close the suggest widget that typing opened, if any
  result.line_typed = text(await currentLineText(page));

  step("trigger the inline suggestion");
  const ghost = page.locator(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text");
  for (let attempt = 1; ; attempt++) {
    await runCommand(page, "Trigger Inline Suggestion");
    try {
      await ghost.first().waitFor({ timeout: 15_000 });
      break;
    } catch (err) {
      if (attempt >= 3) {
        throw err;
      }
      step(`no ghost text yet (attempt ${attempt})`);
    }
  }
  result.inline_attempts = result.steps.filter((s) => s.name.startsWith("no ghost text")).length + 1;
  // The first line sits inline after the cursor; further lines are view zones below it.
  // (Monaco may split the inline part into several decorations.)
  result.ghost_inline = (await page.locator(".monaco-editor .ghost-text-decoration").allTextContents()).map(text).join("");
  result.ghost_below = (await page.locator(".monaco-editor .ghost-text .view-line").allTextContents()).map(text);
  await page.screenshot({ path: join(opts.out, "ghost-text.png") });

  step("accept with Tab and save");
  await page.keyboard.press("Tab");
  await ghost.first().waitFor({ state: "detached" });
  result.line_accepted = text(await currentLineText(page));
  await page.keyboard.press("Control+S");
  if (opts["saved-file"]) {
    // Saving is asynchronous: wait until the file on disk has the accepted line.
    for (let i = 0; !readFileSync(opts["saved-file"], "utf8").includes(result.line_accepted); i++) {
      if (i > 100) {
        throw new Error(`${opts["saved-file"]} was not saved with ${JSON.stringify(result.line_accepted)}`);
      }
      await page.waitForTimeout(100);
    }
  }

  step("completion widget on a new line");
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Enter");
  await page.keyboard.type("total = ", { delay: 60 });
  // Typing sent completion and inline requests for this document; the server answers the older of
  // two requests for one document empty, so let them settle before asking for the list.
  await page.waitForTimeout(800);
  const rows = page.locator(".suggest-widget.visible .monaco-list-row");
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+Space");
    try {
      await rows.first().waitFor({ timeout: 10_000 });
      break;
    } catch (err) {
      if (attempt >= 3) {
        throw err;
      }
      step(`no completion list yet (attempt ${attempt})`);
    }
  }
  // Let the list settle (it fills in as providers answer), then read it.
  await page.waitForTimeout(500);
  result.completion_rows = await rows.evaluateAll((els) =>
    els.map((e) => ({
      label: (e.querySelector(".label-name")?.textContent ?? "").replace(/\u00a0/g, " "),
      detail: (e.querySelector(".details-label")?.textContent ?? "").replace(/\u00a0/g, " "),
      aria: e.getAttribute("aria-label") ?? "",
      focused: e.classList.contains("focused"),
    })),
  );
  result.completion_attempts = result.steps.filter((s) => s.name.startsWith("no completion list")).length + 1;
  await page.screenshot({ path: join(opts.out, "completion-widget.png") });
  await page.keyboard.press("Escape");

  step("status bar after completions");
  await page.waitForFunction(
    () => /\d+ ms/.test([...document.querySelectorAll(".statusbar-item")].find((e) => e.textContent.includes("code-kb"))?.textContent ?? ""),
    null,
    { timeout: 15_000 },
  );
  result.status_bar_after = await statusBarText(page);

  step("toggle completions for python off; the status request then shows the server's settings");
  await runCommand(page, "code-kb: Toggle Completions for the Current Language");
  await page.locator(".notifications-toasts", { hasText: "completions off for python" }).waitFor();
  await page.waitForTimeout(1000); // the didChangeConfiguration push is asynchronous
  step("click the status bar item: Show Status");
  await statusItem(page).click();
  await page.locator(".tab", { hasText: "status.json" }).waitFor();
  result.status_document = text(await page.locator(".editor-group-container.active .view-lines").innerText());
  await page.screenshot({ path: join(opts.out, "status.png") });
  await page.locator(".tab", { hasText: "checkout.py" }).first().click(); // status.json (json) is active now
  await runCommand(page, "code-kb: Toggle Completions for the Current Language");
  await page.locator(".notifications-toasts", { hasText: "completions on for python" }).waitFor();

  step("toggle completions off and on");
  await runCommand(page, "code-kb: Toggle Completions");
  await page.waitForFunction(
    () => [...document.querySelectorAll(".statusbar-item")].some((e) => e.textContent.includes("code-kb: off")),
  );
  result.status_bar_off = await statusBarText(page);
  await runCommand(page, "code-kb: Toggle Completions");

  step("show context at the cursor");
  await runCommand(page, "code-kb: Show Context at Cursor");
  await page.locator(".tab", { hasText: "context.json" }).waitFor();
  result.context_document = text(await page.locator(".editor-group-container.active .view-lines").innerText());

  step("reindex");
  await runCommand(page, "code-kb: Reindex Workspace");
  await page.locator(".notifications-toasts", { hasText: "code-kb: reindexed" }).waitFor({ timeout: 60_000 });
  result.reindex_message = text(
    await page.locator(".notifications-toasts .notification-list-item", { hasText: "code-kb: reindexed" }).first().innerText(),
  );
  result.notifications = (await page.locator(".notifications-toasts .notification-list-item-message").allTextContents()).map(text);
}

/** The rendered lines of the active editor, top to bottom (a short file is rendered whole). */
async function editorLineTexts(page) {
  return page.evaluate(() => {
    const editor = document.querySelector(".editor-group-container.active .monaco-editor");
    return [...(editor?.querySelectorAll(".view-lines .view-line") ?? [])]
      .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
      .map((l) => l.textContent.replace(/\u00a0/g, " "));
  });
}

/** The next-edit preview as drawn: struck-through text, text added beside it (CSS ::after or
 * injected text of the decoration), and gutter marks. */
async function preview(page) {
  return page.evaluate(() => {
    const editor = document.querySelector(".editor-group-container.active .monaco-editor");
    const spans = [...(editor?.querySelectorAll(".view-lines span") ?? [])];
    const norm = (s) => s.replace(/\u00a0/g, " ");
    const struck = spans
      .filter((s) => s.children.length === 0 && getComputedStyle(s).textDecorationLine.includes("line-through"))
      .map((s) => norm(s.textContent))
      .join("");
    const added = [];
    for (const s of spans) {
      for (const pseudo of ["::after", "::before"]) {
        const c = getComputedStyle(s, pseudo).content;
        if (c && c !== "none" && c !== "normal") {
          added.push(norm(JSON.parse(c)));
        }
      }
    }
    const gutter = [...(editor?.querySelectorAll(".margin *") ?? [])].filter((d) =>
      (getComputedStyle(d).backgroundImage || "none").includes("next-edit"),
    ).length;
    return { struck, added: added.join(""), gutter };
  });
}

async function waitForPreview(page, what, timeoutMs = 30_000) {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const seen = await preview(page);
    if (seen.struck) {
      return seen;
    }
    if (Date.now() > deadline) {
      throw new Error(`no next-edit preview ${what} within ${timeoutMs} ms`);
    }
    await page.waitForTimeout(200);
  }
}

async function cursorPosition(page) {
  const t = text(await page.locator('.statusbar-item[id="status.editor.selection"]').innerText());
  const m = /Ln (\d+), Col (\d+)/.exec(t);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
}

async function waitForSave(expected) {
  if (!opts["saved-file"]) {
    return;
  }
  for (let i = 0; !readFileSync(opts["saved-file"], "utf8").includes(expected); i++) {
    if (i > 100) {
      throw new Error(`${opts["saved-file"]} was not saved with ${JSON.stringify(expected)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The next-edit scenario. The server's test hook answers, in turn, an edit of line 7 (a preview:
 * away from the cursor) until it is applied, then one that appends to line 13 (ghost text when the
 * cursor is on that line before it).
 */
async function nextEditScenario(page) {
  const ghost = page.locator(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text");
  step(`go to ${opts.line}:${opts.column} and type ${JSON.stringify(opts.type)}: a pause asks for a next edit`);
  await page.keyboard.press("Control+G");
  await page.locator(".quick-input-widget input").fill(`:${opts.line}:${opts.column}`);
  await page.keyboard.press("Enter");
  await page.keyboard.type(opts.type, { delay: 60 });
  result.preview_after_pause = await waitForPreview(page, "after a pause in typing");
  // Typing also opened the completion list and the completion model's ghost text: Escape closes
  // those first (the preview's own Escape waits until neither is shown).
  for (let i = 0; (await ghost.count()) > 0 || (await page.locator(".suggest-widget.visible").count()) > 0; i++) {
    if (i > 4) {
      throw new Error("Escape did not close the ghost text and the completion list");
    }
    await page.keyboard.press("Escape");
    await page.waitForTimeout(400);
  }
  result.preview_shown = await preview(page);
  result.lines_before = await editorLineTexts(page);
  await page.screenshot({ path: join(opts.out, "next-edit-preview.png") });

  step("Escape dismisses it");
  // An Escape first hides the completion model's ghost text should it have appeared meanwhile.
  result.escapes = 0;
  while ((await preview(page)).struck) {
    if (result.escapes++ > 3) {
      throw new Error("Escape did not dismiss the next-edit preview");
    }
    await page.keyboard.press("Escape");
    await page.waitForTimeout(500);
  }
  result.ghost_at_dismiss = await ghost.count();
  result.preview_dismissed = await preview(page);
  result.lines_dismissed = await editorLineTexts(page);

  step("code-kb: Suggest Next Edit asks again");
  await runCommand(page, "code-kb: Suggest Next Edit");
  result.preview_command = await waitForPreview(page, "after the command");
  result.cursor_before_jump = await cursorPosition(page);

  step("Tab jumps to it");
  await page.keyboard.press("Tab");
  await page.waitForFunction(
    (before) => !document.querySelector('.statusbar-item[id="status.editor.selection"]')?.textContent.includes(before),
    `Ln ${result.cursor_before_jump?.line},`,
  );
  result.cursor_after_jump = await cursorPosition(page);
  result.preview_after_jump = await preview(page);
  result.lines_after_jump = await editorLineTexts(page);

  step("Tab again applies it");
  await page.keyboard.press("Tab");
  for (let i = 0; (await editorLineTexts(page)).join("\n") === result.lines_after_jump.join("\n"); i++) {
    if (i > 100) {
      throw new Error("the second Tab did not change the document");
    }
    await page.waitForTimeout(100);
  }
  result.lines_applied = await editorLineTexts(page);
  await page.waitForTimeout(300); // the cursor is placed once the edit is in
  result.cursor_after_apply = await cursorPosition(page);
  await page.keyboard.press("Control+S");
  await waitForSave(result.lines_applied[6]);

  step("an edit later on the cursor's line is ghost text");
  await page.keyboard.press("Control+G");
  await page.locator(".quick-input-widget input").fill(":13:15");
  await page.keyboard.press("Enter");
  await runCommand(page, "code-kb: Suggest Next Edit");
  await ghost.first().waitFor({ timeout: 30_000 });
  result.next_edit_ghost = (await page.locator(".monaco-editor .ghost-text-decoration").allTextContents()).map(text).join("");
  result.preview_with_ghost = await preview(page);
  await page.screenshot({ path: join(opts.out, "next-edit-ghost.png") });

  step("Tab accepts it");
  await page.keyboard.press("Tab");
  await ghost.first().waitFor({ state: "detached" });
  result.lines_ghost_accepted = await editorLineTexts(page);
  await page.keyboard.press("Control+S");
  await waitForSave(result.lines_ghost_accepted[12]);
  await page.waitForTimeout(500); // the accept command's request reaches the server
}

try {
  step("open workbench");
  await page.goto(opts.url);
  await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });

  step("wait for the status bar: model loaded, index ready");
  await statusItem(page).waitFor({ timeout: 60_000 });
  result.status_bar_seen = [];
  for (const deadline = Date.now() + 120_000; ; ) {
    const t = await statusBarText(page);
    if (!result.status_bar_seen.includes(t)) {
      result.status_bar_seen.push(t);
    }
    // The next-edit scenario also waits for the next-edit model ("next edit" in the status bar).
    if (!/starting|loading model|indexing|no model/.test(t) && (opts.scenario !== "next-edit" || t.includes("next edit"))) {
      break;
    }
    const errors = await page
      .locator(".notifications-toasts .notification-list-item", { hasText: /code-kb|Server initialization/ })
      .allInnerTexts();
    if (errors.length || Date.now() > deadline) {
      throw new Error(`the extension did not get ready: status bar "${t}", notifications: ${JSON.stringify(errors)}`);
    }
    await page.waitForTimeout(250);
  }
  result.status_bar_ready = await statusBarText(page);

  step(`open ${opts.file}`);
  await page.keyboard.press("Control+P");
  await page.locator(".quick-input-widget input").fill(opts.file);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: opts.file }).first().waitFor();
  await page.keyboard.press("Enter");
  const editorLines = page.locator(".editor-group-container.active .monaco-editor .view-lines");
  await editorLines.waitFor();
  await editorLines.click();

  if (opts.scenario === "next-edit") {
    await nextEditScenario(page);
  } else {
    await completionScenario(page);
  }
  step("done");
} catch (err) {
  failed = true;
  result.error = String(err?.stack ?? err);
  step("failed");
  await page.screenshot({ path: join(opts.out, "failure.png") }).catch(() => {});
} finally {
  result.elapsed_s = (Date.now() - t0) / 1000;
  writeFileSync(join(opts.out, "result.json"), JSON.stringify(result, null, 2));
  await browser.close();
}
process.exit(failed ? 1 : 0);
