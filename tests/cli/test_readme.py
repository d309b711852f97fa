"""The README shows every command's ``--help`` exactly as the CLI prints it."""

from __future__ import annotations

import re

from tools.readme_help import README, documented_commands, leaf_commands, refresh

from keyless.causes import Cause


def test_every_command_has_a_help_block_in_the_readme() -> None:
    missing = set(leaf_commands()) - documented_commands(README.read_text(encoding="utf-8"))
    assert not missing, f"add help blocks (then run 'make readme') for: {sorted(missing)}"


def test_help_blocks_match_the_cli() -> None:
    text = README.read_text(encoding="utf-8")
    assert refresh(text) == text, "README help blocks are stale: run 'make readme'"


def test_the_troubleshooting_table_names_every_cause_doctor_reports_and_no_other() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Troubleshooting") : text.index("## Documentation")]
    named = {
        name
        for group in re.findall(r"`doctor`: ((?:`[a-z-]+`(?:, )?)+)", table)
        for name in re.findall(r"`([a-z-]+)`", group)
    }
    assert named == {cause.value for cause in Cause}


def test_doctors_help_names_every_cause() -> None:
    # The README's help block is the CLI's own (test_help_blocks_match_the_cli).
    shown = README.read_text(encoding="utf-8").split("Named causes:", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"[a-z]+(?:-[a-z]+)*", shown))
    assert {cause.value for cause in Cause} <= named


def _table_rows_off_shape(text: str) -> list[str]:
    """Rows of the Markdown tables (outside code blocks) whose cell count differs from their
    header's: a row that swallowed the next paragraph, or a missing cell."""
    wrong: list[str] = []
    table: list[str] = []
    in_code = False

    def cells(row: str) -> int:
        return len(re.split(r"(?<!\\)\|", row.strip().strip("|")))

    for line in [*text.splitlines(), ""]:
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("|"):
            table.append(line)
            continue
        if table:
            wrong += [row for row in table[1:] if cells(row) != cells(table[0])]
            table = []
    return wrong


def test_every_table_row_has_its_headers_cells() -> None:
    documents = [README, *sorted((README.parent / "docs").glob("*.md"))]
    for document in documents:
        wrong = _table_rows_off_shape(document.read_text(encoding="utf-8"))
        assert not wrong, f"{document.name}: {wrong[0][:120]}"


def test_a_row_that_swallowed_a_paragraph_is_caught() -> None:
    text = "| a | b |\n|---|---|\n| 1 | 2 | Tests: the next paragraph\nmore\n"
    assert _table_rows_off_shape(text) == ["| 1 | 2 | Tests: the next paragraph"]
    assert _table_rows_off_shape("| a | b |\n|---|---|\n| 1 \\| x | 2 |\n") == []
