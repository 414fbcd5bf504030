//! OpenID Connect sign-in: the authorization code flow with PKCE, state and nonce.
//!
//! The provider's configuration is discovered on first use (and again after a failure, so a
//! provider that was down at start does not need an idlegate restart). Each sign-in attempt
//! keeps its PKCE verifier, nonce and return path here, on the server, under its random
//! `state`; the browser holds the same `state` in a short-lived cookie, so a callback that
//! this browser did not start (login CSRF) is refused. The ID token is verified (signature,
//! issuer, audience, expiry, nonce) before any of its claims are believed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use openidconnect::core::{CoreAuthPrompt, CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    reqwest, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::Identity;
use crate::config::OidcConfig;

/// How long a sign-in may take at the provider.
pub const ATTEMPT_TTL: Duration = Duration::from_secs(600);
/// At most this many sign-ins may be under way; the oldest are dropped first.
const MAX_ATTEMPTS: usize = 10_000;
/// How long a request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The cause of an [`OidcError`].
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A sign-in that failed. The message and its causes ([`crate::error::chain`]) are for the log and the
/// page; they hold no secret.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot read the OpenID provider's configuration")]
    Discovery(#[source] Cause),
    #[error("the sign-in expired or was not started in this browser; start again")]
    UnknownAttempt,
    #[error("the provider refused the sign-in")]
    Provider(#[source] Cause),
    #[error("the provider's answer could not be verified")]
    Token(#[source] Cause),
    #[error("the redirect URL {0:?} is not valid")]
    RedirectUrl(String),
}

/// A cause that is only a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Plain(&'static str);

fn plain(message: &'static str) -> Cause {
    Box::new(Plain(message))
}

struct Attempt {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    redirect: String,
    return_to: String,
    started: Instant,
}

/// OpenID Connect sign-ins for one provider.
pub struct Oidc {
    settings: OidcConfig,
    http: reqwest::Client,
    /// The provider's client once discovered. Never held across a request: sign-ins at a
    /// cold start may each discover, and the last one is kept.
    client: Mutex<Option<Client>>,
    attempts: Mutex<HashMap<String, Attempt>>,
}

impl Oidc {
    pub fn new(settings: OidcConfig) -> Self {
        let http = reqwest::ClientBuilder::new()
            // The flow must never follow redirects on the back channel (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            settings,
            http,
            client: Mutex::new(None),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// When the provider is asked to authenticate people again.
    pub fn reauthenticate(&self) -> crate::config::login::Reauthenticate {
        self.settings.reauthenticate
    }

    /// The configured redirect URL, if one is fixed.
    pub fn redirect_url(&self) -> Option<&str> {
        self.settings.redirect_url.as_deref()
    }

    async fn client(&self) -> Result<Client, OidcError> {
        if let Some(client) = self.cached().as_ref() {
            return Ok(client.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Discovery(Box::new(e)))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(Box::new(e)))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        );
        *self.cached() = Some(client.clone());
        Ok(client)
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<Client>> {
        self.client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a sign-in: returns the provider URL to send the browser to, and the `state`
    /// for the browser's cookie. With `reauthenticate`, the provider is asked to make the
    /// person authenticate again (`prompt=login`, `max_age=0`) instead of signing them in
    /// from its own session.
    pub async fn start(
        &self,
        redirect: &str,
        return_to: &str,
        reauthenticate: bool,
    ) -> Result<(String, String), OidcError> {
        let redirect_url = RedirectUrl::new(redirect.to_owned())
            .map_err(|_| OidcError::RedirectUrl(redirect.to_owned()))?;
        let client = self.client().await?.set_redirect_uri(redirect_url);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if reauthenticate {
            request = request
                .add_prompt(CoreAuthPrompt::Login)
                .set_max_age(std::time::Duration::ZERO);
        }
        let (url, state, nonce) = request.url();
        let mut attempts = self.attempts();
        let now = Instant::now();
        attempts.retain(|_, a| now.saturating_duration_since(a.started) < ATTEMPT_TTL);
        if attempts.len() >= MAX_ATTEMPTS {
            if let Some(oldest) = attempts
                .iter()
                .min_by_key(|(_, a)| a.started)
                .map(|(k, _)| k.clone())
            {
                attempts.remove(&oldest);
            }
        }
        attempts.insert(
            state.secret().clone(),
            Attempt {
                verifier,
                nonce,
                redirect: redirect.to_owned(),
                return_to: return_to.to_owned(),
                started: now,
            },
        );
        Ok((url.to_string(), state.secret().clone()))
    }

    /// Finishes a sign-in at the callback: `state` from the URL must equal the one in the
    /// browser's cookie. Returns who signed in and where they were going.
    pub async fn finish(
        &self,
        state: &str,
        cookie_state: Option<&str>,
        code: &str,
    ) -> Result<(Identity, String), OidcError> {
        let same_browser =
            cookie_state.is_some_and(|c| bool::from(c.as_bytes().ct_eq(state.as_bytes())));
        let attempt = self
            .attempts()
            .remove(state)
            .filter(|a| same_browser && a.started.elapsed() < ATTEMPT_TTL)
            .ok_or(OidcError::UnknownAttempt)?;
        let redirect_url = RedirectUrl::new(attempt.redirect.clone())
            .map_err(|_| OidcError::RedirectUrl(attempt.redirect.clone()))?;
        let client = self.client().await?.set_redirect_uri(redirect_url);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Provider(Box::new(e)))?
            .set_pkce_verifier(attempt.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Provider(Box::new(e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Token(plain("no ID token")))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &attempt.nonce)
            .map_err(|e| OidcError::Token(Box::new(e)))?;
        // Verified above; the payload is read again only for claims the library does not
        // model (the user and groups claims are configurable).
        let payload = jwt_payload(&id_token.to_string())?;
        let claim = |name: &str| {
            payload
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let email = claims.email().map(|e| e.to_string());
        let user = claim(&self.settings.user_claim)
            .or_else(|| email.clone())
            .unwrap_or_else(|| claims.subject().to_string());
        let groups = payload
            .get(&self.settings.groups_claim)
            .and_then(|v| v.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok((
            Identity {
                user,
                email,
                groups,
            },
            attempt.return_to,
        ))
    }

    /// A failed discovery is tried again on the next sign-in.
    pub fn forget_provider(&self) {
        *self.cached() = None;
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attempt>> {
        self.attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn jwt_payload(token: &str) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::Token(plain("malformed ID token")))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| OidcError::Token(Box::new(e)))?;
    serde_json::from_slice(&bytes).map_err(|e| OidcError::Token(Box::new(e)))
}
