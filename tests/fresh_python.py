"""Run a script in a fresh Python interpreter, for what the test process can no longer show (it
imported TensorFlow long before): what a web or worker process loads at its start."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_fresh_python(script: str, *, timeout: float, **env: str) -> dict:
    """Run ``script`` with ``python -c`` at the project root, in this environment plus ``env``;
    it must exit 0 (the assertion shows its stderr). The JSON object on its last output line."""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
