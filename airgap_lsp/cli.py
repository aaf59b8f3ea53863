"""The `airgap-lsp` command. The egress guard is installed before anything else is imported."""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from airgap_lsp import egress


def _progress_bar():  # type: ignore[no-untyped-def]
    """A tqdm bar per file, on stderr, fed by the store's (name, done, total) callbacks."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(name: str, done: int, total: int) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(
                total=total, desc=f"sha256 {name}", unit="B", unit_scale=True, file=sys.stderr
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del bars[name]

    return update


def _cmd_serve(args: argparse.Namespace) -> int:
    from lsp_server.wiring import build_server, log_to_stderr

    log_to_stderr()
    server = build_server(args.policy)
    if args.tcp:
        if args.host not in ("127.0.0.1", "::1", "localhost"):
            print("airgap-lsp serves on loopback only: use --host 127.0.0.1.", file=sys.stderr)
            return 2
        server.start_tcp(args.host, args.port)
    else:
        server.start_io()
    return 0


def _store():  # type: ignore[no-untyped-def]
    from airgap_lsp.paths import model_store_root
    from inference.store import ModelStore

    return ModelStore(model_store_root())


def _cmd_model_import(args: argparse.Namespace) -> int:
    from airgap_lsp.errors import AirgapError

    reviewed = None
    if args.manifest:
        try:
            reviewed = Path(args.manifest).read_bytes()
        except OSError as exc:
            raise AirgapError(f"cannot read the manifest {args.manifest} ({exc.strerror})") from exc
    stored = _store().import_model(
        Path(args.path),
        name=args.name,
        version=args.version,
        prompt_format=args.prompt_format,
        progress=_progress_bar(),
        reviewed=reviewed,
    )
    m = stored.manifest
    if reviewed is not None and stored.manifest_sha256 != hashlib.sha256(reviewed).hexdigest():
        print(
            f"{stored.ref} was in the store already with the same files, under the manifest of "
            f"an earlier import (sha256 {stored.manifest_sha256}): kept as it is"
        )
        return 0
    print(f"imported {stored.ref} into {stored.path}")
    print(f"  family {m.family}, prompt format {m.prompt_format}, {len(m.files)} files")
    print(f"  manifest sha256 {stored.manifest_sha256}")
    return 0


def _cmd_model_list(_args: argparse.Namespace) -> int:
    store = _store()
    rows = store.models()
    if not rows:
        print(f"no models in {store.root}; import one with `airgap-lsp model import`")
        return 0
    for name, version, digest in rows:
        m = store.describe(name, version)
        print(f"{name}@{version}")
        print(f"  manifest sha256 {digest}")
        if m is not None:
            by = m.imported_by
            who = f"{by.get('user', '?')} (uid {by.get('uid', '?')}) on {by.get('host', '?')}"
            print(f"  family {m.family}, prompt format {m.prompt_format}, license {m.license}")
            print(f"  imported {m.imported_at} by {who} from {m.source.get('path', '?')}")
    return 0


def _cmd_model_verify(args: argparse.Namespace) -> int:
    from inference.remote import served_name

    store = _store()
    stored = store.verify(args.ref) if args.served_name else store.verify(args.ref, _progress_bar())
    if args.served_name:  # for a team server's start script: the checked name, alone
        print(served_name(stored))
        return 0
    print(f"{stored.ref}: all {len(stored.manifest.files)} files match the manifest")
    print(f"  manifest sha256 {stored.manifest_sha256}")
    print(f"  a team server serves it as {served_name(stored)}")
    return 0


def _audit_log(args: argparse.Namespace) -> Path:
    from airgap_lsp.paths import default_audit_path

    return Path(args.log).expanduser() if args.log else default_audit_path()


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from audit.verify import verify_chain

    log = _audit_log(args)
    start = (args.from_sha256 or "").lower().removeprefix("sha256:")
    if start and not re.fullmatch(r"[0-9a-f]{64}", start):
        print(
            f"airgap-lsp: --from-sha256 takes a sha256 (64 hex digits), not {start!r}",
            file=sys.stderr,
        )
        return 2
    result = verify_chain(log, start) if start else verify_chain(log)
    print(result.reason)
    if result.ok:
        print(f"  {result.lines} lines; the last line's sha256 is {result.last_sha256}")
        print("  (keep that hash elsewhere: it also proves that no line was cut from the end)")
    elif result.first_broken is not None:
        print(f"  first broken line: {result.first_broken} of {result.file or log}")
    return 0 if result.ok else 1


def _cmd_audit_report(args: argparse.Namespace) -> int:
    from datetime import datetime

    from airgap_lsp.errors import AirgapError
    from audit.files import read_records
    from audit.report import as_json, as_text, summarise

    def when(text: str | None, flag: str) -> datetime | None:
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise AirgapError(
                f"{flag} {text!r} is not a date or time: write it as 2026-11-01 or "
                "2026-11-01T14:30."
            ) from None
        return moment if moment.tzinfo else moment.astimezone()

    since, until = when(args.since, "--since"), when(args.until, "--until")
    # The log and its rotated files, whole lines only: a writer may be mid-line.
    summary = summarise(read_records(_audit_log(args)), since, until)
    print(as_json(summary) if args.json else as_text(summary))
    return 0


def _cmd_audit_replay(args: argparse.Namespace) -> int:
    from audit.replay import find_replayable, replay

    record = find_replayable(_audit_log(args), args.id)
    result = replay(record, _store())
    model = record["model"]
    when = record.get("time", "an unknown time")
    print(f"suggestion {args.id} of {when} by {model['name']}@{model['version']}")
    print(f"  manifest sha256 {model['manifest_sha256']} (checked)")
    print(f"  replayed on {result.device} ({result.dtype}); logged on {record['device']}")
    if result.steps:
        print(f"  decoding steps: {result.steps}")
    if model.get("backend") == "remote":
        print(
            f"  made by the team server at {model.get('address', '?')}: another engine's "
            "arithmetic (its quantization, its kernels) may choose other tokens for the same "
            "model, so a different text here does not by itself mean another model"
        )
    if served_from := record.get("result", {}).get("served_from"):
        typed = record["result"].get("typed")
        print(
            f"  shown as the rest of suggestion {served_from}, once {typed!r} "
            f"was typed: its generation is replayed (shown then: {record['text']!r})"
        )
    if result.note:
        print(f"  {result.note}")
    print(f"  logged:   {result.expected!r}")
    print(f"  replayed: {result.text!r}")
    print("  SAME text" if result.same else "  DIFFERENT text")
    return 0 if result.same else 1


def _cmd_provenance(args: argparse.Namespace) -> int:
    from audit.files import read_records
    from audit.provenance import format_json, format_text, provenance

    if args.diff == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(args.diff).read_bytes()
        except OSError as exc:
            print(f"airgap-lsp: cannot read the diff {args.diff} ({exc.strerror})", file=sys.stderr)
            return 1
    # Ada sources are sometimes Latin-1: a stray byte must not stop a CI job.
    result = provenance(raw.decode("utf-8", "replace"), read_records(_audit_log(args)))
    print(format_json(result) if args.json else format_text(result))
    return 3 if args.require_accepted and result.unaccounted else 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from airgap_lsp.doctor import diagnose, render

    policy_log = args.policy.audit_path
    log = Path(policy_log).expanduser() if policy_log and not args.log else _audit_log(args)
    bar = tqdm(desc="checking installed files", unit=" packages", file=sys.stderr, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        findings = diagnose(log, progress=progress, installation_only=args.installation)
    finally:
        bar.close()
    print(render(findings))
    failed = [f.what for f in findings if f.ok is False]
    if failed:
        print(f"\n{len(failed)} check(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from lsp_server.demo import run_demo

    return run_demo(Path(args.workspace), model=args.model)


class _Version(argparse.Action):
    """Printed as it is (argparse's version action wraps the SBOM's hash at the terminal width),
    and read only when asked: not at every start of the server."""

    def __init__(self, option_strings: list[str], dest: str, help: str) -> None:  # noqa: A002
        super().__init__(option_strings, dest, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from airgap_lsp.doctor import version_line

        print(version_line())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="airgap-lsp", description=__doc__)
    p.add_argument("--version", action=_Version, help="the version, and the bundle it came from")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the language server (stdio unless --tcp)")
    serve.add_argument("--tcp", action="store_true", help="listen on a loopback TCP port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=2087, help="0: any free port (logged)")
    serve.set_defaults(func=_cmd_serve)

    model = sub.add_parser("model", help="the local model store").add_subparsers(
        dest="model_command", required=True
    )
    imp = model.add_parser("import", help="import a Hugging Face folder or a .gguf file")
    imp.add_argument("path")
    imp.add_argument("--name", required=True)
    imp.add_argument("--version", required=True)
    imp.add_argument(
        "--prompt-format",
        help="override the detected format (starcoder, qwen2.5-coder, deepseek-coder, "
        "codellama, prefix-only)",
    )
    imp.add_argument(
        "--manifest",
        help="a manifest written by an earlier import of the same files (a bundle's): the files "
        "must match it, and it is kept as it is; the same import again changes nothing",
    )
    imp.set_defaults(func=_cmd_model_import)
    lst = model.add_parser("list", help="list the stored models")
    lst.set_defaults(func=_cmd_model_list)
    ver = model.add_parser("verify", help="check every file of NAME[@VERSION] against its manifest")
    ver.add_argument("ref")
    ver.add_argument(
        "--served-name",
        action="store_true",
        help="print only the name a team server must serve it under (docs/team-server.md)",
    )
    ver.set_defaults(func=_cmd_model_verify)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True
    )
    ver = audit.add_parser("verify", help="check the hash chain; names the first broken line")
    ver.add_argument("--log", help="the audit log (default: the data directory's)")
    ver.add_argument(
        "--from-sha256",
        help="the last line's sha256 of the log's archived files: the oldest file left chains "
        "from it (default: the log starts here)",
    )
    ver.set_defaults(func=_cmd_audit_verify)
    rpt = audit.add_parser("report", help="suggestions and acceptance by user, model, language")
    rpt.add_argument("--log", help="the audit log (default: the data directory's)")
    rpt.add_argument("--since", help="ISO date or time, e.g. 2026-11-01")
    rpt.add_argument("--until", help="ISO date or time (excluded)")
    rpt.add_argument("--json", action="store_true", help="for a machine")
    rpt.set_defaults(func=_cmd_audit_report)
    rep = audit.add_parser("replay", help="re-run a logged suggestion on the same locked model")
    rep.add_argument("id")
    rep.add_argument("--log", help="the audit log (default: the data directory's)")
    rep.set_defaults(func=_cmd_audit_replay)

    prov = sub.add_parser(
        "provenance", help="which added lines of a diff came from suggestions, and were accepted"
    )
    prov.add_argument("diff", metavar="DIFF", help="a unified diff (git diff output); - for stdin")
    prov.add_argument("--log", help="the audit log (default: the data directory's)")
    prov.add_argument("--json", action="store_true", help="for a machine")
    prov.add_argument(
        "--require-accepted",
        action="store_true",
        help="exit 3 when a line matches a suggestion with no accept on record (for CI)",
    )
    prov.set_defaults(func=_cmd_provenance)

    doc = sub.add_parser(
        "doctor",
        help="what is installed (version, bundle, SBOM, models, audit log) and whether anything "
        "fails its hash; exit 1 if so",
    )
    doc.add_argument(
        "--log", help="the audit log (default: the policy's, else the data directory's)"
    )
    doc.add_argument(
        "--installation",
        action="store_true",
        help="only the installation itself: not the model store nor the audit log",
    )
    doc.set_defaults(func=_cmd_doctor)

    demo = sub.add_parser("demo", help="a session with the real server on a sample workspace")
    demo.add_argument("workspace", nargs="?", default="examples/workspace")
    demo.add_argument("--model", default=None, help="NAME[@VERSION] (default: the settings')")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    egress.install()
    args = _parser().parse_args(argv)
    from airgap_lsp.errors import AirgapError
    from airgap_lsp.policy import load_policy

    try:
        policy = load_policy()
        # The team server the policy names is allow-listed by being named there.
        backend = (policy.backend.url,) if policy.backend is not None else ()
        egress.install(policy.allowed_hosts + backend)
        args.policy = policy
        return int(args.func(args))
    except AirgapError as exc:
        print(f"airgap-lsp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
