/* Order Processor web UI: the candlestick chart (with volume, an OHLC legend and a 1m/1h/1d/1w
   range over the stored history), and small helpers for htmx.
   No inline scripts anywhere (the pages' CSP forbids them); everything is wired here. */
(function () {
  "use strict";

  var SECONDS = { "1m": 60, "1h": 3600, "1d": 86400, "1w": 604800 };
  var WEEK_ORIGIN = 4 * 86400; /* weeks open on Monday, 00:00 UTC; the epoch was a Thursday */
  var PAGE = 1000; /* candles a request asks for (the API's most) */
  var PAGES = 3; /* pages a range loads: the whole backfilled history of every interval */
  var UP = "#0f9d58", DOWN = "#d93025";
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

  function bucketOf(time, interval) {
    var size = SECONDS[interval], origin = interval === "1w" ? WEEK_ORIGIN : 0;
    return Math.floor((time - origin) / size) * size + origin;
  }

  function toBar(candle) {
    return {
      time: Math.floor(Date.parse(candle.t) / 1000),
      open: Number(candle.open), high: Number(candle.high),
      low: Number(candle.low), close: Number(candle.close)
    };
  }

  function toVolume(candle) {
    var up = Number(candle.close) >= Number(candle.open);
    return {
      time: Math.floor(Date.parse(candle.t) / 1000), value: Number(candle.volume),
      color: up ? "rgba(15, 157, 88, 0.35)" : "rgba(217, 48, 37, 0.35)"
    };
  }

  /* The latest PAGES pages of an interval's candles, oldest first: the first page is the
     newest, and each `next_cursor` goes back in time. */
  function fetchCandles(url, interval) {
    var pages = [];
    function page(cursor, left) {
      var query = "?interval=" + interval + "&limit=" + PAGE + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
      return fetch(url + query, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { data: [] }; })
        .then(function (body) {
          pages.unshift(body.data || []);
          if (body.next_cursor && left > 1) return page(body.next_cursor, left - 1);
          return [].concat.apply([], pages);
        });
    }
    return page(null, PAGES);
  }

  var compact = window.Intl ? new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 }) : null;

  /* "O 1.00 H 1.20 L 0.90 C 1.10 V 12.3M" for the bar under the pointer (the last one
     otherwise), built from text nodes: nothing here is ever parsed as HTML. */
  function showLegend(box, bar, volume, precision) {
    if (!box) return;
    box.textContent = "";
    if (!bar) return;
    var when = new Date(bar.time * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
    var parts = [["", when], ["O", bar.open], ["H", bar.high], ["L", bar.low], ["C", bar.close]];
    if (volume !== undefined && volume !== null) parts.push(["V", volume]);
    parts.forEach(function (part) {
      var span = document.createElement("span");
      var value = part[1];
      if (typeof value === "number") {
        value = part[0] === "V"
          ? "$" + (compact ? compact.format(value) : value.toFixed(0))
          : value.toLocaleString("en-US", { minimumFractionDigits: precision, maximumFractionDigits: precision });
      }
      if (part[0]) span.appendChild(document.createTextNode(part[0] + " "));
      var b = document.createElement("b");
      b.textContent = value;
      span.appendChild(b);
      span.dataset.field = part[0] || "t";
      box.appendChild(span);
    });
  }

  function setupChart(el) {
    var LW = window.LightweightCharts;
    if (!LW || el.dataset.ready) return;
    el.dataset.ready = "0";
    var legend = document.getElementById(el.dataset.legend);
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    var chart = LW.createChart(el, {
      autoSize: true,
      layout: { background: { color: "transparent" }, textColor: dark ? "#c5ccd6" : "#3b4452", attributionLogo: true },
      grid: { vertLines: { color: dark ? "#232a35" : "#eef1f5" }, horzLines: { color: dark ? "#232a35" : "#eef1f5" } },
      rightPriceScale: { borderVisible: false },
      timeScale: { borderVisible: false, timeVisible: true, secondsVisible: false }
    });
    var series = chart.addSeries(LW.CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN
    });
    series.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.26 } });
    /* Volume: bars on a scale of their own along the bottom fifth. */
    var volumes = chart.addSeries(LW.HistogramSeries, {
      priceFormat: { type: "volume" }, priceScaleId: "volume", lastValueVisible: false, priceLineVisible: false
    });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    var interval = "1m";
    var last = null, lastVolume = null, precision = 2;

    chart.subscribeCrosshairMove(function (param) {
      var bar = param && param.time ? param.seriesData.get(series) : null;
      var volume = bar ? param.seriesData.get(volumes) : null;
      if (bar) showLegend(legend, bar, volume ? volume.value : null, precision);
      else showLegend(legend, last, lastVolume, precision);
    });

    function load() {
      var wanted = interval;
      el.dataset.shown = "";
      return fetchCandles(el.dataset.candles, wanted)
        .then(function (candles) {
          if (wanted !== interval) return;
          var bars = candles.map(toBar);
          var bins = candles.map(toVolume);
          precision = pricePrecision(bars.length ? bars[bars.length - 1].close : 0);
          series.applyOptions({ priceFormat: { type: "price", precision: precision, minMove: Math.pow(10, -precision) } });
          series.setData(bars);
          volumes.setData(bins);
          last = bars.length ? bars[bars.length - 1] : null;
          lastVolume = bins.length ? bins[bins.length - 1].value : null;
          showLegend(legend, last, lastVolume, precision);
          chart.timeScale().fitContent();
          el.dataset.volumes = String(bins.length);
          el.dataset.shown = wanted;
          el.dataset.ready = String(bars.length);
        })
        .catch(function () { el.dataset.ready = "error"; });
    }

    /* A live tick moves the last bar (or opens the next); its volume comes with the next load. */
    function onTick(tick) {
      var bucket = bucketOf(tick.time, interval);
      var p = Number(tick.price);
      if (last && bucket === last.time) {
        last = { time: bucket, open: last.open, high: Math.max(last.high, p), low: Math.min(last.low, p), close: p };
      } else if (!last || bucket > last.time) {
        last = { time: bucket, open: last ? last.close : p, high: p, low: p, close: p };
        lastVolume = null;
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
