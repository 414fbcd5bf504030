// idlegate browser helper.
//
// idlegate injects this file as the first element of <head> of every HTML page of the app
// (`<script src="<base>/_idlegate/client.js" defer>`), so it runs before the app's own
// bundle opens its WebSocket. It:
//   * gives this page load a random tab token and names it, as one more subprotocol, when the
//     page opens the app's session WebSocket (or in a header of the requests that carry the
//     app's session, for apps without one), so idlegate knows which app session belongs to
//     this browser tab (never in a URL: URLs reach access logs);
//   * reports human input (throttled, saying when it happened) and page visibility to
//     idlegate, including input in the page's same-origin frames;
//   * tells idlegate which messages the page sends the app right after a person's input, so
//     the app's own automatic messages (timers, components, lazy loads) never count as a
//     person;
//   * warns the person, with an accessible modal dialog and a countdown, before idlegate ends
//     the session for inactivity (or because it reaches its maximum length);
//   * moves the page to idlegate's "session ended" page once the session has ended.
//
// It must never change the app's behaviour: everything lives inside one function, every
// handler swallows its own errors, nothing is logged, and the only global changes are the
// transparent WebSocket wrapper and, for apps whose tab session is a series of requests,
// the transparent fetch wrapper. idlegate serves the file with the configuration placeholder
// on the last line replaced by a JSON object; served without it, the script does nothing.
(function (config) {
  "use strict";

  if (!config || typeof config !== "object") return;
  // Without these we can neither make a token nor talk to idlegate: stay out of the way.
  if (typeof window.fetch !== "function" || typeof URL !== "function" ||
      !window.crypto || typeof window.crypto.getRandomValues !== "function" ||
      typeof performance === "undefined") {
    return;
  }

  // ---------------------------------------------------------------- configuration
  const TAB_PROTOCOL_PREFIX = String(config.tabProtocolPrefix || "idlegate.tab.");
  // The app's session socket (its path ends so) and the element its theme colours are on:
  // both from the app kind.
  const SOCKET_SUFFIX = config.socketSuffix ? String(config.socketSuffix) : null;
  // Or, for apps without a session socket (Gradio), the requests that carry the tab's
  // session: they get the tab token in TAB_HEADER.
  const SESSION_REQUESTS = Array.isArray(config.sessionRequests)
    ? config.sessionRequests.map(String).filter((path) => path.length > 0) : [];
  const TAB_HEADER = String(config.tabHeader || "x-idlegate-tab");
  const THEME_ROOT = config.themeRoot ? String(config.themeRoot) : null;
  const TAB_URL = String(config.tabUrl || "/_idlegate/tab");
  const ENDED_URL = String(config.endedUrl || "/_idlegate/ended");
  const REPORT_INTERVAL = positiveNumber(config.reportIntervalMs, 15000);
  const WARN_BEFORE = positiveNumber(config.warnBeforeMs, null); // null: never warn
  const TEXTS = Object.assign({
    warningTitle: "Are you still there?",
    warningBody: "This session will end in {countdown} because of inactivity.",
    warningLifetimeBody: "This session reaches its maximum length in {countdown}. Save your work.",
    warningLoginBody: "You will be signed out in {countdown} because of inactivity.",
    keepWorking: "Keep working",
    dismiss: "OK",
    lang: "en",
  }, config.texts || {});

  const OPEN_CHECK_DELAY = 300;      // after the session socket opened, give the app a moment
  const UNKNOWN_RETRIES = 5;         // 404 right after the socket opened: the server may lag
  const UNKNOWN_RETRY_DELAY = 1000;
  const NO_DEADLINE_RECHECK = Math.min(30000, 4 * REPORT_INTERVAL);
  const MIN_CHECK_DELAY = 1000;      // never check more often than once a second
  // Long timers are capped so that the view is refreshed now and then anyway: timers and
  // performance.now() behave unevenly across a computer's sleep, and this is one cheap GET.
  const MAX_CHECK_DELAY = 5 * 60 * 1000;
  const REQUEST_TIMEOUT = 20000;     // a hung request must not block its purpose forever
  const MIN_REPORT_GAP = 500;        // between urgent reports
  const POLL_WHILE_SHOWN = 5000;
  const ZERO_POLLS = 15;             // countdown at 0: ask once a second until the server says 410
  const MOVE_THRESHOLD = 2;          // px; browsers send fake pointer moves after layout changes
  const ANNOUNCE_AT = [60, 30, 10];  // seconds left at which screen readers hear the countdown
  // Not `focusin`: a script's element.focus() fires it as a trusted event. Not `change` on
  // anything but a file input: a script's .click() on a checkbox fires a trusted `change`.
  const INPUT_EVENTS = ["pointerdown", "pointerup", "pointermove", "keydown", "wheel",
    "touchstart", "touchend", "change", "drop"];
  // Input that can make the page send the app something (a click, a key, a file picked or
  // dropped), as opposed to pointing and scrolling.
  const COMMIT_EVENTS = ["pointerdown", "pointerup", "keydown", "touchend", "change", "drop"];
  // A message the page sends this soon after such input is the person's; one per input.
  const HUMAN_SEND_WINDOW = 1500;
  const MAX_HUMAN_SENDS = 8;         // per report; the server takes no more

  // ---------------------------------------------------------------- state
  let token;
  try {
    token = makeToken();
  } catch (e) {
    return;
  }

  let sessionSocketSeen = false; // no requests until the app opened a tagged socket
  let ended = false;             // navigating to the ended page: do nothing more
  let deadlineAt = null;         // performance.now() time the session ends unless a person acts
  let extendable = true;         // false: activity cannot postpone the deadline (max lifetime)
  let busy = false;              // a run the person waits for holds the idle limit off
  let endReason = null;          // what would end the session: "idle", "login_expired", …
  let lifetimeDismissed = false; // the person acknowledged the max-lifetime warning
  let requestSeq = 0;            // answers from older requests than the last applied are stale
  let appliedSeq = 0;
  let unknownRetries = 0;
  let checkInFlight = false;
  let lastPointer = null;
  let lastInputAt = null;        // performance.now() of the latest counted input
  let inputUnreported = false;   // input since the last report that carried it
  let lastCommitAt = null;       // latest input that can make the page send the app something
  let commitUsed = true;         // that input already explained one message
  let humanSends = [];           // performance.now() of messages a person caused, unreported
  const activity = { inFlight: false, pending: false, urgent: false, kept: false, lastReportAt: null };
  const visibility = { inFlight: false, want: null };
  const warn = { open: false, lifetime: false, activitySent: false, lastPollAt: 0, zeroPolls: 0, announced: [] };
  const timers = {};
  let ui = null; // the dialog's elements, built the first time a warning is needed
  const watched = new WeakSet(); // documents and frames whose input is listened to

  try {
    installWebSocketWrapper();
    installFetchWrapper();
    const listen = { capture: true, passive: true };
    watchWindow(window);
    document.addEventListener("visibilitychange", guard(onVisibilityChange), listen);
    window.addEventListener("pageshow", guard(onPageShow), listen);
  } catch (e) {
    // Partially installed is still harmless: each piece works on its own.
  }

  // ---------------------------------------------------------------- helpers

  function positiveNumber(value, fallback) {
    return typeof value === "number" && isFinite(value) && value >= 0 ? value : fallback;
  }

  // Wraps a handler so that an error in this helper can never reach the app (or the console).
  function guard(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (e) {
        return undefined;
      }
    };
  }

  // One named setTimeout per purpose; setting it again replaces the previous one.
  function later(name, ms, fn) {
    cancel(name);
    timers[name] = setTimeout(guard(() => {
      timers[name] = null;
      fn();
    }), Math.max(0, ms));
  }

  function cancel(name) {
    if (timers[name] != null) {
      clearTimeout(timers[name]);
      timers[name] = null;
    }
  }

  // 128 random bits as base64url without padding: 22 characters of [A-Za-z0-9_-].
  function makeToken() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function remainingMs() {
    return deadlineAt === null ? null : Math.max(0, deadlineAt - performance.now());
  }

  function isVisible() {
    return document.visibilityState === "visible";
  }

  // ---------------------------------------------------------------- WebSocket wrapper

  // The app opens (and on every reconnect re-opens) its session socket at a path ending in
  // SOCKET_SUFFIX. We add the tab token to that call and nothing else; every other socket,
  // and every other detail of the call, passes through untouched.
  function installWebSocketWrapper() {
    const Native = window.WebSocket;
    if (typeof Native !== "function") return;

    const Wrapper = function WebSocket(url, protocols) {
      // Called without `new`: let the native constructor throw its own TypeError.
      if (!new.target) return Native.apply(this, arguments);
      const args = Array.prototype.slice.call(arguments); // keep the caller's arity
      const session = args.length > 0 && isSessionSocket(args[0]);
      if (session) args[1] = withOurProtocol(args.length > 1 ? protocols : undefined);
      // Returns the real native instance (new.target keeps subclassing working).
      const socket = Reflect.construct(Native, args, new.target);
      if (session) {
        try {
          watchSessionSocket(socket);
        } catch (e) {
          // The socket itself is fine; we just won't hear about it.
        }
      }
      return socket;
    };
    Wrapper.prototype = Native.prototype; // `socket instanceof WebSocket` still holds
    Object.setPrototypeOf(Wrapper, Native); // any other static member is inherited
    ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach((name, value) => {
      Object.defineProperty(Wrapper, name, {
        value: typeof Native[name] === "number" ? Native[name] : value,
        enumerable: true,
      });
    });
    window.WebSocket = Wrapper;
  }

  // ---------------------------------------------------------------- fetch wrapper

  // For apps whose tab session is a series of requests: the page's requests that carry the
  // session get the tab token in a header (same-origin only), and a POST right after a
  // person's input is the person's, as a socket message would be. Everything else about
  // the call, and every other request, passes through untouched.
  function installFetchWrapper() {
    if (!SESSION_REQUESTS.length) return;
    const nativeFetch = window.fetch;
    let opened = false;
    const wrapper = function fetch(input, init) {
      const tagged = guard(tagRequest)(input, init);
      if (!tagged) return nativeFetch.apply(this, arguments);
      const answer = nativeFetch.call(this, input, tagged.init);
      if (!opened) {
        opened = true;
        Promise.resolve(answer).then(
          guard(() => later("open", OPEN_CHECK_DELAY, onSessionOpened)),
          guard(() => { opened = false; }));
      }
      return answer;
    };
    Object.setPrototypeOf(wrapper, nativeFetch);
    window.fetch = wrapper;
  }

  // The init for a session request with our header added (null for any other request), and
  // notes the request (a POST right after input is the person's).
  function tagRequest(input, init) {
    const isRequest = typeof Request === "function" && input instanceof Request;
    const url = new URL(isRequest ? input.url : String(input), document.baseURI || location.href);
    if (url.origin !== location.origin) return null;
    if (!SESSION_REQUESTS.some((path) => url.pathname.includes(path))) return null;
    const method = String((init && init.method) || (isRequest ? input.method : "GET")).toUpperCase();
    const given = init && init.headers !== undefined ? init.headers : (isRequest ? input.headers : undefined);
    const headers = new Headers(given);
    headers.set(TAB_HEADER, token);
    sessionSocketSeen = true;
    if (method === "POST") onSessionSend();
    return { init: Object.assign({}, init || {}, { headers: headers }) };
  }

  // Whether the page opens the app's session socket at this URL.
  function isSessionSocket(raw) {
    try {
      // Relative URLs resolve the way the native constructor resolves them (against the
      // document's base URL).
      const url = new URL(String(raw), document.baseURI || location.href);
      return SOCKET_SUFFIX !== null && url.pathname.endsWith(SOCKET_SUFFIX);
    } catch (e) {
      return false;
    }
  }

  // The caller's subprotocols (none, one string, or a list), with ours after them.
  function withOurProtocol(protocols) {
    const ours = TAB_PROTOCOL_PREFIX + token;
    if (protocols === undefined || protocols === null) return [ours];
    if (typeof protocols === "string") return [protocols, ours];
    try {
      return Array.from(protocols).concat([ours]);
    } catch (e) {
      return protocols;
    }
  }

  function watchSessionSocket(socket) {
    sessionSocketSeen = true;
    // addEventListener, not onopen: the app owns onopen.
    socket.addEventListener("open", guard(() => later("open", OPEN_CHECK_DELAY, onSessionOpened)));
    // Every message the page sends the app goes through send(): note those a person caused.
    const nativeSend = socket.send;
    if (typeof nativeSend !== "function") return;
    Object.defineProperty(socket, "send", {
      configurable: true,
      writable: true,
      value: function send() {
        guard(onSessionSend)();
        return nativeSend.apply(this, arguments);
      },
    });
  }

  // The page sends the app a message: right after a person's input it is theirs. Only the
  // first message after each input: a timer firing a moment later is not.
  function onSessionSend() {
    if (lastCommitAt === null || commitUsed) return;
    const now = performance.now();
    if (now - lastCommitAt > HUMAN_SEND_WINDOW) return;
    commitUsed = true;
    humanSends.push(now);
    if (humanSends.length > MAX_HUMAN_SENDS) humanSends.shift();
    reportActivity(true); // now: the server is deciding what the message was
  }

  function onSessionOpened() {
    unknownRetries = 0;
    // A tab opened in the background tells the server so at once; otherwise just ask.
    if (isVisible()) checkStatus();
    else reportVisibility("hidden");
  }

  // ---------------------------------------------------------------- server API

  // POSTs a report: the event, how long ago the latest unreported input happened, and the
  // messages a person caused. Resolves to {status, data, seq, sentAt} or to null on a network
  // error; never rejects.
  function send(event, keepalive) {
    const seq = ++requestSeq;
    const sentAt = performance.now();
    const report = { tab: token, event: event };
    const carriesInput = inputUnreported && lastInputAt !== null;
    if (carriesInput) {
      report.inputAgeMs = Math.max(0, Math.round(sentAt - lastInputAt));
      inputUnreported = false;
    }
    const sends = humanSends;
    humanSends = [];
    if (sends.length) {
      report.humanSendAgesMs = sends.map((at) => Math.max(0, Math.round(sentAt - at)));
    }
    const init = {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(report),
    };
    if (keepalive) init.keepalive = true;
    let abortTimer = null;
    if (typeof AbortController === "function") {
      const controller = new AbortController();
      init.signal = controller.signal;
      abortTimer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT);
    }
    let request;
    try {
      request = fetch(TAB_URL, init);
    } catch (e) {
      request = Promise.reject(e);
    }
    return request
      .then((response) => response.json().catch(() => null).then((data) => ({
        status: response.status,
        data: data && typeof data === "object" ? data : {},
        seq: seq,
        sentAt: sentAt,
      })))
      .catch(() => null)
      .then((result) => {
        if (abortTimer !== null) clearTimeout(abortTimer);
        if (!result) {
          // Lost on the way: the next report carries it again.
          if (carriesInput) inputUnreported = true;
          humanSends = sends.concat(humanSends).slice(-MAX_HUMAN_SENDS);
        }
        return result;
      });
  }

  // Asks for the tab's status. One at a time, and not while a report is on its way: every answer
  // carries the status, and a check overtaking an activity report could show a stale deadline.
  function checkStatus() {
    if (!sessionSocketSeen || ended || checkInFlight || activity.inFlight || visibility.inFlight) return;
    checkInFlight = true;
    send("check").then(guard((result) => {
      checkInFlight = false;
      handleAnswer(result, "check");
    }));
  }

  function handleAnswer(result, kind) {
    if (!result || ended) return; // network trouble: the next natural opportunity retries
    const data = result.data;
    if (result.status === 410 || data.state === "ended") {
      goToEndedPage(data);
    } else if (result.status === 404) {
      // Not known (yet): right after the socket opened the server may not have linked the
      // token. Retry a little, then wait quietly for the next event.
      if (unknownRetries < UNKNOWN_RETRIES) {
        unknownRetries++;
        later("retry", UNKNOWN_RETRY_DELAY, checkStatus);
      }
    } else if (result.status === 200 && data.state === "open") {
      unknownRetries = 0;
      if (result.seq < appliedSeq) return; // overtaken by the answer to a newer request
      appliedSeq = result.seq;
      applyStatus(data, result.sentAt, kind);
    }
  }

  function goToEndedPage(data) {
    if (ended) return;
    ended = true;
    Object.keys(timers).forEach(cancel);
    let target = typeof data.endedUrl === "string" && data.endedUrl ? data.endedUrl
      : ENDED_URL + (data.reason ? "?reason=" + encodeURIComponent(data.reason) : "");
    try {
      // Only ever go somewhere on this origin.
      if (new URL(target, location.href).origin !== location.origin) target = ENDED_URL;
    } catch (e) {
      target = ENDED_URL;
    }
    // Lets the ended page's "Start a new session" bring the person back to where they were.
    target += (target.indexOf("?") >= 0 ? "&" : "?") + "return=" +
      encodeURIComponent(location.pathname + location.search);
    location.assign(target);
  }

  // ---------------------------------------------------------------- following the deadline

  // Every status answer replaces the client's view of the deadline.
  function applyStatus(data, sentAt, kind) {
    const endsIn = positiveNumber(data.endsInMs, null);
    // Counted from when the request left: the local countdown errs on the early side.
    deadlineAt = endsIn === null ? null : sentAt + endsIn;
    extendable = data.extendable !== false;
    // A run the person waits for holds the idle limit off; its end moves the deadline.
    busy = data.busy === true;
    endReason = typeof data.reason === "string" ? data.reason : null;
    const left = remainingMs();

    if (warn.open) {
      const close = left === null || WARN_BEFORE === null || left > WARN_BEFORE + 1000 ||
        // The answer to "Keep working" (or to activity while the dialog showed): done.
        (kind === "activity" && extendable && !warn.lifetime);
      if (!close) {
        if (warn.lifetime !== !extendable || warn.template !== bodyTemplate(!extendable)) {
          setMode(!extendable, true);
        }
        if (left > 0) warn.zeroPolls = 0;
        renderCountdown(left);
        return; // the dialog's own timer keeps polling
      }
      closeDialog();
    }
    schedule(left);
  }

  // Keeps exactly one "next check" timer, or opens the dialog when it is time.
  function schedule(left) {
    cancel("next");
    if (ended || warn.open) return;
    if (left === null) {
      // Nothing ends the session for now (e.g. the app is busy for the person): look again soon.
      setNextCheck(NO_DEADLINE_RECHECK);
    } else if (WARN_BEFORE === null) {
      // No warnings: just make sure the page leaves once the deadline has passed, even if the
      // app's own redirect did not arrive.
      setNextCheck(left + 1000);
    } else if (left <= WARN_BEFORE + 500) {
      if (!maybeOpenDialog()) setNextCheck(left + 1000);
    } else {
      setNextCheck(left - WARN_BEFORE);
    }
  }

  function setNextCheck(ms) {
    if (busy) ms = Math.min(ms, NO_DEADLINE_RECHECK);
    later("next", Math.min(MAX_CHECK_DELAY, Math.max(MIN_CHECK_DELAY, ms)), checkStatus);
  }

  function maybeOpenDialog() {
    if (!isVisible()) return false; // shown when the page is visible again (see onVisibilityChange)
    if (!extendable && lifetimeDismissed) return false; // already acknowledged
    return openDialog();
  }

  // ---------------------------------------------------------------- human activity

  function onInput(event) {
    if (!event.isTrusted || !isVisible()) return;
    if (event.type === "pointermove" || event.type === "pointerdown") {
      const previous = lastPointer;
      lastPointer = { x: event.screenX, y: event.screenY };
      // A still pointer gets fake moves when the layout changes under it; only real motion counts.
      if (event.type === "pointermove" && (!previous ||
          Math.max(Math.abs(event.screenX - previous.x), Math.abs(event.screenY - previous.y)) < MOVE_THRESHOLD)) {
        return;
      }
    } else if (event.type === "change") {
      // Only a file a person picked; a script's click on a checkbox changes it "trustedly" too.
      const target = event.target;
      if (!target || target.tagName !== "INPUT" || String(target.type).toLowerCase() !== "file") return;
    }
    const now = performance.now();
    lastInputAt = now;
    inputUnreported = true;
    if (COMMIT_EVENTS.indexOf(event.type) >= 0) {
      lastCommitAt = now;
      commitUsed = false;
    }
    countActivity();
  }

  // Listens for a person's input in a window and in its same-origin frames, including
  // frames added later; a cross-origin frame cannot be observed.
  function watchWindow(win) {
    // Per document: a frame keeps its window object when it loads another document.
    const doc = win.document;
    if (watched.has(doc)) return;
    watched.add(doc);
    const listen = { capture: true, passive: true };
    INPUT_EVENTS.forEach((type) => win.addEventListener(type, guard(onInput), listen));
    const frames = doc.getElementsByTagName("iframe");
    for (let i = 0; i < frames.length; i++) watchFrame(frames[i]);
    if (typeof MutationObserver === "function") {
      new MutationObserver(guard((records) => {
        records.forEach((record) => record.addedNodes.forEach((node) => {
          if (node.nodeType !== 1) return;
          if (node.tagName === "IFRAME") watchFrame(node);
          else if (node.getElementsByTagName) {
            const inner = node.getElementsByTagName("iframe");
            for (let i = 0; i < inner.length; i++) watchFrame(inner[i]);
          }
        }));
      })).observe(doc.documentElement || doc, { childList: true, subtree: true });
    }
  }

  function watchFrame(frame) {
    if (watched.has(frame)) return;
    watched.add(frame);
    const attach = guard(() => {
      let win = null;
      try {
        win = frame.contentWindow;
        if (!win || !win.document) return; // cross-origin: reading it throws
      } catch (e) {
        return;
      }
      watchWindow(win);
    });
    // Every document the frame loads is a new window object to listen on.
    frame.addEventListener("load", attach);
    attach();
  }

  function countActivity() {
    if (warn.open && !warn.lifetime) {
      // Someone is here while warned: they kept working (the key or press that reaches the
      // button arrives here first). Tell the server at once; its answer closes the dialog.
      if (!warn.activitySent) {
        warn.activitySent = true;
        activity.kept = true;
        reportActivity(true);
      }
      return;
    }
    reportActivity(false);
  }

  // Throttled: at most one report per interval, leading edge plus one trailing report. An
  // urgent report (a message a person caused, "Keep working") goes as soon as the previous
  // one is answered and half a second has passed, which keeps within the server's rate.
  function reportActivity(urgent) {
    if (!sessionSocketSeen || ended) return;
    if (activity.inFlight) { // sent once the answer is in
      activity.pending = true;
      activity.urgent = activity.urgent || urgent;
      return;
    }
    urgent = urgent || activity.urgent;
    const now = performance.now();
    const gap = urgent ? MIN_REPORT_GAP : REPORT_INTERVAL;
    if (activity.lastReportAt === null || now - activity.lastReportAt >= gap) {
      sendActivity();
    } else {
      activity.pending = true;
      activity.urgent = urgent;
      if (urgent || timers.activity == null) {
        later("activity", activity.lastReportAt + gap - now, flushActivity);
      }
    }
  }

  function flushActivity() {
    if (!activity.pending) return;
    const urgent = activity.urgent;
    activity.pending = false;
    activity.urgent = false;
    reportActivity(urgent);
  }

  function sendActivity() {
    cancel("activity");
    activity.pending = false;
    activity.urgent = false;
    activity.inFlight = true;
    activity.lastReportAt = performance.now();
    // "kept": the person chose to keep working in the warning (input all the same).
    const event = activity.kept ? "kept" : "activity";
    activity.kept = false;
    send(event).then(guard((result) => {
      activity.inFlight = false;
      if (!result && warn.open) warn.activitySent = false; // let the next click try again
      handleAnswer(result, "activity");
      flushActivity();
    }));
  }

  // ---------------------------------------------------------------- visibility

  function onVisibilityChange() {
    const visible = isVisible();
    lastPointer = null; // the first move after a switch only sets the reference point
    unknownRetries = 0;
    if (!visible) {
      // Input still waiting for its trailing report rides on the "hidden" report, which says
      // when it happened.
      cancel("activity");
      activity.pending = false;
      activity.urgent = false;
    }
    // Becoming visible is not activity: the answer decides whether the warning shows at once.
    reportVisibility(visible ? "visible" : "hidden");
  }

  // Sent in order, one at a time; a newer state waiting behind replaces an older one.
  function reportVisibility(state) {
    if (!sessionSocketSeen || ended) return;
    visibility.want = state;
    pumpVisibility();
  }

  function pumpVisibility() {
    if (visibility.inFlight || visibility.want === null || ended) return;
    const state = visibility.want;
    visibility.want = null;
    visibility.inFlight = true;
    // keepalive: "hidden" may be the last thing this page does.
    send(state, state === "hidden").then(guard((result) => {
      visibility.inFlight = false;
      handleAnswer(result, state);
      pumpVisibility();
    }));
  }

  // Restored from the back/forward cache: whatever we knew may be long out of date.
  function onPageShow(event) {
    if (!event.persisted) return;
    ended = false;
    lastPointer = null;
    unknownRetries = 0;
    checkInFlight = false;
    checkStatus();
  }

  // ---------------------------------------------------------------- the warning dialog

  const CSS = `
    :host { all: initial; }
    dialog {
      box-sizing: border-box; width: min(28rem, calc(100vw - 2rem)); max-width: 28rem;
      max-height: calc(100vh - 2rem); overflow: auto; margin: auto; padding: 1.5rem;
      border: 1px solid var(--idlegate-border, rgba(49, 51, 63, 0.2)); border-radius: 0.75rem;
      background: var(--idlegate-bg, #ffffff); color: var(--idlegate-fg, #31333f);
      box-shadow: 0 0.5rem 2rem rgba(0, 0, 0, 0.25); text-align: start;
      font-size: 1rem; line-height: 1.5;
      font-family: var(--idlegate-font, "Source Sans", "Source Sans Pro", "Source Sans 3", system-ui, sans-serif);
    }
    dialog::backdrop { background: rgba(0, 0, 0, 0.45); }
    h2 { margin: 0 0 0.75rem; font-size: 1.25rem; font-weight: 600; line-height: 1.3; }
    p { margin: 0 0 1.25rem; }
    [data-idlegate-countdown] { font-weight: 600; font-variant-numeric: tabular-nums; }
    .actions { display: flex; justify-content: flex-end; }
    button {
      font: inherit; font-weight: 700; color: #ffffff; background: #d33131; cursor: pointer;
      border: 1px solid transparent; border-radius: 0.5rem; padding: 0.5rem 1rem;
    }
    button:hover { background: #b92525; }
    button:focus { outline: 3px solid var(--idlegate-fg, #31333f); outline-offset: 2px; }
    .visually-hidden {
      position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0;
      overflow: hidden; clip-path: inset(50%); white-space: nowrap;
    }
    /* Static on purpose: no animation at all, so nothing to reduce for prefers-reduced-motion. */
    @media (prefers-reduced-motion: reduce) { dialog, dialog::backdrop { animation: none; transition: none; } }
    @media (forced-colors: active) { button { border-color: ButtonText; } }
  `;

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.keys(attributes || {}).forEach((name) => node.setAttribute(name, attributes[name]));
    if (text) node.textContent = text; // texts may be any language: never parsed as HTML
    return node;
  }

  // Built on first need only, so pages that never warn stay exactly as the app made them.
  function buildDialog() {
    if (ui) return ui;
    if (typeof HTMLDialogElement !== "function" || typeof Element.prototype.attachShadow !== "function") {
      return null;
    }
    const host = element("div", { "data-idlegate": "warning" });
    // A shadow root keeps our styles out of the app and the app's styles out of the dialog.
    const root = host.attachShadow({ mode: "open" });
    const dialog = element("dialog", {
      "data-idlegate-dialog": "",
      "role": "alertdialog",
      "aria-modal": "true",
      "aria-labelledby": "idlegate-title",
      "aria-describedby": "idlegate-body",
      "lang": TEXTS.lang || "en",
    });
    const title = element("h2", { id: "idlegate-title" }, TEXTS.warningTitle);
    const body = element("p", { id: "idlegate-body" });
    const actions = element("div", { class: "actions" });
    const button = element("button", { type: "button", "data-idlegate-keep-working": "", autofocus: "" });
    // Announces the countdown only at a few moments; the ticking number itself is not live.
    const live = element("div", { class: "visually-hidden", "aria-live": "polite", "aria-atomic": "true" });
    actions.appendChild(button);
    dialog.append(title, body, actions, live); // the live region must be inside the modal
    root.append(element("style", {}, CSS), dialog);

    button.addEventListener("click", guard(keepWorking));
    // Escape: a simple action extends the session (WCAG 2.2.1), same as the button.
    dialog.addEventListener("cancel", guard((event) => {
      event.preventDefault();
      keepWorking();
    }));
    dialog.addEventListener("close", guard(onDialogClosedByBrowser));

    ui = { host: host, dialog: dialog, body: body, button: button, live: live };
    return ui;
  }

  function openDialog() {
    if (!buildDialog()) return false;
    if (!ui.host.isConnected) (document.body || document.documentElement).appendChild(ui.host);
    applyTheme();
    warn.open = true;
    warn.activitySent = false;
    warn.zeroPolls = 0;
    warn.lastPollAt = performance.now();
    const left = remainingMs() || 0;
    // Opening announces the dialog (and its countdown) already; only later thresholds speak.
    warn.announced = ANNOUNCE_AT.filter((seconds) => Math.ceil(left / 1000) <= seconds);
    ui.live.textContent = "";
    setMode(!extendable, false);
    try {
      if (!ui.dialog.open) ui.dialog.showModal(); // top layer; the page becomes inert
    } catch (e) {
      warn.open = false;
      return false;
    }
    tick();
    // For the server's record (warnings shown); the answer changes nothing here.
    send("warned");
    return true;
  }

  function closeDialog() {
    if (!warn.open) return;
    warn.open = false; // before close(): the close event then knows it was us
    cancel("tick");
    try {
      ui.dialog.close();
    } catch (e) {
      // Already closed.
    }
  }

  // "Keep working" / "OK" button, Escape, or the browser closing the dialog.
  function keepWorking() {
    if (!warn.open) return;
    if (warn.lifetime) {
      // Activity cannot postpone the maximum length: acknowledge, and don't warn again for it.
      lifetimeDismissed = true;
      closeDialog();
      schedule(remainingMs());
    } else if (!warn.activitySent) {
      warn.activitySent = true;
      activity.kept = true;
      reportActivity(true); // the answer closes the dialog and reschedules
    }
  }

  // The browser may close a modal dialog by itself (e.g. a repeated Escape).
  function onDialogClosedByBrowser() {
    if (!warn.open) return; // closed by closeDialog()
    warn.open = false;
    cancel("tick");
    if (warn.lifetime) {
      lifetimeDismissed = true;
      schedule(remainingMs());
    } else {
      if (!warn.activitySent) {
        warn.activitySent = true;
        reportActivity(true);
      }
      // If that report fails, look again shortly (the warning reappears if still due).
      later("next", 2000, checkStatus);
    }
  }

  // Fills the body text (idle or max-lifetime variant) around the countdown element(s).
  // The warning's text: the maximum length cannot be postponed; signing out covers every tab.
  function bodyTemplate(lifetime) {
    if (lifetime) return String(TEXTS.warningLifetimeBody);
    if (endReason === "login_expired") return String(TEXTS.warningLoginBody);
    return String(TEXTS.warningBody);
  }

  function setMode(lifetime, announce) {
    warn.lifetime = lifetime;
    const template = bodyTemplate(lifetime);
    warn.template = template;
    ui.body.textContent = "";
    template.split("{countdown}").forEach((part, index) => {
      if (index > 0) ui.body.appendChild(element("span", { "data-idlegate-countdown": "" }));
      if (part) ui.body.appendChild(document.createTextNode(part));
    });
    ui.button.textContent = lifetime ? TEXTS.dismiss : TEXTS.keepWorking;
    renderCountdown(remainingMs());
    if (announce) ui.live.textContent = bodyText(remainingMs());
  }

  function formatCountdown(ms) {
    const seconds = Math.ceil(Math.max(0, ms || 0) / 1000);
    return Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
  }

  function bodyText(ms) {
    const template = bodyTemplate(warn.lifetime);
    return template.split("{countdown}").join(formatCountdown(ms));
  }

  function renderCountdown(ms) {
    if (!ui) return;
    const text = formatCountdown(ms);
    ui.body.querySelectorAll("[data-idlegate-countdown]").forEach((span) => {
      if (span.textContent !== text) span.textContent = text;
    });
  }

  // Once a second while shown: redraw from the local deadline, follow the server's deadline.
  function tick() {
    if (!warn.open || ended) return;
    const left = remainingMs();
    if (left === null) { // no deadline any more (applyStatus normally handles this)
      closeDialog();
      schedule(null);
      return;
    }
    renderCountdown(left);
    const seconds = Math.ceil(left / 1000);
    const due = ANNOUNCE_AT.filter((at) => seconds <= at && warn.announced.indexOf(at) < 0);
    if (due.length) {
      warn.announced = warn.announced.concat(due);
      ui.live.textContent = bodyText(left);
    }
    const now = performance.now();
    if (left > 0) {
      if (now - warn.lastPollAt >= POLL_WHILE_SHOWN) {
        warn.lastPollAt = now;
        checkStatus();
      }
      // Wake just after the displayed second changes, or when the next poll is due.
      const untilPoll = Math.max(0, warn.lastPollAt + POLL_WHILE_SHOWN - now) + 5;
      later("tick", Math.min((left % 1000) + 20, untilPoll), tick);
    } else if (warn.zeroPolls < ZERO_POLLS) {
      // The deadline has passed locally: ask until the server confirms the end (410).
      warn.zeroPolls++;
      checkStatus();
      later("tick", 1000, tick);
    }
    // else: give up polling; the app's own redirect or the next event moves the page on.
  }

  // ---------------------------------------------------------------- theme

  // Follows the app's light/dark theme by reading the colours (and font) the app rendered.
  function applyTheme() {
    let source = null;
    try {
      source = THEME_ROOT ? document.querySelector(THEME_ROOT) : null;
    } catch (e) {
      source = null; // not a valid selector
    }
    source = source || document.body || document.documentElement;
    const sourceStyle = computedStyle(source);
    let background = parseColor(sourceStyle && sourceStyle.backgroundColor);
    if (!background || background.a === 0) {
      const bodyStyle = computedStyle(document.body);
      background = parseColor(bodyStyle && bodyStyle.backgroundColor);
    }
    const white = { r: 255, g: 255, b: 255, a: 1 };
    background = background && background.a > 0 ? flattenOn(background, white) : white;
    const dark = luminance(background) < 0.179; // closer in contrast to white text than to black
    let text = parseColor(sourceStyle && sourceStyle.color);
    text = text && text.a > 0 ? flattenOn(text, background) : null;
    if (!text || contrast(text, background) < 3) {
      text = dark ? { r: 250, g: 250, b: 250 } : { r: 49, g: 51, b: 63 };
    }
    const style = ui.dialog.style; // CSSOM, not a style attribute: fine under a strict CSP
    style.setProperty("--idlegate-bg", rgb(background));
    style.setProperty("--idlegate-fg", rgb(text));
    style.setProperty("--idlegate-border", dark ? "rgba(250, 250, 250, 0.2)" : "rgba(49, 51, 63, 0.2)");
    style.setProperty("color-scheme", dark ? "dark" : "light");
    // The app's own font (its default, or a custom theme font) when it has one.
    if (sourceStyle && sourceStyle.fontFamily) style.setProperty("--idlegate-font", sourceStyle.fontFamily);
  }

  function computedStyle(node) {
    try {
      return node ? getComputedStyle(node) : null;
    } catch (e) {
      return null;
    }
  }

  // Computed colours come as "rgb(r, g, b)" or "rgba(r, g, b, a)". Anything else (e.g. a
  // colour function the app used) gives null, and the fallbacks apply.
  function parseColor(value) {
    const match = /^rgba?\(([^)]*)\)$/.exec(String(value || "").trim());
    const numbers = match ? match[1].split(/[\s,/]+/).filter(Boolean).map(Number) : [];
    if (numbers.length < 3 || numbers.some((n) => !isFinite(n))) return null;
    return { r: numbers[0], g: numbers[1], b: numbers[2], a: numbers.length > 3 ? numbers[3] : 1 };
  }

  function flattenOn(color, under) {
    const a = Math.min(1, Math.max(0, color.a));
    const mix = (top, bottom) => Math.round(top * a + bottom * (1 - a));
    return { r: mix(color.r, under.r), g: mix(color.g, under.g), b: mix(color.b, under.b), a: 1 };
  }

  // WCAG relative luminance.
  function luminance(color) {
    const channel = (value) => {
      const c = value / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b);
  }

  function contrast(a, b) {
    const la = luminance(a);
    const lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  function rgb(color) {
    return "rgb(" + Math.round(color.r) + ", " + Math.round(color.g) + ", " + Math.round(color.b) + ")";
  }
})(/*IDLEGATE_CONFIG*/null);
