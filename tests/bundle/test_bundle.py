"""The bundle crosses an air gap: `make test-bundle` builds it (signed with a throwaway minisign
key), and these tests unpack it in a fresh folder and run its install.sh inside a network namespace
with no route out. The installed server, still without network, answers an inline completion and
writes its audit line. A changed file, a missing wheel, an added file and a bad signature are each
refused, with a message that names them, before anything is installed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import make_test_lsp_client

from tests.conftest import cursor_file
from tests.e2e.harness import bounded
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc
from tests.e2e.test_network_namespace import NO_NETWORK, no_route_out

pytestmark = pytest.mark.e2e

BUNDLE_DIR = os.environ.get("AIRGAP_BUNDLE_DIR", "")
PUBKEY = os.environ.get("AIRGAP_BUNDLE_PUBKEY", "")


@pytest.fixture(scope="module")
def bundle_tar() -> Path:
    if not BUNDLE_DIR or not PUBKEY:
        pytest.fail("run `make test-bundle`: it builds and signs the bundle these tests install")
    tars = sorted(Path(BUNDLE_DIR).glob("airgap-lsp-*.tar.gz"))
    assert len(tars) == 1, f"one bundle expected in {BUNDLE_DIR}, found {tars}"
    return tars[0]


def unpack(tar: Path, into: Path) -> Path:
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    (folder,) = into.iterdir()
    return folder


def far_side_env(home: Path) -> dict[str, str]:
    """A machine's plain environment: no pip configuration or index of this one."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "HOME": str(home), "AIRGAP_LSP_HOME": str(home / "airgap")}


def install(folder: Path, prefix: Path, home: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NO_NETWORK, "sh", str(folder / "install.sh"), str(prefix), *extra],
        env=far_side_env(home),
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="module")
def installed(
    bundle_tar: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path, str]:
    """(bundle folder, PREFIX, HOME, install.sh's output) of an install with no network."""
    assert no_route_out() == errno.ENETUNREACH  # the namespace really has no way out
    far_side = tmp_path_factory.mktemp("far-side")
    folder = unpack(bundle_tar, far_side / "media")
    prefix, home = far_side / "opt" / "airgap-lsp", far_side / "home"
    home.mkdir()
    done = install(folder, prefix, home, "--pubkey", PUBKEY)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, prefix, home, done.stdout + done.stderr


def test_install_checks_the_bundle_then_installs_it_with_no_network(
    installed: tuple[Path, Path, Path, str],
) -> None:
    folder, prefix, _home, out = installed
    info = json.loads((folder / "BUNDLE.json").read_text())
    assert "SHA256SUMS is signed by the key" in out
    assert "every file matches SHA256SUMS" in out
    command = prefix / "bin" / "airgap-lsp"
    assert (
        command.resolve() == (prefix / "versions" / info["name"] / "bin" / "airgap-lsp").resolve()
    )
    # The doctor's report, printed by install.sh: every check passed.
    for line in ("ok   SBOM", "ok   packages: all", "ok   installed files: all"):
        assert line in out, out
    (model,) = info["models"]
    assert (
        f"ok   model {model['ref']}: 6 files match; manifest sha256 {model['manifest_sha256']}"
        in out
    )
    # The manifest sha256 the store holds is the one the SBOM names for the model.
    sbom = json.loads((folder / "sbom.cdx.json").read_text())
    (listed,) = [c for c in sbom["components"] if c["type"] == "machine-learning-model"]
    props = {p["name"]: p["value"] for p in listed["properties"]}
    assert props["airgap-lsp:manifest-sha256"] == model["manifest_sha256"]
    assert f'"airgap.serverPath": "{command}"' in out


def test_the_sbom_lists_every_wheel_with_its_version_licence_and_sha256(
    installed: tuple[Path, Path, Path, str],
) -> None:
    folder = installed[0]
    sbom = json.loads((folder / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    libraries = {c["name"].lower(): c for c in sbom["components"] if c["type"] == "library"}
    wheels = sorted((folder / "wheelhouse").glob("*.whl"))
    assert len(libraries) == len(wheels)
    sums = dict(
        reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines()
    )
    for wheel in wheels:
        dist = wheel.name.split("-")[0].replace("_", "-").lower()
        comp = next(
            c for n, c in libraries.items() if n.replace("_", "-").replace(".", "-") == dist
        )
        assert comp["hashes"] == [{"alg": "SHA-256", "content": sums[f"wheelhouse/{wheel.name}"]}]
        assert comp["version"] in wheel.name.replace("%2B", "+")
        assert comp.get("licenses"), f"{wheel.name} has no licence in the SBOM"
    assert "torch" in libraries and "airgap-lsp" in libraries


async def test_the_installed_server_answers_with_no_network_and_audits_it(
    installed: tuple[Path, Path, Path, str],
) -> None:
    _folder, prefix, home, _out = installed
    command = str(prefix / "bin" / "airgap-lsp")
    doc = cursor_file("completion/limits.py")
    workspace = doc.path.parent
    client = make_test_lsp_client()
    await client.start_io(*NO_NETWORK, command, "serve", env=far_side_env(home))
    try:
        await bounded(
            client.initialize_session(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(),
                    workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
                    initialization_options={"maxTokensLine": 16},
                )
            ),
            "initialize",
        )
        uri = open_doc(client, doc, "python")
        items = await bounded(complete(client, uri, doc), "an inline completion", 300)
    finally:
        await bounded(client.shutdown_session(), "shutdown")
    assert items and items[0].strip(), items
    # The default audit log of the far side's data folder: one line, for that suggestion.
    audit = home / "airgap" / "audit" / "audit.jsonl"
    (record,) = audit_lines(audit)
    assert record["text"] == items[0]
    verify = subprocess.run(
        [*NO_NETWORK, command, "audit", "verify"],
        env=far_side_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_running_it_again_changes_nothing_and_keeps_the_store_and_the_log(
    installed: tuple[Path, Path, Path, str],
) -> None:
    folder, prefix, home, _out = installed
    store = home / "airgap" / "models" / "registry.json"
    before = store.read_bytes()
    done = install(folder, prefix, home, "--pubkey", PUBKEY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installed already" in done.stdout
    assert "in the store already" in done.stdout
    assert store.read_bytes() == before


def tampered_copy(folder: Path, into: Path) -> Path:
    """A copy of the unpacked bundle whose files are links to the original's (cheap); a test
    replaces a file rather than writing into it, so the original stays as it was."""
    copy = into / folder.name
    shutil.copytree(folder, copy, copy_function=os.link)
    return copy


def refused(copy: Path, prefix: Path, home: Path, *extra: str) -> str:
    done = install(copy, prefix, home, *extra)
    assert done.returncode != 0, done.stdout
    assert not prefix.exists(), "something was installed from a refused bundle"
    return done.stderr


def replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


@pytest.fixture
def copy(installed: tuple[Path, Path, Path, str], tmp_path: Path) -> Path:
    return tampered_copy(installed[0], tmp_path)


def test_a_changed_wheel_is_refused_by_name(copy: Path, tmp_path: Path) -> None:
    wheel = next((copy / "wheelhouse").glob("tqdm-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    replace(wheel, bytes(data))
    err = refused(copy, tmp_path / "prefix", tmp_path, "--pubkey", PUBKEY)
    assert f"changed: wheelhouse/{wheel.name}" in err
    assert "nothing was installed" in err


def test_a_missing_wheel_and_an_added_file_are_refused_by_name(copy: Path, tmp_path: Path) -> None:
    wheel = next((copy / "wheelhouse").glob("numpy-*.whl"))
    wheel.unlink()
    (copy / "wheelhouse" / "extra-1.0-py3-none-any.whl").write_bytes(b"not reviewed")
    err = refused(copy, tmp_path / "prefix", tmp_path, "--pubkey", PUBKEY)
    assert f"missing: wheelhouse/{wheel.name}" in err
    assert "not in SHA256SUMS: wheelhouse/extra-1.0-py3-none-any.whl" in err


def test_a_signature_by_another_key_or_a_changed_list_is_refused(
    copy: Path, tmp_path: Path
) -> None:
    # Another key: the site's public key does not verify this signature.
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        ["minisign", "-G", "-W", "-p", str(other / "pub"), "-s", str(other / "key")],
        check=True,
        capture_output=True,
    )
    err = refused(copy, tmp_path / "prefix", tmp_path, "--pubkey", str(other / "pub"))
    assert "SHA256SUMS.minisig does not verify" in err
    # The right key, but SHA256SUMS edited after signing (to hide a changed file).
    sums = copy / "SHA256SUMS"
    replace(sums, sums.read_bytes() + b"\n")
    err = refused(copy, tmp_path / "prefix", tmp_path, "--pubkey", PUBKEY)
    assert "SHA256SUMS.minisig does not verify" in err
    # No key given for a signed bundle: refused too, saying what to give.
    err = refused(copy, tmp_path / "prefix", tmp_path)
    assert "--pubkey FILE" in err
