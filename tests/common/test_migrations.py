"""Models and migrations agree (CI also relies on this)."""
import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_makemigrations_check_passes():
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    except SystemExit as exc:  # makemigrations --check exits 1 when a migration is missing
        pytest.fail(f"makemigrations --check found model changes without migrations (exit {exc.code})")
