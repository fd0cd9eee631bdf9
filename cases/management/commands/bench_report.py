"""Time the case report PDF of an N-image case, and optionally keep it (and PNGs of its pages).

Builds a case through the real services (lab, patient, specimen, uploads, verdicts, sign-off),
inside a transaction that is rolled back and a temporary media folder, so nothing stays behind.
The predictions are synthetic (voted from made-up member probabilities by the real
``inference.voting.vote``) and belong to a model version row marked DEMO, so the report says in
large type that its labels are not predictions. Images come from ``--data-dir`` (any folder of
smear images, e.g. the ALL data set) or are drawn here.
"""

import json
import statistics
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone
from PIL import Image

from cases import services
from cases.models import AuditEvent, Membership, SmearImage
from cases.reports.context import report_context
from cases.reports.pdf import render_report_pdf
from inference.models import ModelVersion
from inference.voting import vote

CLASSES = ["Benign", "Early", "Pre", "Pro"]
MEMBERS = ["ResNet50", "VGG16", "MobileNetV2", "Xception", "NASNetLarge"]


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = "Render the PDF report of a synthetic N-image case and print how long it takes."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=50)
        parser.add_argument("--repeats", type=int, default=3, help="Timed renders (median).")
        parser.add_argument("--data-dir", type=Path, help="Use these smear images (any folder).")
        parser.add_argument("--pdf", type=Path, help="Keep the signed PDF here.")
        parser.add_argument("--png-dir", type=Path, help="Write its first pages as PNG here.")
        parser.add_argument("--png-pages", type=int, default=2)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        if opts["images"] < 1 or opts["repeats"] < 1:
            raise CommandError("--images and --repeats must be at least 1.")
        files = list(_image_files(opts["data_dir"], opts["images"]))
        with (
            tempfile.TemporaryDirectory() as media,
            override_settings(
                MEDIA_ROOT=media, STORAGES={**settings.STORAGES, "default": _local_storage(media)}
            ),
        ):
            try:
                with transaction.atomic():
                    figures, pdf = _bench(files, opts["repeats"])
                    raise _Rollback
            except _Rollback:
                pass
        if opts["pdf"]:
            opts["pdf"].write_bytes(pdf)
        if opts["png_dir"]:
            figures["png"] = _pngs(pdf, opts["png_dir"], opts["png_pages"])
        if opts["json"]:
            self.stdout.write(json.dumps(figures))
            return
        self.stdout.write(
            f"{figures['images']}-image case: {figures['pages']} pages, {figures['bytes']} bytes. "
            f"Signed PDF rendered in {figures['signed_render_s']:.2f} s; draft renders "
            f"(context + PDF) median {figures['render_median_s']:.2f} s over {opts['repeats']}."
        )


def _local_storage(folder: str) -> dict:
    """A throw-away filesystem storage: whatever ``default`` is here (a folder, S3), the case's
    files go to a temporary folder that disappears with the command."""
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": folder},
    }


def _bench(files: list[tuple[str, bytes]], repeats: int) -> tuple[dict, bytes]:
    user = get_user_model().objects.create_user(
        username=f"bench-{time.time_ns()}", first_name="Ada", last_name="Benchmark"
    )
    lab, _ = services.lab_ensure(name=f"Synthetic benchmark laboratory {time.time_ns()}")
    services.membership_set(lab=lab, user=user, role=Membership.Role.HEMATOLOGIST)
    patient = services.patient_create(
        lab=lab, created_by=user, record_number="BENCH-0001", display_label="Patient B-50"
    )
    specimen = services.specimen_create(
        patient=patient,
        created_by=user,
        accession_number="BENCH-0001",
        collection_date=timezone.localdate(),
        clinical_question="Synthetic case for the report benchmark.",
    )
    last = ModelVersion.objects.order_by("-version").values_list("version", flat=True).first()
    version = ModelVersion.objects.create(
        version=(last or 0) + 1,
        name="bench-synthetic",
        is_demo=True,
        members=[{"name": m, "architecture": m} for m in MEMBERS],
        class_names=CLASSES,
    )
    rng = np.random.default_rng(0)
    for i, (name, content) in enumerate(files):
        image = services.smear_image_upload(
            specimen=specimen, file=SimpleUploadedFile(name, content), uploaded_by=user
        )
        _classify_and_verify(image, version, user, rng, i)
    sign_off = services.specimen_sign_out(
        specimen=specimen, user=user, interpretation="Pre", comment="Synthetic benchmark case."
    )
    report = sign_off.report
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        render_report_pdf(report_context(specimen=specimen))
        timings.append(time.perf_counter() - started)
    with report.file.open("rb") as handle:
        pdf = handle.read()
    return {
        "images": len(files),
        "pages": report.pages,
        "bytes": report.size,
        "signed_render_s": round(report.render_seconds, 3),
        "render_s": [round(t, 3) for t in timings],
        "render_median_s": round(statistics.median(timings), 3),
    }, pdf


def _classify_and_verify(image, version, user, rng, i: int) -> None:
    true = CLASSES[i % len(CLASSES)]
    rows = []
    for _ in MEMBERS:
        label = true if rng.random() < 0.8 else CLASSES[rng.integers(len(CLASSES))]
        row = rng.dirichlet(np.ones(len(CLASSES))) * 0.4
        row[CLASSES.index(label)] += 0.6
        rows.append(row.tolist())
    result = vote(rows, CLASSES, MEMBERS, inference_ms=200.0)
    services.prediction_record(image=image, version=version, result=result)
    services.image_transition(
        image=image,
        to=SmearImage.Status.DONE,
        event_type=AuditEvent.EventType.IMAGE_CLASSIFIED,
        new={"label": result.label, "synthetic": True},
    )
    if i % 17 == 5:
        services.verdict_record(
            image=image, user=user, kind="not_assessable", reason="poor_quality"
        )
    elif result.label != true:
        services.verdict_record(
            image=image, user=user, kind="reclassify", label=true, reason="Nuclear chromatin"
        )
    else:
        services.verdict_record(image=image, user=user, kind="confirm")


def _image_files(data_dir: Path | None, n: int):
    if data_dir is not None:
        found = sorted(
            p for p in data_dir.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        )
        if len(found) < n:
            raise CommandError(f"{data_dir} holds {len(found)} images; --images asks for {n}.")
        step = len(found) // n
        for p in found[::step][:n]:
            yield p.name, p.read_bytes()
        return
    rng = np.random.default_rng(1)
    for i in range(n):
        yield f"synthetic-{i + 1:03d}.png", _drawn_smear(rng)


def _drawn_smear(rng) -> bytes:
    """A pink field with a few purple nuclei: enough to look like a smear in a thumbnail."""
    h = w = 256
    yy, xx = np.mgrid[:h, :w]
    field = np.empty((h, w, 3), np.float32)
    field[:] = (236, 200, 210)
    for _ in range(int(rng.integers(3, 7))):
        cy, cx, r = rng.integers(30, 226), rng.integers(30, 226), rng.integers(14, 30)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        field[mask] = (110 + rng.integers(0, 40), 60, 150 + rng.integers(0, 40))
    field += rng.normal(0, 6, field.shape)
    buffer = BytesIO()
    Image.fromarray(field.clip(0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _pngs(pdf: bytes, folder: Path, pages: int) -> list[str]:
    try:
        import pypdfium2
    except ImportError as exc:
        raise CommandError(
            "--png-dir needs pypdfium2 (pip install -r requirements-dev.txt)."
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    document = pypdfium2.PdfDocument(pdf)
    written = []
    for index in range(min(pages, len(document))):
        path = folder / f"report-page-{index + 1}.png"
        document[index].render(scale=1.5).to_pil().save(path)
        written.append(str(path))
    return written
