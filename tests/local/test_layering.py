"""The local-features layer and the models sit below re-ranking: they never import it."""

from __future__ import annotations

import subprocess
import sys


def test_local_and_models_never_import_rerank() -> None:
    # A fresh interpreter: in this one the test session may already have imported vgloc.rerank.
    code = (
        "import sys\n"
        "import vgloc.local, vgloc.local.features, vgloc.local.matching, vgloc.local.verify\n"
        "import vgloc.local.cache, vgloc.local.vlad, vgloc.models\n"
        "from vgloc.models.classical import ClassicalDescriber\n"
        "ClassicalDescriber('rootsift+vlad8')  # runs the lazy import of the VLAD\n"
        "print(sorted(m for m in sys.modules if m == 'vgloc.rerank' or m.startswith('vgloc.rerank.')))\n"
        "print(sorted(m for m in ('cv2', 'h5py', 'kornia') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rerank_modules, heavy = out.splitlines()
    assert rerank_modules == "[]"
    # ...and importing the layer stays light: OpenCV, h5py and kornia load on first use.
    assert heavy == "[]"
