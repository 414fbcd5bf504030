// The admin page: reads /api/v1/tabs every 2 seconds (the page's cookie authenticates it),
// ends tabs and users on request, draws the app's memory from /api/v1/memory.
"use strict";

const EVERY_MS = 2000;

function seconds(s) {
  if (s === undefined || s === null) return "—";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

async function call(method, path) {
  const response = await fetch(path, { method, credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/");
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(method + " " + path + ": " + response.status);
  return response.json();
}

function endButton(label, what, path) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "End";
  button.setAttribute("aria-label", label);
  button.addEventListener("click", async () => {
    if (!window.confirm("End " + what + "? The person sees the ended screen.")) return;
    button.disabled = true;
    try {
      await call("DELETE", path);
    } catch (e) {
      button.disabled = false;
    }
    refresh();
  });
  return button;
}

function drawTabs(page) {
  const body = document.querySelector("#tabs tbody");
  body.replaceChildren();
  const users = new Map();
  for (const tab of page.items) {
    const user = tab.user || "(nobody signed in)";
    users.set(user, (users.get(user) || 0) + 1);
    const row = document.createElement("tr");
    cell(row, user);
    cell(row, tab.state);
    const idle = cell(row, "");
    const bar = document.createElement("span");
    bar.className = "bar";
    const total = tab.human_idle_seconds + (tab.ends_in_seconds || 0);
    const share = tab.ends_in_seconds === undefined ? 0 : Math.min(1, tab.human_idle_seconds / Math.max(total, 1));
    if (share > 0.8) bar.classList.add("late");
    const fill = document.createElement("span");
    fill.style.width = (share * 100).toFixed(1) + "%";
    bar.appendChild(fill);
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", Math.round(share * 100) + "% of its idle time used");
    idle.appendChild(bar);
    idle.appendChild(document.createTextNode(seconds(tab.human_idle_seconds)));
    cell(row, seconds(tab.ends_in_seconds));
    cell(row, tab.ends_for || "—");
    cell(row, tab.rule);
    cell(row, seconds(tab.age_seconds));
    const action = cell(row, "");
    action.appendChild(endButton("End the tab of " + user, "this tab of " + user, "/api/v1/tabs/" + encodeURIComponent(tab.handle)));
    body.appendChild(row);
  }
  const userBody = document.querySelector("#users tbody");
  userBody.replaceChildren();
  for (const [user, count] of [...users].sort()) {
    const row = document.createElement("tr");
    cell(row, user);
    cell(row, String(count));
    const action = cell(row, "");
    if (!user.startsWith("(")) {
      action.appendChild(endButton("End every tab and login of " + user, "every tab and login of " + user, "/api/v1/users/" + encodeURIComponent(user)));
    }
    userBody.appendChild(row);
  }
  document.getElementById("summary").textContent =
    page.total + (page.total === 1 ? " open tab" : " open tabs") + ", " + users.size + (users.size === 1 ? " user" : " users");
}

function drawMemory(history) {
  const svg = document.getElementById("memory");
  const caption = document.getElementById("memory-caption");
  svg.replaceChildren();
  const samples = history.samples;
  if (samples.length < 1) return;
  const first = samples[0].time;
  const last = samples[samples.length - 1].time;
  const top = Math.max(...samples.map((s) => s.bytes)) * 1.1;
  const span = Math.max(last - first, 1);
  const points = samples.map((s) => {
    const x = ((s.time - first) / span) * 600;
    const y = 160 - (s.bytes / top) * 160;
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  if (points.length === 1) points.push("600," + points[0].split(",")[1]);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.appendChild(line);
  const mib = (b) => (b / 1048576).toFixed(0) + " MiB";
  caption.textContent = "Now " + mib(samples[samples.length - 1].bytes) + ", highest " +
    mib(Math.max(...samples.map((s) => s.bytes))) + " over " + seconds(span) + ".";
}

async function refresh() {
  try {
    drawTabs(await call("GET", "/api/v1/tabs?limit=500&sort=idle"));
    drawMemory(await call("GET", "/api/v1/memory"));
  } catch (e) {
    document.getElementById("summary").textContent = "Cannot read the tabs: " + e.message;
  }
}

refresh();
setInterval(refresh, EVERY_MS);
