"""schemathesis hooks for scripts/fuzz-api: real tokens, and live values for the document's examples.

schemathesis generates a value for the document's `X-Vault-Token` security scheme, which
overrides `-H`; the fuzzing is meant to reach the handlers, so the run's root token wins.
Requests to `revoke-self` get a fresh token of their own, so the run does not revoke its root.

The document's examples (docs/openapi.json) show a valid request for every operation, but some
values cannot be static: a lease id, a token, a secret ID, an OIDC state exist only once the
server made them. Each such example value is a placeholder here, and `before_call` swaps it for
a live one made just before the request (a fresh lease, a throwaway token, a real sign-in at the
OpenID Provider this module starts), so the explicit examples reach the handlers and succeed.
Generated (non-example) values are left alone.
"""
import atexit
import json
import os
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import schemathesis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
from oidc import Provider  # noqa: E402  (the OpenID Provider harness of the compat suite)

TOKEN = os.environ["FUZZ_API_TOKEN"]
ADDR = os.environ["FUZZ_API_ADDR"]
MOTO = os.environ["FUZZ_API_MOTO"]
ROOT_LOCK = threading.Lock()
REDIRECT = "http://127.0.0.1:8250/oidc/callback"


def call(method, path, body=None, token=TOKEN):
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-Vault-Token": token} if token else {}
    req = urllib.request.Request(f"{ADDR}/v1/{path}", method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None
    return json.loads(text) if text else {}


# ---- the state the examples name (the AWS mount, `dev` and `fuzz-lease` are set up by fuzz-api) ----

provider = Provider().start()
atexit.register(provider.stop)


def oidc_config():
    return {"oidc_discovery_url": provider.issuer, "oidc_client_id": provider.client_id,
            "oidc_client_secret": provider.client_secret, "default_role": "person"}


def prepare_oidc():
    """The `jwt` mount as its examples expect it: discovery at the provider, the `person` role."""
    call("POST", "auth/jwt/config", oidc_config())
    call("POST", "auth/jwt/role/person", {
        "role_type": "oidc", "user_claim": "email", "allowed_redirect_uris": [REDIRECT],
        "oidc_scopes": ["email"], "token_policies": ["dev-creds"], "token_ttl": "20m"})


call("POST", "sys/auth/jwt", {"type": "jwt"})
prepare_oidc()


# ---- live values ----

def real_root_config():
    """`rotate-root` makes a new key for the user whose key the mount holds: a generated
    `config/root` write may have put a made-up key (or endpoint) there, which AWS rightly refuses
    (a 502). Before each rotation the mount gets a real key of `fuzz-admin` again."""
    import boto3  # the fuzzing venv has it (scripts/requirements-test.txt)
    iam = boto3.client("iam", endpoint_url=MOTO, region_name="us-east-1",
                       aws_access_key_id="AKIAFUZZ", aws_secret_access_key="fuzz")
    for k in iam.list_access_keys(UserName="fuzz-admin")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="fuzz-admin", AccessKeyId=k["AccessKeyId"])
    key = iam.create_access_key(UserName="fuzz-admin")["AccessKey"]
    call("POST", "aws/config/root", {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"],
                                     "region": "us-east-1", "iam_endpoint": MOTO, "sts_endpoint": MOTO,
                                     "role_arn": "", "external_id": "", "max_retries": -1})


def throwaway_token():
    return call("POST", "auth/token/create", {"ttl": "10m"})["auth"]


def fresh_lease():
    return call("PUT", "aws/creds/fuzz-lease", {"ttl": "10m"})


def new_secret_id():
    return call("POST", "auth/approle/role/ci/secret-id", {"ttl": "10m"})["data"]


def oidc_sign_in():
    prepare_oidc()
    url = call("POST", "auth/jwt/oidc/auth_url", {"role": "person", "redirect_uri": REDIRECT},
               token=None)["data"]["auth_url"]
    back = urllib.parse.parse_qs(urllib.parse.urlparse(provider.browser_login(url)).query)
    return back["state"][0], back["code"][0]


class Live:
    """The live values of one request: each placeholder is made at most once per request, so
    a `role_id` and `secret_id` (or a `state` and `code`) belong together."""

    def __init__(self):
        self.made = {}

    def _once(self, key, make):
        if key not in self.made:
            self.made[key] = make()
        return self.made[key]

    def value(self, placeholder):
        maker = PLACEHOLDERS.get(placeholder)
        return placeholder if maker is None else maker(self)


PLACEHOLDERS = {
    "s.ExampleToken0000000000": lambda live: live._once("token", throwaway_token)["client_token"],
    "ExampleAccessor000000000": lambda live: live._once("token", throwaway_token)["accessor"],
    "aws/creds/dev/ExampleLeaseId00000000": lambda live: live._once("lease", fresh_lease)["lease_id"],
    "aws/creds/dev/": lambda live: live._once("lease", fresh_lease)["lease_id"].rsplit("/", 1)[0] + "/",
    "AKIAIOSFODNN7EXAMPLE": lambda live: live._once("lease", fresh_lease)["data"]["access_key"],
    "ExampleRoleId-0000": lambda live: live._once(
        "role_id", lambda: call("GET", "auth/approle/role/ci/role-id")["data"]["role_id"]),
    "ExampleSecretId-0000": lambda live: live._once("secret_id", new_secret_id)["secret_id"],
    "ExampleSecretIdAccessor-0000": lambda live: live._once("secret_id", new_secret_id)["secret_id_accessor"],
    "ExampleRoleId-0001": lambda live: "role-id-" + secrets.token_hex(8),
    "ExampleCustomSecretId-0000": lambda live: "custom-" + secrets.token_hex(12),
    "aws-example": lambda live: "aws-ex-" + secrets.token_hex(4),
    "approle-example": lambda live: "approle-ex-" + secrets.token_hex(4),
    "https://idp.example.com": lambda live: provider.issuer,
    "ExampleClientSecret-0000": lambda live: provider.client_secret,
    "ExampleState-0000": lambda live: live._once("oidc", oidc_sign_in)[0],
    "ExampleCode-0000": lambda live: live._once("oidc", oidc_sign_in)[1],
}

# Deleting the examples' `retired` role needs one to exist; it is made again before each delete
# (the static one over the IAM user `retired-user` that fuzz-api creates in moto).
RETIRED = {
    "/v1/{mount}/roles/{name}": ("aws/roles/retired", {
        "credential_type": "iam_user",
        "policy_document": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})}),
    "/v1/auth/{mount}/role/{name}": ("auth/approle/role/retired", {"token_policies": ["default"]}),
    "/v1/{mount}/static-roles/{name}": ("aws/static-roles/retired", {
        "username": "retired-user", "rotation_period": "24h"}),
}


def swap(value, live):
    if isinstance(value, str):
        return live.value(value)
    if isinstance(value, dict):
        return {k: swap(v, live) for k, v in value.items()}
    if isinstance(value, list):
        return [swap(v, live) for v in value]
    return value


@schemathesis.hook
def before_call(context, case):
    if case.headers is None:
        case.headers = {}
    path = case.operation.path
    if path == "/v1/auth/token/revoke-self":
        case.headers["X-Vault-Token"] = throwaway_token()["client_token"]
    else:
        case.headers["X-Vault-Token"] = TOKEN
    live = Live()
    for part in ("path_parameters", "query", "body"):
        value = getattr(case, part, None)
        if isinstance(value, (dict, list)):
            setattr(case, part, swap(value, live))
    params = case.path_parameters or {}
    if case.operation.method.upper() == "DELETE" and params.get("name") == "retired" and path in RETIRED:
        if params.get("mount") in ("aws", "approle"):
            call("POST", *RETIRED[path])
    if path == "/v1/sys/leases/lookup" and case.operation.method.upper() == "GET":
        live._once("lease", fresh_lease)  # something to list
    if path == "/v1/{mount}/config/rotate-root" and params.get("mount") == "aws":
        # One rotation at a time (the two workers would each make a key, and IAM allows two):
        # held until `after_call`, with a timeout so a lost response cannot stall the run.
        ROOT_LOCK.acquire(timeout=120)
        real_root_config()
    if path == "/v1/auth/{mount}/oidc/auth_url" and params.get("mount") == "jwt":
        prepare_oidc()  # a generated config write may have replaced the provider's


@schemathesis.hook
def after_call(context, case, response):
    if case.operation.path == "/v1/{mount}/config/rotate-root" and ROOT_LOCK.locked():
        try:
            ROOT_LOCK.release()
        except RuntimeError:
            pass
