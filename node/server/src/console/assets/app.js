// The SMS web console: plain JS, no framework. Everything shown comes from
// the node's /console/api endpoints; data is only ever set as text.
"use strict";

const api = "/console/api";
let session = { signed_in: false };
let treeSource = null;
let tailSource = null;
let lastTree = null;

// --- small helpers -------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function time(ms) {
  if (!ms) return "never";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function age(ms) {
  if (!ms) return "";
  let s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

function notice(text, isError) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = isError ? "error" : "";
  n.hidden = !text;
}

async function get(path) {
  const r = await fetch(api + path, { credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// Every action: POST with the session's CSRF token in a header.
async function act(action, args) {
  const r = await fetch(api + "/actions/" + action, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-sms-csrf": session.csrf || "" },
    body: JSON.stringify(args || {}),
  });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) {
    notice(action + " refused: " + (body.error || r.statusText), true);
    throw new Error(body.error);
  }
  notice(action + " done" + (body.state ? ": link to " + body.to + " " + body.state : "") +
    (body.serial ? ": serial " + body.serial : "") + (body.status ? ": " + body.site_code + " " + body.status : ""), false);
  return body;
}

function canAct(role) {
  const rank = { "read-only": 0, operator: 1, full: 2 };
  return session.signed_in && rank[session.role] >= rank[role];
}

function actionButton(label, action, args, role, danger, after) {
  if (!canAct(role)) return null;
  return el("button", {
    class: danger ? "danger" : "",
    "data-action": action,
    onclick: async (ev) => {
      ev.preventDefault();
      try {
        await act(action, args);
        if (after) after();
      } catch (_) { /* shown in the notice */ }
    },
  }, label);
}

// --- session -------------------------------------------------------------

async function loadSession() {
  session = await get("/session");
  const who = document.getElementById("who");
  who.textContent = "";
  if (session.site) document.getElementById("here").textContent = "· site " + session.site;
  if (session.signed_in) {
    who.append("signed in as " + session.subject + " (" + session.role + ") until " +
      time(session.expires_unix * 1000) + " ",
      el("button", { onclick: async () => {
        await fetch(api + "/logout", { method: "POST", headers: { "x-sms-csrf": session.csrf } });
        location.reload();
      } }, "sign out"));
  } else {
    who.textContent = session.read_open
      ? "read-only (loopback); actions need a sign-in link: controller console-url"
      : "not signed in: open the link `controller console-url` prints";
  }
}

// --- the hierarchy tree --------------------------------------------------

function edgeView(edge) {
  const l = edge.link;
  if (!l) {
    return el("span", { class: "edge", "data-edge": edge.parent + "-" + edge.child, "data-state": "unknown" },
      "link " + edge.parent + " → " + edge.child + ": ", el("span", { class: "muted" }, edge.note));
  }
  const rate = l.bytes_per_sec === null ? "–" : bytes(l.bytes_per_sec) + "/s, " + l.acked_per_sec + " jobs/s";
  return el("span", { class: "edge", "data-edge": edge.parent + "-" + edge.child, "data-state": l.state },
    "link " + edge.seen_from + " → " + l.to + ": ",
    el("span", { class: "state" }, l.state),
    " · " + l.queued_jobs + " queued · " + l.failed_jobs + " failed · " + rate,
    l.detail ? el("span", { class: "muted" }, " (" + l.detail + ")") : null,
    " ",
    // A link one tier down is acted on at the site that holds it.
    l.far
      ? el("span", { class: "muted" }, "as " + edge.seen_from + " reports it; act on it in " + edge.seen_from + "'s console")
      : (l.state === "severed"
        ? actionButton("restore link", "restore-link", { to: l.to }, "operator")
        : actionButton("sever link", "sever-link", { to: l.to }, "operator", true)),
    !l.far && l.failed_jobs > 0 ? actionButton("retry failed jobs", "retry-jobs", { to: l.to }, "operator") : null);
}

function siteCard(s, edge) {
  const cls = s.stale ? "Stale" : (s.status === "Active" ? "Active" : (s.status ? "pending" : ""));
  return el("div", { class: "site " + cls, "data-site": s.code, "data-status": s.status },
    el("a", { class: "code", href: "#/site/" + s.code }, s.code), " ",
    el("span", { class: "status-" + s.status }, s.status || s.kind), " ",
    el("span", { class: "meta" }, s.kind + (s.version ? " · v" + s.version : "") + " · " + s.server),
    s.code === (lastTree && lastTree.site)
      ? el("div", { class: "meta" }, "this console's site")
      : el("div", { class: "meta" }, "last report: " + time(s.last_report_unix_ms) + " ",
        el("span", { class: "age", "data-ms": s.last_report_unix_ms || "" }, age(s.last_report_unix_ms))),
    edge ? edgeView(edge) : null);
}

function renderTree(t) {
  lastTree = t;
  const root = document.getElementById("tree");
  root.textContent = "";
  if (t.error) { root.append(el("p", { class: "muted" }, t.error)); return; }
  if (!t.site) { root.append(el("p", { class: "muted" }, t.note || "no site")); return; }
  const bySite = new Map(t.sites.map((s) => [s.code, s]));
  const edgeOf = new Map(t.edges.map((e) => [e.child, e]));
  const children = new Map();
  for (const s of t.sites) {
    const p = s.parent && bySite.has(s.parent) ? s.parent : null;
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(s);
  }
  const branch = (parent) => {
    const kids = children.get(parent) || [];
    if (!kids.length) return null;
    return el("ul", { class: parent === null ? "tree" : "" },
      kids.map((s) => el("li", {}, siteCard(s, edgeOf.get(s.code)), branch(s.code))));
  };
  root.append(branch(null));
  const cs = document.getElementById("create-secondary");
  cs.hidden = !(t.kind === "primary" && canAct("full"));
  for (const e of document.querySelectorAll(".here-code")) e.textContent = t.site;
}

function watchTree() {
  if (treeSource) return;
  const live = document.getElementById("live");
  treeSource = new EventSource(api + "/events");
  treeSource.addEventListener("tree", (ev) => {
    live.textContent = "live";
    live.className = "pill on";
    renderTree(JSON.parse(ev.data));
  });
  treeSource.onerror = () => {
    live.textContent = "reconnecting…";
    live.className = "pill off";
  };
}

// Ages move on between updates.
setInterval(() => {
  for (const a of document.querySelectorAll(".age")) {
    const ms = Number(a.getAttribute("data-ms"));
    if (ms) a.textContent = age(ms);
  }
}, 1000);

// --- a site's page -------------------------------------------------------

function table(headers, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
}

async function showSite(code) {
  const view = document.getElementById("view-site");
  view.textContent = "loading " + code + "…";
  let p;
  try {
    p = await get("/sites/" + encodeURIComponent(code));
  } catch (e) {
    view.textContent = "";
    view.append(el("p", { class: "muted" }, e.message));
    return;
  }
  const reload = () => showSite(code);
  view.textContent = "";
  view.append(el("h2", { "data-page": p.code }, "Site " + p.code + " ", el("span", { class: "muted" }, "as seen from " + p.seen_from)));
  if (p.row) {
    const r = p.row;
    view.append(el("div", { class: "panel" },
      el("h3", {}, "Site record"),
      table(["status", "kind", "server", "version", "serial", "last report", "errors / warnings (1 h)"],
        [[el("span", { class: "status-" + r.status }, r.status + (r.stale ? " (install: " + r.install_status + ")" : "")),
          r.kind, r.server, r.version, r.serial,
          time(r.last_report_unix_ms) + " " + age(r.last_report_unix_ms),
          r.recent_errors + " / " + r.recent_warnings]])));
  }
  if (!p.own) {
    const d = p.diagnose;
    view.append(el("div", { class: "panel", id: "diagnose" },
      el("h3", {}, "Diagnose (from " + p.seen_from + ")"),
      d.findings.map((f) => el("div", { class: "cause" }, "likely cause: " + f.cause,
        f.fix ? el("div", { class: "fix" }, "fix: " + f.fix) : null,
        f.action ? actionButton(f.action, f.action, { to: p.code }, "operator") : null)),
      el("p", {}, "last status messages from " + p.code + ":"),
      d.last_messages.length
        ? table(["time", "id", "severity", "text"], d.last_messages.map((m) => [time(m.time_unix_ms), m.id, m.severity, m.text]))
        : el("p", { class: "muted" }, "none has reached " + p.seen_from),
      el("p", { class: "muted" }, "The full diagnosis, which also asks " + p.code + "'s own server: " + d.full)));
  }
  // Site control with its history.
  const c = p.control;
  const sc = el("div", { class: "panel", id: "site-control" }, el("h3", {}, "Site control"));
  if (c.error) {
    sc.append(el("p", { class: "muted" }, c.error));
  } else {
    sc.append(el("p", {}, '"' + c.site_name + '" · serial ' + c.serial + " · parent " + (c.parent_site_code || "none") +
      " · polling interval " + c.polling_interval_ms + " ms · version " + c.version + " · next SMS unique id " + c.next_unique_id));
    if (p.serials.length > 1) {
      const opts = () => p.serials.map((s) => el("option", { value: s }, s));
      const a = el("select", { name: "a" }, opts());
      const b = el("select", { name: "b" }, opts());
      b.value = String(p.serials[p.serials.length - 1]);
      a.value = String(p.serials[Math.max(0, p.serials.length - 2)]);
      const out = el("div", { id: "diff-out" });
      sc.append(el("p", {}, "serial history: " + p.serials.join(", ") + " · diff ", a, " → ", b, " ",
        el("button", { id: "diff", onclick: async () => {
          out.textContent = "";
          try {
            const d = await get("/sites/" + p.code + "/diff?a=" + a.value + "&b=" + b.value);
            out.append(d.changes.length
              ? table(["field", "from", "to"], d.changes.map((ch) => [ch.field, ch.from ?? "(absent)", ch.to ?? "(absent)"]))
              : el("p", {}, "serials " + a.value + " and " + b.value + " are identical"));
          } catch (e) { out.append(el("p", { class: "muted" }, e.message)); }
        } }, "show changes")), out);
    } else {
      sc.append(el("p", { class: "muted" }, "serial history: " + p.serials.join(", ")));
    }
    if (p.own) sc.append(actionButton("force CT2", "force-ct2", {}, "operator", false, reload));
  }
  view.append(sc);
  // Components.
  view.append(el("div", { class: "panel" }, el("h3", {}, "Components"),
    Array.isArray(p.components)
      ? table(["component", "state"], p.components.map((x) => [x.name, x.state]))
      : el("p", { class: "muted" }, p.components.error)));
  if (!c.error) {
    // Domains and logon servers.
    const dom = el("div", { class: "panel", id: "domains" }, el("h3", {}, "Domains and logon servers"));
    const rows = [];
    for (const d of c.domains) {
      const rm = actionButton("remove domain", "remove-domain", { site: p.code, name: d.name }, "full", true, reload);
      if (!d.logon_servers.length) rows.push([d.name, d.browse.join(", "), "–", "–", rm]);
      d.logon_servers.forEach((l, i) => rows.push([d.name, d.browse.join(", "), l.server, l.state, i === 0 ? rm : ""]));
    }
    dom.append(rows.length ? table(["domain", "browse list", "logon server", "state", ""], rows) : el("p", { class: "muted" }, "no domains"));
    if (canAct("full")) {
      const f = el("form", { id: "form-add-domain" },
        el("label", {}, "Domain ", el("input", { name: "name", required: true, size: 10 })),
        el("label", {}, "Browse list ", el("input", { name: "browse", size: 30, placeholder: "host:port,host:port" })),
        el("button", { type: "submit" }, "add domain"));
      f.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const fd = new FormData(f);
        const browse = String(fd.get("browse") || "").split(",").map((s) => s.trim()).filter(Boolean);
        try { await act("add-domain", { site: p.code, name: fd.get("name"), browse }); reload(); } catch (_) { }
      });
      dom.append(f);
    }
    view.append(dom);
    view.append(el("div", { class: "panel" }, el("h3", {}, "Management points"),
      c.management_points.length
        ? table(["server", "port", "default", "state", "detail", "verification"],
          c.management_points.map((m) => [m.server, m.bound_port || m.port, m.is_default ? "yes" : "", m.state, m.detail,
            m.verification + (m.verified_unix_ms ? " (" + age(m.verified_unix_ms) + ")" : "")]))
        : el("p", { class: "muted" }, "no management points")));
    view.append(el("div", { class: "panel" }, el("h3", {}, "Addresses"),
      c.addresses.length
        ? table(["to", "server", "retries", "max retry delay ms", "concurrent", "rate limit B/s", "keepalive s", "schedule"],
          c.addresses.map((a) => [a.site_code, a.server, a.retry_count, a.retry_delay_ms, a.concurrent_sendings,
            a.rate_limit_bytes_per_sec || "none", a.keepalive_secs ?? "node default",
            a.schedule.map((r) => r.start_hour + "-" + r.end_hour + "h ≤" + r.lowest).join(", ") || "always"]))
        : el("p", { class: "muted" }, "no addresses")));
  }
  // Links and their failed jobs.
  const lk = el("div", { class: "panel", id: "links" }, el("h3", {}, "Links from " + p.seen_from + " and failed jobs"));
  if (!p.links.length) lk.append(el("p", { class: "muted" }, p.seen_from + " has no direct link to " + p.code));
  for (const l of p.links) {
    lk.append(el("p", {}, el("span", { class: "edge", "data-state": l.state },
      "→ " + l.to + ": ", el("span", { class: "state" }, l.state), " · " + l.queued_jobs + " queued · " +
      l.failed_jobs + " failed · " + l.sent_jobs + " sent · " + bytes(l.bytes_sent) + " · " + l.detail), " ",
      l.state === "severed"
        ? actionButton("restore link", "restore-link", { to: l.to }, "operator", false, reload)
        : actionButton("sever link", "sever-link", { to: l.to }, "operator", true, reload),
      l.failed.length ? actionButton("retry failed jobs", "retry-jobs", { to: l.to }, "operator", false, reload) : null));
    if (l.failed.length) {
      lk.append(table(["job", "kind", "attempts", "failed", "reason"],
        l.failed.map((j) => [j.job_id, j.kind, j.attempts, time(j.failed_unix_ms), j.reason])));
    }
  }
  view.append(lk);
}

// --- status messages -----------------------------------------------------

function filterParams() {
  const f = new FormData(document.getElementById("status-filters"));
  const q = new URLSearchParams();
  for (const [k, v] of f.entries()) {
    let s = String(v).trim();
    if (!s) continue;
    if (k === "since" || k === "until") s = String(new Date(s).getTime());
    q.set(k, s);
  }
  return q;
}

function messageRow(m) {
  return el("tr", { class: "msg " + m.severity, "data-id": m.id, "data-site": m.site },
    [time(m.time_unix_ms), m.site, m.severity, m.component, m.id, m.text].map((c) => el("td", {}, c)));
}

async function searchStatus() {
  const body = document.querySelector("#status-table tbody");
  const sum = document.getElementById("status-summary");
  try {
    const r = await get("/status?" + filterParams().toString());
    body.textContent = "";
    // Newest first.
    for (const m of r.messages.slice().reverse()) body.append(messageRow(m));
    sum.textContent = r.messages.length + " messages (newest first; searched among the newest " + r.scanned_at_most + ")";
    sum.setAttribute("data-count", r.messages.length);
  } catch (e) {
    sum.textContent = e.message;
  }
  if (document.getElementById("status-tail").checked) startTail();
}

function startTail() {
  stopTail();
  const q = filterParams();
  q.delete("limit");
  tailSource = new EventSource(api + "/status/tail?" + q.toString());
  const body = document.querySelector("#status-table tbody");
  tailSource.addEventListener("message", (ev) => {
    body.prepend(messageRow(JSON.parse(ev.data)));
    while (body.rows.length > 2000) body.deleteRow(-1);
  });
  tailSource.addEventListener("missed", (ev) => notice("the live tail fell behind: " + ev.data + " batches missed", true));
}

function stopTail() {
  if (tailSource) { tailSource.close(); tailSource = null; }
}

// --- routing -------------------------------------------------------------

function route() {
  const h = location.hash || "#/tree";
  for (const id of ["view-tree", "view-site", "view-status"]) document.getElementById(id).hidden = true;
  for (const a of document.querySelectorAll("nav a")) a.classList.remove("active");
  if (h.startsWith("#/site/")) {
    document.getElementById("view-site").hidden = false;
    showSite(decodeURIComponent(h.slice(7)));
  } else if (h.startsWith("#/status")) {
    document.getElementById("view-status").hidden = false;
    document.getElementById("nav-status").classList.add("active");
    searchStatus();
  } else {
    document.getElementById("view-tree").hidden = false;
    document.getElementById("nav-tree").classList.add("active");
    watchTree();
  }
}

async function start() {
  try {
    await loadSession();
  } catch (e) {
    notice("cannot read the session: " + e.message, true);
  }
  document.getElementById("status-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchStatus();
  });
  document.getElementById("status-tail").addEventListener("change", (ev) => {
    if (ev.target.checked) startTail(); else stopTail();
  });
  const cf = document.getElementById("form-create");
  cf.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(cf);
    try {
      await act("create-secondary", { site_code: fd.get("site_code"), server: fd.get("server"), site_name: fd.get("site_name") });
      cf.reset();
    } catch (_) { }
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
