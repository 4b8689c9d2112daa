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
  let ready = false, fired = false;
  const points = [];
  let last = null;

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

  function chart(fireAt, p, at) {
    if (!fireAt || !p) return;
    const t = (Date.parse(at) - Date.parse(fireAt)) / 1000;
    points.push([Math.max(0, t), p.accepted]);
    const maxT = Math.max(1, ...points.map(x => x[0]));
    const maxY = Math.max(1, p.tokens_planned || 0, ...points.map(x => x[1]));
    const pts = points.map(x => (x[0] / maxT * 590 + 5).toFixed(1) + "," + (155 - x[1] / maxY * 150).toFixed(1));
    document.getElementById("curve").setAttribute("points", pts.join(" "));
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
      if (last) {
        const dt = (Date.parse(s.at) - Date.parse(last.at)) / 1000;
        if (dt > 0) text("rate", Math.round((p.accepted - last.accepted) / dt) + " accepted/s");
      }
      last = { at: s.at, accepted: p.accepted };
      chart(s.fire && s.fire.at, p, s.at);
    }
    arm();
  }

  const es = new EventSource(main.dataset.events);
  es.addEventListener("status", function (ev) { update(JSON.parse(ev.data)); });
})();
