//! The web console over plain HTTP (the browser test in tests/ui drives it in Chromium): the
//! signed-in token's policies decide what it may do, exactly as in the API; the session cookie
//! holds no secret; forms without the session's CSRF token are refused.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::{DOC, TestApp, moto};

struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.address.clone(),
            cookies: Vec::new(),
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

    async fn get(&mut self, path: &str) -> (StatusCode, String, Vec<String>) {
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

    async fn post(
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
fn csrf_in(html: &str) -> String {
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

    // Signing out forgets the session on the server.
    let (_, page, _) = b.get("/ui/leases").await;
    let (status, _, _) = b.post("/ui/logout", &[("csrf", &csrf_in(&page))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, to, _) = b.get("/ui/leases").await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/ui/login"));
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
