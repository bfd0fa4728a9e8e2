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
    undocumented = sorted(name for name in check_names if name not in README)
    assert not undocumented, f"checks missing from README: {undocumented}"


def test_readme_documents_every_sensor_schedule_and_job():
    """What runs by default (and what can be switched on) must be findable in the README."""
    from pi_platform.defs.definitions import defs

    repository = defs.get_repository_def()
    names = [d.name for d in (*repository.sensor_defs, *repository.schedule_defs)]
    names += [job.name for job in repository.get_all_jobs() if not job.name.startswith("__")]
    assert not [name for name in names if f"`{name}`" not in README]
