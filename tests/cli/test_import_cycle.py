"""The train command imports vgloc.training, never the reverse: no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[2] / "src" / "vgloc" / "training"


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement of ``path`` names, at any depth (lazy ones too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_training_module_imports_the_cli() -> None:
    # Static, so imports inside functions count too: they would close the cycle as
    # soon as the function runs.
    offenders = {
        str(path.relative_to(TRAINING)): sorted(
            m for m in _imported_modules(path) if m == "vgloc.cli" or m.startswith("vgloc.cli.")
        )
        for path in sorted(TRAINING.rglob("*.py"))
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_importing_training_loads_no_cli_module() -> None:
    code = (
        "import sys, vgloc.training\n"
        "loaded = [m for m in sys.modules if m == 'vgloc.cli' or m.startswith('vgloc.cli.')]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
