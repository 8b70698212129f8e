"""The README's test command is the one CI runs."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    command = re.search(r'^TEST_COMMAND="(.+)"$', ci, re.MULTILINE).group(1)
    readme = (REPO / "README.md").read_text()
    assert f"\n{command}\n" in readme
    assert command.endswith(".venv/bin/pytest")
