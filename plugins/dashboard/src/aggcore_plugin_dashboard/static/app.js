// aggcore dashboard: plain JavaScript, no build step. Reads /events (Server-Sent Events).
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const PALETTE = {
  binance: "#f0b90b", bybit: "#ff6b3d", okx: "#c9d1d9", cryptocom: "#2ec4c4", coinbase: "#3d7bff",
  kraken: "#9b6cff", bitstamp: "#4caf50",
};
const EXTRA = ["#e66a9c", "#4fc1c1", "#c18b4f", "#9ccc65", "#ff8a65", "#7986cb"];
const STATE_ORDER = { LIVE: 0, SYNCING: 1, RESYNCING: 2, STALE: 3, FAILED: 4 };

const S = {
  summaries: {}, health: {}, metrics: {}, history: {}, arbs: [], openArbs: {}, log: [],
  pair: params.get("pair"), depth: 10, historyS: 300, skew: 0, connected: false, lastMessage: 0,
};
let source = null;
let dirty = true;

function $(id) { return document.getElementById(id); }
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function exchangeOf(venue) { return String(venue).split(":")[0]; }
function colorOf(venue) {
  const ex = exchangeOf(venue);
  if (PALETTE[ex]) return PALETTE[ex];
  let h = 0;
  for (const c of ex) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return EXTRA[h % EXTRA.length];
}
function now() { return Date.now() / 1000 + S.skew; }
function fmtPrice(p, ref) {
  if (p === null || p === undefined) return "–";
  const a = Math.abs(ref === undefined || ref === null ? p : ref);
  const d = a >= 1000 ? 2 : a >= 1 ? 4 : 6;
  return p.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}
function fmtQty(q) {
  if (q === null || q === undefined) return "–";
  return q.toLocaleString("en-US", { maximumFractionDigits: q >= 100 ? 1 : 4 });
}
function fmtRate(r) { return r === null || r === undefined ? "–" : r >= 100 ? r.toFixed(0) : r.toFixed(1); }
function fmtAge(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  return Math.round(s / 60) + " min";
}
function fmtTime(ts) {
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString("en-GB", { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0").slice(0, 1);
}
function fmtDuration(ms) {
  if (!ms) return "–";
  return ms < 1000 ? Math.round(ms) + " ms" : ms < 60000 ? (ms / 1000).toFixed(1) + " s" : (ms / 60000).toFixed(1) + " min";
}

// -- the stream ---------------------------------------------------------------------------------------------
function connect() {
  if (source) source.close();
  source = new EventSource("events" + (TOKEN ? "?token=" + encodeURIComponent(TOKEN) : ""));
  source.onopen = () => setConnected(true);
  source.onerror = () => {
    setConnected(false);
    if (source.readyState === EventSource.CLOSED) { // refused (401/503): say why, retry ourselves
      explainRefusal();
      setTimeout(connect, 2000);
    }
  };
  const on = (name, fn) => source.addEventListener(name, (e) => {
    S.lastMessage = Date.now();
    if (!S.connected) setConnected(true);
    fn(JSON.parse(e.data));
    dirty = true;
  });
  on("hello", (h) => {
    // a new stream sends the whole state again: start from scratch (the server may have restarted)
    S.summaries = {}; S.health = {}; S.metrics = {}; S.history = {}; S.arbs = []; S.openArbs = {}; S.log = [];
    S.depth = h.depth; S.historyS = h.history_s; S.skew = h.server_time - Date.now() / 1000;
  });
  on("history", (h) => { S.history[h.symbol] = h.points; });
  on("summary", onSummary);
  on("health", (h) => { S.health[h.exchange] = h; });
  on("metrics", (m) => {
    S.metrics[m.exchange] = m;
    const h = S.health[m.exchange];
    if (h) { h.msg_rate = m.msg_rate; h.update_rate = m.update_rate; }
  });
  on("arb", onArb);
  on("log", (l) => { S.log.unshift(l); if (S.log.length > 200) S.log.pop(); });
  on("ping", () => {});
}

function explainRefusal() {
  fetch("events" + (TOKEN ? "?token=" + encodeURIComponent(TOKEN) : ""), { method: "GET" })
    .then((r) => {
      const why = r.status === 401 ? "a token is required or wrong: open this page as /?token=..."
        : r.status === 503 ? "too many dashboard pages are open" : null;
      if (r.body) r.body.cancel();
      if (why) $("lost").textContent = "aggcore refused this page: " + why + " (retrying)";
    })
    .catch(() => {});
}

function setConnected(ok) {
  S.connected = ok;
  if (ok) S.lastMessage = Date.now();
  document.body.classList.toggle("disconnected", !ok);
  $("lost").classList.toggle("hidden", ok);
  if (ok) $("lost").textContent = "Connection to aggcore lost: reconnecting…";
  const st = $("status");
  st.className = "status " + (ok ? "live" : "lost");
  st.textContent = ok ? "connected" : "connection lost";
}

function onSummary(s) {
  S.summaries[s.symbol] = s;
  let h = S.history[s.symbol];
  if (!h) h = S.history[s.symbol] = [];
  const last = h[h.length - 1];
  if (!last || s.ts - last[0] >= 0.25) h.push([s.ts, s.mid, s.spread]);
  else h[h.length - 1] = [last[0], s.mid, s.spread];
  const cutoff = s.ts - S.historyS;
  while (h.length && h[0][0] < cutoff) h.shift();
}

function onArb(a) {
  S.arbs.unshift(a);
  if (S.arbs.length > 200) S.arbs.pop();
  if (a.event === "closed") delete S.openArbs[a.key];
  else S.openArbs[a.key] = a;
}

// -- rendering ----------------------------------------------------------------------------------------------
function currentPair() {
  const pairs = Object.keys(S.summaries).sort();
  if (!S.pair || !(S.pair in S.summaries)) S.pair = pairs[0] || S.pair;
  return pairs;
}

function renderPicker(pairs) {
  const sel = $("pair");
  $("pair-label").classList.toggle("hidden", pairs.length < 2);
  const have = Array.from(sel.options).map((o) => o.value).join("|");
  if (have !== pairs.join("|")) {
    sel.textContent = "";
    for (const p of pairs) sel.appendChild(el("option", null, p)).value = p;
  }
  if (S.pair && sel.value !== S.pair) sel.value = S.pair;
}

function venueStatus(ex) {
  // health gives the state every health interval; a newer summary of the shown pair says at once
  // whether the venue is used, or why it is left out
  const h = S.health[ex];
  let state = h ? h.state : "SYNCING";
  let why = h ? (h.error || "") : "waiting for health";
  const s = S.summaries[S.pair];
  if (s && (!h || s.ts >= h.ts - 0.5)) {
    const used = s.venues.some((v) => exchangeOf(v) === ex);
    const key = Object.keys(s.excluded).find((v) => exchangeOf(v) === ex);
    if (used && !key) { state = "LIVE"; why = ""; }
    else if (key) {
      const reason = s.excluded[key];
      const m = /^book (\w+)/.exec(reason);
      state = m ? m[1] : reason.startsWith("stale") ? "STALE" : state;
      why = reason;
    }
  }
  return { state, why };
}

function venueAge(ex) {
  const s = S.summaries[S.pair];
  if (s) {
    const key = Object.keys(s.venue_age_ms).find((v) => exchangeOf(v) === ex);
    if (key !== undefined) return s.venue_age_ms[key] / 1000 + Math.max(0, now() - s.ts);
  }
  const h = S.health[ex];
  return h && h.last_update ? now() - h.last_update : null;
}

function renderTiles() {
  const names = new Set(Object.values(S.health).filter((h) => h.kind === "exchange").map((h) => h.exchange));
  for (const s of Object.values(S.summaries)) {
    for (const v of s.venues) names.add(exchangeOf(v));
    for (const v of Object.keys(s.excluded)) names.add(exchangeOf(v));
  }
  const box = $("tiles");
  const sorted = Array.from(names).sort();
  for (const ex of sorted) {
    let tile = box.querySelector(`.tile[data-venue="${CSS.escape(ex)}"]`);
    if (!tile) {
      tile = el("div", "tile");
      tile.dataset.venue = ex;
      tile.style.borderLeftColor = colorOf(ex);
      const name = el("div", "name");
      name.appendChild(el("span", "label", ex));
      name.appendChild(el("span", "state"));
      tile.appendChild(name);
      tile.appendChild(el("div", "why"));
      const stats = el("div", "stats");
      for (const k of ["msgs", "upds", "resyncs", "reconnects", "age"]) {
        const d = el("div", "stat " + k);
        d.appendChild(document.createTextNode({ msgs: "msg/s ", upds: "lvl/s ", resyncs: "resyncs ", reconnects: "reconn. ", age: "age " }[k]));
        d.appendChild(el("b", "v"));
        stats.appendChild(d);
      }
      tile.appendChild(stats);
      // keep tiles sorted by name
      const next = Array.from(box.children).find((t) => t.dataset.venue > ex);
      box.insertBefore(tile, next || null);
    }
    const { state, why } = venueStatus(ex);
    const badge = tile.querySelector(".state");
    badge.className = "state " + state;
    badge.textContent = state;
    tile.dataset.state = state;
    const w = tile.querySelector(".why");
    w.textContent = why;
    w.title = why;
    const h = S.health[ex] || {};
    const m = S.metrics[ex] || {};
    tile.querySelector(".msgs .v").textContent = fmtRate(m.msg_rate ?? h.msg_rate);
    tile.querySelector(".upds .v").textContent = fmtRate(m.update_rate ?? h.update_rate);
    tile.querySelector(".resyncs .v").textContent = h.resyncs ?? "–";
    tile.querySelector(".reconnects .v").textContent = h.reconnects ?? "–";
    tile.querySelector(".age .v").textContent = fmtAge(venueAge(ex));
  }
}

function ladderRow(side, level, maxQty) {
  const [price, qty, venue] = level;
  const tr = el("tr", "level " + side);
  tr.dataset.venue = exchangeOf(venue);
  const v = el("td", "venue", venue);
  v.style.borderLeftColor = colorOf(venue);
  v.style.color = colorOf(venue);
  tr.appendChild(v);
  tr.appendChild(el("td", "num qty", fmtQty(qty)));
  tr.appendChild(el("td", "num price", fmtPrice(price)));
  const barCell = el("td", "bar-col");
  const bar = el("div", "bar");
  bar.style.width = Math.max(2, (100 * qty) / maxQty) + "%";
  bar.style.background = colorOf(venue);
  barCell.appendChild(bar);
  tr.appendChild(barCell);
  return tr;
}

function renderLadder() {
  const s = S.summaries[S.pair];
  $("ladder-pair").textContent = S.pair || "";
  const asks = $("asks"), bids = $("bids");
  asks.textContent = ""; bids.textContent = "";
  if (!s) { $("top-quote").textContent = ""; return; }
  const maxQty = Math.max(1e-12, ...s.bids.map((l) => l[1]), ...s.asks.map((l) => l[1]));
  for (const l of s.asks.slice().reverse()) asks.appendChild(ladderRow("ask", l, maxQty));
  for (const l of s.bids) bids.appendChild(ladderRow("bid", l, maxQty));
  const bp = s.spread !== null && s.mid ? (1e4 * s.spread) / s.mid : null;
  $("spread-cell").textContent = s.mid === null ? "no live venue"
    : (s.crossed ? "CROSSED  " : "") + "spread " + fmtPrice(s.spread, s.mid) + (bp !== null ? ` (${bp.toFixed(2)} bp)` : "") + "   mid " + fmtPrice(s.mid);
  $("ladder").classList.toggle("crossed", !!s.crossed);
  $("crossed").classList.toggle("hidden", !s.crossed);
  $("ladder-stats").textContent = `${s.venues.length} venue${s.venues.length === 1 ? "" : "s"} used`;
  const ex = Object.entries(s.excluded);
  $("excluded").textContent = ex.length ? "left out: " + ex.map(([v, r]) => `${v} (${r})`).join("; ") : "";
  const tq = $("top-quote");
  tq.textContent = "";
  tq.appendChild(document.createTextNode(S.pair + "  bid"));
  tq.appendChild(el("b", null, fmtPrice(s.best_bid)));
  tq.appendChild(document.createTextNode("ask"));
  tq.appendChild(el("b", null, fmtPrice(s.best_ask)));
}

function renderChart() {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight || 220;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  $("chart-window").textContent = `up to the last ${Math.round(S.historyS / 60)} min`;
  const pts = (S.history[S.pair] || []).filter((p) => p[1] !== null);
  const styles = getComputedStyle(document.documentElement);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = styles.getPropertyValue("--dim");
  if (pts.length < 2) { ctx.fillText("collecting…", 10, 20); return; }
  const padL = 70, padR = 50, padT = 8, padB = 18;
  // the window grows from the first point up to history_s
  const t1 = now(), t0 = Math.max(t1 - S.historyS, Math.min(pts[0][0], t1 - 10));
  const x = (t) => padL + ((t - t0) / (t1 - t0)) * (w - padL - padR);
  const mids = pts.map((p) => p[1]);
  let lo = Math.min(...mids), hi = Math.max(...mids);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const ym = (v) => padT + (1 - (v - lo) / (hi - lo)) * (h - padT - padB);
  const bps = pts.map((p) => (p[2] !== null && p[1] ? (1e4 * p[2]) / p[1] : 0));
  const blo = Math.min(0, ...bps), bhi = Math.max(...bps, 0.1);
  const yb = (v) => padT + (1 - (v - blo) / (bhi - blo)) * (h - padT - padB);
  // grid and axes
  ctx.strokeStyle = styles.getPropertyValue("--line");
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = padT + (i / 4) * (h - padT - padB);
    ctx.beginPath(); ctx.moveTo(padL, y); ctx.lineTo(w - padR, y); ctx.stroke();
    ctx.fillText(fmtPrice(hi - (i / 4) * (hi - lo)), 2, y + 4);
    ctx.fillText((bhi - (i / 4) * (bhi - blo)).toFixed(1), w - padR + 4, y + 4);
  }
  const span = t1 - t0;
  const step = [5, 10, 15, 30, 60, 120, 300, 600].find((s) => span / s <= 6) || 900;
  for (let ago = 0; ago <= span; ago += step) {
    const label = ago === 0 ? "now" : ago < 120 ? `-${ago}s` : `-${(ago / 60).toFixed(ago % 60 ? 1 : 0)}m`;
    ctx.fillText(label, x(t1 - ago) - 10, h - 4);
  }
  ctx.lineWidth = 1.2;
  ctx.strokeStyle = styles.getPropertyValue("--warn");
  ctx.beginPath();
  pts.forEach((p, i) => { const px = x(p[0]), py = yb(bps[i]); i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
  ctx.stroke();
  ctx.lineWidth = 1.8;
  ctx.strokeStyle = styles.getPropertyValue("--accent");
  ctx.beginPath();
  pts.forEach((p, i) => { const px = x(p[0]), py = ym(p[1]); i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
  ctx.stroke();
}

function renderArbs() {
  const body = $("arb-feed");
  body.textContent = "";
  for (const a of S.arbs.slice(0, 60)) {
    const tr = el("tr", "arb " + a.event);
    tr.appendChild(el("td", null, fmtTime(a.ts)));
    const ev = el("td");
    ev.appendChild(el("span", "ev " + a.event, a.event));
    tr.appendChild(ev);
    tr.appendChild(el("td", null, a.symbol));
    const buy = el("td", null, `${a.buy_exchange} @ ${fmtPrice(a.buy_price)}`);
    buy.style.color = colorOf(a.buy_exchange);
    tr.appendChild(buy);
    const sell = el("td", null, `${a.sell_exchange} @ ${fmtPrice(a.sell_price)}`);
    sell.style.color = colorOf(a.sell_exchange);
    tr.appendChild(sell);
    const net = el("td", "num", a.profit_percentage.toFixed(3));
    if (a.buy_fee !== undefined) net.title = `taker fees: buy ${(100 * a.buy_fee).toFixed(3)} % + sell ${(100 * a.sell_fee).toFixed(3)} %`;
    tr.appendChild(el("td", "num", a.gross_spread_percentage !== undefined ? a.gross_spread_percentage.toFixed(3) : "–"));
    tr.appendChild(net);
    tr.appendChild(el("td", "num", fmtQty(a.volume)));
    tr.appendChild(el("td", "num", a.event === "opened" ? "–" : fmtDuration(a.duration_ms)));
    tr.appendChild(el("td", "num", a.event === "opened" ? "–" : a.peak_profit_percentage.toFixed(3)));
    body.appendChild(tr);
  }
  const n = Object.keys(S.openArbs).length;
  $("arb-open").textContent = n ? `${n} open` : "none open";
}

function renderLog() {
  const body = $("log-rows");
  body.textContent = "";
  if (!S.log.length) {
    const tr = el("tr");
    tr.appendChild(el("td", "lvl-info", "no resyncs or errors so far"));
    body.appendChild(tr);
    return;
  }
  for (const l of S.log.slice(0, 100)) {
    const tr = el("tr", "lvl-" + l.level);
    tr.appendChild(el("td", null, fmtTime(l.ts)));
    tr.appendChild(el("td", null, l.level));
    tr.appendChild(el("td", null, l.source));
    tr.appendChild(el("td", null, l.message));
    body.appendChild(tr);
  }
}

function render() {
  if (dirty) {
    dirty = false;
    const pairs = currentPair();
    renderPicker(pairs);
    renderLadder();
    renderArbs();
    renderLog();
  }
  renderTiles();
  renderChart();
}

// the stream sends a keepalive every 15 s: 25 s of silence means the connection is gone
setInterval(() => {
  if (S.connected && Date.now() - S.lastMessage > 25000) { setConnected(false); connect(); }
}, 5000);
$("pair").addEventListener("change", (e) => {
  S.pair = e.target.value;
  const u = new URL(location.href);
  u.searchParams.set("pair", S.pair);
  history.replaceState(null, "", u);
  dirty = true;
});
let last = 0;
function frame(t) {
  if (dirty || t - last > 500) { last = t; render(); }
  requestAnimationFrame(frame);
}
connect();
requestAnimationFrame(frame);
