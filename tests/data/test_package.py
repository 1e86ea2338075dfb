"""``import vgloc.data`` stays light: torch is imported only when a transform or dataset is used."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_torch() -> None:
    code = "import sys, vgloc.data; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_resolve() -> None:
    # hasattr imports the lazy (torch) names too.
    import vgloc.data as d

    missing = [name for name in d.__all__ if not hasattr(d, name)]
    assert missing == []
