"""Schemathesis fuzzes the API against a server this test starts, for a bounded time: no input it
generates from the schema may get a 500, and the answers must match the schema."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_generated_inputs_without_server_errors(live_server, make_user):
    from rest_framework.authtoken.models import Token

    admin = make_user("admin")
    token = Token.objects.create(user=admin)
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st), "run", f"{live_server.url}/api/schema/",
            "--checks", "not_a_server_error,response_schema_conformance",
            # Reads only: generated POSTs would start pipelines in the server's thread.
            "--include-method", "GET",
            "--max-examples", "5",
            "--max-time", "45",
            "--request-timeout", "20",
            "--header", f"Authorization: Token {token.key}",
            "--suppress-health-check", "all",
        ],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # It must have exercised operations, not stopped before the first one.
    tested = re.search(r"Tested: (\d+)", result.stdout)
    cases = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert tested and int(tested[1]) >= 10, result.stdout[-3000:]
    assert cases and int(cases[1]) > 0 and cases[1] == cases[2], result.stdout[-3000:]
