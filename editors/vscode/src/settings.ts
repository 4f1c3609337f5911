/**
 * VS Code settings (`codeKb.*`) -> the server's settings: the keys of README's settings table,
 * sent as initializationOptions at start and under "codeKb" with workspace/didChangeConfiguration.
 * No `vscode` import here, so the mapping is unit-tested under plain node.
 */

/** The server's setting keys (lsp_server/config.py SETTINGS); the VS Code setting is `codeKb.<key>`. */
export const SERVER_KEYS = [
  "modelPath",
  "endpoint",
  "endpointApi",
  "remoteModel",
  "template",
  "budgetTokens",
  "maxTokens",
  "maxLines",
  "timeoutS",
  "snippetLimit",
  "nGpuLayers",
  "nThreads",
  "flashAttn",
  "kvCacheType",
  "candidates",
  "quickPromptTokens",
  "embeddingModel",
  "embeddingBackend",
  "embeddingMaxTokens",
  "embeddingEndpoint",
  "embeddingEndpointModel",
  "maxFileBytes",
  "maxFiles",
  "indexDir",
  "denyPatterns",
  "secretPatterns",
  "debounceMs",
  "disabledLanguages",
  "warm",
  "speculate",
  "nextEdit",
  "nextEditModel",
  "nextEditEndpoint",
  "nextEditFormat",
] as const;

export type ServerKey = (typeof SERVER_KEYS)[number];
export type ServerSettings = Record<ServerKey, unknown>;

/** What `vscode.WorkspaceConfiguration.inspect` answers, reduced to what the mapping reads. */
export interface Inspected {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
  globalLanguageValue?: unknown;
  workspaceLanguageValue?: unknown;
  workspaceFolderLanguageValue?: unknown;
}

/** The part of `vscode.WorkspaceConfiguration` (section "codeKb") the mapping needs. */
export interface ConfigSource {
  inspect(key: string): Inspected | undefined;
}

/** A settings path a user may write in settings.json: `~` means the home directory. */
export function expandHome(value: unknown, home: string): unknown {
  if (typeof value === "string" && home && (value === "~" || value.startsWith("~/"))) {
    return home + value.slice(1);
  }
  return value;
}

/**
 * The server settings the user set explicitly (workspace folder over workspace over user), with
 * `null` for every other key. The server skips nulls, so its own defaults, the config file and
 * CODE_KB_MODEL still apply to whatever VS Code does not set, and a setting the user removes
 * goes back to that default on the next workspace/didChangeConfiguration.
 * Empty strings count as unset: VS Code's settings editor leaves them behind when a field is cleared.
 */
export function serverSettings(config: ConfigSource, home = ""): ServerSettings {
  const out = {} as ServerSettings;
  for (const key of SERVER_KEYS) {
    const seen = config.inspect(key);
    let value: unknown = null;
    if (seen) {
      for (const v of [seen.workspaceFolderValue, seen.workspaceValue, seen.globalValue]) {
        if (v !== undefined && v !== null && v !== "") {
          value = v;
          break;
        }
      }
    }
    out[key] = key === "modelPath" || key === "indexDir" || key === "embeddingModel" ? expandHome(value, home) : value;
  }
  return out;
}

/** Only the keys with a value: what initializationOptions carries (shorter in logs, same meaning). */
export function initializationOptions(config: ConfigSource, home = ""): Partial<ServerSettings> {
  const all = serverSettings(config, home);
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== null)) as Partial<ServerSettings>;
}

/** `codeKb.disabledLanguages` with `languageId` added when absent, removed when present. */
export function toggledLanguages(disabled: readonly string[], languageId: string): string[] {
  return disabled.includes(languageId) ? disabled.filter((l) => l !== languageId) : [...disabled, languageId];
}

/** Whether a document of `languageId` gets completions. */
export function completionsEnabled(enabled: boolean, disabled: readonly string[], languageId: string): boolean {
  return enabled && !disabled.includes(languageId);
}

/** The part of the server's codeKb.status answer the status bar shows. */
export interface ServerStatus {
  model?: { loaded?: boolean; name?: string | null; path?: string | null; endpoint?: string | null; device?: string };
  indexes?: { root?: string; ready?: boolean; files?: number; chunks?: number }[];
  last_completion?: LastCompletion | null;
  next_edit?: { enabled?: boolean; model_setting?: string | null; loaded?: boolean; name?: string | null; path?: string | null };
}

/** What codeKb.status says of the last completion (lsp_server/session.py's LastCompletion). */
export interface LastCompletion {
  latency_ms?: number;
  context_from?: string[];
  prompt_scope?: string;
  prompt_tokens?: number;
  kv_reuse?: number;
}

export const SCOPES: Record<string, string> = {
  full: "full prompt",
  quick: "quick prompt, the full one evaluating",
  steady: "previous prompt with what was typed, the new one evaluating",
  "type-through": "typed through the shown suggestion",
};

/** The status bar tooltip's line for the last completion: how long it took and which prompt answered. */
export function lastCompletionLine(last: LastCompletion | null | undefined): string {
  if (!last || typeof last.latency_ms !== "number") {
    return "no completion yet";
  }
  const parts = [`${Math.round(last.latency_ms)} ms`];
  if (last.prompt_scope) {
    const tokens = typeof last.prompt_tokens === "number" && last.prompt_tokens > 0 ? `, ${last.prompt_tokens} tokens` : "";
    const reused = typeof last.kv_reuse === "number" && last.prompt_tokens ? `, ${Math.round(last.kv_reuse * 100)}% cached` : "";
    parts.push(`${SCOPES[last.prompt_scope] ?? `${last.prompt_scope} prompt`}${tokens}${reused}`);
  }
  const files = last.context_from?.length ?? 0;
  if (files) {
    parts.push(`context from ${files} file${files === 1 ? "" : "s"}`);
  }
  return `last completion: ${parts.join("; ")}`;
}

/** The status bar's text (codicons in `$(...)`) for a status answer. */
export function statusText(status: ServerStatus | undefined, enabled: boolean, indexingPercent?: number): string {
  if (!enabled) {
    return "$(circle-slash) code-kb: off";
  }
  const parts: string[] = [];
  if (indexingPercent !== undefined) {
    parts.push(`indexing ${indexingPercent}%`);
  } else if (status?.indexes?.some((i) => i.ready === false)) {
    parts.push("indexing");
  }
  const name = status?.model?.name;
  const model = status?.model;
  if (name) {
    parts.push(name);
  } else if (model && !model.loaded) {
    parts.push(model.path || model.endpoint ? "loading model" : "no model");
  } else {
    parts.push(model ? "model loaded" : "starting");
  }
  if (status?.next_edit?.loaded) {
    parts.push("next edit");
  }
  const ms = status?.last_completion?.latency_ms;
  if (typeof ms === "number") {
    parts.push(`${Math.round(ms)} ms`);
  }
  const icon = indexingPercent !== undefined ? "$(sync~spin)" : "$(sparkle)";
  return `${icon} code-kb: ${parts.join(" · ")}`;
}
