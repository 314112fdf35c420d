"""hvac over HTTPS: iamlease serving a certificate this test makes, hvac verifying it with
`verify=<CA file>` (and refusing it without)."""
import datetime
import ipaddress
import os
import subprocess
import time

import hvac
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import BINARY, TOKEN, free_port


def self_signed(directory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iamlease-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path):
    cert, key = self_signed(str(tmp_path))
    port = free_port()
    env = dict(os.environ, IAMLEASE_LISTEN=f"127.0.0.1:{port}", IAMLEASE_TLS_CERT_FILE=cert,
               IAMLEASE_TLS_KEY_FILE=key)
    proc = subprocess.Popen([BINARY, "server", "--dev", "--dev-root-token", TOKEN], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(url + "/v1/sys/health", verify=cert, timeout=1)
            break
        except requests.exceptions.ConnectionError:
            time.sleep(0.1)
    yield url, cert
    proc.terminate()
    proc.wait(35)


def test_hvac_verifies_the_servers_certificate(tls_server):
    url, cert = tls_server
    client = hvac.Client(url=url, token=TOKEN, verify=cert)
    assert client.is_authenticated()
    assert "aws/" in client.sys.list_mounted_secrets_engines()["data"]
    with pytest.raises(requests.exceptions.SSLError):
        hvac.Client(url=url, token=TOKEN).sys.list_mounted_secrets_engines()
