"""Knowledge-base folders are read under the workspace index's rules, and bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from context.index import DEFAULT_MAX_FILE_BYTES, WorkspaceIndex
from context.retrieval import KnowledgeBase, identifiers


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def read(kb: KnowledgeBase) -> dict[str, str]:
    """Every passage the knowledge base holds: its path -> its text."""
    everything = {"guidance", "altitude"} | identifiers(Path("/proc/self/environ").read_text())
    return {s.path: s.text for s in kb.passages(everything, limit=1000)}


def knowledge(folder: Path, workspace: Path, **limits: int) -> KnowledgeBase:
    kb = KnowledgeBase([folder], WorkspaceIndex([workspace]), **limits)
    kb.scan()
    return kb


def test_no_link_in_a_knowledge_base_folder_is_followed(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb / "standard.md", "# Guidance\nClamp the altitude before guidance uses it.\n")
    (kb / "env.md").symlink_to("/proc/self/environ")  # the server's environment: its tokens
    outside = write(tmp_path / "home" / "notes.md", "# Guidance\nALTITUDE_TOKEN = hunter2\n")
    (kb / "notes.md").symlink_to(outside)
    (kb / "home").symlink_to(outside.parent, target_is_directory=True)

    passages = read(knowledge(kb, tmp_path / "ws"))

    assert list(passages) == ["kb/standard.md"]


def test_the_exclusions_gitignore_and_secret_list_hold_in_a_knowledge_base_folder(
    tmp_path: Path,
) -> None:
    kb = tmp_path / "kb"
    write(kb / "standard.md", "# Guidance\nClamp the altitude.\n")
    write(kb / "drafts" / "plan.md", "# Guidance\nUnreleased altitude plan.\n")
    write(kb / "wip.md", "# Guidance\nWork in progress on altitude.\n")
    write(kb / ".gitignore", "wip.md\n")
    write(kb / "api-secret.md", "# Guidance\nThe altitude service password.\n")
    write(kb / ".env.md", "# Guidance\nALTITUDE_KEY=1\n")
    index = WorkspaceIndex([tmp_path / "ws"], exclude=["drafts/**"])  # under the folder
    knowledge_base = KnowledgeBase([kb], index)
    knowledge_base.scan()

    assert list(read(knowledge_base)) == ["kb/standard.md"]


def test_oversized_and_binary_files_in_a_knowledge_base_are_skipped(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb / "standard.md", "# Guidance\nClamp the altitude.\n")
    line = "guidance on altitude\n"
    write(kb / "huge.txt", line * (DEFAULT_MAX_FILE_BYTES // len(line) + 1))
    (kb / "blob.md").write_bytes(b"# Guidance\naltitude\0\x01\x02")
    knowledge_base = KnowledgeBase([kb], WorkspaceIndex([tmp_path / "ws"]))

    done = knowledge_base.scan()

    assert list(read(knowledge_base)) == ["kb/standard.md"]
    assert (done.files, done.skipped, done.limit) == (1, 2, "")


def test_a_knowledge_base_scan_stops_at_its_file_and_byte_limits(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    for n in range(5):
        write(kb / f"part{n}.md", f"# Guidance {n}\nClamp the altitude.\n")
    seen: list[tuple[int, int]] = []
    by_files = KnowledgeBase([kb], WorkspaceIndex([tmp_path / "ws"]), max_files=3)

    done = by_files.scan(lambda files, size: seen.append((files, size)))

    assert sorted(read(by_files)) == ["kb/part0.md", "kb/part1.md", "kb/part2.md"]
    assert done.files == 3 and "limit of 3 files" in done.summary()
    assert [files for files, _ in seen] == [1, 2, 3] and seen[-1][1] == done.size

    size = len((kb / "part0.md").read_bytes())
    by_bytes = knowledge(kb, tmp_path / "ws", max_bytes=2 * size + 1)
    assert sorted(read(by_bytes)) == ["kb/part0.md", "kb/part1.md"]
    assert "limit of" in by_bytes.scan().summary()


def test_a_relative_knowledge_base_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "kb" / "standard.md", "# Guidance\nClamp the altitude.\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="absolute"):
        KnowledgeBase([Path("kb")], WorkspaceIndex([tmp_path / "ws"]))
    home = KnowledgeBase([Path("~/kb")], WorkspaceIndex([tmp_path / "ws"]))
    assert home.folders == (Path(os.path.realpath(Path.home() / "kb")),)
