// Extension-host tests: run inside a real VS Code (code-server) against the real server on the
// default model. The harness (tests/editors/vscode/run.mjs) opens the window and reads the
// result file this suite writes, since an exit code does not reach it.
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import type { Api } from "../extension";
import type { AuditRecord } from "../protocol";

const dir = process.env.AIRGAP_TEST_DIR ?? "";
const auditPath = path.join(dir, "audit.jsonl");
const ready = { seen: false };

interface Outcome { name: string; ok: boolean; ms: number; error?: string }

/** Poll a condition until it holds or the deadline passes. */
async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

function auditLines(): Record<string, unknown>[] {
  if (!fs.existsSync(auditPath)) return [];
  return fs.readFileSync(auditPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Ask the harness, which drives the browser, to see `selector` (with `text`) on screen and take
 * a screenshot; returns the text it saw. */
async function screen(name: string, selector: string, text = ""): Promise<string> {
  fs.writeFileSync(path.join(dir, `want-${name}.json`), JSON.stringify({ selector, text }));
  const seen = path.join(dir, `seen-${name}`);
  return until(`the harness to see ${name} (${selector})`, () =>
    fs.existsSync(seen) ? fs.readFileSync(seen, "utf8") : undefined, 30_000);
}

function fixture(name: string): vscode.Uri {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri;
  assert(root, "no workspace folder is open");
  return vscode.Uri.joinPath(root, name);
}

async function open(name: string): Promise<vscode.TextEditor> {
  const doc = await vscode.workspace.openTextDocument(fixture(name));
  return vscode.window.showTextDocument(doc);
}

function hoverText(hovers: vscode.Hover[]): string {
  return hovers
    .flatMap((h) => h.contents)
    .map((c) => (typeof c === "string" ? c : c.value))
    .join("\n");
}

const tests: [string, () => Promise<void>][] = [
  ["status bar: the server reports the default model ready, on GPU or CPU", async () => {
    await open("geometry.py"); // activates the extension
    const ext = vscode.extensions.getExtension<Api>("airgap.airgap-lsp");
    assert(ext, "the extension airgap.airgap-lsp is not installed");
    const api = ext.isActive ? ext.exports : await ext.activate();
    const s = await until("airgap/status ready or error", () => {
      const st = api.status();
      return st && st.state !== "loading" ? st : undefined;
    }, 180_000);
    assert(s.state === "ready", `status ${s.state}: ${s.message}`);
    ready.seen = true;
    assert(s.model.startsWith("smollm2-135m-instruct"), `model ${s.model}`);
    assert(s.version === "0.1.2", `version ${s.version}`);
    assert(s.device === "cpu" || s.device.startsWith("cuda"), `device ${s.device}`);
    const item = await screen("status-ready", ".statusbar-item", "airgap: smollm2-135m-instruct@0.1.2");
    const where = s.device === "cpu" ? "CPU" : "GPU";
    assert(item.includes(where), `status bar item ${JSON.stringify(item)} does not say ${where}`);
  }],
  ["hover: an Ada call shows the declaration from the spec and an explanation", async () => {
    const editor = await open("sensors.adb");
    const line = editor.document.lineAt(13).text; // Sum := Sum + Integer (Read (Id));
    const pos = new vscode.Position(13, line.indexOf("Read") + 1);
    const hovers = await vscode.commands.executeCommand<vscode.Hover[]>(
      "vscode.executeHoverProvider", editor.document.uri, pos);
    const text = hoverText(hovers ?? []);
    assert(text.includes("function Read"), `hover without the declaration: ${JSON.stringify(text)}`);
    assert(text.replace(/```[\s\S]*?```/g, "").trim().length > 0, "hover without an explanation");
  }],
  ["code action: a SPARK procedure gets contracts and a refactor, resolved to an edit", async () => {
    const editor = await open("clamp.adb");
    const range = new vscode.Range(0, 0, 9, 0); // as the Neovim test selects it: the same prompt

    const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
      "vscode.executeCodeActionProvider", editor.document.uri, range, "refactor.rewrite", 10);
    const titles = (actions ?? []).map((a) => a.title);
    const contracts = (actions ?? []).find((a) => a.title.startsWith("Suggest SPARK contracts"));
    assert(contracts, `no "Suggest SPARK contracts" in ${JSON.stringify(titles)}`);
    assert(contracts.kind?.value === "refactor.rewrite", `kind ${contracts.kind?.value}`);
    const refactor = (actions ?? []).find((a) => a.title === "Suggest a refactor");
    assert(refactor, `no "Suggest a refactor" in ${JSON.stringify(titles)}`);
    assert(refactor.kind?.value === "refactor.rewrite", `kind ${refactor.kind?.value}`);
    // Edits come only through codeAction/resolve: the provider resolved the first ten. (Whether
    // the small default model finds contracts to propose varies; a refactor it always proposes.)
    const outcome = auditLines().filter((l) => l.kind === "code_action.refactor").pop();
    assert(refactor.edit && refactor.edit.size > 0,
      `the resolved refactor has no edit (audit: ${JSON.stringify(outcome?.result)})`);
  }],
  ["code action: Python gets no SPARK contracts; \"Explain this code\" runs the server's command", async () => {
    const editor = await open("geometry.py");
    const range = new vscode.Range(3, 0, 6, 0);
    const listed = await vscode.commands.executeCommand<vscode.CodeAction[]>(
      "vscode.executeCodeActionProvider", editor.document.uri, range);
    const titles = (listed ?? []).map((a) => a.title);
    assert(titles.includes("Suggest a refactor"), `actions: ${JSON.stringify(titles)}`);
    assert(!titles.some((t) => t.startsWith("Suggest SPARK contracts")), `actions: ${JSON.stringify(titles)}`);
    const index = titles.indexOf("Explain this code");
    assert(index >= 0, `actions: ${JSON.stringify(titles)}`);
    const resolved = await vscode.commands.executeCommand<vscode.CodeAction[]>(
      "vscode.executeCodeActionProvider", editor.document.uri, range, undefined, index + 1);
    const explain = resolved?.find((a) => a.title === "Explain this code");
    const command = explain?.command;
    assert(command?.command === "airgap.showExplanation", `command ${JSON.stringify(command)}`);
    // The client turned the server's command into a VS Code command: run it as the light bulb would.
    const shown = await vscode.commands.executeCommand<{ text?: string }>(
      command.command, ...(command.arguments ?? []));
    assert(shown?.text && shown.text.trim().length > 0, `shown ${JSON.stringify(shown)}`);
  }],
  ["inline completion: ghost text is shown, committed into the document and audited", async () => {
    const editor = await open("geometry.py");
    const last = editor.document.lineCount - 1;
    const lineNo = editor.document.lineAt(last).text.trim() === "" ? last - 1 : last;
    const before = editor.document.lineAt(lineNo).text; // "    return "
    const end = new vscode.Position(lineNo, before.length);
    editor.selection = new vscode.Selection(end, end);
    const shown = auditLines().filter((l) => l.kind === "inline_completion").length;
    await vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
    const record = await until("an inline_completion line in the audit log", () =>
      auditLines().filter((l) => l.kind === "inline_completion")[shown], 120_000);
    const ghost = await screen("ghost-text", ".ghost-text-decoration");
    assert(String(record.text).startsWith(ghost.trim().split("\n")[0].slice(0, 5)),
      `ghost text ${JSON.stringify(ghost)}, suggestion ${JSON.stringify(record.text)}`);
    await vscode.commands.executeCommand("editor.action.inlineSuggest.commit");
    const after = editor.document.lineAt(lineNo).text;
    const text = String(record.text);
    assert(after !== before, "the document did not change");
    assert(after.startsWith(before) && text.startsWith(after.slice(before.length).split("\n")[0]),
      `line ${JSON.stringify(after)} is not ${JSON.stringify(before)} + ${JSON.stringify(text)}`);
    await until(`an accept line for ${record.id}`, () =>
      auditLines().find((l) => l.kind === "accept" && l.id === record.id), 30_000);
  }],
  ["command: the audit record of the last suggestion", async () => {
    const last = auditLines().filter((l) => l.kind === "inline_completion").pop();
    assert(last, "no suggestion in the audit log");
    const record = await vscode.commands.executeCommand<AuditRecord | undefined>("airgap.showAuditRecord");
    assert(record, "the command returned no record");
    assert(record.id === last.id, `record ${record.id}, last suggestion ${last.id}`);
    assert(record.model.name === "smollm2-135m-instruct", `model ${JSON.stringify(record.model)}`);
    assert(typeof record.prompt === "string" && record.prompt.length > 0, "no prompt");
    const shown = vscode.window.activeTextEditor?.document;
    assert(shown?.uri.scheme === "airgap-audit", `shown: ${shown?.uri.toString()}`);
    assert(JSON.parse(shown.getText()).id === last.id, "the shown record is another one");
    assert(shown.languageId === "json", `language ${shown.languageId}`);
  }],
  ["settings: a change reaches the server; an unknown model turns the status to error, and back", async () => {
    const api = vscode.extensions.getExtension<Api>("airgap.airgap-lsp")?.exports;
    assert(api, "the extension is not active");
    const config = vscode.workspace.getConfiguration("airgap");
    await config.update("model", "no-such-model", vscode.ConfigurationTarget.Global);
    const failed = await until("status error", () => {
      const st = api.status();
      return st?.state === "error" ? st : undefined;
    }, 60_000);
    assert(failed.message.length > 0, "an error without a message");
    await screen("status-error", ".statusbar-item.error-kind", "airgap");
    await config.update("model", undefined, vscode.ConfigurationTarget.Global);
    const back = await until("status ready again", () => {
      const st = api.status();
      return st?.state === "ready" ? st : undefined;
    }, 120_000);
    assert(back.model.startsWith("smollm2-135m-instruct"), `model ${back.model}`);
  }],
  ["command: the server log opens", async () => {
    await vscode.commands.executeCommand("airgap.openServerLog");
  }],
];

export async function run(): Promise<void> {
  const outcomes: Outcome[] = [];
  const write = (done: boolean) => fs.writeFileSync(path.join(dir, done ? "result.json" : "progress.json"),
    JSON.stringify({ outcomes, passed: outcomes.filter((o) => o.ok).length,
      failed: outcomes.filter((o) => !o.ok).length }, null, 2));
  try {
    for (const [name, test] of tests) {
      const started = Date.now();
      try {
        await test();
        outcomes.push({ name, ok: true, ms: Date.now() - started });
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        outcomes.push({ name, ok: false, ms: Date.now() - started, error });
      }
      write(false);
    }
  } finally {
    write(true);
  }
}
