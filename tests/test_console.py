"""cprs_cli.console: what stderr shows (progress, the stats table, notes) and --quiet's silence."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from rich.console import Console
from test_output import make_result

from cprs_cli import console as cli_console
from cprs_cli.console import ProgressUI, quiet_libraries, skipped_note, stats_table


def _render(table) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(table)
    return console.export_text()


def _terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=100), screen


# --------------------------------------------------------------------------- progress


def test_progress_ui_on_a_terminal():
    console, _ = _terminal()
    with ProgressUI(console, True, 2) as ui:
        for name in ("a", "b"):
            with ui.stage("reading", name):
                pass
            cb = ui.callback()
            assert cb is not None
            for done in range(1, 4):
                cb(done, 3)
            ui.done_file()
    quiet = ProgressUI(Console(file=io.StringIO()), True, 2)
    assert quiet.callback() is None  # not a terminal: no progress at all


def test_a_stage_is_shown_while_it_runs():
    console, screen = _terminal()
    with ProgressUI(console, True, 1) as ui:
        with ui.stage("loading critic", "mini"):
            shown = screen.getvalue()
        with ui.stage("reading", "x" * 100 + "/report.pdf"):
            long_name = screen.getvalue()[len(shown):]
    assert "loading critic mini" in shown
    assert "reading …" in long_name and "/report.pdf" in long_name  # a long name keeps its end
    off, off_screen = _terminal()
    with ProgressUI(off, False, 1) as ui, ui.stage("loading critic", "mini"):
        pass
    assert off_screen.getvalue() == ""  # --quiet / --no-progress: nothing drawn


# --------------------------------------------------------------------------- stats table


def test_stats_table_one_row():
    text = _render(stats_table([make_result("doc.txt")]))
    for word in ("source", "input", "output", "ratio", "windows", "seconds", "device", "doc.txt",
                 "cpu", "1.7x"):
        assert word in text
    assert "total" not in text


def test_stats_table_totals_for_several():
    text = _render(stats_table([make_result("a.txt"), make_result("b.txt")]))
    assert "a.txt" in text and "b.txt" in text
    assert "total (2)" in text
    assert "40" in text and "24" in text  # summed input / output tokens


def test_stats_table_shows_non_utf8_names_escaped():
    text = _render(stats_table([make_result(source=os.fsdecode(b"caf\xe9.txt"))]))
    assert "caf\\udce9.txt" in text


def test_stats_table_separates_reading_and_the_critic_load_from_compression():
    a, b = make_result("a.txt"), make_result("b.txt")
    a.stats.timings["ingest"], b.stats.timings["ingest"] = 1.5, 2.25
    text = _render(stats_table([a, b], model_load=7.125))
    header = text.split("┡")[0]
    assert "read" in header and "compress" in header
    row_a = next(line for line in text.splitlines() if "a.txt" in line)
    assert "1.50" in row_a and "0.25" in row_a  # reading, then compression (`seconds`)
    total = next(line for line in text.splitlines() if "total (2)" in line)
    assert "3.75" in total and "0.50" in total
    assert "critic loaded in 7.12 s" in text  # once for the run, not in any row
    assert "–" in _render(stats_table([make_result("lib.txt")]))  # a result with no reading time


# --------------------------------------------------------------------------- notes and silence


def test_skipped_note_names_the_first_files_and_counts_the_rest():
    one = skipped_note([Path("/d/logo.png")])
    assert one.startswith("skipped 1 file of a type cprs does not read: /d/logo.png (")
    many = skipped_note([Path(f"/d/{i}.png") for i in range(5)])
    assert "skipped 5 files" in many and "/d/2.png and 2 more" in many and "/d/3.png" not in many


def test_quiet_libraries_keeps_library_output_off_stderr(capsys):
    from tqdm import tqdm

    with quiet_libraries(True):
        for _ in tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
        print("cprs: converting a GGUF base (once)…", file=sys.stderr)
    assert capsys.readouterr().err == ""
    with quiet_libraries(False):
        print("shown", file=sys.stderr)
    assert capsys.readouterr().err == "shown\n"
    cli_console.print_error("after the silence")  # stderr is back
    assert capsys.readouterr().err == "cprs: error: after the silence\n"
