"""The script of the static chart pages, kept as a Python string so any install (wheel, editable) has it."""

# fmt: off
ZOOM_JS = r"""
// Zoom behaviour of the static chart pages (render.py fills in the payload; the rules mirror render.py):
// on every change of the time axis, fit the price/volume/CVD axes to the visible candles and redraw the
// footprint of the visible window: nothing when more than cellBuckets footprint buckets are visible, coloured
// cells up to that, and the bid x ask numbers up to textBuckets (when the cells are tall and wide enough).
(function () {
  var P = __PAYLOAD__;
  var gd = document.getElementById("chart");
  if (!gd || !window.Plotly) return;
  var busy = false, pending = false;  // a zoom during a redraw is redone once the redraw ends

  function idx(name) {
    for (var i = 0; i < gd.data.length; i++) if (gd.data[i].name === name) return i;
    return -1;
  }
  function iso(ms) {
    // plotly turns the x axis linear when a restyle passes numbers: give it wall-clock date strings
    return new Date(ms).toISOString().slice(0, 23);
  }
  function fit(lo, hi, padMin) {
    var pad = Math.max(padMin, 0.04 * (hi - lo));
    return [lo - pad, hi + pad];
  }
  function visible() {
    var ax = gd._fullLayout.xaxis;
    return [ax.r2l(ax.range[0]), ax.r2l(ax.range[1])];
  }
  function extent(s, lo, hi, extra) {
    var a = Infinity, b = -Infinity, v = 0;
    for (var i = 0; i < s.x0.length; i++) {
      if (s.x1[i] > lo && s.x0[i] < hi) {
        if (s.lo[i] < a) a = s.lo[i];
        if (s.hi[i] > b) b = s.hi[i];
        if (extra && extra[i] > v) v = extra[i];
      }
    }
    return a <= b ? [a, b, v] : null;
  }
  function pxPerTick() {
    var ay = gd._fullLayout.yaxis;
    return ay._length / Math.max((ay.range[1] - ay.range[0]) / P.tick, 1);
  }
  function rowTicks() {
    var need = P.rowMinPx / pxPerTick();
    for (var i = 0; i < P.rowTicks.length; i++) if (P.rowTicks[i] >= need - 1e-9) return P.rowTicks[i];
    return P.rowTicks[P.rowTicks.length - 1];
  }
  function mode(lo, hi) {
    if (!P.showFootprint) return "off";
    var n = Math.ceil((hi - lo) / P.fp.step - 1e-9);
    if (n > P.cellBuckets) return "off";
    if (n > P.textBuckets) return "cells";
    return gd._fullLayout.xaxis._length / Math.max(n, 1) >= 44 ? "text" : "cells";
  }
  // the visible footprint in rows of k ticks: volumes summed, a row is an imbalance / POC when any tick is
  function rows(lo, hi, k) {
    var fp = P.fp, w = fp.step, out = [], at = {};
    out.dropped = 0;
    for (var i = 0; i < fp.x0.length; i++) {
      if (fp.x0[i] + w <= lo || fp.x0[i] >= hi) continue;
      var lvl = Math.floor(Math.round(fp.price[i] / P.tick) / k) * k;
      var key = fp.x0[i] + ":" + lvl, r = at[key];
      if (r === undefined) {
        if (out.length >= P.maxCells) { out.dropped++; continue; }
        r = at[key] = { x0: fp.x0[i], price: lvl * P.tick, bid: 0, ask: 0, imb: 0, poc: false };
        out.push(r);
      }
      r.bid += fp.bid[i]; r.ask += fp.ask[i]; r.imb |= fp.imb[i]; r.poc = r.poc || fp.poc[i];
    }
    var vmax = {};
    out.forEach(function (r) { vmax[r.x0] = Math.max(vmax[r.x0] || 0, r.bid + r.ask); });
    out.forEach(function (r) {
      var share = vmax[r.x0] > 0 ? (r.bid + r.ask) / vmax[r.x0] : 0;
      r.fill = r.imb === 3 ? "rgba(123,50,148,0.35)" : r.imb === 1 ? "rgba(26,152,80,0.38)"
        : r.imb === 2 ? "rgba(215,48,39,0.38)" : "rgba(120,130,150," + (0.08 + 0.32 * share).toFixed(2) + ")";
      r.tcol = r.imb === 3 ? "#4b1a5e" : r.imb === 1 ? "#0b5d2e" : r.imb === 2 ? "#9e1a12" : "#222222";
    });
    return out;
  }

  function update() {
    if (busy) { pending = true; return; }
    busy = true;
    pending = false;
    var r = visible(), lo = r[0], hi = r[1];
    var lay = {};
    var c = extent(P.candles, lo, hi, P.candles.vol);
    if (c) {
      lay["yaxis.range"] = fit(c[0], c[1], 3 * P.tick);
      lay["yaxis.autorange"] = false;
      if (P.volumeAxis) {
        lay[P.volumeAxis + ".range"] = [0, c[2] * 1.08];
        lay[P.volumeAxis + ".autorange"] = false;
      }
    }
    var v = P.cvdAxis ? extent(P.cvd, lo, hi) : null;
    if (v) {
      lay[P.cvdAxis + ".range"] = fit(v[0], v[1], 1);
      lay[P.cvdAxis + ".autorange"] = false;
    }
    var m = "off", k = 1;
    Plotly.relayout(gd, lay).then(function () {
      m = mode(lo, hi);
      k = rowTicks();
      var w = P.fp.step, cells = m === "off" ? [] : rows(lo, hi, k);
      var cx = [], cy = [], cb = [], cf = [], lc = [], lw = [], cd = [];
      var tx = [], ty = [], tt = [], tc = [];
      cells.forEach(function (r) {
        var x = iso(r.x0 + P.cellCentre * w);
        cx.push(x); cy.push(k * P.tick); cb.push(r.price - P.tick / 2); cf.push(r.fill);
        lc.push(r.poc ? P.colours.poc : "rgba(0,0,0,0)"); lw.push(r.poc ? 2 : 0);
        cd.push([r.bid, r.ask, r.bid + r.ask, r.ask - r.bid, r.price, r.price + (k - 1) * P.tick]);
        if (m === "text") {
          tx.push(x); ty.push(r.price + (k - 1) * P.tick / 2); tc.push(r.tcol);
          var label = r.bid + " x " + r.ask;
          tt.push(r.poc ? "<b>" + label + "</b>" : label);
        }
      });
      var size = Math.max(8, Math.min(12, Math.floor(pxPerTick() * k * 0.8)));
      var jobs = [];
      var ci = idx("footprint"), ti = idx("bid x ask"), ki = idx("candles");
      if (ci >= 0)
        jobs.push(Plotly.restyle(gd, {
          x: [cx], y: [cy], base: [cb], width: [P.cellWidth * w], "marker.color": [cf.length ? cf : "rgba(0,0,0,0)"],
          "marker.line.color": [lc.length ? lc : "rgba(0,0,0,0)"],
          "marker.line.width": [lw.length ? lw : 0], customdata: [cd]
        }, [ci]));
      if (ti >= 0)
        jobs.push(Plotly.restyle(gd, { x: [tx], y: [ty], text: [tt], "textfont.color": [tc.length ? tc : "#222222"],
          "textfont.size": size }, [ti]));
      var hollow = m !== "off";
      if (ki >= 0)
        jobs.push(Plotly.restyle(gd, {
          "increasing.fillcolor": hollow ? "rgba(0,0,0,0)" : P.colours.buy,
          "decreasing.fillcolor": hollow ? "rgba(0,0,0,0)" : P.colours.sell
        }, [ki]));
      var hint = P.hints[m].replace("{rows}", k > 1 ? ", " + k + " ticks per row" : "");
      if (cells.dropped) hint += " (the first " + P.maxCells + " rows drawn: zoom in for the rest)";
      var anns = (gd.layout.annotations || []).map(function (a) {
        return a.name === "fp-hint" ? Object.assign({}, a, { text: hint }) : a;
      });
      jobs.push(Plotly.relayout(gd, { boxgap: hollow ? 0.8 : 0.3, annotations: anns }));
      return Promise.all(jobs);
    }).then(function () {
      busy = false;
      if (pending) { update(); return; }
      gd.setAttribute("data-row-ticks", String(k));
      gd.setAttribute("data-footprint-mode", m);
    }, function () {
      busy = false;
    });
  }

  gd.on("plotly_relayout", function (ev) {
    var x = false;
    for (var k in ev) if (k.indexOf("xaxis") === 0) x = true;
    if (!x) return;  // our own y refits
    if (busy) { pending = true; return; }
    update();
  });
  update();
})();
"""
