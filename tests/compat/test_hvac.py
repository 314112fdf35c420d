"""hvac 2.4 against iamlease: one test per hvac call we support, each asserting on the data
hvac returns and, where AWS is touched, on what moto holds."""
import json

import boto3
import hvac
import pytest
import requests
from hvac import exceptions

from conftest import DOC, TOKEN, users_under


def write_dev_role(client, mount, **extra):
    client.secrets.aws.create_or_update_role(
        "dev", "iam_user", policy_document=DOC, mount_point=mount, **extra)


def test_enable_and_list_secrets_engines(client):
    client.sys.enable_secrets_engine("aws", path="hv-one")
    client.sys.enable_secrets_engine("aws", path="hv-two", config={"default_lease_ttl": "30m"})
    mounts = client.sys.list_mounted_secrets_engines()
    assert mounts["data"]["hv-one/"]["type"] == "aws"
    assert mounts["data"]["hv-two/"]["config"]["default_lease_ttl"] == 1800
    assert mounts["hv-one/"]["type"] == "aws"  # older clients read the top level
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine("aws", path="hv-one")


def test_configure_root_and_lease(client, mount, moto):
    cfg = client.adapter.get(f"/v1/{mount}/config/root")
    assert cfg["data"]["access_key"] == moto["key"]
    assert "secret_key" not in cfg["data"]
    client.secrets.aws.configure_lease(lease="90m", lease_max="2h", mount_point=mount)
    lease = client.secrets.aws.read_lease_config(mount_point=mount)
    assert lease["data"] == {"lease": "1h30m0s", "lease_max": "2h0m0s"}


def test_roles_create_read_list_delete(client, mount):
    client.secrets.aws.create_or_update_role(
        "dev", "iam_user", policy_arns=["arn:aws:iam::123456789012:policy/a"], policy_document=DOC,
        iam_tags=["team=platform"], mount_point=mount)
    role = client.secrets.aws.read_role("dev", mount_point=mount)["data"]
    assert role["credential_type"] == "iam_user"
    assert role["policy_arns"] == ["arn:aws:iam::123456789012:policy/a"]
    assert json.loads(role["policy_document"]) == DOC
    assert role["iam_tags"] == {"team": "platform"}
    client.secrets.aws.create_or_update_role("ops", "iam_user", policy_document=DOC, mount_point=mount)
    assert client.secrets.aws.list_roles(mount_point=mount)["data"]["keys"] == ["dev", "ops"]
    client.secrets.aws.delete_role("ops", mount_point=mount)
    assert client.secrets.aws.list_roles(mount_point=mount)["data"]["keys"] == ["dev"]
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.aws.read_role("ops", mount_point=mount)
    with pytest.raises(exceptions.InvalidRequest) as bad:
        client.adapter.post(f"/v1/{mount}/roles/bad", json={
            "credential_type": "iam_user", "policy_document": json.dumps(DOC), "username_template": "{{role}}"})
    assert "{{random}}" in str(bad.value)


def test_generate_credentials_and_leases(client, mount, moto):
    write_dev_role(client, mount)
    creds = client.secrets.aws.generate_credentials("dev", ttl="10m", mount_point=mount)
    assert creds["lease_duration"] == 600 and creds["renewable"] is True
    data = creds["data"]
    assert users_under(moto, mount) == [data["username"]]
    sts = boto3.client("sts", endpoint_url=moto["url"], region_name="us-east-1",
                       aws_access_key_id=data["access_key"], aws_secret_access_key=data["secret_key"])
    assert sts.get_caller_identity()["Arn"] == data["arn"]

    lease_id = creds["lease_id"]
    looked = client.sys.read_lease(lease_id)["data"]
    assert looked["id"] == lease_id and looked["renewable"] is True and 0 < looked["ttl"] <= 600
    keys = client.sys.list_leases(f"{mount}/creds/dev/")["data"]["keys"]
    assert keys == [lease_id.rsplit("/", 1)[1]]
    renewed = client.sys.renew_lease(lease_id, increment=1200)
    assert 1190 <= renewed["lease_duration"] <= 1200
    renewed = client.sys.renew_lease(lease_id)
    assert renewed["lease_id"] == lease_id
    client.sys.revoke_lease(lease_id)
    assert users_under(moto, mount) == []
    with pytest.raises(Exception):
        sts.get_caller_identity()
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_lease(lease_id)
    # Who held the key, after its lease: hvac's generic read of the history path.
    held = client.read(f"{mount}/access-keys/{data['access_key']}")["data"]
    assert held["lease_id"] == lease_id and held["state"] == "revoked"
    assert held["username"] == data["username"] and held["requester"] == "root"
    assert held["revoke_time"] is not None


def test_sts_endpoint_is_for_sts_roles(client, mount):
    write_dev_role(client, mount)
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.secrets.aws.generate_credentials("dev", endpoint="sts", mount_point=mount)
    assert f"{mount}/creds/dev" in str(e.value)


def test_revoke_prefix(client, mount, moto):
    write_dev_role(client, mount)
    for _ in range(3):
        client.secrets.aws.generate_credentials("dev", mount_point=mount)
    assert len(users_under(moto, mount)) == 3
    client.sys.revoke_prefix(f"{mount}/creds/dev/")
    assert users_under(moto, mount) == []


def test_revoke_force(client, mount, moto):
    write_dev_role(client, mount)
    lease = client.secrets.aws.generate_credentials("dev", mount_point=mount)["lease_id"]
    client.sys.revoke_force(f"{mount}/creds/dev")
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_lease(lease)
    # AWS answered, so the one best-effort delete worked too.
    assert users_under(moto, mount) == []


def test_is_authenticated(server):
    assert hvac.Client(url=server, token=TOKEN).is_authenticated() is True
    assert hvac.Client(url=server, token="not-a-token").is_authenticated() is False


def test_tokens_and_acl_policies(client, mount, moto, server):
    write_dev_role(client, mount)
    client.secrets.aws.create_or_update_role("prod", "iam_user", policy_document=DOC, mount_point=mount)
    client.sys.create_or_update_acl_policy(
        "hv-dev", {"path": {f"{mount}/creds/dev": {"capabilities": ["read", "update"]}}})
    read = client.sys.read_acl_policy("hv-dev")["data"]
    assert read["name"] == "hv-dev" and f"{mount}/creds/dev" in read["policy"]
    created = client.auth.token.create(policies=["hv-dev"], ttl="1h", display_name="hvac")
    token = created["auth"]["client_token"]
    assert created["auth"]["policies"] == ["default", "hv-dev"]
    scoped = hvac.Client(url=server, token=token)
    me = scoped.auth.token.lookup_self()["data"]
    assert me["display_name"] == "token-hvac" and me["policies"] == ["default", "hv-dev"]
    creds = scoped.secrets.aws.generate_credentials("dev", mount_point=mount)
    assert users_under(moto, mount) == [creds["data"]["username"]]
    with pytest.raises(exceptions.Forbidden):
        scoped.secrets.aws.generate_credentials("prod", mount_point=mount)
    with pytest.raises(exceptions.Forbidden):
        scoped.adapter.get(f"/v1/{mount}/config/root")
    other = hvac.Client(url=server, token=client.auth.token.create(policies=["hv-dev"])["auth"]["client_token"])
    with pytest.raises(exceptions.Forbidden):
        other.sys.revoke_lease(creds["lease_id"])
    scoped.sys.revoke_lease(creds["lease_id"])
    assert users_under(moto, mount) == []
    client.sys.delete_acl_policy("hv-dev")
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_acl_policy("hv-dev")


def test_error_mapping_and_headers(client, server, mount):
    with pytest.raises(exceptions.InvalidPath):
        client.adapter.get("/v1/nowhere/at/all")
    # Vault's AWS engine: issuing from a missing role is a 400 (a 404 is for reading one).
    with pytest.raises(exceptions.InvalidRequest, match='Role "missing" not found'):
        client.secrets.aws.generate_credentials("missing", mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.aws.read_role("missing", mount_point=mount)
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=server, token="bad").secrets.aws.list_roles(mount_point=mount)
    # What curl would see: exact content type, LIST as a method, empty LIST as Vault's 404.
    r = requests.request("LIST", f"{server}/v1/{mount}/roles", headers={"X-Vault-Token": TOKEN})
    assert r.status_code == 404 and r.json() == {"errors": []}
    assert r.headers["Content-Type"] == "application/json"
    write_dev_role(client, mount)
    r = requests.request("LIST", f"{server}/v1/{mount}/roles", headers={"X-Vault-Token": TOKEN})
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["dev"]
    assert r.headers["Content-Type"] == "application/json"
    r = requests.get(f"{server}/v1/{mount}/roles/dev", headers={"Authorization": f"Bearer {TOKEN}", "X-Vault-Request": "true"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    r = requests.get(f"{server}/v1/{mount}/roles/dev")
    assert r.status_code == 403 and r.headers["Content-Type"] == "application/json"
