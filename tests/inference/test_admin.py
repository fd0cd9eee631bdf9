"""The ModelVersion admin (list, detail with plots, actions) and the staff-only artifact view."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from inference import registry
from inference.models import ModelVersion

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("tests.inference.urls"),
    pytest.mark.usefixtures("isolated_media"),
]

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def versions(tmp_path):
    member = tmp_path / "MobileNetV2.keras"
    member.write_bytes(b"stand-in")
    plot = tmp_path / "confusion_ensemble.png"
    plot.write_bytes(PNG)
    report = tmp_path / "report.md"
    report.write_text("# report")
    common = {
        "members": [
            {"name": "MobileNetV2", "architecture": "MobileNetV2", "input_size": 72, "path": member}
        ],
        "preprocessing": {"input_size": 72},
        "class_names": ["Benign", "Early", "Pre", "Pro"],
    }
    first = registry.register_version(
        **common,
        metrics={
            "ensemble": {"macro_f1": 0.8123},
            "artifacts": {"confusion_matrix": "confusion_ensemble.png"},
        },
        extra_files={"confusion_ensemble.png": plot, "report.md": report},
        activate=True,
    )
    second = registry.register_version(**common, is_demo=True, notes="DEMO: untrained")
    return first, second


def _changelist():
    return reverse("admin:inference_modelversion_changelist")


def test_changelist_shows_versions_and_macro_f1(admin_client, versions):
    response = admin_client.get(_changelist())
    assert response.status_code == 200
    html = response.content.decode()
    assert "0.812" in html
    assert "Activate selected version" in html and "Retire selected versions" in html
    assert admin_client.get(_changelist() + "?status__exact=active").status_code == 200
    assert admin_client.get(_changelist() + "?is_demo__exact=1").status_code == 200


def test_no_add_or_delete(admin_client, versions):
    assert admin_client.get(reverse("admin:inference_modelversion_add")).status_code == 403
    first, _ = versions
    url = reverse("admin:inference_modelversion_delete", args=[first.pk])
    assert admin_client.get(url).status_code == 403


def test_detail_page_shows_members_metrics_and_plots(admin_client, versions):
    first, _ = versions
    response = admin_client.get(reverse("admin:inference_modelversion_change", args=[first.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert first.members[0]["sha256"] in html
    assert "macro_f1" in html and "&quot;input_size&quot;: 72" in html
    plot_url = reverse(
        "inference:version-artifact",
        kwargs={"version": first.version, "name": "confusion_ensemble.png"},
    )
    assert f'<img src="{plot_url}"' in html
    assert html.count('<img src="/models/') == 1  # the alias is not shown twice
    assert "confusion_ensemble.png (confusion_matrix)" in html
    assert "report.md" in html


def test_activate_action_needs_exactly_one(admin_client, versions):
    first, second = versions
    response = admin_client.post(
        _changelist(),
        {"action": "activate_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "Select exactly one version" in response.content.decode()
    second.refresh_from_db()
    assert second.status == "candidate"

    response = admin_client.post(
        _changelist(), {"action": "activate_selected", "_selected_action": [second.pk]}, follow=True
    )
    assert "DEMO version" in response.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("retired", "active")
    assert second.activated_by.username == "admin"


def test_retire_action(admin_client, versions):
    first, second = versions
    response = admin_client.post(
        _changelist(),
        {"action": "retire_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert "No version is active now" in response.content.decode()
    assert set(ModelVersion.objects.values_list("status", flat=True)) == {"retired"}


def test_artifact_view_serves_recorded_files_to_staff_only(
    client, admin_client, versions, clinician
):
    first, _ = versions

    def url(name):
        return reverse(
            "inference:version-artifact", kwargs={"version": first.version, "name": name}
        )

    response = admin_client.get(url("confusion_ensemble.png"))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == PNG
    assert response["X-Content-Type-Options"] == "nosniff"
    assert admin_client.get(url("confusion_matrix")).status_code == 200  # alias
    report = admin_client.get(url("report.md"))
    assert report.status_code == 200 and "attachment" in report["Content-Disposition"]
    assert admin_client.get(url("nope.png")).status_code == 404
    assert admin_client.get(url("../MobileNetV2.keras")).status_code == 404  # only recorded files

    assert client.get(url("confusion_ensemble.png")).status_code == 302  # anonymous → login
    client.force_login(clinician)  # not staff
    assert client.get(url("confusion_ensemble.png")).status_code == 302

    clinician.is_staff = True  # staff without the view permission
    clinician.save()
    client.force_login(clinician)
    assert client.get(url("confusion_ensemble.png")).status_code == 403
    clinician.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    clinician = type(clinician).objects.get(pk=clinician.pk)
    client.force_login(clinician)
    assert client.get(url("confusion_ensemble.png")).status_code == 200
