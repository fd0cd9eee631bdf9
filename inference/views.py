"""Staff-only access to the files stored with a model version (evaluation plots, reports).

Media is never public: a file is served only when it is recorded in the version's
``metrics["artifacts"]`` and the user is active staff with the view permission on versions.
"""

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from inference import artifacts
from inference.models import ModelVersion

# Shown inline (<img> in the admin); anything else is downloaded as an attachment.
INLINE_CONTENT_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"}


@require_GET
@staff_member_required
def version_artifact(request, version: int, name: str):
    if not request.user.has_perm("inference.view_modelversion"):
        raise PermissionDenied
    row = get_object_or_404(ModelVersion, version=version)
    info = artifacts.stored_artifacts(row).get(name)
    if info is None:
        raise Http404("no such artifact")
    try:
        fh = default_storage.open(info["artifact"], "rb")
    except (FileNotFoundError, OSError):
        raise Http404("artifact file missing from storage") from None
    content_type = info.get("content_type") or "application/octet-stream"
    inline = content_type in INLINE_CONTENT_TYPES
    response = FileResponse(
        fh,
        content_type=content_type,
        as_attachment=not inline,
        filename=info["artifact"].rsplit("/", 1)[-1],
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    # An SVG opened directly must not run scripts.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response
