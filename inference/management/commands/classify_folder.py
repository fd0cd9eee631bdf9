"""``manage.py classify_folder DIR``: the serving path on every image of a folder."""

import json
from pathlib import Path

from django.core.management.base import CommandError

from inference.management.base import VersionCommand
from inference.models import ModelVersion


class Command(VersionCommand):
    help = (
        "Classify every image under a folder (labelled or not) with a registered version "
        "(default: the active one) exactly as the worker does, out-of-domain flag included. "
        "Prints a summary, or one JSON object with --json."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)
        parser.add_argument("--version", type=int, dest="model_version", help="version number")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, folder, model_version, **opts):
        from inference.artifacts import get_active_version
        from inference.engine import EnsembleEngine
        from inference.exceptions import ArtifactIntegrityError
        from inference.folders import classify_folder

        if model_version is not None:
            version = ModelVersion.objects.filter(version=model_version).first()
            if version is None:
                raise CommandError(f"no model version {model_version}")
        else:
            version = get_active_version()
            if version is None:
                raise CommandError("no active model version; pass --version N")
        try:
            engine = EnsembleEngine.from_version(version)
            report = classify_folder(
                engine, folder, progress=not opts["json"] and opts["verbosity"] >= 1
            )
        except (FileNotFoundError, ArtifactIntegrityError) as exc:
            raise CommandError(str(exc)) from exc
        if opts["json"]:
            self.stdout.write(json.dumps(report, indent=1))
            return
        self.stdout.write(_summary(report, version))


def _summary(report: dict, version) -> str:
    n, k = report["images"], report["out_of_domain"]
    lines = [f"{version}: {n} images classified, {k} outside the model's domain"]
    if n:
        lines[0] += f" ({k / n:.1%})"
    if not report["detector"]:
        lines.append("This version has no out-of-domain detector: no image can be flagged.")
    if report["unreadable"]:
        lines.append(f"{report['unreadable']} files could not be read:")
        lines += [f"  {r['file']}: {r['error']}" for r in report["results"] if "error" in r]
    counts: dict[str, int] = {}
    for r in report["results"]:
        if "error" not in r:
            key = r["label"] or "outside the domain"
            counts[key] = counts.get(key, 0) + 1
    lines += [f"  {label}: {count}" for label, count in sorted(counts.items())]
    return "\n".join(lines)
