"""Similar code from the whole workspace: BM25 over line windows, kept current with the index."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import bm25s
import pytest

import context.retrieval as retrieval_module
import context.similar as similar_module
from context.index import WorkspaceIndex
from context.prompt import Snippet
from context.retrieval import ContextBuilder, ContextRequest
from context.similar import SimilarCode


def words(text: str) -> int:
    return len(text.split())


def unit(name: str, signal: str, lines: int = 30) -> str:
    """A VHDL architecture of `lines` lines whose processes drive `signal`."""
    body = [f"architecture rtl of {name} is", "begin"]
    for n in range(lines - 3):
        body.append(f"  {signal}_{n % 4} <= {signal}_next and not {signal}_reset;")
    body.append("end architecture rtl;")
    return "\n".join(body) + "\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "rtl").mkdir(parents=True)
    (root / "rtl" / "uart_tx.vhd").write_text(unit("uart_tx", "tx_shift"))
    (root / "rtl" / "uart_rx.vhd").write_text(unit("uart_rx", "rx_sample"))
    (root / "rtl" / "fifo.vhd").write_text(unit("fifo", "wr_pointer"))
    (root / "src").mkdir()
    # Ada that uses the same words: another language family, never offered to a VHDL file.
    (root / "src" / "tx.adb").write_text(
        "procedure Tx is\n   tx_shift_next : Boolean;\nbegin\n   null;\nend Tx;\n" * 4
    )
    return root


@pytest.fixture
def index(workspace: Path) -> WorkspaceIndex:
    idx = WorkspaceIndex([workspace])
    idx.scan()
    return idx


def test_the_window_that_shares_the_cursors_words_ranks_first(
    index: WorkspaceIndex, workspace: Path
) -> None:
    editing = (workspace / "rtl" / "top.vhd").resolve()
    found = SimilarCode(index).search(editing, "vhdl", "tx_shift_next <= tx_shift_reset", 3)
    assert found, "no window found"
    assert found[0].path.name == "uart_tx.vhd"
    assert all(w.path.suffix == ".vhd" for w in found)
    assert [w.score for w in found] == sorted((w.score for w in found), reverse=True)
    # A window is the file's own lines, and windows of one file do not overlap.
    lines = (workspace / "rtl" / "uart_tx.vhd").read_text().split("\n")
    for w in found:
        assert list(w.lines) == lines[w.start : w.end + 1]
    same = [w for w in found if w.path == found[0].path]
    for a in same:
        for b in same:
            assert a is b or a.end < b.start or b.end < a.start


def test_the_file_being_edited_is_never_its_own_context(
    index: WorkspaceIndex, workspace: Path
) -> None:
    editing = (workspace / "rtl" / "uart_tx.vhd").resolve()
    found = SimilarCode(index).search(editing, "vhdl", "tx_shift_next rx_sample_next", 4)
    assert {w.path.name for w in found} == {"uart_rx.vhd"}
    # Its words alone find nothing: the Ada file that shares them is another family.
    assert SimilarCode(index).search(editing, "vhdl", "tx_shift_next tx_shift_reset", 4) == []


def test_a_changed_a_new_and_a_removed_file_are_seen_by_the_next_search(
    index: WorkspaceIndex, workspace: Path
) -> None:
    similar = SimilarCode(index)
    editing = (workspace / "rtl" / "top.vhd").resolve()
    assert similar.search(editing, "vhdl", "baud_divider_next", 2) == []
    fifo = (workspace / "rtl" / "fifo.vhd").resolve()
    index.update(fifo, unit("fifo", "baud_divider"))
    found = similar.search(editing, "vhdl", "baud_divider_next", 1)
    assert [w.path for w in found] == [fifo]
    assert "baud_divider_next" in found[0].lines[2]
    added = workspace / "rtl" / "baud.vhd"
    added.write_text(unit("baud", "baud_divider"))
    index.update(added)
    found = similar.search(editing, "vhdl", "baud_divider_next", 4)
    assert {w.path for w in found} == {fifo, added.resolve()}
    index.remove(fifo)
    found = similar.search(editing, "vhdl", "baud_divider_next", 4)
    assert {w.path for w in found} == {added.resolve()}


def test_typing_in_the_edited_file_does_not_rebuild_the_ranker(
    index: WorkspaceIndex, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []
    real = bm25s.BM25.index
    monkeypatch.setattr(
        bm25s.BM25, "index", lambda self, *a, **k: builds.append(1) or real(self, *a, **k)
    )
    similar = SimilarCode(index)
    editing = (workspace / "rtl" / "uart_tx.vhd").resolve()
    text = editing.read_text()
    for typed in ("  rx", "  rx_s", "  rx_sam"):
        index.update(editing, text + typed)
        assert similar.search(editing, "vhdl", f"rx_sample_next {typed}", 2)
    assert len(builds) == 1
    # Another file's change is a new ranker.
    index.update((workspace / "rtl" / "fifo.vhd").resolve(), unit("fifo", "rd_pointer"))
    similar.search(editing, "vhdl", "rd_pointer", 2)
    assert len(builds) == 2


def test_copies_of_the_same_code_are_offered_once(index: WorkspaceIndex, workspace: Path) -> None:
    copy = workspace / "rtl" / "uart_tx_copy.vhd"
    copy.write_text((workspace / "rtl" / "uart_tx.vhd").read_text())
    index.update(copy)
    editing = (workspace / "rtl" / "top.vhd").resolve()
    found = SimilarCode(index).search(editing, "vhdl", "tx_shift_next tx_shift_reset", 4)
    texts = ["\n".join(line.strip() for line in w.lines) for w in found]
    assert len(texts) == len(set(texts)), found


def test_a_file_nobody_opened_gives_context_to_the_one_being_edited(
    index: WorkspaceIndex, workspace: Path
) -> None:
    top = workspace / "rtl" / "top.vhd"
    text = "architecture rtl of top is\nbegin\n  rx_sample_0 <= rx_sample_next;\n  "
    # A budget for a window or two: of the file that shares the words above the cursor.
    snippets = ContextBuilder(index).build(
        ContextRequest(path=top, text=text, cursor_line=3, budget_tokens=200), words
    )
    windows = [s.path for s in snippets if s.end_line - s.start_line > 1]  # not a signature
    assert set(windows) == {"rtl/uart_rx.vhd"}, snippets


def test_an_open_document_from_outside_the_workspace_is_searched_too(
    index: WorkspaceIndex, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "vendor" / "crc.vhd"
    outside.parent.mkdir()
    vendor = unit("crc", "crc_register")
    top = workspace / "rtl" / "top.vhd"
    text = "architecture rtl of top is\nbegin\n  crc_register_0 <= crc_register_next;\n  "
    snippets = ContextBuilder(index).build(
        ContextRequest(
            path=top, text=text, cursor_line=3, budget_tokens=400, recent=((outside, vendor),)
        ),
        words,
    )
    assert "crc.vhd" in {s.path for s in snippets}
    # Without the open document, its words are found nowhere.
    alone = ContextBuilder(index).build(
        ContextRequest(path=top, text=text, cursor_line=3, budget_tokens=400), words
    )
    assert not [s for s in alone if "crc_register" in s.text]


def test_in_the_server_a_search_never_waits_for_a_large_ranker_to_be_built(
    index: WorkspaceIndex, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(similar_module, "SYNC_WINDOWS", 0)  # every ranker counts as large
    editing = (workspace / "rtl" / "top.vhd").resolve()
    similar = SimilarCode(index, background=True)
    # Before the scan's end prepares the rankers, there is no similar code and nothing is
    # built from a half-scanned index.
    assert similar.search(editing, "vhdl", "rx_sample_next", 2) == []
    assert similar.settle(timeout=60)
    assert similar.search(editing, "vhdl", "rx_sample_next", 2) == []
    similar.prepare()
    assert [w.path.name for w in similar.search(editing, "vhdl", "rx_sample_next", 1)] == [
        "uart_rx.vhd"
    ]
    # A changed file: the search goes on with the ranker before, without that file's windows,
    # which the index no longer holds; the next, after the rebuild, finds its new text.
    fifo = (workspace / "rtl" / "fifo.vhd").resolve()
    index.update(fifo, unit("fifo", "rx_sample"))
    assert {w.path.name for w in similar.search(editing, "vhdl", "rx_sample_next", 4)} == {
        "uart_rx.vhd"
    }
    assert similar.settle(timeout=60)
    assert {w.path.name for w in similar.search(editing, "vhdl", "rx_sample_next", 4)} == {
        "uart_rx.vhd",
        "fifo.vhd",
    }


def test_in_the_server_a_small_ranker_is_rebuilt_before_the_search(
    index: WorkspaceIndex, workspace: Path
) -> None:
    similar = SimilarCode(index, background=True)
    similar.prepare()
    editing = (workspace / "rtl" / "top.vhd").resolve()
    fifo = (workspace / "rtl" / "fifo.vhd").resolve()
    index.update(fifo, unit("fifo", "baud_divider"))
    assert [w.path for w in similar.search(editing, "vhdl", "baud_divider_next", 1)] == [fifo]


def test_prepared_after_the_scan_the_first_search_finds_code(
    index: WorkspaceIndex, workspace: Path
) -> None:
    similar = SimilarCode(index, background=True)
    similar.prepare()
    editing = (workspace / "src" / "new.adb").resolve()
    assert similar.search(editing, "ada", "tx_shift_next", 1)
    assert similar.search(editing, "vhdl", "rx_sample_next", 1)


# One unit per language that a new file repeats the shape of, and one unrelated file beside it.
SIMILAR_UNITS = {
    "ada": (
        "motor.adb",
        "package body Motor is\n   procedure Set_Speed (Rpm : Natural) is\n   begin\n"
        "      Speed_Register := Rpm;\n      Log_Speed_Change (Rpm);\n"
        "   end Set_Speed;\nend Motor;\n",
        "fan.adb",
        "package body Fan is\n   procedure Set_Speed (Rpm : Natural) is\n   begin\n"
        "      Speed_Register := ",
    ),
    "spark": (
        "stack.adb",
        "package body Stack with SPARK_Mode is\n   procedure Push (S : in out T; V : Item)\n"
        "     with Pre => not Is_Full (S), Post => Size (S) = Size (S'Old) + 1\n   is\n"
        "   begin\n      S.Top := S.Top + 1;\n   end Push;\nend Stack;\n",
        "queue.adb",
        "package body Queue with SPARK_Mode is\n   procedure Push (S : in out T; V : Item)\n"
        "     with Pre => not Is_Full (S), ",
    ),
    "vhdl": (
        "uart_tx.vhd",
        "architecture rtl of uart_tx is\nbegin\n  shift : process (clk)\n  begin\n"
        "    if rising_edge(clk) then\n      shift_reg <= din & shift_reg(7 downto 1);\n"
        "    end if;\n  end process;\nend architecture;\n",
        "spi_tx.vhd",
        "architecture rtl of spi_tx is\nbegin\n  shift : process (clk)\n  begin\n"
        "    if rising_edge(clk) then\n      shift_reg <= ",
    ),
    "python": (
        "loader.py",
        "def load_config(path):\n    with open(path, encoding='utf-8') as handle:\n"
        "        config = json.load(handle)\n    validate_config(config)\n    return config\n",
        "reader.py",
        "def read_config(path):\n    with open(path, encoding='utf-8') as handle:\n        ",
    ),
    "c": (
        "ring.c",
        "int ring_push(struct ring *r, int value)\n{\n    if (ring_full(r))\n"
        "        return -EAGAIN;\n"
        "    r->buf[r->head] = value;\n    r->head = (r->head + 1) % r->size;\n    return 0;\n}\n",
        "fifo.c",
        "int fifo_push(struct ring *r, int value)\n{\n    if (ring_full(r))\n"
        "        return -EAGAIN;\n"
        "    ",
    ),
}


@pytest.mark.parametrize("language", sorted(SIMILAR_UNITS))
def test_the_similar_unit_in_another_file_is_in_the_context(tmp_path: Path, language: str) -> None:
    known, known_text, new, typed = SIMILAR_UNITS[language]
    (tmp_path / known).write_text(known_text)
    suffix = Path(known).suffix
    (tmp_path / f"unrelated{suffix}").write_text(
        {
            ".adb": "procedure Blink is\nbegin\n   null;\nend Blink;\n",
            ".vhd": "entity blink is\nend entity;\n",
            ".py": "def blink():\n    pass\n",
            ".c": "void blink(void)\n{\n}\n",
        }[suffix]
    )
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    snippets = ContextBuilder(idx).build(
        ContextRequest(
            path=tmp_path / new, text=typed, cursor_line=typed.count("\n"), budget_tokens=400
        ),
        words,
    )
    assert known in {s.path for s in snippets}, snippets
    assert known_text.rstrip() in "\n".join(s.text for s in snippets)


def test_the_context_stays_the_same_while_a_line_is_typed(
    index: WorkspaceIndex, workspace: Path
) -> None:
    """The prompt's start is the context: unchanged, its keys and values are reused."""
    top = workspace / "rtl" / "top.vhd"
    above = "architecture rtl of top is\nbegin\n  rx_sample_0 <= rx_sample_next;\n"
    builder = ContextBuilder(index)
    seen = set()
    for typed in ("", "  t", "  tx_sh", "  tx_shift_0 <= ", "  tx_shift_0 <= wr_pointer_next"):
        text = above + typed + "\nend architecture rtl;\n"
        snippets = builder.build(
            ContextRequest(path=top, text=text, cursor_line=3, budget_tokens=400), words
        )
        assert snippets
        seen.add(snippets)
    assert len(seen) == 1, seen


def test_a_closed_search_builds_nothing_more(index: WorkspaceIndex, workspace: Path) -> None:
    """When the index is replaced (settings changed), the old rankers stop being rebuilt."""
    similar = SimilarCode(index, background=True)
    similar.prepare()
    editing = (workspace / "rtl" / "top.vhd").resolve()
    similar.close()
    index.update((workspace / "rtl" / "fifo.vhd").resolve(), unit("fifo", "baud_divider"))
    assert similar.search(editing, "vhdl", "baud_divider_next", 2) == []
    assert similar.settle(timeout=60)
    assert similar.search(editing, "vhdl", "baud_divider_next", 2) == []


def test_a_windows_words_are_found_once_per_stride_as_the_whole_window_would_give() -> None:
    # Words are found a stride of lines at a time (windows overlap): each window must get what
    # searching its own text gives, lower-cased ASCII only (the Kelvin sign stays out, as a
    # letter that lower-cases to ASCII), to a short last window.
    lines = tuple(
        f"Line_{n} := Value_{n % 7} + \u212aelvin_{n}; -- \u0130x Ab" if n % 3 else f"Q{n}"
        for n in range(47)
    )
    got = similar_module._window_words(lines)
    want = [
        [w.lower() for w in similar_module.WORD.findall("\n".join(window))]
        for _, window in similar_module._windows(lines)
    ]
    assert got == want and len(got) == 4 and "elvin_1" in got[0] and "ab" in got[0]
    assert similar_module._window_words(("",)) == [[]]


def top_vhd(typed: str) -> str:
    """A file whose lines so far drive rx_sample, then the lines the user has typed since."""
    above = "architecture rtl of top is\nbegin\n" + "  rx_sample_0 <= rx_sample_next;\n" * 3
    return above + typed + "\nend architecture rtl;\n"


WROTE = "  wr_pointer_0 <= wr_pointer_next and not wr_pointer_reset;\n"  # a line of fifo's
SHIFT = "  tx_shift_0 <= tx_shift_next;\n"  # a line of uart_tx's


def prepared(index: WorkspaceIndex) -> ContextBuilder:
    """A builder whose rankers are built, as the server's are once the scan ends."""
    builder = ContextBuilder(index)
    builder.similar.prepare()
    return builder


def at_line(path: Path, text: str, line: int, keep: int) -> ContextRequest:
    return ContextRequest(
        path=path, text=text, cursor_line=line, budget_tokens=400, keep_lines=keep
    )


def test_the_context_chosen_for_a_place_is_kept_on_the_next_lines(
    index: WorkspaceIndex, workspace: Path
) -> None:
    """A new line keeps the prompt's start (and the key/values of the request before), where
    choosing again for the moved region would change it; until the best snippet changes."""
    top = workspace / "rtl" / "top.vhd"
    builder = prepared(index)
    first = builder.build(at_line(top, top_vhd(""), 5, keep=8), words)
    assert first[-1].path == "rtl/uart_rx.vhd"  # the best, nearest the cursor
    later = top_vhd(WROTE)  # a line written, the cursor on the next
    fresh = ContextBuilder(index).build(at_line(top, later, 6, keep=0), words)
    assert fresh != first, "chosen afresh, the line written changes the context"
    assert fresh[-1] == first[-1]
    assert builder.build(at_line(top, later, 6, keep=8), words) == first
    # Off: chosen afresh at every request.
    assert builder.build(at_line(top, later, 6, keep=0), words) == fresh
    # Two more of fifo's lines: fifo's window is the best now, and the context is chosen again.
    builder = prepared(index)
    builder.build(at_line(top, top_vhd(""), 5, keep=8), words)
    further = top_vhd(WROTE * 3)
    got = builder.build(at_line(top, further, 8, keep=8), words)
    assert got[-1].path == "rtl/fifo.vhd"
    assert got == ContextBuilder(index).build(at_line(top, further, 8, keep=0), words)


def test_the_context_is_chosen_afresh_once_the_cursor_or_the_document_moved_far(
    index: WorkspaceIndex, workspace: Path
) -> None:
    top = workspace / "rtl" / "top.vhd"
    later = top_vhd(SHIFT * 2)
    fresh = ContextBuilder(index).build(at_line(top, later, 7, keep=0), words)
    builder = prepared(index)
    first = builder.build(at_line(top, top_vhd(""), 5, keep=8), words)
    assert fresh != first and fresh[-1] == first[-1]
    assert builder.build(at_line(top, later, 7, keep=8), words) == first
    # A line written, and the cursor two lines down, one more than kept: chosen afresh.
    builder = prepared(index)
    builder.build(at_line(top, top_vhd(""), 5, keep=1), words)
    below = top_vhd(SHIFT)
    fresh = ContextBuilder(index).build(at_line(top, below, 7, keep=0), words)
    assert fresh != first and fresh[-1] == first[-1]
    assert builder.build(at_line(top, below, 7, keep=1), words) == fresh
    # Nine lines pasted below the cursor, which stays where it was: afresh again.
    builder = prepared(index)
    builder.build(at_line(top, top_vhd(""), 5, keep=8), words)
    lines = top_vhd("").split("\n")
    pasted = "\n".join([*lines[:6], *[SHIFT.rstrip("\n")] * 9, *lines[6:]])
    fresh = ContextBuilder(index).build(at_line(top, pasted, 5, keep=0), words)
    assert fresh != first and fresh[-1] == first[-1]
    assert builder.build(at_line(top, pasted, 5, keep=8), words) == fresh


def test_an_oversized_documents_context_is_kept_by_its_place_in_the_whole_document(
    index: WorkspaceIndex, workspace: Path
) -> None:
    """An oversized document is read as a window around the cursor whose start moves in steps,
    so its line numbers are the window's: the kept context goes by the cursor's line and the
    line count in the whole document."""
    top = workspace / "rtl" / "top.vhd"
    filler = "  -- (the window's first lines)\n" * 20
    window = filler + top_vhd("")
    later = top_vhd(WROTE)  # a line written, and the window's start moved down past the filler
    fresh = ContextBuilder(index).build(at_line(top, later, 6, keep=0), words)
    builder = prepared(index)
    first = builder.build(replace(at_line(top, window, 25, keep=8), place=(4025, 9000)), words)
    assert fresh != first and fresh[-1] == first[-1]
    # One line down in the whole document: kept, though the window's line went from 25 to 6.
    assert (
        builder.build(replace(at_line(top, later, 6, keep=8), place=(4026, 9001)), words) == first
    )
    # Told the window's lines only, the cursor went 19 lines up: chosen afresh.
    alone = prepared(index)
    assert alone.build(at_line(top, window, 25, keep=8), words) == first
    assert alone.build(at_line(top, later, 6, keep=8), words) == fresh
    # A jump far down the document, to a window of the same shape: chosen afresh.
    builder = prepared(index)
    builder.build(replace(at_line(top, window, 25, keep=8), place=(4025, 9000)), words)
    assert (
        builder.build(replace(at_line(top, later, 6, keep=8), place=(7026, 9001)), words) == fresh
    )


def test_a_kept_context_is_chosen_afresh_when_what_it_came_from_changed(
    index: WorkspaceIndex, workspace: Path
) -> None:
    top = workspace / "rtl" / "top.vhd"
    builder = prepared(index)
    first = builder.build(at_line(top, top_vhd(""), 5, keep=8), words)
    assert first[-1].path == "rtl/uart_rx.vhd"
    # Another file of the family changed, one whose window is in the context but not the best:
    # that window's lines are not the text the index holds now.
    assert ("rtl/uart_rx.vhd", 20) in {(s.path, s.start_line) for s in first[:-1]}
    index.update(*blanks_after_line_25(workspace / "rtl" / "uart_rx.vhd"))
    again = builder.build(at_line(top, top_vhd(""), 6, keep=8), words)
    assert again != first and again[-1] == first[-1]
    assert "reset;  \n" in "\n".join(s.text for s in again)
    assert again == ContextBuilder(index).build(at_line(top, top_vhd(""), 6, keep=0), words)
    # The ranker was rebuilt during that choice: the next request chooses once more (the same
    # lines), and from there on the choice is kept again.
    assert builder.build(at_line(top, top_vhd(""), 6, keep=8), words) == again
    # Another model (its own token counts), or the document closed: afresh too.
    later = top_vhd(WROTE)
    fresh = ContextBuilder(index).build(at_line(top, later, 6, keep=0), words)
    assert fresh != again and fresh[-1] == again[-1]
    assert builder.build(at_line(top, later, 6, keep=8), words) == again
    assert builder.build(at_line(top, later, 6, keep=8), lambda t: words(t)) == fresh
    builder.build(at_line(top, top_vhd(""), 6, keep=8), words)
    builder.forget(top)
    assert builder.build(at_line(top, later, 6, keep=8), words) == fresh


def test_a_kept_context_follows_the_files_imports(tmp_path: Path) -> None:
    """An import added above the cursor brings the imported module in at once."""
    (tmp_path / "motor.py").write_text("class Motor:\n    speed = 0\n")
    (tmp_path / "pump.py").write_text("def start_pump(rate):\n    prime_pump(rate)\n")
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    main = tmp_path / "main.py"
    body = "def start_pump_twice(rate):\n    prime_pump(rate)\n\n\n"
    builder = prepared(idx)
    first = builder.build(at_line(main, body, 2, keep=8), words)
    assert [s.path for s in first] == ["pump.py"]
    with_motor = "import motor\n" + body
    idx.update(main, with_motor)  # as the server does before each request
    got = builder.build(at_line(main, with_motor, 3, keep=8), words)
    assert "motor.py" in {s.path for s in got}, got
    assert got[-1] == first[-1]


def test_a_file_the_index_does_not_hold_is_parsed_for_its_imports_once_a_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file from outside the workspace (or over its size limit) is not in the index: its
    imports are parsed from the editor's text, once per request although a kept context asks
    for them twice, and again when the text changes."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "motor.py").write_text("class Motor:\n    speed = 0\n")
    idx = WorkspaceIndex([tmp_path / "ws"])
    idx.scan()
    parsed = []
    real = retrieval_module.imports
    monkeypatch.setattr(retrieval_module, "imports", lambda *a: parsed.append(a[0]) or real(*a))
    outside = tmp_path / "elsewhere" / "main.py"
    text = "import motor\n\ndef run():\n    m = Motor()\n"
    builder = prepared(idx)
    got = builder.build(at_line(outside, text, 3, keep=8), words)
    assert "motor.py" in {s.path for s in got}  # found through the parsed import
    assert len(parsed) == 1
    changed = "import motor\n\ndef run():\n    m = Motor()\n    m.speed = 1\n"
    builder.build(at_line(outside, changed, 4, keep=8), words)
    assert parsed == [text.encode(), changed.encode()]


def test_a_kept_context_is_chosen_afresh_once_a_background_ranker_caught_up(
    index: WorkspaceIndex, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the server a changed file's windows are left out until its ranker is rebuilt in the
    background; the choice made meanwhile is not kept past that rebuild."""
    monkeypatch.setattr(similar_module, "SYNC_WINDOWS", 0)  # every ranker counts as large
    top = workspace / "rtl" / "top.vhd"
    builder = ContextBuilder(index, background=True)
    builder.similar.prepare()
    # A line like fifo's below uart_rx's: fifo's windows second to uart_rx's.
    text = top_vhd(WROTE)
    assert ("rtl/fifo.vhd", 20) in {
        (s.path, s.start_line) for s in builder.build(at_line(top, text, 6, keep=0), words)
    }
    index.update(*blanks_after_line_25(workspace / "rtl" / "fifo.vhd"))
    meanwhile = builder.build(at_line(top, text, 6, keep=8), words)
    assert "reset;  \n" not in windows(meanwhile)
    assert builder.similar.settle(timeout=60)
    caught_up = builder.build(at_line(top, text, 6, keep=8), words)
    assert caught_up[-1] == meanwhile[-1]
    assert "reset;  \n" in windows(caught_up)


def windows(snippets: tuple[Snippet, ...]) -> str:
    """The text of the similar-code windows among snippets (a definition here is one line)."""
    return "\n".join(s.text for s in snippets if s.end_line > s.start_line)


def blanks_after_line_25(path: Path) -> tuple[Path, str]:
    """The file with blanks after its line 25: the same words (and ranking), another text."""
    lines = path.read_text().split("\n")
    lines[25] += "  "
    return path, "\n".join(lines)


def test_a_kept_context_follows_a_file_of_another_language_it_came_from(tmp_path: Path) -> None:
    """A VHDL `use work.shared_pkg` finds a SystemVerilog package of that name: when that file
    changes, the kept context does not carry its old text."""
    sv = tmp_path / "shared_pkg.sv"
    sv.write_text("package shared_pkg;\n  parameter int WIDTH = 8;\nendpackage\n")
    idx = WorkspaceIndex([tmp_path])
    idx.scan()
    top = tmp_path / "top.vhd"
    text = "library ieee;\nuse work.shared_pkg.all;\nentity top is\nend entity;\n\n\n"
    builder = prepared(idx)
    assert "WIDTH = 8" in builder.build(at_line(top, text, 4, keep=8), words)[0].text
    idx.update(sv, sv.read_text().replace("8", "16"))
    got = builder.build(at_line(top, text, 5, keep=8), words)
    assert "WIDTH = 16" in got[0].text, got


def test_a_kept_context_follows_the_open_documents_outside_and_the_budget(
    index: WorkspaceIndex, workspace: Path, tmp_path: Path
) -> None:
    top = workspace / "rtl" / "top.vhd"
    builder = prepared(index)
    first = builder.build(at_line(top, top_vhd(""), 5, keep=8), words)
    later = at_line(top, top_vhd(WROTE), 6, keep=8)
    assert builder.build(later, words) == first
    # A document opened from outside the workspace: its code may be the most similar now.
    outside = tmp_path / "elsewhere" / "rx_copy.vhd"
    outside.parent.mkdir()
    with_it = replace(later, recent=((outside, unit("rx_copy", "rx_sample")),))
    fresh = ContextBuilder(index).build(replace(with_it, keep_lines=0), words)
    assert "rx_copy.vhd" in {s.path for s in fresh}
    assert builder.build(with_it, words) == fresh
    # A smaller budget: chosen afresh, under it.
    smaller = replace(with_it, budget_tokens=200)
    fresh = ContextBuilder(index).build(replace(smaller, keep_lines=0), words)
    assert builder.build(smaller, words) == fresh
    assert sum(words(s.text) for s in fresh) <= 200


def test_a_file_changed_while_the_context_is_chosen_ends_the_kept_context(
    index: WorkspaceIndex, workspace: Path
) -> None:
    """A change that lands while a choice is being made (another document indexed in another
    thread) is not hidden behind the context kept from before it."""
    top = workspace / "rtl" / "top.vhd"
    change = [blanks_after_line_25(workspace / "rtl" / "uart_rx.vhd")]

    def counting(text: str) -> int:  # the index changes at the choice's first token count
        if change:
            index.update(*change.pop())
        return words(text)

    builder = prepared(index)
    saved = change.pop()
    first = builder.build(at_line(top, top_vhd(""), 5, keep=8), counting)
    change.append(saved)
    got = builder.build(at_line(top, top_vhd(WROTE), 6, keep=8), counting)
    assert not change, "the index changed during the second choice"
    assert got != first
    assert "reset;  \n" in windows(builder.build(at_line(top, top_vhd(WROTE), 6, keep=8), counting))
