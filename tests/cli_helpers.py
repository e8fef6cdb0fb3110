"""Run ``demoforge`` as a user does (a subprocess) from any test: ``from cli_helpers import demoforge, refused``
(``tests/`` is on pytest's python path, see pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys


def demoforge(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"demoforge {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


def refused(*args: str) -> str:
    """Run a command that must fail on bad input: exit 1, exactly one line on stderr, no traceback."""
    proc = demoforge(*args, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]
