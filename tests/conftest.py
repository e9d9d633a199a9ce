"""Shared fixtures: one user per role plus an outsider, API clients, the IndPenSim data path."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.accounts.roles import ADMIN, MANAGER, MODELER, OPERATOR
from apps.accounts.services import api_token_create, roles_ensure
from tests import flush
from tests.embedded_db import INDPENSIM_DIR, RUN_DIR_VARIABLE, migrated_template

ROLES = (OPERATOR, MODELER, MANAGER, ADMIN)
#: Every caller a permission matrix covers: anonymous, an outsider without a role, each role.
CALLERS = ("anonymous", "outsider", *ROLES)


def pytest_configure(config) -> None:
    """Transactional tests put back what ``migrate`` left instead of rebuilding it (``tests.flush``); xdist
    hands out the files in the order of ``pytest_collection_modifyitems``. One
    directory for the whole run, made before the xdist workers start so they inherit it (the migrated
    template of ``tests.embedded_db`` lives there); removed when the run ends."""
    flush.install()
    if hasattr(config.option, "loadscopereorder"):  # xdist's controller: files in the collected order
        config.option.loadscopereorder = False
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get(RUN_DIR_VARIABLE):
        return
    config.stamm_run_dir = tempfile.mkdtemp(prefix="stamm-test-run-")
    os.environ[RUN_DIR_VARIABLE] = config.stamm_run_dir
    # Built while the workers import and collect, instead of while they wait for it.
    config.stamm_template = threading.Thread(target=migrated_template, name="migrated-template", daemon=True)
    config.stamm_template.start()


def pytest_unconfigure(config) -> None:
    if "tests.browser" in sys.modules:  # the process's shared browser, if a test started it
        sys.modules["tests.browser"].close_shared_browser()
    if getattr(config, "stamm_run_dir", None):
        config.stamm_template.join(timeout=300)
        shutil.rmtree(config.stamm_run_dir, ignore_errors=True)
        os.environ.pop(RUN_DIR_VARIABLE, None)


#: Marks of the tests that start processes or a browser, most expensive first (``pytest_collection_modifyitems``).
HEAVY_MARKS = ("celery_worker", "browser", "slow", "r_runtime")


def pytest_collection_modifyitems(config, items: list) -> None:
    """Files with tests that start processes or a browser first (those of ``HEAVY_MARKS`` in that order), each
    group in its collected order.

    pytest-xdist hands files out in the collected order (its own reordering, files with the most tests first,
    is turned off in ``pytest_configure``): the one-test files that run for a minute then start while every
    core has other work, and the many short in-process files fill the cores at the end. In xdist's order they
    came last, and one core worked through them while the other sat idle.
    """

    def rank(item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        return next((i for i, name in enumerate(HEAVY_MARKS) if name in marks), len(HEAVY_MARKS))

    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    order = sorted(files.values(), key=lambda group: min(rank(item) for item in group))
    items[:] = [item for group in order for item in group]


#: Database connections opened by threads other than the main one during the running test (``connection_created``).
THREAD_CONNECTIONS: list[tuple[threading.Thread, object]] = []


def _thread_connection_created(sender, connection, **kwargs) -> None:
    if threading.current_thread() is not threading.main_thread():
        THREAD_CONNECTIONS.append((threading.current_thread(), connection))


@pytest.fixture(autouse=True)
def _thread_connections_closed():
    """Every database connection a thread opened during a test (a runner's, a backfill's scoring thread, a test's
    own) is closed when the test ends. One left to the garbage collector keeps a session open on the database:
    on PostgreSQL it kept the run's test database from being dropped, now and then. The list holds the
    connections, so such a leak fails here every time. A thread still running gets a few seconds to end first: the
    live server's request thread closes its connection just after the client has read the response."""
    from django.db.backends.signals import connection_created

    THREAD_CONNECTIONS.clear()
    connection_created.connect(_thread_connection_created)
    yield
    connection_created.disconnect(_thread_connection_created)
    for thread, connection in THREAD_CONNECTIONS:
        if connection.connection is not None:
            thread.join(5)
    left_open = [thread.name for thread, connection in THREAD_CONNECTIONS if connection.connection is not None]
    THREAD_CONNECTIONS.clear()
    assert not left_open, (
        f"database connections still open that these threads opened: {left_open} "
        "(close them in the thread: connections.close_all())"
    )


@pytest.fixture(scope="session")
def django_db_keepdb(request, django_db_modify_db_settings) -> bool:
    """On SQLite, each test process starts from a copy of the run's migrated database (``tests.embedded_db``)
    instead of migrating its own (about 6 s of CPU per xdist worker); Django then keeps the copy and only
    checks that nothing is left to migrate. PostgreSQL, or ``--reuse-db``, as pytest-django does."""
    from django.conf import settings
    from django.db import connection

    if request.config.getvalue("reuse_db") or connection.vendor != "sqlite":
        return bool(request.config.getvalue("reuse_db"))
    name = connection.creation._get_test_db_name()
    if connection.creation.is_in_memory_db(name):
        return False
    shutil.copyfile(migrated_template(), name)
    if not settings.STAMM_AUDIT_DB_GUARD:  # the test settings' audit tables take deletes (flushes)
        _audit_guard_removed(name)
    return True


def _audit_guard_removed(path: str) -> None:
    """Drop the audit tables' append-only triggers from the SQLite file at ``path``, as the audit migration
    does when ``STAMM_AUDIT_DB_GUARD`` is off (the template was migrated with the embedded settings)."""
    import sqlite3
    from contextlib import closing

    from apps.audit.guard import guard_remove

    class Raw:  # the two things guard_remove asks of a connection
        vendor = "sqlite"

        def __init__(self, connection: sqlite3.Connection) -> None:
            self.connection = connection

        def cursor(self):
            return closing(self.connection.cursor())

    with closing(sqlite3.connect(path)) as connection, connection:
        guard_remove(Raw(connection))


@pytest.fixture
def indpensim_dir() -> Path:
    if not INDPENSIM_DIR.is_dir():
        pytest.fail(f"IndPenSim data not found at {INDPENSIM_DIR} (expected ../shared/data/indpensim)")
    return INDPENSIM_DIR


def make_user(django_user_model, username: str, role: str | None, password: str = "correct-horse-battery"):
    is_admin = role == ADMIN
    user = django_user_model.objects.create_user(
        username=username, password=password, is_staff=is_admin, is_superuser=is_admin
    )
    if role is not None:
        user.groups.add(_role_group(role))
    return user


def _role_group(role: str) -> Group:
    """The role's group: made by migrate (and again after each flush of a transactional test) through
    ``roles_ensure``'s post-migrate hook, so it is only run here when a test removed the groups."""
    group = Group.objects.filter(name=role).first()
    if group is None:
        roles_ensure()
        group = Group.objects.get(name=role)
    return group


def pickle_approver():
    """An administrator who approves the pickles the tests register (``pickle_approved_by=``), as an
    administrator does for STAMM's own pickled models; the approval rules themselves are tested apart."""
    from django.contrib.auth import get_user_model

    admin, created = get_user_model().objects.get_or_create(
        username="test-pickle-approver", defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        admin.set_unusable_password()
        admin.save()
    return admin


def issue_token(user, name: str = "test") -> str:
    """A new API token of ``user``; returns its key (the database keeps only its digest)."""
    return api_token_create(user=user, name=name)[1]


@pytest.fixture
def role_users(db, django_user_model) -> dict[str, object]:
    """``{"operator": user, ..., "outsider": user}``; each with password ``correct-horse-battery``."""
    users = {role: make_user(django_user_model, f"test-{role}", role) for role in ROLES}
    users["outsider"] = make_user(django_user_model, "test-outsider", None)
    return users


@pytest.fixture
def api_client_for(role_users):
    """``api_client_for("modeler")`` → an APIClient authenticated with that user's token."""

    def build(caller: str) -> APIClient:
        client = APIClient()
        if caller != "anonymous":
            client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(role_users[caller])}")
        return client

    return build
