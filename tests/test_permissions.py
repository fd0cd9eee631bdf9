"""Who may open what, and who may do what: every URL of the clinician pages (``cases``) and of
the API (``api``), for every kind of user.

The URLs are enumerated from the resolver, so a URL added later is covered without touching
this file. The users: anonymous; another lab's hematologist (``stranger``); the lab's
technologist, hematologist and manager; a staff admin. The objects (a lab, its patient, a
specimen, an image with its prediction) belong to Lab A.

* anonymous: refused (pages: 302 to the login page; API: 401 with WWW-Authenticate);
* a stranger: 404 for every object of the lab (never 403: existence must not leak); lists do not
  show the lab's objects;
* members and staff may read (GET answers 2xx/3xx or 405 for a POST-only action, except the
  role-restricted reads in ``GET_REFUSED``), and every GET that shows patient data records a read
  event naming them;
* writes (POST, PUT, PATCH, DELETE): ``WRITERS`` says which roles may; any other role gets 403
  (a role refusal is never a 404: the object is visible to them) and nothing is written but
  read and refusal events. A writer sending an empty body gets past the role check (never 401,
  403 or 404). A URL with a write method that ``WRITERS`` does not list fails the test.
* a GET writes nothing but read events, and a refused request writes nothing at all (a
  refused sign-off writes its audit event).

URL kwargs are filled with the lab's objects. A kwarg name this file does not know makes the
test fail: teach ``OBJECT_KWARGS`` (or ``PK_SEGMENTS``) which object it names. A URL that must
be public goes in ``PUBLIC`` with a test of its own.
"""

import json
import re
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.shortcuts import resolve_url
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from cases import services
from cases.models import AuditEvent, SaliencyMap
from tests.factories import make_image, make_prediction
from tests.images import png_bytes, smear_like_array

NAMESPACES = ("cases", "api")
PUBLIC = {"api:token-obtain"}  # anonymous POST with username and password: test_token_endpoint
METHODS = ("get", "post", "put", "patch", "delete")

# kwarg name -> the owner's object it names
OBJECT_KWARGS = {
    "patient_pk": "patient",
    "patient_id": "patient",
    "image_pk": "image",
    "image_id": "image",
    "prediction_pk": "prediction",
    "prediction_id": "prediction",
    "map_pk": "saliency_map",
}
# for a bare ``pk``: the path segment before it says which object it is
PK_SEGMENTS = {
    "patients": "patient",
    "specimens": "specimen",
    "images": "image",
    "predictions": "prediction",
    "labs": "lab",
}

ROLES = ("technologist", "hematologist", "manager", "staff")
CLINICAL = {"technologist", "hematologist"}
# (endpoint, method) -> the roles that may; every other role gets 403.
WRITERS = {
    ("api:token-revoke", "post"): set(ROLES),
    ("api:patient-list", "post"): CLINICAL,
    ("api:patient-detail", "patch"): CLINICAL,
    ("api:patient-specimens", "post"): CLINICAL,
    ("api:specimen-detail", "patch"): CLINICAL,
    ("api:specimen-images", "post"): CLINICAL,
    ("api:specimen-sign-off", "post"): {"hematologist"},
    ("api:specimen-amend", "post"): {"hematologist"},
    ("api:image-verdicts", "post"): CLINICAL,
    ("api:image-requeue", "post"): CLINICAL | {"staff"},
    ("api:lab-members", "post"): {"manager", "staff"},
    ("cases:patient-create", "post"): CLINICAL,
    ("cases:patient-edit", "post"): CLINICAL,
    ("cases:patient-detail", "post"): CLINICAL,
    ("cases:specimen-detail", "post"): CLINICAL,
    ("cases:specimen-sign", "post"): {"hematologist"},
    ("cases:image-verdict", "post"): CLINICAL,
    ("cases:image-requeue", "post"): CLINICAL | {"staff"},
    ("cases:image-reclassify", "post"): CLINICAL | {"staff"},
    ("cases:lab-members", "post"): {"manager", "staff"},
}
# (endpoint, role) pairs whose GET is refused with 403: the page is for other roles.
GET_REFUSED = {
    ("cases:lab-qa", "technologist"),
    ("api:lab-qa", "technologist"),
    ("cases:patient-edit", "manager"),
    ("cases:patient-edit", "staff"),
    ("cases:patient-create", "manager"),
    ("cases:patient-create", "staff"),
    # Reports leave the portal: the lab's own members only, never staff.
    *(
        (name, "staff")
        for name in (
            "cases:specimen-report",
            "cases:specimen-report-pdf",
            "cases:lab-images-csv",
            "api:specimen-report-pdf",
            "api:specimen-fhir",
            "api:lab-images-csv",
        )
    ),
}
# GETs that members may make but that the object's state refuses (409): FHIR is for signed
# specimens, and the specimen here is not signed (tests/cases/api/test_reports_api.py signs one).
GET_CONFLICT = {"api:specimen-fhir"}


@dataclass(frozen=True)
class Endpoint:
    name: str  # "namespace:name"
    route: str  # the full route, for messages and for a bare pk
    kwargs: tuple[str, ...]
    methods: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.name.startswith("api:")

    def __str__(self) -> str:
        return self.name


def _kwarg_names(pattern) -> list[str]:
    if hasattr(pattern, "converters") and pattern.converters:
        return list(pattern.converters)
    return list(getattr(pattern, "regex", re.compile("")).groupindex)


def _methods(callback) -> tuple[str, ...]:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:  # a function view: its methods are unknown, so try the usual two
        return ("get", "post")
    return tuple(m for m in METHODS if m in view_class.http_method_names and hasattr(view_class, m))


def _walk(patterns, namespace="", route="", kwargs=()):
    for entry in patterns:
        here = route + str(entry.pattern)
        names = (*kwargs, *_kwarg_names(entry.pattern))
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, inner, here, names)
        elif isinstance(entry, URLPattern) and namespace.split(":")[0] in NAMESPACES:
            yield namespace, entry, here, names


def discover() -> list[Endpoint]:
    endpoints, unnamed = [], []
    for namespace, entry, route, names in _walk(get_resolver().url_patterns):
        if not entry.name:
            unnamed.append(f"{namespace}: {route}")
            continue
        endpoints.append(
            Endpoint(f"{namespace}:{entry.name}", route, tuple(names), _methods(entry.callback))
        )
    assert not unnamed, f"name these URLs so that they can be checked: {unnamed}"
    return endpoints


ENDPOINTS = discover()
PROTECTED = [e for e in ENDPOINTS if e.name not in PUBLIC]


def _object_for(endpoint: Endpoint, kwarg: str) -> str:
    if kwarg in OBJECT_KWARGS:
        return OBJECT_KWARGS[kwarg]
    if kwarg == "pk":
        match = re.search(r"([\w-]+)/<(?:\w+:)?pk>", endpoint.route)
        if match and match.group(1) in PK_SEGMENTS:
            return PK_SEGMENTS[match.group(1)]
    pytest.fail(
        f"{endpoint} ({endpoint.route}): unknown URL kwarg {kwarg!r}. Say which object it names "
        "in OBJECT_KWARGS or PK_SEGMENTS of tests/test_permissions.py, so that its access rules "
        "are checked."
    )


# --- Data -------------------------------------------------------------------------------------


@pytest.fixture
def owned(clinician, lab):
    """Lab A's objects: a patient, a specimen, an image (stored file included) and a
    prediction, registered by its hematologist dr_ada."""
    patient = services.patient_create(
        lab=lab, created_by=clinician, record_number="PERM-A-0001", display_label="Lab A patient Q"
    )
    image = make_image(patient, clinician, seed=42)
    prediction = make_prediction(image)
    image.refresh_from_db()
    saliency_map = SaliencyMap(
        prediction=prediction, member="", class_name=prediction.label, peak_x=0.5, peak_y=0.5
    )
    saliency_map.file.save("map.png", ContentFile(png_bytes(smear_like_array(1, 32))))
    return {
        "lab": lab,
        "patient": patient,
        "specimen": image.specimen,
        "image": image,
        "prediction": prediction,
        "saliency_map": saliency_map,
    }


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        username="staff", password="pw-staff-123456", is_staff=True
    )


@pytest.fixture
def users(clinician, technologist, manager, staff):
    return {
        "technologist": technologist,
        "hematologist": clinician,
        "manager": manager,
        "staff": staff,
    }


def url_of(endpoint: Endpoint, owned) -> str:
    kwargs = {name: owned[_object_for(endpoint, name)].pk for name in endpoint.kwargs}
    return reverse(endpoint.name, kwargs=kwargs)


def call(client, method: str, url: str, endpoint: Endpoint):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    if endpoint.is_api:
        return getattr(client, method)(url, data="{}", content_type="application/json")
    return getattr(client, method)(url, data={})


READ_EVENTS = {
    AuditEvent.EventType.SPECIMEN_VIEWED,
    AuditEvent.EventType.SPECIMEN_LIST_VIEWED,
    AuditEvent.EventType.REVIEW_QUEUE_VIEWED,
    AuditEvent.EventType.QA_VIEWED,
    AuditEvent.EventType.PATIENT_VIEWED,
    AuditEvent.EventType.PATIENT_LIST_VIEWED,
    AuditEvent.EventType.IMAGE_VIEWED,
    AuditEvent.EventType.IMAGE_FILE_READ,
    AuditEvent.EventType.IMAGE_LIST_VIEWED,
    AuditEvent.EventType.PREDICTION_VIEWED,
    AuditEvent.EventType.PREDICTION_LIST_VIEWED,
    AuditEvent.EventType.REPORT_VIEWED,
    AuditEvent.EventType.REPORT_DOWNLOADED,
    AuditEvent.EventType.FHIR_EXPORTED,
    AuditEvent.EventType.CSV_EXPORTED,
}
NOT_AUDITED_READS = {
    "cases:image-status",
    "cases:patient-create",
    "api:token-revoke",
    "cases:lab-list",  # no patient data: lab names and roles
    "cases:lab-members",
    "api:lab-list",
    "api:lab-members",
}


@pytest.fixture
def audit_unchanged(db):
    before = AuditEvent.objects.count()
    yield
    assert AuditEvent.objects.count() == before, "a refused request wrote something"


@pytest.fixture
def only_reads_recorded(db):
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    yield
    written = set(AuditEvent.objects.filter(id__gt=last).values_list("event_type", flat=True))
    written.discard(AuditEvent.EventType.LOGIN_SUCCEEDED)  # the test's own force_login
    assert written <= READ_EVENTS, f"a GET wrote {written - READ_EVENTS}"


# --- The rules --------------------------------------------------------------------------------


def test_every_api_url_is_enumerated():
    found = {e.name for e in ENDPOINTS}
    assert {
        "api:token-obtain",
        "api:patient-list",
        "api:patient-detail",
        "api:patient-images",
        "api:image-detail",
        "api:image-requeue",
        "api:image-predictions",
        "api:prediction-list",
        "api:prediction-detail",
        "api:specimen-sign-off",
        "api:image-verdicts",
        "api:review-queue",
        "api:lab-qa",
    } <= found
    assert found >= PUBLIC, f"stale PUBLIC entries: {PUBLIC - found}"
    assert all(e.methods for e in ENDPOINTS), [str(e) for e in ENDPOINTS if not e.methods]


def test_an_unknown_url_kwarg_fails_loudly():
    for route, kwarg in [("things/<int:pk>/", "pk"), ("patients/<slug:code>/", "code")]:
        endpoint = Endpoint("cases:thing", route, (kwarg,), ("get",))
        with pytest.raises(pytest.fail.Exception, match="unknown URL kwarg"):
            _object_for(endpoint, kwarg)
    assert _object_for(Endpoint("api:x", "api/v1/images/<int:pk>/y/", ("pk",), ()), "pk") == "image"


@pytest.mark.parametrize("endpoint", PROTECTED, ids=str)
def test_anonymous_is_refused(client, endpoint, owned, audit_unchanged):
    url = url_of(endpoint, owned)
    login = resolve_url(settings.LOGIN_URL)
    for method in endpoint.methods:
        response = call(client, method, url, endpoint)
        if endpoint.is_api:
            assert response.status_code == 401, (method, url, response.status_code)
            assert response.headers.get("WWW-Authenticate") == "Token"
        else:
            assert response.status_code == 302, (method, url, response.status_code)
            assert response["Location"].startswith(login), (method, url, response["Location"])


@pytest.mark.parametrize("endpoint", PROTECTED, ids=str)
def test_another_lab_finds_nothing(client, other_clinician, endpoint, owned, only_reads_recorded):
    client.force_login(other_clinician)  # dr_bob, Lab B; everything in ``owned`` is Lab A's
    url = url_of(endpoint, owned)
    if endpoint.kwargs:
        before = AuditEvent.objects.count()
        for method in endpoint.methods:
            response = call(client, method, url, endpoint)
            assert response.status_code == 404, (method, url, response.status_code)
        assert AuditEvent.objects.count() == before, "a refused request wrote something"
        return
    if "get" not in endpoint.methods:
        return
    response = client.get(url)
    assert response.status_code in (200, 302), (url, response.status_code)
    text = response.content.decode(errors="replace")
    assert "PERM-A-0001" not in text
    assert "Lab A patient Q" not in text and "Lab A" not in text
    if response.get("Content-Type", "").startswith("application/json"):
        body = json.loads(text)
        if isinstance(body, dict) and "count" in body:
            assert body["count"] == 0, (url, body)


@pytest.mark.parametrize("endpoint", PROTECTED, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_members_and_staff_may_read_it(client, users, role, endpoint, owned, only_reads_recorded):
    user = users[role]
    client.force_login(user)
    url = url_of(endpoint, owned)
    before = AuditEvent.objects.filter(acting_user=user).count()
    response = client.get(url)
    if (endpoint.name, role) in GET_REFUSED:
        assert response.status_code == 403, (url, role, response.status_code)
        return
    if endpoint.name in GET_CONFLICT:
        assert response.status_code == 409, (url, role, response.status_code)
        return
    assert 200 <= response.status_code < 400 or response.status_code == 405, (
        url,
        role,
        response.status_code,
    )
    if response.status_code == 405:
        assert "get" not in endpoint.methods, f"{url} implements GET but answered 405"
    elif response.status_code == 200 and endpoint.name not in NOT_AUDITED_READS:
        after = AuditEvent.objects.filter(acting_user=user).count()
        assert after == before + 1, f"reading {url} was not audited"


WRITES = [
    (endpoint, method) for endpoint in PROTECTED for method in endpoint.methods if method != "get"
]


def test_every_write_says_who_may():
    unknown = sorted(f"{e.name} {m}" for e, m in WRITES if (e.name, m) not in WRITERS)
    assert not unknown, f"say in WRITERS which roles may do these: {unknown}"
    stale = set(WRITERS) - {(e.name, m) for e, m in WRITES}
    assert not stale, f"stale WRITERS entries: {stale}"


@pytest.mark.parametrize(("endpoint", "method"), WRITES, ids=lambda x: str(x))
@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_write_only_what_it_is_allowed(client, users, role, endpoint, method, owned):
    client.force_login(users[role])
    url = url_of(endpoint, owned)
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = call(client, method, url, endpoint)
    if role in WRITERS.get((endpoint.name, method), set()):
        assert response.status_code not in (401, 403, 404), (
            method,
            url,
            role,
            response.status_code,
        )
        return
    assert response.status_code == 403, (method, url, role, response.status_code)
    written = set(AuditEvent.objects.filter(id__gt=last).values_list("event_type", flat=True))
    written -= {AuditEvent.EventType.LOGIN_SUCCEEDED}
    assert written <= {AuditEvent.EventType.ACTION_REFUSED}, (url, role, written)


def test_token_endpoint_is_the_only_public_one_and_needs_a_password(client, owned):
    url = reverse("api:token-obtain")
    assert client.get(url).status_code == 405
    assert client.post(url, {"username": "dr_ada", "password": "wrong"}).status_code == 400
    assert client.post(url, {}).status_code == 400


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_api_schema_and_docs_refuse_anonymous(client, db, path):
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_api_schema_and_docs_serve_users(client, clinician, path):
    client.force_login(clinician)
    assert client.get(path).status_code == 200


def test_the_admin_refuses_anonymous_and_clinicians(client, clinician):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))

    client.force_login(clinician)  # not staff
    response = client.get("/admin/cases/prediction/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_admin_serves_staff_admins(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200
