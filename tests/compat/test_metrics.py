"""`GET /v1/sys/metrics?format=prometheus`: parsed with prometheus_client's own text parser,
and its counters and gauges move as credentials are issued and revoked; and `sys/audit-hash`."""
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import DOC, TOKEN, users_under


def scrape(server, token=TOKEN):
    r = requests.get(f"{server}/v1/sys/metrics", params={"format": "prometheus"},
                     headers={"X-Vault-Token": token})
    assert r.status_code == 200, r.text
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    """The sum over series of `name` whose labels include `labels` (0 when there are none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_metrics_need_a_token_and_parse(server):
    r = requests.get(f"{server}/v1/sys/metrics?format=prometheus")
    assert r.status_code == 403
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["errors"]
    r = requests.get(f"{server}/v1/sys/metrics?format=xml", headers={"X-Vault-Token": TOKEN})
    assert r.status_code == 400 and "format" in r.json()["errors"][0]
    assert scrape(server)  # parses, and is not empty


def test_counters_move_as_credentials_are_issued_and_revoked(client, server, mount, moto):
    client.secrets.aws.create_or_update_role("dev", "iam_user", policy_document=DOC, mount_point=mount)
    before = scrape(server)
    creds = client.secrets.aws.generate_credentials(name="dev", mount_point=mount)
    during = scrape(server)
    route = "/v1/{mount}/creds/{name}"
    assert value(during, "iamlease_http_requests_total", route=route, status="200") == \
        value(before, "iamlease_http_requests_total", route=route, status="200") + 1
    assert value(during, "iamlease_leases", mount=mount, role="dev", state="active") == 1
    assert value(during, "iamlease_aws_calls_total", operation="CreateUser", outcome="ok") >= \
        value(before, "iamlease_aws_calls_total", operation="CreateUser", outcome="ok") + 1
    assert value(during, "iamlease_aws_calls_total", operation="CreateAccessKey", outcome="ok") >= \
        value(before, "iamlease_aws_calls_total", operation="CreateAccessKey", outcome="ok") + 1
    assert value(during, "iamlease_issue_duration_seconds_count", outcome="ok") >= \
        value(before, "iamlease_issue_duration_seconds_count", outcome="ok") + 1

    client.sys.revoke_lease(creds["lease_id"])
    assert users_under(moto, mount) == []
    after = scrape(server)
    assert value(after, "iamlease_leases", mount=mount, role="dev", state="active") == 0
    assert value(after, "iamlease_aws_calls_total", operation="DeleteUser", outcome="ok") >= \
        value(during, "iamlease_aws_calls_total", operation="DeleteUser", outcome="ok") + 1
    assert value(after, "iamlease_revocations_total", outcome="ok") >= \
        value(during, "iamlease_revocations_total", outcome="ok") + 1
    assert value(after, "iamlease_revoke_duration_seconds_count", outcome="ok") >= 1

    # An AWS error is counted by its code: a role whose policy ARN does not exist.
    client.secrets.aws.create_or_update_role(
        "broken", "iam_user", policy_arns=["arn:aws:iam::123456789012:policy/missing"], mount_point=mount)
    r = requests.post(f"{server}/v1/{mount}/creds/broken", headers={"X-Vault-Token": TOKEN})
    assert r.status_code == 502, r.text
    failed = scrape(server)
    assert value(failed, "iamlease_aws_errors_total", operation="iam:AttachUserPolicy", code="NoSuchEntity") >= 1
    assert users_under(moto, mount) == []


def test_audit_hash_through_hvac(client):
    first = client.sys.calculate_hash("file", "AKIA-secret-value")["data"]["hash"]
    assert first.startswith("hmac-sha256:") and len(first) == len("hmac-sha256:") + 64
    assert client.sys.calculate_hash("file", "AKIA-secret-value")["data"]["hash"] == first
    assert client.sys.calculate_hash("file", "another")["data"]["hash"] != first
