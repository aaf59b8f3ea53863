"""The model store: import once, hash every file, refuse anything changed or unsafe."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from inference.offline import set_offline_env

set_offline_env()  # before transformers is imported: it reads these once

from inference.errors import ModelNotFound, ModelRefused, ModelStoreError  # noqa: E402
from inference.store import ModelStore  # noqa: E402
from tests.conftest import save_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, tiny Llama checkpoint saved by transformers (safetensors)."""
    folder = save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama")
    assert (folder / "model.safetensors").is_file()
    return folder


@pytest.fixture
def source(checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the checkpoint that a test may alter."""
    dst = tmp_path / "src" / "tiny-llama"
    shutil.copytree(checkpoint, dst)
    return dst


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_then_verify(store: ModelStore, source: Path) -> None:
    stored = store.import_model(source, name="tiny", version="1")
    assert stored.ref == "tiny@1"
    assert stored.path == store.root / "tiny" / "1"
    again = store.verify("tiny@1")
    assert again.manifest == stored.manifest
    assert again.manifest_sha256 == sha256(store.root / "tiny" / "1" / "manifest.json")
    assert stored.manifest.family == "llama"
    assert stored.manifest.prompt_format == "prefix-only"  # no tokenizer, no FIM tokens


def test_manifest_lists_every_file_with_its_sha256(store: ModelStore, source: Path) -> None:
    store.import_model(source, name="tiny", version="1")
    folder = store.root / "tiny" / "1"
    manifest = json.loads((folder / "manifest.json").read_text())
    src_files = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    assert "model.safetensors" in src_files and "config.json" in src_files
    assert set(manifest["files"]) == src_files
    for rel, digest in manifest["files"].items():
        assert digest == sha256(source / rel), rel
        assert digest == sha256(folder / rel), rel
    assert manifest["name"] == "tiny" and manifest["version"] == "1"


def test_models_lists_the_import(store: ModelStore, source: Path) -> None:
    assert store.models() == []
    stored = store.import_model(source, name="tiny", version="1")
    assert store.models() == [("tiny", "1", stored.manifest_sha256)]
    assert store.resolve("tiny") == ("tiny", "1")


def test_the_same_name_and_version_is_imported_once(store: ModelStore, source: Path) -> None:
    first = store.import_model(source, name="tiny", version="1")
    (source / "extra.txt").write_text("new")
    with pytest.raises(ModelStoreError, match="already in the store"):
        store.import_model(source, name="tiny", version="1")
    assert store.verify("tiny@1").manifest_sha256 == first.manifest_sha256
    assert not (store.root / "tiny" / "1" / "extra.txt").exists()


def test_one_changed_byte_in_the_weights_is_refused(store: ModelStore, source: Path) -> None:
    store.import_model(source, name="tiny", version="1")
    weights = store.root / "tiny" / "1" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelRefused) as err:
        store.verify("tiny@1")
    msg = str(err.value)
    assert "model.safetensors" in msg
    assert "re-import" in msg


def test_a_manifest_edited_to_match_tampered_weights_is_refused(
    store: ModelStore, source: Path
) -> None:
    store.import_model(source, name="tiny", version="1")
    folder = store.root / "tiny" / "1"
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.safetensors"] = sha256(weights)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    with pytest.raises(ModelRefused) as err:
        store.verify("tiny@1")
    assert "manifest" in str(err.value)
    assert "changed after import" in str(err.value)


def test_an_extra_file_in_the_stored_folder_is_refused(store: ModelStore, source: Path) -> None:
    store.import_model(source, name="tiny", version="1")
    (store.root / "tiny" / "1" / "adapter.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(ModelRefused) as err:
        store.verify("tiny@1")
    assert "adapter.safetensors" in str(err.value)


def test_a_removed_file_is_refused(store: ModelStore, source: Path) -> None:
    store.import_model(source, name="tiny", version="1")
    (store.root / "tiny" / "1" / "generation_config.json").unlink()
    with pytest.raises(ModelRefused, match="generation_config.json"):
        store.verify("tiny@1")


def assert_nothing_imported(store: ModelStore) -> None:
    assert store.models() == []
    if store.root.exists():
        assert not (store.root / "tiny").exists()
        assert not [p for p in store.root.iterdir() if p.name.startswith(".import-")]


def test_pickled_weights_are_refused(store: ModelStore, source: Path) -> None:
    (source / "pytorch_model.bin").write_bytes(b"\x80\x04\x95 not really a pickle")
    with pytest.raises(ModelRefused) as err:
        store.import_model(source, name="tiny", version="1")
    msg = str(err.value)
    assert "pytorch_model.bin" in msg
    assert "pickled" in msg and "safetensors" in msg
    assert_nothing_imported(store)


def test_a_config_asking_for_custom_code_is_refused(store: ModelStore, source: Path) -> None:
    cfg = json.loads((source / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (source / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelRefused) as err:
        store.import_model(source, name="tiny", version="1")
    msg = str(err.value)
    assert "trust_remote_code" in msg and "custom code" in msg
    assert_nothing_imported(store)


def test_bundled_python_code_is_refused(store: ModelStore, source: Path) -> None:
    (source / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(ModelRefused, match="modeling_evil.py"):
        store.import_model(source, name="tiny", version="1")
    assert_nothing_imported(store)


def test_a_symlink_in_the_source_is_refused(
    store: ModelStore, source: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    os.symlink(outside, source / "tokenizer_config.json")
    with pytest.raises(ModelRefused) as err:
        store.import_model(source, name="tiny", version="1")
    assert "symbolic link" in str(err.value)
    assert_nothing_imported(store)


def test_a_folder_without_safetensors_is_refused(store: ModelStore, source: Path) -> None:
    (source / "model.safetensors").unlink()
    with pytest.raises(ModelRefused, match="safetensors"):
        store.import_model(source, name="tiny", version="1")
    assert_nothing_imported(store)


def test_an_unknown_model_says_how_to_import(store: ModelStore, source: Path) -> None:
    with pytest.raises(ModelNotFound) as err:
        store.verify("starcoder2-3b")
    assert "starcoder2-3b" in str(err.value)
    assert "airgap-lsp model import" in str(err.value)
    store.import_model(source, name="tiny", version="1")
    with pytest.raises(ModelNotFound) as err:
        store.resolve("tiny@2")
    assert "tiny@1" in str(err.value)  # it says what the store does hold


@pytest.mark.parametrize(
    ("name", "version"),
    [("../evil", "1"), ("tiny", "../../etc"), ("", "1"), (".hidden", "1"), ("a/b", "1")],
)
def test_bad_names_are_refused(
    store: ModelStore, source: Path, tmp_path: Path, name: str, version: str
) -> None:
    with pytest.raises(ModelStoreError, match="not allowed"):
        store.import_model(source, name=name, version=version)
    assert store.models() == []
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "etc").exists()


def test_a_bare_name_resolves_to_the_version_imported_last(
    store: ModelStore, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    import inference.store as store_module

    class FrozenClock(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> FrozenClock:
            return cls(2025, 1, 1, 12, 0, 0, tzinfo=tz)

    monkeypatch.setattr(store_module, "datetime", FrozenClock)
    store.import_model(source, name="tiny", version="2")
    store.import_model(source, name="tiny", version="1-hotfix")
    store.import_model(source, name="tiny", version="3")
    assert store.resolve("tiny") == ("tiny", "3")


def test_the_manifest_says_who_imported_what_licence_and_files_are_read_only(
    store: ModelStore, source: Path
) -> None:
    (source / "README.md").write_text("---\nlicense: apache-2.0\ntags: [code]\n---\n# Tiny\n")
    stored = store.import_model(source, name="tiny", version="1")
    m = store.describe("tiny", "1")
    assert m is not None and m.license == "apache-2.0"
    assert m.imported_by["uid"] == str(os.getuid()) and m.imported_by["host"]
    assert m == stored.manifest
    for path in stored.path.rglob("*"):
        assert path.stat().st_mode & 0o222 == 0, f"{path} is writable"
    assert stored.path.stat().st_mode & 0o222 == 0


@pytest.mark.parametrize(
    ("config", "key", "value"),
    [
        ("tokenizer_config.json", "tokenizer_file", "/etc/airgap/other-tokenizer.json"),
        ("tokenizer_config.json", "vocab_file", "../../shared/vocab.json"),
        ("tokenizer_config.json", "merges_file", "sub/merges.txt"),
        ("config.json", "adapter_path", "/srv/adapters"),
        ("special_tokens_map.json", "added_tokens_file", "..\\added.json"),
    ],
)
def test_a_config_that_points_outside_the_model_folder_is_refused(
    store: ModelStore, source: Path, config: str, key: str, value: str
) -> None:
    path = source / config
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc[key] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelRefused) as err:
        store.import_model(source, name="tiny", version="1")
    msg = str(err.value)
    assert config in msg and key in msg and repr(value) in msg
    assert "own folder" in msg
    assert_nothing_imported(store)


def test_file_names_and_provenance_labels_in_configs_are_accepted(
    store: ModelStore, source: Path
) -> None:
    cfg = json.loads((source / "config.json").read_text())
    cfg["_name_or_path"] = "/home/trainer/runs/tiny-llama"  # where it was trained: a label
    cfg["_model_name_or_path"] = "Org/tiny-llama"
    (source / "config.json").write_text(json.dumps(cfg))
    (source / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_file": "tokenizer.json", "vocab_file": None})
    )
    assert store.import_model(source, name="tiny", version="1").ref == "tiny@1"


def test_a_stored_file_swapped_for_a_symlink_out_of_the_store_is_refused_at_load(
    store: ModelStore, source: Path, tmp_path: Path
) -> None:
    stored = store.import_model(source, name="tiny", version="1")
    outside = tmp_path / "outside-config.json"
    shutil.copyfile(stored.path / "config.json", outside)  # the same bytes: the hash matches
    stored.path.chmod(0o755)
    (stored.path / "config.json").unlink()
    os.symlink(outside, stored.path / "config.json")
    with pytest.raises(ModelRefused) as err:
        store.verify("tiny@1")
    assert "config.json" in str(err.value) and "symbolic link" in str(err.value)


def test_a_stored_folder_swapped_for_a_symlink_out_of_the_store_is_refused_at_load(
    store: ModelStore, source: Path, tmp_path: Path
) -> None:
    stored = store.import_model(source, name="tiny", version="1")
    outside = tmp_path / "outside-copy"
    shutil.copytree(stored.path, outside)  # every file and the manifest as stored
    stored.path.chmod(0o755)
    shutil.rmtree(stored.path)
    os.symlink(outside, stored.path)
    with pytest.raises(ModelRefused) as err:
        store.verify("tiny@1")
    assert str(outside) in str(err.value) and "symbolic link" in str(err.value)


def test_what_is_loaded_is_what_was_hashed_even_if_the_store_changes_in_between(
    store: ModelStore, source: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import LlamaForCausalLM

    store.import_model(source, name="tiny", version="1")
    folder = store.root / "tiny" / "1"
    hashed = load_file(folder / "model.safetensors")
    with store.held("tiny@1") as stored:
        assert stored.path != folder and stored.path.stat().st_mode & 0o077 == 0  # private
        # After the check, before the load, someone swaps in other weights.
        swapped = tmp_path / "swapped.safetensors"
        save_file({k: torch.full_like(v, 0.5) for k, v in hashed.items()}, swapped)
        folder.chmod(0o755)
        os.replace(swapped, folder / "model.safetensors")
        model = LlamaForCausalLM.from_pretrained(stored.path, local_files_only=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in hashed.items())  # the hashed weights
    assert not stored.path.exists()  # the private folder went with the block
    with pytest.raises(ModelRefused, match="model.safetensors"):  # the next load sees the swap
        store.verify("tiny@1")


def test_imports_at_the_same_time_all_register(store: ModelStore, source: Path) -> None:
    import threading

    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def import_two(n: int) -> None:
        mine = ModelStore(store.root)  # one store object per importer, as processes have
        start.wait()
        try:
            for k in range(2):
                mine.import_model(source, name=f"m{n}", version=str(k))
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            failures.append(exc)

    threads = [threading.Thread(target=import_two, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures
    assert sorted(f"{name}@{version}" for name, version, _ in store.models()) == sorted(
        f"m{n}@{k}" for n in range(4) for k in range(2)
    )
    # The same version from two importers at once: one is stored, the other told why not.
    both = threading.Barrier(2)
    outcomes: list[str] = []

    def import_same() -> None:
        mine = ModelStore(store.root)
        both.wait()
        try:
            mine.import_model(source, name="same", version="1")
            outcomes.append("stored")
        except ModelStoreError as exc:
            outcomes.append("already" if "already in the store" in str(exc) else str(exc))

    pair = [threading.Thread(target=import_same) for _ in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join(300)
    assert sorted(outcomes) == ["already", "stored"], outcomes
    assert store.verify("same@1").ref == "same@1"


def test_an_import_stopped_before_it_registered_is_done_again(
    store: ModelStore, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def power_cut(self: ModelStore, registry: dict[str, str]) -> None:
        raise KeyboardInterrupt  # the files are in place; the registry never learns of them

    with monkeypatch.context() as m:
        m.setattr(ModelStore, "_write_registry", power_cut)
        with pytest.raises(KeyboardInterrupt):
            store.import_model(source, name="tiny", version="1")
    assert (store.root / "tiny" / "1").is_dir()  # left behind, not registered: never loads
    with pytest.raises(ModelNotFound):
        store.verify("tiny@1")
    stored = store.import_model(source, name="tiny", version="1")
    assert stored.ref == "tiny@1" and store.verify("tiny@1").manifest == stored.manifest


# -- a bundle's reviewed manifest (bundle/install.sh imports against it) -----------------------


def test_an_import_against_a_reviewed_manifest_keeps_its_hash(source: Path, tmp_path: Path) -> None:
    built = ModelStore(tmp_path / "built").import_model(source, name="tiny", version="1")
    reviewed = (built.path / "manifest.json").read_bytes()
    far = ModelStore(tmp_path / "far")
    stored = far.import_model(source, name="tiny", version="1", reviewed=reviewed)
    # The far side's store holds the reviewed manifest itself: the same sha256 in every audit line.
    assert stored.manifest_sha256 == built.manifest_sha256 == hashlib.sha256(reviewed).hexdigest()
    # Again with the same manifest: found in place, nothing changes.
    before = (far.root / "registry.json").read_bytes()
    assert far.import_model(
        source, name="tiny", version="1", reviewed=reviewed
    ).manifest_sha256 == (built.manifest_sha256)
    assert (far.root / "registry.json").read_bytes() == before
    # Another manifest of the same files (an import by hand, an older bundle's): the stored
    # model is kept as it is, under its own manifest.
    other = reviewed.replace(b'"license"', b'"license" ', 1)
    kept = far.import_model(source, name="tiny", version="1", reviewed=other)
    assert kept.manifest_sha256 == built.manifest_sha256
    assert (far.root / "registry.json").read_bytes() == before
    # A manifest of other files for a version in place is refused, as any second import is.
    doc = json.loads(reviewed)
    doc["files"]["config.json"] = "0" * 64
    with pytest.raises(ModelStoreError, match="already in the store"):
        far.import_model(source, name="tiny", version="1", reviewed=json.dumps(doc).encode())
    # So is one that reads the same files another way (another prompt format).
    doc = json.loads(reviewed)
    doc["prompt_format"] = "starcoder"
    with pytest.raises(ModelStoreError, match="already in the store"):
        far.import_model(source, name="tiny", version="1", reviewed=json.dumps(doc).encode())


def test_files_that_differ_from_the_reviewed_manifest_are_refused_by_name(
    source: Path, tmp_path: Path
) -> None:
    built = ModelStore(tmp_path / "built").import_model(source, name="tiny", version="1")
    reviewed = (built.path / "manifest.json").read_bytes()
    config = json.loads((source / "config.json").read_text())
    config["rms_norm_eps"] = 1e-3
    (source / "config.json").write_text(json.dumps(config))
    far = ModelStore(tmp_path / "far")
    with pytest.raises(ModelRefused, match=r"differ from the given manifest's: config\.json\."):
        far.import_model(source, name="tiny", version="1", reviewed=reviewed)
    assert far.models() == []
    with pytest.raises(ModelRefused, match="is for tiny@1, not tiny@2"):
        far.import_model(source, name="tiny", version="2", reviewed=reviewed)


def test_a_gguf_converted_by_another_transformers_is_the_same_model_its_weights_are_not(
    source: Path, tmp_path: Path
) -> None:
    # A stored model whose manifest says it was converted from a GGUF file (as a bundle's says).
    built = ModelStore(tmp_path / "built").import_model(source, name="tiny", version="1")
    doc = json.loads((built.path / "manifest.json").read_bytes())
    doc["source"] = {"kind": "gguf", "path": "models/x.whl!/x.gguf", "sha256": "ab" * 32}
    far = ModelStore(tmp_path / "far")
    stored = far.import_model(source, name="tiny", version="1", reviewed=json.dumps(doc).encode())

    # The same GGUF converted by a newer transformers: its configs differ, and it is kept.
    newer = json.loads(json.dumps(doc))
    newer["files"]["config.json"] = "1" * 64
    kept = far.import_model(source, name="tiny", version="1", reviewed=json.dumps(newer).encode())
    assert kept.manifest_sha256 == stored.manifest_sha256
    # Other weights from "the same" GGUF, or another GGUF: refused.
    for change in (
        {"files": {**doc["files"], "model.safetensors": "2" * 64}},
        {"source": {**doc["source"], "sha256": "cd" * 32}, "files": newer["files"]},
    ):
        other = doc | change
        with pytest.raises(ModelStoreError, match="already in the store"):
            far.import_model(source, name="tiny", version="1", reviewed=json.dumps(other).encode())
