"""A demo session a newcomer can watch: the real server, a real LSP client, a sample workspace.

Each case in `examples/demo.toml` puts the cursor somewhere in a sample file as if the user were
still typing there, asks for an inline completion, and prints the suggestion and its audit line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from airgap_lsp import __version__
from airgap_lsp.paths import default_audit_path
from audit.files import last_line
from context.languages import for_path


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoCase:
    file: str
    what: str
    text: str  # the document as the user has it while typing
    line: int
    character: int
    original: str  # what the file had there


def load_cases(workspace: Path, cases_file: Path) -> list[DemoCase]:
    cases = []
    for case in tomllib.loads(cases_file.read_text(encoding="utf-8"))["case"]:
        lines = (workspace / case["file"]).read_text(encoding="utf-8").split("\n")
        at = next((i for i, ln in enumerate(lines) if case["find"] in ln), None)
        if at is None or not lines[at].startswith(case["keep"]):
            raise ValueError(
                f"{case['file']}: no line holds {case['find']!r} after {case['keep']!r}"
            )
        end = at + 1
        if case.get("drop_block"):
            depth = len(case["keep"])
            while end < len(lines) and (
                not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) >= depth
            ):
                end += 1
        edited = lines[:at] + [case["keep"]] + lines[end:]
        cases.append(
            DemoCase(
                file=case["file"],
                what=case["what"],
                text="\n".join(edited),
                line=at,
                character=len(case["keep"]),
                original="\n".join(lines[at:end]),
            )
        )
    return cases


def status_line(params: Any) -> str:
    """The demo's line for an `airgap/status` notification (pygls hands an unknown method's
    params over as a namedtuple)."""
    fields = params._asdict() if hasattr(params, "_asdict") else dict(params or {})
    state, message = fields.get("state") or "?", fields.get("message") or ""
    return f"  [status] {state}" + (f": {message}" if message else "")


def _show_audit(line: bytes) -> str:
    doc: dict[str, Any] = json.loads(line)
    prompt = doc["prompt"]
    if len(prompt) > 160:
        doc["prompt"] = f"…({len(prompt)} characters; the log holds them all)… " + prompt[-120:]
    return json.dumps(doc, indent=2, ensure_ascii=False)


async def _session(workspace: Path, cases: list[DemoCase], model: str | None) -> int:
    client = LanguageClient("airgap-lsp-demo", __version__)
    indexed = asyncio.Event()

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def _create(_ls: LanguageClient, _params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def _progress(_ls: LanguageClient, params: types.ProgressParams) -> None:
        value = params.value
        text = value.get("title") or value.get("message") if isinstance(value, dict) else None
        text = text or getattr(value, "title", None) or getattr(value, "message", None)
        if text:
            print(f"  [progress] {text}", flush=True)
            if "indexed" in text:
                indexed.set()

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def _show(_ls: LanguageClient, params: types.ShowMessageParams) -> None:
        print(f"  [server says] {params.message}", flush=True)

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def _log(_ls: LanguageClient, params: types.LogMessageParams) -> None:
        print(f"  [server log] {params.message}", flush=True)

    # The server's own notification of the model's state, which an editor shows in its status
    # bar: shown here as a line (unhandled, the client logged "Ignoring notification ...").
    @client.feature("airgap/status")
    def _status(_ls: LanguageClient, params: Any) -> None:
        print(status_line(params), flush=True)

    options: dict[str, Any] = {"model": model} if model else {}
    audit_path = default_audit_path()
    print(f"starting: {sys.executable} -m airgap_lsp serve   (audit log: {audit_path})")
    await client.start_io(sys.executable, "-m", "airgap_lsp", "serve")
    failures = 0
    try:
        reply = await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    window=types.WindowClientCapabilities(work_done_progress=True)
                ),
                client_info=types.ClientInfo(name="airgap-lsp-demo", version=__version__),
                root_uri=workspace.resolve().as_uri(),
                initialization_options=options,
            )
        )
        provider = reply.capabilities.inline_completion_provider
        print(
            f"server {reply.server_info.name if reply.server_info else '?'}: "
            f"inline completion advertised: {bool(provider)}"
        )
        client.initialized(types.InitializedParams())
        for n, case in enumerate(cases, 1):
            path = (workspace / case.file).resolve()
            lang = for_path(path)
            uri = path.as_uri()
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri,
                        language_id=lang.name if lang else "plaintext",
                        version=n,
                        text=case.text,
                    )
                )
            )
            print(f"\n=== {n}. {case.what}: {case.file}, line {case.line + 1}")
            cursor_line = case.text.split("\n")[case.line]
            print(f"typed so far: {cursor_line!r}")
            try:
                result = await client.text_document_inline_completion_async(
                    types.InlineCompletionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        position=types.Position(line=case.line, character=case.character),
                        context=types.InlineCompletionContext(
                            trigger_kind=types.InlineCompletionTriggerKind.Invoked
                        ),
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the demo reports any server error and goes on
                print(f"error from the server: {exc}")
                failures += 1
                continue
            items = result.items if isinstance(result, types.InlineCompletionList) else result
            if not items:
                print("no suggestion (the model proposed only whitespace)")
                continue
            suggestion = items[0].insert_text
            text = suggestion if isinstance(suggestion, str) else suggestion.value
            print(
                "suggestion:\n" + "\n".join(f"  | {ln}" for ln in (cursor_line + text).split("\n"))
            )
            print("the file had:\n" + "\n".join(f"  | {ln}" for ln in case.original.split("\n")))
            with audit_path.open("rb") as fh:
                print("audit line:\n" + _show_audit(last_line(fh.fileno())))
            client.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=uri)
                )
            )
        failures += await _hover_and_contracts(client, workspace, audit_path, indexed)
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
    print(f"\n{len(cases) - failures} of {len(cases)} requests answered; audit log: {audit_path}")
    return 1 if failures else 0


def _open(client: LanguageClient, path: Path) -> str:
    lang = for_path(path)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=path.as_uri(),
                language_id=lang.name if lang else "plaintext",
                version=1,
                text=path.read_text(encoding="utf-8"),
            )
        )
    )
    return path.as_uri()


async def _hover_and_contracts(
    client: LanguageClient, workspace: Path, audit_path: Path, indexed: asyncio.Event
) -> int:
    """A hover on a SPARK function's body (its spec and contract are in another file), then the
    code action that proposes the contract a procedure lacks. Returns the number of failures."""
    await indexed.wait()
    body = (workspace / "src/saturating.adb").resolve()
    line = next(i for i, ln in enumerate(body.read_text().split("\n")) if "function Add" in ln)
    uri = _open(client, body)
    print(f"\n=== hover on Add: src/saturating.adb, line {line + 1}")
    try:
        hover = await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=13),
            )
        )
    except Exception as exc:  # noqa: BLE001 - the demo reports any server error and goes on
        print(f"error from the server: {exc}")
        return 1
    if hover is not None and isinstance(hover.contents, types.MarkupContent):
        print("\n".join(f"  | {ln}" for ln in hover.contents.value.split("\n")))
    spec = (workspace / "src/saturating.ads").resolve()
    text = spec.read_text(encoding="utf-8")
    line = next(i for i, ln in enumerate(text.split("\n")) if "procedure Increment" in ln)
    uri = _open(client, spec)
    print(f"\n=== code action on Increment: src/saturating.ads, line {line + 1}")
    here = types.Position(line=line, character=14)
    try:
        actions = await client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=here, end=here),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        titles = [a.title for a in actions or [] if isinstance(a, types.CodeAction)]
        print("offered (listing ran no model): " + "; ".join(titles))
        pick = next(
            a for a in actions or [] if isinstance(a, types.CodeAction) and "SPARK" in a.title
        )
        resolved = await client.code_action_resolve_async(pick)
    except Exception as exc:  # noqa: BLE001 - the demo reports any server error and goes on
        print(f"error from the server: {exc}")
        return 1
    edits = resolved.edit.changes.get(uri, []) if resolved.edit and resolved.edit.changes else []
    for edit in edits:
        print("the edit adds, after the declaration:")
        print("\n".join(f"  + {ln}" for ln in edit.new_text.strip("\n").split("\n")))
    if not edits:
        print("no edit offered (the server said why above)")
    with audit_path.open("rb") as fh:
        doc = json.loads(last_line(fh.fileno()))
    print(f"audit line: kind {doc['kind']}, id {doc['id']}, outcome {doc['result']['outcome']}")
    return 0


def run_demo(workspace: Path, *, model: str | None = None) -> int:
    cases_file = workspace.parent / "demo.toml"
    cases = load_cases(workspace, cases_file)
    return asyncio.run(_session(workspace, cases, model))
