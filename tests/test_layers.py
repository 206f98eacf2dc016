"""The import-linter contracts (pyproject.toml) hold, and they would catch a new
import against the layers: each case copies the packages, adds one bad import and
expects `lint-imports` to fail naming it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # subprocesses: the e2e env

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocols", "geofence", "tracker", "web")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml")],
                          cwd=tree, capture_output=True, text=True, timeout=300, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_contracts_hold_on_this_tree():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "statement", "contract"), [
    ("tracker/models.py", "import web.site", "Layers"),                 # domain -> web
    ("tracker/writer.py", "import tracker.app", "Layers"),              # domain -> root
    ("protocols/base.py", "import tracker.models", "Layers"),           # codec -> server
    ("web/auth.py", "import tracker.storage.sql", "Adapters do not know each other"),
    ("tracker/rules.py", "import sqlalchemy", "Only storage speaks SQL"),
    ("geofence/zones.py", "import twisted.internet", "Codecs and geometry are pure"),
    ("geofence/events.py", "import geofence.engine", "No import cycles"),
])
def test_a_reintroduced_bad_import_breaks_a_contract(tmp_path, module, statement, contract):
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{statement}  # added by the test\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
