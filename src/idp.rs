//! The HTTP client of identity providers: the only module that calls one. It fetches discovery
//! documents and key sets, and exchanges an authorization code at a token endpoint; what the
//! answers mean is `auth::jwt`'s business.

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Larger than any real key set, discovery document or token response.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a call to the provider did not give an answer. The message names the URL, never a
/// secret or a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    /// A setting we were given cannot be used (a CA PEM).
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Unreachable(String),
}

/// A client for one provider: trusts `ca_pem` (when given) besides the system's roots.
#[derive(Clone)]
pub struct IdpClient(reqwest::Client);

impl IdpClient {
    pub fn new(ca_pem: &str) -> Result<Self, IdpError> {
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3));
        if !ca_pem.trim().is_empty() {
            let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).map_err(|_| {
                IdpError::Config("the CA PEM is not a valid PEM certificate".into())
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .map(IdpClient)
            .map_err(|e| IdpError::Config(format!("cannot build an HTTP client: {e}")))
    }

    /// The body of `GET url`, which must answer 2xx; `what` names it in errors.
    pub async fn get(&self, url: &str, what: &str) -> Result<Vec<u8>, IdpError> {
        let failed = |e: &dyn std::fmt::Display| {
            IdpError::Unreachable(format!("fetching the {what} from {url} failed: {e}"))
        };
        let response = self.0.get(url).send().await.map_err(|e| failed(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(&format!("HTTP {status}")));
        }
        let body = read(response).await.map_err(|e| failed(&e))?;
        Ok(body)
    }

    /// `POST token_endpoint` with the form, authenticated with `client_secret_basic` when a
    /// secret is given (the method every provider must accept, RFC 6749 §2.3.1). Returns the
    /// status and body whatever the status: an OAuth error is an answer, not a failure.
    pub async fn post_form(
        &self,
        token_endpoint: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<(u16, Vec<u8>), IdpError> {
        let mut request = self.0.post(token_endpoint).form(form);
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(id), Some(enc(secret)));
        }
        let failed = |e: &dyn std::fmt::Display| {
            IdpError::Unreachable(format!(
                "the provider's token endpoint {token_endpoint} failed: {e}"
            ))
        };
        let response = request.send().await.map_err(|e| failed(&e))?;
        let status = response.status().as_u16();
        let body = read(response).await.map_err(|e| failed(&e))?;
        Ok((status, body))
    }
}

async fn read(response: reqwest::Response) -> Result<Vec<u8>, String> {
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if body.len() > MAX_BODY_BYTES {
        return Err("the response is larger than 1 MiB".into());
    }
    Ok(body.to_vec())
}
