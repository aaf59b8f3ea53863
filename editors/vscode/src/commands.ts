// The user's commands: the audit record of the last suggestion, the server's log.
import * as vscode from "vscode";
import type { Server } from "./server";

export const SHOW_AUDIT_RECORD = "airgap.showAuditRecord";
export const OPEN_SERVER_LOG = "airgap.openServerLog";
export const RESTART_SERVER = "airgap.restartServer";

export function register(server: Server): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(SHOW_AUDIT_RECORD, async (id?: string) => {
      try {
        const record = await server.auditRecord(typeof id === "string" ? id : undefined);
        const doc = await vscode.workspace.openTextDocument({
          language: "json",
          content: JSON.stringify(record, null, 2),
        });
        await vscode.window.showTextDocument(doc, { preview: true });
        return record;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        void vscode.window.showWarningMessage(`airgap-lsp: no audit record: ${message}`);
        return undefined;
      }
    }),
    vscode.commands.registerCommand(OPEN_SERVER_LOG, () => server.output.show(true)),
    vscode.commands.registerCommand(RESTART_SERVER, () => server.restart()),
  ];
}
