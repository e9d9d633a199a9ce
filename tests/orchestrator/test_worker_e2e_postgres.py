"""The end-to-end cases of ``e2e_cases`` on Redis and a throwaway PostgreSQL database (marked ``postgres``: it
runs with the PostgreSQL pass of ``make test``)."""

import pytest

from . import e2e_cases
from .e2e_cases import *  # noqa: F403 (the marks, fixtures and cases run here)
from .e2e_cases import stack_fixture

pytestmark = [*e2e_cases.pytestmark, pytest.mark.postgres]
stack = stack_fixture("postgres")
