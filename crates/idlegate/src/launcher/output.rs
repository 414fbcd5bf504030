//! The app's standard output and error, relayed line by line to idlegate's own, with the
//! app's private address shown as the one people must open.
//!
//! Apps print where they listen when they start (Streamlit: "URL: http://127.0.0.1:PORT";
//! Panel and Gradio print similar lines). That address is the private loopback port idlegate
//! gave the app, which bypasses idlegate; people who open it get no session time-to-live and,
//! with sign-in on, no sign-in. So every `http://` URL of the app's port (host `127.0.0.1`,
//! `localhost`, `0.0.0.0` or `[::1]`) in its output is written as idlegate's own. Addresses
//! without a scheme ("server started on 127.0.0.1:PORT") say where the app listens and stay.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// Longest line rewritten as a whole, in bytes; longer ones are relayed in pieces of this
/// size, each rewritten on its own.
const MAX_LINE: u64 = 64 * 1024;

/// How long the relays may take to write what the app printed before it exited (a process the
/// app started may keep the pipes open for good).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Replaces the app's private address with idlegate's public one in the app's output.
#[derive(Debug, Clone)]
pub struct AddressRewrite {
    private: Vec<Vec<u8>>,
    public: Vec<u8>,
}

impl AddressRewrite {
    /// `app_port`: the loopback port the app listens on. `public`: the `host:port` to show,
    /// from [`public_host_port`].
    pub fn new(app_port: u16, public: &str) -> AddressRewrite {
        let private = ["127.0.0.1", "localhost", "0.0.0.0", "[::1]"]
            .iter()
            .map(|host| format!("http://{host}:{app_port}").into_bytes())
            .collect();
        AddressRewrite {
            private,
            public: format!("http://{public}").into_bytes(),
        }
    }

    /// `line` with every private address of the app replaced. A port followed by another
    /// digit is a different port and is left alone.
    pub fn apply<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        while at < line.len() {
            let found = self.private.iter().find(|address| {
                line[at..].starts_with(address)
                    && !line.get(at + address.len()).is_some_and(u8::is_ascii_digit)
            });
            match found {
                Some(address) => {
                    let out = out.get_or_insert_with(Vec::new);
                    out.extend_from_slice(&line[copied..at]);
                    out.extend_from_slice(&self.public);
                    at += address.len();
                    copied = at;
                }
                None => at += 1,
            }
        }
        match out {
            Some(mut out) => {
                out.extend_from_slice(&line[copied..]);
                Cow::Owned(out)
            }
            None => Cow::Borrowed(line),
        }
    }
}

/// The `host:port` people open for idlegate listening on `listen`: a wildcard address is shown
/// as the loopback one of its family.
pub fn public_host_port(listen: SocketAddr) -> String {
    match listen {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => format!("127.0.0.1:{}", v4.port()),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("[::1]:{}", v6.port()),
        other => other.to_string(),
    }
}

/// Copies `from` to `to` line by line through `rewrite` until `from` ends or fails. Write
/// errors (idlegate's own output closed) end the copy but keep reading, so the app never
/// blocks on a full pipe.
pub fn relay<R, W>(from: R, mut to: W, rewrite: AddressRewrite) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut from = BufReader::new(from);
        let mut line = Vec::new();
        let mut writable = true;
        loop {
            line.clear();
            match (&mut from)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if writable {
                // Flushed once nothing more is waiting: a burst of lines is written as one,
                // not one flush (a blocking write for the standard streams) per line.
                let more_waiting = !from.buffer().is_empty();
                let written = async {
                    to.write_all(&rewrite.apply(&line)).await?;
                    if !more_waiting {
                        to.flush().await?;
                    }
                    Ok::<(), std::io::Error>(())
                };
                writable = written.await.is_ok();
            }
        }
    })
}

/// Waits up to two seconds for `relays` to finish writing what the app printed.
pub async fn drain(relays: &mut Vec<JoinHandle<()>>) {
    let all = futures_util::future::join_all(relays.drain(..));
    let _ = tokio::time::timeout(DRAIN_LIMIT, all).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(line: &str) -> String {
        let rewrite = AddressRewrite::new(45943, "127.0.0.1:8080");
        String::from_utf8(rewrite.apply(line.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn the_apps_private_address_is_shown_as_idlegates() {
        assert_eq!(
            rewrite("  URL: http://127.0.0.1:45943\n"),
            "  URL: http://127.0.0.1:8080\n"
        );
        assert_eq!(
            rewrite("Local URL: http://localhost:45943/analytics and http://0.0.0.0:45943"),
            "Local URL: http://127.0.0.1:8080/analytics and http://127.0.0.1:8080"
        );
        assert_eq!(rewrite("http://[::1]:45943"), "http://127.0.0.1:8080");
    }

    #[test]
    fn other_ports_and_other_text_are_left_alone() {
        for line in [
            "http://127.0.0.1:459430/",
            "http://127.0.0.1:4594/",
            "http://10.0.0.5:45943/",
            "Uvicorn server started on 127.0.0.1:45943",
            "no address at all",
            "",
        ] {
            assert_eq!(rewrite(line), line);
        }
        let rewrite = AddressRewrite::new(1, "h:2");
        assert!(matches!(rewrite.apply(b"127.0.0.1:1"), Cow::Borrowed(_)));
        assert!(matches!(
            rewrite.apply(b"\xff\xfe no match"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_wildcard_listen_address_is_shown_as_loopback() {
        assert_eq!(
            public_host_port("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080"
        );
        assert_eq!(public_host_port("[::]:8080".parse().unwrap()), "[::1]:8080");
        assert_eq!(
            public_host_port("192.168.1.4:80".parse().unwrap()),
            "192.168.1.4:80"
        );
    }

    #[tokio::test]
    async fn relay_copies_every_line_and_the_last_one_without_a_newline() {
        let (mut app, from) = tokio::io::duplex(64);
        let (to, mut shown) = tokio::io::duplex(1 << 20);
        let rewrite = AddressRewrite::new(45943, "127.0.0.1:8080");
        let task = relay(from, to, rewrite);
        let long = "x".repeat(100_000);
        let input = format!("URL: http://127.0.0.1:45943\n{long}\nlast http://127.0.0.1:45943");
        app.write_all(input.as_bytes()).await.unwrap();
        drop(app);
        task.await.unwrap();
        let mut out = String::new();
        shown.read_to_string(&mut out).await.unwrap();
        assert_eq!(
            out,
            format!("URL: http://127.0.0.1:8080\n{long}\nlast http://127.0.0.1:8080")
        );
    }
}
