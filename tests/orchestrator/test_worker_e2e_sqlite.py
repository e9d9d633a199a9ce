"""The end-to-end cases of ``e2e_cases`` on Redis and a SQLite file in WAL mode."""

from .e2e_cases import *  # noqa: F403 (the marks, fixtures and cases run here)
from .e2e_cases import stack_fixture

stack = stack_fixture("sqlite")
