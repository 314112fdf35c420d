//! The STS credential types and every way the server reaches AWS, against moto with its
//! authentication on: assumed-role credentials that GetCallerIdentity accepts, federation and
//! session tokens, a root config that assumes a role with an External ID (and one that is refused
//! for a wrong one), the default credential chain, root-key rotation, and bad input.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{iamlease, stderr, stdout};
use crate::support::moto::free_port;
use crate::support::proxy::start_recording_proxy;
use crate::support::{
    DOC, ROOT_TOKEN, TestApp, moto, random_name, sts_client, sts_client_with_token,
};

const ACCOUNT: &str = "123456789012";

/// GetCallerIdentity with issued STS credentials: only answers if moto accepts them.
async fn caller_arn(data: &Value) -> String {
    sts_client_with_token(
        &moto().url,
        data["access_key"].as_str().unwrap(),
        data["secret_key"].as_str().unwrap(),
        data["security_token"].as_str().unwrap(),
    )
    .get_caller_identity()
    .send()
    .await
    .expect("issued STS credentials authenticate")
    .arn
    .unwrap()
}

fn policy_of(call: &crate::support::proxy::Recorded) -> Value {
    serde_json::from_str(&call.field("Policy").expect("a session policy was sent")).unwrap()
}

fn policy_of_doc() -> Value {
    serde_json::from_str(DOC).unwrap()
}

async fn lookup(app: &TestApp, lease_id: &str) -> crate::support::Resp {
    app.call(
        "PUT",
        "sys/leases/lookup",
        Some(json!({"lease_id": lease_id})),
    )
    .await
}

#[tokio::test]
async fn assumed_role_credentials_act_as_the_role_session() {
    let app = TestApp::spawn().await;
    let proxy = start_recording_proxy(&moto().url).await;
    app.configure_via(&proxy.url).await;
    let role_name = random_name("deploy");
    let role_arn = moto().create_assumable_role(&role_name, None).await;
    app.write_role(
        "deploy",
        json!({
            "credential_type": "assumed_role",
            "role_arns": [role_arn],
            "policy_document": DOC,
            "session_tags": {"team": "platform"},
            "default_sts_ttl": "20m",
        }),
    )
    .await;

    let r = app
        .call("POST", &format!("{}/sts/deploy", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["renewable"], false);
    let duration = r.body["lease_duration"].as_i64().unwrap();
    assert!((1195..=1200).contains(&duration), "{duration}");
    let data = &r.body["data"];
    assert!(
        data["access_key"].as_str().unwrap().starts_with("ASIA"),
        "{data}"
    );
    assert!(data["username"].is_null(), "{data}");
    // What moto says the credentials are: the role, in a session named by the template.
    let who = caller_arn(data).await;
    assert_eq!(Some(who.as_str()), data["arn"].as_str());
    let prefix = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/iamlease-root-");
    assert!(who.starts_with(&prefix), "{who}");
    assert_eq!(who.len(), prefix.len() + 16, "{who}");

    // What was asked of AWS: the role's duration, session policy and tags.
    let calls = proxy.requests_of("AssumeRole");
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.field("RoleArn").as_deref(), Some(role_arn.as_str()));
    assert_eq!(call.field("DurationSeconds").as_deref(), Some("1200"));
    assert_eq!(policy_of(call), policy_of_doc());
    assert_eq!(call.field("Tags.member.1.Key").as_deref(), Some("team"));
    assert_eq!(
        call.field("Tags.member.1.Value").as_deref(),
        Some("platform")
    );
    // Who asked, in AWS's own record of the session: SourceIdentity and a session tag.
    assert_eq!(call.field("SourceIdentity").as_deref(), Some("root"));
    assert_eq!(
        call.field("Tags.member.2.Key").as_deref(),
        Some("iamlease:requester")
    );
    assert_eq!(call.field("Tags.member.2.Value").as_deref(), Some("root"));
    assert_eq!(call.field("ExternalId"), None);

    // The lease is recorded, listed and looked up, but not renewable.
    let lease_id = r.body["lease_id"].as_str().unwrap().to_owned();
    assert!(
        lease_id.starts_with(&format!("{}/sts/deploy/", app.mount)),
        "{lease_id}"
    );
    let look = lookup(&app, &lease_id).await;
    assert_eq!(look.status, StatusCode::OK, "{:?}", look.body);
    assert_eq!(look.body["data"]["renewable"], false);
    assert_eq!(look.body["data"]["state"], "active");
    let ttl = look.body["data"]["ttl"].as_i64().unwrap();
    assert!((1190..=1200).contains(&ttl), "{ttl}");
    let r = app
        .call(
            "LIST",
            // Named after the path that issued it, as in Vault.
            &format!("sys/leases/lookup/{}/sts/deploy/", app.mount),
            None,
        )
        .await;
    assert_eq!(r.body["data"]["keys"].as_array().unwrap().len(), 1);
    let r = app
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.error_text().contains("not renewable"), "{:?}", r.body);

    // creds/ works as well as sts/, with a session name and TTL of the caller's choosing.
    let r = app
        .issue(
            "deploy",
            json!({"ttl": "15m", "role_session_name": "alice@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["lease_duration"].as_i64().unwrap() <= 900);
    let who = caller_arn(&r.body["data"]).await;
    assert_eq!(
        who,
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/alice@example.com")
    );

    // Revoking forgets the lease (STS credentials cannot be revoked in AWS).
    app.revoke_all_and_check().await;
}

#[tokio::test]
async fn a_role_with_several_role_arns_assumes_the_one_the_request_names() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let (first, second) = (random_name("a"), random_name("b"));
    let first_arn = moto().create_assumable_role(&first, None).await;
    let second_arn = moto().create_assumable_role(&second, None).await;
    app.write_role(
        "multi",
        json!({"credential_type": "assumed_role", "role_arns": [first_arn, second_arn]}),
    )
    .await;

    let r = app.issue("multi", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.error_text().contains("choose one with role_arn"),
        "{:?}",
        r.body
    );
    let r = app
        .issue(
            "multi",
            json!({"role_arn": format!("arn:aws:iam::{ACCOUNT}:role/other")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.error_text()
            .contains("is not one of role multi's role_arns"),
        "{:?}",
        r.body
    );

    let r = app.issue("multi", json!({"role_arn": second_arn})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let who = caller_arn(&r.body["data"]).await;
    assert!(
        who.contains(&format!(":assumed-role/{second}/")),
        "assumed the role that was asked for: {who}"
    );
    app.call(
        "PUT",
        &format!("sys/leases/revoke-prefix/{}/", app.mount),
        None,
    )
    .await;
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn federation_and_session_tokens() {
    let app = TestApp::spawn().await;
    let proxy = start_recording_proxy(&moto().url).await;
    app.configure_via(&proxy.url).await;
    let policy = moto().create_policy(&random_name("p")).await;
    app.write_role(
        "fed",
        json!({"credential_type": "federation_token", "policy_document": DOC, "policy_arns": [policy]}),
    )
    .await;
    app.write_role("sess", json!({"credential_type": "session_token"}))
        .await;

    // federation_token: the federated user is named from the template (at most 32 characters).
    let r = app
        .call(
            "POST",
            &format!("{}/sts/fed", app.mount),
            Some(json!({"ttl": "2h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["renewable"], false);
    let d = r.body["lease_duration"].as_i64().unwrap();
    assert!((7195..=7200).contains(&d), "{d}");
    let data = &r.body["data"];
    assert!(
        data["security_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    // Vault's engine also puts the lifetime in data.ttl for STS credentials.
    assert_eq!(data["ttl"].as_i64(), Some(d), "{data}");
    let calls = proxy.requests_of("GetFederationToken");
    assert_eq!(calls.len(), 1);
    // The requester's name, cut so the whole name fits federation's 32 characters.
    let name = calls[0].field("Name").unwrap();
    assert!(
        name.starts_with("iamlease-root-") && name.len() == "iamlease-root-".len() + 8,
        "{name}"
    );
    assert_eq!(calls[0].field("DurationSeconds").as_deref(), Some("7200"));
    assert_eq!(policy_of(&calls[0]), policy_of_doc());
    assert_eq!(
        calls[0].field("PolicyArns.member.1.arn").as_deref(),
        Some(policy.as_str())
    );
    // The ARN is moto's answer for that name. (moto hands out one fixed key for federation and
    // session tokens that its own auth does not accept, so GetCallerIdentity cannot be asked.)
    assert_eq!(
        data["arn"],
        format!("arn:aws:sts::{ACCOUNT}:federated-user/{name}")
    );

    // session_token: no policies, the caller's identity; default one hour.
    let r = app
        .call("POST", &format!("{}/sts/sess", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let d = r.body["lease_duration"].as_i64().unwrap();
    assert!((3595..=3600).contains(&d), "{d}");
    let calls = proxy.requests_of("GetSessionToken");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].field("DurationSeconds").as_deref(), Some("3600"));
    assert_eq!(calls[0].field("SerialNumber"), None);
    let admin_arn = sts_client(&moto().url, &moto().admin_key, &moto().admin_secret)
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    assert_eq!(r.body["data"]["arn"], admin_arn.as_str());
    let look = lookup(&app, r.body["lease_id"].as_str().unwrap()).await;
    assert_eq!(look.body["data"]["renewable"], false);

    // With an MFA device, the code is required and passed on.
    let serial = format!("arn:aws:iam::{ACCOUNT}:mfa/admin");
    app.write_role(
        "mfa",
        json!({"credential_type": "session_token", "mfa_serial_number": serial, "max_sts_ttl": "2h"}),
    )
    .await;
    let r = app.issue("mfa", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.error_text().contains("mfa_code is required"),
        "{:?}",
        r.body
    );
    let r = app.issue("mfa", json!({"mfa_code": "12345"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.error_text().contains("6 digits"), "{:?}", r.body);
    let r = app.issue("mfa", json!({"mfa_code": "123456"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let calls = proxy.requests_of("GetSessionToken");
    assert_eq!(calls.len(), 2, "the refused requests never reached AWS");
    assert_eq!(calls[1].field("SerialNumber"), Some(serial));
    assert_eq!(calls[1].field("TokenCode").as_deref(), Some("123456"));
    // The role's max_sts_ttl (2h) caps the default of 1h not at all, and refuses 3h.
    assert_eq!(calls[1].field("DurationSeconds").as_deref(), Some("3600"));
    let r = app
        .issue("mfa", json!({"mfa_code": "123456", "ttl": "3h"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.error_text().contains("max_sts_ttl of 7200s"),
        "{:?}",
        r.body
    );

    app.call(
        "PUT",
        &format!("sys/leases/revoke-prefix/{}/", app.mount),
        None,
    )
    .await;
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn cli_credential_process_and_env_carry_the_session_token() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.as_str();
    let role_name = random_name("cli");
    let role_arn = moto().create_assumable_role(&role_name, None).await;
    let o = iamlease(
        &app,
        &[
            "role",
            "write",
            "ops",
            "--mount",
            m,
            "--credential-type",
            "assumed_role",
            "--role-arn",
            &role_arn,
            "--session-tag",
            "team=ops",
            "--max-sts-ttl",
            "2h",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));

    let o = iamlease(
        &app,
        &[
            "creds",
            "ops",
            "--mount",
            m,
            "--ttl",
            "30m",
            "--role-session-name",
            "cli-session",
            "--format",
            "credential-process",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let cp: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cp["Version"], 1);
    let token = cp["SessionToken"].as_str().expect("SessionToken is set");
    let expiration = time::OffsetDateTime::parse(
        cp["Expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = (expiration - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((1790..=1800).contains(&left), "{left}");
    let who = sts_client_with_token(
        &moto().url,
        cp["AccessKeyId"].as_str().unwrap(),
        cp["SecretAccessKey"].as_str().unwrap(),
        token,
    )
    .get_caller_identity()
    .send()
    .await
    .unwrap();
    assert_eq!(
        who.arn().unwrap(),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/cli-session")
    );

    let o = iamlease(&app, &["creds", "ops", "--mount", m, "--format", "env"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let env = stdout(&o);
    assert!(env.contains("export AWS_ACCESS_KEY_ID=ASIA"), "{env}");
    assert!(env.contains("export AWS_SESSION_TOKEN="), "{env}");

    // Above the role's maximum: refused, exit code 1, the limit named.
    let o = iamlease(&app, &["creds", "ops", "--mount", m, "--ttl", "3h"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("7200s"), "{}", stderr(&o));

    let o = iamlease(&app, &["lease", "revoke-prefix", &format!("{m}/")]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn a_root_config_with_role_arn_acts_as_the_assumed_role() {
    let app = TestApp::spawn().await;
    let proxy = start_recording_proxy(&moto().url).await;
    let role_name = random_name("iamlease-root");
    let role_arn = moto()
        .create_assumable_role(&role_name, Some("ext-7f3a"))
        .await;
    app.enable_mount().await;
    let m = moto();
    let r = app
        .write_root_config(json!({
            "access_key": m.admin_key,
            "secret_key": m.admin_secret,
            "iam_endpoint": proxy.url,
            "sts_endpoint": proxy.url,
            "role_arn": role_arn,
            "external_id": "ext-7f3a",
        }))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .call("GET", &format!("{}/config/root", app.mount), None)
        .await;
    assert_eq!(r.body["data"]["role_arn"], role_arn.as_str());
    assert_eq!(r.body["data"]["external_id"], "ext-7f3a");

    app.write_user_role("dev").await;
    for _ in 0..2 {
        let r = app.issue("dev", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let username = r.body["data"]["username"].as_str().unwrap();
        assert!(app.users_in_moto().await.iter().any(|u| u == username));
    }

    // The admin's keys were used once, to assume the role with the External ID; the assumed
    // credentials were cached and every IAM call was signed with them.
    let assumes = proxy.requests_of("AssumeRole");
    assert_eq!(assumes.len(), 1, "assumed once, then cached");
    assert_eq!(assumes[0].key_id, m.admin_key);
    assert_eq!(
        assumes[0].field("RoleArn").as_deref(),
        Some(role_arn.as_str())
    );
    assert_eq!(assumes[0].field("ExternalId").as_deref(), Some("ext-7f3a"));
    assert_eq!(
        assumes[0].field("RoleSessionName"),
        Some(format!("iamlease-{}", app.mount))
    );
    let creates = proxy.requests_of("CreateUser");
    assert_eq!(creates.len(), 2);
    for call in proxy
        .requests()
        .iter()
        .filter(|c| c.action().as_deref() != Some("AssumeRole"))
    {
        assert!(
            call.key_id.starts_with("ASIA"),
            "{:?} was signed with {}",
            call.action(),
            call.key_id
        );
    }

    // Revocation goes through the assumed role too.
    app.revoke_all_and_check().await;

    // A wrong External ID: the trust policy refuses it, the issue answers 502 with AWS's
    // reason, and nothing is left behind (no user, no failed lease).
    let r = app
        .write_root_config(json!({"external_id": "wrong-id"}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(r.error_text().contains("AccessDenied"), "{:?}", r.body);
    let refused = proxy.requests_of("AssumeRole");
    assert_eq!(
        refused.last().unwrap().field("ExternalId").as_deref(),
        Some("wrong-id")
    );
    // Two users were issued above; the refused AssumeRole stops the third before CreateUser.
    assert_eq!(
        proxy.requests_of("CreateUser").len(),
        2,
        "no CreateUser may be sent once AssumeRole is refused"
    );
    app.assert_nothing_left().await;
}

#[tokio::test]
async fn without_keys_the_server_uses_the_default_credential_chain() {
    // A real server process whose environment holds the admin's keys, as an EC2 instance or a
    // pod would hold credentials; the root config names no keys, only the role to assume.
    let proxy = start_recording_proxy(&moto().url).await;
    let role_name = random_name("chain");
    let role_arn = moto()
        .create_assumable_role(&role_name, Some("chain-id"))
        .await;
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(["server", "--dev", "--dev-root-token", ROOT_TOKEN])
        .env("IAMLEASE_LISTEN", format!("127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", &moto().admin_key)
        .env("AWS_SECRET_ACCESS_KEY", &moto().admin_secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let call = |method: &str, path: &str, body: Option<Value>| {
        let mut req = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{address}/v1/{path}"),
            )
            .header("X-Vault-Token", ROOT_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while call("GET", "sys/health", None).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let r = call(
        "POST",
        "aws/config/root",
        Some(json!({
            "iam_endpoint": proxy.url,
            "sts_endpoint": proxy.url,
            "role_arn": role_arn,
            "external_id": "chain-id",
        })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = call(
        "POST",
        "aws/roles/dev",
        Some(json!({"credential_type": "iam_user", "policy_document": DOC, "user_path": format!("/{role_name}/")})),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let r = call("POST", "aws/creds/dev", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let user = body["data"]["username"].as_str().unwrap();
    assert_eq!(
        moto()
            .users_under(&format!("/{role_name}/"))
            .await
            .iter()
            .map(|u| u.user_name.as_str())
            .collect::<Vec<_>>(),
        [user]
    );
    let assumes = proxy.requests_of("AssumeRole");
    assert_eq!(assumes.len(), 1);
    assert_eq!(
        assumes[0].key_id,
        moto().admin_key,
        "keys from the environment"
    );
    assert!(
        proxy.requests_of("CreateUser")[0]
            .key_id
            .starts_with("ASIA")
    );

    // Rotation needs keys of our own to rotate.
    let r = call("POST", "aws/config/rotate-root", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("no static access_key to rotate"),
        "{body}"
    );

    let r = call("PUT", "sys/leases/revoke-prefix/aws/", None)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        moto()
            .users_under(&format!("/{role_name}/"))
            .await
            .is_empty()
    );
    server.kill().await.unwrap();
}

#[tokio::test]
async fn rotate_root_leaves_exactly_the_new_key() {
    let app = TestApp::spawn().await;
    // A root user of this test's own: rotating the shared admin's key would break every other test.
    let admin = moto().iam();
    let root_user = random_name("root");
    admin
        .create_user()
        .user_name(&root_user)
        .send()
        .await
        .unwrap();
    admin
        .put_user_policy()
        .user_name(&root_user)
        .policy_name("admin")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let key = admin
        .create_access_key()
        .user_name(&root_user)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    app.enable_mount().await;
    let r = app
        .write_root_config(json!({
            "access_key": key.access_key_id,
            "secret_key": key.secret_access_key,
            "iam_endpoint": moto().url,
            "sts_endpoint": moto().url,
        }))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    app.write_user_role("dev").await;
    assert_eq!(app.issue("dev", json!({})).await.status, StatusCode::OK);

    let keys_of_root = || async {
        moto()
            .iam()
            .list_access_keys()
            .user_name(&root_user)
            .send()
            .await
            .unwrap()
            .access_key_metadata
            .into_iter()
            .filter_map(|k| k.access_key_id)
            .collect::<Vec<_>>()
    };
    let mut current = key.access_key_id.clone();
    for _ in 0..2 {
        let r = app
            .call("POST", &format!("{}/config/rotate-root", app.mount), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let new_key = r.body["data"]["access_key"].as_str().unwrap().to_owned();
        assert_ne!(new_key, current);
        assert_eq!(
            keys_of_root().await,
            std::slice::from_ref(&new_key),
            "only the new key is left"
        );
        let r = app
            .call("GET", &format!("{}/config/root", app.mount), None)
            .await;
        assert_eq!(r.body["data"]["access_key"], new_key.as_str());
        // Issuing (and so the cached clients) moved to the new key.
        let r = app.issue("dev", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        current = new_key;
    }
    // The original key no longer authenticates.
    let err = sts_client(&moto().url, &key.access_key_id, &key.secret_access_key)
        .get_caller_identity()
        .send()
        .await
        .expect_err("the rotated-away key is deleted");
    assert!(
        format!("{err:?}").contains("InvalidClientTokenId"),
        "{err:?}"
    );

    let o = iamlease(&app, &["config", "rotate-root", "--mount", &app.mount]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Rotated the root access key"),
        "{}",
        stdout(&o)
    );
    let after_cli = keys_of_root().await;
    assert_eq!(after_cli.len(), 1);
    assert_ne!(after_cli[0], current);

    app.revoke_all_and_check().await;
    // Tidy up the test's own root user.
    for k in keys_of_root().await {
        admin
            .delete_access_key()
            .user_name(&root_user)
            .access_key_id(k)
            .send()
            .await
            .unwrap();
    }
    admin
        .delete_user_policy()
        .user_name(&root_user)
        .policy_name("admin")
        .send()
        .await
        .unwrap();
    admin
        .delete_user()
        .user_name(&root_user)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_sts_input_gets_a_400_naming_the_field_and_limit() {
    let app = TestApp::spawn().await;
    let proxy = start_recording_proxy(&moto().url).await;
    app.configure_via(&proxy.url).await;
    let m = app.mount.clone();
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{}", random_name("never"));
    let expect_400 = |r: crate::support::Resp, needles: &[&str]| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        for n in needles {
            assert!(r.error_text().contains(n), "{n:?} not in {:?}", r.body);
        }
    };

    // Role writes.
    expect_400(
        role_write(
            &app,
            "u",
            json!({"credential_type": "iam_user", "policy_document": DOC, "role_arns": [role_arn]}),
        )
        .await,
        &["role_arns", "assumed_role"],
    );
    expect_400(
        role_write(&app, "f",
            json!({"credential_type": "federation_token", "policy_document": DOC, "default_sts_ttl": 899}),
        )
        .await,
        &["default_sts_ttl", "899s", "900s"],
    );
    expect_400(
        role_write(&app, "f",
            json!({"credential_type": "federation_token", "policy_document": DOC, "username_template": "iamlease-federated-{{random}}"}),
        )
        .await,
        &["username_template", "renders up to 35 characters", "32"],
    );
    expect_400(
        role_write(
            &app,
            "s",
            json!({"credential_type": "session_token", "policy_document": DOC}),
        )
        .await,
        &["session_token", "policy_document"],
    );
    expect_400(
        role_write(&app, "a",
            json!({"credential_type": "assumed_role", "role_arns": [role_arn], "max_sts_ttl": "13h"}),
        )
        .await,
        &["max_sts_ttl", "43200s"],
    );

    // Requests.
    app.write_role(
        "fed",
        json!({"credential_type": "federation_token", "policy_document": DOC}),
    )
    .await;
    app.write_role(
        "ar",
        json!({"credential_type": "assumed_role", "role_arns": [role_arn]}),
    )
    .await;
    app.write_user_role("user").await;
    expect_400(
        app.issue("fed", json!({"ttl": 899})).await,
        &["ttl is 899s", "at least 900s"],
    );
    expect_400(
        app.issue("fed", json!({"ttl": "37h"})).await,
        &["ttl is 133200s", "sts:GetFederationToken", "129600s"],
    );
    expect_400(
        app.issue("ar", json!({"ttl": "13h"})).await,
        &["sts:AssumeRole", "43200s"],
    );
    expect_400(
        app.issue(
            "ar",
            json!({"role_arn": format!("arn:aws:iam::{ACCOUNT}:role/elsewhere")}),
        )
        .await,
        &["role_arn", "is not one of role ar's role_arns"],
    );
    expect_400(
        app.issue("ar", json!({"role_session_name": "has space"}))
            .await,
        &["role_session_name", "2 to 64"],
    );
    expect_400(
        app.issue("ar", json!({"role_session_name": "x".repeat(65)}))
            .await,
        &["role_session_name", "2 to 64"],
    );
    expect_400(
        app.issue("fed", json!({"role_arn": role_arn})).await,
        &["role_arn only applies to assumed_role"],
    );
    expect_400(
        app.issue("user", json!({"mfa_code": "123456"})).await,
        &["mfa_code only applies to session_token"],
    );
    expect_400(
        app.call("POST", &format!("{m}/sts/user"), None).await,
        &[&format!("{m}/creds/user")],
    );
    assert!(
        proxy
            .requests()
            .iter()
            .all(|c| !c.body.contains("Action=Get") && !c.body.contains("Action=Assume")),
        "no STS call was made for a refused request: {:?}",
        proxy.bodies()
    );

    // config/root.
    for (body, needles) in [
        (
            json!({"role_arn": "arn:aws:iam::12345:role/x"}),
            vec!["role_arn", "not an IAM role ARN"],
        ),
        (json!({"role_arn": "my-role"}), vec!["role_arn"]),
        (
            json!({"role_arn": role_arn, "external_id": "has space"}),
            vec!["external_id", "2 to 1224"],
        ),
        (
            json!({"role_arn": "", "external_id": "abc"}),
            vec!["external_id", "set role_arn"],
        ),
        (
            json!({"access_key": "AKIAEXAMPLE"}),
            vec!["access_key and secret_key must be given together"],
        ),
    ] {
        expect_400(app.write_root_config(body).await, &needles);
    }
    // None of that changed the stored config.
    let r = app.call("GET", &format!("{m}/config/root"), None).await;
    assert_eq!(r.body["data"]["role_arn"], "");
    assert_eq!(r.body["data"]["access_key"], moto().admin_key.as_str());
    app.assert_nothing_left().await;
}

async fn role_write(app: &TestApp, name: &str, body: Value) -> crate::support::Resp {
    app.call("POST", &format!("{}/roles/{name}", app.mount), Some(body))
        .await
}
