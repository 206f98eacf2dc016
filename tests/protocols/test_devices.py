"""The device side lives in `protocols.devices`, apart from the codecs."""

import ast
import importlib
from pathlib import Path

import pytest

import protocols
from protocols import get_device_side
from protocols.registry import CODECS, DEVICE_MODULES, DEVICES

PROTOCOLS_DIR = Path(protocols.__file__).resolve().parent


def test_every_codec_has_its_device_side_under_its_name():
    assert set(DEVICE_MODULES) == set(CODECS) == set(DEVICES)
    for name, module in DEVICE_MODULES.items():
        assert module.__name__ == f"protocols.devices.{name}"
        assert get_device_side(name) is module.DEVICE


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(
    p.relative_to(PROTOCOLS_DIR).as_posix() for p in PROTOCOLS_DIR.rglob("*.py")
    if p.parent.name != "devices" and p.name != "registry.py"))
def test_no_codec_module_imports_the_device_side(path):
    """The server never uses the device side: only the registry wires it in."""
    imported = _imported_modules(PROTOCOLS_DIR / path)
    assert not {name for name in imported if name.startswith("protocols.devices")}


@pytest.mark.parametrize("name", sorted(CODECS))
def test_no_device_name_is_left_in_a_codec_module(name):
    modules = {importlib.import_module(f"protocols.{name}"),
               importlib.import_module(type(CODECS[name].new_session()).__module__)}
    for module in modules:
        assert not hasattr(module, "DEVICE"), module.__name__
        assert not [n for n in vars(module) if n.startswith("device_") or n.endswith("Device")]
