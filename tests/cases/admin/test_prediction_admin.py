"""The prediction history in the admin: read-only, filterable, searchable."""

import datetime
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from cases import services
from cases.models import AuditEvent, MemberVote, Prediction
from tests.factories import home_lab, make_image, make_model_version, make_prediction

CHANGELIST = reverse("admin:cases_prediction_changelist")
# Two votes for Pre, one each for Pro, Early and Benign: a split; the mean for Pre is 0.46.
SPLIT_PRE = [
    {"Benign": 0.05, "Early": 0.05, "Pre": 0.80, "Pro": 0.10},
    {"Benign": 0.10, "Early": 0.10, "Pre": 0.60, "Pro": 0.20},
    {"Benign": 0.05, "Early": 0.05, "Pre": 0.35, "Pro": 0.55},
    {"Benign": 0.05, "Early": 0.60, "Pre": 0.30, "Pro": 0.05},
    {"Benign": 0.60, "Early": 0.05, "Pre": 0.25, "Pro": 0.10},
]


@pytest.fixture
def history(patient, clinician, other_clinician):
    v1, v2 = make_model_version(is_demo=False), make_model_version(is_demo=True)
    other = services.patient_create(
        lab=home_lab(other_clinician),
        created_by=other_clinician,
        record_number="MRN-ADM-2",
        display_label="Admin case 2",
    )
    first = make_image(patient, clinician, seed=111)
    return {
        "v1": v1,
        "v2": v2,
        "pro": make_prediction(first, version=v1, member_labels=["Pro"] * 4 + ["Pre"]),
        "split": make_prediction(first, version=v2, member_probabilities=SPLIT_PRE),
        "benign": make_prediction(
            make_image(other, other_clinician, seed=112),
            version=v2,
            member_labels=["Benign"] * 5,
        ),
    }


def listed(client, **query):
    response = client.get(CHANGELIST, query)
    assert response.status_code == 200
    return {p.pk for p in response.context["cl"].result_list}


def test_the_changelist_shows_the_history(admin_client_logged_in, history):
    response = admin_client_logged_in.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "MRN-ADM-1" in html and "MRN-ADM-2" in html  # patient record number column
    assert "4/5" in html and "2/5" in html and "5/5" in html  # votes / member_count
    assert f"v{history['v2'].version} DEMO" in html
    assert {p.pk for p in response.context["cl"].result_list} == {
        history[k].pk for k in ("pro", "split", "benign")
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"label": "Pro"}, {"pro"}),
        ({"agreement__exact": "split"}, {"split"}),
        ({"agreement__exact": "unanimous"}, {"benign"}),
        ({"model_version__id__exact": "v1"}, {"pro"}),
        ({"model_version__id__exact": "v2"}, {"split", "benign"}),
        ({"q": "MRN-ADM-2"}, {"benign"}),
        ({"q": "MRN-ADM-1", "label": "Pre"}, {"split"}),
    ],
)
def test_filters_and_search(admin_client_logged_in, history, query, expected):
    query = {k: history[v].pk if k == "model_version__id__exact" else v for k, v in query.items()}
    assert listed(admin_client_logged_in, **query) == {history[k].pk for k in expected}


def test_created_date_filter_and_hierarchy(admin_client_logged_in, history):
    old = history["pro"]
    Prediction.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=400)
    )
    old.refresh_from_db()
    today = timezone.localdate()

    assert listed(
        admin_client_logged_in, created_at__year=today.year, created_at__month=today.month
    ) == {history["split"].pk, history["benign"].pk}
    assert listed(admin_client_logged_in, created_at__year=old.created_at.year) >= {old.pk}
    since = str(timezone.now() - datetime.timedelta(days=7))  # as the "Past 7 days" link
    assert listed(admin_client_logged_in, created_at__gte=since) == {
        history["split"].pk,
        history["benign"].pk,
    }


def test_predictions_cannot_be_added_changed_or_deleted(admin_client_logged_in, history):
    prediction = history["pro"]
    change_url = reverse("admin:cases_prediction_change", args=[prediction.pk])

    assert admin_client_logged_in.get(reverse("admin:cases_prediction_add")).status_code == 403
    view = admin_client_logged_in.get(change_url)
    assert view.status_code == 200  # view only
    assert 'name="_save"' not in view.content.decode()
    edit = admin_client_logged_in.post(change_url, {"label": "Benign", "votes": 5})
    assert edit.status_code == 403
    delete_url = reverse("admin:cases_prediction_delete", args=[prediction.pk])
    assert admin_client_logged_in.post(delete_url, {"post": "yes"}).status_code == 403
    bulk = admin_client_logged_in.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [prediction.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    prediction.refresh_from_db()
    assert (prediction.label, prediction.votes) == ("Pro", 4)
    assert Prediction.objects.count() == 3


def test_the_model_admin_and_inline_deny_every_write(rf, admin_user, history):
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[Prediction]
    prediction = history["pro"]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, prediction)
    assert not model_admin.has_delete_permission(request, prediction)
    assert model_admin.has_view_permission(request, prediction)
    assert "delete_selected" not in model_admin.get_actions(request)
    [inline] = model_admin.get_inline_instances(request, prediction)
    assert inline.model is MemberVote
    assert not inline.has_add_permission(request, prediction)
    assert not inline.has_change_permission(request, prediction)
    assert not inline.has_delete_permission(request, prediction)


def test_the_detail_page_lists_the_member_votes(admin_client_logged_in, history):
    prediction = history["split"]
    response = admin_client_logged_in.get(
        reverse("admin:cases_prediction_change", args=[prediction.pk])
    )
    html = response.content.decode()
    for vote in prediction.member_votes.all():
        assert vote.member_name in html
    # the members' mean for the voted class, in the probability table
    assert '<td class="lp-num"><span class="lp-vote">0.460</span></td>' in html


def test_staff_with_the_view_permission_only_can_read_the_history(
    client, django_user_model, history
):
    staff = django_user_model.objects.create_user(username="auditor", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_prediction"))
    client.force_login(staff)

    assert client.get(CHANGELIST).status_code == 200
    assert client.get(reverse("admin:cases_prediction_add")).status_code == 403
    written = set(AuditEvent.objects.filter(acting_user=staff).values_list("event_type", flat=True))
    assert written == {  # the sign-in and the read of the history; nothing else
        AuditEvent.EventType.LOGIN_SUCCEEDED,
        AuditEvent.EventType.PREDICTION_LIST_VIEWED,
    }


def _field(html, name):
    """The read-only field ``name`` of a change page (its ``form-row`` div's inner HTML)."""
    match = re.search(
        rf'<div class="form-row field-{name}">(.*?)</div>\s*</div>\s*</div>', html, re.S
    )
    assert match, name
    return match.group(1)


def test_the_detail_page_shows_probabilities_and_votes_as_a_table(admin_client_logged_in, history):
    prediction = history["split"]
    html = admin_client_logged_in.get(
        reverse("admin:cases_prediction_change", args=[prediction.pk])
    ).content.decode()

    table = _field(html, "probabilities_table")
    assert '<table class="lp-table">' in table and "<pre" not in table
    members = [v.member_name for v in prediction.member_votes.all()]
    assert "<th>Class</th>" in table and "Mean" in table
    for name in members:
        assert f'<th class="lp-num">{name}</th>' in table
    # one row per class: the class, its mean, each member's probability (its vote in bold)
    pre_row = re.search(r"<tr><td><span class=\"lp-vote\">Pre</span></td>(.*?)</tr>", table)
    assert pre_row, table
    cells = re.findall(r'<td class="lp-num">(.*?)</td>', pre_row.group(1))
    assert cells == [
        '<span class="lp-vote">0.460</span>',
        '<span class="lp-vote">0.800</span>',
        '<span class="lp-vote">0.600</span>',
        "0.350",
        "0.300",
        "0.250",
    ]
    assert "<td>vote</td>" in table and "Pre (2/5)" in table
    assert "<pre" not in _field(html, "probabilities_table")
    assert "lp-table" in html and "admin/portal-admin.css" in html  # the stylesheet, no inline
    assert 'style="' not in table


def test_the_detail_page_says_whether_the_result_is_flagged_for_review(
    admin_client_logged_in, history
):
    def review(key):
        url = reverse("admin:cases_prediction_change", args=[history[key].pk])
        return _field(admin_client_logged_in.get(url).content.decode(), "review")

    assert "No review threshold is recorded" in review("split")
    type(history["v2"]).objects.filter(pk=history["v2"].pk).update(review_threshold=0.5)
    type(history["v1"]).objects.filter(pk=history["v1"].pk).update(review_threshold=0.5)
    flagged = review("split")  # a top mean probability of 0.46
    assert "Flagged for review" in flagged and "0.4600" in flagged and "0.5000" in flagged
    assert "Not flagged" in review("benign")


def test_search_finds_a_prediction_by_the_images_file_name(
    admin_client_logged_in, history, patient, clinician
):
    named = make_prediction(
        make_image(patient, clinician, seed=113, name="Im042_Pro-B_scan.png"),
        version=history["v1"],
    )
    assert listed(admin_client_logged_in, q="Im042_Pro") == {named.pk}
    assert listed(admin_client_logged_in, q="Im042_pro-b_scan.png") == {named.pk}


def test_long_file_names_are_cut_in_the_changelist_with_the_full_name_on_hover(
    admin_client_logged_in, history, patient, clinician
):
    long_name = "a-very-long-original-file-name-" * 6 + ".png"
    make_prediction(make_image(patient, clinician, seed=114, name=long_name))

    html = admin_client_logged_in.get(CHANGELIST).content.decode()

    assert f'<span class="lp-truncate" title="{long_name}">{long_name}</span>' in html
    assert "admin/portal-admin.css" in html
