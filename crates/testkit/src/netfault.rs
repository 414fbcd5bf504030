//! A TCP relay that can cut every connection through it at once, as a load balancer or a
//! flaky network does: a fault a real app and browser cannot produce on loopback.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Relays `127.0.0.1:<ephemeral>` to a target; [`CuttingRelay::cut`] drops every connection
/// open at that moment (new ones are relayed again). Stops when dropped.
pub struct CuttingRelay {
    addr: SocketAddr,
    cuts: watch::Sender<u64>,
    accepted: Arc<Mutex<u64>>,
    task: JoinHandle<()>,
}

impl CuttingRelay {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr) -> Result<CuttingRelay> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the relay")?;
        let addr = listener.local_addr()?;
        let (cuts, _) = watch::channel(0u64);
        let accepted = Arc::new(Mutex::new(0));
        let task = {
            let cuts = cuts.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    *accepted.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    let mut cut = cuts.subscribe();
                    cut.borrow_and_update();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Ok(CuttingRelay {
            addr,
            cuts,
            accepted,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection open now, without a WebSocket close: both sides see the
    /// connection end.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// How many connections have been accepted so far.
    pub fn accepted(&self) -> u64 {
        *self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for CuttingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
