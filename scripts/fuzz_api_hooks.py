"""schemathesis hooks for scripts/fuzz-api: every request carries the run's root token.

schemathesis generates a value for the document's `X-Vault-Token` security scheme, which
overrides `-H`; the fuzzing is meant to reach the handlers, so a real token wins. Requests to
`revoke-self` get a fresh token of their own, so the run does not revoke its root token.
"""
import json
import os
import urllib.request

import schemathesis

TOKEN = os.environ["FUZZ_API_TOKEN"]
ADDR = os.environ["FUZZ_API_ADDR"]


def throwaway_token():
    req = urllib.request.Request(f"{ADDR}/v1/auth/token/create", method="POST",
                                 data=b'{"ttl":"10m"}', headers={"X-Vault-Token": TOKEN})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["auth"]["client_token"]


@schemathesis.hook
def before_call(context, case):
    if case.headers is None:
        case.headers = {}
    if case.operation.path == "/v1/auth/token/revoke-self":
        case.headers["X-Vault-Token"] = throwaway_token()
    else:
        case.headers["X-Vault-Token"] = TOKEN
