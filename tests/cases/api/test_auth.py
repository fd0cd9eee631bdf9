"""Token authentication: obtain a token with a password, then use it."""

import pytest
from rest_framework.authtoken.models import Token

TOKEN_URL = "/api/v1/auth/token/"
PATIENTS_URL = "/api/v1/patients/"


def test_a_password_buys_a_token_that_authenticates(api, clinician, patient):
    response = api.post(TOKEN_URL, {"username": "dr_ada", "password": "pw-ada-123456"})

    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=clinician).key == token

    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listed = api.get(PATIENTS_URL)
    assert listed.status_code == 200
    assert [p["record_number"] for p in listed.json()["results"]] == ["MRN-0001"]


def test_the_same_token_is_returned_again(api, clinician):
    credentials = {"username": "dr_ada", "password": "pw-ada-123456"}
    first = api.post(TOKEN_URL, credentials, format="json").json()["token"]
    assert api.post(TOKEN_URL, credentials, format="json").json()["token"] == first


def test_a_wrong_password_gets_no_token(api, clinician):
    response = api.post(TOKEN_URL, {"username": "dr_ada", "password": "wrong"})

    assert response.status_code == 400
    assert "Unable to log in" in response.json()["non_field_errors"][0]
    assert not Token.objects.exists()


def test_an_inactive_user_gets_no_token_and_loses_the_old_one(api, clinician):
    token = Token.objects.create(user=clinician)
    clinician.is_active = False
    clinician.save()

    assert (
        api.post(TOKEN_URL, {"username": "dr_ada", "password": "pw-ada-123456"}).status_code == 400
    )
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get(PATIENTS_URL).status_code in (401, 403)


@pytest.mark.parametrize("header", ["Token not-a-real-token", "Token ", "Bearer abc"])
def test_a_bad_token_is_refused(api, header, db):
    api.credentials(HTTP_AUTHORIZATION=header)
    assert api.get(PATIENTS_URL).status_code in (401, 403)


def test_without_credentials_the_api_refuses(api):
    response = api.get(PATIENTS_URL)
    assert response.status_code in (401, 403)
    assert "credentials were not provided" in response.json()["detail"]


def test_password_guessing_is_locked_out_even_with_the_right_password_afterwards(api, clinician):
    """The old per-process throttle let 30 guesses through and then refused the real user."""
    for _ in range(4):
        assert api.post(TOKEN_URL, {"username": "dr_ada", "password": "guess"}).status_code == 400
    # The fifth failure locks the account out; so is the right password afterwards.
    assert api.post(TOKEN_URL, {"username": "dr_ada", "password": "guess"}).status_code == 429
    response = api.post(TOKEN_URL, {"username": "dr_ada", "password": "pw-ada-123456"})
    assert response.status_code == 429
    assert "blocked for 15 minutes" in response.json()["detail"]
    assert int(response["Retry-After"]) == 15 * 60
    assert not Token.objects.exists()
