"""Fixtures for the hvac compatibility suite: one moto (auth on, with an admin user) and one
real iamlease server (the built binary, dev mode) per session; a fresh mount per test."""
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request

import boto3
import hvac
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The binary scripts/test just built, wherever CARGO_TARGET_DIR (relative to the repo) puts it.
BINARY = os.environ.get("IAMLEASE_BIN", os.path.join(
    ROOT, os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "iamlease"))
TOKEN = "compat-root-token"
DOC = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(url):
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


@pytest.fixture(scope="session")
def moto():
    port = free_port()
    proc = subprocess.Popen([os.path.join(ROOT, ".venv", "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/moto-api/data.json")
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset-auth", data=b"0",
                                                  headers={"Content-Type": "text/plain"}))
    admin = dict(endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    yield {"url": url, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"],
           "iam": boto3.client("iam", **admin)}
    proc.terminate()
    proc.wait(10)


# Where the session's server keeps its store, for tests that grep it for secrets.
STORE = {}


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    port = free_port()
    STORE["dir"] = str(tmp_path_factory.mktemp('store'))
    env = dict(os.environ, IAMLEASE_LISTEN=f"127.0.0.1:{port}",
               IAMLEASE_STORAGE=f"sqlite://{STORE['dir']}/compat.db")
    proc = subprocess.Popen([BINARY, "server", "--dev", "--dev-root-token", TOKEN], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/v1/sys/health")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def client(server):
    return hvac.Client(url=server, token=TOKEN)


@pytest.fixture
def mount(client, moto):
    """A fresh aws mount pointed at moto, so each test's users live under their own IAM path."""
    path = "c" + secrets.token_hex(5)
    client.sys.enable_secrets_engine("aws", path=path)
    client.secrets.aws.configure_root_iam_credentials(
        access_key=moto["key"], secret_key=moto["secret"], region="us-east-1",
        iam_endpoint=moto["url"], sts_endpoint=moto["url"], max_retries=None, mount_point=path)
    yield path


def users_under(moto, mount):
    return [u["UserName"] for u in moto["iam"].list_users(PathPrefix=f"/iamlease/{mount}/")["Users"]]


@pytest.fixture(scope="session")
def oidc(tmp_path_factory):
    """One real OpenID Provider (tests/oidc, oidc-provider) per session; see oidc.py."""
    from oidc import Provider
    provider = Provider(workdir=str(tmp_path_factory.mktemp("oidc"))).start()
    yield provider
    provider.stop()
