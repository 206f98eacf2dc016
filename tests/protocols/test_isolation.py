"""`protocols` and `geofence` stay free of the server's dependencies and of each other."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # fresh interpreters: the e2e env

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("twisted", "sqlalchemy", "geoalchemy2", "alembic", "tracker", "web")


def _modules_after(statement: str) -> set[str]:
    """Top-level module names loaded by `statement` in a fresh interpreter."""
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=60)
    return {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}


def test_importing_protocols_and_geofence_loads_no_server_dependency():
    loaded = _modules_after("import protocols, geofence")
    assert not loaded & set(FORBIDDEN)


@pytest.mark.parametrize("package,other", [("protocols", "geofence"), ("geofence", "protocols")])
def test_protocols_and_geofence_do_not_import_each_other(package, other):
    assert other not in _modules_after(f"import {package}")


def test_codecs_do_not_read_the_clock():
    """`now` is passed in; only replay.py (the CLI entry point) may default it."""
    clock = re.compile(r"\.now\(|utcnow\(|\btime\.time\(|\bdate\.today\(|monotonic\(")
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "protocols").glob("*.py"))
                 if path.name != "replay.py" and clock.search(path.read_text(encoding="utf-8"))]
    assert not offenders
