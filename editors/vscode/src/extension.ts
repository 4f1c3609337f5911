/**
 * The code-kb VS Code extension: a thin client of `code-kb serve`. Ghost text comes from the
 * server's textDocument/inlineCompletion (vscode-languageclient 10+ has the LSP 3.18 feature built
 * in), completion items from textDocument/completion, next edits from textDocument/copilotInlineEdit
 * (nextEdit.ts). Everything else here is glue: settings to the server, a status bar item, and
 * commands that call the server.
 */
import * as os from "os";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  ServerOptions,
  State,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from "vscode-languageclient/node";
import {
  completionsEnabled,
  expandHome,
  initializationOptions,
  lastCompletionLine,
  serverSettings,
  ServerStatus,
  statusText,
  toggledLanguages,
} from "./settings";
import { NextEdits } from "./nextEdit";

const SECTION = "codeKb";
const SCHEME = "code-kb"; // virtual documents: code-kb:/status.json, code-kb:/context.json

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let lastStatus: ServerStatus | undefined;
let indexingPercent: number | undefined;
let refreshTimer: NodeJS.Timeout | undefined;
let nextEdits: NextEdits | undefined;
let nextEditPolls = 0; // status polls while a wanted next-edit model loads
const documents = new Map<string, string>(); // virtual document path -> content
const documentChanged = new vscode.EventEmitter<vscode.Uri>();

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

function enabledFor(document: vscode.TextDocument): boolean {
  const c = config();
  return completionsEnabled(c.get<boolean>("enable", true), c.get<string[]>("disabledLanguages", []), document.languageId);
}

function updateStatusBar(): void {
  const enabled = config().get<boolean>("enable", true);
  statusItem.text = statusText(lastStatus, enabled, indexingPercent);
  const last = lastStatus?.last_completion;
  const nextEdit = lastStatus?.next_edit;
  const lines = [
    `model: ${lastStatus?.model?.name ?? lastStatus?.model?.path ?? lastStatus?.model?.endpoint ?? "none"}`,
    `next-edit model: ${nextEdit?.loaded ? (nextEdit.name ?? nextEdit.path ?? "loaded") : nextEdit?.model_setting ? "not loaded" : "none"}`,
    ...(lastStatus?.indexes ?? []).map(
      (i) => `index ${i.root}: ${i.ready ? "ready" : "indexing"}${i.files !== undefined ? `, ${i.files} files` : ""}`,
    ),
    lastCompletionLine(last),
    "click: code-kb: Show Status",
  ];
  statusItem.tooltip = lines.join("\n");
}

async function fetchStatus(): Promise<ServerStatus | undefined> {
  if (!client || client.state !== State.Running) {
    return undefined;
  }
  return (await client.sendRequest(ExecuteCommandRequest.type, { command: "codeKb.status", arguments: [] })) as ServerStatus;
}

async function refreshStatus(): Promise<void> {
  try {
    lastStatus = (await fetchStatus()) ?? lastStatus;
  } catch (err) {
    client?.warn(`codeKb.status failed: ${err}`);
  }
  updateStatusBar();
  if (lastStatus?.indexes?.some((i) => i.ready === false) && indexingPercent === undefined) {
    refreshSoon(2000); // indexing without a progress token we follow: poll until it is done
  } else if (nextEditLoading(lastStatus) && nextEditPolls < 150) {
    nextEditPolls++;
    refreshSoon(2000); // a next-edit model is loading: poll (for at most 5 minutes) until it is there
  }
}

function nextEditLoading(status: ServerStatus | undefined): boolean {
  const n = status?.next_edit;
  return !!n && n.enabled !== false && !!n.model_setting && !n.loaded;
}

function nextEditsOn(): boolean {
  return config().get<boolean | null>("nextEdit", null) !== false;
}

/** Poll codeKb.status shortly after a completion answered: its latency is in the answer. */
function refreshSoon(delayMs = 200): void {
  if (refreshTimer) {
    clearTimeout(refreshTimer);
  }
  refreshTimer = setTimeout(() => void refreshStatus(), delayMs);
}

const middleware: Middleware = {
  provideInlineCompletionItems: async (document, position, context, token, next) => {
    if (!enabledFor(document)) {
      return null;
    }
    const planned = nextEdits?.inlineItem(document, position);
    if (planned) {
      return [planned]; // a next edit drawn as ghost text at the cursor
    }
    const result = await next(document, position, context, token);
    if (result && nextEditsOn()) {
      nextEdits?.wrapAccepted(Array.isArray(result) ? result : result.items); // accepting asks for the next edit
    }
    refreshSoon();
    return result;
  },
  provideCompletionItem: async (document, position, context, token, next) => {
    if (!enabledFor(document)) {
      return null;
    }
    const result = await next(document, position, context, token);
    refreshSoon();
    return result;
  },
  executeCommand: async (command, args, next) => {
    if (command !== "codeKb.reindex") {
      return next(command, args);
    }
    const summary = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "code-kb: reindexing" },
      () => Promise.resolve(next(command, args)),
    );
    void refreshStatus();
    void vscode.window.showInformationMessage(`code-kb: reindexed. ${describeReindex(summary)}`);
    return summary;
  },
  workspace: {
    // Should the server pull settings (workspace/configuration), it gets the same keys we push.
    configuration: (params) => {
      const home = os.homedir();
      return params.items.map((item) => (item.section === SECTION ? serverSettings(config(), home) : null));
    },
  },
};

function describeReindex(summary: unknown): string {
  if (summary && typeof summary === "object") {
    return Object.entries(summary as Record<string, unknown>)
      .map(([root, what]) => `${root}: ${typeof what === "string" ? what : JSON.stringify(what)}`)
      .join("; ");
  }
  return "";
}

function createClient(output: vscode.LogOutputChannel): LanguageClient {
  const c = config();
  const command = String(expandHome(c.get<string>("serverPath", "code-kb") || "code-kb", os.homedir()));
  const args = c.get<string[]>("serverArgs", ["serve"]);
  // No `transport`: with TransportKind.stdio the client appends `--stdio`, which `code-kb serve` does not take.
  const serverOptions: ServerOptions = { command, args };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: initializationOptions(c, os.homedir()),
    outputChannel: output,
    middleware,
  };
  return new LanguageClient("codeKb", "code-kb", serverOptions, clientOptions);
}

/** Index progress: the server creates a work-done token per indexing run; show its percentage. */
function followProgress(c: LanguageClient): void {
  c.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    const sub = c.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === "end") {
        indexingPercent = undefined;
        sub.dispose();
        void refreshStatus();
      } else {
        indexingPercent = value.percentage ?? indexingPercent ?? 0;
        updateStatusBar();
      }
    });
  });
}

async function startClient(output: vscode.LogOutputChannel): Promise<void> {
  client = createClient(output);
  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(
      `code-kb: could not start the server (${err}). Set codeKb.serverPath to the code-kb executable.`,
    );
    return;
  }
  // After start: the client's own progress feature installs its handler during start; ours replaces it.
  followProgress(client);
  void refreshStatus();
}

async function stopClient(): Promise<void> {
  nextEdits?.dismiss();
  const c = client;
  client = undefined;
  if (c) {
    await c.stop();
  }
}

async function showDocument(path: string, content: string): Promise<void> {
  documents.set(path, content);
  const uri = vscode.Uri.from({ scheme: SCHEME, path });
  documentChanged.fire(uri);
  const doc = await vscode.workspace.openTextDocument(uri);
  await vscode.languages.setTextDocumentLanguage(doc, "json");
  await vscode.window.showTextDocument(doc, { preview: true, viewColumn: vscode.ViewColumn.Beside });
}

async function showStatus(): Promise<void> {
  if (!client || client.state !== State.Running) {
    void vscode.window.showWarningMessage("code-kb: the server is not running (see the code-kb output).");
    return;
  }
  lastStatus = await fetchStatus();
  updateStatusBar();
  await showDocument("/status.json", JSON.stringify(lastStatus, null, 2) + "\n");
}

async function showContext(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!client || client.state !== State.Running || !editor) {
    void vscode.window.showWarningMessage("code-kb: needs a running server and an open editor.");
    return;
  }
  const params = {
    textDocument: { uri: client.code2ProtocolConverter.asUri(editor.document.uri) },
    position: client.code2ProtocolConverter.asPosition(editor.selection.active),
  };
  const context = await client.sendRequest("codeKb/context", params);
  await showDocument("/context.json", JSON.stringify(context, null, 2) + "\n");
}

async function toggleLanguage(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    return;
  }
  const language = editor.document.languageId;
  const disabled = toggledLanguages(config().get<string[]>("disabledLanguages", []), language);
  await config().update("disabledLanguages", disabled, vscode.ConfigurationTarget.Global);
  void vscode.window.showInformationMessage(
    `code-kb: completions ${disabled.includes(language) ? "off" : "on"} for ${language}`,
  );
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("code-kb", { log: true });
  nextEdits = new NextEdits(
    {
      client: () => client,
      allowed: (document) => enabledFor(document) && nextEditsOn() && document.uri.scheme !== SCHEME,
      modelLoaded: () => lastStatus?.next_edit?.loaded === true,
      delayMs: () => Math.max(0, config().get<number>("nextEditDelayMs", 600)),
    },
    context,
  );
  statusItem = vscode.window.createStatusBarItem("codeKb.status", vscode.StatusBarAlignment.Right, 100);
  statusItem.name = "code-kb";
  statusItem.command = "codeKb.showStatus";
  updateStatusBar();
  statusItem.show();

  context.subscriptions.push(
    output,
    statusItem,
    nextEdits,
    documentChanged,
    vscode.workspace.registerTextDocumentContentProvider(SCHEME, {
      onDidChange: documentChanged.event,
      provideTextDocumentContent: (uri) => documents.get(uri.path) ?? "",
    }),
    vscode.commands.registerCommand("codeKb.showStatus", showStatus),
    vscode.commands.registerCommand("codeKb.showContext", showContext),
    vscode.commands.registerCommand("codeKb.toggle", () =>
      config().update("enable", !config().get<boolean>("enable", true), vscode.ConfigurationTarget.Global),
    ),
    vscode.commands.registerCommand("codeKb.toggleLanguage", toggleLanguage),
    vscode.commands.registerCommand("codeKb.restart", async () => {
      await stopClient();
      await startClient(output);
    }),
    // codeKb.reindex is the server's own command: vscode-languageclient registers it from the
    // server's executeCommandProvider, and the middleware above adds progress and a summary.
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration(SECTION)) {
        return;
      }
      updateStatusBar();
      if (!nextEditsOn() || !config().get<boolean>("enable", true)) {
        nextEdits?.dismiss();
      }
      if (e.affectsConfiguration(`${SECTION}.nextEdit`) || e.affectsConfiguration(`${SECTION}.nextEditModel`)) {
        nextEditPolls = 0; // the server loads (or drops) the model: follow it in the status bar
      }
      if (e.affectsConfiguration(`${SECTION}.serverPath`) || e.affectsConfiguration(`${SECTION}.serverArgs`)) {
        await stopClient();
        await startClient(output);
      } else if (client && client.state === State.Running) {
        await client.sendNotification("workspace/didChangeConfiguration", {
          settings: { [SECTION]: serverSettings(config(), os.homedir()) },
        });
        refreshSoon(500);
      }
    }),
  );
  await startClient(output);
}

export async function deactivate(): Promise<void> {
  if (refreshTimer) {
    clearTimeout(refreshTimer);
  }
  await stopClient();
}
