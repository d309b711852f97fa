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
