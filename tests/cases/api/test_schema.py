"""The OpenAPI schema and its Swagger UI: accurate, served to users only, and without a CDN."""

import re

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


def test_the_schema_generates_without_warnings_and_validates(tmp_path):
    # --fail-on-warn turns every drf-spectacular warning (unknown type, name clash...) into a
    # failure; --validate checks the result against the OpenAPI specification.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))


def test_the_schema_describes_the_multipart_upload():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)

    upload = schema["paths"]["/api/v1/specimens/{id}/images/"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    ref = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert body["properties"]["files"]["items"] == {"type": "string", "format": "binary"}
    assert body["properties"]["file"]["format"] == "binary"
    assert set(upload["responses"]) == {"202", "400", "403", "404", "503"}

    prediction = schema["components"]["schemas"]["Prediction"]
    for field in ("research_use_only", "votes", "member_count", "agreement", "probabilities"):
        assert field in prediction["required"]
    listing = schema["paths"]["/api/v1/predictions/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"label", "agreement", "model_version"}


def test_the_schema_endpoint_serves_users(client, clinician):
    client.force_login(clinician)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/v1/specimens/{id}/images/" in text
    assert "multipart/form-data" in text


def test_the_docs_page_renders_from_local_static_files(client, clinician):
    client.force_login(clinician)
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assets = [s for s in sources if "swagger-ui" in s or s.endswith(".png")]
    assert len(assets) >= 4  # css, bundle, standalone preset, favicon
    for url in assets:
        assert url.startswith(f"/{settings.STATIC_URL.strip('/')}/drf_spectacular_sidecar/"), url
        assert finders.find(url.split("/", 2)[2]) is not None, f"{url} is not a static file"
    assert not re.search(r"https?://", " ".join(sources))
    assert "cdn" not in html.lower()
    # No inline script (CSP): the start-up script is a file of this site, and names the schema.
    assert "<script>" not in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert "/api/schema/" in script.content.decode()
