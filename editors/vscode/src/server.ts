// Start-up of `airgap-lsp serve` over stdio and the language client that talks to it.
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";
import { type AuditRecord, Commands, StatusNotification } from "./protocol";
import { type ServerSettings, serverPath, serverSettings } from "./settings";
import type { Status } from "./status";

/** The languages the server understands (its registry), by VS Code language id. */
export const LANGUAGES = [
  "ada", "vhdl", "verilog", "systemverilog", "c", "cpp", "python", "rust", "go", "java",
  "javascript", "javascriptreact", "typescript", "typescriptreact",
];

export class Server implements vscode.Disposable {
  private client: LanguageClient | undefined;
  readonly output: vscode.LogOutputChannel;

  constructor(private readonly status: Status) {
    // The server's stderr (its log) and the client's own messages go here.
    this.output = vscode.window.createOutputChannel("airgap-lsp", { log: true });
  }

  async start(): Promise<void> {
    const command = serverPath();
    const serverOptions: ServerOptions = {
      command,
      args: ["serve"], // stdio, with no `--stdio` flag: the server does not take one
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: LANGUAGES.map((language) => ({ language, scheme: "file" })),
      initializationOptions: serverSettings(),
      outputChannel: this.output,
    };
    const client = new LanguageClient("airgap", "airgap-lsp", serverOptions, clientOptions);
    this.client = client;
    client.onNotification(StatusNotification, (params) => this.status.update(params));
    client.onDidChangeState((e) => {
      if (e.newState === State.Stopped && this.client === client) {
        this.status.fail("the server stopped: see the server log");
      }
    });
    this.status.starting();
    try {
      await client.start();
    } catch (err) {
      const message = `cannot start "${command} serve": ${err instanceof Error ? err.message : err}`;
      this.output.error(message);
      this.status.fail(message);
      void vscode.window.showErrorMessage(`airgap-lsp ${message}. Set airgap.serverPath.`);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client?.isRunning()) {
      await client.stop();
    }
  }

  /** Send changed settings; the server keeps its last good ones if they are invalid. */
  async configure(settings: ServerSettings): Promise<void> {
    if (this.client?.isRunning()) {
      await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings });
    }
  }

  /** The audit record of a suggestion (`id`), or of the last one shown in this session. */
  async auditRecord(id?: string): Promise<AuditRecord> {
    if (!this.client?.isRunning()) {
      throw new Error("the airgap-lsp server is not running");
    }
    return (await this.client.sendRequest(ExecuteCommandRequest.type, {
      command: Commands.auditRecord,
      arguments: id ? [id] : [],
    })) as AuditRecord;
  }

  dispose(): void {
    void this.stop();
    this.output.dispose();
  }
}
