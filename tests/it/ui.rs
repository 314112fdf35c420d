//! The web console over plain HTTP (the browser test in tests/ui drives it in Chromium): the
//! signed-in token's policies decide what it may do, exactly as in the API; the session cookie
//! holds no secret; forms without the session's CSRF token are refused; sessions live in the
//! store, so they survive a restart and any replica serves them (the two-replica test needs
//! PostgreSQL and is `#[ignore]`d like `replicas::*`; `scripts/test` runs it).

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::{DOC, Options, TestApp, moto, random_name, storage};

/// A browser without JavaScript: it keeps cookies and does not follow redirects.
#[derive(Clone)]
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self::at(&app.address)
    }

    /// A browser for the server at `base` (`http://host:port`).
    pub(crate) fn at(base: &str) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    /// The same browser (its cookies) pointed at another server, as a load balancer would.
    pub(crate) fn via(&self, base: &str) -> Self {
        Browser {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// Signs in with `token` through the sign-in form; panics unless that works.
    pub(crate) async fn sign_in(&mut self, token: &str) {
        let (_, login, _) = self.get("/ui/login").await;
        let (status, to, _) = self
            .post("/ui/login", &[("csrf", &csrf_in(&login)), ("token", token)])
            .await;
        assert_eq!(
            (status, to.as_str()),
            (StatusCode::SEE_OTHER, "/ui/mounts"),
            "signing in"
        );
        assert!(self.cookie("iamlease_session").is_some());
    }

    /// Whether the session cookie still opens a page (else the console asks to sign in).
    pub(crate) async fn signed_in(&mut self) -> bool {
        let (status, to, _) = self.get("/ui/mounts").await;
        match status {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER if to == "/ui/login" => false,
            other => panic!("/ui/mounts answered {other}: {to}"),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, res: &reqwest::Response) -> Vec<String> {
        let raw: Vec<String> = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &raw {
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        raw
    }

    pub(crate) async fn get(&mut self, path: &str) -> (StatusCode, String, Vec<String>) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        let set = self.keep(&res);
        let status = res.status();
        let location = res
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let body = res.text().await.unwrap();
        (status, location.unwrap_or(body), set)
    }

    pub(crate) async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Vec<String>) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let set = self.keep(&res);
        let status = res.status();
        let location = res
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let body = res.text().await.unwrap();
        (status, location.unwrap_or(body), set)
    }
}

/// The CSRF token a page's forms carry.
pub(crate) fn csrf_in(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a csrf field")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_console_can_do_what_its_token_may_and_nothing_more() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    app.write_user_role("dev").await;
    let policy = format!(
        r#"path "{m}/creds/dev" {{ capabilities = ["update"] }}
path "sys/mounts" {{ capabilities = ["read"] }}"#
    );
    let r = app
        .call(
            "PUT",
            "sys/policies/acl/console-dev",
            Some(json!({"policy": policy})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = app
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["console-dev"], "display_name": "alice"})),
        )
        .await;
    let token = r.body["auth"]["client_token"].as_str().unwrap().to_owned();

    let mut b = Browser::new(&app);
    // Not signed in: every page sends you to sign in.
    let (status, to, _) = b.get(&format!("/ui/mounts/{m}")).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ui/login"));

    // Sign in; the cookie is an opaque id, HttpOnly, SameSite=Strict, Path=/ui.
    b.get("/ui/login").await;
    let (status, login, set) = b
        .post("/ui/login", &[("csrf", "forged"), ("token", &token)])
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a login without its CSRF cookie's value"
    );
    assert!(set.iter().all(|c| !c.starts_with("iamlease_session=")));
    // The refusal renders a fresh form (with a fresh CSRF cookie): sign in from that one.
    let (status, to, set) = b
        .post(
            "/ui/login",
            &[("csrf", &csrf_in(&login)), ("token", &token)],
        )
        .await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ui/mounts"));
    let session = set
        .iter()
        .find(|c| c.starts_with("iamlease_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    assert!(
        !session.contains(&token),
        "the cookie must not hold the token"
    );

    // The mount page: the token may not read config/root or list roles, and the page says so.
    let (status, page, _) = b.get(&format!("/ui/mounts/{m}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("permission denied"), "{page}");
    let csrf = csrf_in(&page);

    // Writing a role is refused with the API's own 403 message, and nothing is written.
    let (status, page, _) = b
        .post(
            &format!("/ui/mounts/{m}/roles"),
            &[
                ("csrf", &csrf),
                ("name", "sneaky"),
                ("policy_document", DOC),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("do not grant update on"), "{page}");
    let r = app.call("GET", &format!("{m}/roles/sneaky"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Generating dev credentials is allowed; they are on that one page, and moto has the user.
    let (status, page, _) = b
        .post(
            &format!("/ui/mounts/{m}/roles/dev/generate"),
            &[("csrf", &csrf), ("ttl", "15m")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let secret_at = page
        .find(r#"id="secret-key">"#)
        .expect("the secret on the page")
        + 16;
    let secret = page[secret_at..].split('<').next().unwrap().to_owned();
    assert!(secret.len() >= 20);
    assert_eq!(app.users_in_moto().await.len(), 1);
    let (_, again, _) = b.get(&format!("/ui/mounts/{m}/roles/dev")).await;
    assert!(!again.contains(&secret), "the secret is shown only once");

    // Forged CSRF tokens are refused before anything happens.
    let (status, _, _) = b
        .post(
            &format!("/ui/mounts/{m}/roles/dev/generate"),
            &[("csrf", "not-the-token")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.users_in_moto().await.len(), 1);

    // Other tokens' leases are not this token's to revoke; its own are.
    let lease_dir = format!("sys/leases/lookup/{m}/creds/dev/");
    let leases = app.call("LIST", &lease_dir, None).await;
    let id = format!(
        "{m}/creds/dev/{}",
        leases.body["data"]["keys"][0].as_str().unwrap()
    );
    let (status, to, _) = b
        .post("/ui/leases/revoke", &[("csrf", &csrf), ("lease_id", &id)])
        .await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ui/leases"));
    app.assert_nothing_left().await;
    assert!(moto().users_under(&app.path_prefix()).await.is_empty());

    // Signing out forgets the session on the server: the old cookie, sent again, is refused.
    let (_, page, _) = b.get("/ui/leases").await;
    let mut replay = b.clone();
    let (status, _, _) = b.post("/ui/logout", &[("csrf", &csrf_in(&page))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, to, _) = b.get("/ui/leases").await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ui/login"));
    assert!(
        !replay.signed_in().await,
        "the signed-out cookie still works"
    );
}

#[tokio::test]
async fn failed_revocations_are_listed_first_with_their_last_error() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    app.write_user_role("dev").await;
    let ok_lease = app.issue("dev", json!({})).await.body["lease_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad_lease = app.issue("dev", json!({})).await.body["lease_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Break the mount's AWS access (moto's auth refuses the wrong secret), so a revoke fails.
    let wrong = json!({"access_key": moto().admin_key, "secret_key": "wrong-secret"});
    app.write_root_config(wrong).await;
    let r = app
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": bad_lease})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);

    let mut b = Browser::new(&app);
    let login = b.get("/ui/login").await.1;
    let (status, _, _) = b
        .post(
            "/ui/login",
            &[
                ("csrf", &csrf_in(&login)),
                ("token", crate::support::ROOT_TOKEN),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page, _) = b.get(&format!("/ui/leases?mount={m}&role=dev")).await;
    let failed_row = page
        .find(&format!(
            r#"<tr class="failed" data-lease-id="{bad_lease}""#
        ))
        .expect("the failed lease is highlighted");
    let ok_row = page
        .find(&format!(r#"data-lease-id="{ok_lease}""#))
        .expect("the active lease is listed");
    assert!(failed_row < ok_row, "failed revocations come first");
    assert!(page.contains("Last error:"), "{page}");
    assert!(page.contains("SignatureDoesNotMatch"), "{page}");
    // Filtering by state shows only the failed one.
    let (_, only_failed, _) = b.get(&format!("/ui/leases?mount={m}&state=failed")).await;
    assert!(only_failed.contains(&bad_lease) && !only_failed.contains(&ok_lease));

    // Repair the connection; "revoke all" for the role clears both, in AWS too.
    let fixed = json!({"access_key": moto().admin_key, "secret_key": moto().admin_secret});
    app.write_root_config(fixed).await;
    let csrf = csrf_in(&page);
    let (status, _, _) = b
        .post(
            "/ui/leases/revoke-role",
            &[("csrf", &csrf), ("mount", &m), ("role", "dev")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, after, _) = b.get("/ui/leases").await;
    assert!(after.contains("Revoked every lease of"), "{after}");
    app.assert_nothing_left().await;
}

/// The mount page lists static roles with their last and next rotation and their last error.
#[tokio::test]
async fn the_mount_page_lists_static_roles_with_their_rotations() {
    let app = TestApp::spawn().await;
    app.configure().await;
    let m = app.mount.clone();
    let user = crate::support::random_name("static-");
    moto()
        .iam()
        .create_user()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let r = app
        .call(
            "POST",
            &format!("{m}/static-roles/legacy"),
            Some(json!({"username": user, "rotation_period": "24h"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let role = &r.body["data"];

    let mut b = Browser::new(&app);
    let (_, login, _) = b.get("/ui/login").await;
    let (status, _, _) = b
        .post(
            "/ui/login",
            &[
                ("csrf", &csrf_in(&login)),
                ("token", crate::support::ROOT_TOKEN),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page, _) = b.get(&format!("/ui/mounts/{m}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Static roles"), "{page}");
    for shown in [
        "legacy",
        user.as_str(),
        role["last_rotation"].as_str().unwrap(),
        role["next_rotation"].as_str().unwrap(),
    ] {
        assert!(page.contains(shown), "the page lacks {shown}");
    }
    // The account's IAM user quota, as the mount reads it (moto's 5,000).
    assert!(
        page.contains("of 5000 IAM users in the account; 5% kept free"),
        "{page}"
    );
}

/// Sessions are in the store, not in the server's memory: a restart on the same store keeps
/// them (pages load, a form's CSRF token still checks, the flash it leaves is shown), and they
/// end on sign-out, on sign-out everywhere (every session of the token) and with the token.
#[tokio::test]
async fn console_sessions_survive_a_restart_and_end_with_sign_out_or_their_token() {
    let fresh = storage::fresh().await;
    let key = iamlease::seal::MasterKey::generate().unwrap();
    let options = || Options {
        storage: Some(fresh.url.clone()),
        master_key: Some(key.clone()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(options()).await;
    let create = |name: &str| {
        let app = &app;
        let body = json!({"display_name": name});
        async move {
            let r = app.call("POST", "auth/token/create", Some(body)).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body["auth"]["client_token"].as_str().unwrap().to_owned()
        }
    };
    let (alice, bob) = (create("alice").await, create("bob").await);
    let mut first = Browser::new(&app);
    first.sign_in(&alice).await;
    let (_, page, _) = first.get("/ui/mounts").await;
    let csrf = csrf_in(&page);
    app.stop().await;

    let app = TestApp::spawn_with(options()).await;
    let mut first = first.via(&app.address);
    let (status, page, _) = first.get("/ui/mounts").await;
    assert_eq!(status, StatusCode::OK, "the session outlived the restart");
    assert!(page.contains("token-alice"), "{page}");
    assert_eq!(
        csrf_in(&page),
        csrf,
        "the same session, the same CSRF token"
    );
    let path = random_name("ui");
    let (status, to, _) = first
        .post("/ui/mounts", &[("csrf", &csrf), ("path", &path)])
        .await;
    assert_eq!(
        (status, to),
        (StatusCode::SEE_OTHER, format!("/ui/mounts/{path}"))
    );
    let (_, page, _) = first.get(&format!("/ui/mounts/{path}")).await;
    assert!(
        page.contains("is mounted; now connect it to AWS."),
        "{page}"
    );
    let (_, page, _) = first.get(&format!("/ui/mounts/{path}")).await;
    assert!(!page.contains("is mounted;"), "a flash is shown once");

    // Sign out everywhere: every session of alice's token ends, bob's stays.
    let mut second = Browser::new(&app);
    second.sign_in(&alice).await;
    let mut other = Browser::new(&app);
    other.sign_in(&bob).await;
    let (_, page, _) = second.get("/ui/mounts").await;
    let (status, to, _) = second
        .post(
            "/ui/logout",
            &[("csrf", &csrf_in(&page)), ("everywhere", "1")],
        )
        .await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ui/login"));
    assert!(!first.signed_in().await, "alice's other session ended too");
    assert!(other.signed_in().await, "bob's session is not alice's");

    // A plain sign-out ends only that session; revoking the token ends the rest.
    let mut third = Browser::new(&app);
    third.sign_in(&bob).await;
    let kept = third.clone();
    let (_, page, _) = third.get("/ui/mounts").await;
    third.post("/ui/logout", &[("csrf", &csrf_in(&page))]).await;
    assert!(
        !kept.clone().signed_in().await,
        "the signed-out cookie is refused"
    );
    assert!(other.signed_in().await);
    let r = app
        .call("POST", "auth/token/revoke", Some(json!({"token": bob})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(!other.signed_in().await, "the session ended with its token");
    app.stop().await;
}

/// Two replicas on one PostgreSQL database (real processes): a session made on A is served
/// by B (pages, a CSRF-checked form, its flash shown back on A); signing out on B ends it on A;
/// signing out everywhere ends the token's other sessions on both; revoking the token ends
/// every session it has, at once, on both.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with IAMLEASE_TEST_STORAGE (scripts/test runs it)"]
async fn two_replicas_serve_and_end_one_console_session() {
    use crate::support::process::Replica;
    // Asked for on SQLite (`--include-ignored`), this fails rather than pass without testing.
    let server = storage::postgres_server().expect(
        "two_replicas_serve_and_end_one_console_session needs IAMLEASE_TEST_STORAGE=postgres://… (scripts/test sets it)",
    );
    let db = storage::create_database(&server).await;
    let key = iamlease::seal::MasterKey::generate().unwrap().to_base64();
    let logs = tempfile::tempdir().unwrap();
    let (a, b) = tokio::join!(
        Replica::start("console-a", &db, &key, logs.path(), &[]),
        Replica::start("console-b", &db, &key, logs.path(), &[]),
    );
    let token_for = |name: &'static str| {
        let a = &a;
        async move {
            let (s, v) = a
                .call("POST", "auth/token/create", json!({"display_name": name}))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["auth"]["client_token"].as_str().unwrap().to_owned()
        }
    };
    let alice = token_for("alice").await;

    // Signed in on A through the form; the same cookie on B loads a page, as the same session.
    let mut on_a = Browser::at(a.base());
    on_a.sign_in(&alice).await;
    let (_, page_a, _) = on_a.get("/ui/mounts").await;
    let mut on_b = on_a.via(b.base());
    let (status, page_b, _) = on_b.get("/ui/mounts").await;
    assert_eq!(status, StatusCode::OK, "B serves A's session: {page_b}");
    assert!(page_b.contains("token-alice"), "{page_b}");
    let csrf = csrf_in(&page_b);
    assert_eq!(csrf, csrf_in(&page_a), "one session, one CSRF token");

    // A form posted to B with that CSRF token works; its flash is shown on A, once.
    let path = random_name("ui");
    let (status, to, _) = on_b
        .post("/ui/mounts", &[("csrf", &csrf), ("path", &path)])
        .await;
    assert_eq!(
        (status, to),
        (StatusCode::SEE_OTHER, format!("/ui/mounts/{path}"))
    );
    let (s, v) = a.call("GET", "sys/mounts", json!(null)).await;
    assert!(v["data"].get(format!("{path}/")).is_some(), "{s} {v}");
    let (_, page, _) = on_a.get(&format!("/ui/mounts/{path}")).await;
    assert!(
        page.contains("is mounted; now connect it to AWS."),
        "{page}"
    );
    let (_, page, _) = on_b.get(&format!("/ui/mounts/{path}")).await;
    assert!(
        !page.contains("is mounted;"),
        "a flash is shown once, on one replica"
    );
    let (status, _, _) = on_b
        .post("/ui/mounts", &[("csrf", "forged"), ("path", "forged")])
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a forged CSRF token is refused on B"
    );

    // Signed out on B: A refuses the cookie.
    let (status, to, _) = on_b.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ui/login"));
    assert!(
        !on_a.signed_in().await,
        "A still served a session signed out on B"
    );

    // Sign out everywhere on B ends alice's session made on A; bob's stays.
    let mut first = Browser::at(a.base());
    first.sign_in(&alice).await;
    let mut second = Browser::at(b.base());
    second.sign_in(&alice).await;
    let bob = token_for("bob").await;
    let mut other = Browser::at(a.base());
    other.sign_in(&bob).await;
    let (_, page, _) = second.get("/ui/mounts").await;
    let (status, _, _) = second
        .post(
            "/ui/logout",
            &[("csrf", &csrf_in(&page)), ("everywhere", "1")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        !first.signed_in().await,
        "alice's session on A outlived sign-out everywhere"
    );
    assert!(other.signed_in().await, "bob's session ended with alice's");

    // Revoking bob's token on B ends his sessions, made on either replica, at once.
    let mut bob_on_b = Browser::at(b.base());
    bob_on_b.sign_in(&bob).await;
    let (s, v) = b
        .call("POST", "auth/token/revoke", json!({"token": bob}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert!(
        !other.signed_in().await,
        "a session outlived its token on A"
    );
    assert!(!other.via(b.base()).signed_in().await);
    assert!(
        !bob_on_b.signed_in().await,
        "a session outlived its token on B"
    );
}
