"""What the commands print: plain-text tables, progress bars and notes."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header (floats to 4 places)."""
    cells = [[format_cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def progress_bar(total: int, what: str):
    """A progress bar over `total` images, on stderr."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="image", desc=what)


def print_note(note: str | None) -> None:
    """A note for the user (on stderr, so it never mixes with a command's table or file output)."""
    if note:
        print(note, file=sys.stderr)
