// lanmesh web: draws the state the node pushes (Server-Sent Events at
// /events). Every text from the network goes in through textContent or an
// attribute, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const W = 800, H = 440, CX = W / 2, CY = H / 2;
const $ = (id) => document.getElementById(id);

// el makes an element; text, if given, is set as text.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function sv(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  return e;
}
function short(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }
function fmtMs(v) { return v <= 0 ? "–" : v < 1 ? v.toFixed(2) + " ms" : v < 100 ? v.toFixed(1) + " ms" : v.toFixed(0) + " ms"; }
function fmtRate(v) { return v < 10 ? v.toFixed(1) : v.toFixed(0); }
function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
}
function fmtAgo(ms, now) {
  if (!ms) return "–";
  const s = Math.max(0, (now - ms) / 1000);
  return s < 1 ? "now" : s < 60 ? s.toFixed(0) + " s ago" : s < 3600 ? (s / 60).toFixed(0) + " min ago" : (s / 3600).toFixed(1) + " h ago";
}
function fmtTime(ms) { return new Date(ms).toLocaleTimeString([], { hour12: false }); }
// where says where a peer is: its address, or for a remote peer its site.
function where(p) {
  if (p.site) return "site " + p.site + " (through the hub)";
  return p.remote || p.addr || "–";
}

function foundClass(p) {
  if (p.cablecar) return "n-cablecar";
  if (p.found.indexOf("broadcast") >= 0) return "n-broadcast";
  if (p.found.indexOf("mdns") >= 0) return "n-mdns";
  if (p.found.indexOf("seed") >= 0) return "n-seed";
  if (p.site) return "n-relay";
  return "n-in";
}

// The graph keeps its elements between states, so that nodes can animate.
const graph = { nodes: new Map(), edges: new Map(), layers: null, instances: new Map() };

function setupGraph() {
  const svg = $("graph");
  const edges = sv("g", { class: "edges" }), nodes = sv("g", { class: "nodes" });
  svg.append(edges, nodes);
  graph.layers = { edges, nodes };
}

function lock(x, y) {
  const g = sv("g", { class: "keyed", transform: `translate(${x},${y})` });
  g.append(sv("rect", { x: -5, y: -1, width: 10, height: 8, rx: 1.5, class: "lock" }),
    sv("path", { d: "M-3 -1V-3a3 3 0 0 1 6 0v2", class: "lock-arc" }));
  return g;
}

function makeNode(id, self) {
  const g = sv("g", { class: self ? "node self" : "node", "data-id": id });
  const inner = sv("g", { class: "inner" });
  const title = sv("title");
  const ring = sv("circle", { r: 34, class: "self-ring" });
  const dot = sv("circle", { r: self ? 28 : 22, class: "dot" });
  const name = sv("text", { y: self ? 50 : 42, class: "name" });
  const sub = sv("text", { y: self ? 64 : 56, class: "sub" });
  const initial = sv("text", { y: 6, class: "initial" });
  const pulse = sv("circle", { r: 22, class: "pulse" });
  if (self) inner.append(ring);
  inner.append(pulse, dot, initial, name, sub, title);
  g.append(inner);
  graph.layers.nodes.append(g);
  return { g, inner, title, dot, name, sub, initial, keyed: null };
}

function updateNode(n, label, sub, cls, keyed, tip, self) {
  n.name.textContent = short(label, 24);
  n.sub.textContent = sub;
  n.initial.textContent = (Array.from(label.trim())[0] || "?").toUpperCase();
  n.title.textContent = tip;
  n.dot.setAttribute("class", "dot " + cls);
  if (keyed && !n.keyed) { n.keyed = self ? lock(30, -30) : lock(17, -24); n.inner.append(n.keyed); }
  if (!keyed && n.keyed) { n.keyed.remove(); n.keyed = null; }
}

function drawGraph(s) {
  const linked = s.peers.filter((p) => p.state === "linked");
  $("peer-count").textContent = linked.length === 1 ? "· 1 peer linked" : `· ${linked.length} peers linked`;
  // This node in the middle.
  let me = graph.nodes.get(s.self.id);
  if (!me) { me = makeNode(s.self.id, true); graph.nodes.set(s.self.id, me); me.g.setAttribute("transform", `translate(${CX},${CY})`); }
  updateNode(me, s.self.name, "this node", "n-self", s.self.keyed, `${s.self.name}\n${s.self.id}\n${(s.self.addrs || []).join(" ")}`, true);
  // Peers on an ellipse around it, in name order.
  const rx = 270, ry = 150, live = new Set([s.self.id]);
  linked.forEach((p, i) => {
    live.add(p.id);
    // Two peers sit left and right; three or more start at the top.
    const a = (linked.length <= 2 ? 0 : -Math.PI / 2) + (2 * Math.PI * i) / Math.max(linked.length, 1);
    const x = CX + rx * Math.cos(a), y = CY + ry * Math.sin(a);
    let n = graph.nodes.get(p.id);
    if (!n) {
      n = makeNode(p.id, false);
      n.g.classList.add("entering");
      setTimeout(() => n.g.classList.remove("entering"), 700);
      graph.nodes.set(p.id, n);
    } else if (n.g.classList.contains("leaving")) {
      n.g.classList.remove("leaving");
    }
    const inst = graph.instances.get(p.id);
    if (inst && inst !== p.instance) {
      n.g.classList.remove("restarted");
      void n.g.getBoundingClientRect(); // restart the animation
      n.g.classList.add("restarted");
    }
    graph.instances.set(p.id, p.instance);
    n.g.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)})`);
    n.x = x; n.y = y;
    updateNode(n, p.name, p.found, foundClass(p), p.keyed, `${p.name}\n${p.id}\n${where(p)}\nfound by ${p.found}`);
    let e = graph.edges.get(p.id);
    if (!e) {
      e = { g: sv("g", { class: "link", "data-peer": p.id }) };
      e.line = sv("line", { class: "edge" });
      e.bg = sv("rect", { class: "edge-label-bg", rx: 4, height: 16 });
      e.label = sv("text", { class: "edge-label" });
      e.g.append(e.line, e.bg, e.label);
      graph.layers.edges.append(e.g);
      graph.edges.set(p.id, e);
    }
    e.line.setAttribute("x1", CX); e.line.setAttribute("y1", CY);
    e.line.setAttribute("x2", x.toFixed(1)); e.line.setAttribute("y2", y.toFixed(1));
    e.line.style.strokeWidth = (1.5 + Math.min(5, Math.log2(1 + p.msgs_per_s))).toFixed(2);
    const mx = CX + (x - CX) * 0.5, my = CY + (y - CY) * 0.5;
    e.label.textContent = `${fmtMs(p.rtt_ms)} · ${fmtRate(p.msgs_per_s)} msg/s`;
    e.label.setAttribute("x", mx.toFixed(1)); e.label.setAttribute("y", (my + 4).toFixed(1));
    const w = e.label.textContent.length * 6.2 + 10;
    e.bg.setAttribute("x", (mx - w / 2).toFixed(1)); e.bg.setAttribute("y", (my - 8).toFixed(1));
    e.bg.setAttribute("width", w.toFixed(1));
  });
  // Those gone fade out, then go.
  for (const [id, n] of graph.nodes) {
    if (live.has(id) || n.g.classList.contains("leaving")) continue;
    n.g.classList.add("leaving");
    const e = graph.edges.get(id);
    if (e) { e.g.remove(); graph.edges.delete(id); }
    setTimeout(() => {
      if (n.g.classList.contains("leaving")) { n.g.remove(); graph.nodes.delete(id); graph.instances.delete(id); }
    }, 500);
  }
}

function cell(tr, text, cls, title) {
  const td = el("td", cls, text);
  if (title) td.title = title;
  tr.append(td);
}

function drawPeers(s) {
  const body = $("peers").tBodies[0];
  const rows = [];
  for (const p of s.peers) {
    const tr = el("tr", p.state === "linked" ? "" : "unlinked");
    tr.dataset.id = p.id;
    cell(tr, p.name, "name", p.name);
    cell(tr, p.id.slice(0, 8), "mono", p.id);
    cell(tr, where(p), p.site ? "site" : "mono");
    cell(tr, p.state, "state-" + p.state);
    cell(tr, p.found);
    cell(tr, p.cablecar ? "no (cable_car)" : p.state !== "linked" ? "–" : p.keyed ? "yes" : "no");
    cell(tr, fmtMs(p.rtt_ms), "num", p.rttvar_ms > 0 ? `± ${fmtMs(p.rttvar_ms)}` : "");
    cell(tr, String(p.msgs_in), "num");
    cell(tr, String(p.msgs_out), "num");
    cell(tr, fmtBytes(p.bytes_in), "num");
    cell(tr, fmtBytes(p.bytes_out), "num");
    cell(tr, p.state === "linked" ? fmtRate(p.msgs_per_s) : "–", "num");
    cell(tr, fmtAgo(p.last_heard, s.time), "num");
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $("peers-empty").hidden = s.peers.length > 0;
}

function drawTimeline(s) {
  const items = s.events.slice().reverse().map((e) => {
    const li = el("li", "ev ev-" + e.kind);
    li.append(el("span", "ev-time mono", fmtTime(e.time)), el("span", "ev-kind", e.kind), el("span", "ev-name", e.name));
    if (e.reason) li.append(el("span", "ev-reason dim", e.reason));
    li.title = `${e.name}\n${e.id}${e.addr ? "\n" + e.addr : ""}${e.site ? "\nsite " + e.site : ""}`;
    return li;
  });
  $("timeline").replaceChildren(...items);
  $("timeline-empty").hidden = items.length > 0;
}

function drawTraffic(s) {
  const rows = s.traffic.types.map((t) => {
    const tr = el("tr");
    cell(tr, t.type || "(unnamed)", "mono");
    cell(tr, String(t.msgs_in), "num", fmtBytes(t.bytes_in));
    cell(tr, String(t.msgs_out), "num", fmtBytes(t.bytes_out));
    cell(tr, fmtRate(t.msgs_per_s), "num");
    cell(tr, fmtBytes(t.bytes_per_s) + "/s", "num");
    return tr;
  });
  $("traffic").tBodies[0].replaceChildren(...rows);
  $("traffic").hidden = rows.length === 0;
  $("traffic-note").textContent = !s.traffic.on
    ? "The traffic log is off; start it (lanmesh web --traffic, or web.Options.Traffic) to count messages by type."
    : rows.length === 0 ? "The traffic log is on; no message yet." : "";
}

function spark(f) {
  const w = 150, h = 36, svg = sv("svg", { viewBox: `0 0 ${w} ${h}`, class: "spark" });
  const vals = f.values;
  const top = f.max > 0 ? f.max : Math.max(1e-9, ...vals) * 1.1;
  const pts = vals.map((v, i) => {
    const x = vals.length > 1 ? (i * w) / (vals.length - 1) : w;
    const y = h - 2 - (Math.min(v, top) / top) * (h - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  if (pts.length) {
    svg.append(sv("polygon", { points: `0,${h} ${pts.join(" ")} ${w},${h}`, class: "spark-fill" }));
    svg.append(sv("polyline", { points: pts.join(" "), class: "spark-line" }));
  }
  return svg;
}

function drawCharts(s) {
  $("charts-card").hidden = s.charts.length === 0;
  const cards = s.charts.map((c) => {
    const box = el("div", c.self ? "machine self" : "machine");
    box.append(el("h3", "", c.name + (c.self ? " (this machine)" : "")));
    for (const f of c.figures) {
      const row = el("div", "figure");
      const last = f.values.length ? f.values[f.values.length - 1] : 0;
      const v = f.unit === "B" ? fmtBytes(last) : last.toFixed(f.unit === "%" || f.unit === "°C" ? 1 : 2) + (f.unit ? " " + f.unit : "");
      row.append(el("span", "fig-name", f.name), spark(f), el("span", "fig-value num", v));
      box.append(row);
    }
    return box;
  });
  $("charts").replaceChildren(...cards);
}

function draw(s) {
  $("self-name").textContent = s.self.name;
  $("self-id").textContent = s.self.id.slice(0, 8);
  $("self-id").title = s.self.id;
  $("self-addrs").textContent = (s.self.addrs || []).join(" ");
  $("self-keyed").textContent = s.self.keyed ? "keyed" : "no key";
  $("self-keyed").className = "badge " + (s.self.keyed ? "on" : "off");
  drawGraph(s);
  drawPeers(s);
  drawTimeline(s);
  drawTraffic(s);
  drawCharts(s);
}

function status(text, cls) {
  $("status").textContent = text;
  $("status-dot").className = "dot " + cls;
}

// connect opens the event stream. The browser retries a broken stream by
// itself; a stream it gave up on (the server answered with an error) is
// opened again after 2 s.
function connect() {
  const es = new EventSource("/events");
  es.addEventListener("state", (m) => {
    const s = JSON.parse(m.data);
    draw(s);
    status("live · " + fmtTime(s.time), "live");
  });
  es.onerror = () => {
    status("reconnecting…", "down");
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

setupGraph();
connect();
