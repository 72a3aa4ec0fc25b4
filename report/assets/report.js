// The report's drawing code: a canvas timeline, latency and throughput plots on one shared,
// zoomable time axis, drawn from the JSON in #report-data. User strings reach the DOM only
// through textContent.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var T = D.timeline, S = D.series, CEX = D.cex || [];
  var F = 7, N = T.ops.length / F;
  var COL = ['#3a9d5d', '#d64545', '#e8a33d'];
  var STATUS = ['ok', 'fail', 'info (unknown outcome)'];
  var FAULT = { partition: 'rgba(66,133,244,0.17)', kill: 'rgba(214,69,69,0.15)',
    pause: 'rgba(150,100,230,0.18)', nemesis: 'rgba(110,110,110,0.16)' };
  var US = T.unit === 'us';
  var END = Math.max(T.t_end, 1);
  var dpr = window.devicePixelRatio || 1;

  var start = new Float64Array(N), end = new Float64Array(N);
  for (var i = 0; i < N; i++) {
    start[i] = T.ops[i * F + 1];
    end[i] = T.ops[i * F + 2] < 0 ? END : T.ops[i * F + 2];
  }
  // Roles in the counterexamples: 1 = cannot be linearized, 2 = concurrent; step numbers.
  var role = {}, step = {};
  CEX.forEach(function (c) {
    c.concurrent.forEach(function (o) { if (!role[o]) role[o] = 2; });
    role[c.op] = 1;
    c.steps.forEach(function (o, k) { step[o] = k + 1; });
  });

  function faultColor(f) { return FAULT[f] || FAULT.nemesis; }
  function fmtT(t) {
    if (!US) return 'event ' + Math.round(t);
    var s = t / 1e6;
    return (Math.abs(s) >= 100 ? s.toFixed(1) : Math.abs(s) >= 1 ? s.toFixed(3) : s.toFixed(6)) + ' s';
  }
  function fmtTick(t, st) {
    if (!US) return String(Math.round(t));
    var d = Math.max(0, Math.ceil(-Math.log10(st / 1e6) - 1e-9));
    return (t / 1e6).toFixed(Math.min(d, 6)) + ' s';
  }
  function fmtLat(v) {
    if (!US) return v + ' ev';
    return v >= 1e6 ? (v / 1e6).toFixed(2) + ' s' : (v / 1e3).toFixed(v < 1e4 ? 2 : 0) + ' ms';
  }

  // The shared view: [a, b] on the time axis.
  var view = { a: 0, b: END };
  function clampView() {
    var span = Math.max(view.b - view.a, US ? 20 : 2);
    span = Math.min(span, END * 1.2 + 1);
    var mid = (view.a + view.b) / 2;
    view.a = mid - span / 2; view.b = mid + span / 2;
    var lo = -END * 0.1, hi = END * 1.1;
    if (view.a < lo) { view.b += lo - view.a; view.a = lo; }
    if (view.b > hi) { view.a -= view.b - hi; view.b = hi; }
  }

  // Lanes shown under the key filter, and each lane's ops (in start order).
  var keyFilter = -1, rows = [], laneOps = [];
  function buildRows() {
    laneOps = T.lanes.map(function () { return []; });
    for (var i = 0; i < N; i++) {
      if (keyFilter < 0 || T.ops[i * F + 5] === keyFilter) laneOps[T.ops[i * F]].push(i);
    }
    rows = [];
    for (var l = 0; l < laneOps.length; l++) if (laneOps[l].length) rows.push(l);
  }

  function setup(canvas, h) {
    var w = Math.max(canvas.parentElement.clientWidth, 300);
    canvas.style.height = h + 'px';
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    var ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx: ctx, w: w, h: h };
  }

  var GX = 84, AY = 22, STRIP = 6;
  function xOf(t, w) { return GX + (t - view.a) / (view.b - view.a) * (w - GX - 10); }
  function tOf(x, w) { return view.a + (x - GX) / (w - GX - 10) * (view.b - view.a); }

  function niceStep(span, target) {
    var raw = span / target, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }
  function timeAxis(ctx, w, y0, y1) {
    var st = niceStep(view.b - view.a, Math.max(3, (w - GX) / 110));
    ctx.fillStyle = '#667085'; ctx.strokeStyle = '#eceef2'; ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'center';
    for (var t = Math.ceil(view.a / st) * st; t <= view.b; t += st) {
      var x = xOf(t, w);
      ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y1); ctx.stroke();
      ctx.fillText(fmtTick(t, st), x, y0 - STRIP - 3);
    }
    ctx.textAlign = 'left';
  }
  function shadeFaults(ctx, w, y0, y1, labels) {
    ctx.save(); ctx.beginPath(); ctx.rect(GX, 0, w - GX, y1); ctx.clip();
    T.faults.forEach(function (f) {
      var x0 = xOf(f.start, w), x1 = xOf(f.end, w);
      if (x1 < GX || x0 > w) return;
      ctx.fillStyle = faultColor(f.family);
      ctx.fillRect(x0, y0, Math.max(x1 - x0, 1), y1 - y0);
      if (labels && x1 - x0 > 50) {
        ctx.fillStyle = '#3b4252'; ctx.font = '10px system-ui, sans-serif';
        ctx.fillText(f.family, Math.max(x0, GX) + 3, y0 + 10);
      }
    });
    ctx.strokeStyle = '#8a8f99'; ctx.setLineDash([4, 3]);
    T.marks.forEach(function (m) {
      var x = xOf(m.at, w);
      ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y1); ctx.stroke();
    });
    ctx.setLineDash([]); ctx.restore();
  }

  // ---- timeline ----
  var tl = document.getElementById('timeline'), tip = document.getElementById('tip');
  var laneH = 12, vy = 0, tlH = 200;
  function layout() {
    laneH = Math.max(3, Math.min(22, Math.floor(560 / Math.max(rows.length, 1))));
    tlH = Math.min(rows.length * laneH, 600) + AY + 6;
    vy = Math.max(0, Math.min(vy, rows.length * laneH - (tlH - AY - 6)));
  }
  function firstEndingAfter(list, t) {
    var lo = 0, hi = list.length;
    while (lo < hi) { var m = (lo + hi) >> 1; if (end[list[m]] < t) lo = m + 1; else hi = m; }
    return lo;
  }
  function drawTimeline() {
    var g = setup(tl, tlH), ctx = g.ctx, w = g.w;
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, tlH);
    timeAxis(ctx, w, AY, tlH);
    shadeFaults(ctx, w, AY, tlH, true);
    ctx.save(); ctx.beginPath(); ctx.rect(0, AY, w, tlH - AY); ctx.clip();
    var bar = laneH > 6 ? laneH - 3 : Math.max(laneH - 1, 1);
    var labelEvery = Math.ceil(11 / laneH);
    ctx.font = '10px system-ui, sans-serif';
    var marked = [];
    for (var r = 0; r < rows.length; r++) {
      var y = AY + 2 + r * laneH - vy;
      if (y + laneH < AY || y > tlH) continue;
      var lane = rows[r], list = laneOps[lane];
      if (r % labelEvery === 0) {
        ctx.save(); ctx.beginPath(); ctx.rect(0, y - 2, GX - 6, laneH + 2); ctx.clip();
        ctx.fillStyle = '#667085'; ctx.fillText(T.lanes[lane], 4, y + Math.min(bar, 10)); ctx.restore();
      }
      var lastPx = -1, lastC = -1;
      for (var k = firstEndingAfter(list, view.a); k < list.length; k++) {
        var i = list[k];
        if (start[i] > view.b) break;
        var x0 = Math.max(xOf(start[i], w), GX - 2), x1 = xOf(end[i], w), st = T.ops[i * F + 3];
        // Many ops inside one pixel column of one lane draw as one.
        var px = Math.floor(x0);
        if (px === lastPx && Math.floor(x1) === px && st === lastC && !role[i]) continue;
        lastPx = px; lastC = st;
        ctx.globalAlpha = T.ops[i * F + 2] < 0 ? 0.45 : 1;
        ctx.fillStyle = COL[st];
        ctx.fillRect(x0, y, Math.max(x1 - x0, 1), bar);
        if (role[i] || step[i]) marked.push([i, x0, x1, y]);
      }
    }
    ctx.globalAlpha = 1;
    marked.forEach(function (m) {
      var i = m[0], x0 = m[1], x1 = m[2], y = m[3];
      if (role[i] === 1) { ctx.strokeStyle = '#7a0010'; ctx.lineWidth = 3; }
      else if (role[i] === 2) { ctx.strokeStyle = '#1d4ed8'; ctx.lineWidth = 2; }
      else { ctx.strokeStyle = 'rgba(0,0,0,0.35)'; ctx.lineWidth = 1; }
      ctx.strokeRect(x0, y, Math.max(x1 - x0, 2), bar);
      if (step[i] && x1 - x0 > 16 && bar >= 9) {
        ctx.fillStyle = '#fff'; ctx.font = 'bold 10px system-ui, sans-serif';
        ctx.fillText(String(step[i]), x0 + 3, y + bar - 2);
      }
    });
    ctx.lineWidth = 1; ctx.restore();
    // Faults again over the bars (dense lanes hide the background) and as a strip on top.
    ctx.save(); ctx.beginPath(); ctx.rect(GX, AY - STRIP, w - GX, tlH); ctx.clip();
    T.faults.forEach(function (f) {
      var x0 = xOf(f.start, w), x1 = Math.max(xOf(f.end, w), x0 + 1);
      ctx.fillStyle = faultColor(f.family); ctx.fillRect(x0, AY, x1 - x0, tlH - AY);
      ctx.globalAlpha = 1; ctx.fillStyle = faultColor(f.family).replace(/[0-9.]+\)$/, '0.8)');
      ctx.fillRect(x0, AY - STRIP, x1 - x0, STRIP - 1);
    });
    ctx.restore();
    ctx.fillStyle = '#667085'; ctx.font = '11px system-ui, sans-serif';
    ctx.fillText(US ? 'time' : 'event', 4, 12);
  }

  function opAt(mx, my) {
    var w = tl.clientWidth, r = Math.floor((my - AY - 2 + vy) / laneH);
    if (r < 0 || r >= rows.length || mx < GX) return -1;
    var t = tOf(mx, w), tol = 4 * (view.b - view.a) / (w - GX), list = laneOps[rows[r]];
    var k = firstEndingAfter(list, t - tol);
    if (k < list.length && start[list[k]] <= t + tol) return list[k];
    return -1;
  }
  function tipText(i) {
    var o = T.ops, b = i * F, lines = [
      '#' + i + '  process ' + o[b + 6] + '  key ' + T.keys[o[b + 5]],
      T.desc[i],
      STATUS[o[b + 3]] + (o[b + 2] < 0 ? ', never completed' : ''),
      'invoked ' + fmtT(o[b + 1]) + (o[b + 2] < 0 ? '' : ', completed ' + fmtT(o[b + 2]) + ' (' + fmtLat(o[b + 2] - o[b + 1]) + ')')];
    if (role[i] === 1) lines.push('cannot be linearized');
    if (role[i] === 2) lines.push('concurrent with the op that cannot be linearized');
    if (step[i]) lines.push('step ' + step[i] + ' of the longest partial linearization');
    return lines.join('\n');
  }

  // ---- latency ----
  var lat = document.getElementById('latency'), thr = document.getElementById('throughput');
  function drawLatency() {
    var H = 280, g = setup(lat, H), ctx = g.ctx, w = g.w, y0 = AY, y1 = H - 12;
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, H);
    var L = S.lat, lo = Infinity, hi = 1;
    for (var i = 0; i < L.length; i += 3) { var v = Math.max(L[i + 1], 1); if (v < lo) lo = v; if (v > hi) hi = v; }
    if (!isFinite(lo)) lo = 1;
    var llo = Math.floor(Math.log10(lo)), lhi = Math.max(Math.ceil(Math.log10(hi)), llo + 1);
    function yOf(v) { return y1 - (Math.log10(Math.max(v, 1)) - llo) / (lhi - llo) * (y1 - y0); }
    timeAxis(ctx, w, y0, y1);
    shadeFaults(ctx, w, y0, y1, false);
    ctx.font = '11px system-ui, sans-serif'; ctx.fillStyle = '#667085'; ctx.strokeStyle = '#eceef2';
    for (var p = llo; p <= lhi; p++) {
      var y = yOf(Math.pow(10, p));
      ctx.beginPath(); ctx.moveTo(GX, y); ctx.lineTo(w, y); ctx.stroke();
      ctx.fillText(fmtLat(Math.pow(10, p)), 2, y + 4);
    }
    ctx.save(); ctx.beginPath(); ctx.rect(GX, y0, w - GX, y1 - y0); ctx.clip();
    ctx.globalAlpha = 0.7;
    for (i = 0; i < L.length; i += 3) {
      var x = xOf(L[i], w);
      if (x < GX - 2 || x > w) continue;
      ctx.fillStyle = COL[L[i + 2]];
      ctx.fillRect(x - 1.5, yOf(L[i + 1]) - 1.5, 3, 3);
    }
    ctx.globalAlpha = 1;
    [[S.p50, '#1d4ed8', 'p50'], [S.p99, '#7c3aed', 'p99']].forEach(function (q) {
      ctx.strokeStyle = q[1]; ctx.lineWidth = 1.6; ctx.beginPath();
      q[0].forEach(function (pt, k) {
        var x = xOf((pt[0] + 0.5) * S.bucket, w), y = yOf(pt[1]);
        if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
    ctx.restore(); ctx.lineWidth = 1;
    legend(ctx, w, [['p50', '#1d4ed8'], ['p99', '#7c3aed'], ['ok', COL[0]], ['fail', COL[1]], ['info', COL[2]]]);
  }
  function legend(ctx, w, items) {
    ctx.font = '11px system-ui, sans-serif';
    var width = 8;
    items.forEach(function (it) { width += ctx.measureText(it[0]).width + 30; });
    var x = w - 12, y = AY + 6;
    ctx.fillStyle = 'rgba(255,255,255,0.9)'; ctx.fillRect(x - width, y, width, 18);
    ctx.strokeStyle = '#e3e6ec'; ctx.strokeRect(x - width, y, width, 18);
    ctx.textAlign = 'right';
    for (var k = items.length - 1; k >= 0; k--) {
      ctx.fillStyle = '#3b4252'; ctx.fillText(items[k][0], x - 6, y + 13);
      x -= ctx.measureText(items[k][0]).width + 10;
      ctx.fillStyle = items[k][1]; ctx.fillRect(x - 10, y + 4, 10, 10); x -= 20;
    }
    ctx.textAlign = 'left';
  }

  // ---- throughput ----
  function drawThroughput() {
    var H = 220, g = setup(thr, H), ctx = g.ctx, w = g.w, y0 = AY, y1 = H - 12;
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, H);
    var per = US ? S.bucket / 1e6 : S.bucket, hi = 1;
    S.tput.forEach(function (b) { for (var s = 0; s < 3; s++) hi = Math.max(hi, b[s] / per); });
    function yOf(v) { return y1 - v / hi * (y1 - y0 - 4); }
    timeAxis(ctx, w, y0, y1);
    shadeFaults(ctx, w, y0, y1, false);
    var st = niceStep(hi, 4);
    ctx.font = '11px system-ui, sans-serif'; ctx.fillStyle = '#667085'; ctx.strokeStyle = '#eceef2';
    for (var v = 0; v <= hi; v += st) {
      var y = yOf(v);
      ctx.beginPath(); ctx.moveTo(GX, y); ctx.lineTo(w, y); ctx.stroke();
      ctx.fillText(String(Math.round(v * 10) / 10) + (US ? '/s' : ''), 2, y + 4);
    }
    ctx.save(); ctx.beginPath(); ctx.rect(GX, y0, w - GX, y1 - y0); ctx.clip();
    for (var s = 0; s < 3; s++) {
      ctx.strokeStyle = COL[s]; ctx.lineWidth = 1.6; ctx.beginPath();
      S.tput.forEach(function (b, k) {
        var xa = xOf(k * S.bucket, w), xb = xOf((k + 1) * S.bucket, w), y = yOf(b[s] / per);
        if (k === 0) ctx.moveTo(xa, y); else ctx.lineTo(xa, y);
        ctx.lineTo(xb, y);
      });
      ctx.stroke();
    }
    ctx.restore(); ctx.lineWidth = 1;
    legend(ctx, w, [['ok', COL[0]], ['fail', COL[1]], ['info', COL[2]]]);
  }

  var pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; drawAll(); });
  }
  function drawAll() { drawTimeline(); drawLatency(); drawThroughput(); }

  // ---- interaction: wheel zooms, drag pans, double-click resets; all plots share the view ----
  function interact(canvas, vertical) {
    var drag = null;
    canvas.addEventListener('wheel', function (e) {
      e.preventDefault();
      var w = canvas.clientWidth, t = tOf(e.offsetX, w), k = Math.exp(e.deltaY * 0.0015);
      view.a = t - (t - view.a) * k; view.b = t + (view.b - t) * k;
      clampView(); redraw();
    }, { passive: false });
    canvas.addEventListener('mousedown', function (e) { drag = { x: e.clientX, y: e.clientY, a: view.a, b: view.b, vy: vy }; });
    window.addEventListener('mouseup', function () { drag = null; });
    window.addEventListener('mousemove', function (e) {
      if (!drag) return;
      var w = canvas.clientWidth, dt = (e.clientX - drag.x) / (w - GX - 10) * (drag.b - drag.a);
      view.a = drag.a - dt; view.b = drag.b - dt; clampView();
      if (vertical) { vy = drag.vy - (e.clientY - drag.y); layout(); }
      redraw();
    });
    canvas.addEventListener('dblclick', function () { view.a = 0; view.b = END; vy = 0; redraw(); });
  }
  interact(tl, true); interact(lat, false); interact(thr, false);
  tl.addEventListener('mousemove', function (e) {
    var i = opAt(e.offsetX, e.offsetY);
    if (i < 0) { tip.hidden = true; return; }
    tip.textContent = tipText(i); tip.hidden = false;
    var x = e.offsetX + 14, wrap = tl.parentElement.clientWidth;
    if (x + tip.offsetWidth > wrap) x = Math.max(0, e.offsetX - tip.offsetWidth - 14);
    tip.style.left = x + 'px'; tip.style.top = (e.offsetY + 14) + 'px';
  });
  tl.addEventListener('mouseleave', function () { tip.hidden = true; });

  var sel = document.getElementById('key-filter');
  sel.addEventListener('change', function () { keyFilter = Number(sel.value); buildRows(); vy = 0; layout(); redraw(); });
  document.getElementById('reset').addEventListener('click', function () { view.a = 0; view.b = END; vy = 0; redraw(); });
  function focusCex(n, scroll) {
    var c = CEX[n]; if (!c) return;
    var k = T.keys.indexOf(c.key);
    if (k >= 0 && sel.querySelector('option[value="' + k + '"]')) { sel.value = String(k); keyFilter = k; buildRows(); }
    var ids = [c.op].concat(c.concurrent), a = Infinity, b = -Infinity;
    ids.forEach(function (i) { if (i < N) { a = Math.min(a, start[i]); b = Math.max(b, end[i]); } });
    if (!isFinite(a)) return;
    var pad = Math.max((b - a) * 0.25, US ? 100 : 1);
    view.a = a - pad; view.b = b + pad; clampView();
    layout();
    var r = rows.indexOf(T.ops[c.op * F]);
    if (r >= 0) vy = Math.max(0, Math.min(r * laneH - (tlH - AY) / 2, rows.length * laneH - (tlH - AY - 6)));
    redraw();
    if (scroll) document.getElementById('timeline-panel').scrollIntoView();
  }
  Array.prototype.forEach.call(document.querySelectorAll('.cex-focus'), function (btn) {
    btn.addEventListener('click', function () { focusCex(Number(btn.dataset.cex), true); });
  });

  var fl = document.getElementById('fault-legend'), seen = {};
  T.faults.forEach(function (f) {
    if (seen[f.family]) return; seen[f.family] = 1;
    var i = document.createElement('i'); i.style.background = faultColor(f.family);
    fl.appendChild(i); fl.appendChild(document.createTextNode(f.family));
  });

  buildRows(); layout();
  window.addEventListener('resize', redraw);
  drawAll();
  if (CEX.length && window.location.hash === '#cex') focusCex(0, false);
  document.getElementById('render-status').textContent = 'rendered ' + N + ' operations, ' + rows.length + ' lanes';
  document.documentElement.setAttribute('data-rendered', 'ok');
})();
