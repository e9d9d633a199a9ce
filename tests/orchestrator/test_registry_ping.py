"""The pipeline's registry probe: reachable with the service token, refused with a bad one."""
import pytest

from apps.orchestrator.registry_client import RegistryClient
from apps.orchestrator.services import service_token

pytestmark = pytest.mark.django_db(transaction=True)


def test_ping_accepts_the_service_token_and_refuses_a_bad_one(live_server):
    ok, detail = RegistryClient(base_url=live_server.url, token=service_token(), timeout=10).ping()
    assert ok, detail
    assert "answered 200" in detail
    ok, detail = RegistryClient(base_url=live_server.url, token="not-a-token", timeout=10).ping()
    assert not ok
    assert "refused the pipeline's token (401)" in detail


def test_ping_reports_an_unreachable_registry():
    ok, detail = RegistryClient(base_url="http://127.0.0.1:1", token="x", timeout=2, retries=0).ping()
    assert not ok and "unreachable" in detail
