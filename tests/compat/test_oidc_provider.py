"""The OpenID Provider harness itself (oidc.py, tests/oidc): tokens minted by the real provider
carry the claims asked for under a kid it publishes, rotation replaces the kids, and the person's
code flow with PKCE yields an ID token with the nonce sent. Needs no server and no moto."""
import time
import urllib.parse

import pytest
import requests

from oidc import Provider, decode_jwt, pkce_pair

GITHUB_CLAIMS = {
    "repository": "acme/app",
    "repository_owner": "acme",
    "ref": "refs/heads/main",
    "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
    "actor": "octocat",
}


def test_discovery_names_the_issuer_and_jwks(oidc):
    doc = requests.get(oidc.discovery_url, timeout=5).json()
    assert doc["issuer"] == oidc.issuer
    assert doc["jwks_uri"] == oidc.jwks_url
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "email", "profile", "groups"} <= set(doc["scopes_supported"])


def test_github_shaped_token_has_the_claims_and_a_published_kid(oidc):
    sub = "repo:acme/app:ref:refs/heads/main"
    token = oidc.mint(sub, "https://github.com/acme", GITHUB_CLAIMS)
    header, payload = decode_jwt(token)
    assert header["alg"] == "RS256"
    jwks_uri = requests.get(oidc.discovery_url, timeout=5).json()["jwks_uri"]
    published = {k["kid"]: k for k in requests.get(jwks_uri, timeout=5).json()["keys"]}
    assert published[header["kid"]]["kty"] == "RSA"
    assert "d" not in published[header["kid"]]  # public halves only
    assert payload["iss"] == oidc.issuer
    assert payload["sub"] == sub
    assert payload["aud"] == "https://github.com/acme"
    for name, value in GITHUB_CLAIMS.items():
        assert payload[name] == value
    assert 0 < payload["exp"] - payload["iat"] <= 300
    assert abs(payload["iat"] - time.time()) < 30


def test_kubernetes_shaped_es256_token_with_nested_claims_and_list_aud(oidc):
    k8s = {"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "deployer", "uid": "5e1f0b7c-0d1a-4c55-9d4e-2b1f3f6a7c11"}}}
    token = oidc.mint("system:serviceaccount:ci:deployer", ["https://kubernetes.default.svc"], k8s, alg="ES256")
    header, payload = decode_jwt(token)
    assert header["alg"] == "ES256"
    assert {k["kid"]: k["kty"] for k in oidc.jwks()["keys"]}[header["kid"]] == "EC"
    assert payload["aud"] == ["https://kubernetes.default.svc"]
    assert payload["kubernetes.io"] == k8s["kubernetes.io"]


def test_short_and_past_lifetimes(oidc):
    _, short = decode_jwt(oidc.mint("s", "sts.amazonaws.com", ttl=2))
    assert short["exp"] - short["iat"] == 2
    _, past = decode_jwt(oidc.mint("s", "sts.amazonaws.com", ttl=-60))
    assert past["exp"] < time.time() - 50 and past["iat"] < past["exp"]


@pytest.fixture
def own(tmp_path):
    """A provider of the test's own: rotating the session's one would change it under later tests."""
    provider = Provider(workdir=str(tmp_path)).start()
    yield provider
    provider.stop()


def test_rotation_replaces_the_kids_on_the_same_issuer(own):
    oidc = own
    issuer = oidc.issuer
    old_kid = decode_jwt(oidc.mint("s", "a"))[0]["kid"]
    old_kids = set(oidc.kids())
    assert old_kid in old_kids
    oidc.rotate()
    assert oidc.issuer == issuer
    new_kid = decode_jwt(oidc.mint("s", "a"))[0]["kid"]
    assert new_kid != old_kid
    assert new_kid in oidc.kids()
    assert not old_kids & set(oidc.kids())


def test_rotation_keeping_the_old_keys_publishes_both_and_signs_with_the_new(own):
    oidc = own
    old_kids = oidc.kids()
    oidc.rotate(keep_old=True)
    kids = oidc.kids()
    assert kids[2:] == old_kids and len(kids) == 4
    assert decode_jwt(oidc.mint("s", "a"))[0]["kid"] == kids[0]


@pytest.mark.parametrize("redirect_uri", ["http://localhost:8250/oidc/callback",
                                          "http://127.0.0.1:54321/ui/oidc/callback"])
def test_person_login_code_flow_with_pkce(oidc, redirect_uri):
    verifier, challenge = pkce_pair()
    auth_url = oidc.authorize_url(redirect_uri, state="st-123", nonce="n-456", code_challenge=challenge)
    callback = oidc.browser_login(auth_url, username="alice")
    assert callback.startswith(redirect_uri + "?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    assert query["state"] == "st-123" and query["code"]
    # The exchange by hand, as a relying party does it: client_secret_basic plus the verifier.
    r = requests.post(oidc.token_url, auth=(oidc.client_id, oidc.client_secret), timeout=10, data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    header, claims = decode_jwt(r.json()["id_token"])
    assert header["kid"] in oidc.kids()
    assert claims["nonce"] == "n-456"
    assert claims["iss"] == oidc.issuer and claims["aud"] == oidc.client_id and claims["sub"] == "alice"
    assert claims["email"] == "alice@example.com" and claims["name"] == "Alice"
    assert claims["groups"] == ["users"]


def test_code_exchange_needs_the_right_verifier(oidc):
    verifier, challenge = pkce_pair()
    redirect_uri = "http://localhost:8250/oidc/callback"
    callback = oidc.browser_login(oidc.authorize_url(redirect_uri, "s", "n", challenge))
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))["code"]
    r = requests.post(oidc.token_url, auth=(oidc.client_id, oidc.client_secret), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": pkce_pair()[0]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_authorization_without_pkce_is_refused(oidc):
    url = oidc.authorization_endpoint + "?" + urllib.parse.urlencode(dict(
        client_id=oidc.client_id, response_type="code", redirect_uri="http://localhost:8250/oidc/callback",
        scope="openid", state="s", nonce="n"))
    callback = oidc.browser_login(url)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    assert query["error"] == "invalid_request" and "PKCE" in query["error_description"]
