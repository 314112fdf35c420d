"""The OpenID Provider harness: runs tests/oidc/provider.mjs (panva's oidc-provider, a certified
OP) on loopback, mints workload tokens through it, drives its person login headlessly, rotates
its keys. No pytest in here: conftest.py's `oidc` fixture wraps one Provider per session.

Every token comes from the provider's own signer (RS256 or ES256, kid in the header, verifiable at
its jwks_uri); Python only decodes, never signs."""
import base64
import hashlib
import html
import json
import os
import re
import secrets
import select
import socket
import subprocess
import tempfile
import time
import urllib.parse

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OIDC_DIR = os.path.join(ROOT, "tests", "oidc")
NODE = os.environ.get("NODE", "node")
# The person client is `native`, so a loopback redirect URI matches on any port (RFC 8252 7.3):
# the server's /ui/oidc/callback is registered before the server's port is chosen.
DEFAULT_REDIRECT_URIS = (
    "http://localhost:8250/oidc/callback",   # the vault CLI's listener
    "http://127.0.0.1:8250/oidc/callback",
    "http://127.0.0.1/ui/oidc/callback",     # the server's console, any port
    "http://localhost/ui/oidc/callback",
)
PERSON_SCOPE = "openid email profile groups"


def generate_jwks(path):
    """Writes a JWKS file of fresh private keys (RSA 2048 then EC P-256, new random kids), made by
    node's crypto (tests/oidc/keygen.mjs). Returns the path."""
    subprocess.run([NODE, os.path.join(OIDC_DIR, "keygen.mjs"), path], check=True, timeout=30)
    return path


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def decode_jwt(token):
    """(header, payload) of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return b64url_json(header), b64url_json(payload)


def pkce_pair():
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Provider:
    """One oidc-provider process. Settings are attributes; a restart (start after stop) applies
    changes to them on the same port."""

    MINTER_ID = "minter"

    def __init__(self, client_id="iamlease", client_secret=None, redirect_uris=DEFAULT_REDIRECT_URIS,
                 users=None, auth_method="client_secret_basic", id_token_alg="RS256", workdir=None):
        self.client_id = client_id
        self.client_secret = client_secret or "cs-" + secrets.token_hex(16)
        self.redirect_uris = list(redirect_uris)
        # login name -> claims overriding the defaults (email <name>@example.com, groups ["users"]).
        self.users = dict(users or {})
        self.auth_method = auth_method
        self.id_token_alg = id_token_alg
        self.minter_secret = "ms-" + secrets.token_hex(16)
        self.workdir = workdir or tempfile.mkdtemp(prefix="iamlease-oidc-")
        self.port = None
        self.keys = None
        self.proc = None
        self.log = os.path.join(self.workdir, "provider.log")
        self._generation = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, port=None, keys=None):
        """Starts the provider on 127.0.0.1:port (a free one by default, else the last one) with
        the JWKS file `keys` (fresh keys by default, else the last file). Returns self once the
        provider said READY."""
        if self.proc:
            raise RuntimeError("provider already running")
        self.port = port or self.port or free_port()
        self.keys = keys or self.keys or self._new_keys()
        users = os.path.join(self.workdir, "users.json")
        with open(users, "w") as f:
            json.dump(self.users, f)
        args = [NODE, os.path.join(OIDC_DIR, "provider.mjs"), "--port", str(self.port), "--jwks", self.keys,
                "--client-id", self.client_id, "--client-secret", self.client_secret,
                "--users", users, "--auth-method", self.auth_method, "--id-token-alg", self.id_token_alg,
                "--minter-secret", self.minter_secret]
        for uri in self.redirect_uris:
            args += ["--redirect-uri", uri]
        log = open(self.log, "a")
        self.proc = subprocess.Popen(args, cwd=OIDC_DIR, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if not line.startswith("READY "):
            self.stop()
            with open(self.log) as f:
                raise RuntimeError(f"oidc-provider did not start on port {self.port}: {line!r}\n{f.read()[-3000:]}")
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None

    def restart(self, keys=None):
        """Same port; new keys if given. State (sessions, codes) is in memory and is lost."""
        self.stop()
        return self.start(port=self.port, keys=keys)

    def rotate(self, keep_old=False):
        """New keys with new kids, same issuer and port (a restart). With keep_old the old keys
        stay published after the new ones (the new ones sign: the first key of each type signs).
        Returns the new JWKS path."""
        keys = self._new_keys()
        if keep_old:
            with open(keys) as f:
                new = json.load(f)
            with open(self.keys) as f:
                new["keys"] += json.load(f)["keys"]
            with open(keys, "w") as f:
                json.dump(new, f)
        self.restart(keys=keys)
        return keys

    def _new_keys(self):
        self._generation += 1
        return generate_jwks(os.path.join(self.workdir, f"jwks-{self._generation}.json"))

    # --- addresses -------------------------------------------------------------------------

    @property
    def issuer(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self):
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def jwks_url(self):
        return self.issuer + "/jwks"

    @property
    def token_url(self):
        return self.issuer + "/token"

    @property
    def authorization_endpoint(self):
        return self.issuer + "/auth"

    def discovery(self):
        return requests.get(self.discovery_url, timeout=5).json()

    def jwks(self):
        """The published (public) JWKS, fetched from jwks_uri."""
        return requests.get(self.jwks_url, timeout=5).json()

    def kids(self):
        return [k["kid"] for k in self.jwks()["keys"]]

    # --- workload tokens -------------------------------------------------------------------

    def mint(self, sub, aud, claims=None, ttl=300, alg="RS256", typ="JWT"):
        """A JWT signed by the provider: iss = the issuer, the given sub and aud (a string or a
        list), iat now, exp = iat + ttl (ttl <= 0: already expired, iat 300 s before exp), a jti,
        then `claims` on top (top-level or nested; they may override any of the above).
        alg: RS256 or ES256 (the first RSA or EC key of the JWKS signs). Header {alg, typ, kid}."""
        r = requests.post(self.token_url, auth=(self.MINTER_ID, self.minter_secret), timeout=10, data={
            "grant_type": "client_credentials",
            "resource": f"urn:iamlease:mint:{alg}",
            "mint": json.dumps({"sub": sub, "aud": aud, "claims": claims or {}, "ttl": ttl, "typ": typ}),
        })
        if r.status_code != 200:
            raise RuntimeError(f"mint failed: {r.status_code} {r.text}")
        return r.json()["access_token"]

    # --- a person --------------------------------------------------------------------------

    def authorize_url(self, redirect_uri, state, nonce, code_challenge, scope=PERSON_SCOPE, **extra):
        """An authorization request for the person client (code flow, S256 PKCE)."""
        params = dict(client_id=self.client_id, response_type="code", redirect_uri=redirect_uri, scope=scope,
                      state=state, nonce=nonce, code_challenge=code_challenge, code_challenge_method="S256",
                      **extra)
        return self.authorization_endpoint + "?" + urllib.parse.urlencode(params)

    def browser_login(self, auth_url, username="alice", password="password"):
        """Follows an authorization URL with requests through the dev login form (any name, any
        password) and the consent form, and returns the first redirect that leaves the provider
        (the client's callback with code and state, or with error) without following it."""
        s = requests.Session()
        r = s.get(auth_url, allow_redirects=False, timeout=10)
        for _ in range(12):
            if r.is_redirect:
                target = urllib.parse.urljoin(r.url, r.headers["Location"])
                if not target.startswith(self.issuer + "/"):
                    return target
                r = s.get(target, allow_redirects=False, timeout=10)
                continue
            form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', r.text)
            prompt = re.search(r'name="prompt" value="(\w+)"', r.text)
            if r.status_code != 200 or not form or not prompt:
                raise RuntimeError(f"unexpected page at {r.url}: {r.status_code} {r.text[:1500]}")
            data = {"prompt": prompt.group(1)}
            if data["prompt"] == "login":
                data.update(login=username, password=password)
            r = s.post(urllib.parse.urljoin(r.url, html.unescape(form.group(1))), data=data,
                       allow_redirects=False, timeout=10)
        raise RuntimeError(f"no redirect out of the provider after 12 steps (last {r.url})")

    def exchange(self, code, redirect_uri, code_verifier):
        """The token response for an authorization code (client_secret_basic/_post as registered)."""
        data = dict(grant_type="authorization_code", code=code, redirect_uri=redirect_uri,
                    code_verifier=code_verifier)
        auth = None
        if self.auth_method == "client_secret_post":
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        else:
            auth = (self.client_id, self.client_secret)
        r = requests.post(self.token_url, data=data, auth=auth, timeout=10)
        if r.status_code != 200:
            raise RuntimeError(f"code exchange failed: {r.status_code} {r.text}")
        return r.json()
