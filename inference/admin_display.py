"""Compact HTML tables of a ModelVersion for its admin page (members, metrics, threshold).

Every value is escaped by ``format_html``; there is no inline style or script (the site's CSP
forbids them): the classes are styled by ``static/admin/portal-admin.css``
(``ADMIN_STYLESHEET``), which the admin classes list in their ``Media``. The metrics dict may come
from any version of the pipeline: what is missing is shown as "—" or left out. PostgreSQL's
``jsonb`` does not keep the order of keys, so rows follow the version's class and member names.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

ADMIN_STYLESHEET = "admin/portal-admin.css"
DASH = "—"
HEADLINE = (
    ("accuracy", "Accuracy"),
    ("macro_f1", "Macro-F1"),
    ("weighted_f1", "Weighted F1"),
    ("cohen_kappa", "Kappa"),
    ("roc_auc_macro", "ROC AUC"),
    ("ece", "ECE"),
)
PER_CLASS = (
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1", "F1"),
    ("support", "Support"),
    ("roc_auc", "ROC AUC"),
)


def number(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals (integers as they are), else "—"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return DASH
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN: an AUC of a class absent from the test set
        return DASH
    return f"{value:.{digits}f}"


def with_interval(value, interval, digits: int = 3) -> SafeString:
    """``0.912`` plus its interval ``0.880–0.940`` in a muted span, when there is one."""
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        return format_html(
            '{} <span class="lp-ci">({}–{})</span>',
            number(value, digits),
            number(interval[0], digits),
            number(interval[1], digits),
        )
    return format_html("{}", number(value, digits))


def table(
    head: Iterable[str],
    rows: Iterable[Iterable],
    *,
    caption: str = "",
    numeric: Container[int] | None = None,
) -> SafeString:
    """A ``<table class="lp-table">``; the ``numeric`` columns (default: all but the first) are
    right-aligned (``lp-num``). Cells are escaped unless already safe (``format_html`` output)."""

    def is_numeric(column: int) -> bool:
        return column in numeric if numeric is not None else column > 0

    def row_html(cells, tag):
        return format_html_join(
            "",
            "<{0}{1}>{2}</{0}>",
            (
                (tag, mark_safe(' class="lp-num"') if is_numeric(i) else "", cell)
                for i, cell in enumerate(cells)
            ),
        )

    body = format_html_join("", "<tr>{}</tr>", ((row_html(r, "td"),) for r in rows))
    return format_html(
        '<table class="lp-table">{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        format_html("<caption>{}</caption>", caption) if caption else "",
        row_html(head, "th"),
        body,
    )


def key_value_table(pairs: Iterable[tuple[str, object]]) -> SafeString:
    """Two columns, the keys as row headers."""
    rows = format_html_join(
        "", '<tr><th scope="row">{}</th><td>{}</td></tr>', ((k, v) for k, v in pairs)
    )
    return format_html('<table class="lp-table lp-pairs"><tbody>{}</tbody></table>', rows)


def compact_json(value) -> str:
    """A scalar as it is, anything else as one line of JSON (``{"method": "none"}``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def raw_json(value) -> SafeString:
    return format_html(
        '<pre class="lp-json">{}</pre>',
        json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str),
    )


# --- A ModelVersion's parts ---------------------------------------------------------------------


def members_table(members: list[Mapping]) -> SafeString:
    rows = [
        (
            m.get("name", DASH),
            m.get("architecture", DASH),
            number(m.get("input_size")),
            number(m.get("best_epoch")),
            number(m.get("val_macro_f1")),
            m.get("artifact", DASH),
            format_html('<code class="lp-hash">{}</code>', m.get("sha256", DASH)),
        )
        for m in members or []
    ]
    if not rows:
        return format_html("{}", DASH)
    return table(
        ("Name", "Architecture", "Input px", "Best epoch", "Val macro-F1", "Artifact", "sha256"),
        rows,
        numeric={2, 3, 4},
    )


def in_order(mapping: Mapping, names: Iterable[str]) -> list[tuple[str, object]]:
    """``mapping``'s items, those named in ``names`` first and in that order."""
    names = [n for n in names if n in mapping]
    return [(n, mapping[n]) for n in names] + [
        (k, v) for k, v in sorted(mapping.items()) if k not in names
    ]


def test_set_caption(metrics: Mapping, class_names: list[str]) -> str:
    ts = metrics.get("test_set") if isinstance(metrics.get("test_set"), Mapping) else {}
    if not ts:
        return "Test set not recorded"
    per_class = ts.get("per_class")
    counts = (
        " (" + ", ".join(f"{c} {n}" for c, n in in_order(per_class, class_names)) + ")"
        if isinstance(per_class, Mapping)
        else ""
    )
    return f"{ts.get('name') or 'Test set'}: {ts.get('images', DASH)} images{counts}"


def headline_table(
    metrics: Mapping, member_names: list[str], class_names: list[str]
) -> SafeString | None:
    """Voted ensemble and members: accuracy, macro-F1, ... with their 95% bootstrap intervals."""
    entries = []
    if isinstance(metrics.get("ensemble"), Mapping):
        entries.append(("Voted ensemble", metrics["ensemble"]))
    if isinstance(metrics.get("members"), Mapping):
        entries += [
            (n, m) for n, m in in_order(metrics["members"], member_names) if isinstance(m, Mapping)
        ]
    if not entries:
        return None
    rows = []
    for name, m in entries:
        ci = m.get("ci95") if isinstance(m.get("ci95"), Mapping) else {}
        cells = [name] + [with_interval(m.get(key), ci.get(key)) for key, _ in HEADLINE]
        collapsed = m.get("collapsed")
        cells.append(DASH if collapsed is None else ("YES" if collapsed else "no"))
        rows.append(cells)
    head = ["Model"] + [label for _, label in HEADLINE] + ["Collapsed"]
    caption = test_set_caption(metrics, class_names) + "; 95% bootstrap intervals in brackets"
    return table(head, rows, caption=caption, numeric=range(1, len(HEADLINE) + 1))


def per_class_table(metrics: Mapping, class_names: list[str]) -> SafeString | None:
    ensemble = metrics.get("ensemble") if isinstance(metrics.get("ensemble"), Mapping) else {}
    per_class = ensemble.get("per_class")
    if not isinstance(per_class, Mapping) or not per_class:
        return None
    rows = [
        [name] + [number(values.get(key)) for key, _ in PER_CLASS]
        for name, values in in_order(per_class, class_names)
        if isinstance(values, Mapping)
    ]
    head = ["Class"] + [label for _, label in PER_CLASS]
    return table(head, rows, caption="Voted ensemble, per class (test set)")


def confusion_table(metrics: Mapping, class_names: list[str]) -> SafeString | None:
    ensemble = metrics.get("ensemble") if isinstance(metrics.get("ensemble"), Mapping) else {}
    matrix = ensemble.get("confusion_matrix")
    if not isinstance(matrix, list) or len(matrix) != len(class_names):
        return None
    rows = [[name, *row] for name, row in zip(class_names, matrix, strict=True)]
    return table(
        ["True \\ predicted", *class_names],
        rows,
        caption="Voted ensemble: confusion matrix (rows true, columns predicted)",
    )


def review_threshold_table(value: float | None, figures: Mapping | None) -> SafeString:
    """The stored threshold and the validation figures it was chosen on."""
    if value is None and not figures:
        return format_html("{}", "None recorded (registered before review thresholds existed)")
    figures = figures if isinstance(figures, Mapping) else {}
    met = figures.get("target_met")
    pairs = [("Threshold (top mean probability)", number(value, 4))]
    if figures:
        n = figures.get("validation_images")
        below = figures.get("accuracy_below")
        pairs += [
            ("Chosen on", f"the {figures.get('split', DASH)} split, {number(n)} images"),
            (
                "Target accuracy above it",
                number(figures.get("target_accuracy"), 2)
                + ("" if met is None else (": met" if met else ": NOT met")),
            ),
            (
                "Accuracy above it",
                with_interval(figures.get("accuracy_above"), figures.get("accuracy_above_ci95")),
            ),
            (
                "Images above it (coverage)",
                f"{number(figures.get('above_threshold'))} of {number(n)} "
                f"({_percent(figures.get('coverage'))})",
            ),
            (
                "Accuracy below it",
                DASH if below is None else number(below),
            ),
            ("Interval", figures.get("interval", DASH)),
        ]
    return key_value_table(pairs)


def _percent(share) -> str:
    text = number(share * 100 if isinstance(share, (int, float)) else None, 1)
    return text if text == DASH else text + "%"
