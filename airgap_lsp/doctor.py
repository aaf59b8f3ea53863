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
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from airgap_lsp import __version__
from airgap_lsp.paths import model_store_root

BUNDLE_FILE = "airgap-bundle.json"
SBOM_FILE = "sbom.cdx.json"
# What `python -m venv` puts into every environment: the Python that made it ships them.
FROM_THE_INTERPRETER = frozenset({"pip", "setuptools", "wheel"})
CHUNK = 1024 * 1024


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
    return text.replace("%2B", "+").replace("%2b", "+")


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
    actual, recorded = _sha256(sbom_path), str(info.get("sbom_sha256", ""))
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


def check_files(
    dists: Iterable[metadata.Distribution], progress: Callable[[int], None] | None = None
) -> Iterator[Finding]:
    """Every installed file against the sha256 its distribution's RECORD holds."""
    checked, failed = 0, []
    for dist in dists:
        for file in dist.files or []:
            if file.hash is None or file.hash.mode != "sha256":
                continue
            path = Path(str(file.locate()))
            checked += 1
            try:
                digest = hashlib.sha256(path.read_bytes()).digest()
            except OSError:
                failed.append(f"{path} (missing)")
                continue
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
                failed.append(f"{path} ({dist.metadata['Name']})")
        if progress is not None:
            progress(1)
    if failed:
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        yield Finding(
            False,
            "installed files",
            f"{len(failed)} of {checked} fail their RECORD hash: "
            f"{', '.join(failed[:10])}{more}. Install the bundle again.",
        )
    else:
        yield Finding(True, "installed files", f"all {checked} match their RECORD hash")


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
) -> list[Finding]:
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

    findings += check_files(dists, step)
    findings += check_models()
    findings += check_audit(audit_log)
    return findings


def render(findings: Iterable[Finding]) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "    "}
    return "\n".join(f"{mark[f.ok]} {f.what}: {f.detail}" for f in findings)
