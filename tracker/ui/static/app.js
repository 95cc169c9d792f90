// dfp2p tracker dashboard: polls the tracker's JSON API and draws tables
// and SVG. Plain JavaScript, no libraries, nothing loaded from elsewhere.
// Every value from the API goes into the page as text (textContent or SVG
// attributes), never as markup.
"use strict";
(() => {
  const POLL_MS = 1500;
  const TOKEN_KEY = "dfp2p.api-token";
  const MAX_PEER_ROWS = 200;
  const MAX_GRAPH_NODES = 40;
  const $ = (id) => document.getElementById(id);
  // The SVG namespace, taken from an element the HTML parser made.
  const SVGNS = $("chart").namespaceURI;

  let selected = null; // task the user clicked; null follows the newest
  let timer = null;

  // --- formatting ---

  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    n = Number(n) || 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
  }
  const rate = (n) => bytes(n) + "/s";
  const shortID = (id) => (id && id.length > 12 ? "…" + id.slice(-8) : id || "");
  const pct = (x) => (100 * x).toFixed(x > 0 && x < 0.1 ? 1 : 0) + " %";

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }

  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }

  function bar(frac, cls) {
    const inner = el("div");
    inner.style.width = Math.max(0, Math.min(1, frac)) * 100 + "%";
    return el("div", { class: "bar " + (cls || "") }, inner);
  }

  // --- API ---

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const ctl = new AbortController();
    const timeout = setTimeout(() => ctl.abort(), 5000);
    try {
      const r = await fetch(path, { headers, signal: ctl.signal, cache: "no-store", credentials: "omit" });
      if (!r.ok) {
        let msg = "HTTP " + r.status;
        try {
          const b = await r.json();
          if (b && b.error) msg += ": " + b.error;
        } catch (_) {
          // not JSON: keep the status
        }
        const err = new Error(msg);
        err.status = r.status;
        throw err;
      }
      return await r.json();
    } finally {
      clearTimeout(timeout);
    }
  }

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + cls;
  }

  // --- panels ---

  function renderOverview(o) {
    $("tracker-id").textContent = shortID(o.tracker);
    $("tracker-id").title = o.tracker;
    $("c-tasks").textContent = o.tasks;
    $("c-peers").textContent = o.peers;
    $("c-origin").textContent = bytes(o.origin_bytes);
    $("c-delivered").textContent = bytes(o.delivered_bytes);
    $("c-offload").textContent = o.origin_bytes > 0 ? o.offload_ratio.toFixed(2) + "×" : "–";
    $("c-share").textContent = o.delivered_bytes > 0 ? pct(o.peer_share) : "–";
    renderChart(o.throughput || []);
    renderOffload(o);
    renderRegions(o.regions || []);
  }

  function renderChart(samples) {
    const c = $("chart");
    // Drawn at its on-screen size, so text is not stretched.
    const W = Math.max(200, Math.round(c.getBoundingClientRect().width) || 600), H = 160, L = 0, T = 8, B = 14;
    c.setAttribute("viewBox", "0 0 " + W + " " + H);
    c.replaceChildren();
    const last = samples.length ? samples[samples.length - 1] : { origin: 0, seed: 0, peer: 0, t: Date.now() };
    $("r-origin").textContent = rate(last.origin);
    $("r-seed").textContent = rate(last.seed);
    $("r-peer").textContent = rate(last.peer);
    let max = 1;
    for (const s of samples) max = Math.max(max, s.origin, s.seed, s.peer);
    const end = last.t, start = end - 60000;
    const x = (t) => L + ((t - start) / 60000) * (W - L);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    for (const f of [0.25, 0.5, 0.75, 1]) {
      c.append(svg("line", { class: "grid", x1: 0, x2: W, y1: y(max * f), y2: y(max * f) }));
    }
    c.append(svg("text", { class: "axis", x: 4, y: y(max) + 10, text: rate(max) }));
    c.append(svg("text", { class: "axis", x: 4, y: H - 3, text: "−60 s" }));
    c.append(svg("text", { class: "axis", x: W / 2, y: H - 3, "text-anchor": "middle", text: "−30 s" }));
    c.append(svg("text", { class: "axis", x: W - 4, y: H - 3, "text-anchor": "end", text: "now" }));
    for (const key of ["origin", "seed", "peer"]) {
      const pts = samples.filter((s) => s.t >= start).map((s) => x(s.t).toFixed(1) + "," + y(s[key]).toFixed(1));
      if (pts.length > 1) c.append(svg("path", { class: key, d: "M" + pts.join("L") }));
    }
  }

  function renderOffload(o) {
    const box = $("offload");
    box.replaceChildren();
    const max = Math.max(o.origin_bytes, o.delivered_bytes, 1);
    const line = (label, parts, value) => {
      const h = el("div", { class: "hbar" });
      const stack = el("div", { class: "stack" });
      stack.style.width = "100%";
      for (const [cls, n] of parts) {
        const d = el("div", { class: cls });
        d.style.width = (100 * n) / max + "%";
        stack.append(d);
      }
      h.append(stack);
      box.append(el("div", { class: "line" }, el("span", { class: "lbl", text: label }), h, el("b", { text: value })));
    };
    line("read from origin", [["origin", o.origin_bytes]], bytes(o.origin_bytes));
    line("seed → peers", [["seed", o.seed_bytes]], bytes(o.seed_bytes));
    line("peer → peer", [["peer", o.peer_bytes]], bytes(o.peer_bytes));
    line("delivered", [["seed", o.seed_bytes], ["peer", o.peer_bytes]], bytes(o.delivered_bytes));
    box.append(
      el("div", {
        class: "dim",
        text:
          o.origin_bytes > 0
            ? "each origin byte reached peers " + o.offload_ratio.toFixed(2) + " times; " + pct(o.peer_share) + " of it peer to peer"
            : "no origin reads yet",
      })
    );
  }

  function renderRegions(rs) {
    const tb = $("regions").tBodies[0];
    tb.replaceChildren();
    if (!rs.length) tb.append(el("tr", {}, el("td", { class: "empty", colspan: 3, text: "no peers" })));
    const max = Math.max(1, ...rs.map((r) => r.peers));
    for (const r of rs) {
      tb.append(
        el("tr", {},
          el("td", { text: r.region || "(none)" }),
          el("td", { text: r.zone || "(none)" }),
          el("td", {}, bar(r.peers / max), el("span", { text: String(r.peers) })))
      );
    }
  }

  function pickTask(tasks) {
    if (selected && tasks.some((t) => t.id === selected)) return selected;
    selected = null;
    // The newest task that still has peers downloading, else the newest.
    for (let i = tasks.length - 1; i >= 0; i--) if (tasks[i].peers > tasks[i].peers_complete) return tasks[i].id;
    return tasks.length ? tasks[tasks.length - 1].id : null;
  }

  function renderTasks(tasks, current) {
    const tb = $("tasks").tBodies[0];
    tb.replaceChildren();
    if (!tasks.length) tb.append(el("tr", {}, el("td", { class: "empty", colspan: 7, text: "no tasks yet" })));
    for (const t of tasks.slice().reverse()) {
      const seed = t.error ? "failed: " + t.error : t.seed_complete ? "complete" : "fetching";
      const tr = el("tr", { "data-task": t.id, class: t.id === current ? "sel" : "" },
        el("td", { class: "mono", title: t.id, text: shortID(t.id) }),
        el("td", { class: "url", title: t.url || "", text: t.url || "(digest)" }),
        el("td", { class: "num", text: bytes(t.length) }),
        el("td", { class: "num", text: String(t.pieces) }),
        el("td", { class: "num", text: String(t.peers) }),
        el("td", {}, bar(t.peers ? t.peers_complete / t.peers : 0), el("span", { text: t.peers_complete + "/" + t.peers })),
        el("td", { text: seed }));
      tr.addEventListener("click", () => {
        selected = t.id;
        refresh();
      });
      tb.append(tr);
    }
  }

  function renderPeers(d, seedID) {
    $("sel-task").textContent = d.id;
    const tb = $("peers").tBodies[0];
    tb.replaceChildren();
    const peers = d.peer_list || [];
    if (!peers.length) tb.append(el("tr", {}, el("td", { class: "empty", colspan: 6, text: "no peers" })));
    const n = Math.max(d.pieces, 1);
    for (const p of peers.slice(0, MAX_PEER_ROWS)) {
      const isSeed = p.Seed || p.Peer === seedID;
      tb.append(
        el("tr", { "data-peer": p.Peer },
          el("td", { class: "mono", title: p.Peer, text: shortID(p.Peer) }),
          el("td", { text: isSeed ? "seed" : "peer" }),
          el("td", { text: (p.Region || "–") + " / " + (p.Zone || "–") }),
          el("td", {}, bar(p.Held / n, isSeed ? "seed" : ""), el("span", { text: p.Held + "/" + d.pieces + " (" + pct(p.Held / n) + ")" })),
          el("td", { class: "num", text: String(p.Uploads) }),
          el("td", { class: "num", text: p.Inflight + " / " + p.Downloading }))
      );
    }
    $("peers-more").textContent = peers.length > MAX_PEER_ROWS ? "and " + (peers.length - MAX_PEER_ROWS) + " more peers" : "";
  }

  // renderGraph draws the task's swarm: the seed in the middle, the other
  // peers on a circle in peer-ID order (the same place on every refresh),
  // an arrow parent → child per edge, wider for more bytes.
  function renderGraph(d, edges, seedID) {
    const g = $("graph");
    g.replaceChildren();
    const S = 520, C = S / 2, R = 205;
    const traffic = new Map();
    const add = (id, n) => traffic.set(id, (traffic.get(id) || 0) + n);
    const live = new Set();
    for (const p of d.peer_list || []) {
      live.add(p.Peer);
      add(p.Peer, 0);
    }
    for (const e of edges.edges || []) {
      add(e.from, e.bytes);
      add(e.to, e.bytes);
    }
    let others = [...traffic.keys()].filter((id) => id !== seedID);
    const total = others.length;
    if (others.length > MAX_GRAPH_NODES) {
      others.sort((a, b) => traffic.get(b) - traffic.get(a) || (a < b ? -1 : 1));
      others = others.slice(0, MAX_GRAPH_NODES);
    }
    others.sort();
    const pos = new Map([[seedID, [C, C]]]);
    others.forEach((id, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(others.length, 1);
      pos.set(id, [C + R * Math.cos(a), C + R * Math.sin(a)]);
    });
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerUnits: "userSpaceOnUse", markerWidth: 9, markerHeight: 9, orient: "auto" },
      svg("path", { class: "arrow", d: "M0,0L10,5L0,10z" }));
    g.append(svg("defs", {}, marker));
    const shown = (edges.edges || []).filter((e) => pos.has(e.from) && pos.has(e.to) && e.from !== e.to);
    const maxB = Math.max(1, ...shown.map((e) => e.bytes));
    const nodeR = others.length > 20 ? 9 : 13;
    const layer = svg("g", {});
    for (const e of shown) {
      const [x1, y1] = pos.get(e.from), [x2, y2] = pos.get(e.to);
      const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
      // Edges between peers bend (to their right, so A→B and B→A part and
      // none runs through the seed in the middle); the seed's are straight.
      const bend = e.from === seedID || e.to === seedID ? 0.04 : 0.18;
      const cx = (x1 + x2) / 2 - (dy / len) * len * bend, cy = (y1 + y2) / 2 + (dx / len) * len * bend;
      const r0 = e.from === seedID ? 16 : nodeR, r1 = (e.to === seedID ? 16 : nodeR) + 2;
      const d0 = Math.hypot(cx - x1, cy - y1) || 1, d1 = Math.hypot(x2 - cx, y2 - cy) || 1;
      const sx = x1 + ((cx - x1) / d0) * r0, sy = y1 + ((cy - y1) / d0) * r0;
      const ex = x2 - ((x2 - cx) / d1) * r1, ey = y2 - ((y2 - cy) / d1) * r1;
      const f = (v) => v.toFixed(1);
      const cls = "edge " + (e.from === seedID ? "fromseed" : "frompeer");
      layer.append(
        svg("path", {
          class: cls,
          d: "M" + f(sx) + "," + f(sy) + "Q" + f(cx) + "," + f(cy) + " " + f(ex) + "," + f(ey),
          "stroke-width": (1 + 4 * Math.sqrt(e.bytes / maxB)).toFixed(2),
          "marker-end": "url(#arrow)",
          "data-edge": e.from + ">" + e.to,
        }, svg("title", { text: shortID(e.from) + " → " + shortID(e.to) + ": " + bytes(e.bytes) }))
      );
      if (shown.length <= 24) {
        // The label sits on the curve's midpoint.
        layer.append(svg("text", { class: "elabel", "text-anchor": "middle", x: f((x1 + 2 * cx + x2) / 4), y: f((y1 + 2 * cy + y2) / 4 - 3), text: bytes(e.bytes) }));
      }
    }
    g.append(layer);
    for (const [id, [x, y]] of pos) {
      const isSeed = id === seedID;
      const cls = "node" + (isSeed ? " seed" : "") + (live.has(id) ? "" : " gone");
      const r = isSeed ? 16 : nodeR;
      g.append(
        svg("g", { class: cls, "data-node": id },
          svg("title", { text: (isSeed ? "seed " : "") + id }),
          svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r }),
          svg("text", { x: x.toFixed(1), y: (y + r + 12).toFixed(1), "text-anchor": "middle", text: isSeed ? "seed" : shortID(id) }))
      );
    }
    const notes = [];
    if (total > others.length) notes.push("showing the " + others.length + " busiest of " + total + " peers");
    if (edges.dropped_bytes > 0) notes.push(bytes(edges.dropped_bytes) + " on edges beyond the per-task cap");
    if (!shown.length) notes.push("no piece transfers reported yet");
    $("graph-note").textContent = notes.join("; ");
  }

  function clearTask() {
    $("sel-task").textContent = "–";
    $("peers").tBodies[0].replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: 6, text: "no task" })));
    $("graph").replaceChildren();
    $("graph-note").textContent = "";
    $("peers-more").textContent = "";
  }

  // --- loop ---

  async function poll() {
    try {
      const [o, tasks] = await Promise.all([api("/api/v1/overview"), api("/api/v1/tasks")]);
      renderOverview(o);
      const id = pickTask(tasks);
      renderTasks(tasks, id);
      if (id) {
        const p = "/api/v1/tasks/" + encodeURIComponent(id);
        const [d, e] = await Promise.all([api(p), api(p + "/edges")]);
        renderPeers(d, o.tracker);
        renderGraph(d, e, o.tracker);
      } else {
        clearTask();
      }
      setStatus("live · " + new Date().toLocaleTimeString(), "ok");
    } catch (err) {
      if (err.status === 401 || err.status === 403) setStatus("needs a token with read scope (" + err.message + ")", "err");
      else setStatus("error: " + err.message, "err");
    }
  }

  async function refresh() {
    clearTimeout(timer);
    await poll();
    clearTimeout(timer);
    timer = setTimeout(refresh, POLL_MS);
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $("token").value = "";
    $("token").placeholder = v ? "token set for this tab" : $("token").placeholder;
    refresh();
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    $("token").placeholder = "not needed on loopback";
    refresh();
  });
  if (token()) $("token").placeholder = "token set for this tab";
  refresh();
})();
