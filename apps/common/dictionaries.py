"""How the time-series store learns a project's variable dictionary without importing the registry.

The registry owns the dictionaries (``project_info.yaml``: raw column → canonical name, type, units); the
store's CSV import and replay map columns through them. The two apps are siblings in the layering, so the
registry registers a provider here from its ``AppConfig.ready()`` (the pattern of ``common.health``) and
the store asks here. Without a provider (the registry app not installed) the import maps columns by its
own snake_case rule.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``{raw column: (canonical name, column type, units)}``
Dictionary = dict[str, tuple[str, str, str]]

_PROVIDER: list[Callable[[str], Dictionary | None]] = []


def register_dictionary_provider(provider: Callable[[str], Dictionary | None]) -> None:
    """Install the function that answers ``variable_dictionary_for`` (the last registered wins)."""
    _PROVIDER[:] = [provider]


def variable_dictionary_for(*, project_name: str) -> Dictionary | None:
    """The variable dictionary of the project whose time-series tag is ``project_name``, or None."""
    return _PROVIDER[0](project_name) if _PROVIDER else None
