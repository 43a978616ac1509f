"""Command-line input mistakes: one clear line, exit 1, nothing touched."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CARECAST = str(Path(sys.executable).with_name("carecast"))


def run(tmp_path, *args):
    env = {**os.environ, "CARECAST_HOME": str(tmp_path / "home")}
    return subprocess.run([CARECAST, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["events", "send", "c1", "signed_up", "--data", "{bad"], "--data is not valid JSON: Expecting property name"),
        (["events", "send", "c1", "signed_up", "--data", "[1]"], "--data must be a JSON object"),
        (["contacts", "import", "x.csv", "--default-region", "Narnia"], "--default-region 'Narnia' is not a region"),
        (["events", "send", "c1", "signed_up"], "has no carecast schema; run `carecast db upgrade`"),
        (["preview", "welcome", "--contact", "c1", "--sample"], "choose --contact ID or --sample, not both"),
    ],
)
def test_mistakes_exit_1_with_one_clear_line(tmp_path, args, message):
    done = run(tmp_path, *args)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "outbox").exists()
