//! OpenID Connect sign-in: the authorization code flow with PKCE, state and nonce.
//!
//! The provider's configuration is discovered on first use (and again after a failure, so a
//! provider that was down at start does not need an idlegate restart). Each sign-in attempt
//! lives in the browser that started it, in a signed short-lived cookie ([`attempt`]): the
//! server keeps nothing per attempt, so a flood of sign-in starts costs no memory and evicts
//! nobody. The ID token is verified (signature, issuer, audience, expiry, nonce) before any
//! of its claims are believed, and its claims become an identity by one rule ([`claims`]).
//! When the provider rotates its signing keys, an ID token it signs with a key idlegate has
//! not seen makes idlegate fetch the provider's keys again (OpenID Connect Core §10.1.1), at
//! most once per [`KEY_REFETCH_EVERY`].

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use openidconnect::core::{
    CoreAuthPrompt, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreProviderMetadata,
    CoreResponseType,
};
use openidconnect::{
    reqwest, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    JsonWebKeySet, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use tokio::time::Instant;

use super::Identity;
use crate::config::{CookieKey, OidcConfig};

pub mod attempt;
pub mod claims;
pub mod limits;

pub use attempt::ATTEMPT_TTL;
use attempt::{Attempt, AttemptSeal};
pub use limits::OidcCounters;

/// The provider's signing keys are fetched again at most once per this interval, however
/// many ID tokens fail to verify (a provider rotating keys needs one refetch; more would let
/// a misbehaving provider make idlegate fetch on every callback).
pub const KEY_REFETCH_EVERY: Duration = Duration::from_secs(30);
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
    #[error("the provider's answer does not name a user")]
    Claims(#[from] claims::ClaimsError),
    #[error("the redirect URL {0:?} is not valid")]
    RedirectUrl(String),
    #[error(transparent)]
    TooLarge(#[from] attempt::TooLarge),
}

impl OidcError {
    /// Whether the provider could not be reached or read (rather than this sign-in being
    /// wrong): its configuration is then discovered again on the next sign-in.
    pub fn is_provider_unreachable(&self) -> bool {
        matches!(self, Self::Discovery(_))
    }
}

/// A cause that is only a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Plain(&'static str);

fn plain(message: &'static str) -> Cause {
    Box::new(Plain(message))
}

/// Whether the signing keys may be fetched again at `now`, the last refetch having been at
/// `last` (`None`: never since discovery): at most once per [`KEY_REFETCH_EVERY`].
fn may_refetch(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= KEY_REFETCH_EVERY)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The provider as discovered, with its current signing keys.
struct Provider {
    metadata: CoreProviderMetadata,
    /// When the signing keys were last fetched again.
    refetched: Option<Instant>,
}

/// OpenID Connect sign-ins for one provider.
pub struct Oidc {
    settings: OidcConfig,
    http: reqwest::Client,
    /// The provider once discovered. The lock is never held across a request: sign-ins at a
    /// cold start may each discover, and the last one is kept; a key refetch claims its slot
    /// under the lock, fetches without it, and stores the keys after.
    provider: Mutex<Option<Provider>>,
    seal: AttemptSeal,
    counters: OidcCounters,
}

impl Oidc {
    /// Sign-ins at the provider `settings` names; attempt cookies are signed with keys
    /// derived from `cookie_keys` (newest first; none: a random key for this process).
    pub fn new(settings: OidcConfig, cookie_keys: &[CookieKey]) -> Self {
        let http = reqwest::ClientBuilder::new()
            // The flow must never follow redirects on the back channel (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            settings,
            http,
            provider: Mutex::new(None),
            seal: AttemptSeal::new(cookie_keys),
            counters: OidcCounters::default(),
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

    /// What the sign-in refused or rate-limited so far.
    pub fn counters(&self) -> &OidcCounters {
        &self.counters
    }

    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        if let Some(provider) = self.cached().as_ref() {
            return Ok(provider.metadata.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Discovery(Box::new(e)))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(Box::new(e)))?;
        *self.cached() = Some(Provider {
            metadata: metadata.clone(),
            refetched: None,
        });
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata, redirect: &str) -> Result<Client, OidcError> {
        let redirect_url = RedirectUrl::new(redirect.to_owned())
            .map_err(|_| OidcError::RedirectUrl(redirect.to_owned()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect_url))
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<Provider>> {
        self.provider
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches the provider's signing keys again, unless that happened less than
    /// [`KEY_REFETCH_EVERY`] ago. Returns the provider with its newest keys: fetched now, or
    /// (skipped) the ones a recent refetch stored; `None` when the provider was forgotten
    /// meanwhile.
    async fn refetch_keys(&self) -> Result<Option<CoreProviderMetadata>, OidcError> {
        let metadata = {
            let mut cached = self.cached();
            let Some(provider) = cached.as_mut() else {
                return Ok(None);
            };
            let now = Instant::now();
            if !may_refetch(provider.refetched, now) {
                let latest = provider.metadata.clone();
                drop(cached);
                let tally = &self.counters.key_refetch_limited;
                self.counters.hit(tally, "oidc_key_refetch_limited");
                return Ok(Some(latest));
            }
            provider.refetched = Some(now);
            provider.metadata.clone()
        };
        let keys: CoreJsonWebKeySet = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| OidcError::Discovery(Box::new(e)))?;
        self.counters.keys_refetched.hit();
        tracing::info!(
            keys = keys.keys().len(),
            "fetched the OpenID provider's signing keys again (an ID token named a key \
             not seen before)"
        );
        let metadata = metadata.set_jwks(keys);
        if let Some(provider) = self.cached().as_mut() {
            provider.metadata = metadata.clone();
        }
        Ok(Some(metadata))
    }

    /// Starts a sign-in: returns the provider URL to send the browser to, and the attempt
    /// cookie's value. With `reauthenticate`, the provider is asked to make the person
    /// authenticate again (`prompt=login`, `max_age=0`) instead of signing them in from its
    /// own session. `return_to` must already be a checked app path of at most
    /// `MAX_RETURN_PATH` bytes. Errors: the provider cannot be discovered; the redirect URL
    /// is invalid or too long for the cookie.
    pub async fn start(
        &self,
        redirect: &str,
        return_to: &str,
        reauthenticate: bool,
    ) -> Result<(String, String), OidcError> {
        let attempt = Attempt::new(redirect, return_to, unix_now());
        let cookie = self.seal.seal(&attempt)?;
        let (verifier, nonce) = self.seal.secrets(&attempt.state, 0);
        let client = self.client(self.metadata().await?, redirect)?;
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier));
        let state = attempt.state;
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
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
        let (url, _, _) = request.url();
        Ok((url.to_string(), cookie))
    }

    /// Finishes a sign-in at the callback: `state` from the URL must be the one sealed in
    /// the browser's attempt cookie (`cookie`). Returns who signed in and where they were
    /// going.
    pub async fn finish(
        &self,
        state: &str,
        cookie: Option<&str>,
        code: &str,
    ) -> Result<(Identity, String), OidcError> {
        let Some((attempt, key)) = cookie.and_then(|c| self.seal.open(c, state, unix_now())) else {
            let tally = &self.counters.attempt_refused;
            self.counters.hit(tally, "oidc_attempt_refused");
            return Err(OidcError::UnknownAttempt);
        };
        let (verifier, nonce) = self.seal.secrets(&attempt.state, key);
        let client = self.client(self.metadata().await?, &attempt.redirect)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Provider(Box::new(e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Provider(Box::new(e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Token(plain("no ID token")))?;
        let nonce = Nonce::new(nonce);
        self.verify(&client, id_token, &nonce, &attempt.redirect)
            .await?;
        // Verified above; the payload is read again for the claims the rule uses (some of
        // which the library does not model: the key and groups claims are configurable).
        let payload = jwt_payload(&id_token.to_string())?;
        let identity = claims::identity(
            &payload,
            &self.settings.user_claim,
            &self.settings.groups_claim,
        )?;
        Ok((identity, attempt.return_to))
    }

    /// Verifies an ID token; when its signature cannot be verified with the keys at hand
    /// (the provider rotated them), fetches the keys again (rate-limited: within
    /// [`KEY_REFETCH_EVERY`] of the last refetch, the keys that one stored are used) and
    /// tries once more.
    async fn verify(
        &self,
        client: &Client,
        id_token: &CoreIdToken,
        nonce: &Nonce,
        redirect: &str,
    ) -> Result<(), OidcError> {
        match id_token.claims(&client.id_token_verifier(), nonce) {
            Ok(_) => return Ok(()),
            Err(ClaimsVerificationError::SignatureVerification(_)) => {}
            Err(e) => return Err(OidcError::Token(Box::new(e))),
        }
        let Some(metadata) = self.refetch_keys().await? else {
            return Err(OidcError::Token(plain(
                "the ID token's signing key is unknown",
            )));
        };
        let client = self.client(metadata, redirect)?;
        let verifier = client.id_token_verifier();
        let verified = id_token.claims(&verifier, nonce).map(|_| ());
        verified.map_err(|e| OidcError::Token(Box::new(e)))
    }

    /// A failed discovery is tried again on the next sign-in.
    pub fn forget_provider(&self) {
        *self.cached() = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keys_are_fetched_again_at_most_once_per_interval() {
        let start = Instant::now();
        assert!(
            may_refetch(None, start),
            "the first unknown key refetches at once"
        );
        let soon = start + KEY_REFETCH_EVERY - Duration::from_millis(1);
        assert!(!may_refetch(Some(start), soon));
        assert!(may_refetch(Some(start), start + KEY_REFETCH_EVERY));
    }

    #[test]
    fn only_an_unreachable_provider_is_discovered_again() {
        assert!(OidcError::Discovery(plain("down")).is_provider_unreachable());
        assert!(!OidcError::UnknownAttempt.is_provider_unreachable());
        assert!(!OidcError::TooLarge(attempt::TooLarge).is_provider_unreachable());
    }
}
