//! Criterion micro-benchmarks of the store's hot statements (SQLite, WAL, synchronous=FULL) over
//! 100,000 active leases: `bench/run store-criterion`. Under `cargo test` each runs once.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use iamlease::model::{KeyRecord, Lease, LeaseState, MountPath, RoleName};
use iamlease::store::{KeyHistoryStore, SqliteStore, Store};

/// Leases in the store: 100,000 for `cargo bench`; 1,000 for the smoke run under `cargo test`.
fn rows() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        1_000
    }
}

fn lease(i: usize, state: LeaseState, due_at: i64) -> Lease {
    Lease::pending_iam_user(
        MountPath::parse("bench").unwrap(),
        RoleName::parse("dev").unwrap(),
        format!("iamlease-dev-{i:016}"),
        0,
        due_at,
        due_at,
        due_at,
    )
    .with_id(format!("bench/creds/dev/{i:024}"))
    .with_state(state, due_at)
}

fn statements(c: &mut Criterion) {
    let rows = rows();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let far = iamlease::clock::now() + 86_400;
    let store = rt.block_on(async {
        let s = SqliteStore::open(&format!("sqlite://{}/s.db", dir.path().display()))
            .await
            .unwrap();
        for chunk in (0..rows).collect::<Vec<_>>().chunks(50_000) {
            let leases: Vec<Lease> = chunk
                .iter()
                .map(|&i| lease(i, LeaseState::Active, far))
                .collect();
            s.insert_leases_bulk(&leases).await.unwrap();
        }
        s
    });
    let next = AtomicUsize::new(rows);
    let now = iamlease::clock::now();

    c.bench_function("get_lease", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % rows;
            let id = format!("bench/creds/dev/{i:024}");
            black_box(rt.block_on(store.get_lease(&id)).unwrap())
        })
    });
    c.bench_function("claim_due (nothing due)", |b| {
        b.iter(|| black_box(rt.block_on(store.claim_due(now, now + 300, 256)).unwrap()))
    });
    let meta = std::collections::BTreeMap::new();
    c.bench_function(
        "insert_lease + activate_lease (an issue's two commits)",
        |b| {
            b.iter(|| {
                let l = lease(
                    next.fetch_add(1, Ordering::Relaxed),
                    LeaseState::Pending,
                    far,
                );
                rt.block_on(async {
                    store.insert_lease(&l).await.unwrap();
                    let key = KeyRecord::for_lease(&l, "AKIABENCH00000000000", "bench", &meta);
                    store.activate_lease(&key, far).await.unwrap()
                })
            })
        },
    );
    c.bench_function("list_lease_ids (page of 100)", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(store.list_lease_ids("bench/creds/dev/", None, None, 100))
                    .unwrap(),
            )
        })
    });
    c.bench_function("claim_lease + delete_lease (sync revoke)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let id = format!("bench/creds/dev/{i:024}");
            rt.block_on(async {
                store.claim_lease(&id, now, now + 300).await.unwrap();
                store.delete_lease(&id).await.unwrap()
            })
        })
    });
    rt.block_on(store.close());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = statements
}
criterion_main!(benches);
