"""The house rule import-linter cannot see (``make lint`` checks the layers and circles): no
module imports another module's underscore name. Helpers two modules share get a public name in
the room both may import (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("config", "booking", "notifications", "scheduling", "tests", "bench")


def private_imports(source: str) -> list[str]:
    """``module._name`` for every underscore name ``source`` imports from a project module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if node.module.split(".")[0] not in PROJECT:
            continue
        for alias in node.names:
            dunder = alias.name.startswith("__") and alias.name.endswith("__")
            if alias.name.startswith("_") and not dunder:
                found.append(f"{node.module}.{alias.name}")
    return found


def test_the_check_finds_a_private_name_imported_at_any_depth():
    source = (
        "from booking.portal.link import see_other, _visit\n"
        "def page():\n"
        "    from notifications.delivery import _finish\n"
        "from django.db.models import __all__\n"
    )

    assert private_imports(source) == [
        "booking.portal.link._visit",
        "notifications.delivery._finish",
    ]


def test_no_module_imports_another_module_s_underscore_name():
    offenders = {
        str(path.relative_to(ROOT)): names
        for package in PROJECT
        for path in sorted((ROOT / package).rglob("*.py"))
        if (names := private_imports(path.read_text(encoding="utf-8")))
    }

    assert offenders == {}
