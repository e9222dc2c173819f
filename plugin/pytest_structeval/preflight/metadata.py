"""Installed-distribution facts: versions and requirements read from package metadata (no
import of the package itself), and the pip command that installs what a requirement names.

``dist_version``, ``dist_requires`` and ``dist_requires_python`` are the only readers of
``importlib.metadata``; the rest of the preflight calls them through this module
(``metadata.dist_version(...)``), so that tests can monkeypatch them in one place.

Standard library only, except ``packaging`` (pytest's dependency), imported where a
requirement is parsed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING

from . import facts

if TYPE_CHECKING:
    from packaging.requirements import Requirement


def dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def dist_requires(name: str) -> list[str]:
    return metadata.requires(name) or []


def dist_requires_python(name: str) -> str | None:
    return metadata.metadata(name).get("Requires-Python")


def canonical(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def applicable_requirements(dist: str) -> tuple[list[Requirement], list[str]]:
    """``dist``'s Requires-Dist for this machine (markers evaluated, extras excluded), and the
    lines that do not parse."""
    from packaging.requirements import InvalidRequirement, Requirement  # lazy: pytest's dep

    applicable, unparsed = [], []
    for line in dist_requires(dist):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            unparsed.append(line)
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            applicable.append(req)
    return applicable, unparsed


def requirement(dist: str, name: str) -> Requirement | None:
    """How ``dist`` requires ``name`` on this machine; None if it does not."""
    return next((r for r in applicable_requirements(dist)[0] if canonical(r.name) == name), None)


def satisfied(installed: str, req: Requirement) -> bool:
    # A plain ``==2.9.0`` accepts any local build (2.9.0+cu128); ``==2.13.0+cpu`` only that one.
    return req.url is not None or req.specifier.contains(installed, prereleases=True)


def requirement_text(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras} @ {req.url}" if req.url else f"{req.name}{extras}{req.specifier}"


def _local_label(req: Requirement) -> str | None:
    for spec in req.specifier:
        if spec.operator in ("==", "===") and "+" in spec.version:
            return spec.version.split("+", 1)[1]
    return None


def pip_install(reqs: Sequence[Requirement]) -> str:
    """One pip command installing all of ``reqs``; a local build (``torch==2.13.0+cpu``) comes
    from PyTorch's index, which holds nothing else (so ``--extra-index-url`` when others come
    along)."""
    command = "pip install " + " ".join(shlex.quote(requirement_text(r)) for r in reqs)
    labels = [label for r in reqs if (label := _local_label(r))]
    if labels:
        option = "--index-url" if len(labels) == len(reqs) else "--extra-index-url"
        command += f" {option} {facts.torch_index(labels[0])}"
    return command
