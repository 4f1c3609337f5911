/**
 * Next-edit suggestions: the server's textDocument/copilotInlineEdit, asked after a pause in typing,
 * after an accepted suggestion, and on demand (`code-kb: Suggest Next Edit`). An edit VS Code can draw
 * as ghost text at the cursor is handed to the inline completion provider; any other is previewed in
 * place: the text it removes struck through, the text it adds beside it, a gutter mark, and a status
 * bar hint when it lies off screen. Tab jumps to it, Tab again applies it, Escape dismisses it. Taking
 * an edit runs its command (codeKb.acceptNextEdit) so the server learns what was accepted.
 */
import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient, State } from "vscode-languageclient/node";
import { currentEdit, diffMarkdown, InlinePlan, offScreenHint, oneLine, planEdit, PreviewPlan, WireEdit } from "./nextEditPlan";

const INLINE_EDIT = "textDocument/copilotInlineEdit";
const DID_SHOW = "textDocument/didShowInlineEdit";
const VISIBLE_KEY = "codeKb.nextEditVisible";
export const AFTER_ACCEPT = "codeKb.nextEdit.afterAccept";

type Trigger = "pause" | "accepted" | "command";

interface Preview {
  document: vscode.TextDocument;
  version: number;
  edit: WireEdit;
  range: vscode.Range;
  plan: PreviewPlan;
}

interface PendingInline {
  uri: string;
  version: number;
  plan: InlinePlan;
  edit: WireEdit;
  shown: boolean;
}

export interface NextEditHost {
  client(): LanguageClient | undefined;
  /** Whether next edits may be asked for in this document (completions on, language not disabled). */
  allowed(document: vscode.TextDocument): boolean;
  /** Whether the server has a next-edit model loaded (from its last codeKb.status answer). */
  modelLoaded(): boolean;
  /** Milliseconds of quiet after a change before asking; 0 turns the automatic request off. */
  delayMs(): number;
}

export class NextEdits implements vscode.Disposable {
  private preview?: Preview;
  private inline?: PendingInline;
  private timer?: NodeJS.Timeout;
  private asking?: vscode.CancellationTokenSource;
  private applying = false;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly removedStyle: vscode.TextEditorDecorationType;
  private readonly addedStyle: vscode.TextEditorDecorationType;
  private readonly hint: vscode.StatusBarItem;

  constructor(
    private readonly host: NextEditHost,
    context: vscode.ExtensionContext,
  ) {
    this.removedStyle = vscode.window.createTextEditorDecorationType({
      textDecoration: "line-through",
      backgroundColor: new vscode.ThemeColor("diffEditor.removedTextBackground"),
      gutterIconPath: context.asAbsolutePath("media/next-edit.svg"),
      gutterIconSize: "contain",
      overviewRulerColor: new vscode.ThemeColor("editorOverviewRuler.modifiedForeground"),
      overviewRulerLane: vscode.OverviewRulerLane.Right,
    });
    this.addedStyle = vscode.window.createTextEditorDecorationType({
      after: {
        backgroundColor: new vscode.ThemeColor("diffEditor.insertedTextBackground"),
        color: new vscode.ThemeColor("editor.foreground"),
        fontStyle: "italic",
        margin: "0 0 0 0.3em",
      },
    });
    this.hint = vscode.window.createStatusBarItem("codeKb.nextEdit", vscode.StatusBarAlignment.Right, 99);
    this.hint.name = "code-kb next edit";
    this.hint.command = "codeKb.nextEdit.jumpOrApply";
    this.disposables.push(
      this.removedStyle,
      this.addedStyle,
      this.hint,
      vscode.workspace.onDidChangeTextDocument((e) => this.changed(e)),
      vscode.window.onDidChangeActiveTextEditor(() => this.dismiss()),
      vscode.window.onDidChangeTextEditorVisibleRanges((e) => {
        if (e.textEditor.document === this.preview?.document) {
          this.updateHint(e.textEditor);
        }
      }),
      vscode.commands.registerCommand("codeKb.suggestNextEdit", () => this.ask("command")),
      vscode.commands.registerCommand("codeKb.nextEdit.jumpOrApply", () => this.jumpOrApply()),
      vscode.commands.registerCommand("codeKb.nextEdit.dismiss", () => this.dismiss()),
      vscode.commands.registerCommand(AFTER_ACCEPT, (inner?: vscode.Command) => this.afterAccept(inner)),
    );
    void vscode.commands.executeCommand("setContext", VISIBLE_KEY, false);
  }

  dispose(): void {
    this.cancelPending();
    this.clear();
    this.disposables.forEach((d) => d.dispose());
  }

  /**
   * The inline completion provider's first look: the next edit planned as ghost text at this very
   * position and version, or undefined (then the server's completion answers as usual).
   */
  inlineItem(document: vscode.TextDocument, position: vscode.Position): vscode.InlineCompletionItem | undefined {
    const c = this.host.client();
    const pending = this.inline;
    if (!c || !pending || pending.version !== document.version || pending.uri !== c.code2ProtocolConverter.asUri(document.uri)) {
      return undefined;
    }
    const { start, end } = pending.plan.range;
    if (!position.isEqual(new vscode.Position(start.line, start.character))) {
      return undefined;
    }
    const range = new vscode.Range(start.line, start.character, end.line, end.character);
    const item = new vscode.InlineCompletionItem(pending.plan.insertText, range, this.acceptCommand(pending.edit));
    if (!pending.shown) {
      pending.shown = true;
      this.didShow(pending.edit);
    }
    return item;
  }

  /** Wraps a completion item's command so that accepting it also asks for the next edit. */
  wrapAccepted(items: vscode.InlineCompletionItem[]): void {
    for (const item of items) {
      item.command = { title: "Accept", command: AFTER_ACCEPT, arguments: item.command ? [item.command] : [] };
    }
  }

  /** Forget what is shown or pending (Escape, another editor, a change elsewhere, settings). */
  dismiss(): void {
    this.cancelPending();
    this.clear();
  }

  private acceptCommand(edit: WireEdit): vscode.Command {
    return { title: "Accept next edit", command: AFTER_ACCEPT, arguments: edit.command ? [edit.command] : [] };
  }

  private async afterAccept(inner?: vscode.Command): Promise<void> {
    this.inline = undefined;
    if (inner?.command) {
      await this.runServerCommand(inner);
    }
    this.schedule("accepted", 50);
  }

  private async runServerCommand(command: { command: string; arguments?: unknown[] }): Promise<void> {
    const c = this.host.client();
    if (!c || c.state !== State.Running) {
      return;
    }
    try {
      await c.sendRequest(ExecuteCommandRequest.type, { command: command.command, arguments: command.arguments ?? [] });
    } catch (err) {
      c.warn(`${command.command} failed: ${err}`);
    }
  }

  private didShow(edit: WireEdit): void {
    const c = this.host.client();
    if (c && c.state === State.Running && edit.command) {
      void c.sendNotification(DID_SHOW, { item: { command: edit.command } });
    }
  }

  private changed(e: vscode.TextDocumentChangeEvent): void {
    if (e.contentChanges.length === 0) {
      return;
    }
    if (this.preview?.document === e.document && !this.applying) {
      this.clear();
    }
    if (this.inline && this.inline.version !== e.document.version) {
      const c = this.host.client();
      if (c && this.inline.uri === c.code2ProtocolConverter.asUri(e.document.uri)) {
        this.inline = undefined;
      }
    }
    if (vscode.window.activeTextEditor?.document === e.document && !this.applying) {
      const delay = this.host.delayMs();
      if (delay > 0) {
        this.schedule("pause", delay);
      }
    }
  }

  private schedule(trigger: Trigger, delayMs: number): void {
    this.cancelPending();
    this.timer = setTimeout(() => void this.ask(trigger), delayMs);
  }

  private cancelPending(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.asking?.cancel();
    this.asking = undefined;
  }

  private async ask(trigger: Trigger): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const c = this.host.client();
    if (!editor || !c || c.state !== State.Running || !this.host.allowed(editor.document)) {
      if (trigger === "command") {
        void vscode.window.showWarningMessage("code-kb: next edits need a running server, an open editor and completions on.");
      }
      return;
    }
    if (trigger !== "command" && !this.host.modelLoaded()) {
      return;
    }
    this.cancelPending();
    const asking = new vscode.CancellationTokenSource();
    this.asking = asking;
    const document = editor.document;
    const version = document.version;
    const uri = c.code2ProtocolConverter.asUri(document.uri);
    const params = {
      textDocument: { uri, version },
      position: c.code2ProtocolConverter.asPosition(editor.selection.active),
      context: { triggerKind: trigger === "command" ? 1 : 2 }, // 1: invoked, 2: automatic
    };
    let answer: { edits?: WireEdit[] } | null;
    try {
      answer = await c.sendRequest<{ edits?: WireEdit[] } | null>(INLINE_EDIT, params, asking.token);
    } catch (err) {
      if (!asking.token.isCancellationRequested) {
        c.warn(`${INLINE_EDIT} failed: ${err}`);
      }
      return;
    }
    if (asking.token.isCancellationRequested || this.asking !== asking) {
      return;
    }
    this.asking = undefined;
    const now = vscode.window.activeTextEditor;
    const edit = currentEdit(answer, uri, version);
    if (!edit || now?.document !== document || document.version !== version) {
      if (trigger === "command") {
        vscode.window.setStatusBarMessage("code-kb: no next edit here", 3000);
      }
      return;
    }
    this.show(now, edit, version);
  }

  private show(editor: vscode.TextEditor, edit: WireEdit, version: number): void {
    const c = this.host.client();
    if (!c) {
      return;
    }
    this.clear();
    const document = editor.document;
    const cursor = editor.selection.active;
    const plan = planEdit(edit, { line: cursor.line, character: cursor.character }, (n) =>
      n < document.lineCount ? document.lineAt(n).text : "",
    );
    if (plan.kind === "inline") {
      this.inline = { uri: c.code2ProtocolConverter.asUri(document.uri), version, plan, edit, shown: false };
      void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
      return;
    }
    const { start, end } = plan.removed;
    const range = document.validateRange(new vscode.Range(start.line, start.character, end.line, end.character));
    const anchor = document.validatePosition(new vscode.Position(plan.anchor.line, plan.anchor.character));
    const hover = new vscode.MarkdownString(diffMarkdown(document.getText(range), plan.added));
    const added = oneLine(plan.added);
    // A pure insertion has nothing to strike through: the gutter mark goes on an empty range.
    editor.setDecorations(this.removedStyle, [{ range, hoverMessage: hover }]);
    editor.setDecorations(
      this.addedStyle,
      added ? [{ range: new vscode.Range(anchor, anchor), hoverMessage: hover, renderOptions: { after: { contentText: added } } }] : [],
    );
    this.preview = { document, version, edit, range, plan };
    void vscode.commands.executeCommand("setContext", VISIBLE_KEY, true);
    this.updateHint(editor);
    this.didShow(edit);
  }

  private updateHint(editor: vscode.TextEditor): void {
    const preview = this.preview;
    const text = preview
      ? offScreenHint(
          preview.range.start.line,
          editor.visibleRanges.map((r) => ({ start: r.start.line, end: r.end.line })),
        )
      : undefined;
    if (text) {
      this.hint.text = text;
      this.hint.tooltip = "code-kb suggests an edit off screen: Tab (or click) jumps to it, Escape dismisses it";
      this.hint.show();
    } else {
      this.hint.hide();
    }
  }

  private clear(): void {
    this.inline = undefined;
    if (!this.preview) {
      return;
    }
    for (const editor of vscode.window.visibleTextEditors) {
      if (editor.document === this.preview.document) {
        editor.setDecorations(this.removedStyle, []);
        editor.setDecorations(this.addedStyle, []);
      }
    }
    this.preview = undefined;
    this.hint.hide();
    void vscode.commands.executeCommand("setContext", VISIBLE_KEY, false);
  }

  /** Tab: to the edit's start if the cursor is elsewhere, else apply it. */
  private async jumpOrApply(): Promise<void> {
    const preview = this.preview;
    const editor = vscode.window.activeTextEditor;
    if (!preview || !editor || editor.document !== preview.document) {
      return;
    }
    if (!editor.selection.isEmpty || !editor.selection.active.isEqual(preview.range.start)) {
      editor.selection = new vscode.Selection(preview.range.start, preview.range.start);
      editor.revealRange(preview.range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      this.updateHint(editor);
      return;
    }
    if (editor.document.version !== preview.version) {
      this.clear();
      return;
    }
    this.applying = true;
    let applied = false;
    try {
      applied = await editor.edit((b) => b.replace(preview.range, preview.edit.text));
    } finally {
      this.applying = false;
    }
    this.clear();
    if (!applied) {
      void vscode.window.showWarningMessage("code-kb: the next edit could not be applied.");
      return;
    }
    const lines = preview.edit.text.split(/\r\n|\r|\n/);
    const last = lines[lines.length - 1];
    const endLine = preview.range.start.line + lines.length - 1;
    const endCharacter = (lines.length === 1 ? preview.range.start.character : 0) + last.length;
    const endPos = new vscode.Position(endLine, endCharacter);
    editor.selection = new vscode.Selection(endPos, endPos);
    await this.afterAccept(preview.edit.command);
  }
}
