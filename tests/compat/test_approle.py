"""hvac's `auth.approle` against iamlease, unchanged: a machine logs in with role_id and
secret_id and gets AWS keys; every refusal issues nothing; disabling the auth method revokes
its tokens and, through them, the IAM users in moto."""
import os
import time

import hvac
import pytest
from hvac import exceptions

from conftest import DOC, STORE, TOKEN, users_under


def setup_approle(client, mount, path, **role):
    client.sys.enable_auth_method("approle", path=path)
    client.sys.create_or_update_policy(
        f"{path}-creds", f'path "{mount}/creds/dev" {{ capabilities = ["read", "update"] }}')
    client.secrets.aws.create_or_update_role("dev", "iam_user", policy_document=DOC, mount_point=mount)
    client.auth.approle.create_or_update_approle(
        "ci", token_policies=[f"{path}-creds"], token_ttl="20m", mount_point=path, **role)
    role_id = client.auth.approle.read_role_id("ci", mount_point=path)["data"]["role_id"]
    return role_id


def login(server, path, role_id, secret_id):
    machine = hvac.Client(url=server)
    machine.auth.approle.login(role_id, secret_id, mount_point=path)
    return machine


def test_login_issues_a_scoped_token_that_gets_aws_keys(client, server, mount, moto):
    path = "ar" + mount[1:]
    role_id = setup_approle(client, mount, path)
    assert f"{path}/" in client.sys.list_auth_methods()["data"]
    role = client.auth.approle.read_role("ci", mount_point=path)["data"]
    assert role["token_policies"] == [f"{path}-creds"] and role["token_ttl"] == 1200
    assert role["bind_secret_id"] is True

    made = client.auth.approle.generate_secret_id("ci", metadata={"job": "build-42"}, mount_point=path)["data"]
    secret_id = made["secret_id"]
    machine = hvac.Client(url=server)
    auth = machine.auth.approle.login(role_id, secret_id, mount_point=path)["auth"]
    assert auth["policies"] == sorted(["default", f"{path}-creds"])
    assert auth["metadata"] == {"job": "build-42", "role_name": "ci"}
    assert 1190 <= auth["lease_duration"] <= 1200 and auth["renewable"] is True
    me = machine.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{path}-ci" and me["path"] == f"auth/{path}/login"

    creds = machine.secrets.aws.generate_credentials("dev", mount_point=mount)["data"]
    assert users_under(moto, mount) == [creds["username"]]
    # The role's policy is all the token has.
    with pytest.raises(exceptions.Forbidden):
        machine.secrets.aws.create_or_update_role("x", "iam_user", policy_document=DOC, mount_point=mount)

    # The store holds neither the secret ID nor the token in clear.
    for name in os.listdir(STORE["dir"]):
        with open(os.path.join(STORE["dir"], name), "rb") as f:
            raw = f.read()
        assert secret_id.encode() not in raw and auth["client_token"].encode() not in raw

    # Disabling the auth method revokes its token, and the token's lease: the user goes.
    client.sys.disable_auth_method(path)
    with pytest.raises(exceptions.Forbidden):
        machine.auth.token.lookup_self()
    for _ in range(100):
        if not users_under(moto, mount):
            break
        time.sleep(0.1)
    assert users_under(moto, mount) == []
    assert f"{path}/" not in client.sys.list_auth_methods()["data"]


def test_secret_id_limits_and_lifecycle(client, server, mount):
    path = "as" + mount[1:]
    role_id = setup_approle(client, mount, path, secret_id_num_uses=2, secret_id_ttl="10m")
    made = client.auth.approle.generate_secret_id("ci", mount_point=path)["data"]
    assert made["secret_id_num_uses"] == 2 and made["secret_id_ttl"] == 600
    looked = client.auth.approle.read_secret_id("ci", made["secret_id"], mount_point=path)["data"]
    assert looked["secret_id_accessor"] == made["secret_id_accessor"] and looked["secret_id_num_uses"] == 2
    accessors = client.auth.approle.list_secret_id_accessors("ci", mount_point=path)["data"]["keys"]
    assert accessors == [made["secret_id_accessor"]]

    login(server, path, role_id, made["secret_id"])
    login(server, path, role_id, made["secret_id"])
    # Used up: the third login is refused and the secret ID is gone.
    with pytest.raises(exceptions.InvalidRequest, match="secret_id"):
        login(server, path, role_id, made["secret_id"])
    gone = client.adapter.post(f"/v1/auth/{path}/role/ci/secret-id/lookup", json={"secret_id": made["secret_id"]})
    assert gone.status_code == 204

    # A secret ID cannot loosen the role's limits.
    with pytest.raises(exceptions.InvalidRequest, match="num_uses"):
        client.adapter.post(f"/v1/auth/{path}/role/ci/secret-id", json={"num_uses": 5})

    # Custom secret IDs; destroyed ones log in no more; wrong role_id says so.
    client.auth.approle.create_custom_secret_id("ci", "my-own-secret-id-1", mount_point=path)
    login(server, path, role_id, "my-own-secret-id-1")
    client.auth.approle.destroy_secret_id("ci", "my-own-secret-id-1", mount_point=path)
    with pytest.raises(exceptions.InvalidRequest, match="secret_id"):
        login(server, path, role_id, "my-own-secret-id-1")
    with pytest.raises(exceptions.InvalidRequest, match="role_id"):
        login(server, path, "not-a-role-id", "whatever")
    client.sys.disable_auth_method(path)


def test_cidr_bindings_refuse_other_sources(client, server, mount):
    path = "ac" + mount[1:]
    role_id = setup_approle(client, mount, path, secret_id_bound_cidrs=["10.0.0.0/8"])
    secret_id = client.auth.approle.generate_secret_id("ci", mount_point=path)["data"]["secret_id"]
    with pytest.raises(exceptions.Forbidden, match="secret_id_bound_cidrs"):
        login(server, path, role_id, secret_id)

    # A token bound to other networks is no token from here.
    client.auth.approle.create_or_update_approle(
        "ci", secret_id_bound_cidrs=["127.0.0.0/8"], token_bound_cidrs=["10.0.0.0/8"], mount_point=path)
    machine = login(server, path, role_id, secret_id)
    with pytest.raises(exceptions.Forbidden):
        machine.auth.token.lookup_self()
    client.sys.disable_auth_method(path)


def test_bad_input_is_a_clear_400(client, mount):
    path = "ab" + mount[1:]
    with pytest.raises(exceptions.InvalidRequest, match="not supported|not available"):
        client.sys.enable_auth_method("kerberos", path=path)
    client.sys.enable_auth_method("approle", path=path)
    with pytest.raises(exceptions.InvalidRequest, match="already in use"):
        client.sys.enable_auth_method("approle", path=path)
    with pytest.raises(exceptions.InvalidRequest, match="at least one constraint"):
        client.auth.approle.create_or_update_approle("open", bind_secret_id=False, mount_point=path)
    with pytest.raises(exceptions.InvalidRequest, match="CIDR"):
        client.auth.approle.create_or_update_approle("x", secret_id_bound_cidrs=["nope"], mount_point=path)
    with pytest.raises(exceptions.InvalidRequest, match="root"):
        client.auth.approle.create_or_update_approle("x", token_policies=["root"], mount_point=path)
    client.sys.disable_auth_method(path)


def test_cli_login_keeps_the_token_private_and_uses_it(client, server, mount, tmp_path):
    import stat
    import subprocess

    from conftest import BINARY
    path = "al" + mount[1:]
    role_id = setup_approle(client, mount, path)
    secret_id = client.auth.approle.generate_secret_id("ci", mount_point=path)["data"]["secret_id"]
    (tmp_path / "sid").write_text(secret_id + "\n")
    env = {"HOME": str(tmp_path), "IAMLEASE_ADDR": server, "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([BINARY, "login", "--method", "approle", "--path", path,
                           f"role_id={role_id}", f"secret_id=@{tmp_path / 'sid'}"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    stored = tmp_path / ".iamlease-token"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    token = stored.read_text().strip()
    assert token not in done.stdout and secret_id not in done.stdout
    assert hvac.Client(url=server, token=token).auth.token.lookup_self()["data"]["path"] == f"auth/{path}/login"
    # Later commands find it without IAMLEASE_TOKEN.
    looked = subprocess.run([BINARY, "token", "lookup"], env=env, capture_output=True, text=True, timeout=30)
    assert looked.returncode == 0 and f"{path}-ci" in looked.stdout, looked.stderr
    # A used-up or wrong secret ID: a clear error, exit 1, nothing stored over the good token.
    bad = subprocess.run([BINARY, "login", "--method", "approle", "--path", path,
                          f"role_id={role_id}", "secret_id=wrong"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "invalid secret_id" in bad.stderr
    assert stored.read_text().strip() == token
    client.sys.disable_auth_method(path)


def test_tuning_the_method_caps_its_tokens(client, server, mount):
    path = "at" + mount[1:]
    role_id = setup_approle(client, mount, path)
    client.sys.tune_auth_method(path, max_lease_ttl="5m", description="CI logins")
    tuned = client.sys.read_auth_method_tuning(path)["data"]
    assert tuned["max_lease_ttl"] == 300 and tuned["description"] == "CI logins"
    assert client.adapter.get(f"/v1/sys/auth/{path}")["data"]["description"] == "CI logins"
    secret_id = client.auth.approle.generate_secret_id("ci", mount_point=path)["data"]["secret_id"]
    machine = hvac.Client(url=server)
    # The role asks for 20m; the mount's maximum wins.
    auth = machine.auth.approle.login(role_id, secret_id, mount_point=path)["auth"]
    assert 290 <= auth["lease_duration"] <= 300
    with pytest.raises(exceptions.InvalidRequest, match="default_lease_ttl"):
        client.sys.tune_auth_method(path, default_lease_ttl="1h")
    client.sys.disable_auth_method(path)
