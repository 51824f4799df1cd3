"""A table that draws what ``rich.table.Table`` draws, in time linear in its rows.

Rich lays out every cell through its whole rendering pipeline: about 1.7 ms a row, so a
20,000-layer table took 52 s. Here Rich still decides everything — the column widths
(measured on a small table of the widest cells, which gives the same widths as all of
them), the box characters, the header, the totals row, every cell that must fold — and
a row whose cells each fit on one line is written as one string. The output is the same
character for character; ``tests/render/test_box_table.py`` checks it against
``rich.table.Table`` on many random tables and widths.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

PADDING = (0, 1)  # one space either side of a cell, as rich.table.Table pads by default


@dataclass(frozen=True)
class TableColumn:
    header: str
    justify: Literal["left", "right"] = "left"
    no_wrap: bool = False  # never folded (the reader must see which layer a row is)
    min_width: int | None = None

    @property
    def overflow(self) -> Literal["fold", "ellipsis"]:
        return "ellipsis" if self.no_wrap else "fold"


class BoxTable:
    """Rows of plain text under a header, then an optional bold totals row after a rule."""

    def __init__(
        self,
        title: str,
        columns: Sequence[TableColumn],
        rows: Sequence[Sequence[str]],
        totals: Sequence[str] | None = None,
    ):
        self.title = title
        self.columns = tuple(columns)
        self.rows = rows
        self.totals = totals

    # -- the layout, decided by Rich -------------------------------------------------------
    def title_text(self) -> Text:
        return Text(self.title, style="table.title")

    def rich_table(self, rows: Sequence[Sequence[str]]) -> Table:
        """The ``rich.table.Table`` this draws, holding ``rows`` (and the totals)."""
        table = Table(title=self.title_text(), title_justify="left", padding=PADDING)
        for column in self.columns:
            table.add_column(
                Text(column.header),
                justify=column.justify,
                no_wrap=column.no_wrap,
                overflow=column.overflow,
                min_width=column.min_width,
            )
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        if self.totals is not None:
            table.add_section()
            table.add_row(*(Text(cell) for cell in self.totals), style="bold")
        return table

    def widest_rows(self) -> list[Sequence[str]]:
        """For each column, the row with its longest cell and the row with its longest word.

        Rich sizes a column from the largest maximum and the largest minimum width of its
        cells (the whole text; the longest word), so these rows give the widths all do.
        """
        chosen: dict[int, Sequence[str]] = {}
        for c in range(len(self.columns)):
            if not self.rows:
                break
            longest = max(range(len(self.rows)), key=lambda r: cell_len(self.rows[r][c]))
            longest_word = max(
                range(len(self.rows)),
                key=lambda r: max((cell_len(w) for w in self.rows[r][c].split()), default=0),
            )
            chosen[longest] = self.rows[longest]
            chosen[longest_word] = self.rows[longest_word]
        return [chosen[r] for r in sorted(chosen)]

    def widths(self, console: Console, options: ConsoleOptions) -> tuple[list[int], int]:
        """Column widths (padding included) as ``rich.table.Table`` would choose them, and
        the width of the borders."""
        table = self.rich_table(self.widest_rows())
        borders = table._extra_width
        available = options.update_width(options.max_width - borders)
        return table._calculate_column_widths(console, available), borders

    # -- drawing --------------------------------------------------------------------------
    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths, borders = self.widths(console, options)
        frame = box.HEAVY_HEAD.substitute(options, safe=console.safe_box)
        options = options.update(width=sum(widths) + borders, height=None, highlight=False)
        head = (frame.head_left, frame.head_vertical, frame.head_right)
        body = (frame.mid_left, frame.mid_vertical, frame.mid_right)
        foot = (frame.foot_left, frame.foot_vertical, frame.foot_right)
        new_line = Segment.line()

        if self.title:
            yield from console.render(self.title_text(), options.update(justify="left"))
        yield Segment(frame.get_top(widths))
        yield new_line
        headers = [column.header for column in self.columns]
        header_style = console.get_style("table.header")
        yield from self._laid_out(console, options, widths, headers, header_style, head, "bottom")
        yield Segment(frame.get_row(widths, "head"))
        yield new_line
        for index, row in enumerate(self.rows):
            last = self.totals is None and index == len(self.rows) - 1
            left, divider, right = foot if last else body
            cells = self._one_line(row, widths)
            if cells is None:  # a cell folds onto several lines: Rich lays the row out
                yield from self._laid_out(
                    console, options, widths, row, Style.null(), (left, divider, right), "top"
                )
            else:
                yield Segment(left + divider.join(cells) + right)
                yield new_line
        if self.totals is not None:
            if self.rows:
                yield Segment(frame.get_row(widths, "row"))
                yield new_line
            bold = console.get_style("bold")
            yield from self._laid_out(console, options, widths, self.totals, bold, foot, "top")
        yield Segment(frame.get_bottom(widths))
        yield new_line

    def _one_line(self, row: Sequence[str], widths: Sequence[int]) -> list[str] | None:
        """The padded cells of a row that fits on one line, or None if a cell must fold."""
        cells = []
        for text, width, column in zip(row, widths, self.columns, strict=True):
            room = width - 2
            length = cell_len(text)
            if length > room or "\n" in text:
                return None
            gap = " " * (room - length)
            cells.append(f" {gap}{text} " if column.justify == "right" else f" {text}{gap} ")
        return cells

    def _laid_out(
        self,
        console: Console,
        options: ConsoleOptions,
        widths: Sequence[int],
        row: Sequence[str],
        style: Style,
        edges: tuple[str, str, str],
        vertical: Literal["top", "bottom"],
    ) -> Iterator[Segment]:
        """A row laid out by Rich cell by cell, as ``rich.table.Table`` lays out each row."""
        cells = [
            console.render_lines(
                Padding(Text(text), PADDING),
                options.update(
                    width=width,
                    justify=column.justify,
                    no_wrap=column.no_wrap,
                    overflow=column.overflow,
                ),
                style=style,
            )
            for text, width, column in zip(row, widths, self.columns, strict=True)
        ]
        tallest = max(len(lines) for lines in cells)
        height = max(1, tallest)  # a row of empty cells still takes a line (unstyled)
        align = Segment.align_top if vertical == "top" else Segment.align_bottom
        cells = [
            Segment.set_shape(align(lines, width, tallest, style), width, height)
            for lines, width in zip(cells, widths, strict=True)
        ]
        left, divider, right = (Segment(edge) for edge in edges)
        for line in range(height):
            yield left
            for index, lines in enumerate(cells):
                if index:
                    yield divider
                yield from lines[line]
            yield right
            yield Segment.line()
