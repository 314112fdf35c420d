//! Guided AWS setup: `iamlease setup aws` prints valid policy documents that list every IAM
//! call the server makes, and `--apply` creates them in moto, after which issuing and revoking
//! work through the created role (AssumeRole with the generated External ID).

use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{stderr, stdout};
use crate::support::{DOC, ROOT_TOKEN, TestApp, moto, random_name};

/// The CLI with the admin's AWS keys in its environment (its default chain) aimed at moto.
async fn setup_cli(app: &TestApp, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_iamlease"))
        .args(args)
        .env("IAMLEASE_ADDR", &app.address)
        .env("IAMLEASE_TOKEN", ROOT_TOKEN)
        .env("AWS_ACCESS_KEY_ID", &moto().admin_key)
        .env("AWS_SECRET_ACCESS_KEY", &moto().admin_secret)
        .env("AWS_ENDPOINT_URL", &moto().url)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .await
        .unwrap()
}

fn actions_of(policy: &Value) -> Vec<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        })
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// Every `"iam:Operation"` that `src/aws/` names for a call the server makes with the mount's
/// credentials (`aws/setup.rs` runs with the operator's own credentials, so it is left out).
fn iam_operations_in_src_aws() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws");
    let mut ops = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "setup.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split("\"iam:").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            ops.push(format!("iam:{name}"));
        }
    }
    ops.sort();
    ops.dedup();
    ops
}

#[tokio::test]
async fn setup_prints_valid_policies_that_list_every_iam_call_the_server_makes() {
    let app = TestApp::spawn().await;
    let o = setup_cli(
        &app,
        &[
            "setup",
            "aws",
            "--path-prefix",
            "/team-a/",
            "--format",
            "json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(&stdout(&o)).expect("setup --format json is JSON");
    assert_eq!(
        out["principal_arn"], "arn:aws:iam::123456789012:user/iamlease-admin",
        "the trust policy names the caller from sts:GetCallerIdentity"
    );
    let id = out["external_id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        out["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        id
    );
    let policy = &out["policy"];
    // No statement is unscoped but iam:GetAccountSummary, which names no resource (IAM
    // authorises it only on "*") and reveals counts only.
    for s in policy["Statement"].as_array().unwrap() {
        if s["Action"] != serde_json::json!(["iam:GetAccountSummary"]) {
            assert_ne!(s["Resource"], "*", "no statement may be unscoped: {s}");
        }
    }
    assert_eq!(
        policy["Statement"][0]["Resource"],
        "arn:aws:iam::*:user/team-a/*"
    );
    let listed = actions_of(policy);
    let called = iam_operations_in_src_aws();
    assert!(called.len() >= 25, "found too few IAM calls: {called:?}");
    let missing: Vec<_> = called.iter().filter(|a| !listed.contains(a)).collect();
    assert!(
        missing.is_empty(),
        "IAM calls not in the setup policy: {missing:?}"
    );

    // Two runs, two External IDs.
    let again = setup_cli(&app, &["setup", "aws", "--format", "json"]).await;
    let again: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_ne!(again["external_id"], out["external_id"]);

    // The text form is a shell script: the two documents as heredocs, each valid JSON, and
    // the commands that use them.
    let o = setup_cli(
        &app,
        &[
            "setup",
            "aws",
            "--boundary-arn",
            "arn:aws:iam::123456789012:policy/boundary",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let docs: Vec<Value> = text
        .split("<<'EOF'\n")
        .skip(1)
        .map(|rest| rest.split("\nEOF\n").next().unwrap())
        .map(|json| serde_json::from_str(json).expect("each heredoc is a JSON document"))
        .collect();
    assert_eq!(docs.len(), 2, "{text}");
    assert_eq!(
        docs[0]["Statement"][0]["Condition"]["StringEquals"]["iam:PermissionsBoundary"],
        "arn:aws:iam::123456789012:policy/boundary"
    );
    assert!(text.contains("aws iam create-role --role-name iamlease-aws"));
    assert!(text.contains("cat > iamlease-trust.json <<'EOF'"));

    // Bad input is a usage error naming the rule.
    let o = setup_cli(&app, &["setup", "aws", "--path-prefix", "nope"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("must start and end with '/'"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn setup_apply_creates_the_role_and_issuing_works_through_it() {
    let app = TestApp::spawn().await;
    // The server's own identity is the admin user (its stored keys); the role it will assume
    // trusts exactly that principal, with the External ID.
    app.configure().await;
    let m = app.mount.clone();
    let prefix = app.path_prefix();
    let name = random_name("setup");

    // The API form (what the console shows): the principal is the mount's own identity.
    let plan = app
        .call("GET", &format!("{m}/setup?path_prefix={prefix}"), None)
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{:?}", plan.body);
    assert_eq!(
        plan.body["data"]["principal_arn"],
        "arn:aws:iam::123456789012:user/iamlease-admin"
    );
    assert_eq!(
        plan.body["data"]["policy"]["Statement"][0]["Resource"],
        format!("arn:aws:iam::*:user{prefix}*")
    );
    let bad = app
        .call("GET", &format!("{m}/setup?path_prefix=nope"), None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error_text().contains("must start and end with '/'"));
    let check = app.call("POST", &format!("{m}/config/check"), None).await;
    assert_eq!(
        check.body["data"]["arn"],
        "arn:aws:iam::123456789012:user/iamlease-admin"
    );
    let o = setup_cli(
        &app,
        &[
            "setup",
            "aws",
            "--mount",
            &m,
            "--path-prefix",
            &prefix,
            "--role-name",
            &name,
            "--policy-name",
            &name,
            "--apply",
            "--iam-endpoint",
            &moto().url,
            "--sts-endpoint",
            &moto().url,
            "--format",
            "json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let applied: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let role_arn = applied["role_arn"].as_str().unwrap();
    let external_id = applied["external_id"].as_str().unwrap();
    assert!(
        applied["acting_as"]
            .as_str()
            .unwrap()
            .starts_with(&format!("arn:aws:sts::123456789012:assumed-role/{name}/")),
        "{applied}"
    );

    // What moto holds: the policy as printed, attached to the role, and the trust policy.
    let iam = moto().iam();
    let role = iam.get_role().role_name(&name).send().await.unwrap();
    let trust: Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(
            role.role().unwrap().assume_role_policy_document().unwrap(),
        )
        .decode_utf8_lossy(),
    )
    .unwrap();
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        external_id
    );
    let attached = iam
        .list_attached_role_policies()
        .role_name(&name)
        .send()
        .await
        .unwrap();
    let policy_arn = applied["policy_arn"].as_str().unwrap();
    assert_eq!(
        attached.attached_policies()[0].policy_arn(),
        Some(policy_arn)
    );
    let version = iam
        .get_policy_version()
        .policy_arn(policy_arn)
        .version_id("v1")
        .send()
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(
            version.policy_version().unwrap().document().unwrap(),
        )
        .decode_utf8_lossy(),
    )
    .unwrap();
    let root = app.call("GET", &format!("{m}/config/root"), None).await;
    assert_eq!(root.body["data"]["role_arn"], role_arn);
    assert_eq!(root.body["data"]["external_id"], external_id);

    // moto checks IAM actions only against Resource "*" (it never computes a user's ARN), so
    // the scoped policy would deny everything there. Give the role the same actions with
    // Resource "*": any IAM call the server makes that the policy does not list is then still
    // refused by moto, and this test fails. (Scoping is checked on the documents above.)
    let mut widened = stored.clone();
    for s in widened["Statement"].as_array_mut().unwrap() {
        s["Resource"] = json!("*");
    }
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("moto-cannot-match-resources")
        .policy_document(widened.to_string())
        .send()
        .await
        .unwrap();
    iam.detach_role_policy()
        .role_name(&name)
        .policy_arn(policy_arn)
        .send()
        .await
        .unwrap();

    app.write_role(
        "dev",
        json!({"credential_type": "iam_user", "policy_document": DOC, "iam_tags": ["team=setup"]}),
    )
    .await;
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let user = r.body["data"]["username"].as_str().unwrap().to_owned();
    assert_eq!(app.users_in_moto().await, [user]);
    let lease = r.body["lease_id"].as_str().unwrap();
    let r = app
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": lease, "increment": "2h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .call("PUT", "sys/leases/revoke", Some(json!({"lease_id": lease})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    app.assert_nothing_left().await;

    // Take away one listed action and the server is refused: the grant above is what allows it.
    let mut narrowed = widened.clone();
    for s in narrowed["Statement"].as_array_mut().unwrap() {
        if let Some(a) = s["Action"].as_array_mut() {
            a.retain(|x| x != "iam:CreateAccessKey");
        }
    }
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("moto-cannot-match-resources")
        .policy_document(narrowed.to_string())
        .send()
        .await
        .unwrap();
    let r = app.issue("dev", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(r.error_text().contains("AccessDenied"), "{:?}", r.body);
    app.assert_nothing_left().await;
}

/// A second `--apply` converges on what the first made: a new default policy version, the
/// role's trust policy replaced (the new External ID), config/root rewritten; and the printed
/// plan carries the endpoint flags too.
#[tokio::test]
async fn setup_apply_again_updates_instead_of_failing() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    let name = random_name("again");
    let url = moto().url.clone();
    let apply = |external_id: Option<&'static str>| {
        let (app, m, name, url) = (&app, m.clone(), name.clone(), url.clone());
        async move {
            let mut args = vec![
                "setup",
                "aws",
                "--mount",
                &m,
                "--role-name",
                &name,
                "--policy-name",
                &name,
                "--apply",
                "--iam-endpoint",
                &url,
                "--sts-endpoint",
                &url,
                "--format",
                "json",
            ];
            if let Some(id) = external_id {
                args.extend(["--external-id", id]);
            }
            setup_cli(app, &args).await
        }
    };
    // --dry-run: every call listed, nothing made.
    let dry = setup_cli(
        &app,
        &[
            "setup",
            "aws",
            "--mount",
            &m,
            "--role-name",
            &name,
            "--apply",
            "--dry-run",
        ],
    )
    .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    for call in [
        "iam:CreatePolicy",
        "iam:CreateRole",
        "iam:AttachRolePolicy",
        "config/root",
    ] {
        assert!(stdout(&dry).contains(call), "{call}: {}", stdout(&dry));
    }
    assert!(
        moto()
            .iam()
            .get_role()
            .role_name(&name)
            .send()
            .await
            .is_err(),
        "no role made"
    );
    let first = apply(Some("first-external-id-0123456789abcdef")).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("created policy"),
        "{}",
        stderr(&first)
    );
    assert!(
        stderr(&first).contains("is not AWS"),
        "an emulator is named: {}",
        stderr(&first)
    );
    let second = apply(Some("second-external-id-0123456789abcde")).await;
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("updated policy"),
        "{}",
        stderr(&second)
    );
    assert!(
        stderr(&second).contains("updated role"),
        "{}",
        stderr(&second)
    );
    let applied: Value = serde_json::from_str(&stdout(&second)).unwrap();

    let iam = moto().iam();
    let policy_arn = applied["policy_arn"].as_str().unwrap();
    let versions = iam
        .list_policy_versions()
        .policy_arn(policy_arn)
        .send()
        .await
        .unwrap();
    let default: Vec<_> = versions
        .versions()
        .iter()
        .filter(|v| v.is_default_version())
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!((versions.versions().len(), default), (2, vec!["v2"]));
    let role = iam.get_role().role_name(&name).send().await.unwrap();
    let trust = percent_encoding::percent_decode_str(
        role.role().unwrap().assume_role_policy_document().unwrap(),
    )
    .decode_utf8_lossy()
    .into_owned();
    assert!(trust.contains("second-external-id"), "{trust}");
    let root = app.call("GET", &format!("{m}/config/root"), None).await;
    assert_eq!(
        root.body["data"]["external_id"],
        "second-external-id-0123456789abcde"
    );
    // Without --external-id, a re-run keeps the one the mount uses: nothing is rotated.
    let third = apply(None).await;
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(
        stderr(&third).contains("keeping the External ID"),
        "{}",
        stderr(&third)
    );
    let applied: Value = serde_json::from_str(&stdout(&third)).unwrap();
    assert_eq!(applied["external_id"], "second-external-id-0123456789abcde");
    let role = iam.get_role().role_name(&name).send().await.unwrap();
    let trust = percent_encoding::percent_decode_str(
        role.role().unwrap().assume_role_policy_document().unwrap(),
    )
    .decode_utf8_lossy()
    .into_owned();
    assert!(trust.contains("second-external-id"), "{trust}");
    let root = app.call("GET", &format!("{m}/config/root"), None).await;
    assert_eq!(
        root.body["data"]["external_id"],
        "second-external-id-0123456789abcde"
    );

    // Without --apply, the printed commands carry the endpoints and the region.
    let plan = setup_cli(
        &app,
        &["setup", "aws", "--mount", &m, "--iam-endpoint", &url],
    )
    .await;
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(text.contains(&format!("--endpoint-url {url}")), "{text}");
    assert!(
        text.contains(&format!("--region us-east-1 --iam-endpoint {url}")),
        "{text}"
    );
}
