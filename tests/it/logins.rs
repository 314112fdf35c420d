//! Logins through the audit log: an AppRole and a JWT login each leave a request line whose
//! `secret_id` and `jwt` are HMAC'd (matching `iamlease audit hash`), a response line whose
//! token is HMAC'd, and none of the three appears in clear anywhere in the log.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::audit::{BinServer, audit_hash, lines};

#[tokio::test]
async fn logins_are_audited_with_their_secrets_hmacd() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let server = BinServer::start(
        dir.path(),
        &[("IAMLEASE_AUDIT_LOG", audit_path.display().to_string())],
    )
    .await;
    let ok = |(s, b, _): (StatusCode, Value, String)| {
        assert!(s.is_success(), "{s} {b}");
        b
    };

    ok(server
        .call("POST", "sys/auth/approle", json!({"type": "approle"}))
        .await);
    ok(server
        .call(
            "POST",
            "auth/approle/role/ci",
            json!({"token_policies": ["default"]}),
        )
        .await);
    let role_id = ok(server
        .call("GET", "auth/approle/role/ci/role-id", json!({}))
        .await)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = ok(server
        .call("POST", "auth/approle/role/ci/secret-id", json!({}))
        .await)["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approle_token = ok(server
        .call(
            "POST",
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await)["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A JWT mount with a PEM key of our own; the token is signed with its private half.
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    ok(server
        .call("POST", "sys/auth/jwt", json!({"type": "jwt"}))
        .await);
    ok(server
        .call(
            "POST",
            "auth/jwt/config",
            json!({"jwt_validation_pubkeys": [pair.public_key_pem()]}),
        )
        .await);
    ok(server
        .call(
            "POST",
            "auth/jwt/role/ci",
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["ci"]}),
        )
        .await);
    let now = iamlease::clock::now();
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &json!({"sub": "pipeline-7", "aud": "ci", "iat": now, "exp": now + 300}),
        &EncodingKey::from_ec_der(&pair.serialize_der()),
    )
    .unwrap();
    let login = ok(server
        .call("POST", "auth/jwt/login", json!({"role": "ci", "jwt": jwt}))
        .await);
    let jwt_token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(login["auth"]["metadata"], json!({"role": "ci"}));

    let text = std::fs::read_to_string(&audit_path).unwrap();
    for secret in [&secret_id, &approle_token, &jwt, &jwt_token] {
        assert!(
            !text.contains(secret.as_str()),
            "a login secret is in the audit log in clear"
        );
    }
    let log = lines(&audit_path);
    let is = |l: &Value, path: &str| {
        l["request"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(path))
    };
    let request = |path: &str| {
        log.iter()
            .find(|l| l["type"] == "request" && is(l, path))
            .unwrap_or_else(|| panic!("no request line for {path}"))
            .clone()
    };
    let approle = request("auth/approle/login");
    assert_eq!(
        approle["request"]["data"]["secret_id"],
        json!(audit_hash(&server.base, &secret_id).await)
    );
    assert_eq!(
        approle["request"]["data"]["role_id"],
        json!(role_id),
        "role_id is not a secret"
    );
    let jwt_line = request("auth/jwt/login");
    assert_eq!(
        jwt_line["request"]["data"]["jwt"],
        json!(audit_hash(&server.base, &jwt).await)
    );
    let response = log
        .iter()
        .find(|l| l["type"] == "response" && is(l, "auth/jwt/login"))
        .expect("a response line for the JWT login");
    assert_eq!(
        response["response"]["data"]["auth"]["client_token"],
        json!(audit_hash(&server.base, &jwt_token).await)
    );
    server.stop().await;
}
