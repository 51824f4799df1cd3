"""``BoxTable`` draws exactly what ``rich.table.Table`` draws, on random tables and widths:
plain text and the styled bytes a terminal receives."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from convlens.render.box_table import BoxTable, TableColumn

# Cells as convlens writes them (numbers, shapes, names, SymPy text), plus odd widths.
WORD = st.text(alphabet="0123456789,.×abcXYZ_*+-()[]/é漢", min_size=1, max_size=14)
CELL = st.lists(WORD, min_size=0, max_size=4).map(" ".join)
COLUMN = st.builds(
    TableColumn,
    header=CELL,
    justify=st.sampled_from(["left", "right"]),
    no_wrap=st.booleans(),
    min_width=st.none() | st.integers(1, 12),
)


@st.composite
def tables(draw: st.DrawFn) -> BoxTable:
    columns = draw(st.lists(COLUMN, min_size=1, max_size=6))
    row = st.lists(CELL, min_size=len(columns), max_size=len(columns))
    rows = draw(st.lists(row, min_size=0, max_size=8))
    totals = draw(st.none() | row)
    return BoxTable(draw(CELL), columns, rows, totals)


def drawn(renderable: object, width: int, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
        highlight=False,
        legacy_windows=False,
    )
    console.print(renderable)
    return out.getvalue()


@settings(max_examples=300)
@given(table=tables(), width=st.integers(8, 160), terminal=st.booleans())
def test_same_output_as_rich_table(table: BoxTable, width: int, terminal: bool) -> None:
    expected = drawn(table.rich_table(table.rows), width, terminal)
    assert drawn(table, width, terminal) == expected


def test_a_wide_symbolic_cell_folds_as_rich_folds_it() -> None:
    columns = [TableColumn("layer", no_wrap=True), TableColumn("MACs", justify="right")]
    rows = [["conv2d_1", "9*NF**2*k**2 + 3*NF*k**2 + NC*NF + 4096*H*W"], ["relu_1", "0"]]
    table = BoxTable("net", columns, rows, ["total", "7"])
    text = drawn(table, 30, terminal=False)
    assert text == drawn(table.rich_table(rows), 30, terminal=False)
    assert len(text.splitlines()) > 2 + 2 + len(rows) + 2  # the MACs cell did fold


def test_the_widths_come_from_a_few_rows() -> None:
    columns = [TableColumn("#", justify="right"), TableColumn("name")]
    rows = [[str(i), "x" * (i % 7)] for i in range(1, 1001)]
    table = BoxTable("t", columns, rows)
    witnesses = table.widest_rows()
    assert len(witnesses) <= 2 * len(columns)
    assert ["1000", "xxxxx"] in witnesses or any(w[0] == "1000" for w in witnesses)
    assert any(len(w[1]) == 6 for w in witnesses)
