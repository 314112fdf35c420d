//! Which store the tests run against: a fresh SQLite file per test by default, or a fresh
//! database per test on the PostgreSQL server named by `IAMLEASE_TEST_STORAGE`.

use std::path::PathBuf;

use sqlx::Connection;

/// The variable `scripts/test` sets to run the suite against PostgreSQL.
pub const TEST_STORAGE_VAR: &str = "IAMLEASE_TEST_STORAGE";

/// A store of a test's own: its `storage` URL, and what keeps it alive.
pub struct TestStorage {
    pub url: String,
    /// The SQLite file (`None` on PostgreSQL).
    pub sqlite_file: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server the suite runs against, if any.
pub fn postgres_server() -> Option<String> {
    std::env::var(TEST_STORAGE_VAR)
        .ok()
        .filter(|u| iamlease::store::is_postgres_url(u))
}

/// A fresh, empty store. On PostgreSQL, a new database (`CREATE DATABASE test_…`) on the
/// server; the throwaway cluster is removed as a whole when the run ends.
pub async fn fresh() -> TestStorage {
    match postgres_server() {
        Some(server) => TestStorage {
            url: create_database(&server).await,
            sqlite_file: None,
            _dir: None,
        },
        None => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("iamlease.db");
            TestStorage {
                url: format!("sqlite://{}", file.display()),
                sqlite_file: Some(file),
                _dir: Some(dir),
            }
        }
    }
}

/// Creates a database with a random name on `server` and returns its URL.
pub async fn create_database(server: &str) -> String {
    let name = super::random_name("test_");
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {TEST_STORAGE_VAR} server: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut url = reqwest::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}
