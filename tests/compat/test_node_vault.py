"""node-vault, a published JavaScript Vault client, against iamlease: `tests/clients/js/suite.mjs`
drives it (node-vault checks response shapes with its own schemas); this test checks what it
saw, and what moto holds afterwards."""
import json
import os
import subprocess
import time

from conftest import DOC, ROOT, TOKEN


def gone(iam, users, within=15):
    deadline = time.time() + within
    left = users
    while time.time() < deadline:
        left = [u for u in users if any(x["UserName"] == u for x in iam.list_users()["Users"])]
        if not left:
            return []
        time.sleep(0.3)
    return left


def test_node_vault_drives_iamlease_end_to_end(server, moto):
    mount = "js" + os.urandom(4).hex()
    env = dict(os.environ, VAULT_ADDR=server, VAULT_TOKEN=TOKEN, MOUNT=mount, MOTO_URL=moto["url"],
               MOTO_KEY=moto["key"], MOTO_SECRET=moto["secret"], DOC=json.dumps(DOC))
    run = subprocess.run(["node", "suite.mjs"], cwd=os.path.join(ROOT, "tests", "clients", "js"),
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["health"]["sealed"] is False and out["health"]["replication_dr_mode"] == "disabled"
    assert out["status"]["sealed"] is False
    assert "token/" in out["auths"]
    assert f"{mount}/" in out["mounts"]
    assert out["self"] == {"id_is_token": True, "meta": {"app": "js"}}
    assert 590 <= out["renewed_duration"] <= 600, out
    assert out["revoked_token_works"] is False and out["revoked_token_status"] == 403
    assert out["missing_role"]["status"] == 400 and 'Role "nope" not found' in out["missing_role"]["message"]
    iam = moto["iam"]
    assert gone(iam, [out["revoked_user"]] + out["prefix_users"], within=2) == []
    # Revoking the token revoked its leases: the reaper deletes the users within seconds.
    assert gone(iam, out["token_users"]) == []
