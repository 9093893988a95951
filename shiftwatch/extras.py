"""The service's optional parts (``pip install 'shiftwatch[reports]'``, ``[labelstudio]``, ``[ray]``), imported on use.

A feature whose extra is missing answers with one line naming the install command (HTTP 501, CLI exit 2);
everything else keeps running. ``pip install 'shiftwatch[all]'`` installs every extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from shiftwatch.errors import ShiftwatchError

# The import name -> (the extra that installs it, what it is for).
EXTRAS = {
    "evidently": ("reports", "Evidently drift reports"),
    "pandas": ("reports", "Evidently drift reports"),
    "label_studio_sdk": ("labelstudio", "Label Studio"),
    "ray": ("ray", "Ray Serve deployments"),
}


class MissingExtra(ShiftwatchError):
    """A feature needs a package this install left out; the message says which extra to install."""

    status_code = 501


def require_extra(module: str) -> ModuleType:
    """Import ``module`` (a key of ``EXTRAS``), or raise ``MissingExtra`` naming its pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra, feature = EXTRAS[module.split(".")[0]]
        raise MissingExtra(f"{feature} need {module}, not installed: pip install 'shiftwatch[{extra}]'") from None
