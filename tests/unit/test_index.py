"""The workspace index and the context chosen for a prompt, on a real little workspace."""

from __future__ import annotations

import functools
import gc
import os
import pickle
import shutil
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from context import index as index_module
from context import retrieval
from context.index import Exclusions, WorkspaceIndex
from context.retrieval import ContextBuilder, ContextRequest, KnowledgeBase
from tests.conftest import FIXTURES

WORKSPACE = FIXTURES / "context"


def words(text: str) -> int:
    """A stand-in token count for budgets: whitespace-separated words."""
    return len(text.split())


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(WORKSPACE, root)
    return root


@pytest.fixture
def index(tree: Path) -> WorkspaceIndex:
    idx = WorkspaceIndex([tree])
    idx.scan()
    return idx


def rel(index: WorkspaceIndex) -> set[str]:
    return {f.path.relative_to(index.roots[0]).as_posix() for f in index.files()}


def test_scan_indexes_sources_and_skips_ignored_and_secret_files(index: WorkspaceIndex) -> None:
    assert rel(index) == {
        "src/autopilot.adb",
        "src/flight_limits.ads",
        "rtl/util_pkg.vhd",
        "rtl/uart_tx.vhd",
    }


def test_definitions_are_found_by_name_across_files(index: WorkspaceIndex) -> None:
    hits = index.lookup("clamp_altitude")  # Ada does not care about case
    assert [(h.entry.path.name, h.definition.kind) for h in hits] == [
        ("flight_limits.ads", "function")
    ]
    assert index.search("parof")[0].definition.name == "parity_of"


def test_configured_exclusions_and_size_limit(tree: Path) -> None:
    (tree / "src" / "big.ads").write_text("package Big is\n" + "--\n" * 600_000 + "end Big;\n")
    idx = WorkspaceIndex([tree], exclude=["rtl/"], max_file_bytes=100_000)
    idx.scan()
    assert rel(idx) == {"src/autopilot.adb", "src/flight_limits.ads"}


def test_the_users_negations_take_back_only_what_the_user_excluded() -> None:
    user = ["build/", "!build/keep.adb", "!**", "!.env", "!*secret*", "!classified/**"]
    exclusions = Exclusions(user[:2], fixed=["classified/**"])
    undone = Exclusions(user, fixed=["classified/**"])
    for ex in (exclusions, undone):
        assert ex.matches(".env") and ex.matches("src/my_secret.py")  # built in
        assert ex.matches("classified/plan.adb")  # the policy's
        assert not ex.matches("build/keep.adb") and not ex.matches("src/main.adb")
    assert exclusions.matches("build/main.o")  # the user's own, and only theirs, can be undone
    assert not undone.matches("build/main.o")


def test_binary_files_and_symlink_loops_are_skipped(tree: Path) -> None:
    (tree / "src" / "blob.adb").write_bytes(b"package Blob is\0\0\0 end Blob;")
    os.symlink(tree, tree / "src" / "loop")
    os.symlink("/etc/passwd", tree / "src" / "passwd.ads")
    idx = WorkspaceIndex([tree])
    idx.scan()
    assert "src/blob.adb" not in rel(idx)
    assert not [p for p in rel(idx) if "loop" in p or "passwd" in p]


def test_updates_and_removals_keep_names_current(index: WorkspaceIndex, tree: Path) -> None:
    spec = tree / "src" / "flight_limits.ads"
    text = spec.read_text().replace("Clamp_Altitude", "Bound_Altitude")
    index.update(spec, text)
    assert index.lookup("clamp_altitude") == []
    assert index.lookup("bound_altitude")[0].entry.path == spec
    spec.unlink()
    index.update(spec)  # gone from disk: gone from the index
    assert index.lookup("bound_altitude") == []


def test_a_withed_spec_and_used_definitions_make_the_context(index: WorkspaceIndex, tree: Path):
    body = tree / "src" / "autopilot.adb"
    text = body.read_text()
    line = next(i for i, ln in enumerate(text.split("\n")) if "Target := " in ln)
    snippets = ContextBuilder(index).build(
        ContextRequest(path=body, text=text, cursor_line=line, budget_tokens=400), words
    )
    paths = {s.path for s in snippets}
    assert "src/flight_limits.ads" in paths
    assert not [p for p in paths if "secret" in p or "generated" in p]
    joined = "\n".join(s.text for s in snippets)
    assert "function Clamp_Altitude (Altitude : Feet) return Feet" in joined
    # Provenance names exact lines of the file.
    lines = (tree / "src" / "flight_limits.ads").read_text().split("\n")
    for s in snippets:
        assert s.text == "\n".join(lines[s.start_line : s.end_line + 1]).rstrip()


def test_the_budget_is_kept(index: WorkspaceIndex, tree: Path) -> None:
    body = tree / "src" / "autopilot.adb"
    text = body.read_text()
    builder = ContextBuilder(index)
    for budget in (0, 15, 40, 400):
        snippets = builder.build(
            ContextRequest(path=body, text=text, cursor_line=8, budget_tokens=budget), words
        )
        assert sum(words(f"{s.path}\n{s.text}\n") + 2 for s in snippets) <= budget


def test_an_excluded_file_gets_no_context(tree: Path) -> None:
    idx = WorkspaceIndex([tree], exclude=["src/autopilot.adb"])
    idx.scan()
    body = tree / "src" / "autopilot.adb"
    req = ContextRequest(path=body, text=body.read_text(), cursor_line=8, budget_tokens=400)
    assert ContextBuilder(idx).build(req, words) == ()


def test_vhdl_use_work_resolves_to_the_package(index: WorkspaceIndex, tree: Path) -> None:
    found = ContextBuilder(index).resolve("work.util_pkg", "vhdl", tree / "rtl" / "uart_tx.vhd")
    assert [f.path.name for f in found] == ["util_pkg.vhd"]


def test_knowledge_base_passages_rank_by_the_names_in_use(tree: Path) -> None:
    kb = KnowledgeBase([tree / "docs"], WorkspaceIndex([tree]))
    kb.scan()
    best = kb.passages({"clamp_altitude", "flight_limits", "altitude"})
    assert best and "Clamp_Altitude" in best[0].text
    assert best[0].path == "docs/coding-standard.md"
    assert kb.passages({"unrelated_name"}) == []


def test_a_file_deleted_while_indexing_is_left_out_and_the_scan_goes_on(tree: Path) -> None:
    idx = WorkspaceIndex([tree])
    listed = [p.relative_to(tree).as_posix() for p in idx.walk()]
    assert listed[:2] == ["rtl/uart_tx.vhd", "rtl/util_pkg.vhd"]

    def delete_the_next_one(done: int, total: int) -> None:
        if done == 1:  # the scan has listed every file and read the first one
            (tree / "rtl" / "util_pkg.vhd").unlink()
            shutil.rmtree(tree / "src")

    idx.scan(progress=delete_the_next_one)

    assert rel(idx) == {"rtl/uart_tx.vhd"}


def test_invalid_utf8_on_disk_is_indexed_with_replacement_characters(tree: Path) -> None:
    (tree / "src" / "latin1.ads").write_bytes(
        "package Latin1 is\n   --  Résumé in Latin-1\n   procedure Reset;\nend Latin1;\n".encode(
            "latin-1"
        )
    )
    idx = WorkspaceIndex([tree])
    idx.scan()
    assert "src/latin1.ads" in rel(idx)
    assert [h.definition.name for h in idx.lookup("Reset")] == ["Reset"]


def test_deeply_nested_code_is_indexed_without_running_out_of_stack(tree: Path) -> None:
    depth = 20_000
    (tree / "deep.py").write_text(
        "def outer():\n    return " + "[" * depth + "]" * depth + "\n\ndef after():\n    pass\n"
    )
    idx = WorkspaceIndex([tree])
    idx.scan()
    assert {h.definition.name for h in idx.lookup("after")} == {"after"}


def test_folders_nested_deeper_than_the_stack_are_walked(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    folders = [root]
    for _ in range(1_200):  # deeper than Python's default recursion limit of 1,000
        folders.append(folders[-1] / "d")
        folders[-1].mkdir()
    (folders[-1] / "bottom.py").write_text("def bottom():\n    pass\n")
    (root / "top.py").write_text("def top():\n    pass\n")
    try:
        idx = WorkspaceIndex([root])
        idx.scan()
        assert {h.definition.name for h in idx.lookup("bottom")} == {"bottom"}
        assert [p.name for p in idx.walk()] == ["bottom.py", "top.py"]  # name order, depth first
    finally:  # bottom up: shutil.rmtree, which pytest uses to clean up, recurses
        (folders[-1] / "bottom.py").unlink()
        for folder in reversed(folders[1:]):
            folder.rmdir()


def test_exclusions_hold_through_a_linked_folder_and_outside_the_workspace(
    tree: Path, tmp_path: Path
) -> None:
    linked = tmp_path / "linked-ws"
    os.symlink(tree, linked)  # the workspace opened through a symbolic link
    idx = WorkspaceIndex([tree], exclude=["rtl/"])
    assert idx.is_excluded(linked / "rtl" / "uart_tx.vhd")
    assert not idx.is_excluded(linked / "src" / "autopilot.adb")
    elsewhere = tmp_path / "elsewhere"
    for secret in (".ssh/config", ".gnupg/gpg.conf", "repo/.git/config", "team-secrets/a.adb"):
        assert idx.is_excluded(elsewhere / secret), secret
    assert not idx.is_excluded(elsewhere / "notes" / "plan.adb")
    os.symlink("loop-b", tree / "loop-a")
    os.symlink("loop-a", tree / "loop-b")
    assert not idx.is_excluded(tree / "loop-a")  # a symlink loop is judged, not an error


def test_an_open_document_reached_through_a_link_to_an_excluded_folder_gives_no_context(
    tree: Path, tmp_path: Path
) -> None:
    linked = tmp_path / "linked-ws"
    os.symlink(tree, linked)
    idx = WorkspaceIndex([linked], exclude=["rtl/"])
    idx.scan()
    vhdl = (tree / "rtl" / "util_pkg.vhd").read_text()
    request = ContextRequest(
        path=linked / "src" / "autopilot.adb",
        text=(tree / "src" / "autopilot.adb").read_text(),
        cursor_line=3,
        budget_tokens=10_000,
        recent=((linked / "rtl" / "util_pkg.vhd", vhdl), (tree / "rtl" / "util_pkg.vhd", vhdl)),
    )
    snippets = ContextBuilder(idx, KnowledgeBase([], idx)).build(request, words)
    assert not [s for s in snippets if "util_pkg" in s.path], snippets


def test_a_short_declaration_is_in_the_context_whole_a_long_one_by_its_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrieval, "ORDER", ("definitions",))  # that kind of context alone
    (tmp_path / "pump.ads").write_text(
        "package Pump is\n"
        "   type Rate is record\n"
        "      Litres  : Natural;\n"
        "      Seconds : Positive;\n"
        "   end record;\n"
        "   procedure Start (R : Rate)\n"
        "     with Pre => R.Litres > 0;\n"
        + "".join(f"   procedure Step_{n} (R : Rate);\n" for n in range(30))
        + "end Pump;\n"
    )
    steps = "".join(f"      Step_{n} (R);\n" for n in range(30))
    (tmp_path / "pump.adb").write_text(
        "package body Pump is\n   procedure Drain (R : Rate) is\n   begin\n"
        f"{steps}   end Drain;\nend Pump;\n"
    )
    text = "with Pump;\nprocedure Main is\n   R : Pump.Rate;\nbegin\n   Pump.Drain (R);\n\n"
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    snippets = ContextBuilder(idx).build(
        ContextRequest(path=tmp_path / "main.adb", text=text, cursor_line=5, budget_tokens=400),
        words,
    )
    texts = [s.text.strip() for s in snippets]
    rate = [t for t in texts if t.startswith("type Rate is record")]
    assert rate == [
        "type Rate is record\n      Litres  : Natural;\n      Seconds : Positive;\n   end record;"
    ], texts
    drain = [t for t in texts if t.startswith("procedure Drain")]
    assert drain == ["procedure Drain (R : Rate) is"], texts


def test_the_knowledge_base_goes_in_first_and_reads_above_the_code(
    index: WorkspaceIndex, tree: Path
) -> None:
    """The administrator named the knowledge base: similar code never crowds it out, and the
    model reads it before the code, which stays nearest the cursor."""
    kb = KnowledgeBase([tree / "docs"], index)
    kb.scan()
    body = tree / "src" / "autopilot.adb"
    text = body.read_text()
    line = next(i for i, ln in enumerate(text.split("\n")) if "Target := " in ln)
    for budget in (120, 400):
        snippets = ContextBuilder(index, kb).build(
            ContextRequest(path=body, text=text, cursor_line=line, budget_tokens=budget), words
        )
        prose = [s.path.endswith(".md") for s in snippets]
        assert prose[0] and prose == sorted(prose, reverse=True), (budget, snippets)
        assert any(s.path.endswith(".ads") for s in snippets), (budget, snippets)


def test_a_body_gets_its_spec_and_an_architecture_its_entity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's other half is in the context though nothing names it (GNAT finds a body's
    spec by its file name; the architecture names its entity), beside more similar code."""
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "pump.ads").write_text(
        "--  Copyright header\npackage Pump is\n   procedure Start (Litres : Natural)\n"
        "     with Pre => Litres > 0;\nend Pump;\n"
    )
    # Another unit that looks more like the body than its own spec does.
    (tmp_path / "valve.adb").write_text(
        "package body Valve is\n   procedure Open is\n   begin\n      Flow := Flow + 1;\n"
        "      Flow := Flow + 1;\n   end Open;\nend Valve;\n"
    )
    (tmp_path / "counter_ent.vhd").write_text(
        "library ieee;\nuse ieee.std_logic_1164.all;\n"
        "entity counter is\n  port (\n    clk   : in  std_logic;\n"
        "    count : out natural\n  );\nend entity counter;\n"
    )
    (tmp_path / "lib").mkdir()  # a spec of the same name farther away: not the body's
    (tmp_path / "lib" / "pump.ads").write_text("package Lib_Pump is\nend Lib_Pump;\n")
    (tmp_path / "src").mkdir()
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    monkeypatch.setattr(retrieval, "ORDER", ("own",))  # that kind of context alone
    builder = ContextBuilder(idx)
    body = "package body Pump is\n   procedure Drain is\n   begin\n      Flow := Flow + 1;\n   \n"
    arch = "architecture rtl of counter is\nbegin\n  process (clk)\n  begin\n    \n"
    for path, text, line, half, shown in (
        (tmp_path / "spec" / "body" / "pump.adb", body, 4, "spec/pump.ads", "Litres > 0;"),
        (tmp_path / "counter_rtl.vhd", arch, 4, "counter_ent.vhd", "count : out natural"),
    ):
        snippets = builder.build(
            ContextRequest(path=path, text=text, cursor_line=line, budget_tokens=400), words
        )
        assert [s.path for s in snippets] == [half]
        assert shown in snippets[0].text
        lines = (tmp_path / half).read_text().split("\n")
        assert (
            snippets[0].text
            == "\n".join(lines[snippets[0].start_line : snippets[0].end_line + 1]).rstrip()
        )


def test_two_halves_as_near_as_each_other_are_no_guess(tmp_path: Path) -> None:
    for lib in ("net", "disk"):
        (tmp_path / lib).mkdir()
        (tmp_path / lib / "utils.h").write_text(f"int {lib}_utils(void);\n")
    (tmp_path / "app").mkdir()
    text = "#include <stdio.h>\nint main(void)\n{\n    \n"
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    builder = ContextBuilder(idx)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retrieval, "ORDER", ("own",))
        got = builder.build(
            ContextRequest(
                path=tmp_path / "app" / "utils.c", text=text, cursor_line=3, budget_tokens=400
            ),
            words,
        )
        assert got == ()
        got = builder.build(
            ContextRequest(
                path=tmp_path / "net" / "utils.c", text=text, cursor_line=3, budget_tokens=400
            ),
            words,
        )
        assert [s.path for s in got] == ["net/utils.h"]


def test_an_open_document_goes_into_the_index_only_where_the_scan_would_take_it(
    tmp_path: Path,
) -> None:
    (tmp_path / ".gitignore").write_text("build/\n*.gen.adb\n")
    for rel in ("src/a.adb", "build/b.adb", "src/c.gen.adb", "node_modules/d.js", "src/e.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    assert idx.admits(tmp_path / "src" / "a.adb")
    for rel in ("build/b.adb", "src/c.gen.adb", "node_modules/d.js", "src/e.txt", ".env"):
        assert not idx.admits(tmp_path / rel), rel
    assert not idx.admits(tmp_path.parent / "elsewhere.adb")
    assert {p.relative_to(tmp_path).as_posix() for p in idx.walk()} == {"src/a.adb"}


def snapshot(index: WorkspaceIndex) -> tuple[list, dict]:
    """Every file's entry in the index's order, and the files each name is defined in, in order."""
    files = [(e.path, e.sha256, e.definitions, e.imports, e.lines) for e in index.files()]
    names = {
        n: [h.entry.path for h in index.lookup(n)] for n in {d.name for f in files for d in f[2]}
    }
    return files, names


def many_files(tree: Path) -> None:
    """Enough files that a scan has several chunks for its workers; two define the same name."""
    for n in range(3 * index_module.CHUNK_FILES + 5):
        (tree / "src" / f"unit_{n:03}.ads").write_text(
            f"package Unit_{n:03} is\n   procedure Step_{n % 7} (X : in out Integer);\n"
            f"end Unit_{n:03};\n"
        )


def many_files_read_alone(tree: Path) -> WorkspaceIndex:
    """`many_files`, and the index one process builds of the tree: what workers must match."""
    many_files(tree)
    alone = WorkspaceIndex([tree])
    alone.scan()
    return alone


def test_a_scan_in_worker_processes_builds_the_same_index_in_the_same_order(tree: Path) -> None:
    many_files(tree)
    alone = WorkspaceIndex([tree], exclude=["rtl/uart_tx.vhd"])
    alone.scan()
    seen: list[tuple[int, int]] = []
    parallel = WorkspaceIndex([tree], exclude=["rtl/uart_tx.vhd"])
    marks = tree.parent / "started"
    marks.mkdir()
    count = parallel.scan(
        lambda done, total: seen.append((done, total)),
        workers=2,
        min_parallel=0,
        initializer=functools.partial(mark_started, marks),
    )
    # each worker ran the initializer (the server's egress guard) in a process of its own
    started = {int(m.name) for m in marks.iterdir()}
    assert len(started) == 2 and os.getpid() not in started
    assert count == len(alone) == 3 * index_module.CHUNK_FILES + 5 + 3
    assert snapshot(parallel) == snapshot(alone)
    assert "rtl/uart_tx.vhd" not in rel(parallel)
    assert len(parallel.lookup("step_3")) > 1
    # progress a chunk at a time, as the chunks come in, in order, up to every file
    assert seen[0] == (index_module.CHUNK_FILES, count) and seen[-1] == (count, count)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def mark_started(folder: Path) -> None:
    (folder / str(os.getpid())).touch()


def refuse_to_start() -> None:
    raise RuntimeError("this worker cannot start")


def crash_on(*names: str) -> None:
    """A worker's initializer: reading a file of one of these names ends the process at once,
    as a parser's crash (a segfault in a grammar) would."""
    read = index_module.read_entry

    def reading(path: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if Path(path).name in names:
            os._exit(70)
        return read(path, *args, **kwargs)  # type: ignore[arg-type]

    index_module.read_entry = reading  # type: ignore[assignment]


def test_a_file_that_crashes_its_worker_is_left_out_and_workers_read_the_rest(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Read in the server's process, such a file would end the server: it is found and left
    # out, and the rest is still read by workers (here, in this process it would be read
    # fine, so a file in the index was read here). One crash in the first chunk, one in the
    # third, while the second may be read beside it.
    alone = many_files_read_alone(tree)
    crashing = ("unit_010.ads", "unit_070.ads")
    idx = WorkspaceIndex([tree])
    seen: list[int] = []
    with caplog.at_level("WARNING", logger="airgap_lsp.context"):
        count = idx.scan(
            lambda done, total: seen.append(done),
            workers=2,
            min_parallel=0,
            initializer=functools.partial(crash_on, *crashing),
        )
    assert count == len(alone) - 2
    assert set(rel(alone)) - set(rel(idx)) == {f"src/{name}" for name in crashing}
    files, names = snapshot(alone)
    kept = [f for f in files if f[0].name not in crashing]
    assert snapshot(idx)[0] == kept  # the others, whole and in the walk's order
    for name in crashing:
        assert f"{name} left out: reading it ended its worker process" in caplog.text
    assert "reading the other" not in caplog.text  # nothing was left to this process
    assert seen == sorted(seen) and seen[-1] == len(alone)


def test_a_crashing_file_far_from_the_first_chunk_is_found_with_many_workers(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # With four workers the worker that dies reads the third chunk while the first is not in
    # yet: the first two chunks, read a file at a time, have no file to blame; one worker then
    # finds the file, and it is never read in this process.
    alone = many_files_read_alone(tree)
    crashing = f"unit_{2 * index_module.CHUNK_FILES - 4:03}.ads"  # the third chunk's first file
    idx = WorkspaceIndex([tree])
    with caplog.at_level("WARNING", logger="airgap_lsp.context"):
        count = idx.scan(
            workers=4, min_parallel=0, initializer=functools.partial(crash_on, crashing)
        )
    assert count == len(alone) - 1
    assert rel(alone) - rel(idx) == {f"src/{crashing}"}
    assert f"{crashing} left out: reading it ended its worker process" in caplog.text
    assert "reading the other" not in caplog.text


def test_files_crashing_workers_past_the_limit_leave_the_rest_to_this_process(
    tree: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = many_files_read_alone(tree)
    monkeypatch.setattr(index_module, "MAX_CRASHED_FILES", 1)
    idx = WorkspaceIndex([tree])
    with caplog.at_level("WARNING", logger="airgap_lsp.context"):
        idx.scan(
            workers=2,
            min_parallel=0,
            initializer=functools.partial(crash_on, "unit_001.ads", "unit_002.ads"),
        )
    # the first left out by the workers; with the limit reached, everything after it is read
    # here (where nothing crashes in this test)
    assert rel(alone) - rel(idx) == {"src/unit_001.ads"}
    assert "unit_001.ads left out: reading it ended its worker process" in caplog.text
    assert "(files that ended theirs: 1); reading the other" in caplog.text


def die_on_chunks() -> None:
    """A worker's initializer: a task of more than one file ends the process (workers that die
    of something other than a file, as of memory with several at once)."""
    read = index_module.read_entries

    def reading(paths: list[Path], *args: object) -> object:
        if len(paths) > 1:
            os._exit(70)
        return read(paths, *args)  # type: ignore[arg-type]

    index_module.read_entries = reading  # type: ignore[assignment]


def send_what_does_not_pickle() -> None:
    """A worker's initializer: every task's result holds a lock, which pickle refuses with a
    TypeError (not a PickleError), as any object of a kind it cannot write would."""
    read = index_module.read_entries

    def reading(paths: list[Path], *args: object) -> object:
        return [*read(paths, *args), ("", threading.Lock(), "")]  # type: ignore[arg-type]

    index_module.read_entries = reading  # type: ignore[assignment]


def refuse_to_load() -> None:
    raise RuntimeError("this result cannot be read back")


class Unloadable:
    """Pickles in a worker; unpickling it in the server raises."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return refuse_to_load, ()


def send_what_does_not_load() -> None:
    """A worker's initializer: the result of every task of files holds an object the server
    cannot unpickle (the pool then breaks, as it does when a worker dies, but no worker died).
    A task of no files (a new worker's first, to see it start) comes back whole."""
    read = index_module.read_entries

    def reading(paths: list[Path], *args: object) -> object:
        unloadable = [("", Unloadable(), "")] if paths else []
        return [*read(paths, *args), *unloadable]  # type: ignore[arg-type]

    index_module.read_entries = reading  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("initializer", "why", "chunks_read"),
    [
        # none starts: nothing is read by workers
        (refuse_to_start, "a new one did not start", 0),
        # they die on every task of several files: the first chunk, read a file at a time,
        # has no file to blame; then one worker dies on the next chunk, which has none either,
        # and the rest is read here
        (die_on_chunks, "one died with no file to blame", 2),
        # every result fails to go back: nothing is read by workers, and the scan goes on
        (send_what_does_not_pickle, "a result could not be sent: TypeError", 0),
        # every result fails to load here: no file is blamed for it, nothing is read by workers
        (
            send_what_does_not_load,
            "a result could not be read: RuntimeError: this result cannot be read back",
            0,
        ),
    ],
    ids=[
        "cannot start",
        "die with no file to blame",
        "a result that does not pickle",
        "a result that does not unpickle",
    ],
)
def test_workers_that_fail_but_not_for_a_file_leave_the_rest_to_this_process(
    tree: Path,
    caplog: pytest.LogCaptureFixture,
    initializer: Callable[[], None],
    why: str,
    chunks_read: int,
) -> None:
    alone = many_files_read_alone(tree)
    idx = WorkspaceIndex([tree])
    with caplog.at_level("WARNING", logger="airgap_lsp.context"):
        count = idx.scan(workers=2, min_parallel=0, initializer=initializer)
    assert count == len(alone) and snapshot(idx) == snapshot(alone)
    assert "left out" not in caplog.text
    assert f"worker processes failed ({why}" in caplog.text
    left = len(alone) - chunks_read * index_module.CHUNK_FILES
    assert f"reading the other {left} files in this process" in caplog.text


def test_a_cancelled_parallel_scan_stops_early(tree: Path) -> None:
    many_files(tree)
    cancel = threading.Event()

    def cancel_after_the_first_chunk(done: int, total: int) -> None:
        cancel.set()

    idx = WorkspaceIndex([tree])
    idx.scan(cancel_after_the_first_chunk, cancel, workers=2, min_parallel=0)
    assert len(idx) == index_module.CHUNK_FILES


def test_files_are_found_by_name_in_the_index_order(tree: Path, index: WorkspaceIndex) -> None:
    (tree / "rtl" / "Flight_Limits.ads").write_text("package Flight_Limits is\nend;\n")
    index.update(tree / "rtl" / "Flight_Limits.ads")
    found = index.named("flight_limits.ads", "uart_tx.vhd")
    assert [f.path.relative_to(tree).as_posix() for f in found] == [
        "rtl/uart_tx.vhd",
        "src/flight_limits.ads",
        "rtl/Flight_Limits.ads",
    ]
    index.update(tree / "src" / "flight_limits.ads")  # indexed again: last in the order
    (tree / "rtl" / "uart_tx.vhd").unlink()
    index.update(tree / "rtl" / "uart_tx.vhd")
    found = index.named("flight_limits.ads", "uart_tx.vhd")
    assert [f.path.relative_to(tree).as_posix() for f in found] == [
        "rtl/Flight_Limits.ads",
        "src/flight_limits.ads",
    ]


def test_a_familys_digest_follows_its_files_and_can_leave_the_edited_one_out(
    tree: Path, index: WorkspaceIndex
) -> None:
    spec, body = tree / "src" / "flight_limits.ads", tree / "src" / "autopilot.adb"
    ada, vhdl = index.family_digest("ada"), index.family_digest("vhdl")
    index.update(tree / "rtl" / "uart_tx.vhd", "entity uart_tx is\nend;\n")
    assert index.family_digest("ada") == ada and index.family_digest("vhdl") != vhdl

    leaving_body_out = index.family_digest("ada", leaving_out=body)
    index.update(body, body.read_text() + "\n--  typed\n")
    assert index.family_digest("ada") != ada
    assert index.family_digest("ada", leaving_out=body) == leaving_body_out
    index.update(body)  # back to the text on disk
    assert index.family_digest("ada") == ada

    index.remove(spec)
    assert index.family_digest("ada") != ada
    left = index.file(body.resolve())
    assert left is not None and index.family_files("ada") == {body.resolve(): left.sha256}
    index.update(spec)
    assert index.family_digest("ada") == ada


def test_token_counts_are_remembered_until_the_counter_changes(index: WorkspaceIndex) -> None:
    builder = ContextBuilder(index)
    doc = WORKSPACE / "src" / "autopilot.adb"
    req = ContextRequest(
        path=doc, text=doc.read_text(), cursor_line=8, budget_tokens=200, recent=()
    )

    class Tokenizer:
        def __init__(self) -> None:
            self.calls = 0

        def count(self, text: str) -> int:
            self.calls += 1
            return words(text)

    first = Tokenizer()
    chosen = builder.build(req, first.count)
    assert chosen and first.calls
    calls = first.calls
    assert builder.build(req, first.count) == chosen and first.calls == calls  # all remembered

    second = Tokenizer()  # another model's
    assert builder.build(req, second.count) == chosen and second.calls == calls
    gone = weakref.ref(second)
    del second
    gc.collect()
    assert gone() is None, "the builder keeps no engine alive"


def test_a_name_defined_in_very_many_files_costs_a_bounded_number_of_counts(tmp_path: Path) -> None:
    many = retrieval.DEFINITIONS_PER_NAME + 40
    for n in range(many):
        (tmp_path / f"unit_{n:03}.ads").write_text(
            f"package Unit_{n:03} is\n   procedure Reset (Count : in out Natural);\nend;\n"
        )
    main = tmp_path / "main.adb"
    main.write_text("procedure Main is\n   N : Natural := 0;\nbegin\n   Reset (N);\n\nend Main;\n")
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return words(text)

    chosen = ContextBuilder(idx).build(
        ContextRequest(path=main, text=main.read_text(), cursor_line=4, budget_tokens=100_000),
        count,
    )
    resets = [s for s in chosen if s.text.strip().startswith("procedure Reset")]  # definitions
    assert len(resets) == retrieval.DEFINITIONS_PER_NAME  # the first ones, in the index's order
    assert [s.path for s in resets][::-1][:2] == ["unit_000.ads", "unit_001.ads"]
    assert len(counted) <= retrieval.DEFINITIONS_PER_NAME + 16


def test_a_file_whose_reading_fails_is_left_out_with_a_warning_and_the_rest_indexed(
    tree: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    read = index_module.read_entry
    broken = (tree / "src" / "autopilot.adb").resolve()

    def failing(path: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if path.resolve() == broken:
            raise RecursionError("maximum recursion depth exceeded")
        return read(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(index_module, "read_entry", failing)
    # In a worker's task: the failure is sent back with the file, the others are read.
    idx = WorkspaceIndex([tree])
    got = index_module.read_entries(list(idx.walk()), idx.roots, idx.exclusions, 1_000_000)
    assert [(Path(p).name, e is None, err) for p, e, err in got if Path(p) == broken] == [
        ("autopilot.adb", True, "RecursionError: maximum recursion depth exceeded")
    ]
    assert all(e is not None and not err for p, e, err in got if Path(p) != broken)
    # In the server's own scan: logged, left out, the scan goes on.
    with caplog.at_level("WARNING", logger="airgap_lsp.context"):
        idx.scan()
    assert rel(idx) == {"src/flight_limits.ads", "rtl/util_pkg.vhd", "rtl/uart_tx.vhd"}
    assert "autopilot.adb left out: reading it failed" in caplog.text


def test_an_entry_sent_from_a_worker_arrives_whole(tree: Path) -> None:
    # Entries cross from a scan's worker pickled in a form of their own (the text as one
    # string): what arrives must equal what was read, down to a last empty line and a CR.
    (tree / "src" / "crlf.ads").write_bytes(
        b"with Ada.Text_IO;\r\npackage Crlf is\r\n   procedure P (X : Integer)\r\n"
        b"     with Pre => X > 0;\r\nend Crlf;\r\n\n"
    )
    idx = WorkspaceIndex([tree])
    got = index_module.read_entries(list(idx.walk()), idx.roots, idx.exclusions, 1_000_000)
    assert len(got) == 5
    for name, entry, error in got:
        assert entry is not None and not error and entry.definitions
        back = pickle.loads(pickle.dumps(entry))
        assert back == entry and back is not entry and back.path == Path(name)
        assert all(type(d) is type(entry.definitions[0]) for d in back.definitions)
    crlf = next(e for _, e, _ in got if e is not None and e.path.name == "crlf.ads")
    assert crlf.lines[-2:] == ("", "") and crlf.lines[0] == "with Ada.Text_IO;\r"
    assert [c for d in crlf.definitions for c in d.contracts] == ["Pre => X > 0"]
    assert [i.name for i in crlf.imports] == ["Ada.Text_IO"]


def test_of_very_many_definitions_of_a_name_the_nearest_are_kept(tmp_path: Path) -> None:
    for n in range(retrieval.DEFINITIONS_PER_NAME + 40):
        (tmp_path / f"unit_{n:03}.ads").write_text(
            f"package Unit_{n:03} is\n   procedure Reset (Count : in out Natural);\nend;\n"
        )
    near = tmp_path / "radio"
    near.mkdir()
    (near / "radio_state.ads").write_text(
        "package Radio_State is\n   procedure Reset (Channel : in out Radio_Channel);\nend;\n"
    )
    main = near / "radio_main.adb"
    main.write_text("procedure Radio_Main is\nbegin\n   Reset (C);\n\nend Radio_Main;\n")
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    # The editor's text of the nearby spec goes in again: last in the index's order.
    idx.update(near / "radio_state.ads", (near / "radio_state.ads").read_text())
    req = ContextRequest(path=main, text=main.read_text(), cursor_line=3, budget_tokens=100_000)
    # The definitions offered for the prompt (similar code could bring the same lines anyway).
    offered = list(ContextBuilder(idx)._definitions(req, retrieval.cursor_region(req.text, 3)))
    resets = [s.path for s in offered if s.text.strip().startswith("procedure Reset")]
    assert len(resets) == retrieval.DEFINITIONS_PER_NAME
    assert "radio/radio_state.ads" in resets
    assert resets[:2] == ["unit_000.ads", "unit_001.ads"]  # the rest in the index's order
