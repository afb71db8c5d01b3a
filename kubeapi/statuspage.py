"""The status page served at GET /: one self-contained HTML document, no build step.

It holds no data itself (so it needs no token): its script reads `?token=` from the page's own
URL, loads GET /skydns/status at once (so the first view is the current state even when the
event stream is slow to deliver, as behind some proxies), follows GET /skydns/status/events
(Server-Sent Events, one full snapshot per change) and falls back to polling GET
/skydns/status every few seconds if the stream cannot be opened. Clicking an address opens
its history (GET /skydns/health/<ip>).
Every value from etcd goes into the page through textContent, never as markup.

The page lives in a Python string rather than a file beside the module so that it ships with
the package without package-data settings. The Content-Security-Policy allows exactly this
script and style (by hash) and requests to this server only.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.2em 2em; color: #1d1d1f; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h1 small { font-weight: normal; color: #666; }
#banner { display: none; padding: .5em .8em; margin: .6em 0; border-radius: 4px; }
#banner.error { display: block; background: #fde2e1; border: 1px solid #e39a96; }
#banner.warn { display: block; background: #fff4d6; border: 1px solid #e0c060; }
.meta { color: #555; margin: .2em 0; }
.meta b { color: #1d1d1f; font-weight: 600; }
table { border-collapse: collapse; margin-top: .8em; }
th, td { text-align: left; padding: .2em .9em .2em 0; border-bottom: 1px solid #eee; }
th { border-bottom: 2px solid #ccc; }
td.name { font-weight: 600; }
.UP { color: #0f7a2e; font-weight: 600; }
.DOWN { color: #b3261e; font-weight: 600; }
.none, .gone { color: #888; }
.warnings { color: #b3261e; font-weight: 600; }
td.checks { font-family: ui-monospace, monospace; font-size: .92em; }
td.reason { color: #8a4b00; }
"""

SCRIPT = """
"use strict";
(function () {
  var token = new URLSearchParams(location.search).get("token") || "";
  var query = token ? "?token=" + encodeURIComponent(token) : "";
  var POLL_MS = 3000;
  var source = null;
  var stopped = false;
  var rendered = -1;  // revision on screen; an older snapshot arriving late is not shown
  window.skydnsStatusLoadedAt = Date.now();

  function $(id) { return document.getElementById(id); }
  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) { td.className = cls; }
    return td;
  }
  function banner(kind, text) {
    $("banner").className = kind;
    $("banner").textContent = text;
  }
  function when(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }
  function setMode(mode) {
    document.body.dataset.mode = mode;
    $("mode").textContent = mode === "live" ? "live (event stream)" : "polling every "
      + POLL_MS / 1000 + " s";
  }

  function render(snap) {
    if (snap.ready && snap.revision < rendered) { return; }
    rendered = snap.ready ? snap.revision : -1;
    $("zone").textContent = snap.zone;
    $("leader").textContent = snap.leader || "none";
    $("standby").textContent = snap.schedulers.slice(1).join(", ") || "none";
    $("scanners").textContent = snap.scanners.map(function (s) {
      return s.hostname + " (" + s.addresses + ")"
        + (s.state === "isolated" ? " ISOLATED: " + (s.isolation || "") : "");
    }).join(", ") || "none";
    $("warnings").textContent = (snap.warnings || []).join(" ");
    var c = snap.counts;
    $("summary").textContent = snap.names_total + " names, " + c.addresses + " addresses: "
      + c.up + " UP, " + c.down + " DOWN, " + c.unknown + " without status, "
      + c.unassigned + " not assigned to a scanner, " + (c.maint || 0) + " in maintenance";
    if (snap.names.length < snap.names_total) {
      $("summary").textContent += " (first " + snap.names.length + " names shown)";
    }
    var rows = document.createDocumentFragment();
    snap.names.forEach(function (entry) {
      entry.addresses.forEach(function (a, i) {
        var tr = document.createElement("tr");
        tr.dataset.name = entry.name;
        tr.dataset.ip = a.ip;
        tr.dataset.status = a.status || "none";
        tr.dataset.maint = a.maintenance ? "1" : "0";
        tr.appendChild(cell(i === 0 ? entry.name : "", "name"));
        tr.appendChild(cell(a.type));
        var addr = cell("");
        var button = document.createElement("button");
        button.className = "addr";
        button.type = "button";
        button.title = "history of " + a.ip;
        button.textContent = a.ip;
        button.dataset.ip = a.ip;
        addr.appendChild(button);
        tr.appendChild(addr);
        tr.appendChild(cell(a.port === undefined ? "" : a.port));
        var state = cell(a.status || "no status", a.status || "none");
        if (a.maintenance) {
          var badge = document.createElement("span");
          badge.className = "badge";
          badge.textContent = "MAINT";
          badge.title = "left out of every answer: " + (a.maintenance.reason || "");
          state.appendChild(badge);
        }
        tr.appendChild(state);
        tr.appendChild(cell(when(a.since), "since"));
        var owner = a.scanner === null ? "not assigned"
          : a.scanner + (a.scanner_live ? "" : " (not live)");
        tr.appendChild(cell(owner, a.scanner !== null && a.scanner_live ? "" : "gone"));
        tr.appendChild(cell((a.checks || []).join("; "), "checks"));
        tr.appendChild(cell((a.reason || "") + (a.confirmedby && a.confirmedby.length
          ? " (confirmed by " + a.confirmedby.join(", ") + ")" : ""), "reason"));
        var m = a.maintenance;
        tr.appendChild(cell(m ? (m.reason || "") + " (" + (m.by || "?") + ", "
          + when(m.since) + ")" : "", "maint"));
        rows.appendChild(tr);
      });
    });
    $("rows").replaceChildren(rows);
    $("updated").textContent = new Date().toLocaleTimeString();
    document.body.dataset.revision = String(snap.revision);
    document.body.dataset.state = snap.ready ? "live" : "loading";
    if (!snap.ready) {
      banner("warn", "Loading from etcd...");
    } else if (!snap.connected) {
      banner("warn", "The API has lost its etcd watch: showing the last known state.");
    } else {
      banner("", "");
    }
  }

  function unauthorized() {
    stopped = true;
    if (source) { source.close(); source = null; }
    document.body.dataset.state = "unauthorized";
    banner("error", token
      ? "401: the token in this page's address was refused. Open the page as /?token=<API token>."
      : "401: this page needs the API token. Open it as /?token=<API token>.");
  }

  function poll() {
    if (stopped) { return; }
    setMode("polling");
    fetch("/skydns/status" + query, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (resp) {
        if (resp.status === 401) { unauthorized(); return null; }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      })
      .then(function (snap) { if (snap) { render(snap); } })
      .catch(function (err) {
        banner("warn", "Cannot reach the API (" + err.message + "); trying again.");
      })
      .then(function () { if (!stopped) { setTimeout(poll, POLL_MS); } });
  }

  function showHistory(ip) {
    $("history").hidden = false;
    $("history-ip").textContent = ip;
    $("history-note").textContent = "Loading...";
    $("history-rows").replaceChildren();
    fetch("/skydns/health/" + encodeURIComponent(ip) + query,
          {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok) { throw new Error(body.error || "HTTP " + resp.status); }
          return body;
        });
      })
      .then(function (one) {
        var last = one.lastfailure;
        $("history-note").textContent = (one.history.length || "No") + " changes recorded"
          + (last ? "; last failure " + when(last.time) + " by " + (last.checker || "?")
            + ": " + (last.reason || "") : "") + ".";
        var rows = document.createDocumentFragment();
        one.history.forEach(function (h) {
          var tr = document.createElement("tr");
          tr.appendChild(cell(when(h.time)));
          tr.appendChild(cell((h.from || "-") + " \u2192 " + h.to));
          tr.appendChild(cell(h.checker || ""));
          tr.appendChild(cell(h.reason || "", "reason"));
          rows.appendChild(tr);
        });
        $("history-rows").replaceChildren(rows);
        document.body.dataset.history = ip;
      })
      .catch(function (err) {
        $("history-note").textContent = "Cannot load the history: " + err.message;
      });
  }

  $("rows").addEventListener("click", function (ev) {
    var target = ev.target;
    if (target && target.classList && target.classList.contains("addr")) {
      showHistory(target.dataset.ip);
    }
  });
  $("history-close").addEventListener("click", function () { $("history").hidden = true; });

  function firstLoad() {
    // The current state at once, whatever the stream does; it never overwrites a newer one.
    fetch("/skydns/status" + query, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (resp) {
        if (resp.status === 401) { unauthorized(); return null; }
        return resp.ok ? resp.json() : null;
      })
      .then(function (snap) { if (snap && !stopped) { render(snap); } })
      .catch(function () { /* the stream or the polls report problems */ });
  }

  function stream() {
    if (!window.EventSource) { poll(); return; }
    setMode("live");
    source = new EventSource("/skydns/status/events" + query);
    source.addEventListener("snapshot", function (ev) {
      setMode("live");
      render(JSON.parse(ev.data));
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (a 401, or no stream support on the way): the polls say which, and go on.
        source.close();
        source = null;
        poll();
      } else {
        banner("warn", "Connection to the API lost; reconnecting...");
      }
    };
  }

  firstLoad();
  stream();
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; script-src {_sha256(SCRIPT)}; style-src {_sha256(STYLE)}; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>skydns status</title>
<style>{STYLE}</style>
</head>
<body data-state="loading" data-mode="">
<h1>skydns status <small id="zone"></small></h1>
<div id="banner" role="alert"></div>
<p class="meta">Scheduler leader: <b id="leader">-</b> &middot;
standby: <span id="standby">-</span></p>
<p class="meta">Live scanners (addresses owned): <span id="scanners">-</span>
  <span id="warnings" class="warnings"></span></p>
<p class="meta">Updated <span id="updated">never</span>, <span id="mode"></span></p>
<p id="summary"></p>
<table>
<thead><tr><th>Name</th><th>Type</th><th>Address</th><th>Port</th><th>State</th>
<th>Since</th><th>Scanner</th><th>Checks</th><th>Last failure</th><th>Maintenance</th></tr>
</thead>
<tbody id="rows"></tbody>
</table>
<section id="history" hidden>
<h2>History of <span id="history-ip"></span>
<button id="history-close" type="button">close</button></h2>
<p id="history-note" class="meta"></p>
<table><thead><tr><th>When</th><th>Change</th><th>By</th><th>Reason</th></tr></thead>
<tbody id="history-rows"></tbody></table>
</section>
<script>{SCRIPT}</script>
</body>
</html>
"""
