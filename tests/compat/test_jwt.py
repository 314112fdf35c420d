"""hvac's `auth.jwt` against iamlease, unchanged, with every token from a real OpenID Provider
(tests/oidc, oidc-provider): a GitHub-Actions-shaped token and a Kubernetes-shaped one log in and
get AWS keys; every refusal is a 400/403 with the reason and issues nothing; the provider's key
rotation is followed; a person signs in through the browser flow (PKCE, state, nonce)."""
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.parse

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import DOC, STORE, users_under

GITHUB_AUD = "https://github.com/octo-org"


def github_claims(repo="octo-org/app", ref="refs/heads/main"):
    return {"repository": repo, "repository_owner": repo.split("/")[0], "ref": ref,
            "workflow": "deploy", "actor": "octocat", "event_name": "push",
            "job_workflow_ref": f"{repo}/.github/workflows/deploy.yml@{ref}"}


def github_sub(repo="octo-org/app", ref="refs/heads/main"):
    return f"repo:{repo}:ref:{ref}"


def kubernetes_claims(namespace="prod", sa="deployer"):
    return {"kubernetes.io": {"namespace": namespace,
                              "serviceaccount": {"name": sa, "uid": "5e0b6f1c-0000-4000-8000-000000000001"},
                              "pod": {"name": "deployer-7d9c", "uid": "5e0b6f1c-0000-4000-8000-000000000002"}}}


def setup_jwt(client, mount, path, config, **role):
    client.sys.enable_auth_method("jwt", path=path)
    client.auth.jwt.configure(path=path, **config)
    client.sys.create_or_update_policy(
        f"{path}-creds", f'path "{mount}/creds/*" {{ capabilities = ["read", "update"] }}')
    client.secrets.aws.create_or_update_role("dev", "iam_user", policy_document=DOC, mount_point=mount)
    client.auth.jwt.create_role("ci", allowed_redirect_uris=[], token_policies=[f"{path}-creds"],
                                token_ttl="15m", path=path, **role)


def refusal(server, path, role, jwt):
    """The login's status and error text, through the HTTP API as any client sends it."""
    r = requests.post(f"{server}/v1/auth/{path}/login", json={"role": role, "jwt": jwt}, timeout=10)
    assert "auth" not in r.json() or r.json()["auth"] is None
    return r.status_code, " ".join(r.json().get("errors", []))


def test_github_actions_token_gets_aws_keys_and_tags_its_token(client, server, mount, moto, oidc):
    path = "gh" + mount[1:]
    setup_jwt(client, mount, path, {"oidc_discovery_url": oidc.issuer, "bound_issuer": oidc.issuer},
              user_claim="sub", bound_audiences=[GITHUB_AUD],
              bound_claims={"repository": "octo-org/app", "ref": ["refs/heads/main", "refs/heads/release"]},
              claim_mappings={"repository": "repository", "ref": "ref", "actor": "actor"})
    config = client.auth.jwt.read_config(path=path)["data"]
    assert config["oidc_discovery_url"] == oidc.issuer and config["jwks_url"] == ""
    role = client.auth.jwt.read_role("ci", path=path)["data"]
    assert role["role_type"] == "jwt" and role["bound_audiences"] == [GITHUB_AUD]
    assert role["bound_claims"] == {"repository": ["octo-org/app"], "ref": ["refs/heads/main", "refs/heads/release"]}
    assert role["token_ttl"] == 900 and role["expiration_leeway"] == 150
    assert client.auth.jwt.list_roles(path=path)["data"]["keys"] == ["ci"]

    jwt = oidc.mint(github_sub(), GITHUB_AUD, github_claims())
    workload = hvac.Client(url=server)
    auth = workload.auth.jwt.jwt_login("ci", jwt, path=path)["auth"]
    assert auth["policies"] == sorted(["default", f"{path}-creds"])
    assert auth["metadata"] == {"role": "ci", "repository": "octo-org/app", "ref": "refs/heads/main",
                                "actor": "octocat"}
    assert 890 <= auth["lease_duration"] <= 900
    me = workload.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{path}-{github_sub()}"[:len(me["display_name"])]
    assert me["path"] == f"auth/{path}/login" and me["meta"]["repository"] == "octo-org/app"

    creds = workload.secrets.aws.generate_credentials("dev", mount_point=mount)["data"]
    assert users_under(moto, mount) == [creds["username"]]
    # What AWS holds says who asked: the token's display name and its mapped claims, as tags.
    tags = {t["Key"]: t["Value"] for t in moto["iam"].list_user_tags(UserName=creds["username"])["Tags"]}
    assert tags["iamlease:requester"] == me["display_name"]
    assert tags["iamlease:meta:repository"] == "octo-org/app"
    assert tags["iamlease:meta:ref"] == "refs/heads/main" and tags["iamlease:meta:role"] == "ci"
    # A username template may name the token's metadata.
    client.write(f"{mount}/roles/named", credential_type="iam_user", policy_document=json.dumps(DOC),
                 username_template="gh-{{meta.repository}}-{{random 8}}")
    by_meta = workload.secrets.aws.generate_credentials("named", mount_point=mount)["data"]
    assert by_meta["username"].startswith("gh-octo-org_app-"), by_meta["username"]

    # Another repository or branch: refused with the claim named, nothing issued.
    for sub, claims, named in [
        (github_sub("octo-org/other"), github_claims("octo-org/other"), "repository"),
        (github_sub(ref="refs/heads/feature"), github_claims(ref="refs/heads/feature"), "ref"),
    ]:
        status, message = refusal(server, path, "ci", oidc.mint(sub, GITHUB_AUD, claims))
        assert status == 400 and named in message, message
    assert sorted(users_under(moto, mount)) == sorted([creds["username"], by_meta["username"]])

    # The store holds no token in clear.
    for name in os.listdir(STORE["dir"]):
        with open(os.path.join(STORE["dir"], name), "rb") as f:
            assert auth["client_token"].encode() not in f.read()

    # Disabling the method revokes the token and, through it, the IAM user.
    client.sys.disable_auth_method(path)
    with pytest.raises(exceptions.Forbidden):
        workload.auth.token.lookup_self()
    for _ in range(100):
        if not users_under(moto, mount):
            break
        time.sleep(0.1)
    assert users_under(moto, mount) == []


def test_glob_bound_claims_match_release_branches(client, server, mount, oidc):
    path = "gg" + mount[1:]
    setup_jwt(client, mount, path, {"jwks_url": oidc.jwks_url},
              user_claim="repository", bound_audiences=[GITHUB_AUD], bound_claims_type="glob",
              bound_claims={"repository": "octo-org/*", "ref": "refs/heads/release-*"})
    ok = oidc.mint(github_sub(ref="refs/heads/release-1.2"), GITHUB_AUD, github_claims(ref="refs/heads/release-1.2"))
    auth = hvac.Client(url=server).auth.jwt.jwt_login("ci", ok, path=path, use_token=False)["auth"]
    assert auth["metadata"] == {"role": "ci"}
    bad = oidc.mint(github_sub(ref="refs/heads/main"), GITHUB_AUD, github_claims(ref="refs/heads/main"))
    status, message = refusal(server, path, "ci", bad)
    assert status == 400 and "ref" in message
    client.sys.disable_auth_method(path)


def test_kubernetes_service_account_token_with_nested_claims(client, server, mount, moto, oidc):
    path = "k8" + mount[1:]
    aud = "https://kubernetes.default.svc.cluster.local"
    setup_jwt(client, mount, path, {"oidc_discovery_url": oidc.issuer},
              user_claim="sub", bound_audiences=[aud],
              bound_claims={"/kubernetes.io/namespace": "prod", "/kubernetes.io/serviceaccount/name": "deployer"},
              claim_mappings={"/kubernetes.io/namespace": "namespace",
                              "/kubernetes.io/serviceaccount/name": "service_account"})
    jwt = oidc.mint("system:serviceaccount:prod:deployer", [aud], kubernetes_claims())
    workload = hvac.Client(url=server)
    auth = workload.auth.jwt.jwt_login("ci", jwt, path=path)["auth"]
    assert auth["metadata"] == {"role": "ci", "namespace": "prod", "service_account": "deployer"}
    workload.secrets.aws.generate_credentials("dev", mount_point=mount)
    assert len(users_under(moto, mount)) == 1
    status, message = refusal(server, path, "ci", oidc.mint(
        "system:serviceaccount:dev:deployer", [aud], kubernetes_claims(namespace="dev")))
    assert status == 400 and "/kubernetes.io/namespace" in message
    assert len(users_under(moto, mount)) == 1
    client.sys.disable_auth_method(path)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header, claims, key=b""):
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(key, head.encode(), hashlib.sha256).digest() if key else b""
    return head + "." + b64(sig)


def test_every_refusal_says_why_and_issues_nothing(client, server, mount, moto, oidc):
    path = "jr" + mount[1:]
    setup_jwt(client, mount, path, {"oidc_discovery_url": oidc.issuer},
              user_claim="sub", bound_audiences=[GITHUB_AUD], bound_subject=github_sub())
    client.auth.jwt.create_role("subject-only", allowed_redirect_uris=[], user_claim="sub",
                                bound_subject=github_sub(), path=path)
    client.auth.jwt.create_role("person", role_type="oidc", user_claim="email",
                                allowed_redirect_uris=["http://localhost:8250/oidc/callback"], path=path)
    good = oidc.mint(github_sub(), GITHUB_AUD, github_claims())
    payload = json.loads(base64.urlsafe_b64decode(good.split(".")[1] + "=="))
    kid = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))["kid"]
    head, body, sig = good.split(".")
    tampered_body = b64(json.dumps(dict(payload, sub="repo:octo-org/app:ref:refs/heads/evil")).encode())
    cases = [
        ("expired", oidc.mint(github_sub(), GITHUB_AUD, github_claims(), ttl=-400), "expired"),
        ("not yet valid", oidc.mint(github_sub(), GITHUB_AUD, dict(github_claims(), nbf=int(time.time()) + 3600)),
         "not valid yet"),
        ("other audience", oidc.mint(github_sub(), "https://github.com/evil-org", github_claims()), "aud"),
        ("other subject", oidc.mint(github_sub(ref="refs/heads/dev"), GITHUB_AUD, github_claims()), "sub"),
        ("other issuer", oidc.mint(github_sub(), GITHUB_AUD, dict(github_claims(), iss="https://evil.example")),
         "iss"),
        ("tampered claims", f"{head}.{tampered_body}.{sig}", "signature"),
        ("alg none", forged({"alg": "none", "typ": "JWT", "kid": kid}, payload), "none is not allowed"),
        ("HS256 keyed with the public JWKS", forged({"alg": "HS256", "kid": kid}, payload,
                                                   json.dumps(oidc.jwks()).encode()), "HS256 is not allowed"),
        ("not a JWT", "not-a-jwt", "not a JWT"),
        ("unknown kid", forged({"alg": "RS256", "kid": "no-such-kid"}, payload, b""), "kid"),
    ]
    for what, jwt, reason in cases:
        status, message = refusal(server, path, "ci", jwt)
        assert status == 400 and reason in message, f"{what}: {status} {message}"
    # A token with an audience must not log in to a role that bound none.
    status, message = refusal(server, path, "subject-only", good)
    assert status == 400 and "no audiences are bound" in message
    # A person's role is for the browser flow; unknown roles and a missing jwt are plain 400s.
    assert refusal(server, path, "person", good)[0] == 400
    status, message = refusal(server, path, "nope", good)
    assert status == 400 and "nope" in message
    r = requests.post(f"{server}/v1/auth/{path}/login", json={"role": "ci"}, timeout=10)
    assert r.status_code == 400 and "jwt is required" in r.json()["errors"][0]
    assert users_under(moto, mount) == []
    # None of those made a token: only the good one does.
    assert hvac.Client(url=server).auth.jwt.jwt_login("ci", good, path=path)["auth"]["client_token"]

    # Roles and configs that could not work are refused when written.
    with pytest.raises(exceptions.InvalidRequest, match="bound constraint"):
        client.auth.jwt.create_role("loose", allowed_redirect_uris=[], user_claim="sub", path=path)
    with pytest.raises(exceptions.InvalidRequest, match="allowed_redirect_uris"):
        client.auth.jwt.create_role("p2", role_type="oidc", user_claim="email", allowed_redirect_uris=[], path=path)
    with pytest.raises(exceptions.InvalidRequest, match="reserved"):
        client.auth.jwt.create_role("m", allowed_redirect_uris=[], user_claim="sub", bound_subject="x",
                                    claim_mappings={"sub": "role"}, path=path)
    with pytest.raises(exceptions.InvalidRequest, match="exactly one"):
        client.auth.jwt.configure(jwks_url=oidc.jwks_url, oidc_discovery_url=oidc.issuer, path=path)
    with pytest.raises(exceptions.InvalidRequest, match="HS256"):
        client.auth.jwt.configure(jwks_url=oidc.jwks_url, jwt_supported_algs=["HS256"], path=path)
    with pytest.raises(exceptions.InvalidRequest, match="failed"):
        client.auth.jwt.configure(jwks_url="http://127.0.0.1:1/jwks", path=path)
    with pytest.raises(exceptions.InvalidRequest, match="PEM"):
        client.auth.jwt.configure(jwt_validation_pubkeys=["not a key"], path=path)
    # The good config survived the refused writes.
    assert client.auth.jwt.read_config(path=path)["data"]["oidc_discovery_url"] == oidc.issuer
    client.sys.disable_auth_method(path)


def test_pem_keys_verify_es256_tokens(client, server, mount, oidc):
    """jwt_validation_pubkeys: the provider's EC key as PEM, no URL involved at login."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    jwk = next(k for k in oidc.jwks()["keys"] if k["kty"] == "EC")
    num = lambda v: int.from_bytes(base64.urlsafe_b64decode(v + "=="), "big")  # noqa: E731
    pem = ec.EllipticCurvePublicNumbers(num(jwk["x"]), num(jwk["y"]), ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    path = "jp" + mount[1:]
    setup_jwt(client, mount, path, {"jwt_validation_pubkeys": [pem], "jwt_supported_algs": ["ES256"]},
              user_claim="sub", bound_audiences=["aud-1"])
    auth = hvac.Client(url=server).auth.jwt.jwt_login(
        "ci", oidc.mint("svc", "aud-1", alg="ES256"), path=path, use_token=False)["auth"]
    assert auth["client_token"]
    # RS256 is not in jwt_supported_algs.
    status, message = refusal(server, path, "ci", oidc.mint("svc", "aud-1", alg="RS256"))
    assert status == 400 and "jwt_supported_algs" in message
    client.sys.disable_auth_method(path)


def test_key_rotation_is_followed(client, server, mount, oidc):
    path = "kr" + mount[1:]
    setup_jwt(client, mount, path, {"oidc_discovery_url": oidc.issuer},
              user_claim="sub", bound_audiences=["rot"])
    before = oidc.mint("svc", "rot")
    second = oidc.mint("svc", "rot")
    hvac.Client(url=server).auth.jwt.jwt_login("ci", before, path=path, use_token=False)
    # Once the keys are cached a login needs no network: with the provider down, it still works.
    oidc.stop()
    try:
        hvac.Client(url=server).auth.jwt.jwt_login("ci", second, path=path, use_token=False)
    finally:
        oidc.start()
    old_kids = set(oidc.kids())
    oidc.rotate()
    assert not old_kids & set(oidc.kids())
    # A token signed by the new key has a kid the cache has never seen: fetched again, accepted.
    after = oidc.mint("svc", "rot")
    auth = hvac.Client(url=server).auth.jwt.jwt_login("ci", after, path=path, use_token=False)["auth"]
    assert auth["client_token"]
    # The old key is no longer published: its tokens stop working.
    status, message = refusal(server, path, "ci", before)
    assert status == 400 and "kid" in message
    client.sys.disable_auth_method(path)


def test_a_person_signs_in_through_the_browser(client, server, mount, oidc):
    path = "oi" + mount[1:]
    client.sys.enable_auth_method("oidc", path=path)
    client.auth.oidc.configure(oidc_discovery_url=oidc.issuer, oidc_client_id=oidc.client_id,
                               oidc_client_secret=oidc.client_secret, default_role="person", path=path)
    assert "oidc_client_secret" not in client.auth.oidc.read_config(path=path)["data"]
    redirect = "http://localhost:8250/oidc/callback"
    client.auth.oidc.create_role("person", user_claim="email", allowed_redirect_uris=[redirect],
                                 oidc_scopes=["email", "profile"], claim_mappings={"email": "email"},
                                 token_policies=["default"], role_type="oidc", path=path)

    url = client.auth.oidc.oidc_authorization_url_request("person", redirect, path=path)["data"]["auth_url"]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert url.startswith(oidc.authorization_endpoint)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [oidc.client_id]
    assert "openid" in query["scope"][0].split() and query["redirect_uri"] == [redirect]
    state, nonce = query["state"][0], query["nonce"][0]
    assert len(state) >= 20 and len(nonce) >= 20 and state != nonce

    back = urllib.parse.parse_qs(urllib.parse.urlparse(oidc.browser_login(url, username="alice")).query)
    assert back["state"] == [state]
    code = back["code"][0]
    person = hvac.Client(url=server)
    auth = person.auth.oidc.oidc_callback(state=state, nonce="", code=code, path=path)["auth"]
    assert auth["metadata"] == {"role": "person", "email": "alice@example.com"}
    person.token = auth["client_token"]
    me = person.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{path}-alice@example.com" and me["path"] == f"auth/{path}/login"

    # A state is good once; a made-up one never.
    for bad_state in (state, "made-up"):
        r = requests.get(f"{server}/v1/auth/{path}/oidc/callback", params={"state": bad_state, "code": code},
                         timeout=10)
        assert r.status_code == 400 and "state" in r.json()["errors"][0]
    # A redirect URI the role does not allow gets no auth URL.
    with pytest.raises(exceptions.InvalidRequest, match="redirect_uri"):
        client.auth.oidc.oidc_authorization_url_request("person", "https://evil.example/cb", path=path)
    # The client secret is sealed: not in the store in clear.
    for name in os.listdir(STORE["dir"]):
        with open(os.path.join(STORE["dir"], name), "rb") as f:
            assert oidc.client_secret.encode() not in f.read()
    client.sys.disable_auth_method(path)


def test_cli_login_method_oidc(client, server, mount, oidc, tmp_path):
    """`iamlease login --method oidc`: the CLI prints the URL (no browser here), the 'browser'
    signs in and is redirected to the CLI's loopback listener, the CLI finishes and stores the
    token."""
    import subprocess

    from conftest import BINARY, free_port
    path = "oc" + mount[1:]
    client.sys.enable_auth_method("oidc", path=path)
    client.auth.oidc.configure(oidc_discovery_url=oidc.issuer, oidc_client_id=oidc.client_id,
                               oidc_client_secret=oidc.client_secret, default_role="person", path=path)
    client.auth.oidc.create_role("person", user_claim="email", allowed_redirect_uris=[
        "http://localhost:8250/oidc/callback"], oidc_scopes=["email"], role_type="oidc", path=path)
    port = free_port()
    env = {"HOME": str(tmp_path), "IAMLEASE_ADDR": server, "PATH": "/nonexistent"}
    cli = subprocess.Popen([BINARY, "login", "--method", "oidc", "--path", path, f"port={port}",
                            "skip_browser=true"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    url = None
    for line in cli.stderr:
        if line.strip().startswith(oidc.authorization_endpoint):
            url = line.strip()
            break
    assert url, "the CLI printed no auth URL"
    callback = oidc.browser_login(url, username="bob")
    assert callback.startswith(f"http://localhost:{port}/oidc/callback?")
    page = requests.get(callback, timeout=10)
    assert page.status_code == 200 and "Signed in" in page.text
    out, err = cli.communicate(timeout=30)
    assert cli.returncode == 0, err
    token = (tmp_path / ".iamlease-token").read_text().strip()
    assert token not in out
    me = hvac.Client(url=server, token=token).auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{path}-bob@example.com"
    client.sys.disable_auth_method(path)
