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


def test_http_errors_live_in_the_service() -> None:
    """The method's error module knows no HTTP: ``ServiceError`` and the kinds of a request are the service's, and
    the problem document's ``kind`` still lists both vocabularies, each name once."""
    from lanp_vad.models import errors
    from lanp_vad.service.problems import HTTPErrorKind, Problem, ServiceError

    assert not hasattr(errors, "ServiceError") and issubclass(ServiceError, LANPError)
    product, request = {kind.value for kind in errors.ErrorKind}, {kind.value for kind in HTTPErrorKind}
    assert {"unauthorized", "queue_full", "not_ready", "gone"} <= request and not product & request
    schema = Problem.model_json_schema()
    documented = {value for option in schema["properties"]["kind"]["anyOf"]
                  for value in schema["$defs"][option["$ref"].rpartition("/")[2]]["enum"]}
    assert documented == product | request
    assert ServiceError(503, HTTPErrorKind.QUEUE_FULL, "full").kind == "queue_full"
