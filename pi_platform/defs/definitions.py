"""The pi_platform code location: every domain's `definitions.defs` merged, with resources from settings.

    dagster dev -m pi_platform.defs.definitions

Each domain is a sub-package of `defs/` with a `definitions.py` exposing `defs`; they are found by walking
the package, so a new domain is a new folder and nothing here changes.
"""

import importlib
import pkgutil

import dagster as dg

import pi_platform.defs as package
from pi_platform.defs.resources import default_resources


def _domains() -> list[dg.Definitions]:
    found = []
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.ispkg:
            found.append(importlib.import_module(f"{package.__name__}.{module.name}.definitions").defs)
    return found


defs = dg.Definitions.merge(*_domains(), dg.Definitions(resources=default_resources()))
