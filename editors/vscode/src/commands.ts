// The user's commands: the audit record of the last suggestion, the server's log.
import * as vscode from "vscode";
import type { Server } from "./server";

export const SHOW_AUDIT_RECORD = "airgap.showAuditRecord";
export const OPEN_SERVER_LOG = "airgap.openServerLog";
export const RESTART_SERVER = "airgap.restartServer";

/** Audit records open read-only (no "save changes?" on close), as `airgap-audit:/ID.json`. */
const SCHEME = "airgap-audit";

export function register(server: Server): vscode.Disposable[] {
  const records = new Map<string, string>(); // uri path -> the record as JSON
  return [
    vscode.workspace.registerTextDocumentContentProvider(SCHEME, {
      provideTextDocumentContent: (uri) => records.get(uri.path) ?? "",
    }),
    vscode.commands.registerCommand(SHOW_AUDIT_RECORD, async (id?: string) => {
      try {
        const record = await server.auditRecord(typeof id === "string" ? id : undefined);
        const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${record.id}.json` });
        records.set(uri.path, JSON.stringify(record, null, 2));
        const doc = await vscode.workspace.openTextDocument(uri);
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
