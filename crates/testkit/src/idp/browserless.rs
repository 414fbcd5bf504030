//! Signing in through the test OpenID provider over plain HTTP: redirects followed, the
//! provider's sign-in and consent forms submitted, cookies kept per host and port.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;

use crate::http::Response;

/// Most redirects and forms one [`Browserless::follow`] goes through.
const MAX_STEPS: usize = 20;

/// A cookie-keeping HTTP client that follows a sign-in to its end, like a browser without
/// scripts. Cookies are kept per `host:port` (paths and expiry dates are ignored; `Max-Age=0`
/// and the epoch expiry remove one).
#[derive(Default)]
pub struct Browserless {
    jar: HashMap<String, BTreeMap<String, String>>,
}

fn authority(url: &str) -> Result<(String, String)> {
    let uri: Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
    let scheme = uri.scheme_str().unwrap_or("http").to_owned();
    let authority = uri.authority().context("URL without host")?.to_string();
    Ok((scheme, authority))
}

impl Browserless {
    /// A client with no cookies.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of cookie `name` kept for `url`'s host and port.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let (_, at) = authority(url).ok()?;
        self.jar.get(&at)?.get(name).cloned()
    }

    /// Sends a request with the cookies kept for its host, and keeps the cookies it sets.
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        form: Option<&str>,
    ) -> Result<Response> {
        let (_, at) = authority(url)?;
        let cookies = self
            .jar
            .get(&at)
            .map(|jar| {
                jar.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header("accept", "text/html")
            .header("sec-fetch-dest", "document")
            .header("sec-fetch-site", "same-origin");
        if !cookies.is_empty() {
            request = request.header("cookie", cookies);
        }
        if form.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let body = Full::new(Bytes::from(form.unwrap_or_default().to_owned()));
        let response = crate::http::send(request.body(body)?).await?;
        let jar = self.jar.entry(at).or_default();
        for set in response.headers.get_all("set-cookie") {
            let set = set.to_str().unwrap_or_default();
            let mut parts = set.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let gone = parts.any(|a| {
                let a = a.to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("expires=thu, 01 jan 1970")
            });
            if gone {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        Ok(response)
    }

    /// Goes to `url` and on: follows redirects, and at the provider's forms signs in as
    /// `login` (any password) and consents, until a response that is neither. Returns the
    /// last URL and its response.
    pub async fn follow(&mut self, url: &str, login: &str) -> Result<(String, Response)> {
        let mut url = url.to_owned();
        let mut form: Option<String> = None;
        for _ in 0..MAX_STEPS {
            let method = if form.is_some() {
                Method::POST
            } else {
                Method::GET
            };
            let response = self.send(method, &url, form.as_deref()).await?;
            form = None;
            let (scheme, at) = authority(&url)?;
            let absolute = |to: &str| {
                if to.starts_with("http://") || to.starts_with("https://") {
                    to.to_owned()
                } else {
                    format!("{scheme}://{at}{to}")
                }
            };
            if response.status.is_redirection() {
                let to = response
                    .header("location")
                    .context("redirect without Location")?;
                url = absolute(to);
                continue;
            }
            let text = response.text();
            let prompt = if text.contains(r#"name="prompt" value="login""#) {
                format!("prompt=login&login={login}&password=anything")
            } else if text.contains(r#"name="prompt" value="consent""#) {
                "prompt=consent".to_owned()
            } else {
                return Ok((url, response));
            };
            let action = text
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .context("a form without action")?;
            url = absolute(action);
            form = Some(prompt);
        }
        bail!("the sign-in took more than {MAX_STEPS} steps, at {url}")
    }
}
