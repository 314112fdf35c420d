//! The store's coordination guarantees, checked on whichever store the suite runs against
//! (SQLite, or PostgreSQL with `IAMLEASE_TEST_STORAGE`): two handles on one database, as two
//! replicas have, never both claim a lease, and prefix listings are exact.

use std::collections::BTreeSet;
use std::sync::Arc;

use iamlease::model::{Lease, LeaseState, MountPath, RoleName};
use iamlease::store::{self, Store};

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
