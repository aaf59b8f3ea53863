"""`airgap-lsp doctor`: a changed installed file, a changed SBOM, a package the SBOM does not list
or lists at another version, are each reported by name."""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import metadata
from pathlib import Path

from airgap_lsp.doctor import (
    BUNDLE_FILE,
    SBOM_FILE,
    Finding,
    check_bundle_files,
    check_files,
    check_sbom,
    version_line,
)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def installed(site: Path, name: str, version: str) -> metadata.Distribution:
    """A distribution as pip leaves it: its module, METADATA, and a RECORD with each file's hash."""
    site.mkdir(parents=True, exist_ok=True)
    module = site / f"{name}.py"
    module.write_text("VALUE = 1\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(
        f"{name}.py,{record_hash(module.read_bytes())},10\n"
        f"{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
    )
    return metadata.PathDistribution(info)


def bundle(prefix: Path, packages: dict[str, str]) -> dict[str, object]:
    sbom = {
        "bomFormat": "CycloneDX",
        "components": [
            {"purl": f"pkg:pypi/{n}@{v.replace('+', '%2B')}"} for n, v in packages.items()
        ],
    }
    (prefix / SBOM_FILE).write_text(json.dumps(sbom))
    digest = hashlib.sha256((prefix / SBOM_FILE).read_bytes()).hexdigest()
    info: dict[str, object] = {
        "name": "airgap-lsp-9-test",
        "built_at": "now",
        "sbom_sha256": digest,
    }
    (prefix / BUNDLE_FILE).write_text(json.dumps(info))
    return info


def failures(findings: list[Finding]) -> list[str]:
    return [f"{f.what}: {f.detail}" for f in findings if f.ok is False]


def test_installed_files_are_checked_against_their_record(tmp_path: Path) -> None:
    dist = installed(tmp_path, "demo", "1.0")
    assert failures(list(check_files([dist]))) == []
    (tmp_path / "demo.py").write_text("VALUE = 2\n")
    (problem,) = failures(list(check_files([dist])))
    assert f"{tmp_path / 'demo.py'} (demo)" in problem and "1 of 1 fail" in problem
    (tmp_path / "demo.py").unlink()
    (problem,) = failures(list(check_files([dist])))
    assert f"{tmp_path / 'demo.py'} (missing)" in problem


def test_the_sbom_must_match_its_recorded_hash_and_what_is_installed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dists = [installed(site, "demo", "1.0+cpu"), installed(site, "other", "2.0")]
    info = bundle(tmp_path, {"demo": "1.0+cpu", "other": "2.0"})
    findings = list(check_sbom(tmp_path, info, dists))
    assert failures(findings) == []
    assert "airgap-lsp-9-test" in version_line(tmp_path)

    info = bundle(tmp_path, {"demo": "1.1", "missing": "3"})
    (problem,) = failures(list(check_sbom(tmp_path, info, dists)))
    assert "other versions: demo 1.0+cpu (the SBOM lists 1.1)" in problem
    assert "missing: missing" in problem and "not in the SBOM: other" in problem

    (tmp_path / SBOM_FILE).write_text("{}")
    (problem,) = failures(list(check_sbom(tmp_path, info, dists)))
    assert "changed after installation" in problem


def test_an_environment_not_installed_from_a_bundle_says_so(tmp_path: Path) -> None:
    (told,) = check_sbom(tmp_path, None, [])
    assert told.ok is None and "not installed from one" in told.detail
    assert version_line(tmp_path).startswith("airgap-lsp ") and "bundle" not in version_line(
        tmp_path
    )


def test_a_file_no_package_installed_is_reported(tmp_path: Path) -> None:
    dist = installed(tmp_path, "demo", "1.0")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "demo.cpython-311.pyc").write_bytes(b"compiled by Python")
    findings = list(check_files([dist], site=[tmp_path]))
    assert failures(findings) == []
    (told,) = [f for f in findings if f.what == "not checked"]
    assert told.detail.startswith("3 files")  # the .pyc, METADATA and RECORD
    (tmp_path / "zz_hook.pth").write_text("import os; os.system('true')\n")
    (problem,) = failures(list(check_files([dist], site=[tmp_path])))
    assert (
        problem.startswith("unknown files: 1 file(s)") and str(tmp_path / "zz_hook.pth") in problem
    )


def test_the_editor_clients_are_checked_against_the_bundles_sums(tmp_path: Path) -> None:
    plugin = tmp_path / "editors" / "nvim" / "plugin"
    plugin.mkdir(parents=True)
    (plugin / "airgap.lua").write_text("require('airgap')\n")
    digest = hashlib.sha256((plugin / "airgap.lua").read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(
        f"{digest}  editors/nvim/plugin/airgap.lua\n{'0' * 64}  wheelhouse/x.whl\n"
    )
    assert failures(list(check_bundle_files(tmp_path))) == []
    (plugin / "extra.lua").write_text("os.execute('true')\n")
    (plugin / "airgap.lua").write_text("changed\n")
    (problem,) = failures(list(check_bundle_files(tmp_path)))
    assert "editors/nvim/plugin/airgap.lua (changed)" in problem
    assert "editors/nvim/plugin/extra.lua (not in the bundle)" in problem


def test_missing_unreadable_and_linked_editor_files_are_named(tmp_path: Path) -> None:
    plugin = tmp_path / "editors" / "nvim" / "plugin"
    plugin.mkdir(parents=True)
    lines = []
    for name in ("a.lua", "b.lua", "c.lua"):
        (plugin / name).write_text(f"-- {name}\n")
        digest = hashlib.sha256((plugin / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  editors/nvim/plugin/{name}")
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    (plugin / "a.lua").unlink()
    (plugin / "b.lua").unlink()
    (plugin / "b.lua").symlink_to(tmp_path / "SHA256SUMS")
    (problem,) = failures(list(check_bundle_files(tmp_path)))
    assert "editors/nvim/plugin/a.lua (missing)" in problem
    assert "editors/nvim/plugin/b.lua (a link)" in problem
    assert "c.lua" not in problem


def test_a_link_in_site_packages_is_reported_and_a_virtualenv_hook_only_at_the_top(
    tmp_path: Path,
) -> None:
    dist = installed(tmp_path, "demo", "1.0")
    (tmp_path / "sitecustomize").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "sub").mkdir()
    (tmp_path / "_virtualenv.pth").write_text("import _virtualenv\n")
    (tmp_path / "sub" / "_virtualenv.pth").write_text("import os\n")
    allowed = frozenset({"_virtualenv.pth"})
    (problem,) = failures(list(check_files([dist], site=[tmp_path], allowed=allowed)))
    assert str(tmp_path / "sitecustomize") in problem
    assert str(tmp_path / "sub" / "_virtualenv.pth") in problem
    assert f"{tmp_path / '_virtualenv.pth'}," not in problem + ","
