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


METRICS = {
    "schema": "leukemia-portal/metrics/v1",
    "ensemble": {
        "accuracy": 0.9512,
        "macro_f1": 0.9433,
        "weighted_f1": 0.95,
        "cohen_kappa": 0.93,
        "roc_auc_macro": 0.99,
        "ece": 0.021,
        "collapsed": False,
        "ci95": {"accuracy": [0.921, 0.975], "macro_f1": [0.9102, 0.9688]},
        "per_class": {
            "Benign": {"precision": 0.91, "recall": 0.875, "f1": 0.892, "support": 40},
            "Early": {"precision": 0.97, "recall": 0.99, "f1": 0.98, "support": 98},
            "Pre": {"precision": 0.95, "recall": 0.96, "f1": 0.955, "support": 96},
            "Pro": {"precision": 1.0, "recall": 0.9876, "f1": 0.994, "support": 81},
        },
        "confusion_matrix": [[35, 3, 2, 0], [1, 97, 0, 0], [2, 2, 92, 0], [0, 0, 1, 80]],
        "reliability": [{"bin": [0, 0.1], "count": 1, "confidence": 0.05, "accuracy": 0.0}] * 400,
    },
    "members": {"MobileNetV2": {"accuracy": 0.93, "macro_f1": 0.92, "collapsed": True}},
    "test_set": {"name": "held-out test split", "images": 315},
    "review_threshold": {
        "value": 0.8731,
        "target_accuracy": 0.99,
        "target_met": True,
        "split": "validation",
        "validation_images": 320,
        "above_threshold": 251,
        "correct_above": 249,
        "accuracy_above": 249 / 251,
        "accuracy_above_ci95": [0.9714, 0.9978],
        "interval": "Wilson score, 95%",
        "coverage": 251 / 320,
        "below_threshold": 69,
        "accuracy_below": 0.8261,
    },
}


def test_detail_page_shows_metrics_and_the_review_threshold_as_tables(admin_client, tmp_path):
    member = tmp_path / "MobileNetV2.keras"
    member.write_bytes(b"stand-in")
    version = registry.register_version(
        members=[
            {"name": "MobileNetV2", "architecture": "MobileNetV2", "input_size": 72, "path": member}
        ],
        preprocessing={"input_size": 72},
        class_names=["Benign", "Early", "Pre", "Pro"],
        metrics=METRICS,
        review_threshold=0.8731,
    )

    response = admin_client.get(reverse("admin:inference_modelversion_change", args=[version.pk]))

    html = response.content.decode()
    main, raw = html.split(">Raw JSON</h2>")
    # the threshold with the validation figures it was chosen on
    assert "Review threshold" in main and "0.8731" in main
    assert "the validation split, 320 images" in main
    assert '0.992 <span class="lp-ci">(0.971–0.998)</span>' in main  # 249/251 and its interval
    assert "251 of 320 (78.4%)" in main and "0.826" in main and ": met" in main
    # headline metrics with their intervals, per class, confusion matrix: tables
    assert '0.943 <span class="lp-ci">(0.910–0.969)</span>' in main
    assert "held-out test split: 315 images" in main and "YES" in main  # the collapsed member
    benign = main.index('<tr><td>Benign</td><td class="lp-num">0.910</td><td class="lp-num">0.875')
    pro = main.index('<tr><td>Pro</td><td class="lp-num">1.000</td><td class="lp-num">0.988')
    assert benign < pro  # in the version's class order (jsonb does not keep the keys' order)
    assert '<tr><td>Early</td><td class="lp-num">1</td><td class="lp-num">97</td>' in main
    assert main.count('<table class="lp-table">') >= 4
    # the raw metrics are folded away, and nothing is styled inline (CSP)
    assert '"reliability"' not in main and "&quot;reliability&quot;" in raw
    assert html.count("<details>") >= 1 and raw.lstrip().startswith("</summary>")
    assert 'style="' not in main
    assert "admin/portal-admin.css" in html

    listing = admin_client.get(_changelist()).content.decode()
    assert "0.8731" in listing


def test_a_version_without_a_threshold_says_so(admin_client, versions):
    _, second = versions
    html = admin_client.get(
        reverse("admin:inference_modelversion_change", args=[second.pk])
    ).content.decode()
    assert "None recorded" in html
