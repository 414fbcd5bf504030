//! Headless Chromium, driven over WebDriver, for end-to-end tests.
//!
//! Uses Debian's `chromium` and `chromium-driver` packages (never a
//! downloaded browser): [`Browser::start`] runs `chromedriver` on a free port
//! and opens a fantoccini session with a fresh profile directory. Dropping
//! the [`Browser`] kills chromedriver together with the Chromium processes it
//! started.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fantoccini::actions::{
    InputSource, MouseActions, PointerAction, WheelAction, WheelActions, MOUSE_BUTTON_LEFT,
};
pub use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::streamlit::OutputLog;
use crate::{http, ports, proc};

/// Debian's Chromium launcher.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to report itself ready.
const DRIVER_READY_DEADLINE: Duration = Duration::from_secs(30);

/// Poll interval for waits on the page.
const POLL: Duration = Duration::from_millis(100);

/// Command-line switches for a quiet, deterministic headless Chromium.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    // Tests run as root in containers, where Chromium's sandbox cannot start.
    "--no-sandbox",
    "--disable-gpu",
    // /dev/shm is tiny in many containers; Chromium crashes tabs when it fills.
    "--disable-dev-shm-usage",
    "--no-first-run",
    // No traffic to Google services: the test network has no route to them,
    // and waiting for them would slow every page load.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1280,900",
];

/// A headless Chromium session. Killed (with chromedriver) on drop.
pub struct Browser {
    client: Client,
    driver: Child,
    driver_pid: u32,
    driver_output: OutputLog,
    /// Fresh profile, so no state leaks between tests; removed on drop,
    /// after the browser has been killed.
    _profile: TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver_pid", &self.driver_pid)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver and opens a Chromium session with the default
    /// switches.
    pub async fn start() -> Result<Browser> {
        Self::start_with_args(&[]).await
    }

    /// Like [`start`](Self::start), with extra Chromium command-line switches.
    pub async fn start_with_args(extra_args: &[&str]) -> Result<Browser> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(binary).exists() {
                bail!(
                    "{binary} not found: install Debian's chromium and chromium-driver \
                     packages (scripts/install-system-deps.sh, as root)"
                );
            }
        }
        let profile = tempfile::Builder::new()
            .prefix("idlegate-chromium-")
            .tempdir()
            .context("creating a Chromium profile directory")?;
        let port = ports::free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Chromium runs in chromedriver's process group, so one group
            // kill on drop also ends every browser process.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("spawning chromedriver")?;
        let driver_pid = driver.id().context("chromedriver exited immediately")?;
        let driver_output = OutputLog::default();
        let label = format!("chromedriver:{port}");
        if let Some(stdout) = driver.stdout.take() {
            driver_output.capture(stdout, label.clone());
        }
        if let Some(stderr) = driver.stderr.take() {
            driver_output.capture(stderr, label);
        }
        let driver_url = format!("http://127.0.0.1:{port}");

        // From here on, a failure must still kill chromedriver: keep it in a
        // guard until the Browser (whose Drop does that) exists.
        let guard = DriverGuard(driver_pid);
        let ready = proc::wait_until(
            DRIVER_READY_DEADLINE,
            Duration::from_millis(50),
            async || {
                let status = http::get(&format!("{driver_url}/status")).await?;
                let body: serde_json::Value = serde_json::from_slice(&status.body)?;
                anyhow::ensure!(
                    body["value"]["ready"] == true,
                    "chromedriver not ready: {body}"
                );
                Ok(())
            },
        )
        .await;
        if let Err(e) = ready {
            bail!("{e:#}\nchromedriver output:\n{}", driver_output.contents());
        }

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": args, "binary": CHROMIUM }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .with_context(|| {
                format!(
                    "opening a Chromium session through chromedriver; output:\n{}",
                    driver_output.contents()
                )
            })?;
        std::mem::forget(guard);
        Ok(Browser {
            client,
            driver,
            driver_pid,
            driver_output,
            _profile: profile,
        })
    }

    /// The WebDriver client, for everything not wrapped here.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates to `url` and waits for the document to load (not for
    /// Streamlit to render; use [`wait_for_text`](Self::wait_for_text)).
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("navigating to {url}"))
    }

    /// The URL the tab currently shows.
    pub async fn current_url(&self) -> Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// The visible text of the page (`document.body.innerText`).
    pub async fn body_text(&self) -> Result<String> {
        let text = self
            .client
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .context("reading the page text")?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// Polls until the page's visible text contains `needle`, and returns
    /// the whole text. On timeout the error includes what the page showed.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> Result<String> {
        proc::wait_until(timeout, Duration::from_millis(100), async || {
            let text = self.body_text().await?;
            anyhow::ensure!(
                text.contains(needle),
                "page text does not contain {needle:?}; it is:\n{text}"
            );
            Ok(text)
        })
        .await
    }

    /// Waits for the element at `xpath` to exist and focuses it, so that WebDriver's active
    /// element is that element: [`click`](Self::click) and [`type_into`](Self::type_into)
    /// then act on it like a person would.
    pub async fn focus(&self, xpath: &str, timeout: Duration) -> Result<()> {
        const SCRIPT: &str = "const el = document.evaluate(arguments[0], document, null, \
            XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;\
            if (!el) { return false; }\
            el.scrollIntoView({block: 'center'});\
            el.focus();\
            return document.activeElement === el;";
        proc::wait_until(timeout, POLL, async || {
            let focused = self
                .client
                .execute(SCRIPT, vec![json!(xpath)])
                .await
                .context("looking for an element")?;
            anyhow::ensure!(focused == true, "no focusable element at {xpath}");
            Ok(())
        })
        .await
    }

    /// Clicks the element at `xpath` (a real WebDriver click), waiting up to `timeout` for it.
    pub async fn click(&self, xpath: &str, timeout: Duration) -> Result<()> {
        self.focus(xpath, timeout).await?;
        self.client
            .active_element()
            .await?
            .click()
            .await
            .with_context(|| format!("clicking {xpath}"))
    }

    /// Types `keys` into the element at `xpath`, waiting up to `timeout` for it.
    pub async fn type_into(&self, xpath: &str, keys: &str, timeout: Duration) -> Result<()> {
        self.focus(xpath, timeout).await?;
        self.client
            .active_element()
            .await?
            .send_keys(keys)
            .await
            .with_context(|| format!("typing into {xpath}"))
    }

    /// Moves the mouse to `(x, y)` in the viewport, then `steps` times by `(dx, dy)`, over
    /// about `duration` in all: real pointer events, as a person reading a page makes.
    pub async fn move_mouse(
        &self,
        (x, y): (f64, f64),
        (dx, dy): (f64, f64),
        steps: u32,
        duration: Duration,
    ) -> Result<()> {
        let step = duration / steps.max(1);
        let mut mouse = MouseActions::new("mouse".to_owned()).then(PointerAction::MoveTo {
            duration: None,
            x,
            y,
        });
        for _ in 0..steps {
            mouse = mouse.then(PointerAction::MoveBy {
                duration: Some(step),
                x: dx,
                y: dy,
            });
        }
        self.client
            .perform_actions(mouse)
            .await
            .context("moving the mouse")
    }

    /// Turns the mouse wheel over `(x, y)` in the viewport by `delta_y` pixels (real wheel
    /// events, which scroll what is under the pointer).
    pub async fn wheel(&self, (x, y): (i64, i64), delta_y: i64) -> Result<()> {
        let mut wheel = WheelActions::new("wheel".to_owned());
        wheel.push(WheelAction::Scroll {
            duration: Some(Duration::from_millis(100)),
            x,
            y,
            delta_x: 0,
            delta_y,
        });
        self.client
            .perform_actions(wheel)
            .await
            .context("turning the mouse wheel")
    }

    /// Clicks at `(dx, dy)` from the centre of the element at `xpath` (a real pointer click,
    /// for canvases such as data grids), waiting up to `timeout` for the element.
    pub async fn click_at(
        &self,
        xpath: &str,
        (dx, dy): (f64, f64),
        timeout: Duration,
    ) -> Result<()> {
        let element = proc::wait_until(timeout, POLL, async || {
            Ok(self.client.find(Locator::XPath(xpath)).await?)
        })
        .await?;
        let mouse = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveToElement {
                element,
                duration: None,
                x: dx,
                y: dy,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(mouse)
            .await
            .with_context(|| format!("clicking into {xpath}"))
    }

    /// Clicks at `(x, y)` in the viewport: a real pointer click, for elements XPath cannot
    /// reach (inside shadow roots).
    pub async fn click_point(&self, (x, y): (f64, f64)) -> Result<()> {
        let mouse = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveTo {
                duration: None,
                x,
                y,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(mouse)
            .await
            .with_context(|| format!("clicking at ({x}, {y})"))
    }

    /// Types `keys` into whatever element has the focus (real key events).
    pub async fn type_keys(&self, keys: &str) -> Result<()> {
        self.client
            .active_element()
            .await?
            .send_keys(keys)
            .await
            .context("typing into the focused element")
    }

    /// Waits until the tab shows a URL containing `needle`, and returns that URL.
    pub async fn wait_for_url(&self, needle: &str, timeout: Duration) -> Result<String> {
        proc::wait_until(timeout, POLL, async || {
            let url = self.current_url().await?;
            anyhow::ensure!(url.contains(needle), "URL is {url}, waiting for {needle:?}");
            Ok(url)
        })
        .await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn run_js(
        &self,
        script: &str,
        args: Vec<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        self.client
            .execute(script, args)
            .await
            .context("running a script in the page")
    }

    /// Opens a second tab in front of the current one (which is hidden from then on) and
    /// returns the handles of both: (the one now in the background, the new one).
    pub async fn open_tab_in_front(&self) -> Result<(WindowHandle, WindowHandle)> {
        let background = self.client.window().await?;
        let front = self.client.new_window(true).await?.handle;
        self.client.switch_to_window(front.clone()).await?;
        Ok((background, front))
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub async fn screenshot_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// chromedriver's console output so far, for diagnosing failures.
    pub fn driver_output(&self) -> String {
        self.driver_output.contents()
    }

    /// Process id of chromedriver (also the process group of the browser).
    pub fn driver_pid(&self) -> u32 {
        self.driver_pid
    }

    /// Ends the WebDriver session cleanly (Chromium exits), then stops
    /// chromedriver. Dropping the Browser is enough in tests; this is for
    /// tests that want to observe a browser closing normally.
    pub async fn close(mut self) -> Result<()> {
        let result = self
            .client
            .clone()
            .close()
            .await
            .context("closing the WebDriver session");
        let _ = self.driver.start_kill();
        result
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(self.driver_pid);
        let _ = self.driver.start_kill();
    }
}

/// Kills chromedriver's process group if browser startup fails half-way.
struct DriverGuard(u32);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

/// SIGKILLs process group `pgid`. chromedriver was started as a group
/// leader, and the kernel does not reuse a pid while a group still carries
/// it, so this reaches only processes this module started.
fn kill_group(pgid: u32) {
    let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
}

/// Serves `html` to every request on a port of its own: a page on another origin than the
/// gateway's (`http://localhost:PORT` while the gateway is at `127.0.0.1`), for framing it.
/// Returns the page's URL and the serving task.
pub async fn other_origin(html: String) -> Result<(String, tokio::task::JoinHandle<()>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://localhost:{}", listener.local_addr()?.port());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok((url, task))
}
