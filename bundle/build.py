"""`make bundle`: the one artifact an administrator carries across the boundary.

On a connected machine, writes dist/airgap-lsp-VERSION-PLATFORM.tar.gz holding:

    wheelhouse/          every wheel of locks/runtime.txt (or runtime-cuda.txt), airgap-lsp's own
    requirements.lock    that lock plus airgap-lsp's wheel: pip --require-hashes installs from it
    models/              the default model's wheel, any model the site names, and the manifest
                         each import wrote (install.sh imports against it: same manifest sha256)
    editors/             the VS Code extension (.vsix) and the Neovim plugin folder
    sbom.cdx.json        CycloneDX 1.6: every component with its version, licence and sha256
    BUNDLE.json          what this bundle is: name, version, platform, models, the SBOM's sha256
    install.sh, INSTALL.md (docs/deploy.md)
    SHA256SUMS           every file above; SHA256SUMS.minisig when a signing key is given

docs/deploy.md says how it crosses, is checked, installed, upgraded and rolled back.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
LOCKS = {"cpu": ROOT / "locks" / "runtime.txt", "cuda": ROOT / "locks" / "runtime-cuda.txt"}
PROP = "airgap-lsp"  # the namespace of this bundle's SBOM properties


class BundleError(Exception):
    pass


def sha256(path: Path) -> str:
    from inference.store import sha256_file  # the store's reader: one way to hash a file

    return sha256_file(path)


def run(cmd: list[str], **kw: object) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise BundleError(f"{' '.join(cmd[:4])} ... failed:\n{done.stderr.strip()[-4000:]}")


def project() -> dict[str, str]:
    import tomllib

    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def version() -> str:
    return str(project()["version"])


def platform_tag(torch: str) -> str:
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return f"linux-{platform.machine()}-{py}" + ("-cuda" if torch == "cuda" else "")


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.BytesParser().parsebytes(zf.read(name), headersonly=True)


# Licence names that wheels give (trove classifiers, `License:` fields) and that name exactly one
# SPDX licence; "BSD License" or "Apache Software License" name a family, and stay as written.
SPDX = {
    "MIT License": "MIT",
    "MIT": "MIT",
    "ISC License (ISCL)": "ISC",
    "ISC License": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Apache 2.0 License": "Apache-2.0",
    "Apache License 2.0": "Apache-2.0",
    "Apache 2.0": "Apache-2.0",
    "Python Software Foundation License": "PSF-2.0",
}


def licence_of(meta: email.message.Message) -> str:
    name = _licence_of(meta)
    return SPDX.get(name, name)


def _licence_of(meta: email.message.Message) -> str:
    """The wheel's licence as its metadata states it: the SPDX expression where there is one,
    else a short `License:` field, else the trove classifiers' names."""
    if expr := meta.get("License-Expression"):
        return str(expr).strip()
    # A `License:` field is sometimes the whole licence text: its first line names it.
    text = str(meta.get("License") or "").strip().split("\n", 1)[0].strip()
    if text and len(text) <= 80 and text.upper() != "UNKNOWN":
        return text
    names = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::") and c.split("::")[-1].strip() != "OSI Approved"
    ]
    return " OR ".join(names) if names else "unknown"


# -- the parts --------------------------------------------------------------------------------


def wheelhouse(stage: Path, torch: str) -> None:
    """Every locked wheel, checked against the lock's hashes by pip itself."""
    env = dict(os.environ)
    if torch == "cuda":  # no local folder of CPU wheels may stand in for the registry's CUDA torch
        env.update(PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "-r",
            str(LOCKS[torch]),
            "-d",
            str(stage / "wheelhouse"),
        ],
        env=env,
    )


def own_wheel(stage: Path) -> Path:
    # Built in the source tree (no isolation): a build/ left by an older build could put stale
    # files into the wheel.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    with tempfile.TemporaryDirectory() as out:
        # Built with the locked setuptools of this environment, not one fetched unpinned.
        run(
            [
                sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                "--no-build-isolation", "-w", out, str(ROOT),
            ]
        )  # fmt: skip
        (built,) = Path(out).glob("airgap_lsp-*.whl")
        return Path(shutil.copy2(built, stage / "wheelhouse"))


def lock_file(stage: Path, torch: str, own: Path) -> None:
    text = LOCKS[torch].read_text()
    text += f"airgap-lsp=={version()} \\\n    --hash=sha256:{sha256(own)}\n"
    (stage / "requirements.lock").write_text(text)


def import_for_manifest(source: Path, ref: str, scratch: Path) -> bytes:
    """Import into a scratch store, as install.sh will on the far side: the manifest it writes
    (every converted file's sha256) is the one the far side's import must match."""
    name, ver = ref.split("@", 1)
    store = scratch / "store"
    env = dict(os.environ, AIRGAP_LSP_MODEL_STORE=str(store))
    run(
        [
            sys.executable,
            "-m",
            "airgap_lsp",
            "model",
            "import",
            str(source),
            "--name",
            name,
            "--version",
            ver,
        ],
        env=env,
    )
    return (store / name / ver / "manifest.json").read_bytes()


def reviewed_manifest(data: bytes, label: str, when: datetime) -> bytes:
    """The scratch import's manifest with nothing of this build in it: where the files lie in the
    bundle, when the source was made, by `make bundle`. Two builds of the same model write the same
    manifest, so a newer bundle finds its model in the store already and an upgrade goes on."""
    from dataclasses import replace

    from inference.store import Manifest

    m = Manifest.from_json(data, Path(label))
    return replace(
        m,
        source={**m.source, "path": label},
        imported_at=when.astimezone(UTC).isoformat(timespec="seconds"),
        imported_by={"user": "make bundle", "uid": "-", "host": "-"},
    ).to_json()


def newest(source: Path) -> datetime:
    """When a model file, or the newest file of a model folder, was last written."""
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
    times = [p.stat().st_mtime for p in files]
    return datetime.fromtimestamp(max(times, default=0), UTC)


def models(stage: Path, args: argparse.Namespace) -> list[dict[str, str]]:
    out = []
    wheel = Path(args.model_wheel)
    if sha256(wheel) != args.model_sha256:
        raise BundleError(f"{wheel} does not match its pinned sha256: delete it and run make model")
    (stage / "models").mkdir()
    shutil.copy2(wheel, stage / "models" / wheel.name)
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(args.model_member, unpacked)
            made = datetime(*zf.getinfo(args.model_member).date_time, tzinfo=UTC)
        manifest = import_for_manifest(unpacked / args.model_member, args.model_ref, Path(tmp))
    manifest = reviewed_manifest(manifest, f"models/{wheel.name}!/{args.model_member}", made)
    out.append(
        model_entry(stage, args.model_ref, f"models/{wheel.name}", args.model_member, manifest)
    )
    if args.extra_model:
        src, ref = Path(args.extra_model), args.extra_model_ref
        if not ref or "@" not in ref:
            raise BundleError("EXTRA_MODEL needs EXTRA_MODEL_REF=NAME@VERSION")
        dest = stage / "models" / (ref + (".gguf" if src.is_file() else ""))
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=False)
        else:
            shutil.copy2(src, dest)
        with tempfile.TemporaryDirectory() as tmp:
            manifest = import_for_manifest(dest, ref, Path(tmp))
        rel = dest.relative_to(stage).as_posix()
        manifest = reviewed_manifest(manifest, rel, newest(src))
        out.append(model_entry(stage, ref, dest.relative_to(stage).as_posix(), "", manifest))
    return out


def model_entry(stage: Path, ref: str, path: str, member: str, manifest: bytes) -> dict[str, str]:
    rel = f"models/{ref}.manifest.json"
    (stage / rel).write_bytes(manifest)
    name, ver = ref.split("@", 1)
    return {
        "ref": ref, "name": name, "version": ver, "path": path, "member": member,
        "manifest": rel, "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
    }  # fmt: skip


def editors(stage: Path, vsix: Path) -> None:
    if not vsix.is_file():
        raise BundleError(f"{vsix} is missing: run make vsix (make bundle does)")
    (stage / "editors").mkdir()
    shutil.copy2(vsix, stage / "editors" / "airgap-lsp.vsix")
    shutil.copytree(
        ROOT / "editors" / "nvim",
        stage / "editors" / "nvim",
        ignore=shutil.ignore_patterns("stylua.toml"),
    )


def install_files(stage: Path) -> None:
    shutil.copy2(HERE / "install.sh", stage / "install.sh")
    shutil.copy2(ROOT / "docs" / "deploy.md", stage / "INSTALL.md")  # one text for both


def sbom(stage: Path, entries: list[dict[str, str]]) -> str:
    """CycloneDX 1.6 JSON, validated against its schema before it is written."""
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    licences = LicenseFactory()

    def hashes(*hexes: str) -> list[HashType]:
        return [HashType(alg=HashAlgorithm.SHA_256, content=h) for h in hexes]

    def where(rel: str) -> Property:
        return Property(name=f"{PROP}:file", value=rel)

    bom = Bom()
    bom.metadata.component = Component(
        type=ComponentType.APPLICATION, name="airgap-lsp", version=version(), bom_ref="bundle"
    )
    for wheel in sorted((stage / "wheelhouse").glob("*.whl")):
        meta = wheel_metadata(wheel)
        name, ver = str(meta["Name"]), str(meta["Version"])
        purl = PackageURL(type="pypi", name=name.lower(), version=ver)
        bom.components.add(
            Component(
                type=ComponentType.LIBRARY, name=name, version=ver, purl=purl,
                bom_ref=purl.to_string(), hashes=hashes(sha256(wheel)),
                licenses=[licences.make_from_string(licence_of(meta))],
                properties=[where(wheel.relative_to(stage).as_posix())],
            )
        )  # fmt: skip
    for e in entries:
        manifest = json.loads((stage / e["manifest"]).read_text())
        files = [
            Component(
                type=ComponentType.FILE,
                name=rel,
                hashes=hashes(digest),
                bom_ref=f"{e['ref']}/{rel}",
            )
            for rel, digest in sorted(manifest["files"].items())
        ]
        files.append(
            Component(
                type=ComponentType.FILE, name="manifest.json", hashes=hashes(e["manifest_sha256"]),
                bom_ref=f"{e['ref']}/manifest.json",
            )
        )  # fmt: skip
        path = stage / e["path"]
        carried = sha256(path) if path.is_file() else None
        bom.components.add(
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL, name=e["name"], version=e["version"],
                bom_ref=e["ref"], hashes=hashes(carried) if carried else [],
                licenses=[licences.make_from_string(str(manifest.get("license") or "unknown"))],
                properties=[
                    where(e["path"]),
                    Property(name=f"{PROP}:manifest-sha256", value=e["manifest_sha256"]),
                    Property(name=f"{PROP}:prompt-format", value=str(manifest["prompt_format"])),
                ],
                components=files,
            )
        )  # fmt: skip
    ext = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    # What esbuild bundled into the extension: the lock's packages that are not dev-only.
    lock = json.loads((ROOT / "editors" / "vscode" / "package-lock.json").read_text())
    npm = []
    for key, pkg in sorted(lock["packages"].items()):
        if not key or pkg.get("dev"):
            continue
        npm_name = key.rsplit("node_modules/", 1)[-1]
        scope, _, bare = npm_name.rpartition("/")
        npm_purl = PackageURL(
            type="npm", namespace=scope or None, name=bare, version=pkg["version"]
        )
        # Subresource integrity: one or more "alg-base64" tokens; the first sha512 is kept.
        tokens = [t.partition("-") for t in str(pkg.get("integrity", "")).split()]
        alg, _, b64 = next((t for t in tokens if t[0] == "sha512"), ("", "", ""))
        npm.append(
            Component(
                type=ComponentType.LIBRARY, name=npm_name, version=pkg["version"], purl=npm_purl,
                bom_ref=npm_purl.to_string(),
                licenses=[licences.make_from_string(str(pkg.get("license") or "unknown"))],
                hashes=[HashType(alg=HashAlgorithm.SHA_512, content=base64.b64decode(b64).hex())]
                if alg == "sha512" else [],
            )
        )  # fmt: skip
    ours = licences.make_from_string(project()["license"])
    bom.components.add(
        Component(
            type=ComponentType.APPLICATION, name="airgap-lsp VS Code extension",
            version=str(ext["version"]), bom_ref="vscode-extension", licenses=[ours],
            hashes=hashes(sha256(stage / "editors" / "airgap-lsp.vsix")),
            properties=[where("editors/airgap-lsp.vsix")], components=npm,
        )
    )  # fmt: skip
    nvim = stage / "editors" / "nvim"
    bom.components.add(
        Component(
            type=ComponentType.APPLICATION, name="airgap-lsp Neovim plugin", version=version(),
            bom_ref="neovim-plugin", properties=[where("editors/nvim")], licenses=[ours],
            components=[
                Component(
                    type=ComponentType.FILE, name=p.relative_to(nvim).as_posix(),
                    hashes=hashes(sha256(p)), bom_ref=f"nvim/{p.relative_to(nvim).as_posix()}",
                )
                for p in sorted(nvim.rglob("*")) if p.is_file()
            ],
        )
    )  # fmt: skip
    root = bom.metadata.component
    bom.register_dependency(root, list(bom.components))
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    if error := JsonStrictValidator(SchemaVersion.V1_6).validate_str(text):
        raise BundleError(f"the SBOM does not validate against CycloneDX 1.6: {error}")
    (stage / "sbom.cdx.json").write_text(text + "\n")
    return sha256(stage / "sbom.cdx.json")


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def sums(stage: Path) -> None:
    files = sorted(p for p in stage.rglob("*") if p.is_file())
    lines = [f"{sha256(p)}  {p.relative_to(stage).as_posix()}" for p in files]
    (stage / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def sign(stage: Path, key: Path, name: str) -> None:
    if shutil.which("minisign") is None:
        raise BundleError("signing needs minisign (apt-get install minisign)")
    # The password, if the key has one, is asked on the terminal; -W keys have none.
    done = subprocess.run(
        ["minisign", "-S", "-s", str(key), "-m", str(stage / "SHA256SUMS"), "-t", name]
    )
    if done.returncode != 0:
        raise BundleError(f"minisign could not sign with {key}")


def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No builder's uid in the archive: unpacked as root, the files belong to root, not to
    whichever far-side account has the builder's uid; and no builder's umask in the modes."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    # Readable by every user of the far side, whatever umask the build machine had.
    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def archive(stage: Path, target: Path) -> None:
    part = target.with_name(target.name + ".part")
    # Wheels are compressed already: level 1 costs little and saves a minute.
    with tarfile.open(part, "w:gz", compresslevel=1) as tar:
        tar.add(stage, arcname=stage.name, filter=owned_by_root)
    part.replace(target)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "dist"))
    p.add_argument("--torch", choices=sorted(LOCKS), default="cpu")
    p.add_argument("--model-wheel", required=True)
    p.add_argument("--model-sha256", required=True)
    p.add_argument("--model-member", required=True, help="the .gguf inside the model's wheel")
    p.add_argument("--model-ref", required=True, help="NAME@VERSION it is imported as")
    p.add_argument("--extra-model", help="a Hugging Face folder or .gguf the site holds")
    p.add_argument("--extra-model-ref", help="NAME@VERSION for --extra-model")
    p.add_argument("--vsix", default=str(ROOT / "editors" / "vscode" / "airgap-lsp.vsix"))
    p.add_argument("--sign-key", help="a minisign secret key: SHA256SUMS.minisig is written")
    args = p.parse_args(argv)

    started = time.monotonic()
    name = f"airgap-lsp-{version()}-{platform_tag(args.torch)}"
    out = Path(args.out)
    stage = out / name
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    entries: list[dict[str, str]] = []
    steps = [
        ("wheels from the lock", lambda: wheelhouse(stage, args.torch)),
        ("airgap-lsp's wheel", lambda: lock_file(stage, args.torch, own_wheel(stage))),
        ("models", lambda: entries.extend(models(stage, args))),
        ("editors", lambda: editors(stage, Path(args.vsix))),
        ("install.sh", lambda: install_files(stage)),
    ]  # fmt: skip
    try:
        with tqdm(steps, desc="bundle", unit=" step", file=sys.stderr) as bar:
            for label, step in bar:
                bar.set_postfix_str(label)
                step()
            bar.set_postfix_str("SBOM")
            info = {
                "name": name, "version": version(), "platform": platform_tag(args.torch),
                "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                "torch": args.torch, "commit": commit(),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "models": entries, "sbom_sha256": sbom(stage, entries),
            }  # fmt: skip
            (stage / "BUNDLE.json").write_text(json.dumps(info, indent=2) + "\n")
            sums(stage)
            if args.sign_key:
                sign(stage, Path(args.sign_key), name)
            bar.set_postfix_str("archive")
            target = out / f"{name}.tar.gz"
            archive(stage, target)
    except (BundleError, OSError) as exc:
        print(f"make bundle: {exc}", file=sys.stderr)
        return 1
    size = target.stat().st_size
    print(f"wrote {target} ({size / 2**20:.0f} MiB in {time.monotonic() - started:.0f} s)")
    print(f"  sha256 {sha256(target)}")
    print(f"  unpacked in {stage}; SBOM sha256 {info['sbom_sha256']}")
    if not args.sign_key:
        print("  unsigned: give SIGN_KEY=<minisign secret key> to sign SHA256SUMS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
