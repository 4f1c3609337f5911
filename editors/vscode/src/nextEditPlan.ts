/**
 * How a next edit (textDocument/copilotInlineEdit) is shown, decided without `vscode`, so that it is
 * unit-tested under plain node: an edit that VS Code can draw as ghost text at the cursor becomes an
 * inline completion; any other is previewed in place (removed text marked, new text beside it).
 * Positions are the editor's (line, UTF-16 character), as vscode.Position and LSP's default agree.
 */

export interface Pos {
  line: number;
  character: number;
}

export interface Span {
  start: Pos;
  end: Pos;
}

/** One edit of a copilotInlineEdit answer. */
export interface WireEdit {
  text: string;
  textDocument: { uri: string; version?: number | null };
  range: Span;
  command?: { title: string; command: string; arguments?: unknown[] };
}

/** Ghost text: replace `range` (from the cursor to the edit's end, on the cursor's line) with `insertText`. */
export interface InlinePlan {
  kind: "inline";
  range: Span;
  insertText: string;
}

/** A preview: `removed` (may be empty: a pure insertion) marked, `added` shown beside `anchor`. */
export interface PreviewPlan {
  kind: "preview";
  removed: Span;
  added: string[];
  anchor: Pos;
}

export type Plan = InlinePlan | PreviewPlan;

export function before(a: Pos, b: Pos): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character);
}

export function samePos(a: Pos, b: Pos): boolean {
  return a.line === b.line && a.character === b.character;
}

/** Whether `small` is a subsequence of `big`: then replacing it with `big` only adds characters. */
export function isSubsequence(small: string, big: string): boolean {
  let i = 0;
  for (let j = 0; i < small.length && j < big.length; j++) {
    if (small[i] === big[j]) {
      i++;
    }
  }
  return i === small.length;
}

/**
 * The plan for `edit` with the cursor at `cursor` in a document whose line `n` is `lineText(n)`
 * (without its end of line). Inline when the edit lies on the cursor's line at or after the cursor
 * and only adds characters (what VS Code draws as ghost text); a preview otherwise.
 */
export function planEdit(edit: WireEdit, cursor: Pos, lineText: (line: number) => string): Plan {
  const { start, end } = edit.range;
  const oneLine = start.line === end.line && start.line === cursor.line;
  if (oneLine && !before(start, cursor)) {
    const line = lineText(cursor.line);
    const removed = line.slice(start.character, end.character);
    if (isSubsequence(removed, edit.text)) {
      return {
        kind: "inline",
        range: { start: cursor, end },
        insertText: line.slice(cursor.character, start.character) + edit.text,
      };
    }
  }
  return { kind: "preview", removed: { start, end }, added: edit.text.split(/\r\n|\r|\n/), anchor: end };
}

/** The added lines as one line of decoration text: `⏎` between lines, clipped to `max` characters. */
export function oneLine(added: readonly string[], max = 120): string {
  const joined = added.join(" ⏎ ");
  return joined.length > max ? joined.slice(0, max - 1) + "…" : joined;
}

/** A markdown diff of the edit for the preview's hover. */
export function diffMarkdown(removedText: string, added: readonly string[]): string {
  const minus = removedText ? removedText.split(/\r\n|\r|\n/).map((l) => `- ${l}`) : [];
  const plus = added.length === 1 && added[0] === "" ? [] : added.map((l) => `+ ${l}`);
  const fence = "```";
  return [`**code-kb: next edit** (Tab: jump, Tab again: apply, Escape: dismiss)`, "", fence + "diff", ...minus, ...plus, fence].join(
    "\n",
  );
}

/** The status bar hint for an edit that lies outside the visible lines, or undefined when it is visible. */
export function offScreenHint(editLine: number, visible: readonly { start: number; end: number }[]): string | undefined {
  if (visible.some((r) => r.start <= editLine && editLine <= r.end)) {
    return undefined;
  }
  const above = visible.length > 0 && editLine < visible[0].start;
  return `$(${above ? "arrow-up" : "arrow-down"}) code-kb: next edit at line ${editLine + 1} (Tab)`;
}

/** The edit to act on from an answer, or undefined: the first edit of a still-current version. */
export function currentEdit(
  answer: { edits?: WireEdit[] } | null | undefined,
  uri: string,
  version: number,
): WireEdit | undefined {
  const edit = answer?.edits?.[0];
  if (!edit || edit.textDocument.uri !== uri) {
    return undefined;
  }
  const v = edit.textDocument.version;
  return v === undefined || v === null || v === version ? edit : undefined;
}
