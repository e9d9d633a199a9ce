"""Signals the training app sends (issue-15 notifications hook here).

``promotion_proposed(request_id, champion_id, challenger_id, alias, version)``: the platform proposed moving a
champion's alias to its challenger's version (``services.challengers``), after the proposal is committed.
"""

from django.dispatch import Signal

promotion_proposed = Signal()
