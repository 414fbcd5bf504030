//! Replaying the [`Release`]s of ended tabs to the app (deleting their uploaded files).
//!
//! An app may free an expired session's memory but keep the files uploaded to it; the same
//! request the page sends when a person removes a file frees them (the app kind says which,
//! as an [`UploadEvent`](crate::apps::UploadEvent)). [`Releaser`] subscribes
//! to tab ends and hands their releases to [`run`], which replays them one after another on
//! its own task, never on a request's path.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use tokio::sync::mpsc;

use super::{Body, UpstreamClient};
use crate::config::Upstream;
use crate::lifecycle::{Event, Release, Subscriber};
use crate::limits::{work::Queue, Limits};
use crate::redact::short_hash;

/// Hands the releases of every ended tab (and of uploads the app stored after their tab
/// ended) to [`run`], through a bounded [`Queue`].
pub struct Releaser(Queue<Vec<Release>>);

impl Releaser {
    /// A subscriber whose releases `run` replays to the app at `upstream`, counting dropped
    /// batches in `limits`.
    pub fn start(client: UpstreamClient, upstream: Upstream, limits: Arc<Limits>) -> Self {
        let (queue, rx) = Queue::new(limits);
        tokio::spawn(run(rx, client, upstream));
        Self(queue)
    }
}

impl Subscriber for Releaser {
    fn on_event(&self, event: &Event) {
        let batch = match event {
            Event::TabEnded(end) if !end.releases.is_empty() => end.releases.clone(),
            Event::LateRelease(release) => vec![release.clone()],
            _ => return,
        };
        self.0.push(batch);
    }
}

/// Longest one release may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Replays each batch of releases until the sender is gone.
pub async fn run(
    mut batches: mpsc::Receiver<Vec<Release>>,
    client: UpstreamClient,
    upstream: Upstream,
) {
    while let Some(batch) = batches.recv().await {
        for release in batch {
            let uri = format!("http://{}{}", upstream.authority(), release.path);
            let request = Request::builder()
                .method(release.method.clone())
                .uri(uri)
                .body(Body::empty());
            let mut request = match request {
                Ok(request) => request,
                Err(e) => {
                    tracing::warn!(error = %e, "skipped a release with an invalid path");
                    continue;
                }
            };
            *request.headers_mut() = release.headers;
            // The path names the app session; log it hashed.
            let target = short_hash(&release.path);
            match tokio::time::timeout(RELEASE_TIMEOUT, client.request(request)).await {
                Ok(Ok(response)) if response.status().is_success() => {
                    tracing::debug!(target, "released an ended tab's upload");
                }
                Ok(Ok(response)) => {
                    tracing::warn!(target, status = %response.status(), "the app refused to release an ended tab's upload");
                }
                Ok(Err(e)) => {
                    tracing::warn!(target, error = %e, "could not release an ended tab's upload")
                }
                Err(_) => tracing::warn!(target, "releasing an ended tab's upload timed out"),
            }
        }
    }
}
