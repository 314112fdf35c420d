//! The agent's one background task: keeps a working credential in the endpoint's hands. It
//! renews a renewable lease at half of what is left, until a renewal comes back capped by the
//! role's `max_ttl` (or the lease is not renewable, as STS credentials are); then, a third of the
//! credential's lifetime before it expires (at most 20 minutes before), it issues a new one with
//! `wait_ready`, serves it, and revokes the old lease when the old credential expires, so an SDK
//! that fetched the old one just before the switch can use it until the `Expiration` it was
//! given. It stops between steps, never in the middle of an issue, and hands back the leases it
//! still holds for the agent to revoke.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::super::issue::{IssueArgs, Issued, issue, revoke};
use super::super::output::note;
use super::super::{Client, ServerSaidNo};
use super::Credential;

/// A replacement starts this long before the credential expires, at most.
const MAX_LEAD: Duration = Duration::from_secs(20 * 60);
/// Waits between failed attempts to renew or replace, doubling up to the maximum.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The lease behind the credential being served.
struct Held {
    lease_id: String,
    /// Renewal may still extend it (false once a renewal was capped, or for STS).
    renewable: bool,
    born: OffsetDateTime,
    expires: OffsetDateTime,
    /// When to act next: renew, or (not renewable) replace.
    next: OffsetDateTime,
}

impl Held {
    fn from_issued(issued: &Issued, asked_at: OffsetDateTime) -> Held {
        let renewable = issued.response["renewable"].as_bool().unwrap_or(false);
        let mut held = Held {
            lease_id: issued.lease_id.clone(),
            renewable,
            born: asked_at,
            expires: issued.expiration,
            next: issued.expiration,
        };
        held.plan(OffsetDateTime::now_utc());
        held
    }

    /// Renew at half of what is left; or replace (see `replace_at`).
    fn plan(&mut self, now: OffsetDateTime) {
        self.next = if self.renewable {
            now + (self.expires - now) / 2
        } else {
            self.replace_at()
        };
    }

    /// A third of the credential's lifetime before it expires, at most `MAX_LEAD` before.
    fn replace_at(&self) -> OffsetDateTime {
        let max_lead = time::Duration::try_from(MAX_LEAD).unwrap_or(time::Duration::MINUTE);
        let lead: time::Duration = (self.expires - self.born) / 3;
        self.expires - lead.min(max_lead)
    }
}

pub struct Keeper {
    client: Client,
    args: IssueArgs,
    held: Held,
    /// Replaced leases and when to revoke them (when their credential expires).
    retiring: Vec<(OffsetDateTime, String)>,
    serving: watch::Sender<Arc<Credential>>,
    retry: Duration,
}

impl Keeper {
    pub fn new(
        client: Client,
        args: IssueArgs,
        first: &Issued,
        asked_at: OffsetDateTime,
        serving: watch::Sender<Arc<Credential>>,
    ) -> Keeper {
        Keeper {
            client,
            args,
            held: Held::from_issued(first, asked_at),
            retiring: Vec::new(),
            serving,
            retry: FIRST_RETRY,
        }
    }

    /// Runs until `stop` turns true; answers the leases still held (the current one first).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Vec<String> {
        loop {
            let wake = self
                .retiring
                .iter()
                .map(|(at, _)| *at)
                .fold(self.held.next, OffsetDateTime::min);
            let pause = (wake - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(pause.unsigned_abs()) => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            let now = OffsetDateTime::now_utc();
            self.retire_due(now).await;
            if now >= self.held.next {
                if self.held.renewable {
                    self.renew().await;
                } else {
                    self.replace().await;
                }
            }
            if *stop.borrow() {
                break;
            }
        }
        std::iter::once(self.held.lease_id)
            .chain(self.retiring.into_iter().map(|(_, id)| id))
            .collect()
    }

    async fn retire_due(&mut self, now: OffsetDateTime) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.retiring.drain(..).partition(|(at, _)| *at <= now);
        self.retiring = later;
        for (_, lease_id) in due {
            // It expired anyway, and the server revokes what expires; this only makes it prompt.
            if let Err(e) = revoke(&self.client, &lease_id).await {
                note!("iamlease agent: {e:#}");
            }
        }
    }

    async fn renew(&mut self) {
        let answer = self
            .client
            .request(
                "PUT",
                "sys/leases/renew",
                Some(json!({"lease_id": self.held.lease_id})),
            )
            .await;
        let now = OffsetDateTime::now_utc();
        match answer {
            Ok(resp) => {
                self.retry = FIRST_RETRY;
                let left = resp["lease_duration"].as_i64().unwrap_or(0);
                let capped = resp["warnings"].as_array().is_some_and(|w| !w.is_empty());
                self.held.expires = now + time::Duration::seconds(left);
                self.held.renewable = !capped && left > 0;
                self.held.plan(now);
                // Same key, later end: the SDKs learn it at their next fetch.
                self.serving.send_modify(|c| {
                    *c = Arc::new(Credential {
                        expires: self.held.expires,
                        ..(**c).clone()
                    })
                });
            }
            Err(e) => {
                let gone = e.downcast_ref::<ServerSaidNo>().is_some_and(|no| {
                    no.status == StatusCode::NOT_FOUND || no.status == StatusCode::BAD_REQUEST
                });
                note!(
                    "iamlease agent: renewing lease {} failed: {e:#}",
                    self.held.lease_id
                );
                let retry_at = now + self.next_retry();
                if gone || retry_at >= self.held.replace_at() {
                    // Revoked or past renewing (only a new credential helps then, and at once),
                    // or no time left to try again before the replacement is due.
                    self.held.renewable = false;
                    self.held.next = if gone { now } else { self.held.replace_at() };
                } else {
                    self.held.next = retry_at;
                }
            }
        }
    }

    async fn replace(&mut self) {
        let asked_at = OffsetDateTime::now_utc();
        match issue(&self.client, &self.args, true).await {
            Ok(issued) => {
                self.retry = FIRST_RETRY;
                let old = std::mem::replace(&mut self.held, Held::from_issued(&issued, asked_at));
                self.serving
                    .send_replace(Arc::new(Credential::from(&issued)));
                note!(
                    "iamlease agent: now serving lease {}; lease {} is revoked when its credential expires",
                    self.held.lease_id,
                    old.lease_id
                );
                self.retiring.push((old.expires, old.lease_id));
            }
            Err(e) => {
                let wait = self.next_retry();
                note!(
                    "iamlease agent: issuing a new credential failed: {e:#}; trying again in {}s",
                    wait.as_secs()
                );
                self.held.next = OffsetDateTime::now_utc() + wait;
            }
        }
    }

    fn next_retry(&mut self) -> Duration {
        let wait = self.retry;
        self.retry = (self.retry * 2).min(MAX_RETRY);
        wait
    }
}

impl From<&Issued> for Credential {
    fn from(issued: &Issued) -> Credential {
        Credential {
            access_key: issued.access_key.clone(),
            secret_key: issued.secret_key.clone(),
            session_token: issued.security_token.clone(),
            expires: issued.expiration,
        }
    }
}
