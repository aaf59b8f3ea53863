// The airgap-lsp client: starts the local server and lets VS Code show what it says.
import type * as vscode from "vscode";
import * as commands from "./commands";
import type { StatusParams } from "./protocol";
import { Server } from "./server";
import * as settings from "./settings";
import { Status } from "./status";

/** What the extension exports (used by its tests). */
export interface Api {
  readonly status: () => StatusParams | undefined;
  readonly onStatus: vscode.Event<StatusParams>;
}

let server: Server | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<Api> {
  const status = new Status(commands.OPEN_SERVER_LOG);
  server = new Server(status);
  const s = server;
  context.subscriptions.push(
    status,
    s,
    ...commands.register(s),
    settings.onChange(
      () => void s.restart(),
      (changed) => void s.configure(changed),
    ),
  );
  await s.start();
  return { status: () => status.current, onStatus: status.onDidChange };
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
