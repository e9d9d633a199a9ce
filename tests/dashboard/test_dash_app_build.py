"""Building a Dash app (``dash_app``) without django-plotly-dash's costly full ``inspect.stack()``."""

from __future__ import annotations

import inspect

from django_plotly_dash import dash_wrapper

from apps.dashboard.dash_apps import common, manager


def test_the_frames_only_stack_is_the_real_stack_without_source_lines():
    def both():  # the two stacks seen from the same frame
        ours, real = common._FramesOnlyInspect.stack(), inspect.stack()
        return [info.frame for info in ours], [info.frame for info in real]

    ours, real = both()
    assert ours == real and len(ours) > 3
    assert all(info.code_context is None for info in common._FramesOnlyInspect.stack())


def test_an_app_still_knows_the_module_that_built_it_and_inspect_is_given_back():
    app = common.dash_app("test-frames-only")
    assert app.caller_module is common
    assert app.caller_module_location == common.__file__
    assert manager.overview_app.caller_module is common
    assert dash_wrapper.inspect is inspect
