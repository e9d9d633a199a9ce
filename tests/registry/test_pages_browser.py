"""The modeler pages in Debian's Chromium: upload a skops model, see it, move an alias, edit its YAML."""

from __future__ import annotations

import pytest

from apps.registry.models import AliasMove, ModelVersion, VersionStatus
from tests.browser import browser_page, javascript_errors, screenshot

from .conftest import PROJECT_INFO, descriptor, dump, to_yaml, train

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
MID = "0001_[python]_penicillin_RF"


def test_modeler_uploads_inspects_and_promotes(live_server, role_users, tmp_path, training_frame):
    from apps.registry.project_info import parse_project_info
    from apps.registry.services import project_upsert

    project_upsert(info=parse_project_info(PROJECT_INFO))
    fitted = train("rf", training_frame)
    model_path = dump(fitted["model"], tmp_path / f"{MID}.skops")
    yaml_path = tmp_path / f"{MID}.yaml"
    yaml_path.write_text(to_yaml(descriptor(MID, model_file=model_path.name, frame=training_frame)))

    with browser_page(height=1100) as page, javascript_errors(page) as errors:
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", "test-modeler")
        page.fill("#id_password", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/home/modeler/")
        page.click("[data-testid=link-registry-manage]")
        page.wait_for_url(f"{live_server.url}/registry/")
        page.click("text=P0001")
        page.click("[data-testid=upload-link]")
        page.set_input_files("#id_descriptor_file", str(yaml_path))
        page.set_input_files("#id_model_file", str(model_path))
        screenshot(page, "registry-upload")
        page.click("button:has-text('Register version')")
        page.wait_for_selector("[data-testid=status]")
        assert page.text_content("[data-testid=status]").strip().lower() == "online"
        assert "temperature" in page.text_content("[data-testid=section-inputs]")
        # production needs an electronic signature: without the password the move is refused.
        page.fill("#id_reason", "validated on batch 96")
        page.click("button:has-text('Move alias')")
        page.wait_for_selector("text=signature refused")
        assert not AliasMove.objects.exists()
        sha256 = page.text_content("[data-testid=signed-sha256]").strip()
        assert len(sha256) == 64
        page.fill("#id_reason", "validated on batch 96")
        page.fill("#id_password", "correct-horse-battery")
        page.select_option("#id_meaning", "approved")
        screenshot(page, "registry-sign")
        page.click("button:has-text('Move alias')")
        page.wait_for_selector("text=production → v1")
        assert "validated on batch 96" in page.text_content("[data-testid=alias-history]")
        assert "Approved by test-modeler" in page.text_content("[data-testid=alias-history]")
        screenshot(page, "registry-model")
        page.click("[data-testid=edit-link]")
        text = page.input_value("#id_descriptor")
        page.fill("#id_descriptor", text.replace("author: A. Modeler", "author: B. Browser"))
        page.click("button:has-text('Save')")
        page.wait_for_selector("text=Descriptor of")
        page.goto(f"{live_server.url}/registry/P0001/")
        assert "B. Browser" in page.text_content("[data-testid=model-grid]")
        screenshot(page, "registry-project")
        assert errors == []
    version = ModelVersion.objects.get()
    assert version.status == VersionStatus.ONLINE and version.flavor == "sklearn-skops"
    assert version.descriptor["model_identification"]["author"] == "B. Browser"
    move = AliasMove.objects.get()
    assert move.moved_by.username == "test-modeler" and move.signature.subject_sha256 == sha256
