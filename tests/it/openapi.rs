//! The OpenAPI document: served without a token, and the same as the committed `docs/openapi.json`.

use reqwest::StatusCode;

use crate::support::TestApp;

#[tokio::test]
async fn openapi_document_is_served_without_a_token_and_matches_docs() {
    let app = TestApp::spawn().await;
    let r = app
        .call_with_token(None, "GET", "sys/openapi.json", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/openapi.json"))
            .expect("docs/openapi.json is JSON");
    assert_eq!(
        r.body, committed,
        "the served document differs from docs/openapi.json; regenerate it with \
         `cargo run -- openapi > docs/openapi.json`"
    );
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/sys/health",
        "/v1/{mount}/creds/{name}",
        "/v1/sys/leases/renew",
    ] {
        assert!(r.body["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        r.body["components"]["securitySchemes"]["vault_token"]["name"],
        "X-Vault-Token"
    );
}
