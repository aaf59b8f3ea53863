"""`airgap-lsp doctor`: what is installed, where it came from, and whether any of it fails its hash.

An installed bundle (bundle/install.sh) leaves, beside the environment it made, the bundle's
description (`airgap-bundle.json`) and its bill of materials (`sbom.cdx.json`). The doctor checks
that SBOM against the hash the bundle recorded for it, every installed distribution against the
SBOM (name and version, nothing missing, nothing added), every installed file against the sha256
its distribution's RECORD gives it, every stored model against its manifest, and the audit log's
hash chain.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote

from airgap_lsp import __version__
from airgap_lsp.paths import model_store_root
from inference.store import sha256_file

BUNDLE_FILE = "airgap-bundle.json"
SBOM_FILE = "sbom.cdx.json"
# What `python -m venv` puts into every environment: the target's Python ships them (its
# ensurepip), not the bundle.
FROM_THE_INTERPRETER = frozenset({"pip", "setuptools", "wheel"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: `ok` None for what is only told, False for a failure."""

    ok: bool | None
    what: str
    detail: str = ""


def bundle_info(prefix: Path | None = None) -> dict[str, object] | None:
    """The description of the bundle this environment was installed from, if it was."""
    path = (prefix or Path(sys.prefix)) / BUNDLE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def version_line(prefix: Path | None = None) -> str:
    info = bundle_info(prefix)
    if info is None:
        return f"airgap-lsp {__version__}"
    return (
        f"airgap-lsp {__version__} (bundle {info.get('name', '?')}, built "
        f"{info.get('built_at', '?')}, SBOM sha256 {info.get('sbom_sha256', '?')})"
    )


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sbom_packages(sbom: dict[str, object]) -> dict[str, str]:
    """name -> version of every Python package the SBOM lists (its `pkg:pypi` components)."""
    out: dict[str, str] = {}
    components = sbom.get("components", [])
    for comp in components if isinstance(components, list) else []:
        purl = str(comp.get("purl", "")) if isinstance(comp, dict) else ""
        if m := re.fullmatch(r"pkg:pypi/([^@]+)@([^?#]+)", purl):
            out[_normal(m[1])] = metadata_version(m[2])
    return out


def metadata_version(text: str) -> str:
    """A purl's version as the distribution's metadata writes it (`+` is escaped in a purl)."""
    return unquote(text)


def installed_packages(dists: Iterable[metadata.Distribution]) -> dict[str, str]:
    return {_normal(d.metadata["Name"]): d.version for d in dists if d.metadata["Name"]}


def check_sbom(
    prefix: Path, info: dict[str, object] | None, dists: Iterable[metadata.Distribution]
) -> Iterator[Finding]:
    if info is None:
        yield Finding(
            None, "bundle", f"none: this environment ({prefix}) was not installed from one"
        )
        return
    yield Finding(None, "bundle", f"{info.get('name', '?')}, built {info.get('built_at', '?')}")
    sbom_path = prefix / SBOM_FILE
    if not sbom_path.is_file():
        yield Finding(False, "SBOM", f"{sbom_path} is missing: install the bundle again")
        return
    actual, recorded = _readable_sha256(sbom_path), str(info.get("sbom_sha256", ""))
    if actual is None:
        yield Finding(False, "SBOM", f"{sbom_path} cannot be read: install the bundle again")
        return
    if actual != recorded:
        yield Finding(
            False,
            "SBOM",
            f"{sbom_path} has sha256 {actual}, the bundle recorded {recorded}: it was changed "
            "after installation",
        )
        return
    yield Finding(True, "SBOM", f"{sbom_path}, sha256 {actual}")
    try:
        listed = sbom_packages(json.loads(sbom_path.read_text(encoding="utf-8")))
    except ValueError as exc:
        yield Finding(False, "SBOM", f"{sbom_path} is not JSON ({exc})")
        return
    have = installed_packages(dists)
    wrong = [
        f"{name} {have[name]} (the SBOM lists {ver})"
        for name, ver in sorted(listed.items())
        if name in have and have[name] != ver
    ]
    missing = sorted(name for name in listed if name not in have)
    extra = sorted(n for n in have if n not in listed and n not in FROM_THE_INTERPRETER)
    if wrong or missing or extra:
        parts = (
            [f"other versions: {', '.join(wrong)}"] * bool(wrong)
            + [f"missing: {', '.join(missing)}"] * bool(missing)
            + [f"not in the SBOM: {', '.join(extra)}"] * bool(extra)
        )
        yield Finding(False, "packages", "; ".join(parts))
    else:
        yield Finding(True, "packages", f"all {len(listed)} of the SBOM installed, nothing else")


def _some(items: list[str], most: int = 10) -> str:
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more


def _record_hex(value: str) -> str:
    """A RECORD hash (urlsafe base64, unpadded) as hex."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()


def check_bundle_files(prefix: Path) -> Iterator[Finding]:
    """The editor clients install.sh copied beside the environment (Neovim runs the plugin's Lua
    files), against the bundle's SHA256SUMS kept with them."""
    sums = prefix / "SHA256SUMS"
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        yield Finding(False, "editor clients", f"cannot read {sums} ({exc.strerror})")
        return
    listed = {
        path: digest
        for digest, _, path in (line.partition("  ") for line in lines)
        if path.startswith("editors/")
    }
    editors = prefix / "editors"
    if editors.is_symlink():
        yield Finding(False, "editor clients", f"{editors} is a link: install the bundle again")
        return
    found = {
        p.relative_to(prefix).as_posix()
        for p in editors.rglob("*")
        if p.is_file() or p.is_symlink()
    }
    wrong = [f"{path} (missing)" for path in sorted(listed.keys() - found)]
    for path in sorted(listed.keys() & found):
        if (prefix / path).is_symlink():
            wrong.append(f"{path} (a link)")
        elif (digest := _readable_sha256(prefix / path)) is None:
            wrong.append(f"{path} (unreadable)")
        elif digest != listed[path]:
            wrong.append(f"{path} (changed)")
    wrong += sorted(f"{path} (not in the bundle)" for path in found - listed.keys())
    if wrong:
        yield Finding(False, "editor clients", f"{', '.join(wrong)}. Install the bundle again.")
    else:
        yield Finding(True, "editor clients", f"all {len(listed)} files match SHA256SUMS")


def _readable_sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def check_files(
    dists: Iterable[metadata.Distribution],
    progress: Callable[[int], None] | None = None,
    site: Iterable[Path] = (),
    allowed: frozenset[str] = frozenset(),
) -> Iterator[Finding]:
    """Every installed file against the sha256 its distribution's RECORD holds, and every file of
    `site` (site-packages) that no RECORD names: a `.pth` or `sitecustomize.py` put there runs at
    every start; a link there is reported whatever it points at. `allowed`: file names the tool
    that made the environment puts at the top of site-packages. RECORD has no hash of its own, so
    this finds a corrupted or swapped file, not one whose RECORD line was rewritten with it."""
    checked, unhashed, failed, named = 0, 0, [], set()
    for dist in dists:
        for file in dist.files or []:
            path = Path(str(file.locate()))
            named.add(os.path.normpath(path))
            if file.hash is None or file.hash.mode != "sha256":
                unhashed += 1
                continue
            checked += 1
            try:
                digest = sha256_file(path)
            except OSError:
                failed.append(f"{path} (missing)")
                continue
            if digest != _record_hex(file.hash.value):
                failed.append(f"{path} ({dist.metadata['Name']})")
        if progress is not None:
            progress(1)
    stray = []
    for root in site:
        for top, dirs, files in os.walk(root):  # links are listed, never followed
            here = Path(top)
            stray += [str(here / d) for d in dirs if (here / d).is_symlink()]
            for name in files:
                path = here / name
                if os.path.normpath(path) in named or (name in allowed and here == root):
                    continue
                if path.suffix == ".pyc" and here.name == "__pycache__" and not path.is_symlink():
                    unhashed += 1  # written by Python itself
                else:
                    stray.append(str(path))
    if failed:
        yield Finding(
            False,
            "installed files",
            f"{len(failed)} of {checked} fail their RECORD hash: {_some(failed)}. "
            "Install the bundle again.",
        )
    else:
        yield Finding(True, "installed files", f"all {checked} match their RECORD hash")
    if stray:
        yield Finding(
            False,
            "unknown files",
            f"{len(stray)} file(s) in site-packages belong to no installed package: "
            f"{_some(stray)}. Find out who put them there, then install again.",
        )
    if unhashed:
        yield Finding(
            None,
            "not checked",
            f"{unhashed} files have no hash to check against (compiled .pyc files, each RECORD)",
        )


def check_models() -> Iterator[Finding]:
    from inference.errors import ModelStoreError
    from inference.store import ModelStore

    store = ModelStore(model_store_root())
    try:
        rows = store.models()
    except ModelStoreError as exc:
        yield Finding(False, "model store", f"{store.root}: {exc}")
        return
    if not rows:
        yield Finding(
            False, "model store", f"{store.root} holds no model: import one (`model import`)"
        )
        return
    yield Finding(None, "model store", str(store.root))
    for name, version, _digest in rows:
        try:
            stored = store.verify(f"{name}@{version}")
        except ModelStoreError as exc:
            yield Finding(False, f"model {name}@{version}", str(exc))
        else:
            yield Finding(
                True,
                f"model {name}@{version}",
                f"{len(stored.manifest.files)} files match; manifest sha256 "
                f"{stored.manifest_sha256}",
            )


def check_audit(log: Path) -> Iterator[Finding]:
    from audit.verify import verify_chain

    if not log.exists():
        yield Finding(None, "audit log", f"{log} (none yet: the first suggestion writes it)")
        return
    result = verify_chain(log)
    yield Finding(result.ok, "audit log", result.reason)


def diagnose(
    audit_log: Path,
    prefix: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    installation_only: bool = False,
) -> list[Finding]:
    """The report; `installation_only` leaves out the model store and the audit log (install.sh
    decides with it whether a new version may be put in use)."""
    prefix = prefix or Path(sys.prefix)
    findings = [
        Finding(None, "version", version_line(prefix)),
        Finding(None, "python", sys.executable),
    ]
    dists = list(metadata.distributions())
    findings += check_sbom(prefix, bundle_info(prefix), dists)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(dists))

    info = bundle_info(prefix)
    if info is not None:
        findings += check_bundle_files(prefix)
    site = {Path(p) for key in ("purelib", "platlib") if (p := sysconfig.get_paths().get(key))}
    findings += check_files(dists, step, sorted(site), made_by(prefix))
    if installation_only:
        return findings
    findings += check_models()
    findings += check_audit(audit_log)
    return findings


def made_by(prefix: Path) -> frozenset[str]:
    """What the tool that made the environment put into site-packages: virtualenv and uv add a
    `.pth` hook of their own; `python -m venv` adds nothing."""
    try:
        cfg = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    keys = {line.partition("=")[0].strip() for line in cfg.splitlines()}
    if keys & {"virtualenv", "uv"}:
        return frozenset({"_virtualenv.pth", "_virtualenv.py"})
    return frozenset()


def render(findings: Iterable[Finding]) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "    "}
    return "\n".join(f"{mark[f.ok]} {f.what}: {f.detail}" for f in findings)
