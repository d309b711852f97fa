"""The README shows every command's ``--help`` exactly as the CLI prints it."""

from __future__ import annotations

from tools.readme_help import README, documented_commands, leaf_commands, refresh


def test_every_command_has_a_help_block_in_the_readme() -> None:
    missing = set(leaf_commands()) - documented_commands(README.read_text(encoding="utf-8"))
    assert not missing, f"add help blocks (then run 'make readme') for: {sorted(missing)}"


def test_help_blocks_match_the_cli() -> None:
    text = README.read_text(encoding="utf-8")
    assert refresh(text) == text, "README help blocks are stale: run 'make readme'"
