"""``export_reviewed``: a lab's verified images as a class-folder tree that the training
pipeline reads as it is."""

import csv

import pytest
from django.core.management import CommandError, call_command

from cases import services
from cases.models import AuditEvent
from ml_training.data import build_manifest
from tests.factories import make_image, make_patient, make_prediction


@pytest.fixture
def reviewed(clinician, other_clinician):
    patient = make_patient(clinician, "EXP-1", "Export case")
    images = {}
    for seed, name in enumerate(["confirmed", "reclassified", "changed", "na", "open"]):
        images[name] = make_image(patient, clinician, seed=700 + seed)
        make_prediction(images[name], member_labels=["Pro"] * 5)
    services.verdict_record(image=images["confirmed"], user=clinician, kind="confirm")
    services.verdict_record(
        image=images["reclassified"], user=clinician, kind="reclassify", label="Pre", reason="r"
    )
    services.verdict_record(image=images["changed"], user=clinician, kind="confirm")
    services.verdict_record(  # the latest verdict counts: Early, not Pro
        image=images["changed"], user=clinician, kind="reclassify", label="Early", reason="r"
    )
    services.verdict_record(
        image=images["na"], user=clinician, kind="not_assessable", reason="poor_quality"
    )
    theirs = make_patient(other_clinician, "EXP-2", "Other lab")
    other = make_image(theirs, other_clinician, seed=710)
    make_prediction(other, member_labels=["Pro"] * 5)
    services.verdict_record(image=other, user=other_clinician, kind="confirm")
    return images


def test_the_export_is_a_class_tree_the_training_pipeline_reads(tmp_path, reviewed, lab):
    out = tmp_path / "reviewed"
    call_command("export_reviewed", "--lab", lab.name, "--to", str(out))

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    expected = {
        f"Pro/{reviewed['confirmed'].sha256}.png",
        f"Pre/{reviewed['reclassified'].sha256}.png",
        f"Early/{reviewed['changed'].sha256}.png",
    }
    assert set(files) == expected  # not assessable, unreviewed and the other lab's stay out
    with open(out / "reviewed-manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {
        (r["file"], r["verified_label"], r["model_label"], r["reviewer_role"]) for r in rows
    } == {(f, f.split("/")[0], "Pro", "hematologist") for f in expected}
    manifest = build_manifest(out)  # what ``retrain --data-dir`` does first
    assert sorted(e.label for e in manifest.entries) == ["Early", "Pre", "Pro"]
    event = AuditEvent.objects.get(event_type=AuditEvent.EventType.REVIEWED_EXPORTED)
    assert (event.lab, event.extra_data["new"]["images"]) == (lab, 3)


def test_a_second_export_needs_replace_and_leaves_no_stale_class(
    tmp_path, reviewed, lab, clinician
):
    out = tmp_path / "reviewed"
    call_command("export_reviewed", "--lab", lab.name, "--to", str(out))
    with pytest.raises(CommandError, match="--replace"):
        call_command("export_reviewed", "--lab", lab.name, "--to", str(out))
    services.verdict_record(
        image=reviewed["confirmed"], user=clinician, kind="reclassify", label="Benign", reason="r"
    )
    call_command("export_reviewed", "--lab", str(lab.pk), "--to", str(out), "--replace")
    assert not (out / "Pro").exists()
    assert (out / "Benign" / f"{reviewed['confirmed'].sha256}.png").exists()


def test_a_folder_with_other_content_is_refused(tmp_path, lab):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CommandError, match="not empty"):
        call_command("export_reviewed", "--lab", lab.name, "--to", str(tmp_path))
    with pytest.raises(CommandError, match="No lab"):
        call_command("export_reviewed", "--lab", "Nowhere", "--to", str(tmp_path / "x"))


def test_the_same_pixels_verified_twice_are_one_file_or_left_out_when_they_disagree(
    tmp_path, clinician, lab
):
    """Uploaded for two patients, the same pixels are two images: verified alike they were two
    manifest rows for one file; verified as Pre and Pro they sat in both class folders."""
    from cases.services.exports import reviewed_export

    def verified(record, seed, label):
        image = make_image(make_patient(clinician, record, record), clinician, seed=seed)
        make_prediction(image, member_labels=["Pro"] * 5)
        kind = {"kind": "confirm"} if label == "Pro" else {"kind": "reclassify", "label": label}
        services.verdict_record(image=image, user=clinician, reason="r", **kind)
        return image

    same = [verified("DUP-1", 720, "Pro"), verified("DUP-2", 720, "Pro")]
    split = [verified("DUP-3", 721, "Pre"), verified("DUP-4", 721, "Pro")]
    assert same[0].sha256 == same[1].sha256 and split[0].sha256 == split[1].sha256

    report = reviewed_export(lab=lab, to=tmp_path / "out")

    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in tmp_path.rglob("*.png"))
    assert files == [f"Pro/{same[0].sha256}.png"]
    assert (report.images, report.per_class, report.conflicts) == (
        1,
        {"Pro": 1},
        (split[0].sha256,),
    )
