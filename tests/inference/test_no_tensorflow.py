"""The web process must never import TensorFlow or Keras (checked in a fresh interpreter)."""

from tests.fresh_python import run_fresh_python

SCRIPT = r"""
import importlib, json, sys
import django
django.setup()

required = [
    "inference.models", "inference.voting", "inference.preprocessing", "inference.registry",
    "inference.architectures", "inference.demo", "inference.benchmark", "inference.signals",
    "inference.exceptions", "inference.admin", "inference.views", "inference.urls",
    "inference.management.commands.register_demo_model",
    "inference.management.commands.bench_inference",
]
optional = [
    "cases.models", "cases.services", "cases.selectors", "cases.forms", "cases.views",
    "cases.apis", "cases.urls", "cases.api_urls", "cases.admin", "cases.signals",
    "cases.tasks", "leukemia_portal.celery", "leukemia_portal.wsgi",
]
for name in required:
    importlib.import_module(name)
skipped = {}
for name in optional:
    try:
        importlib.import_module(name)
    except Exception as exc:  # another app's module that does not exist yet or is broken
        skipped[name] = repr(exc)
try:
    from django.contrib import admin
    admin.autodiscover()
    from django.urls import get_resolver
    get_resolver().url_patterns  # the whole URLconf, as the web process loads it
except Exception as exc:
    skipped["ROOT_URLCONF"] = repr(exc)
heavy = ("tensorflow", "keras", "tf_keras")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({"loaded": loaded, "skipped": skipped}))
"""


def test_web_process_imports_no_tensorflow():
    report = run_fresh_python(
        SCRIPT, timeout=120, DJANGO_SETTINGS_MODULE="leukemia_portal.settings.test"
    )
    assert report["loaded"] == [], f"TensorFlow/Keras imported by the web process: {report}"
    if report["skipped"]:
        print("modules not checked:", report["skipped"])
