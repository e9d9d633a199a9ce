"""Dashboards: one home per role, django-plotly-dash apps inside Django templates."""
