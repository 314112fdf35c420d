// Drives iamlease with node-vault (a published JavaScript Vault client, which checks response
// shapes against its own schemas) the way an application would: status, mounts, an AWS mount,
// a child token, credentials, renewal, revocation by lease, by prefix and by token. Prints one
// JSON object with what it saw; tests/compat/test_node_vault.py checks it against moto.
import nodeVault from "node-vault";

const { VAULT_ADDR, VAULT_TOKEN, MOUNT, MOTO_URL, MOTO_KEY, MOTO_SECRET, DOC } = process.env;
const root = nodeVault({ apiVersion: "v1", endpoint: VAULT_ADDR, token: VAULT_TOKEN });
const out = {};

out.health = await root.health();
out.status = await root.status();
out.auths = Object.keys(await root.auths());
await root.mount({ mount_point: MOUNT, type: "aws" });
out.mounts = Object.keys(await root.mounts());
await root.write(`${MOUNT}/config/root`, {
  access_key: MOTO_KEY, secret_key: MOTO_SECRET, region: "us-east-1",
  iam_endpoint: MOTO_URL, sts_endpoint: MOTO_URL,
});
await root.write(`${MOUNT}/roles/app`, { credential_type: "iam_user", policy_document: DOC });
await root.write("sys/policies/acl/js-app", {
  policy: `path "${MOUNT}/creds/app" { capabilities = ["read", "update"] }`,
});

// A child token, as an application would get one. (node-vault switches the client that
// created a token over to it, so the root client takes its own token back.)
const created = await root.tokenCreate({ policies: ["js-app"], ttl: "1h", meta: { app: "js" } });
root.token = VAULT_TOKEN;
const app = nodeVault({ apiVersion: "v1", endpoint: VAULT_ADDR, token: created.auth.client_token });
const self = await app.tokenLookupSelf();
out.self = { id_is_token: self.data.id === created.auth.client_token, meta: self.data.meta };

// Credentials: read (GET), renew with a shorter increment, revoke.
const one = await app.read(`${MOUNT}/creds/app`);
const renewed = await root.renew({ lease_id: one.lease_id, increment: 600 });
out.renewed_duration = renewed.lease_duration;
await root.revoke({ lease_id: one.lease_id });
out.revoked_user = one.data.username;

// Two more, revoked by prefix.
const two = await app.read(`${MOUNT}/creds/app`);
const three = await app.read(`${MOUNT}/creds/app`);
await root.revokePrefix({ path_prefix: `${MOUNT}/creds/app` });
out.prefix_users = [two.data.username, three.data.username];

// Two issued by the child token, then the token revoked: its leases go with it.
const four = await app.read(`${MOUNT}/creds/app`);
const five = await app.read(`${MOUNT}/creds/app`);
await root.tokenRevoke({ token: created.auth.client_token });
out.token_users = [four.data.username, five.data.username];
try {
  await app.tokenLookupSelf();
  out.revoked_token_works = true;
} catch (e) {
  out.revoked_token_works = false;
  out.revoked_token_status = e.response?.statusCode;
}

// A missing role is Vault's 400 with the reason.
try {
  await root.read(`${MOUNT}/creds/nope`);
} catch (e) {
  out.missing_role = { status: e.response?.statusCode, message: e.message };
}
console.log(JSON.stringify(out));
