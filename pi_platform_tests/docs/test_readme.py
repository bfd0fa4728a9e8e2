"""The README is part of the product: its table reference and its test command must stay true."""

import re
from pathlib import Path

from pi_platform.storage import describe_tables

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_table_reference_is_the_generated_one():
    generated = describe_tables().rstrip().replace("### `", "#### `")
    assert generated in README


def test_ci_runs_exactly_the_readme_test_command():
    commands = re.findall(r"^(python3 -m venv .*pytest.*)$", README, re.MULTILINE)
    assert len(commands) == 1
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[0] in ci_lines


def test_readme_documents_every_check_name():
    from pi_platform.defs.definitions import defs

    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    undocumented = sorted(name for name in check_names if name not in README and not name.startswith("freshness_check"))
    assert not undocumented, f"checks missing from README: {undocumented}"
