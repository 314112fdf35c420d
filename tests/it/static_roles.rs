//! Static roles against moto with authentication on: the served key really is the user's, a
//! rotation never leaves more than two keys on the user (polled throughout), the previous key
//! stops working when its overlap ends, a `kill -9` at every step of a rotation leaves a
//! working current key and converges, two replicas rotate a role once per period, failures are
//! visible and never take the current key away, and the secret never reaches the store or the
//! audit log in clear.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::moto::sts_client;
use crate::support::process::ServerProcess;
use crate::support::proxy::{Rule, start_recording_proxy};
use crate::support::{Options, TestApp, moto, random_name, storage};

/// The shortest rotation period the tests' servers accept (the real default is 1 m).
const MIN_ROTATION: Duration = Duration::from_secs(2);

fn fast() -> Options {
    Options {
        tweak: Box::new(|s| s.static_role_min_rotation = MIN_ROTATION),
        ..Options::default()
    }
}

async fn create_user(name: &str) {
    moto()
        .iam()
        .create_user()
        .user_name(name)
        .send()
        .await
        .unwrap();
}

async fn keys_of(user: &str) -> Vec<String> {
    moto()
        .iam()
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .access_key_metadata
        .into_iter()
        .filter_map(|k| k.access_key_id)
        .collect()
}

/// The ARN the key authenticates as, or the error code AWS refused it with.
async fn whoami(key: &str, secret: &str) -> Result<String, String> {
    sts_client(&moto().url, key, secret)
        .get_caller_identity()
        .send()
        .await
        .map(|o| o.arn.unwrap_or_default())
        .map_err(|e| {
            // moto's refusal is not always in a shape the SDK parses; its code is in the text.
            let text = format!("{e:?}");
            if text.contains("InvalidClientTokenId") {
                "InvalidClientTokenId".to_owned()
            } else {
                text
            }
        })
}

async fn creds(app: &TestApp, role: &str) -> (String, String, Value) {
    let r = app
        .call("GET", &format!("{}/static-creds/{role}", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "static-creds: {:?}", r.body);
    let d = &r.body["data"];
    (
        d["access_key"].as_str().unwrap().to_owned(),
        d["secret_key"].as_str().unwrap().to_owned(),
        r.body.clone(),
    )
}

async fn read(app: &TestApp, role: &str) -> Value {
    let r = app
        .call("GET", &format!("{}/static-roles/{role}", app.mount), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "read: {:?}", r.body);
    r.body["data"].clone()
}

/// Polls the user's keys until stopped, failing the test if it ever sees more than two.
fn watch_key_count(user: String) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let seen_max = Arc::new(AtomicUsize::new(0));
    let flag = stop.clone();
    let handle = tokio::spawn(async move {
        while !flag.load(Ordering::SeqCst) {
            let n = keys_of(&user).await.len();
            assert!(n <= 2, "IAM user {user} holds {n} access keys");
            seen_max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        seen_max.load(Ordering::SeqCst)
    });
    (stop, handle)
}

#[tokio::test]
async fn a_static_role_serves_the_users_key_and_rotation_replaces_it() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let user = random_name("static-");
    create_user(&user).await;
    let path = format!("{}/static-roles/app", app.mount);

    let r = app
        .call(
            "POST",
            &path,
            Some(json!({"username": user, "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let role = &r.body["data"];
    assert_eq!(role["username"], user);
    assert_eq!(role["rotation_period"], 3600);
    assert_eq!(role["overlap"], 0);
    assert_ne!(
        role["last_rotation"], "",
        "writing the role rotates at once"
    );

    let (key, secret, body) = creds(&app, "app").await;
    assert_eq!(body["lease_id"], "", "static credentials are not leased");
    assert!(body["data"]["expiration"].as_str().unwrap().ends_with('Z'));
    assert_eq!(keys_of(&user).await, vec![key.clone()]);
    let arn = whoami(&key, &secret).await.expect("the served key works");
    assert!(arn.ends_with(&format!(":user/{user}")), "{arn}");

    // Listing, both spellings.
    for (method, suffix) in [("LIST", ""), ("GET", "?list=true")] {
        let r = app
            .call(method, &format!("{}/static-roles{suffix}", app.mount), None)
            .await;
        assert_eq!(r.body["data"]["keys"], json!(["app"]), "{method}");
    }

    // A manual rotation: with no overlap the old key is deleted at once.
    let r = app.call("POST", &format!("{path}/rotate"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (key2, secret2, _) = creds(&app, "app").await;
    assert_ne!(key2, key);
    assert_eq!(keys_of(&user).await, vec![key2.clone()]);
    assert_eq!(
        whoami(&key, &secret).await,
        Err("InvalidClientTokenId".into())
    );
    assert!(whoami(&key2, &secret2).await.is_ok());

    // A schedule change takes effect at once: the next rotation follows the new period.
    let before = read(&app, "app").await;
    let r = app
        .call("POST", &path, Some(json!({"rotation_period": 7200})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let after = read(&app, "app").await;
    assert_eq!(after["rotation_period"], 7200);
    assert_eq!(after["last_rotation"], before["last_rotation"]);
    let t = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp()
    };
    assert_eq!(
        t(&after["next_rotation"]) - t(&after["last_rotation"]),
        7200
    );

    // Deleting the role deletes the key it made.
    let r = app.call("DELETE", &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(keys_of(&user).await.is_empty());
    let r = app.call("GET", &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn scheduled_rotations_keep_the_previous_key_for_the_overlap_and_never_three_keys() {
    let app = TestApp::spawn_with(fast()).await;
    app.configure().await;
    let user = random_name("static-");
    create_user(&user).await;
    // The user's own key is adopted: it keeps working for the overlap after the first rotation.
    let own = moto()
        .iam()
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let (watch, watcher) = watch_key_count(user.clone());
    let r = app
        .call(
            "POST",
            &format!("{}/static-roles/app", app.mount),
            Some(json!({"username": user, "rotation_period": "4s", "overlap": "2s"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["previous_access_key_id"], own.access_key_id);

    // Every key served: it works while it is current and for the overlap after, then never.
    let mut served: Vec<(String, String)> = Vec::new();
    let old = (own.access_key_id.clone(), own.secret_access_key.clone());
    assert!(
        whoami(&old.0, &old.1).await.is_ok(),
        "kept during the overlap"
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(14) {
        let (k, s, _) = creds(&app, "app").await;
        assert!(whoami(&k, &s).await.is_ok(), "the current key {k} works");
        if served.last().map(|(last, _)| last) != Some(&k) {
            served.push((k, s));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    watch.store(true, Ordering::SeqCst);
    let max = watcher.await.unwrap();
    assert_eq!(max, 2, "the overlap holds two keys at once");
    assert!(served.len() >= 3, "rotated every period: {served:?}");
    // Everything but the current key is gone now: each was refused after its overlap.
    let current = creds(&app, "app").await.0;
    assert_eq!(
        whoami(&old.0, &old.1).await,
        Err("InvalidClientTokenId".into())
    );
    for (k, s) in &served {
        if *k != current && !keys_of(&user).await.contains(k) {
            assert_eq!(
                whoami(k, s).await,
                Err("InvalidClientTokenId".into()),
                "{k}"
            );
        }
    }
    let keys = keys_of(&user).await;
    assert!(keys.contains(&current) && keys.len() <= 2, "{keys:?}");
}

#[tokio::test]
async fn bad_static_roles_are_refused_with_a_clear_400_and_nothing_deleted() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let path = format!("{}/static-roles/bad", app.mount);
    let user = random_name("static-");
    create_user(&user).await;
    let cases = [
        (
            json!({"username": user, "rotation_period": "30s"}),
            "at least 1m",
        ),
        (
            json!({"username": user, "rotation_period": 59}),
            "at least 1m",
        ),
        (
            json!({"username": user, "rotation_period": "1h", "overlap": "31m"}),
            "half of rotation_period",
        ),
        (
            json!({"username": user, "rotation_period": "soon"}),
            "rotation_period",
        ),
        (json!({"rotation_period": "1h"}), "username is required"),
        (json!({"username": user}), "rotation_period is required"),
        (
            json!({"username": "a/b", "rotation_period": "1h"}),
            "not an IAM user name",
        ),
        (
            json!({"username": user, "rotation_period": "1h", "external_id": "abc"}),
            "assume_role_arn",
        ),
        (
            json!({"username": user, "rotation_period": "1h", "assume_role_arn": "nope"}),
            "assume_role_arn",
        ),
        (
            json!({"username": "no-such-user-here", "rotation_period": "1h"}),
            "\"no-such-user-here\" does not exist",
        ),
    ];
    for (body, says) in cases {
        let r = app.call("POST", &path, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert!(r.error_text().contains(says), "{body}: {}", r.error_text());
    }
    assert!(keys_of(&user).await.is_empty(), "nothing was created");
    assert_eq!(
        app.call("GET", &path, None).await.status,
        StatusCode::NOT_FOUND
    );

    // A user that already holds two keys is refused, and both keys stay.
    for _ in 0..2 {
        moto()
            .iam()
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .unwrap();
    }
    let before = keys_of(&user).await;
    let r = app
        .call(
            "POST",
            &path,
            Some(json!({"username": user, "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(
        r.error_text().contains("already holds two access keys"),
        "{}",
        r.error_text()
    );
    assert_eq!(keys_of(&user).await, before, "nothing deleted");
    assert_eq!(
        app.call("GET", &path, None).await.status,
        StatusCode::NOT_FOUND
    );

    // An existing role's user cannot change under it.
    let other = random_name("static-");
    create_user(&other).await;
    let ok = app
        .call(
            "POST",
            &path,
            Some(json!({"username": other, "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let r = app
        .call("POST", &path, Some(json!({"username": user})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_text().contains("cannot change"),
        "{}",
        r.error_text()
    );
}

#[tokio::test]
async fn a_failing_rotation_is_visible_counted_and_keeps_serving_the_current_key() {
    let proxy = start_recording_proxy(&moto().url).await;
    let app = TestApp::spawn().await;
    app.configure_via(&proxy.url).await;
    let user = random_name("static-");
    create_user(&user).await;
    let path = format!("{}/static-roles/app", app.mount);
    let r = app
        .call(
            "POST",
            &path,
            Some(json!({"username": user, "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (key, secret, _) = creds(&app, "app").await;

    proxy.set_rule("CreateAccessKey", Rule::Refuse(403, "AccessDenied"));
    let r = app.call("POST", &format!("{path}/rotate"), None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(
        r.error_text().contains("AccessDenied"),
        "{}",
        r.error_text()
    );
    let role = read(&app, "app").await;
    assert!(
        role["last_error"]
            .as_str()
            .unwrap()
            .contains("AccessDenied"),
        "{role}"
    );
    assert_ne!(role["last_error_time"], "");
    assert_eq!(role["failed_attempts"], 1);
    // The current key is still served and still works; nothing was deleted.
    let (still, still_secret, _) = creds(&app, "app").await;
    assert_eq!(
        (still.as_str(), still_secret.as_str()),
        (key.as_str(), secret.as_str())
    );
    assert!(whoami(&key, &secret).await.is_ok());
    assert_eq!(keys_of(&user).await, vec![key.clone()]);
    // The reaper retries with backoff, and counts every failure.
    app.eventually(
        "the rotation is retried",
        Duration::from_secs(15),
        || async { read(&app, "app").await["failed_attempts"].as_i64().unwrap() >= 2 },
    )
    .await;
    let text = reqwest::Client::new()
        .get(format!("{}/v1/sys/metrics?format=prometheus", app.address))
        .header("X-Vault-Token", crate::support::ROOT_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("iamlease_static_role_rotation_failures_total")
                && l.contains(&format!("mount=\"{}\"", app.mount))
        })
        .unwrap_or_else(|| panic!("no failure metric in {text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{line}");

    // Once AWS answers again the rotation goes through and the error is cleared.
    proxy.clear_rules();
    let r = app.call("POST", &format!("{path}/rotate"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["last_error"], "");
    assert_eq!(r.body["data"]["failed_attempts"], 0);
    let (new, _, _) = creds(&app, "app").await;
    assert_ne!(new, key);
    assert_eq!(keys_of(&user).await, vec![new]);
}

/// The steps of a rotation with no overlap, each as the AWS call it waits on: the server is
/// killed while the call is held before it reaches moto, or after moto carried it out.
const KILL_POINTS: &[(&str, Rule)] = &[
    ("ListAccessKeys", Rule::HoldBefore),
    ("CreateAccessKey", Rule::HoldBefore),
    ("CreateAccessKey", Rule::HoldAfter),
    ("DeleteAccessKey", Rule::HoldBefore),
    ("DeleteAccessKey", Rule::HoldAfter),
];

#[tokio::test]
async fn kill_9_at_every_step_of_a_rotation_leaves_a_working_key_and_converges() {
    let proxy = start_recording_proxy(&moto().url).await;
    let store = storage::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let mut server = ServerProcess::start(
        &store.url,
        &key,
        &dir.path().join("server.log"),
        // SQLite's start-up recovery resumes a dead run's claim at once; on PostgreSQL the
        // claim's deadline hands it over, so keep it short.
        &[("IAMLEASE_CLAIM_TIMEOUT", "3s")],
    )
    .await;
    let app = TestApp::attach(&server.address, &random_name("k"));
    app.configure_via(&proxy.url).await;
    let user = random_name("static-");
    create_user(&user).await;
    let path = format!("{}/static-roles/app", app.mount);
    let r = app
        .call(
            "POST",
            &path,
            Some(json!({"username": user, "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (watch, watcher) = watch_key_count(user.clone());
    let mut every_key = BTreeSet::new();

    for (action, rule) in KILL_POINTS {
        let (before, _, _) = creds(&app, "app").await;
        every_key.insert(before.clone());
        let seen = proxy.requests_of(action).len();
        proxy.set_rule(action, rule.clone());
        let rotating = {
            let app = TestApp::attach(&server.address, &app.mount);
            let path = path.clone();
            tokio::spawn(async move { app.try_call("POST", &format!("{path}/rotate"), None).await })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while proxy.requests_of(action).len() == seen {
            assert!(
                Instant::now() < deadline,
                "the rotation never reached {action}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Past the held step's forwarding (HoldAfter) before the kill.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.kill9().await;
        proxy.clear_rules();
        let _ = rotating.await;
        let keys = keys_of(&user).await;
        assert!(keys.len() <= 2, "{action} {rule:?}: {keys:?}");

        server.restart().await;
        // The store's key works right after the restart, whatever the step was.
        let (k, s, _) = creds(&app, "app").await;
        assert!(
            whoami(&k, &s).await.is_ok(),
            "{action} {rule:?}: the current key {k} does not work"
        );
        assert!(keys_of(&user).await.contains(&k), "{action} {rule:?}");
        // And it converges: the interrupted rotation is finished by the restarted server
        // (recovery makes it due at once), leaving exactly the current key.
        app.eventually(
            &format!("{action} {rule:?}: one key, the served one"),
            Duration::from_secs(20),
            || async {
                let (k, _, _) = creds(&app, "app").await;
                let role = read(&app, "app").await;
                role["rotating"] == false
                    && role["last_error"] == ""
                    && role["previous_access_key_id"] == ""
                    && keys_of(&user).await == vec![k]
            },
        )
        .await;
        let (k, s, _) = creds(&app, "app").await;
        assert!(whoami(&k, &s).await.is_ok());
        every_key.insert(k);
    }
    watch.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    assert!(every_key.len() >= 3, "rotations happened: {every_key:?}");
    server.terminate().await;
}

/// Needs PostgreSQL (two servers on one database), so it is `#[ignore]`d: a plain `cargo test`
/// on SQLite lists it as ignored instead of passing it untested; `scripts/test` runs it in its
/// PostgreSQL step, and it fails if run without PostgreSQL.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn two_replicas_rotate_a_static_role_once_per_period() {
    let server = storage::postgres_server()
        .expect("set IAMLEASE_TEST_STORAGE to a PostgreSQL server (postgres://…) to run this test");
    let db = storage::create_database(&server).await;
    let master = iamlease::seal::MasterKey::generate().unwrap();
    let replica = |db: String, master: iamlease::seal::MasterKey| {
        TestApp::spawn_with(Options {
            storage: Some(db),
            master_key: Some(master),
            ..fast()
        })
    };
    let a = replica(db.clone(), master.clone()).await;
    let mut b = replica(db.clone(), master.clone()).await;
    b.mount = a.mount.clone();
    let proxy = start_recording_proxy(&moto().url).await;
    a.configure_via(&proxy.url).await;
    let user = random_name("static-");
    create_user(&user).await;
    let (watch, watcher) = watch_key_count(user.clone());
    let period = 3;
    let r = a
        .call(
            "POST",
            &format!("{}/static-roles/app", a.mount),
            Some(json!({"username": user, "rotation_period": period})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(16)).await;
    let elapsed = started.elapsed().as_secs();
    watch.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    let creates = proxy.requests_of("CreateAccessKey").len() as u64;
    // One at the write, then one per period (a pass may start up to a reaper interval late).
    assert!(
        creates <= 1 + elapsed / period && creates >= elapsed / (period + 1),
        "{creates} rotations in {elapsed} s with a period of {period} s"
    );
    // Both replicas serve the same, working key.
    let (ka, sa, _) = creds(&a, "app").await;
    let (kb, _, _) = creds(&b, "app").await;
    assert_eq!(ka, kb);
    assert!(whoami(&ka, &sa).await.is_ok());
}

#[tokio::test]
async fn the_static_secret_is_sealed_in_the_store_and_hmacd_in_the_audit_log() {
    let store = storage::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let audit_path = audit.to_string_lossy().into_owned();
    let app = TestApp::spawn_with(Options {
        storage: Some(store.url.clone()),
        tweak: Box::new(move |s| s.audit_log = Some(audit_path.clone())),
        ..Options::default()
    })
    .await;
    app.configure().await;
    let user = random_name("static-");
    create_user(&user).await;
    let r = app
        .call(
            "POST",
            &format!("{}/static-roles/app", app.mount),
            Some(json!({"username": user, "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (key, secret, _) = creds(&app, "app").await;
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains(&key), "the access key id is audited as is");
    assert!(!log.contains(&secret), "the secret key is in the audit log");
    assert!(log.contains("hmac-sha256:"), "{log}");
    let bytes = crate::secrets::store_bytes(&store).await;
    assert!(
        memchr::memmem::find(&bytes, secret.as_bytes()).is_none(),
        "the secret key is in the store in clear"
    );
}

#[tokio::test]
async fn the_cli_writes_reads_lists_and_prints_static_credentials() {
    use crate::cli::iamlease;
    let app = TestApp::spawn().await;
    app.configure().await;
    let user = random_name("static-");
    create_user(&user).await;
    let m = app.mount.clone();
    let run = |args: Vec<String>| {
        let app = &app;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = iamlease(app, &args).await;
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    run(s(&[
        "static-role",
        "write",
        "app",
        "--mount",
        &m,
        "--username",
        &user,
        "--rotation-period",
        "24h",
        "--overlap",
        "1h",
    ]))
    .await;
    let table = run(s(&["static-role", "read", "app", "--mount", &m])).await;
    assert!(table.contains("86400") && table.contains("3600"), "{table}");
    assert!(
        run(s(&["static-role", "list", "--mount", &m]))
            .await
            .contains("app")
    );

    let doc: Value = serde_json::from_str(
        &run(s(&[
            "static-creds",
            "app",
            "--mount",
            &m,
            "--format",
            "credential-process",
        ]))
        .await,
    )
    .unwrap();
    assert_eq!(doc["Version"], 1);
    let (key, secret) = (
        doc["AccessKeyId"].as_str().unwrap(),
        doc["SecretAccessKey"].as_str().unwrap(),
    );
    assert!(
        whoami(key, secret)
            .await
            .unwrap()
            .ends_with(&format!(":user/{user}"))
    );
    assert!(doc["Expiration"].as_str().unwrap().ends_with('Z'));
    let env = run(s(&[
        "static-creds",
        "app",
        "--mount",
        &m,
        "--format",
        "env",
    ]))
    .await;
    assert!(
        env.contains(&format!("export AWS_ACCESS_KEY_ID={key}")),
        "{env}"
    );
    let json: Value = serde_json::from_str(
        &run(s(&[
            "static-creds",
            "app",
            "--mount",
            &m,
            "--format",
            "json",
        ]))
        .await,
    )
    .unwrap();
    assert_eq!(json["data"]["access_key"], key);

    run(s(&["static-role", "rotate", "app", "--mount", &m])).await;
    run(s(&["static-role", "delete", "app", "--mount", &m])).await;
    assert!(keys_of(&user).await.is_empty());
}
