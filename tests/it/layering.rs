//! The module boundaries hold: only `store/` runs SQL, only `aws/` calls the AWS SDK, only
//! `api/` (and the start-up code that serves it) knows about HTTP, and the CLI is a client of
//! the HTTP API, not of the server's insides.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .filter(|rel| !allowed.iter().any(|a| rel.starts_with(a)))
        .filter(|rel| {
            std::fs::read_to_string(root.join(rel))
                .unwrap()
                .contains(needle)
        })
        .collect()
}

#[test]
fn only_store_runs_sql() {
    assert_eq!(offenders("sqlx", &["src/store/"]), Vec::<String>::new());
    assert_eq!(offenders("rusqlite", &["src/store/"]), Vec::<String>::new());
}

#[test]
fn only_aws_calls_the_sdk() {
    for sdk in ["aws_sdk_iam", "aws_sdk_sts", "aws_config"] {
        assert_eq!(offenders(sdk, &["src/aws/"]), Vec::<String>::new(), "{sdk}");
    }
}

#[test]
fn only_api_knows_http() {
    // server.rs binds the listener and hands the router to axum; cli/ is an HTTP client (its
    // `login --method oidc` listens on loopback for the browser's redirect, as vault's does,
    // and the agent serves the container-credentials endpoint on loopback);
    // ui/ is the console, a second HTTP face that reaches the engine only through api::internal.
    assert_eq!(
        offenders(
            "axum",
            &[
                "src/api/",
                "src/server/",
                "src/ui/",
                "src/cli/oidc.rs",
                "src/cli/agent/endpoint.rs"
            ]
        ),
        Vec::<String>::new()
    );
    // Outbound HTTP: the CLI to our server, idp.rs to identity providers.
    assert_eq!(
        offenders("reqwest", &["src/cli/", "src/idp.rs"]),
        Vec::<String>::new()
    );
}

/// The CLI talks to the server over HTTP; what it shares with the server is data rules in
/// neutral modules (`key_map`), not the engine, the store or the API's handlers. The one
/// exception is `setup aws --apply`, which calls AWS itself with the operator's credentials.
#[test]
fn the_cli_is_only_a_client_of_the_api() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/cli"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for inside in ["engine", "store", "api", "auth", "ui", "server", "seal"] {
            if text.contains(&format!("iamlease::{inside}")) {
                found.push(format!("{rel}: iamlease::{inside}"));
            }
        }
        if text.contains("iamlease::aws") && rel != "src/cli/setup.rs" {
            found.push(format!("{rel}: iamlease::aws"));
        }
    }
    assert_eq!(found, Vec::<String>::new());
}

/// Which top-level module of `src/` a file belongs to (`src/api/gate.rs` → `api`).
fn module_of(rel: &str) -> String {
    let rest = rel.trim_start_matches("src/");
    rest.split(['/', '.']).next().unwrap_or(rest).to_owned()
}

/// The module arrows in the code, from each file's `crate::X` (library) and `iamlease::X`
/// (binary) paths, must be exactly the allowed arrows written in ARCHITECTURE.md.
#[test]
fn module_arrows_match_the_allow_list_in_architecture_md() {
    use std::collections::BTreeSet;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let block = doc
        .split("<!-- allowed arrows -->")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("ARCHITECTURE.md has an allowed-arrows block");
    let mut allowed = BTreeSet::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (from, to) = line.split_once("->").expect("`from -> to to …`");
        for t in to.split_whitespace() {
            allowed.insert((from.trim().to_owned(), t.to_owned()));
        }
    }
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut actual = BTreeSet::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let from = module_of(&rel);
        // The binary (main.rs, cli/) reaches the library as `iamlease::`; its `crate::` is itself.
        let binary = from == "main" || from == "cli";
        let prefix = if binary { "iamlease::" } else { "crate::" };
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&format!("{prefix}{{")),
            "{rel}: write one `use {prefix}X…` per module, so this test can read the arrows"
        );
        for (i, _) in text.match_indices(prefix) {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                actual.insert((from.clone(), name));
            }
        }
    }
    let unexpected: Vec<_> = actual.difference(&allowed).collect();
    let unused: Vec<_> = allowed.difference(&actual).collect();
    assert!(
        unexpected.is_empty(),
        "arrows not in ARCHITECTURE.md's allow-list: {unexpected:?}"
    );
    assert!(
        unused.is_empty(),
        "allowed arrows no code uses any more (remove them from ARCHITECTURE.md): {unused:?}"
    );
}

/// The console is a client of the API in-process: of `api` it names only `internal` (calls
/// through the router, and its sessions) and the `AppState` it is handed; the arrows above
/// already keep it from the engine, the store and auth.
#[test]
fn the_console_reaches_the_server_only_through_api_internal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/ui"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::api::") {
            let rest = &text[i + "crate::api::".len()..];
            if !(rest.starts_with("internal") || rest.starts_with("AppState")) {
                let line: String = rest.chars().take_while(|c| *c != '\n').collect();
                found.push(format!("{}: crate::api::{line}", file.display()));
            }
        }
    }
    assert_eq!(found, Vec::<String>::new());
}
