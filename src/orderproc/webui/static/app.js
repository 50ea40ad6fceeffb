/* Order Processor web UI: the candlestick chart, and small helpers for htmx.
   No inline scripts anywhere (the pages' CSP forbids them); everything is wired here. */
(function () {
  "use strict";

  var SECONDS = { "1m": 60, "1h": 3600, "1d": 86400 };
  var onLiveTick = null;

  /* The asset page's price stream (opened by htmx's SSE extension) also carries `tick`
     events with the raw price; the chart listens to them on the same connection. */
  document.addEventListener("htmx:sseOpen", function (e) {
    var source = e.detail && e.detail.source;
    if (!source) return;
    source.addEventListener("tick", function (m) {
      if (onLiveTick) onLiveTick(JSON.parse(m.data));
    });
  });

  function pricePrecision(price) {
    if (!(price > 0)) return 2;
    return Math.min(10, Math.max(2, 3 - Math.floor(Math.log10(price))));
  }

  function toBar(candle) {
    return {
      time: Math.floor(Date.parse(candle.t) / 1000),
      open: Number(candle.open), high: Number(candle.high),
      low: Number(candle.low), close: Number(candle.close)
    };
  }

  function setupChart(el) {
    var LW = window.LightweightCharts;
    if (!LW || el.dataset.ready) return;
    el.dataset.ready = "0";
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    var chart = LW.createChart(el, {
      autoSize: true,
      layout: { background: { color: "transparent" }, textColor: dark ? "#c5ccd6" : "#3b4452", attributionLogo: true },
      grid: { vertLines: { color: dark ? "#232a35" : "#eef1f5" }, horzLines: { color: dark ? "#232a35" : "#eef1f5" } },
      rightPriceScale: { borderVisible: false },
      timeScale: { borderVisible: false, timeVisible: true, secondsVisible: false }
    });
    var series = chart.addSeries(LW.CandlestickSeries, {
      upColor: "#0f9d58", downColor: "#d93025", borderVisible: false,
      wickUpColor: "#0f9d58", wickDownColor: "#d93025"
    });
    var interval = "1m";
    var last = null;

    function load() {
      var wanted = interval;
      return fetch(el.dataset.candles + "?interval=" + wanted + "&limit=500", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { data: [] }; })
        .then(function (body) {
          if (wanted !== interval) return;
          var bars = (body.data || []).map(toBar);
          var precision = pricePrecision(bars.length ? bars[bars.length - 1].close : 0);
          series.applyOptions({ priceFormat: { type: "price", precision: precision, minMove: Math.pow(10, -precision) } });
          series.setData(bars);
          last = bars.length ? bars[bars.length - 1] : null;
          chart.timeScale().fitContent();
          el.dataset.ready = String(bars.length);
        })
        .catch(function () { el.dataset.ready = "error"; });
    }

    function onTick(tick) {
      var size = SECONDS[interval];
      var bucket = Math.floor(tick.time / size) * size;
      var p = Number(tick.price);
      if (last && bucket === last.time) {
        last = { time: bucket, open: last.open, high: Math.max(last.high, p), low: Math.min(last.low, p), close: p };
      } else if (!last || bucket > last.time) {
        last = { time: bucket, open: last ? last.close : p, high: p, low: p, close: p };
      } else {
        return;
      }
      series.update(last);
      el.dataset.ticks = String(Number(el.dataset.ticks || 0) + 1);
    }

    onLiveTick = onTick;

    document.querySelectorAll("[data-interval]").forEach(function (button) {
      button.addEventListener("click", function () {
        interval = button.dataset.interval;
        document.querySelectorAll("[data-interval]").forEach(function (b) {
          b.setAttribute("aria-pressed", String(b === button));
        });
        load();
      });
    });
    load();
  }

  function toast(message) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.hidden = true; }, 6000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var chart = document.getElementById("chart");
    if (chart) setupChart(chart);
  });

  document.addEventListener("htmx:sendError", function () {
    toast("Could not reach the server. Check your connection and try again.");
  });
  document.addEventListener("htmx:responseError", function () {
    toast("Something went wrong on our side. Please try again.");
  });
  /* After a form swaps in with an error, put the keyboard on the first field that needs it. */
  document.addEventListener("htmx:afterSettle", function () {
    var active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    var bad = document.querySelector("form [aria-invalid=true]");
    if (bad) bad.focus();
  });
})();
