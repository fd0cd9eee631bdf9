"""Model registry in the admin: read-only history, activation and retirement through the registry.

Versions are created by ``register_version`` (training, ``register_demo_model``), never by hand,
and never deleted here (predictions point at them): the admin lists, shows and changes status.
A version's page shows its members, review threshold and metrics as compact tables
(``inference.admin_display``); the raw metrics JSON is folded away at the bottom.
"""

from django.contrib import admin, messages
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from inference import admin_display as display
from inference import registry
from inference.artifacts import stored_artifacts
from inference.exceptions import InferenceError
from inference.models import ModelVersion
from inference.preprocessing import CONFIG_KEYS
from inference.views import INLINE_CONTENT_TYPES


def macro_f1(version: ModelVersion) -> float | None:
    """The voted ensemble's macro-F1 from a version's metrics, if recorded.

    Looks at ``metrics["ensemble"]["macro_f1"]`` (``ml_training.evaluate``), then
    ``metrics["macro_f1"]`` and scikit-learn's ``metrics["macro avg"]["f1-score"]``.
    """
    m = version.metrics or {}
    candidates = (
        (m.get("ensemble") or {}).get("macro_f1") if isinstance(m.get("ensemble"), dict) else None,
        m.get("macro_f1"),
        (m.get("macro avg") or {}).get("f1-score")
        if isinstance(m.get("macro avg"), dict)
        else None,
    )
    for value in candidates:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "name",
        "status",
        "is_demo",
        "macro_f1_display",
        "review_threshold",
        "member_count",
        "created_at",
        "activated_at",
    )
    list_display_links = ("version", "name")
    list_filter = ("status", "is_demo", "name")
    search_fields = ("name", "notes", "code_version", "data_fingerprint")
    ordering = ("-version",)
    actions = ("activate_selected", "retire_selected")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "version",
                    "name",
                    "status",
                    "is_demo",
                    "notes",
                    "created_at",
                    "activated_at",
                    "activated_by",
                )
            },
        ),
        ("Members", {"fields": ("members_table", "class_names_display", "serving_display")}),
        ("Review threshold", {"fields": ("review_threshold_display",)}),
        (
            "Out-of-domain detector and calibration",
            {"fields": ("ood_display", "calibration_display")},
        ),
        (
            "Evaluation",
            {
                "fields": (
                    "headline_display",
                    "per_class_display",
                    "confusion_display",
                    "artifacts_display",
                )
            },
        ),
        (
            "Reproducibility",
            {"fields": ("preprocessing_display", "data_fingerprint", "code_version")},
        ),
        # The whole metrics dict (per-member reliability tables, training histories...) runs to
        # thousands of lines: kept for the curious, folded away.
        (
            "Raw JSON",
            {"classes": ("collapse",), "fields": ("metrics_display", "preprocessing_json")},
        ),
    )
    # Every field shown is read-only: registration and the actions are the only writes.
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    class Media:
        css = {"all": (display.ADMIN_STYLESHEET,)}

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # --- columns and read-only fields ---------------------------------------------------------

    @admin.display(description="macro-F1")
    def macro_f1_display(self, obj):
        value = macro_f1(obj)
        return "—" if value is None else f"{value:.3f}"

    @admin.display(description="members")
    def member_count(self, obj):
        return len(obj.members or [])

    @admin.display(description="members")
    def members_table(self, obj):
        return display.members_table(obj.members)

    @admin.display(description="class names")
    def class_names_display(self, obj):
        return ", ".join(obj.class_names or [])

    @admin.display(description="review threshold")
    def review_threshold_display(self, obj):
        return display.review_threshold_table(
            obj.review_threshold, (obj.metrics or {}).get("review_threshold")
        )

    @admin.display(description="out-of-domain detector")
    def ood_display(self, obj):
        if not obj.has_ood_detector:
            return "None: this version's results are never flagged as outside its domain."
        return display.raw_json(obj.ood)

    @admin.display(description="serving model")
    def serving_display(self, obj):
        if not obj.serving:
            return (
                "None: workers load and fuse the members (a slower start). "
                f"manage.py build_serving_model --version {obj.version} adds one."
            )
        return display.raw_json(obj.serving)

    @admin.display(description="calibration")
    def calibration_display(self, obj):
        return display.raw_json(obj.calibration) if obj.calibration else "None (T = 1)."

    @admin.display(description="headline metrics")
    def headline_display(self, obj):
        return (
            display.headline_table(obj.metrics or {}, obj.member_names, obj.class_names or [])
            or "—"
        )

    @admin.display(description="per class")
    def per_class_display(self, obj):
        return display.per_class_table(obj.metrics or {}, obj.class_names or []) or "—"

    @admin.display(description="confusion matrix")
    def confusion_display(self, obj):
        return display.confusion_table(obj.metrics or {}, list(obj.class_names or [])) or "—"

    @admin.display(description="preprocessing")
    def preprocessing_display(self, obj):
        return display.key_value_table(
            (key, display.DASH if value is None else display.compact_json(value))
            for key, value in display.in_order(obj.preprocessing or {}, CONFIG_KEYS)
        )

    @admin.display(description="preprocessing")
    def preprocessing_json(self, obj):
        return display.raw_json(obj.preprocessing or {})

    @admin.display(description="metrics")
    def metrics_display(self, obj):
        metrics = {k: v for k, v in (obj.metrics or {}).items() if k != "artifacts"}
        if not metrics:
            return "—"
        return display.raw_json(metrics)

    @admin.display(description="plots and files")
    def artifacts_display(self, obj):
        artifacts = stored_artifacts(obj)
        if not artifacts:
            return "—"
        aliases: dict[str, list[str]] = {}
        for key, info in artifacts.items():
            if info.get("alias_of"):
                aliases.setdefault(info["alias_of"], []).append(key)
        parts = []
        for key, info in artifacts.items():
            if info.get("alias_of"):
                continue  # shown with the entry it points at
            artifact = info["artifact"]
            caption = key + (f" ({', '.join(aliases[key])})" if key in aliases else "")
            try:
                url = reverse(
                    "inference:version-artifact", kwargs={"version": obj.version, "name": key}
                )
            except NoReverseMatch:
                parts.append(
                    format_html(
                        "<p>{} ({}) — the file view is not routed: include "
                        "<code>inference.urls</code> in the URLconf.</p>",
                        key,
                        artifact,
                    )
                )
                continue
            if info.get("content_type") in INLINE_CONTENT_TYPES:
                parts.append(
                    format_html(
                        '<figure class="lp-plot"><a href="{0}"><img src="{0}" alt="{1}"></a>'
                        "<figcaption>{1}</figcaption></figure>",
                        url,
                        caption,
                    )
                )
            else:
                parts.append(
                    format_html(
                        '<p><a href="{}">{}</a> ({} bytes)</p>', url, key, info.get("bytes")
                    )
                )
        return format_html(
            '<div class="lp-plots">{}</div>',
            mark_safe("".join(str(p) for p in parts)),  # noqa: S308 - every part is escaped
        )

    # --- actions --------------------------------------------------------------------------

    @admin.action(description="Activate selected version", permissions=["change"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one version to activate.", level=messages.ERROR
            )
            return
        version = queryset.get()
        try:
            version = registry.activate_version(version, user=request.user)
        except InferenceError as exc:
            self.message_user(request, f"Not activated: {exc}", level=messages.ERROR)
            return
        level = messages.WARNING if version.is_demo else messages.SUCCESS
        suffix = (
            " It is a DEMO version: its predictions are meaningless." if version.is_demo else ""
        )
        self.message_user(request, f"{version} is now active.{suffix}", level=level)

    @admin.action(description="Retire selected versions", permissions=["change"])
    def retire_selected(self, request, queryset):
        versions = list(queryset)
        was_active = any(v.status == ModelVersion.Status.ACTIVE for v in versions)
        retired = [registry.retire_version(v, user=request.user) for v in versions]
        text = f"Retired {len(retired)} version(s)."
        if was_active:
            text += " No version is active now: new images wait until one is activated."
        self.message_user(request, text, level=messages.WARNING if was_active else messages.SUCCESS)
