"""Migration 0006 on a database holding rows of the schema before labs and specimens (0003):
each owner's patients go into a lab made for that owner, with the owner as its hematologist,
and each patient's images into one specimen."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("cases", "0003_store_pixels_only")]
AFTER = [("cases", "0007_lab_and_specimen_required")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps(transactional_db):
    apps = _migrate(BEFORE)
    yield apps
    _migrate(executor_leaf_nodes())  # leave the schema as the other tests expect it


def executor_leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _image(apps, patient, user, n):
    return apps.get_model("cases", "SmearImage").objects.create(
        patient=patient,
        file=f"smears/{n:02d}/{n:064d}.png",
        original_name=f"field-{n}.png",
        sha256=f"{n:064d}",
        width=10,
        height=10,
        format="PNG",
        size_bytes=100,
        uploaded_by=user,
    )


def test_owners_become_labs_and_images_become_specimens(old_apps):
    User = old_apps.get_model("auth", "User")
    Patient = old_apps.get_model("cases", "Patient")
    ada = User.objects.create(username="ada")
    bob = User.objects.create(username="bob")
    idle = User.objects.create(username="idle")  # owns nothing: gets no lab
    a1 = Patient.objects.create(owner=ada, record_number="A-1", display_label="A one")
    a2 = Patient.objects.create(owner=ada, record_number="A-2", display_label="A two")
    b1 = Patient.objects.create(owner=bob, record_number="B-1", display_label="B one")
    images = [
        _image(old_apps, a1, ada, 1),
        _image(old_apps, a1, ada, 2),
        _image(old_apps, b1, bob, 3),
    ]

    apps = _migrate(AFTER)

    Lab = apps.get_model("cases", "Lab")
    Membership = apps.get_model("cases", "Membership")
    Patient = apps.get_model("cases", "Patient")
    Specimen = apps.get_model("cases", "Specimen")
    SmearImage = apps.get_model("cases", "SmearImage")
    assert sorted(Lab.objects.values_list("name", flat=True)) == ["ada's lab", "bob's lab"]
    assert set(Membership.objects.values_list("user__username", "lab__name", "role")) == {
        ("ada", "ada's lab", "hematologist"),
        ("bob", "bob's lab", "hematologist"),
    }
    assert not Membership.objects.filter(user_id=idle.pk).exists()
    labs = dict(Patient.objects.values_list("record_number", "lab__name"))
    assert labs == {"A-1": "ada's lab", "A-2": "ada's lab", "B-1": "bob's lab"}
    assert Patient.objects.get(pk=a2.pk).created_by_id == ada.pk
    # one specimen per patient with images (a2 has none), in the patient's lab, open
    specimens = {s.patient_id: s for s in Specimen.objects.all()}
    assert set(specimens) == {a1.pk, b1.pk}
    assert specimens[a1.pk].accession_number == f"MIGRATED-{a1.pk}"
    assert specimens[a1.pk].lab.name == "ada's lab"
    assert specimens[a1.pk].status == "open" and specimens[a1.pk].collection_date is None
    for image in images:
        migrated = SmearImage.objects.get(pk=image.pk)
        assert migrated.specimen.patient_id == image.patient_id
