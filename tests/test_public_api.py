"""Every public name of ``vgloc`` is what it says, and no submodule shadows one."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import vgloc


def test_every_name_in_all_resolves_to_a_documented_non_module_object() -> None:
    for name in vgloc.__all__:
        value = getattr(vgloc, name)
        assert not isinstance(value, types.ModuleType), f"vgloc.{name} is a module"
        if name != "__version__":
            assert inspect.getdoc(value), f"vgloc.{name} has no docstring"


def test_importing_every_submodule_shadows_no_public_name() -> None:
    for info in pkgutil.walk_packages(vgloc.__path__, "vgloc."):
        if info.name.startswith("vgloc.cli.__main__"):
            continue
        importlib.import_module(info.name)
    for name in vgloc.__all__:
        assert not isinstance(getattr(vgloc, name), types.ModuleType), f"vgloc.{name} became a module"
    assert callable(vgloc.locate) and callable(vgloc.build_index) and callable(vgloc.evaluate)


def test_import_vgloc_is_light_and_has_no_side_effects() -> None:
    code = (
        "import logging, sys, vgloc; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert not logging.getLogger().handlers, 'logging configured'; "
        "print(sorted(vgloc.__all__) == sorted(set(vgloc.__all__)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_public_functions_are_the_localizer_and_evaluation_ones() -> None:
    from vgloc.evaluation import evaluate
    from vgloc.localizer import Localizer, build_index

    assert vgloc.build_index is build_index
    assert vgloc.Localizer is Localizer
    assert vgloc.evaluate is evaluate
