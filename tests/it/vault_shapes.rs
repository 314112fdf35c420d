//! The routes and fields typed Vault clients need before anything else: `sys/health`,
//! `sys/seal-status`, `sys/leader`, `sys/auth`, full `sys/mounts` entries and `tune`, the legacy
//! lease paths, `GET` on `sts/`, Vault's renew-increment rule (checked against moto's tags),
//! and `sys/init` for a server started with `await_init`.

use iamlease::seal::MasterKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, TestApp, moto, storage};

fn has_all(v: &Value, fields: &[&str], what: &str) {
    for f in fields {
        assert!(v.get(*f).is_some(), "{what} lacks {f}: {v}");
    }
}

#[tokio::test]
async fn status_routes_answer_vaults_shapes_without_a_token() {
    let app = TestApp::spawn().await;
    for (path, fields) in [
        (
            "sys/health",
            &[
                "initialized",
                "sealed",
                "standby",
                "performance_standby",
                "replication_performance_mode",
                "replication_dr_mode",
                "server_time_utc",
                "version",
                "cluster_name",
                "cluster_id",
            ][..],
        ),
        (
            "sys/seal-status",
            &[
                "type",
                "initialized",
                "sealed",
                "t",
                "n",
                "progress",
                "version",
                "cluster_id",
            ][..],
        ),
        (
            "sys/leader",
            &["ha_enabled", "is_self", "leader_address"][..],
        ),
    ] {
        let r = app.call_with_token(None, "GET", path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        has_all(&r.body, fields, path);
    }
    let health = app.call_with_token(None, "GET", "sys/health", None).await;
    let seal = app
        .call_with_token(None, "GET", "sys/seal-status", None)
        .await;
    assert_eq!(health.body["replication_dr_mode"], "disabled");
    assert_eq!(seal.body["sealed"], false);
    assert!(!seal.body["cluster_id"].as_str().unwrap().is_empty());
    assert_eq!(health.body["cluster_id"], seal.body["cluster_id"]);
    // Vault's activecode picks an active node's status (load balancers ask for 200 or 204);
    // standbyok means nothing on a node that is never a standby; a bad code is a 400.
    for (query, status) in [
        ("activecode=204", StatusCode::NO_CONTENT),
        (
            "activecode=299&standbyok=true",
            StatusCode::from_u16(299).unwrap(),
        ),
        ("uninitcode=200", StatusCode::OK),
        ("activecode=ok", StatusCode::BAD_REQUEST),
        ("activecode=99", StatusCode::BAD_REQUEST),
    ] {
        let r = app
            .call_with_token(None, "GET", &format!("sys/health?{query}"), None)
            .await;
        assert_eq!(r.status, status, "{query}: {:?}", r.body);
    }

    // sys/auth needs a token and lists token/.
    let r = app.call_with_token(None, "GET", "sys/auth", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.call("GET", "sys/auth", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["token/"]["type"], "token");
    assert_eq!(r.body["token/"]["type"], "token", "also at the top level");
    has_all(
        &r.body["data"]["token/"],
        &[
            "accessor",
            "uuid",
            "config",
            "local",
            "seal_wrap",
            "options",
        ],
        "sys/auth token/",
    );
    app.stop().await;
}

/// `sys/ha-status` lists this server as a live node in the fields Go's `HANode` reads, and
/// needs a token.
#[tokio::test]
async fn ha_status_lists_this_replica() {
    let app = TestApp::spawn().await;
    let r = app
        .call_with_token(None, "GET", "sys/ha-status", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = app.call("GET", "sys/ha-status", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let nodes = r.body["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{:?}", r.body);
    assert_eq!(
        r.body["nodes"], r.body["data"]["nodes"],
        "also at the top level"
    );
    let me = &nodes[0];
    has_all(
        me,
        &[
            "hostname",
            "api_address",
            "cluster_address",
            "active_node",
            "last_echo",
            "version",
        ],
        "sys/ha-status node",
    );
    assert_eq!(me["active_node"], true);
    assert_eq!(me["is_self"], true);
    assert_eq!(me["pid"], std::process::id());
    assert!(me["last_echo"].as_str().unwrap().ends_with('Z'));
    app.stop().await;
}

#[tokio::test]
async fn mounts_carry_every_field_and_tune_reads_and_writes() {
    let app = TestApp::spawn().await;
    app.enable_mount().await;
    let m = app.mount.clone();
    let fields = [
        "type",
        "description",
        "accessor",
        "uuid",
        "config",
        "local",
        "seal_wrap",
        "external_entropy_access",
        "options",
        "plugin_version",
        "running_plugin_version",
    ];
    let list = app.call("GET", "sys/mounts", None).await;
    let listed = &list.body["data"][format!("{m}/")];
    has_all(listed, &fields, "sys/mounts entry");
    let one = app.call("GET", &format!("sys/mounts/{m}"), None).await;
    assert_eq!(one.status, StatusCode::OK, "{:?}", one.body);
    has_all(&one.body["data"], &fields, "sys/mounts/{path}");
    assert_eq!(
        one.body["data"]["uuid"], listed["uuid"],
        "one uuid per mount"
    );
    assert_eq!(one.body["data"]["accessor"], listed["accessor"]);
    has_all(
        &one.body["data"]["config"],
        &["default_lease_ttl", "max_lease_ttl", "force_no_cache"],
        "config",
    );

    let r = app
        .call(
            "POST",
            &format!("sys/mounts/{m}/tune"),
            Some(
                json!({"default_lease_ttl": "30m", "max_lease_ttl": "2h", "description": "tuned"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.call("GET", &format!("sys/mounts/{m}/tune"), None).await;
    assert_eq!(r.body["data"]["default_lease_ttl"], 1800, "{:?}", r.body);
    assert_eq!(r.body["data"]["max_lease_ttl"], 7200);
    assert_eq!(r.body["data"]["description"], "tuned");
    let r = app
        .call(
            "POST",
            &format!("sys/mounts/{m}/tune"),
            Some(json!({"default_lease_ttl": "3h"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "default above max: {:?}",
        r.body
    );
    app.stop().await;
}

#[tokio::test]
async fn legacy_lease_paths_and_vaults_renew_increment_rule() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_user_role("dev").await;
    let m = app.mount.clone();
    let issue = |ttl: &'static str| {
        let app = &app;
        async move {
            let r = app.issue("dev", json!({"ttl": ttl})).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            (
                r.body["lease_id"].as_str().unwrap().to_owned(),
                r.body["data"]["username"].as_str().unwrap().to_owned(),
            )
        }
    };
    // Renewing with an increment shorter than what is left shortens the lease (Vault's rule):
    // the new TTL is the increment from now, and AWS's expiry tag says so.
    let (lease, user) = issue("2h").await;
    let r = app
        .call(
            "PUT",
            "sys/renew",
            Some(json!({"lease_id": lease, "increment": "10m"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let d = r.body["lease_duration"].as_i64().unwrap();
    assert!((590..=600).contains(&d), "renewed to {d}s, not 600");
    let tags = moto()
        .iam()
        .list_user_tags()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let expires = tags
        .tags()
        .iter()
        .find(|t| t.key() == "iamlease:expires-at")
        .map(|t| t.value().to_owned())
        .unwrap();
    let lookup = app
        .call("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})))
        .await;
    assert_eq!(lookup.body["data"]["expire_time"], expires.as_str());

    // sys/renew/{id}, sys/revoke, sys/revoke/{id}, sys/revoke-prefix/{prefix}: users gone.
    let r = app.call("PUT", &format!("sys/renew/{lease}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .call("PUT", "sys/revoke", Some(json!({"lease_id": lease})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let (second, _) = issue("1h").await;
    let r = app.call("PUT", &format!("sys/revoke/{second}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    issue("1h").await;
    issue("1h").await;
    let r = app
        .call("PUT", &format!("sys/revoke-prefix/{m}/creds/dev"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(app.users_in_moto().await.is_empty(), "left in AWS");
    app.stop().await;
}

#[tokio::test]
async fn sts_is_read_and_written_and_its_leases_live_under_sts() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_user_role("dev").await;
    let m = app.mount.clone();
    // GET is served on sts/ as on creds/ (here refused for an iam_user role, with the reason).
    let r = app.call("GET", &format!("{m}/sts/dev"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(r.error_text().contains("creds/dev"), "{:?}", r.body);
    let r = app.call("GET", &format!("{m}/sts/nope"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.error_text().contains("Role \"nope\" not found"),
        "{:?}",
        r.body
    );
    let r = app.call("GET", &format!("{m}/roles/nope"), None).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "reading a missing role is a 404"
    );
    app.stop().await;
}

/// `await_init` on an empty store: no token works until `PUT sys/init` makes the root token,
/// which is answered exactly once (two at once: one wins), and a restart makes no other.
#[tokio::test]
async fn sys_init_makes_the_root_token_once() {
    let key = MasterKey::generate().unwrap();
    let fresh = storage::fresh().await;
    let options = || Options {
        storage: Some(fresh.url.clone()),
        master_key: Some(key.clone()),
        tweak: Box::new(|s| {
            s.dev = None;
            s.await_init = true;
        }),
        ..Options::default()
    };
    let app = TestApp::spawn_with(options()).await;
    let init = app.call_with_token(None, "GET", "sys/init", None).await;
    assert_eq!(
        (init.status, &init.body),
        (StatusCode::OK, &json!({"initialized": false}))
    );
    let health = app.call_with_token(None, "GET", "sys/health", None).await;
    assert_eq!(
        health.status,
        StatusCode::NOT_IMPLEMENTED,
        "{:?}",
        health.body
    );
    let asked = app
        .call_with_token(None, "GET", "sys/health?uninitcode=200", None)
        .await;
    assert_eq!(asked.status, StatusCode::OK, "Vault's uninitcode");
    assert_eq!(health.body["initialized"], false);
    let seal = app
        .call_with_token(None, "GET", "sys/seal-status", None)
        .await;
    assert_eq!(
        (
            seal.body["initialized"].clone(),
            seal.body["sealed"].clone()
        ),
        (json!(false), json!(false))
    );
    let refused = app.call("GET", "sys/mounts", None).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "the dev token is not made"
    );

    let body = json!({"secret_shares": 5, "secret_threshold": 3});
    let (a, b) = tokio::join!(
        app.call_with_token(None, "PUT", "sys/init", Some(body.clone())),
        app.call_with_token(None, "PUT", "sys/init", Some(body.clone())),
    );
    let (won, lost) = if a.status == StatusCode::OK {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(won.status, StatusCode::OK, "{:?}", won.body);
    assert_eq!(lost.status, StatusCode::BAD_REQUEST, "{:?}", lost.body);
    assert!(
        lost.error_text().contains("already initialized"),
        "{:?}",
        lost.body
    );
    assert_eq!(
        (won.body["keys"].clone(), won.body["keys_base64"].clone()),
        (json!([]), json!([]))
    );
    let root = won.body["root_token"].as_str().unwrap().to_owned();
    let me = app
        .call_with_token(Some(&root), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["data"]["policies"], json!(["root"]));
    let mounts = app
        .call_with_token(Some(&root), "GET", "sys/mounts", None)
        .await;
    assert_eq!(mounts.status, StatusCode::OK);
    let health = app.call_with_token(None, "GET", "sys/health", None).await;
    assert_eq!(
        (health.status, health.body["initialized"].clone()),
        (StatusCode::OK, json!(true))
    );
    let unseal = app
        .call_with_token(None, "PUT", "sys/unseal", Some(json!({"key": "abcd"})))
        .await;
    assert_eq!(
        (unseal.status, unseal.body["sealed"].clone()),
        (StatusCode::OK, json!(false))
    );
    app.stop().await;

    // A restart finds the token: initialised, and the same root token still works.
    let again = TestApp::spawn_with(options()).await;
    let init = again.call_with_token(None, "GET", "sys/init", None).await;
    assert_eq!(init.body, json!({"initialized": true}));
    let second = again
        .call_with_token(None, "PUT", "sys/init", Some(json!({})))
        .await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    let me = again
        .call_with_token(Some(&root), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    again.stop().await;
}
