"""Plain-text tables on the command line."""

from __future__ import annotations

from hf_resnet101.commands.tables import format_cell, format_table


def test_cells_show_floats_to_four_places_and_none_as_blank():
    assert [format_cell(v) for v in (0.123456, 3, None, "cat", 1.0)] == ["0.1235", "3", "", "cat", "1.0000"]


def test_columns_are_as_wide_as_their_widest_cell():
    table = format_table(["class", "f1"], [["Blue Jay", 0.5], ["cat", None]])
    assert table.splitlines() == [
        "class     f1",
        "--------  ------",
        "Blue Jay  0.5000",
        "cat",
    ]


def test_a_table_without_rows_keeps_its_header():
    assert format_table(["path", "label"], []) == "path  label\n----  -----"
