// The custom methods and commands the airgap-lsp server speaks, typed in one place.
import { NotificationType } from "vscode-languageclient/node";

/** `airgap/status`, server → client: the model's state, sent as it loads, when it is ready
 * and when loading or an audit write fails. */
export interface StatusParams {
  state: "loading" | "ready" | "error";
  model: string;
  version: string;
  device: string; // "cpu", "cuda:0", ...
  dtype: string;
  message: string;
}
export const StatusNotification = new NotificationType<StatusParams>("airgap/status");

/** Server commands, run through `workspace/executeCommand`. */
export const Commands = {
  /** Arguments `[]` (the last suggestion shown in this session) or `[id]`: the audit record. */
  auditRecord: "airgap.auditRecord",
  /** Each inline completion item carries it with `[id]`; the server logs the accept. */
  accept: "airgap.accept",
} as const;

/** The audit record as the server returns it (the keys a person looks at first). */
export interface AuditRecord {
  id: string;
  kind: string;
  time: string;
  model: { name: string; version: string; manifest_sha256: string };
  file: string;
  position: { line: number; character: number };
  text: string;
  prompt: string;
  context_sources: unknown[];
  [key: string]: unknown;
}
