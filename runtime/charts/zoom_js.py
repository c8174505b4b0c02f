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
  var busy = false;

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
  function mode(lo, hi) {
    if (!P.showFootprint) return "off";
    var n = Math.ceil((hi - lo) / P.fp.step - 1e-9);
    if (n > P.cellBuckets) return "off";
    if (n > P.textBuckets) return "cells";
    var ax = gd._fullLayout.xaxis, ay = gd._fullLayout.yaxis;
    var pxBucket = ax._length / Math.max(n, 1);
    var ticks = (ay.range[1] - ay.range[0]) / P.tick;
    var pxTick = ay._length / Math.max(ticks, 1);
    return pxBucket >= 44 && pxTick >= 8 ? "text" : "cells";
  }

  function update() {
    if (busy) return;
    busy = true;
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
    Plotly.relayout(gd, lay).then(function () {
      var m = mode(lo, hi);
      var fp = P.fp, w = fp.step;
      var cx = [], cy = [], cb = [], cf = [], lc = [], lw = [], cd = [];
      var tx = [], ty = [], tt = [], tc = [];
      if (m !== "off") {
        for (var i = 0; i < fp.x0.length && cx.length < P.maxCells; i++) {
          if (fp.x0[i] + w <= lo || fp.x0[i] >= hi) continue;
          var x = fp.x0[i] + 0.56 * w;
          cx.push(iso(x)); cy.push(P.tick); cb.push(fp.price[i] - P.tick / 2); cf.push(fp.fill[i]);
          lc.push(fp.poc[i] ? P.colours.poc : "rgba(0,0,0,0)"); lw.push(fp.poc[i] ? 2 : 0);
          cd.push([fp.bid[i], fp.ask[i], fp.bid[i] + fp.ask[i], fp.ask[i] - fp.bid[i]]);
          if (m === "text") {
            tx.push(iso(x)); ty.push(fp.price[i]); tc.push(fp.tcol[i]);
            var label = fp.bid[i] + " x " + fp.ask[i];
            tt.push(fp.poc[i] ? "<b>" + label + "</b>" : label);
          }
        }
      }
      var ay = gd._fullLayout.yaxis;
      var pxTick = ay._length / Math.max((ay.range[1] - ay.range[0]) / P.tick, 1);
      var size = Math.max(8, Math.min(12, Math.floor(pxTick * 0.85)));
      var jobs = [];
      var ci = idx("footprint"), ti = idx("bid x ask"), ki = idx("candles");
      if (ci >= 0)
        jobs.push(Plotly.restyle(gd, {
          x: [cx], y: [cy], base: [cb], width: [0.8 * w], "marker.color": [cf],
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
      var anns = (gd.layout.annotations || []).map(function (a) {
        return a.name === "fp-hint" ? Object.assign({}, a, { text: P.hints[m] }) : a;
      });
      jobs.push(Plotly.relayout(gd, { boxgap: hollow ? 0.8 : 0.3, annotations: anns }));
      return Promise.all(jobs);
    }).then(function () {
      gd.setAttribute("data-footprint-mode", mode(lo, hi));
      busy = false;
    }, function () {
      busy = false;
    });
  }

  gd.on("plotly_relayout", function (ev) {
    if (busy) return;
    for (var k in ev) if (k.indexOf("xaxis") === 0) { update(); return; }
  });
  update();
})();
"""
