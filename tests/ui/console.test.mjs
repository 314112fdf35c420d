// Browser test of the web console: headless Debian chromium (playwright-core) against the built
// iamlease binary and a moto server, both on loopback. It signs in, connects the mount with
// access keys, sees a too-long username template refused at its field, fixes it, generates
// credentials and reads them from the page, checks in moto (boto3) that the user exists,
// revokes from the leases page and checks in moto that it is gone. A second test signs in with
// "Sign in with SSO" through a real OpenID Provider (tests/oidc, oidc-provider) on loopback.
// Screenshots of each page go to tests/ui/artifacts/.
//
// Needs: IAMLEASE_BIN (the built binary), MOTO_SERVER and PYTHON (the venv's, with boto3).

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });
const BIN = process.env.IAMLEASE_BIN || join(root, "target", "debug", "iamlease");
const MOTO = process.env.MOTO_SERVER || join(root, ".venv", "bin", "moto_server");
const PYTHON = process.env.PYTHON || join(root, ".venv", "bin", "python");
const TOKEN = "ui-" + randomBytes(16).toString("hex");
const MOTO_KEY = "AKIAUITESTKEY0000001";
const MOTO_SECRET = "ui-root-secret-" + randomBytes(8).toString("hex");
const DOC = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}';

const children = [];
let serverLog = "";
let browser;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function waitFor(url, what) {
  const deadline = Date.now() + 30000;
  for (;;) {
    try { const r = await fetch(url); if (r.status < 500) return; } catch {}
    if (Date.now() > deadline) throw new Error(`${what} did not start at ${url}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** What moto holds, through boto3 as the admin. */
function iamUsers(motoUrl, pathPrefix) {
  const script = `
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="${MOTO_KEY}", aws_secret_access_key="${MOTO_SECRET}")
print(json.dumps([u["UserName"] for u in iam.list_users(PathPrefix=sys.argv[2])["Users"]]))`;
  return JSON.parse(execFileSync(PYTHON, ["-c", script, motoUrl, pathPrefix]).toString());
}

let motoUrl, address;

before(async () => {
  const motoPort = await freePort();
  motoUrl = `http://127.0.0.1:${motoPort}`;
  children.push(spawn(MOTO, ["-H", "127.0.0.1", "-p", String(motoPort)], { stdio: "ignore" }));
  await waitFor(`${motoUrl}/moto-api/`, "moto");

  const port = await freePort();
  address = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), "iamlease-ui-"));
  const server = spawn(BIN, ["server", "--dev", "--dev-root-token", TOKEN], {
    env: { ...process.env, IAMLEASE_LISTEN: `127.0.0.1:${port}`, IAMLEASE_LOG: "iamlease=debug,tower_http=debug",
           IAMLEASE_STORAGE: `sqlite://${dir}/iamlease.db` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  // stdout has the dev banner, which prints the root token once by design; the log is stderr.
  server.stdout.resume();
  server.stderr.on("data", (d) => { serverLog += d; });
  children.push(server);
  await waitFor(`${address}/v1/sys/health`, "iamlease");

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    // launch() gives every run a fresh, temporary --user-data-dir of its own.
  });
});

after(async () => {
  if (browser) await browser.close();
  for (const c of children) c.kill("SIGTERM");
});

test("the console flow: sign in, connect, role with a field error, generate, revoke", { timeout: 120000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Refused logins and forms answer 4xx on purpose; anything else logged as an error (a CSP
  // violation, a script failure) fails the test.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });
  page.on("dialog", (d) => d.accept());
  const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

  // Sign in.
  await page.goto(`${address}/ui/`);
  await assert.doesNotReject(page.waitForSelector("#token"));
  await shot("01-sign-in");
  await page.fill("#token", "wrong-token");
  await page.press("#token", "Enter");
  assert.match(await page.textContent("#token-error"), /unknown or expired/);
  await page.fill("#token", TOKEN);
  await page.press("#token", "Enter");
  await page.waitForURL(/\/ui\/mounts$/);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "iamlease_session");
  assert.ok(session, "a session cookie is set");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.equal(session.path, "/ui");
  assert.ok(!session.value.includes(TOKEN), "the cookie does not hold the token");
  const csp = (await page.request.get(`${address}/ui/mounts`)).headers()["content-security-policy"];
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'/);
  await shot("02-engines");

  // Enable another engine: a bad path is refused with the API's reason, a good one is mounted.
  await page.fill("#path", "bad path!");
  await page.click("button:has-text('Enable')");
  assert.ok((await page.textContent(".flash.bad")).length > 0, "the refusal is shown");
  await page.fill("#path", "aws-prod");
  await page.click("button:has-text('Enable')");
  await page.waitForURL(/\/ui\/mounts\/aws-prod$/);
  assert.match(await page.textContent(".flash.ok"), /aws-prod\/ is mounted/);
  await page.click("nav >> text=Engines");

  // The aws/ mount: connect it with access keys (and moto's endpoints), then test it.
  await page.click("a[href='/ui/mounts/aws']");
  await page.waitForURL(/\/ui\/mounts\/aws$/);
  await page.click("#tab-role");
  const before = await page.inputValue("#external_id");
  await page.click("[data-generate-external-id]");
  const generated = await page.inputValue("#external_id");
  assert.equal(generated.length, 32);
  assert.notEqual(generated, before);
  assert.ok((await page.textContent("#trust-policy")).includes(generated), "the trust policy shows the new External ID");
  await shot("03-connection-assume-role");
  // Keyboard: the tabs follow the arrow keys, as the WAI-ARIA tab pattern has them.
  await page.focus("#tab-role");
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.getAttribute("#tab-keys", "aria-selected"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-keys");
  assert.ok(await page.isVisible("#access_key"));
  assert.ok(!(await page.isVisible("#role_arn")));
  await page.fill("#access_key", MOTO_KEY);
  await page.fill("#secret_key", MOTO_SECRET);
  await page.fill("#region-keys", "us-east-1");
  await page.click("#panel-keys summary");
  await page.fill("#iam_endpoint", motoUrl);
  await page.fill("#sts_endpoint", motoUrl);
  await page.click("#panel-keys button[type=submit]");
  await page.waitForSelector(".flash.ok");
  assert.ok(!(await page.content()).includes(MOTO_SECRET), "the root secret is never sent back");
  await page.click("#test-connection");
  assert.match(await page.textContent("#check-result"), /Connected as arn:aws:/);
  await shot("04-connection-tested");

  // A role whose template is too long: the error shows at that field; then fix it.
  await page.click("text=New role");
  await page.fill("#name", "dev");
  await page.fill("#username_template", "iamlease-a-much-too-long-prefix-{{role}}{{random}}");
  assert.match(await page.textContent("#template-preview"), /up to 80 of IAM's 64/);
  await page.fill("#policy_document", DOC);
  await page.click("#save-role");
  const fieldError = await page.textContent("#username_template-error");
  assert.match(fieldError, /username_template renders up to 80 characters; IAM allows 64/);
  assert.equal(await page.getAttribute("#username_template", "aria-invalid"), "true");
  await shot("05-role-field-error");
  await page.fill("#username_template", "iamlease-{{role}}-{{random}}");
  await page.fill("#default_ttl", "1h");
  await page.click("#save-role");
  await page.waitForURL(/\/ui\/mounts\/aws\/roles\/dev$/);
  assert.match(await page.textContent(".flash.ok"), /Role dev saved/);

  // Edit it: the form comes back filled in, and a change is saved.
  await page.click("text=Edit");
  assert.equal(await page.inputValue("#username_template"), "iamlease-{{role}}-{{random}}");
  await page.fill("#max_ttl", "8h");
  await page.click("#save-role");
  await page.waitForURL(/\/ui\/mounts\/aws\/roles\/dev$/);
  assert.match(await page.textContent(".summary"), /max_ttl\s*28800/);
  // Generate offers only what the role allows (max_ttl 8h).
  const offered = await page.locator("#ttl option").evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(offered, ["", "15m", "1h", "4h", "8h"]);

  // Generate: the credentials are on the page once.
  await page.selectOption("#ttl", "1h");
  await page.click("#generate");
  await page.waitForSelector("#secret-key");
  const accessKey = (await page.textContent("#access-key")).trim();
  const secretKey = (await page.textContent("#secret-key")).trim();
  const username = (await page.textContent("#iam-username")).trim();
  const leaseId = (await page.textContent("#lease-id")).trim();
  assert.match(accessKey, /^AKIA/);
  assert.ok(secretKey.length >= 20);
  assert.ok((await page.textContent("#snippet-env")).includes(`export AWS_SECRET_ACCESS_KEY=${secretKey}`));
  assert.match(await page.textContent("#snippet-profile"), /credential_process = iamlease creds dev --mount aws --format credential-process/);
  await shot("06-credentials");
  assert.deepEqual(iamUsers(motoUrl, "/iamlease/aws/dev/"), [username], "moto holds the user");

  // Never shown again: not on the role page, not in its source, not in the cookie, not in the log.
  await page.goto(`${address}/ui/mounts/aws/roles/dev`);
  assert.ok(!(await page.content()).includes(secretKey));
  const source = await (await page.request.get(`${address}/ui/mounts/aws/roles/dev`)).text();
  assert.ok(!source.includes(secretKey));
  for (const c of await context.cookies()) {
    assert.ok(!c.value.includes(secretKey) && !c.value.includes(TOKEN), `cookie ${c.name} holds no secret`);
  }

  // The leases page: the lease with its countdown; revoke it.
  await page.click("nav >> text=Leases");
  let row = page.locator(`tr[data-lease-id="${leaseId}"]`);
  await row.waitFor();
  assert.match(await row.locator("time").textContent(), /^(59m|1h 00m) \d\ds$/);
  // Who asked and which key, on the row.
  assert.match(await row.textContent(), /\broot\b/);
  assert.equal((await row.locator("td code").nth(1).textContent()).trim(), accessKey);
  await shot("07-leases");
  await row.locator("button:has-text('Renew')").click();
  assert.match(await page.textContent(".flash.ok"), /Renewed/);
  row = page.locator(`tr[data-lease-id="${leaseId}"]`);
  await row.locator("button:has-text('Revoke')").click();
  assert.match(await page.textContent(".flash.ok"), /Revoked/);
  assert.equal(await page.locator(`tr[data-lease-id="${leaseId}"]`).count(), 0);
  assert.deepEqual(iamUsers(motoUrl, "/iamlease/aws/dev/"), [], "the user is gone from moto");
  await shot("08-leases-after-revoke");

  // A role that does not exist: said so, nothing to press.
  await page.goto(`${address}/ui/mounts/aws/roles/no-such-role`);
  assert.match(await page.textContent("#no-such-role"), /No role no-such-role on aws\//);
  assert.equal(await page.locator("#generate").count(), 0);
  assert.equal(await page.locator("button:has-text('Delete role')").count(), 0);
  await page.click("nav >> text=Leases");

  // Months later, from CloudTrail: the search box finds who held the key, after revocation.
  await page.fill("#key-search", accessKey);
  await page.click("button:has-text('Find key')");
  await page.waitForURL(/\/ui\/keys\?id=/);
  const card = page.locator(`section[data-access-key-id="${accessKey}"]`);
  await card.waitFor();
  assert.equal((await card.locator(".requester").textContent()).trim(), "root");
  assert.match(await card.textContent(), new RegExp(leaseId));
  assert.match(await card.locator(".badge").textContent(), /revoked/);
  assert.equal(await card.locator("button:has-text('Revoke')").count(), 0, "nothing left to revoke");
  await shot("09-whois");
  await page.fill("#key-search", "AKIANOSUCHKEY0000000");
  await page.click("button:has-text('Find key')");
  assert.match(await page.textContent(".flash.bad"), /No mount has a record of AKIANOSUCHKEY0000000/);

  // Nothing on the way logged a script error or a CSP violation, and no secret reached the log.
  assert.deepEqual(errors, [], "no script errors or CSP violations");
  for (const secret of [secretKey, TOKEN, MOTO_SECRET]) {
    assert.ok(!serverLog.includes(secret), "no secret in the server's log");
  }

  // A form without the session's CSRF token is refused.
  const forged = await page.request.post(`${address}/ui/leases/revoke-role`, {
    form: { csrf: "forged", mount: "aws", role: "dev" }, maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  await context.close();
});

/** Starts tests/oidc/provider.mjs (oidc-provider) on a free port; resolves with its issuer. */
async function startProvider(redirectUri, clientSecret) {
  const oidcDir = join(root, "tests", "oidc");
  const keys = join(mkdtempSync(join(tmpdir(), "iamlease-ui-oidc-")), "jwks.json");
  execFileSync(process.execPath, [join(oidcDir, "keygen.mjs"), keys]);
  const port = await freePort();
  const provider = spawn(process.execPath, [join(oidcDir, "provider.mjs"), "--port", String(port), "--jwks", keys,
    "--client-id", "iamlease", "--client-secret", clientSecret, "--redirect-uri", redirectUri],
    { cwd: oidcDir, stdio: ["ignore", "pipe", "inherit"] });
  children.push(provider);
  await new Promise((resolve, reject) => {
    let out = "";
    provider.stdout.on("data", (d) => { out += d; if (out.includes("READY ")) resolve(); });
    provider.on("exit", (code) => reject(new Error(`oidc-provider exited with ${code}`)));
  });
  return `http://127.0.0.1:${port}`;
}

async function api(method, path, body) {
  const r = await fetch(`${address}/v1/${path}`, {
    method, headers: { "X-Vault-Token": TOKEN, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${await r.text()}`);
}

test("Sign in with SSO through a real OpenID Provider", { timeout: 120000 }, async () => {
  const callback = `${address}/ui/oidc/callback`;
  const clientSecret = "ui-cs-" + randomBytes(12).toString("hex");
  const issuer = await startProvider(callback, clientSecret);
  await api("POST", "sys/auth/oidc", { type: "oidc" });
  await api("POST", "auth/oidc/config", { oidc_discovery_url: issuer, oidc_client_id: "iamlease",
                                          oidc_client_secret: clientSecret, default_role: "person" });
  await api("POST", "auth/oidc/role/person", { role_type: "oidc", user_claim: "email", oidc_scopes: ["email"],
                                               allowed_redirect_uris: [callback], token_policies: ["default"] });

  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });
  const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

  const codes = [];
  page.on("request", (r) => {
    if (r.url().startsWith(callback)) codes.push(new URL(r.url()).searchParams.get("code"));
  });
  await page.goto(`${address}/ui/login`);
  await page.click("text=Sign in with SSO");
  // The provider's own login and consent pages.
  await page.waitForURL((u) => u.href.startsWith(issuer));
  const pending = (await context.cookies()).find((c) => c.name === "iamlease_sso");
  assert.ok(pending, "the sign-in in progress is remembered in this browser");
  assert.equal(pending.sameSite, "Lax");
  assert.equal(pending.httpOnly, true);
  await page.fill("input[name=login]", "carol");
  await page.fill("input[name=password]", "any");
  await shot("09-sso-provider-login");
  await page.click("button[type=submit]");
  await page.waitForSelector("button[type=submit]");
  if (page.url().startsWith(issuer)) await page.click("button[type=submit]");
  await page.waitForURL(/\/ui\/mounts$/);
  assert.equal((await page.textContent(".who")).trim(), "oidc-carol@example.com");
  await shot("10-sso-signed-in");
  const cookies = await context.cookies();
  assert.ok(cookies.find((c) => c.name === "iamlease_session"), "a session cookie is set");
  assert.ok(!cookies.find((c) => c.name === "iamlease_sso"), "the sign-in cookie is cleared");

  // A callback this browser did not start (a code and state sent to someone) signs no one in.
  const replay = await context.newPage();
  const answer = await replay.goto(`${callback}?state=made-up&code=x`);
  assert.equal(answer.status(), 400);
  assert.match(await replay.textContent("body"), /not started in this browser/);
  assert.deepEqual(errors, [], "no script errors or CSP violations");
  assert.ok(!serverLog.includes(clientSecret), "the client secret is not logged");
  assert.equal(codes.length, 1);
  assert.ok(codes[0] && !serverLog.includes(codes[0]), "the authorization code is not logged");
  await context.close();
});
