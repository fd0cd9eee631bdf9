"""``manage.py compare_runs RUN_A RUN_B``: do two runs of the same command agree?"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Compare two evaluated run folders (e.g. the same retrain command run twice): same "
        "data, profile and split, and every test figure within the stated tolerance. Exits "
        "with status 1 when they do not agree."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_a", type=Path)
        parser.add_argument("run_b", type=Path)
        parser.add_argument("--json", action="store_true", help="print the comparison as JSON")

    def handle(self, *args, **opts):
        from ml_training.reproducibility import compare

        try:
            result = compare(opts["run_a"], opts["run_b"])
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        if opts["json"]:
            self.stdout.write(json.dumps(result, indent=1))
        else:
            self.stdout.write(_text(result))
        if not result["agree"]:
            raise CommandError("the runs do not agree within the tolerance")


def _text(r: dict) -> str:
    lines = [
        f"same data {r['same_data']}, same profile {r['same_profile']}, same split "
        f"{r['same_split']}, same confusion matrices {r['same_confusion_matrices']}, same "
        f"out-of-domain flags {r['same_out_of_domain']}",
        f"largest difference of a test figure: {r['largest_difference']:.3g} "
        f"(tolerance {r['tolerance']:g})",
    ]
    ens = r["figures"]["ensemble"]
    lines.append(
        "ensemble macro-F1 "
        + " vs ".join(f"{ens['macro_f1'][k]:.4f}" for k in ("a", "b"))
        + ", accuracy "
        + " vs ".join(f"{ens['accuracy'][k]:.4f}" for k in ("a", "b"))
    )
    seconds = r["seconds"]
    if all(s is not None for s in seconds):
        lines.append("run time " + " vs ".join(f"{s / 60:.1f} min" for s in seconds))
    lines.append("AGREE" if r["agree"] else "DO NOT AGREE")
    return "\n".join(lines)
