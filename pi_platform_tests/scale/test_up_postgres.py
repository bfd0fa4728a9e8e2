"""`pi-platform up --postgres URL`: a server it cannot use is one line naming host, port and database (never the
password), before anything starts. The instance file it writes is what test_deployment.py runs Dagster on."""

import subprocess
import sys

import pytest

from pi_platform.errors import ConfigError
from pi_platform.launcher.instance import safe_location, sqlalchemy_url
from pi_platform_tests.launcher.helpers import free_port, isolated_env


def test_unreachable_postgres_is_one_line_and_nothing_starts(tmp_path):
    url = f"postgresql://dagster:s3cret-pw@127.0.0.1:{free_port()}/dagster"  # nothing listens there
    env = isolated_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "pi_platform.cli", "up", "--no-run", "--postgres", url,
                           "--port", str(free_port()), "--simulator-port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot use Dagster's Postgres at 127.0.0.1:" in done.stderr and "--postgres" in done.stderr, done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert not (tmp_path / "home" / "dagster.yaml").exists()  # nothing was set up


def test_url_forms():
    with pytest.raises(ConfigError, match="--postgres / PI_DAGSTER_POSTGRES_URL"):
        sqlalchemy_url("mysql://u:p@h/d")
    assert sqlalchemy_url("postgres://u:p@h:5433/d") == "postgresql+psycopg2://u:p@h:5433/d"
    assert sqlalchemy_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert safe_location("postgresql://u:secret@db.example:6543/dagster") == "db.example:6543/dagster"
