"""The local model store: models are imported once, by hand, and checked at every load.

Layout under the store root:

    registry.json                 name@version -> sha256 of that version's manifest.json
    <name>/<version>/manifest.json
    <name>/<version>/<files...>   safetensors weights, config, tokenizer

The registry is the store's own record of each manifest, so a manifest edited to match tampered
weights no longer matches the registry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from inference.errors import ModelNotFound, ModelRefused, ModelStoreError
from inference.prompt_format import FORMATS, detect_format

MANIFEST = "manifest.json"
REGISTRY = "registry.json"
LOCK = ".lock"  # held while an import moves its files in and registers them
log = logging.getLogger("airgap_lsp.store")
MANIFEST_FORMAT = 1
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy"})
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so", ".dll", ".dylib", ".sh"})
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHUNK = 4 * 1024 * 1024
WEIGHT_SUFFIXES = (".safetensors",)
# The JSON configs transformers reads when it loads a model and its tokenizer.
CONFIG_FILES = (
    "config.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "processor_config.json",
)
# Keys whose value is a file or folder to open (`tokenizer_file`, `vocab_file`, `merges_file` ...).
PATH_KEY_RE = re.compile(r"(_file|_files|_path|_dir|_folder)$")
# Keys ending so (`_name_or_path`, `_model_name_or_path`) say where the checkpoint came from: a
# label that may hold a hub id or the trainer's folder, and that is never opened to load it.
PROVENANCE_SUFFIX = "name_or_path"

# Called with (file name, bytes done, bytes total) while hashing or copying.
Progress = Callable[[str, int, int], None]


def _no_progress(_name: str, _done: int, _total: int) -> None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    name: str
    version: str
    family: str  # the checkpoint's model_type, e.g. "llama", "qwen2", "starcoder2"
    prompt_format: str  # a key of inference.prompt_format.FORMATS
    files: dict[str, str]  # relative path -> sha256
    source: dict[str, str]
    imported_at: str
    imported_by: dict[str, str] = field(default_factory=dict)  # OS user, uid and host
    license: str = "unknown"

    def to_json(self) -> bytes:
        doc = {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "version": self.version,
            "family": self.family,
            "prompt_format": self.prompt_format,
            "source": self.source,
            "imported_at": self.imported_at,
            "imported_by": self.imported_by,
            "license": self.license,
            "files": dict(sorted(self.files.items())),
        }
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {doc.get('format')!r}")
            return cls(
                name=str(doc["name"]),
                version=str(doc["version"]),
                family=str(doc["family"]),
                prompt_format=str(doc["prompt_format"]),
                files={str(k): str(v) for k, v in doc["files"].items()},
                source={str(k): str(v) for k, v in doc.get("source", {}).items()},
                imported_at=str(doc["imported_at"]),
                imported_by={str(k): str(v) for k, v in doc.get("imported_by", {}).items()},
                license=str(doc.get("license", "unknown")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelRefused(
                f"The manifest {where} is not valid ({exc}). Re-import the model with "
                "`airgap-lsp model import`."
            ) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredModel:
    """A model that passed every check: its folder, manifest and the manifest's sha256."""

    path: Path
    manifest: Manifest
    manifest_sha256: str

    @property
    def ref(self) -> str:
        return f"{self.manifest.name}@{self.manifest.version}"


def sha256_file(path: Path, progress: Progress = _no_progress, label: str = "") -> str:
    with path.open("rb") as fh:
        return sha256_fd(fh.fileno(), progress, label or path.name)


def sha256_fd(fd: int, progress: Progress = _no_progress, label: str = "") -> str:
    """The sha256 of an open file's content, read from its start without moving its offset."""
    digest = hashlib.sha256()
    total = os.fstat(fd).st_size
    done = 0
    while chunk := os.pread(fd, CHUNK, done):
        digest.update(chunk)
        done += len(chunk)
        progress(label, done, total)
    return digest.hexdigest()


def _open_stored(path: Path) -> int:
    """A stored file, opened for reading; a link or anything but a regular file is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ModelRefused(
            f"Cannot open {path} ({exc.strerror}): re-import the model from its original files."
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ModelRefused(f"{path} is not a regular file: re-import the model.")
    return fd


def parse_ref(ref: str) -> tuple[str, str | None]:
    """`name` or `name@version`."""
    name, _, version = ref.partition("@")
    return name, (version or None)


def _check_name(kind: str, value: str) -> None:
    if not NAME_RE.match(value):
        raise ModelStoreError(
            f"The model {kind} {value!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(up to 128 characters), starting with a letter or digit."
        )


def _walk_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ModelRefused(
                f"{path} is a symbolic link. A model folder must hold its own files: copy the "
                "target in place of the link and import again."
            )
        if path.is_file():
            yield path


def _path_values(doc: object, where: str = "") -> Iterator[tuple[str, str]]:
    """(key, value) of every string that a config gives as a file or folder to open."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            at = f"{where}.{key}" if where else str(key)
            if PATH_KEY_RE.search(str(key)) and not str(key).endswith(PROVENANCE_SUFFIX):
                values = value if isinstance(value, list) else [value]
                yield from ((at, v) for v in values if isinstance(v, str))
            else:
                yield from _path_values(value, at)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from _path_values(item, f"{where}[{i}]")


def _refuse_paths_outside(cfg: Path, doc: object) -> None:
    """A config may name a file of its own folder, never a path: the loader would open it
    unhashed, wherever it points."""
    for key, value in _path_values(doc):
        if value and (
            "/" in value or "\\" in value or value in (".", "..") or Path(value).is_absolute()
        ):
            raise ModelRefused(
                f"{cfg} sets {key} to {value!r}, a path. A model's configs may only name files "
                "in its own folder, which are hashed; anything else would be read unchecked. "
                "Put the file in the model folder, set the bare file name, and import again."
            )


def check_files_are_safe(folder: Path) -> None:
    """Refuse pickled weights, bundled code and configs that need `trust_remote_code`."""
    files = list(_walk_files(folder))
    for path in files:
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise ModelRefused(
                f"{path.name} holds pickled weights, which can run arbitrary code when loaded. "
                "Convert the checkpoint to safetensors on a trusted machine "
                "(model.save_pretrained(dir, safe_serialization=True)), carry that folder in, "
                "and import it."
            )
        if suffix in CODE_SUFFIXES:
            raise ModelRefused(
                f"{path.name} is code shipped with the model. airgap-lsp never runs model code "
                "(no trust_remote_code): use a checkpoint whose architecture transformers has "
                "built in."
            )
    for name in CONFIG_FILES:
        cfg = folder / name
        if not cfg.is_file():
            continue
        try:
            doc = json.loads(cfg.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelRefused(f"{cfg} is not valid JSON ({exc}).") from exc
        if isinstance(doc, dict) and (doc.get("auto_map") or doc.get("trust_remote_code")):
            raise ModelRefused(
                f"{cfg} asks for custom code (auto_map / trust_remote_code). airgap-lsp never "
                "runs code that comes with a model: use a checkpoint whose architecture "
                "transformers has built in."
            )
        _refuse_paths_outside(cfg, doc)
    if not any(p.suffix == ".safetensors" for p in files):
        raise ModelRefused(
            f"{folder} holds no .safetensors weights. Import a Hugging Face folder with "
            "safetensors weights, or a .gguf file (converted at import)."
        )
    if not (folder / "config.json").is_file():
        raise ModelRefused(f"{folder} has no config.json: it is not a Hugging Face model folder.")


def _vocabulary(folder: Path) -> list[str]:
    tok = folder / "tokenizer.json"
    if not tok.is_file():
        return []
    doc = json.loads(tok.read_text(encoding="utf-8"))
    words = [t.get("content", "") for t in doc.get("added_tokens", [])]
    vocab = doc.get("model", {}).get("vocab", {})
    if isinstance(vocab, dict):
        words.extend(vocab.keys())
    return words


class ModelStore:
    """Imports, lists and verifies models under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- reading --------------------------------------------------------------------------------
    def _registry(self) -> dict[str, str]:
        path = self.root / REGISTRY
        if not path.is_file():
            return {}
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelStoreError(
                f"The store's registry {path} is damaged ({exc}). Restore it from a backup or "
                "re-import the models."
            ) from exc
        return {str(k): str(v) for k, v in doc.get("models", {}).items()}

    def _entries(self) -> list[tuple[str, str, str]]:
        """(name, version, manifest sha256) in import order."""
        out = []
        for ref, digest in self._registry().items():
            name, version = parse_ref(ref)
            out.append((name, version or "", digest))
        return out

    def models(self) -> list[tuple[str, str, str]]:
        """(name, version, manifest sha256) of every registered model, sorted."""
        return sorted(self._entries())

    def resolve(self, ref: str) -> tuple[str, str]:
        """Name and version for `name` (the newest imported version) or `name@version`."""
        name, version = parse_ref(ref)
        versions = [(v, d) for n, v, d in self._entries() if n == name]
        if version is not None:
            if any(v == version for v, _ in versions):
                return name, version
        elif versions:
            return name, versions[-1][0]  # the registry keeps import order: the last is newest
        known = ", ".join(f"{n}@{v}" for n, v, _ in self.models()) or "none"
        raise ModelNotFound(
            f"The model {ref!r} is not in the store at {self.root} (it holds: {known}). Import it "
            "with `airgap-lsp model import PATH --name NAME --version VERSION`, or run "
            "`make model` for the embedded default model."
        )

    def verify(self, ref: str, progress: Progress = _no_progress) -> StoredModel:
        """Check the manifest against the registry and every file against the manifest."""
        with self.held(ref, progress, links=False) as stored:
            return stored

    @contextmanager
    def held(
        self,
        ref: str,
        progress: Progress = _no_progress,
        *,
        links: bool = True,
        weights: bool = True,
    ) -> Iterator[StoredModel]:
        """`verify`, keeping every file open from its hash to the end of the block; the model's
        `path` is then a private folder whose entries lead to those open files (on Linux).

        What is loaded from that folder is what was hashed, even if the store's files are
        replaced in the meantime: the window between checking and loading is closed.

        `weights=False` hashes and holds all but the weights (`*.safetensors`): the tokenizer,
        chat template and configs, for a model a team server runs. The manifest, and so the
        weights' hashes it lists, is checked all the same.
        """
        name, version = self.resolve(ref)
        folder = self.root / name / version
        for part in (folder.parent, folder):
            if part.is_symlink():
                raise ModelRefused(
                    f"{part} is a symbolic link to {os.readlink(part)}: a stored model must be "
                    "in the store itself. Remove the link and re-import the model."
                )
        manifest_path = folder / MANIFEST
        try:
            data = manifest_path.read_bytes()
        except OSError as exc:
            raise ModelRefused(
                f"Cannot read {manifest_path} ({exc.strerror}). Re-import {name}@{version}."
            ) from exc
        manifest_sha = hashlib.sha256(data).hexdigest()
        expected = self._registry()[f"{name}@{version}"]
        if manifest_sha != expected:
            raise ModelRefused(
                f"The manifest of {name}@{version} was changed after import (sha256 "
                f"{manifest_sha}, the store recorded {expected}). Refusing to load it: "
                "re-import the model from its original files."
            )
        manifest = Manifest.from_json(data, manifest_path)
        present = {p.relative_to(folder).as_posix() for p in _walk_files(folder)} - {MANIFEST}
        extra = sorted(present - manifest.files.keys())
        missing = sorted(manifest.files.keys() - present)
        if extra or missing:
            raise ModelRefused(
                f"The files of {name}@{version} differ from its manifest "
                f"(unexpected: {extra or 'none'}; missing: {missing or 'none'}). Refusing to load "
                "it: remove what was added or re-import the model."
            )
        check_files_are_safe(folder)
        fds: dict[str, int] = {}
        private: Path | None = None
        try:
            for rel, want in sorted(manifest.files.items()):
                if not weights and rel.endswith(WEIGHT_SUFFIXES):
                    continue
                fds[rel] = fd = _open_stored(folder / rel)
                got = sha256_fd(fd, progress, rel)
                if got != want:
                    raise ModelRefused(
                        f"{rel} of {name}@{version} does not match its manifest (sha256 {got}, "
                        f"expected {want}): the file was changed after import. Refusing to load "
                        "it: re-import the model from its original files."
                    )
            path = folder
            # This process's open files by number: a link to one opens the file that was hashed.
            open_files = Path(f"/proc/{os.getpid()}/fd")
            if links and open_files.is_dir():
                private = path = Path(tempfile.mkdtemp(prefix=f"airgap-load-{name}-"))
                for rel, fd in fds.items():
                    (private / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(open_files / str(fd), private / rel)
            yield StoredModel(path=path, manifest=manifest, manifest_sha256=manifest_sha)
        finally:
            for fd in fds.values():
                os.close(fd)
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)

    # -- writing --------------------------------------------------------------------------------
    def import_model(
        self,
        source: Path,
        *,
        name: str,
        version: str,
        prompt_format: str | None = None,
        progress: Progress = _no_progress,
        reviewed: bytes | None = None,
    ) -> StoredModel:
        """Copy a Hugging Face folder or convert a GGUF file into the store, then verify it.

        `reviewed` is a manifest written by an earlier import of the same files (a bundle's):
        the files made here must match its hashes, and it is stored as it is, so the manifest
        sha256 in every audit line is the one that the bundle's SBOM names. Importing the same
        reviewed manifest again, or another manifest of the same model (same files, or the same
        GGUF file with only the converter's configs different; same family, prompt format and
        licence), finds the model stored and changes nothing: it keeps the manifest it has."""
        _check_name("name", name)
        _check_name("version", version)
        if prompt_format is not None and prompt_format not in FORMATS:
            raise ModelStoreError(
                f"Unknown prompt format {prompt_format!r}; choose one of {', '.join(FORMATS)}."
            )
        given = None
        if reviewed is not None:
            given = Manifest.from_json(reviewed, Path("(the given manifest)"))
        if given is not None and (given.name, given.version) != (name, version):
            raise ModelRefused(
                f"The given manifest is for {given.name}@{given.version}, not {name}@{version}: "
                "import it under the name and version it names."
            )
        source = source.expanduser()
        if not source.exists():
            raise ModelStoreError(f"{source} does not exist.")
        ref = f"{name}@{version}"
        if ref in self._registry():
            if given is not None:
                # The same model under another manifest (imported by hand, or by an older
                # bundle): kept as it is, with the manifest it has.
                held = self.verify(ref, progress)
                if _same_model(held.manifest, given):
                    return held
            raise _already(ref)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=self.root))
        try:
            if source.is_file() and source.suffix.lower() == ".gguf":
                license_ = _gguf_license(source)
                src_info = {"kind": "gguf", "path": str(source.resolve())}
                src_info["sha256"] = sha256_file(source, progress, source.name)
                from inference.gguf_import import convert_gguf

                convert_gguf(source, staging)
            elif source.is_dir():
                check_files_are_safe(source)
                license_ = _card_license(source)
                src_info = {"kind": "huggingface", "path": str(source.resolve())}
                for path in _walk_files(source):
                    rel = path.relative_to(source)
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, staging / rel)
            else:
                raise ModelStoreError(
                    f"{source} is neither a Hugging Face model folder nor a .gguf file."
                )
            check_files_are_safe(staging)
            files = {
                p.relative_to(staging).as_posix(): sha256_file(p, progress, p.name)
                for p in _walk_files(staging)
            }
            config = json.loads((staging / "config.json").read_text(encoding="utf-8"))
            fmt = FORMATS[prompt_format] if prompt_format else detect_format(_vocabulary(staging))
            if given is not None and reviewed is not None:
                _check_same_files(given, files, source)
                data = reviewed
            else:
                data = Manifest(
                    name=name,
                    version=version,
                    family=str(config.get("model_type", "unknown")),
                    prompt_format=fmt.name,
                    files=files,
                    source=src_info,
                    imported_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    imported_by=_who(),
                    license=license_,
                ).to_json()
            (staging / MANIFEST).write_bytes(data)
            _read_only(staging)
            # Moving the files in and registering them is one step for every other import:
            # two at once would each write the registry they read, and one would lose the other.
            with self._locked():
                registry = self._registry()
                if ref in registry:  # imported meanwhile by another process
                    raise _already(ref)
                final = self.root / name / version
                if final.exists():  # an import stopped between moving its files and registering
                    log.warning("removing %s: an unfinished import of %s", final, ref)
                    _remove(final)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging, final)
                registry[ref] = hashlib.sha256(data).hexdigest()
                self._write_registry(registry)
        except BaseException:
            _remove(staging)
            raise
        return self.verify(ref)

    def describe(self, name: str, version: str) -> Manifest | None:
        """A stored version's manifest as written, for listing; not a check (verify is)."""
        path = self.root / name / version / MANIFEST
        try:
            return Manifest.from_json(path.read_bytes(), path)
        except (OSError, ModelRefused):
            return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's registry and folders to this process alone (other imports wait)."""
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_registry(self, registry: dict[str, str]) -> None:
        """Replace the registry whole (a reader sees the old one or the new one, in import
        order), through a file of this process's own."""
        fd, tmp = tempfile.mkstemp(prefix=".registry-", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"models": registry}, indent=2) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.root / REGISTRY)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# What a GGUF conversion by another version of transformers may write differently: the
# configs, into which transformers writes its own version.
CONVERTER_STAMPED = frozenset({"config.json", "generation_config.json"})


def _same_model(held: Manifest, given: Manifest) -> bool:
    """The same files, read the same way; or the same GGUF file converted by another version of
    the converter, where only the configs it stamps may differ."""
    same_reading = (held.family, held.prompt_format, held.license) == (
        given.family,
        given.prompt_format,
        given.license,
    )
    if not same_reading or held.files.keys() != given.files.keys():
        return False
    differ = {k for k in held.files if held.files[k] != given.files[k]}
    same_gguf = (
        held.source.get("kind") == given.source.get("kind") == "gguf"
        and bool(held.source.get("sha256"))
        and held.source.get("sha256") == given.source.get("sha256")
    )
    return not differ or (same_gguf and differ <= CONVERTER_STAMPED)


def _check_same_files(given: Manifest, files: dict[str, str], source: Path) -> None:
    """The files made from `source` are, hash for hash, those the reviewed manifest lists."""
    differ = sorted(
        k for k in given.files.keys() | files.keys() if given.files.get(k) != files.get(k)
    )
    if differ:
        raise ModelRefused(
            f"The files made from {source} differ from the given manifest's: "
            f"{', '.join(differ)}. This is not the model that was reviewed: import nothing, and "
            "ask for the bundle again."
        )


def _already(ref: str) -> ModelStoreError:
    return ModelStoreError(
        f"{ref} is already in the store, and a stored model never changes. "
        "Import the new files under a new --version."
    )


def _remove(folder: Path) -> None:
    """Remove a folder that import made read-only: its write bits first, or nothing goes."""
    if not folder.exists():
        return
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _who() -> dict[str, str]:
    """Who imported: the user database's name for this uid, never $USER, which anyone sets."""
    import pwd
    import socket

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = ""
    return {"user": user, "uid": str(os.getuid()), "host": socket.gethostname()}


def _read_only(folder: Path) -> None:
    """A stored model never changes: its files and folders lose their write bits."""
    for path in folder.rglob("*"):
        path.chmod(0o444 if path.is_file() else 0o555)
    folder.chmod(0o555)


def _card_license(folder: Path) -> str:
    """The `license:` of a Hugging Face model card's front matter, if there is one."""
    card = folder / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8", errors="replace")
        if text.startswith("---"):
            for line in text.split("\n")[1:]:
                if line.startswith("---"):
                    break
                if line.startswith("license:"):
                    return line.partition(":")[2].strip() or "unknown"
    return "unknown"


def _gguf_license(path: Path) -> str:
    try:
        from gguf import GGUFReader

        field_ = GGUFReader(str(path)).fields.get("general.license")
        return str(field_.contents()) if field_ is not None else "unknown"
    except (OSError, ValueError, KeyError):
        return "unknown"
