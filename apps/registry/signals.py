"""Signals the registry sends; apps above it react without the registry knowing them."""

from __future__ import annotations

from django.dispatch import Signal

#: A version was registered (sent after the transaction commits): ``version_id``, ``source`` (``upload``,
#: ``import``, ``training``, ...). The training app measures an uploaded version's explanation on it.
version_registered = Signal()
