// The extension's settings (section `airgap`) and the server settings they become.
import * as vscode from "vscode";

export const SECTION = "airgap";

/** The server's settings, under the names it expects (editors/README.md). */
export interface ServerSettings {
  model: string;
  device: string;
  dtype: string;
  multiline: string;
  maxTokensLine: number;
  maxTokensBlock: number;
  maxPrefixChars: number;
  maxSuffixChars: number;
  auditPath: string;
  context: {
    crossFile: boolean;
    maxTokens: number;
    keepLines: number;
    exclude: string[];
    knowledgeBase: string[];
  };
  hover: { explain: boolean; maxTokens: number; timeBudgetMs: number };
  codeActions: { maxTokens: number };
}

/** The executable started as `<serverPath> serve`; never downloaded. */
export function serverPath(): string {
  const path = vscode.workspace.getConfiguration(SECTION).get<string>("serverPath", "");
  return path.trim() || "airgap-lsp";
}

/** The settings sent as `initializationOptions` and on every change. The server refuses
 * unknown keys, so only its own settings go (not `serverPath`). */
export function serverSettings(): ServerSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const get = <T>(key: string, fallback: T): T => c.get<T>(key, fallback);
  return {
    model: get("model", "smollm2-135m-instruct"),
    device: get("device", "auto"),
    dtype: get("dtype", "auto"),
    multiline: get("multiline", "auto"),
    maxTokensLine: get("maxTokensLine", 48),
    maxTokensBlock: get("maxTokensBlock", 160),
    maxPrefixChars: get("maxPrefixChars", 3000),
    maxSuffixChars: get("maxSuffixChars", 1000),
    auditPath: get("auditPath", ""),
    context: {
      crossFile: get("context.crossFile", true),
      maxTokens: get("context.maxTokens", 1024),
      keepLines: get("context.keepLines", 8),
      exclude: get<string[]>("context.exclude", []),
      knowledgeBase: get<string[]>("context.knowledgeBase", []),
    },
    hover: {
      explain: get("hover.explain", true),
      maxTokens: get("hover.maxTokens", 64),
      timeBudgetMs: get("hover.timeBudgetMs", 8000),
    },
    codeActions: { maxTokens: get("codeActions.maxTokens", 400) },
  };
}

/** Calls back with what changed: the server path (restart) or the server's settings. */
export function onChange(
  restart: () => void,
  update: (settings: ServerSettings) => void,
): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration(`${SECTION}.serverPath`)) {
      restart();
    } else if (e.affectsConfiguration(SECTION)) {
      update(serverSettings());
    }
  });
}
