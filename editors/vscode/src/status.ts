// The status bar item: the model, its version, GPU or CPU; an error state when the server says so.
import * as vscode from "vscode";
import type { StatusParams } from "./protocol";

export class Status implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly changed = new vscode.EventEmitter<StatusParams>();
  /** Fires on every state the server reports (or the client's own start-up failure). */
  readonly onDidChange = this.changed.event;
  current: StatusParams | undefined;

  constructor(command: string) {
    this.item = vscode.window.createStatusBarItem("airgap.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "airgap-lsp";
    this.item.command = command;
    this.starting();
    this.item.show();
  }

  starting(): void {
    this.item.text = "$(sync~spin) airgap";
    this.item.tooltip = "airgap-lsp: starting the server";
    this.item.backgroundColor = undefined;
  }

  update(s: StatusParams): void {
    this.current = s;
    const model = s.version ? `${s.model}@${s.version}` : s.model;
    const where = hardware(s.device);
    if (s.state === "loading") {
      this.item.text = `$(sync~spin) airgap: ${model}`;
      this.item.backgroundColor = undefined;
    } else if (s.state === "ready") {
      this.item.text = `$(shield) airgap: ${model} ${where}`;
      this.item.backgroundColor = undefined;
    } else {
      this.item.text = `$(error) airgap: ${model || "error"}`;
      this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
    }
    const detail = [s.state, s.device && `${s.device} (${s.dtype})`, s.message].filter(Boolean);
    this.item.tooltip = `airgap-lsp ${model}: ${detail.join(", ")}. Click for the server log.`;
    this.changed.fire(s);
  }

  /** The client could not start or lost the server: an error the server cannot report. */
  fail(message: string): void {
    this.update({ state: "error", model: "", version: "", device: "", dtype: "", message });
  }

  dispose(): void {
    this.item.dispose();
    this.changed.dispose();
  }
}

/** "GPU" for a CUDA device, "CPU" otherwise. */
export function hardware(device: string): string {
  if (!device) return "";
  return device.startsWith("cuda") ? "GPU" : "CPU";
}
