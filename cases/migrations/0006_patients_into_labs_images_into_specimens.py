"""Data: each owner's patients go into a lab made for that owner; each patient's images go into
one specimen. The owner becomes the lab's hematologist, so they keep every clinical right they
had (register, upload, verify, and now sign out). The specimen gets an accession number that
says it was migrated, no collection date (it was never recorded) and the status ``open``."""

from django.db import migrations


def forwards(apps, schema_editor):
    Lab = apps.get_model("cases", "Lab")
    Membership = apps.get_model("cases", "Membership")
    Patient = apps.get_model("cases", "Patient")
    Specimen = apps.get_model("cases", "Specimen")
    SmearImage = apps.get_model("cases", "SmearImage")
    User = apps.get_model(*_user_model().split("."))

    owner_ids = Patient.objects.filter(lab__isnull=True).values_list("created_by", flat=True)
    for user in User.objects.filter(pk__in=set(owner_ids)).order_by("pk"):
        lab = Lab.objects.create(name=_free_name(Lab, f"{user.username}'s lab"))
        Membership.objects.create(lab=lab, user=user, role="hematologist")
        Patient.objects.filter(created_by=user, lab__isnull=True).update(lab=lab)

    with_loose_images = Patient.objects.filter(images__isnull=False, images__specimen__isnull=True)
    for patient in with_loose_images.distinct():
        specimen = Specimen.objects.create(
            lab_id=patient.lab_id,
            patient=patient,
            accession_number=_free_accession(Specimen, patient),
            specimen_type="peripheral_blood",
            clinical_question="",
            status="open",
            created_by_id=patient.created_by_id,
        )
        SmearImage.objects.filter(patient=patient, specimen__isnull=True).update(specimen=specimen)


def _user_model():
    from django.conf import settings

    return settings.AUTH_USER_MODEL


def _free_name(Lab, name):
    candidate, n = name[:120], 2
    while Lab.objects.filter(name=candidate).exists():
        candidate, n = f"{name[:110]} ({n})", n + 1
    return candidate


def _free_accession(Specimen, patient):
    candidate, n = f"MIGRATED-{patient.pk}", 2
    while Specimen.objects.filter(lab_id=patient.lab_id, accession_number=candidate).exists():
        candidate, n = f"MIGRATED-{patient.pk}-{n}", n + 1
    return candidate


class Migration(migrations.Migration):
    dependencies = [("cases", "0005_labs_specimens_review")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
