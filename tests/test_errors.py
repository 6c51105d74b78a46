"""One error hierarchy: every exception class the product defines descends from ``models.errors.LANPError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import lanp_vad
from lanp_vad.models.errors import LANPError


def test_every_exception_class_has_the_one_root() -> None:
    strays, seen = [], 0
    for package in (lanp_vad,):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                    seen += 1
                    if not issubclass(value, LANPError):
                        strays.append(f"{module.__name__}.{name}")
    assert seen > 20 and not strays, f"exception classes outside the hierarchy: {strays}"
