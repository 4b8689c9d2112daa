// owlpost console: follows the campaign's status events and keeps the page
// current. No inline script (the Content-Security-Policy forbids it).
"use strict";
(function () {
  const main = document.getElementById("campaign");
  if (!main) return;
  const id = main.dataset.id;
  const mayFire = main.dataset.mayfire === "true";
  const go = document.getElementById("go");
  const confirm = document.getElementById("confirm");
  const abortForm = document.getElementById("abort-form");
  let ready = false, fired = false, chartFinal = false;

  function text(elID, v) { const e = document.getElementById(elID); if (e) e.textContent = v; }

  function arm() {
    go.disabled = !(mayFire && ready && !fired && confirm && confirm.value === id);
  }
  if (confirm) confirm.addEventListener("input", arm);
  if (abortForm) abortForm.addEventListener("submit", function (ev) {
    if (document.getElementById("abort-confirm").value !== id) { ev.preventDefault(); alert("Type " + id + " to abort."); }
  });

  function gates(list) {
    const ul = document.getElementById("gates");
    ul.textContent = "";
    for (const g of list) {
      const li = document.createElement("li");
      li.className = g.ok ? "ok" : "bad";
      li.textContent = (g.ok ? "✔ " : "✘ ") + g.name + ": " + g.reason;
      ul.appendChild(li);
    }
  }

  // The chart is drawn by the server (report.LiveSnapshot.WriteSVG); the
  // page only asks for the current picture.
  function chart(at) {
    const img = document.getElementById("chart");
    img.hidden = false;
    img.src = img.dataset.src + "?at=" + encodeURIComponent(at);
  }

  function ms(v) { return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v + " ms"; }

  function counts(row, c) {
    for (const k of ["accepted", "invalid", "failed", "expired", "aborted"]) {
      const td = row.querySelector("." + k);
      if (td) td.textContent = c ? c[k] : 0;
    }
  }

  function lag(rows, err) {
    const ul = document.getElementById("lag");
    ul.textContent = "";
    if (err) { const li = document.createElement("li"); li.textContent = "unavailable: " + err; ul.appendChild(li); }
    for (const r of rows || []) {
      const li = document.createElement("li");
      li.textContent = r.stage + " (" + r.group + "): " + r.lag;
      ul.appendChild(li);
    }
  }

  function update(s) {
    text("state", s.state);
    document.getElementById("state").className = "state state-" + s.state;
    ready = s.ready_to_fire;
    if (s.fire) {
      fired = true;
      const b = document.getElementById("fired");
      b.hidden = false;
      b.textContent = "fired at " + new Date(s.fire.at).toISOString().substring(11, 23) + " UTC by " + s.fire.by;
    }
    gates(s.gates || []);
    const p = s.progress;
    if (p) {
      text("p-done", p.tokens_done + "/" + p.tokens_planned);
      text("p-accepted", p.accepted); text("p-invalid", p.invalid); text("p-failed", p.failed);
      text("p-expired", p.expired); text("p-aborted", p.aborted);
      for (const row of document.querySelectorAll("#progress tr[id^=row-]")) {
        if (row.id !== "row-all") counts(row, (p.by_platform || {})[row.id.substring(4)]);
      }
      text("rate", p.accepted_per_second);
      text("latency", "p50 " + ms(p.p50_ms) + ", p95 " + ms(p.p95_ms) + ", p99 " + ms(p.p99_ms) + ", max " + ms(p.max_ms) + " (10 ms resolution)");
      lag(p.lag, p.lag_error);
      if (!chartFinal) chart(s.at);
      chartFinal = s.state === "done" || s.state === "aborted";
    }
    document.getElementById("complete").hidden = s.state !== "done";
    document.getElementById("report-link").hidden = !s.fire;
    arm();
  }

  const es = new EventSource(main.dataset.events);
  es.addEventListener("status", function (ev) { update(JSON.parse(ev.data)); });
})();
