// FLockChain explorer: plots (uPlot) and live updates (poll /explorer/head, swap <main>).
(function () {
  "use strict";
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
  var POLL_MS = 1500;
  var plots = [];

  function drawCharts(root) {
    plots.forEach(function (p) { p.destroy(); });
    plots = [];
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var spec = JSON.parse(el.getAttribute("data-chart"));
      el.setAttribute("data-points", String(spec.x.length));
      if (typeof uPlot === "undefined") return;
      if (!spec.x.length) {
        var p = document.createElement("p");
        p.className = "empty";
        p.textContent = "no finished epoch yet";
        el.appendChild(p);
        return;
      }
      var series = [{ label: spec.xlabel || "x" }];
      spec.series.forEach(function (s, i) {
        var c = s.color || COLORS[i % COLORS.length];
        series.push({ label: s.label, stroke: c, width: 2, points: { show: true, size: 8, fill: c } });
      });
      var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
      var width = Math.max(300, Math.min(el.clientWidth || 520, 640));
      var opts = {
        width: width, height: 240, series: series,
        scales: { x: { time: false } },
        axes: [{ label: spec.xlabel || "", incrs: [1, 2, 5, 10, 20, 50, 100] }, {}],
        legend: { show: true },
      };
      plots.push(new uPlot(opts, data, el));
      el.setAttribute("data-drawn", String(spec.x.length));
    });
  }

  var last = null;
  var state = document.getElementById("live-state");
  var heightEl = document.getElementById("live-height");
  // the height the server rendered this page at: a block produced before the first poll
  // must still refresh the page (else it would wait for the next block)
  var rendered = heightEl ? heightEl.textContent : null;

  function refresh() {
    return fetch(location.href, { headers: { "X-Explorer-Partial": "1" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var main = document.getElementById("content");
        main.innerHTML = html;
        drawCharts(main);
      });
  }

  function poll() {
    fetch("/explorer/head", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (h) {
        var key = h.height + "/" + h.batch + "/" + h.batch_status;
        if (heightEl) heightEl.textContent = h.height;
        if (state) state.textContent = "live";
        var changed = last === null ? String(h.height) !== rendered : key !== last;
        if (changed) {
          last = key;
          return refresh();
        }
        last = key;
      })
      .catch(function () { if (state) state.textContent = "offline"; })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  drawCharts(document);
  poll();
})();
