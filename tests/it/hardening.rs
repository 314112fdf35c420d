//! The smaller findings of the security issue (#15), each pinned: the audit log writes a
//! record whole or not at all, health fails when a table the server needs cannot be read, and
//! listing needs `list`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::acl::{token_with, write_policy};
use crate::chaos::Tmpfs;
use crate::support::{Options, TestApp, storage};

#[tokio::test]
async fn a_full_disk_never_leaves_a_torn_audit_record() {
    let disk = Tmpfs::mount("256k");
    let audit_path = disk.path().join("audit.jsonl");
    let setting = audit_path.display().to_string();
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(move |s| s.audit_log = Some(setting.clone())),
        ..Options::default()
    })
    .await;
    // Lines of ~3 KiB, so the one that meets the full disk is cut part way.
    let padded = json!({"padding": "p".repeat(3000)});
    let r = app
        .call("POST", "auth/token/lookup-self", Some(padded.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    disk.fill();
    let mut refused = 0;
    for _ in 0..30 {
        let r = app
            .call("POST", "auth/token/lookup-self", Some(padded.clone()))
            .await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
            assert!(r.error_text().contains("audit log"), "{}", r.error_text());
        }
    }
    assert!(refused > 0, "the full disk refused requests");
    disk.free();
    let r = app
        .call("POST", "auth/token/lookup-self", Some(padded))
        .await;
    assert_eq!(r.status, StatusCode::OK, "served again once there is room");
    let text = std::fs::read_to_string(&audit_path).unwrap();
    assert!(text.ends_with('\n'));
    for (n, line) in text.lines().enumerate() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "line {n} is torn: {}…",
            &line[..line.len().min(120)]
        );
    }
}

#[tokio::test]
async fn health_fails_while_the_leases_table_cannot_be_read() {
    let store = storage::fresh().await;
    let app = TestApp::spawn_with(Options {
        storage: Some(store.url.clone()),
        ..Options::default()
    })
    .await;
    let health = || async { app.call("GET", "sys/health", None).await.status };
    assert_eq!(health().await, StatusCode::OK);
    let rename = |from: &'static str, to: &'static str| {
        let url = store.url.clone();
        async move {
            let sql = format!("ALTER TABLE {from} RENAME TO {to}");
            if iamlease::store::is_postgres_url(&url) {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query(&sql).execute(&mut c).await.unwrap();
            } else {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(&sql).execute(&mut c).await.unwrap();
            }
        }
    };
    rename("leases", "leases_away").await;
    // The pool may hold a statement prepared against the old table for a moment.
    let mut status = health().await;
    for _ in 0..20 {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = health().await;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    rename("leases_away", "leases").await;
    assert_eq!(health().await, StatusCode::OK);
}

#[tokio::test]
async fn listing_roles_needs_list_not_read() {
    let app = TestApp::spawn().await;
    app.configure().await;
    app.write_user_role("dev").await;
    let m = app.mount.clone();
    write_policy(
        &app,
        "reader",
        &format!("path \"{m}/roles\" {{ capabilities = [\"read\"] }}"),
    )
    .await;
    write_policy(
        &app,
        "lister",
        &format!("path \"{m}/roles\" {{ capabilities = [\"list\"] }}"),
    )
    .await;
    let (reader, _) = token_with(&app, &["reader"], json!({})).await;
    let (lister, _) = token_with(&app, &["lister"], json!({})).await;
    for method in ["GET", "LIST"] {
        let r = app
            .call_with_token(Some(&reader), method, &format!("{m}/roles"), None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} with read: {:?}",
            r.body
        );
        let r = app
            .call_with_token(Some(&lister), method, &format!("{m}/roles"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{method} with list: {:?}", r.body);
        assert_eq!(r.body["data"]["keys"], json!(["dev"]));
    }
}

#[tokio::test]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let store = storage::fresh().await;
    let Some(file) = store.sqlite_file.clone() else {
        eprintln!("sqlite_files_are_private: the store is PostgreSQL here; nothing to check");
        return;
    };
    let app = TestApp::spawn_with(Options {
        storage: Some(store.url.clone()),
        ..Options::default()
    })
    .await;
    app.configure().await;
    app.write_user_role("dev").await;
    let name = file.display().to_string();
    let mut seen = 0;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let path = format!("{name}{suffix}");
        if let Ok(meta) = std::fs::metadata(&path) {
            seen += 1;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
        }
    }
    assert!(seen >= 3, "the database, its WAL and the lock file exist");
}
