// arbstream gateway page: one WebSocket to /ws, the market kept as keyed state, and
// the DOM rendered from that state at most ~10 times a second. Messages only update
// state (cheap), so thousands per second cost little; rows are reused by key and a
// cell is written only when its text changes. All data goes in via textContent.
'use strict';
(() => {
  const WINDOW_MS = 300000;            // sparkline and chart span, on the market clock
  const MAX_POINTS = 600;              // history points kept per pair
  const BUCKET_MS = WINDOW_MS / MAX_POINTS; // one point per bucket: 5 min fit in ~600
  const RENDER_EVERY_MS = 100;         // at most ~10 renders a second
  const SPARK_W = 160, SPARK_H = 28;
  const DASH = '—';
  const $ = (id) => document.getElementById(id);

  // ---- state (what the gateway has told us) ----------------------------------------
  const S = {
    spreads: new Map(), basis: new Map(), signals: new Map(),
    quotes: new Map(),      // "instrument|venue" -> quote
    venueQuote: new Map(),  // venue -> latest quote of any instrument
    venues: [],             // latest venues message
    levels: [],             // the config's price levels (levels message)
    crosses: [],            // the last level crosses, newest first: [key, record]
    alerts: null,           // latest alerts message (null: the gateway reads no Alertmanager)
    hist: new Map(),        // spread key -> {t: [], v: [], m: []}
    clocks: new Map(),      // instrument -> newest ts seen (the market clock)
    maxClock: -Infinity,
    selected: null, msgs: 0, lastWall: null, rate: 0, rateBase: 0,
  };
  const dirtySpark = new Set();
  let chartDirty = true, chartEnd = 0, inSnapshot = false;

  // ---- formatting ---------------------------------------------------------------------
  const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nf2 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const num = (v) => typeof v === 'number' && Number.isFinite(v);
  const fix = (v, d) => (num(v) ? v.toFixed(d) : DASH);
  const bps = (v) => (num(v) ? v.toFixed(1) + ' bps' : DASH);
  const pct = (v, d) => (num(v) ? (v * 100).toFixed(d) + '%' : DASH);
  // Quotes are in the venue's own currency/unit: CNY/kg needs fewer decimals than USD/oz.
  const px = (v) => (num(v) ? v.toFixed(Math.abs(v) >= 1000 ? 2 : 4) : DASH);
  const usd = (v) => (num(v) ? (v < 0 ? '-$' : '$') + (Math.abs(v) >= 100 ? nf0 : nf2).format(Math.abs(v)) : DASH);
  const utc = (ts) => (num(ts) && Math.abs(ts) < 8.64e15 ? new Date(ts).toISOString().slice(11, 19) : DASH);
  function age(ms) {
    if (!num(ms)) return DASH;
    const s = Math.max(0, ms) / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  const byKey = (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

  // ---- DOM helpers ----------------------------------------------------------------------
  // Cache the last text/attribute on the element: comparing a property is cheaper than
  // reading textContent, and unchanged cells are never touched.
  function set(el, text) {
    if (el._t !== text) { el._t = text; el.textContent = text; }
  }
  function attr(el, name, value) {
    const v = value == null ? '' : String(value);
    const k = '_a_' + name;
    if (el[k] !== v) { el[k] = v; el.setAttribute(name, v); }
  }
  const sign = (el, v) => attr(el, 'data-sign', num(v) && v !== 0 ? (v > 0 ? 'pos' : 'neg') : '');

  const COLS = {
    venues: ['venue', 'instrument', 'status', 'age', 'bid', 'ask'],
    spreads: ['pair', 'instrument', 'spread', 'bps', 'z60', 'z300', 'ts', 'spark'],
    arbs: ['route', 'instrument', 'net', 'bps', 'size', 'edge', 'age'],
    signals: ['kind', 'instrument', 'subject', 'figure', 'since'],
    basis: ['pair', 'instrument', 'basis', 'bps', 'days', 'lease', 'ts'],
    crosses: ['ts', 'instrument', 'name', 'venue', 'direction', 'mid'],
    alerts: ['severity', 'name', 'subject', 'summary', 'since'],
  };
  const MAX_CROSSES = 20;
  const EMPTY = {
    venues: 'no venues yet', spreads: 'no spreads yet', arbs: 'no open arbitrage',
    signals: 'no other open signals', basis: 'no basis yet', crosses: 'no level crossed yet',
    alerts: 'no alert firing',
  };
  const tables = {};
  for (const [name, cols] of Object.entries(COLS)) {
    const el = $(name);
    const body = el.tBodies[0] || el.appendChild(document.createElement('tbody'));
    tables[name] = { name, cols, body, rows: new Map(), empty: null };
  }

  function newRow(t, key, init) {
    const tr = document.createElement('tr');
    tr._c = {};
    for (const c of t.cols) { const td = tr.insertCell(); td.className = c; tr._c[c] = td; }
    if (init) init(tr, key); else tr.setAttribute('data-key', key);
    return tr;
  }

  // Make t's tbody hold exactly the rows of `entries` ([key, value], in order), reusing
  // rows by key, moving only those out of place, and an empty-state row when none.
  function sync(t, entries, update, init) {
    const body = t.body;
    if (!entries.length) {
      for (const tr of t.rows.values()) tr.remove();
      t.rows.clear();
      if (!t.empty) {
        t.empty = document.createElement('tr');
        t.empty.className = 'empty';
        const td = t.empty.insertCell();
        td.colSpan = t.cols.length;
        td.textContent = EMPTY[t.name];
      }
      if (t.empty.parentNode !== body) body.appendChild(t.empty);
      return;
    }
    if (t.empty && t.empty.parentNode) t.empty.remove();
    const seen = new Set();
    let cursor = body.firstElementChild;
    for (const [key, value] of entries) {
      let tr = t.rows.get(key);
      if (!tr) { tr = newRow(t, key, init); t.rows.set(key, tr); }
      update(tr, value, key);
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else body.insertBefore(tr, cursor); // rows that go end up after the cursor
      seen.add(key);
    }
    for (const [key, tr] of t.rows) if (!seen.has(key)) { tr.remove(); t.rows.delete(key); }
  }

  // ---- row updates ------------------------------------------------------------------------
  function updVenue(tr, v) {
    const c = tr._c;
    set(c.venue, String(v.venue ?? DASH));
    set(c.instrument, v.instrument == null ? DASH : String(v.instrument));
    set(c.status, String(v.status ?? DASH));
    attr(c.status, 'data-status', v.status);
    attr(tr, 'data-status', v.status);
    set(c.age, age(v.age_ms));
    const q = v.instrument != null ? S.quotes.get(v.instrument + '|' + v.venue) : S.venueQuote.get(v.venue);
    set(c.bid, q ? px(q.bid) : DASH);
    set(c.ask, q ? px(q.ask) : DASH);
    const unit = q && (q.currency || q.unit) ? [q.currency, q.unit].filter(Boolean).join(' / ') : '';
    attr(c.bid, 'title', unit);
    attr(c.ask, 'title', unit);
  }
  function initVenue(tr, key) {
    const [venue, instrument] = key.split('\u0000');
    tr.setAttribute('data-venue', venue);
    tr.setAttribute('data-instrument', instrument);
  }

  function zCell(td, win) {
    const z = win ? win.z : null;
    set(td, fix(z, 2));
    const hot = num(z) && Math.abs(z) >= 2;
    if (td._hot !== hot) { td._hot = hot; td.classList.toggle('hot', hot); }
  }
  function updSpread(tr, r, key) {
    const c = tr._c, w = r.windows || {};
    set(c.pair, `${r.a} / ${r.b}`);
    set(c.instrument, String(r.instrument ?? DASH));
    set(c.spread, fix(r.spread, 4));
    attr(c.spread, 'data-value', String(r.spread)); // the exact value, for tools and tests
    sign(c.spread, r.spread);
    set(c.bps, fix(r.spread_bps, 1));
    sign(c.bps, r.spread_bps);
    zCell(c.z60, w['60000']);
    zCell(c.z300, w['300000']);
    set(c.ts, utc(r.ts));
    const sel = key === S.selected;
    if (tr._sel !== sel) { tr._sel = sel; tr.classList.toggle('selected', sel); }
    const end = Math.max(S.clocks.get(r.instrument) ?? -Infinity, r.ts ?? -Infinity);
    // Redraw on a new point, or when the clock has moved the window noticeably.
    if (dirtySpark.has(key) || Math.abs(end - (tr._end ?? -Infinity)) > 2000) {
      tr._end = end;
      drawSpark(tr._spark, S.hist.get(key), end);
    }
  }
  function initSpread(tr, key) {
    tr.setAttribute('data-key', key);
    const cv = document.createElement('canvas');
    cv.style.width = SPARK_W + 'px';
    cv.style.height = SPARK_H + 'px';
    tr._c.spark.appendChild(cv);
    tr._spark = cv;
  }

  function updArb(tr, r) {
    const c = tr._c;
    set(c.route, `buy ${r.buy} → sell ${r.sell}`);
    set(c.instrument, String(r.instrument ?? DASH));
    set(c.net, fix(r.net, 4));
    set(c.bps, fix(r.net_bps, 1));
    set(c.size, num(r.size_oz) ? nf0.format(r.size_oz) : DASH);
    set(c.edge, usd(r.edge_usd));
    // "now" is the instrument's market clock, not the wall clock (replays run in the past)
    const now = S.clocks.get(r.instrument) ?? r.ts;
    set(c.age, num(r.opened_ts) && num(now) ? age(now - r.opened_ts) : DASH);
  }

  function updSignal(tr, r) {
    const c = tr._c;
    set(c.kind, String(r.kind ?? DASH));
    set(c.instrument, String(r.instrument ?? DASH));
    if (r.kind === 'basis') {
      set(c.subject, `${r.spot}>${r.future}`);
      set(c.figure, bps(r.basis_bps));
    } else {
      set(c.subject, String(r.venue ?? DASH));
      set(c.figure, r.kind === 'wide' ? bps(r.width_bps)
        : r.kind === 'delivery' ? pct(r.coverage, 1) + ' covered'
          : r.kind === 'halt' ? (typeof r.note === 'string' ? r.note : 'halted') : DASH);
    }
    set(c.since, utc(r.opened_ts ?? r.ts));
  }

  function updCross(tr, r) {
    const c = tr._c;
    set(c.ts, utc(r.ts));
    set(c.instrument, String(r.instrument ?? DASH));
    set(c.name, String(r.name ?? DASH));
    set(c.venue, String(r.venue ?? DASH));
    set(c.direction, r.direction === 'up' ? '↑ up' : r.direction === 'down' ? '↓ down' : DASH);
    attr(c.direction, 'data-dir', r.direction);
    set(c.mid, fix(r.mid, 2));
  }

  // An alert as the Alertmanager holds it (gateway/alerts.py); an inhibited one is shown
  // dimmed (another alert speaks for its cause), and so is one resolved a little while ago.
  function updAlert(tr, a) {
    const c = tr._c;
    const resolved = num(a.resolved_at);
    set(c.severity, String(a.severity ?? DASH));
    attr(tr, 'data-severity', a.severity);
    attr(tr, 'data-inhibited', a.inhibited ? 'yes' : '');
    attr(tr, 'data-state', resolved ? 'resolved' : a.inhibited ? 'inhibited' : 'firing');
    set(c.name, String(a.name ?? DASH).replace(/^Arbstream/, ''));
    const labels = a.labels && typeof a.labels === 'object' ? a.labels : {};
    set(c.subject, Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(' ') || DASH);
    const state = resolved ? `(resolved ${utc(a.resolved_at * 1000)}) ` : a.inhibited ? '(inhibited) ' : '';
    set(c.summary, state + String(a.summary ?? ''));
    attr(c.summary, 'title', a.runbook_url ? 'runbook: ' + a.runbook_url : '');
    const since = Date.parse(a.since);
    set(c.since, Number.isNaN(since) ? DASH : utc(since));
  }

  function renderAlerts() {
    const m = S.alerts;
    const panel = $('alerts-panel');
    if (m == null) { panel.hidden = true; return; }
    panel.hidden = false;
    attr(panel, 'data-ok', m.ok ? 'yes' : 'no');
    const held = Array.isArray(m.alerts) ? m.alerts : [];
    const resolved = Array.isArray(m.resolved) ? m.resolved : [];
    const firing = held.filter((a) => !a.inhibited).length;
    const more = [held.length > firing ? `${held.length - firing} inhibited` : '',
      resolved.length ? `${resolved.length} resolved lately` : ''].filter(Boolean);
    set($('alerts-source'), (m.ok
      ? `${firing} firing` : `Alertmanager not answering (${m.error}); as last seen:`)
      + (more.length ? ', ' + more.join(', ') : '') + ` · Alertmanager ${m.source}`);
    const key = (a) => a.name + '\u0000' + JSON.stringify(a.labels);
    sync(tables.alerts, [...held.map((a) => [key(a), a]), ...resolved.map((a) => ['r' + key(a), a])], updAlert);
  }

  function updBasis(tr, r) {
    const c = tr._c;
    set(c.pair, `${r.spot} / ${r.future}`);
    set(c.instrument, String(r.instrument ?? DASH));
    set(c.basis, fix(r.basis, 4));
    sign(c.basis, r.basis);
    set(c.bps, fix(r.basis_bps, 1));
    set(c.days, fix(r.days, 1));
    set(c.lease, pct(r.lease_rate, 1));
    set(c.ts, utc(r.ts));
  }

  // ---- canvases ---------------------------------------------------------------------------
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const C = {
    line: color('--c-accent', '#4fb3ff'), mean: color('--c-mean', '#f5b942'),
    grid: color('--c-grid', '#1f2a36'), text: color('--c-text', '#8a96a3'),
    level: color('--c-level', '#c77dff'),
  };

  // Size the backing store for the device pixel ratio; returns a context in CSS pixels.
  function prep(cv, w, h) {
    const dpr = window.devicePixelRatio || 1;
    const bw = Math.round(w * dpr), bh = Math.round(h * dpr);
    if (cv.width !== bw || cv.height !== bh) { cv.width = bw; cv.height = bh; }
    const ctx = cv.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return ctx;
  }
  // First index of h.t at or after `start` (binary search: t is ascending).
  function firstAt(t, start) {
    let lo = 0, hi = t.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (t[mid] < start) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function range(h, i0, withMean) {
    let lo = Infinity, hi = -Infinity;
    for (let i = i0; i < h.t.length; i++) {
      const v = h.v[i]; if (v < lo) lo = v; if (v > hi) hi = v;
      const m = h.m[i];
      if (withMean && m === m) { if (m < lo) lo = m; if (m > hi) hi = m; }
    }
    return [lo, hi];
  }
  function path(ctx, h, i0, series, x, y) {
    ctx.beginPath();
    let pen = false;
    for (let i = i0; i < h.t.length; i++) {
      const v = series[i];
      if (v !== v) { pen = false; continue; } // NaN: a gap (no window mean)
      if (pen) ctx.lineTo(x(h.t[i]), y(v)); else { ctx.moveTo(x(h.t[i]), y(v)); pen = true; }
    }
    ctx.stroke();
  }

  function drawSpark(cv, h, end) {
    const ctx = prep(cv, SPARK_W, SPARK_H);
    if (!h || !h.t.length) return;
    const start = end - WINDOW_MS, i0 = firstAt(h.t, start);
    if (i0 >= h.t.length) return;
    let [lo, hi] = range(h, i0, false);
    if (hi - lo < 1e-9) { lo -= 1e-3; hi += 1e-3; }
    const x = (t) => 1 + ((t - start) / WINDOW_MS) * (SPARK_W - 4);
    const y = (v) => SPARK_H - 2 - ((v - lo) / (hi - lo)) * (SPARK_H - 4);
    if (lo < 0 && hi > 0) {
      ctx.strokeStyle = C.grid; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(0, y(0)); ctx.lineTo(SPARK_W, y(0)); ctx.stroke();
    }
    ctx.strokeStyle = C.line; ctx.lineWidth = 1.2;
    path(ctx, h, i0, h.v, x, y);
    const n = h.t.length - 1;
    ctx.fillStyle = C.line;
    ctx.fillRect(x(h.t[n]) - 1.5, y(h.v[n]) - 1.5, 3, 3);
  }

  function drawChart() {
    chartDirty = false;
    const cv = $('chart'), W = cv.clientWidth, H = cv.clientHeight;
    const key = S.selected, r = key != null ? S.spreads.get(key) : null;
    set($('chart-title'), r ? `${r.a} / ${r.b} · ${r.instrument}` : 'no pair selected');
    set($('chart-last'), r ? `${fix(r.spread, 4)} USD/oz · ${fix(r.spread_bps, 1)} bps` : '');
    if (!W || !H) return;
    const ctx = prep(cv, W, H);
    ctx.font = '11px ui-monospace, Menlo, Consolas, monospace';
    ctx.textBaseline = 'middle';
    const h = key != null ? S.hist.get(key) : null;
    if (!r || !h || !h.t.length) {
      ctx.fillStyle = C.text; ctx.fillText('waiting for data…', 12, H / 2); return;
    }
    const end = chartEnd = Math.max(S.clocks.get(r.instrument) ?? -Infinity, h.t[h.t.length - 1]);
    const start = end - WINDOW_MS, i0 = firstAt(h.t, start);
    if (i0 >= h.t.length) { ctx.fillStyle = C.text; ctx.fillText('no data in the last 5 min', 12, H / 2); return; }
    const [dmin, dmax] = range(h, i0, true);
    const pad = (dmax - dmin) * 0.08 || Math.max(Math.abs(dmax) * 0.001, 1e-3);
    const lo = dmin - pad, hi = dmax + pad;
    const L = 6, R = W - 84, T = 8, B = H - 20; // right margin for value labels
    const x = (t) => L + ((t - start) / WINDOW_MS) * (R - L);
    const y = (v) => B - ((v - lo) / (hi - lo)) * (B - T);
    // grid: one vertical line a minute (market time), four horizontal bands
    ctx.strokeStyle = C.grid; ctx.lineWidth = 1;
    ctx.beginPath();
    for (let t = Math.ceil(start / 60000) * 60000; t <= end; t += 60000) {
      ctx.moveTo(Math.round(x(t)) + 0.5, T); ctx.lineTo(Math.round(x(t)) + 0.5, B);
    }
    for (let k = 0; k <= 4; k++) {
      const yy = Math.round(T + (k * (B - T)) / 4) + 0.5; ctx.moveTo(L, yy); ctx.lineTo(R, yy);
    }
    ctx.stroke();
    if (lo < 0 && hi > 0) {
      ctx.strokeStyle = C.text; ctx.setLineDash([2, 3]);
      ctx.beginPath(); ctx.moveTo(L, y(0)); ctx.lineTo(R, y(0)); ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = C.mean; ctx.setLineDash([5, 4]);
    path(ctx, h, i0, h.m, x, y);
    ctx.setLineDash([]);
    ctx.strokeStyle = C.line;
    path(ctx, h, i0, h.v, x, y);
    // labels: data max/min at their heights, last value, time span along the bottom
    ctx.fillStyle = C.text; ctx.textAlign = 'left';
    ctx.fillText('max ' + dmax.toFixed(4), R + 6, Math.max(T + 4, y(dmax)));
    ctx.fillText('min ' + dmin.toFixed(4), R + 6, Math.min(B - 4, y(dmin)));
    const n = h.t.length - 1;
    ctx.fillStyle = C.line;
    ctx.fillRect(x(h.t[n]) - 2, y(h.v[n]) - 2, 4, 4);
    ctx.fillStyle = C.text; ctx.textBaseline = 'alphabetic';
    ctx.fillText(utc(start), L, H - 5);
    ctx.textAlign = 'center'; ctx.fillText('← 5 min →', (L + R) / 2, H - 5);
    ctx.textAlign = 'right'; ctx.fillText(utc(end), R, H - 5);
    ctx.textAlign = 'left';
  }

  // The selected pair's two mids over the last 5 minutes, and every configured level of
  // its instrument that lies within reach of them (10% around) as a dashed line.
  function drawPrices() {
    const cv = $('prices'), W = cv.clientWidth, H = cv.clientHeight;
    const key = S.selected, r = key != null ? S.spreads.get(key) : null;
    set($('prices-title'), r ? `${r.a} / ${r.b} · ${r.instrument} prices` : 'prices');
    const levels = r ? S.levels.filter((l) => l.instrument === r.instrument) : [];
    const h = key != null ? S.hist.get(key) : null;
    if (!W || !H) return;
    const ctx = prep(cv, W, H);
    ctx.font = '11px ui-monospace, Menlo, Consolas, monospace';
    ctx.textBaseline = 'middle';
    if (!r || !h || !h.t.length) {
      attr(cv, 'data-levels', '');
      ctx.fillStyle = C.text; ctx.fillText('waiting for data…', 12, H / 2); return;
    }
    const end = Math.max(S.clocks.get(r.instrument) ?? -Infinity, h.t[h.t.length - 1]);
    const start = end - WINDOW_MS, i0 = firstAt(h.t, start);
    if (i0 >= h.t.length) return;
    let lo = Infinity, hi = -Infinity;
    for (let i = i0; i < h.t.length; i++) {
      for (const v of [h.a[i], h.b[i]]) if (v === v) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    const mid = (lo + hi) / 2;
    const shown = levels.filter((l) => Math.abs(l.price - mid) <= 0.1 * Math.abs(mid));
    for (const l of shown) { lo = Math.min(lo, l.price - l.band_usd); hi = Math.max(hi, l.price + l.band_usd); }
    const pad = (hi - lo) * 0.08 || 1;
    lo -= pad; hi += pad;
    const L = 6, R = W - 120, T = 8, B = H - 8;
    const x = (t) => L + ((t - start) / WINDOW_MS) * (R - L);
    const y = (v) => B - ((v - lo) / (hi - lo)) * (B - T);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = C.line; path(ctx, h, i0, h.a, x, y);
    ctx.strokeStyle = C.mean; path(ctx, h, i0, h.b, x, y);
    ctx.strokeStyle = C.level; ctx.fillStyle = C.level; ctx.lineWidth = 1; ctx.setLineDash([6, 4]);
    for (const l of shown) {
      ctx.beginPath(); ctx.moveTo(L, y(l.price)); ctx.lineTo(R, y(l.price)); ctx.stroke();
      ctx.fillText(`${l.name} ${l.price.toFixed(2)}`, R + 6, y(l.price));
    }
    ctx.setLineDash([]);
    // which levels are drawn: for tools and tests (a canvas has no DOM to read)
    attr(cv, 'data-levels', shown.map((l) => l.name).join(','));
  }

  // ---- rendering ---------------------------------------------------------------------------
  let pending = false, lastRender = 0;
  function schedule() {
    if (pending) return;
    pending = true;
    const wait = Math.max(0, RENDER_EVERY_MS - (performance.now() - lastRender));
    setTimeout(() => requestAnimationFrame(render), wait);
  }

  function render() {
    pending = false;
    lastRender = performance.now();
    set($('msgs'), nf0.format(S.msgs));
    set($('rate'), nf0.format(S.rate));
    set($('last'), S.lastWall == null ? DASH : utc(S.lastWall));
    set($('clock'), utc(S.maxClock));
    if (inSnapshot) return; // the snapshot replaces the tables in one go when it ends
    sync(tables.venues, S.venues.map((v) => [v.venue + '\u0000' + (v.instrument ?? ''), v]), updVenue, initVenue);
    sync(tables.spreads, [...S.spreads].sort(byKey), updSpread, initSpread);
    dirtySpark.clear();
    const arbs = [], others = [];
    for (const e of S.signals) (e[1].kind === 'arb' ? arbs : others).push(e);
    arbs.sort((a, b) => (b[1].net_bps ?? -Infinity) - (a[1].net_bps ?? -Infinity) || byKey(a, b));
    sync(tables.arbs, arbs, updArb);
    sync(tables.signals, others.sort(byKey), updSignal);
    sync(tables.basis, [...S.basis].sort(byKey), updBasis);
    sync(tables.crosses, S.crosses, updCross);
    renderAlerts();
    const r = S.selected != null ? S.spreads.get(S.selected) : null;
    if (chartDirty || (r && Math.abs((S.clocks.get(r.instrument) ?? chartEnd) - chartEnd) > 1000)) {
      drawChart();
      drawPrices();
    }
  }

  // ---- messages ----------------------------------------------------------------------------
  function pushHist(key, r) {
    if (!num(r.ts) || !num(r.spread)) return;
    let h = S.hist.get(key);
    if (!h) S.hist.set(key, (h = { t: [], v: [], m: [], a: [], b: [] }));
    // After a reconnect to a replay that restarted earlier, forget the "future".
    while (h.t.length && h.t[h.t.length - 1] > r.ts) { h.t.pop(); h.v.pop(); h.m.pop(); h.a.pop(); h.b.pop(); }
    const am = num(r.a_mid) ? r.a_mid : NaN, bm = num(r.b_mid) ? r.b_mid : NaN;
    const w = r.windows && r.windows['60000'];
    const mean = w && num(w.mean) ? w.mean : NaN;
    const n = h.t.length;
    // One point per bucket (the latest wins): 5 min of a busy pair still fits ~600 points.
    if (n && Math.floor(h.t[n - 1] / BUCKET_MS) === Math.floor(r.ts / BUCKET_MS)) {
      h.t[n - 1] = r.ts; h.v[n - 1] = r.spread; h.m[n - 1] = mean; h.a[n - 1] = am; h.b[n - 1] = bm;
    } else {
      h.t.push(r.ts); h.v.push(r.spread); h.m.push(mean); h.a.push(am); h.b.push(bm);
    }
    // Trim in batches (every ~10 s of market time), not one shift per message.
    if (h.t.length > MAX_POINTS + 20 || h.t[0] < r.ts - WINDOW_MS - 10000) {
      const drop = Math.max(h.t.length - MAX_POINTS, firstAt(h.t, r.ts - WINDOW_MS));
      for (const s of [h.t, h.v, h.m, h.a, h.b]) s.splice(0, drop);
    }
    dirtySpark.add(key);
  }

  function onRecord(key, r) {
    const inst = r.instrument;
    if (num(r.ts) && typeof inst === 'string') {
      if (!(S.clocks.get(inst) >= r.ts)) S.clocks.set(inst, r.ts);
      if (r.ts > S.maxClock) S.maxClock = r.ts;
    }
    switch (r.type) {
      case 'quote':
        S.quotes.set(inst + '|' + r.venue, r);
        S.venueQuote.set(r.venue, r);
        break;
      case 'spread': {
        const k = key ?? `${inst}|${r.a}|${r.b}`;
        S.spreads.set(k, r);
        pushHist(k, r);
        if (S.selected == null) S.selected = k; // default: the first pair seen
        if (k === S.selected) chartDirty = true;
        break;
      }
      case 'basis':
        S.basis.set(key ?? `${inst}|${r.spot}|${r.future}`, r);
        break;
      case 'signal': {
        if (r.kind === 'level') { // a cross is an event, not a state: the last few, newest first
          const k = (key ?? `${inst}|level|${r.name}`) + '#' + String(r.seq ?? r.ts);
          if (!S.crosses.some((e) => e[0] === k)) {
            S.crosses.unshift([k, r]);
            S.crosses.sort((p, q) => (q[1].ts ?? 0) - (p[1].ts ?? 0));
            S.crosses.length = Math.min(S.crosses.length, MAX_CROSSES);
          }
          break;
        }
        const subject = r.kind === 'arb' ? `${r.buy}>${r.sell}`
          : r.kind === 'basis' ? `${r.spot}>${r.future}` : r.venue;
        const k = key ?? `${inst}|${r.kind}|${subject}`;
        if (r.event === 'close') S.signals.delete(k); else S.signals.set(k, r);
        break;
      }
    }
  }

  function beginSnapshot() {
    inSnapshot = true;
    for (const m of [S.spreads, S.basis, S.signals, S.quotes, S.venueQuote, S.clocks]) m.clear();
    S.venues = [];
    S.maxClock = -Infinity;
    // Sparkline history is kept across reconnects (pushHist drops any "future" points).
  }
  function endSnapshot() {
    inSnapshot = false;
    attempt = 0; // a full snapshot arrived: the connection works, so reset the backoff
    for (const k of [...S.hist.keys()]) if (!S.spreads.has(k)) S.hist.delete(k);
    if (S.selected == null || !S.spreads.has(S.selected)) {
      S.selected = S.spreads.size ? [...S.spreads.keys()].sort()[0] : null;
    }
    for (const k of S.spreads.keys()) dirtySpark.add(k);
    chartDirty = true;
  }

  function onMessage(ev) {
    S.msgs++;
    S.lastWall = Date.now();
    if (typeof ev.data !== 'string') return;
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    if (!m || typeof m !== 'object') return;
    if (m.record && typeof m.record === 'object') onRecord(m.key ?? null, m.record);
    else if (m.type === 'snapshot') { if (m.phase === 'begin') beginSnapshot(); else if (m.phase === 'end') endSnapshot(); }
    else if (m.type === 'venues') { if (Array.isArray(m.venues)) S.venues = m.venues; }
    else if (m.type === 'levels') {
      if (Array.isArray(m.levels)) S.levels = m.levels.filter((l) => l && num(l.price));
      chartDirty = true;
    }
    else if (m.type === 'alerts') S.alerts = m;
    else if (m.type === 'error') flash('gateway error: ' + String(m.error));
    schedule();
  }

  // ---- status line ---------------------------------------------------------------------------
  let flashTimer = 0;
  function flash(text, ms = 8000) {
    $('status').textContent = text;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { $('status').textContent = ''; }, ms);
  }

  // ---- connection --------------------------------------------------------------------------
  const LABEL = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', 'signed-out': 'signed out' };
  let ws = null, attempt = 0, retryTimer = 0;
  function setConn(state) {
    const el = $('conn');
    el.setAttribute('data-state', state);
    el.textContent = LABEL[state];
    document.body.classList.toggle('disconnected', state !== 'live');
  }

  function connect() {
    retryTimer = 0;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    let sock;
    try { sock = new WebSocket(url); } catch (e) { flash('cannot connect: ' + e.message); retry(); return; }
    ws = sock;
    sock.onopen = () => {
      setConn('live');
      sock.send(JSON.stringify({ op: 'subscribe', filters: {} }));
    };
    sock.onmessage = onMessage;
    sock.onerror = () => {}; // a close event always follows; reconnecting happens there
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      inSnapshot = false; // show whatever arrived, dimmed
      if (ev.code === 1008) { location.reload(); return; } // token revoked: sign in again
      if (ev.code === 1013) flash(`evicted by the gateway (${ev.reason || 'too slow'}); reconnecting`, 15000);
      else if (ev.code !== 1006 && ev.code !== 1000) flash(`connection closed: ${ev.code}${ev.reason ? ' ' + ev.reason : ''}`);
      retry();
    };
  }

  // Exponential backoff 0.5 s → 5 s with ±25 % jitter, so many pages don't reconnect in step.
  function retry() {
    setConn('reconnecting');
    schedule();
    if (retryTimer) return;
    const base = Math.min(5000, 500 * 2 ** attempt++);
    const delay = Math.min(5000, Math.max(500, base * (0.75 + Math.random() * 0.5)));
    retryTimer = setTimeout(reconnect, delay);
  }

  // ---- sign-in (a gateway with tokens: docs/gateway.md) ------------------------------------
  // GET /session: 200 {"auth": "none"} (an open gateway) or {"auth": "token", "client"}
  // (signed in), 401 otherwise. The session is an HttpOnly cookie: the page never holds
  // the token beyond the sign-in request.
  let tokens = false, started = false;
  async function session() {
    const r = await fetch('/session', { credentials: 'same-origin', cache: 'no-store' });
    return { status: r.status, body: await r.json().catch(() => ({})) };
  }

  async function reconnect() {
    retryTimer = 0;
    if (!started) { start(); return; }
    if (tokens) {
      try {
        if ((await session()).status === 401) { location.reload(); return; } // signed out
      } catch { retry(); return; } // the gateway is away: try again later
    }
    connect();
  }

  async function start() {
    let s;
    try { s = await session(); } catch { retry(); return; }
    started = true;
    tokens = s.body.auth === 'token';
    if (s.status === 401) {
      $('signin').hidden = false;
      $('token').focus();
      setConn('signed-out');
      return;
    }
    if (tokens) {
      $('who').textContent = s.body.client;
      $('who').hidden = $('signout').hidden = false;
    }
    document.querySelector('main.grid').hidden = false;
    connect();
  }

  $('signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('token').value;
    $('token').value = '';
    let r;
    try {
      r = await fetch('/session', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
      });
    } catch (e) { $('signin-error').textContent = 'the gateway does not answer'; return; }
    if (r.ok) { location.reload(); return; }
    $('signin-error').textContent = r.status === 429
      ? 'too many failed attempts from here; wait a minute'
      : 'this token is not known to the gateway';
  });
  $('signout').addEventListener('click', async () => {
    try { await fetch('/session', { method: 'DELETE', credentials: 'same-origin' }); } catch { /* reload anyway */ }
    location.reload();
  });

  // ---- wiring ---------------------------------------------------------------------------------
  tables.spreads.body.addEventListener('click', (ev) => {
    const tr = ev.target.closest('tr[data-key]');
    if (!tr || tr.getAttribute('data-key') === S.selected) return;
    S.selected = tr.getAttribute('data-key');
    chartDirty = true;
    schedule();
  });
  new ResizeObserver(() => { chartDirty = true; schedule(); }).observe($('chart'));
  window.addEventListener('online', () => {
    if (retryTimer) { clearTimeout(retryTimer); reconnect(); }
  });
  setInterval(() => { S.rate = S.msgs - S.rateBase; S.rateBase = S.msgs; schedule(); }, 1000);

  setConn('connecting');
  schedule();
  start();
})();
