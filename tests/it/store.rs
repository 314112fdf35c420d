//! The store's coordination guarantees, checked on whichever store the suite runs against
//! (SQLite, or PostgreSQL with `IAMLEASE_TEST_STORAGE`): two handles on one database, as two
//! replicas have, never both claim a lease, prefix listings are exact, and every configuration
//! write moves the config epoch that the other handle reads.

use std::collections::BTreeSet;
use std::sync::Arc;

use iamlease::model::{AccessKeyId, KeyRecord, Lease, LeaseState, MountPath, RoleName};
use iamlease::store::{self, MountRecord, Store, TokenRecord};

use crate::support::storage;

fn lease(id: &str, due_at: i64) -> Lease {
    Lease::pending_iam_user(
        MountPath::parse("aws").unwrap(),
        RoleName::parse("dev").unwrap(),
        format!("u-{}", id.rsplit('/').next().unwrap()),
        0,
        due_at,
        due_at + 1000,
        due_at,
    )
    .with_id(id)
    .with_state(LeaseState::Active, due_at)
}

/// Two handles on one fresh database: two connection pools on PostgreSQL, as two replicas
/// have; on SQLite, which serves one server per file (a second open is refused), the one pool
/// used from two tasks at once, as the reaper and requests use it.
async fn two_handles() -> (storage::TestStorage, Arc<dyn Store>, Arc<dyn Store>) {
    let fresh = storage::fresh().await;
    let a = store::open(&fresh.url).await.unwrap();
    let b = if fresh.sqlite_file.is_some() {
        assert!(
            store::open(&fresh.url).await.is_err(),
            "a second server on one SQLite file must be refused"
        );
        a.clone()
    } else {
        store::open(&fresh.url).await.unwrap()
    };
    (fresh, a, b)
}

#[tokio::test]
async fn two_reapers_on_one_database_claim_each_due_lease_exactly_once() {
    let (_db, a, b) = two_handles().await;
    let ids: BTreeSet<String> = (0..300).map(|i| format!("aws/creds/dev/{i:04}")).collect();
    for (i, id) in ids.iter().enumerate() {
        a.insert_lease(&lease(id, 10 + (i as i64 % 7)))
            .await
            .unwrap();
    }
    a.insert_lease(&lease("aws/creds/dev/later", 1000))
        .await
        .unwrap();

    let reap = |s: Arc<dyn Store>| async move {
        let mut got = Vec::new();
        loop {
            let batch = s.claim_due(100, 400, 16).await.unwrap();
            if batch.is_empty() {
                return got;
            }
            assert!(batch.iter().all(|l| l.state == LeaseState::Revoking));
            got.extend(batch.into_iter().map(|l| l.id));
        }
    };
    let (from_a, from_b) = tokio::join!(reap(a.clone()), reap(b.clone()));
    let (set_a, set_b): (BTreeSet<_>, BTreeSet<_>) = (
        from_a.iter().cloned().collect(),
        from_b.iter().cloned().collect(),
    );
    assert_eq!(set_a.len() + set_b.len(), from_a.len() + from_b.len());
    assert!(set_a.is_disjoint(&set_b), "a lease was claimed by both");
    assert_eq!(
        &set_a | &set_b,
        ids,
        "every due lease was claimed, nothing else"
    );

    // After the claim deadline an abandoned claim is due again, for one claimant only.
    let (again_a, again_b) = tokio::join!(a.claim_due(400, 700, 500), b.claim_due(400, 700, 500));
    let (again_a, again_b) = (again_a.unwrap(), again_b.unwrap());
    assert_eq!(again_a.len() + again_b.len(), ids.len());

    // Claiming one lease by id (revoke, revoke-prefix) from both at once: one winner each.
    let races = ids.iter().map(|id| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let (x, y) = tokio::join!(a.claim_lease(id, 700, 900), b.claim_lease(id, 700, 900));
            x.unwrap().is_some() as u8 + y.unwrap().is_some() as u8
        }
    });
    let winners = futures::future::join_all(races).await;
    assert!(winners.iter().all(|&n| n == 1), "{winners:?}");
    a.close().await;
    b.close().await;
}

/// The activation's one call (a transaction on the request's thread on SQLite, a CTE on
/// PostgreSQL): it records the key exactly when it moves the lease from `pending`, never
/// after another handle claimed the lease.
#[tokio::test]
async fn an_activation_records_its_key_only_when_it_wins_the_pending_lease() {
    let (_db, a, b) = two_handles().await;
    let mount = MountPath::parse("aws").unwrap();
    let pending = |id: &str| lease(id, 500).with_state(LeaseState::Pending, 500);
    let key = |l: &Lease, akid: &str| KeyRecord::for_lease(l, akid, "root", &Default::default());
    let recorded = |akid: &'static str| {
        let (a, mount) = (a.clone(), mount.clone());
        async move {
            a.key_history(&mount, &AccessKeyId::parse(akid).unwrap())
                .await
                .unwrap()
        }
    };

    let won = pending("aws/creds/dev/won");
    a.insert_lease(&won).await.unwrap();
    assert!(
        a.activate_lease(&key(&won, "AKIAWON0000000000001"), 900)
            .await
            .unwrap()
    );
    let active = b.get_lease(&won.id).await.unwrap().unwrap();
    assert_eq!(
        (active.state, active.access_key_id.as_deref(), active.due_at),
        (LeaseState::Active, Some("AKIAWON0000000000001"), 900)
    );
    assert_eq!(
        recorded("AKIAWON0000000000001").await.unwrap().key.lease_id,
        won.id
    );
    // A second activation of the same lease is refused and records nothing.
    assert!(
        !a.activate_lease(&key(&won, "AKIAWON0000000000002"), 900)
            .await
            .unwrap()
    );
    assert!(recorded("AKIAWON0000000000002").await.is_none());

    // Claimed by the other handle (a revoke-prefix, a takeover) while AWS was answering.
    let lost = pending("aws/creds/dev/lost");
    a.insert_lease(&lost).await.unwrap();
    assert!(b.claim_lease(&lost.id, 600, 700).await.unwrap().is_some());
    assert!(
        !a.activate_lease(&key(&lost, "AKIALOST000000000001"), 900)
            .await
            .unwrap()
    );
    assert!(recorded("AKIALOST000000000001").await.is_none());
    assert_eq!(
        b.get_lease(&lost.id).await.unwrap().unwrap().state,
        LeaseState::Revoking
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn prefix_listings_are_exact_and_byte_ordered() {
    let (_db, a, b) = two_handles().await;
    for id in [
        "aws/creds/dev/B",
        "aws/creds/dev/a",
        "aws/creds/dev/~z",
        "aws/creds/dev0/x",
        "aws/creds/dev~/y",
        "aws/creds/de/z",
        "aws2/creds/dev/c",
    ] {
        a.insert_lease(&lease(id, 100)).await.unwrap();
    }
    // Written through one handle, read through the other.
    assert_eq!(
        b.list_lease_ids("aws/creds/dev/", None, None, 10)
            .await
            .unwrap(),
        ["aws/creds/dev/B", "aws/creds/dev/a", "aws/creds/dev/~z"]
    );
    assert_eq!(
        b.list_lease_ids("aws/creds/dev/", None, Some("aws/creds/dev/B"), 10)
            .await
            .unwrap(),
        ["aws/creds/dev/a", "aws/creds/dev/~z"]
    );
    assert_eq!(
        b.list_lease_ids("aws/", None, None, 10)
            .await
            .unwrap()
            .len(),
        6
    );
    assert!(
        b.list_lease_ids("", Some("failed"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    a.close().await;
    b.close().await;
}

/// Reads the epoch through `store` and checks that it grew since `seen`.
async fn assert_epoch_moved(store: &dyn Store, seen: &mut i64, after: &str) {
    let now = store.config_epoch().await.unwrap();
    assert!(
        now > *seen,
        "the config epoch did not grow after {after}: {seen} then {now}"
    );
    *seen = now;
}

/// A cache of mounts, roles and root configs is valid only while `config_epoch` stays put, so
/// every kind of configuration write must move it, as the other replica sees it; lease and
/// token writes (every request makes some) must not, or every cache would always be cold.
#[tokio::test]
async fn the_config_epoch_grows_with_every_config_write_and_only_then() {
    let (_db, a, b) = two_handles().await;
    let mount = MountPath::parse("aws").unwrap();
    let role = RoleName::parse("dev").unwrap();
    let mut seen = b.config_epoch().await.unwrap();
    assert_eq!(a.config_epoch().await.unwrap(), seen);

    let record = MountRecord {
        path: mount.clone(),
        kind: "aws".into(),
        description: String::new(),
        default_lease_ttl: None,
        max_lease_ttl: None,
        lease_ttl: None,
        lease_max: None,
        created_at: 1,
    };
    assert!(a.insert_mount(&record).await.unwrap());
    assert_epoch_moved(&*b, &mut seen, "insert_mount").await;
    assert!(
        a.set_mount_lease_config(&mount, Some(60), Some(120))
            .await
            .unwrap()
    );
    assert_epoch_moved(&*b, &mut seen, "set_mount_lease_config").await;
    a.put_role(&mount, &role, "{}").await.unwrap();
    assert_epoch_moved(&*b, &mut seen, "put_role (new)").await;
    a.put_role(&mount, &role, r#"{"ttl":60}"#).await.unwrap();
    assert_epoch_moved(&*b, &mut seen, "put_role (changed)").await;
    a.put_root_config(&mount, "{}", Some(b"sealed"))
        .await
        .unwrap();
    assert_epoch_moved(&*b, &mut seen, "put_root_config (new)").await;
    a.put_root_config(&mount, r#"{"region":"eu-west-1"}"#, None)
        .await
        .unwrap();
    assert_epoch_moved(&*b, &mut seen, "put_root_config (changed)").await;

    // Lease and token writes leave it alone.
    let id = "aws/creds/dev/epoch";
    a.insert_lease(&lease(id, 100)).await.unwrap();
    assert!(a.renew_lease(id, 200, 50).await.unwrap());
    assert!(a.claim_lease(id, 60, 400).await.unwrap().is_some());
    a.fail_lease(id, "boom", 500).await.unwrap();
    a.delete_lease(id).await.unwrap();
    a.insert_lease(&lease("aws/creds/dev/epoch2", 100))
        .await
        .unwrap();
    a.delete_leases(&["aws/creds/dev/epoch2".into()])
        .await
        .unwrap();
    let token = TokenRecord {
        orphan: false,
        created_at: 1,
        expire_at: Some(100),
        ttl: Some(99),
        ..TokenRecord::plain(vec![7; 32], "epoch-accessor", None)
    };
    a.insert_token(&token).await.unwrap();
    a.set_token_expiry(&token.accessor, 200).await.unwrap();
    assert_eq!(
        a.revoke_token_tree(&token.accessor, 300, false)
            .await
            .unwrap()
            .tokens,
        1
    );
    assert_eq!(
        b.config_epoch().await.unwrap(),
        seen,
        "lease and token writes moved the config epoch"
    );

    assert!(a.delete_role(&mount, &role).await.unwrap());
    assert_epoch_moved(&*b, &mut seen, "delete_role").await;
    assert!(a.delete_mount(&mount).await.unwrap());
    assert_epoch_moved(&*b, &mut seen, "delete_mount").await;
    a.close().await;
    b.close().await;
}

/// Replicas starting at once on an empty database (or `sys/init` answered by several): exactly
/// one root token, however the attempts interleave across the two handles.
#[tokio::test]
async fn servers_starting_together_on_an_empty_store_make_exactly_one_root_token() {
    let (_storage, a, b) = two_handles().await;
    const N: usize = 16;
    // Connections opened first, so the attempts really overlap (a fresh pool would connect
    // one at a time, and the first attempt would be done before the second began).
    for store in [&a, &b] {
        futures::future::join_all((0..N).map(|_| store.has_tokens())).await;
    }
    let start = Arc::new(tokio::sync::Barrier::new(N));
    let attempts: Vec<_> = (0..N)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                iamlease::auth::create_first_root_token(&store, 0).await
            })
        })
        .collect();
    let mut made = Vec::new();
    for attempt in attempts {
        if let Some(token) = attempt.await.unwrap().unwrap() {
            made.push(token);
        }
    }
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(a.has_tokens().await.unwrap());
    let again = iamlease::auth::create_first_root_token(&b, 0)
        .await
        .unwrap();
    assert_eq!(again, None, "a store with a token gets no other root token");
}

/// Console sessions on two handles (two replicas on PostgreSQL): a session made on one is found
/// on the other, capped by its token's expiry and never honoured after it; its message is
/// taken once however many take it at once; a sealed token moved to another session's row
/// does not open; and the token's revocation, on either handle, ends its sessions at once.
#[tokio::test]
async fn console_sessions_are_shared_by_replicas_and_end_with_their_token() {
    use iamlease::auth::console_session::{self, SessionError};
    use iamlease::model::ConsoleFlash;
    use iamlease::seal::{MasterKey, Sealer, token_hash};

    let (fresh, a, b) = two_handles().await;
    let sealer = Sealer::new(&MasterKey::generate().unwrap());
    let now = 1_000;
    let record = |accessor: &str, secret: &str, expire_at| TokenRecord {
        display_name: format!("token-{accessor}"),
        created_at: 1,
        expire_at,
        ..TokenRecord::plain(token_hash(secret), accessor, None)
    };
    a.insert_token(&record("alice", "alice-token", Some(now + 3600)))
        .await
        .unwrap();
    a.insert_token(&record("bob", "bob-token", None))
        .await
        .unwrap();

    let made = console_session::open(&a, &sealer, "alice-token", now)
        .await
        .unwrap();
    assert_eq!(made.lifetime_secs, 3600, "capped by the token's expiry");
    let id = made.id.expose().to_owned();
    let found = console_session::find(&b, &sealer, &id, now + 3599)
        .await
        .unwrap()
        .expect("the other handle finds it");
    assert_eq!(found.token.expose(), "alice-token");
    assert_eq!(found.display_name, "token-alice");
    assert_eq!(found.csrf, console_session::csrf_of(&id));
    assert!(
        console_session::find(&b, &sealer, &id, now + 3600)
            .await
            .unwrap()
            .is_none(),
        "honoured after its end"
    );
    assert!(matches!(
        console_session::open(&a, &sealer, "no-such-token", now).await,
        Err(SessionError::UnknownToken)
    ));

    // One message, many takers on both handles at once: it is shown once.
    let flash = ConsoleFlash {
        ok: true,
        text: "saved".into(),
    };
    console_session::set_flash(&a, &id, &flash, now)
        .await
        .unwrap();
    let takes = futures::future::join_all((0..8).map(|i| {
        let (store, id) = (if i % 2 == 0 { &a } else { &b }, &id);
        async move { console_session::take_flash(store, id, now).await.unwrap() }
    }))
    .await;
    assert_eq!(takes.iter().flatten().collect::<Vec<_>>(), vec![&flash]);

    // Two of bob's sessions: one's sealed token copied onto the other's row does not open.
    let bob1 = console_session::open(&b, &sealer, "bob-token", now)
        .await
        .unwrap();
    let bob2 = console_session::open(&b, &sealer, "bob-token", now)
        .await
        .unwrap();
    let moved = "UPDATE console_sessions SET token_sealed =
         (SELECT token_sealed FROM console_sessions WHERE token_accessor = 'bob'
          ORDER BY created_at, id_hash LIMIT 1)
         WHERE token_accessor = 'bob'";
    if fresh.sqlite_file.is_some() {
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&fresh.url)
            .await
            .unwrap();
        sqlx::query(moved).execute(&mut c).await.unwrap();
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&fresh.url)
            .await
            .unwrap();
        sqlx::query(moved).execute(&mut c).await.unwrap();
    }
    let mut opened = 0;
    for s in [&bob1, &bob2] {
        match console_session::find(&a, &sealer, s.id.expose(), now).await {
            Ok(Some(_)) => opened += 1,
            Err(SessionError::Seal(_)) => {}
            other => panic!("{:?}", other.map(|s| s.map(|s| s.display_name))),
        }
    }
    assert_eq!(opened, 1, "a sealed token opened in another session's row");

    // Revoked on one handle: gone on the other at once, and for bob's too when his goes.
    a.revoke_token_tree("alice", now, false).await.unwrap();
    assert!(
        console_session::find(&b, &sealer, &id, now)
            .await
            .unwrap()
            .is_none()
    );
    b.revoke_token_tree("bob", now, false).await.unwrap();
    assert_eq!(
        a.delete_expired_console_sessions(i64::MAX).await.unwrap(),
        0
    );
}
