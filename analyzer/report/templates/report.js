// Sorting, filtering and opening attempts. Reads only the page itself (data-* attributes and
// cell text, escaped by the server): no capture text is ever parsed as HTML here.
(function () {
  "use strict";
  var table = document.getElementById("attempts");
  if (!table) { return; }
  var bodies = Array.prototype.slice.call(table.tBodies);
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var column = {};
  heads.forEach(function (th, i) { if (th.dataset.filter) { column[th.dataset.filter] = i; } });
  var $ = function (id) { return document.getElementById(id); };
  var verdict = $("f-verdict"), reason = $("f-reason");
  var texts = { client: $("f-client"), server: $("f-server"), path: $("f-path") };
  var range = null;

  function count(n) { return n.toLocaleString("en-US"); }  // 20,000 as the page writes it

  function cellText(body, index) {
    return body.rows[0].cells[index].textContent;
  }

  // At most `limit` matching rows are displayed: laying out a table of 20,000 rows took
  // Chromium seconds, and hidden rows cost nothing. "Show more" raises the limit.
  var page = parseInt(table.dataset.page, 10) || 500, limit = page;

  function apply(keepLimit) {
    if (keepLimit !== true) { limit = page; }
    var wantVerdict = verdict.value, wantReason = reason.value, matched = 0;
    var wanted = [];
    Object.keys(texts).forEach(function (name) {
      var value = texts[name].value.trim().toLowerCase();
      if (value) { wanted.push([column[name], value]); }
    });
    bodies.forEach(function (body) {
      var ok = (!wantVerdict || body.dataset.verdict === wantVerdict)
        && (!wantReason || body.dataset.reason === wantReason);
      if (ok && range) {
        var t = parseFloat(body.dataset.t);
        ok = t >= range[0] && t < range[1];
      }
      for (var i = 0; ok && i < wanted.length; i++) {
        ok = cellText(body, wanted[i][0]).toLowerCase().indexOf(wanted[i][1]) !== -1;
      }
      if (ok) { matched++; }
      var hide = !ok || matched > limit;
      if (body.hidden !== hide) { body.hidden = hide; }
    });
    var shown = Math.min(matched, limit);
    $("shown").textContent = count(shown) + " of " + count(bodies.length) + " shown";
    $("more").hidden = matched <= limit;
    $("more-text").textContent = count(matched - shown) + " more match the filters";
    document.querySelectorAll("[data-filter-verdict]").forEach(function (card) {
      card.classList.toggle("active", card.dataset.filterVerdict === wantVerdict);
    });
  }
  $("show-more").addEventListener("click", function () { limit += page; apply(true); });
  $("show-all").addEventListener("click", function () { limit = Infinity; apply(true); });

  var timer = 0;
  function later() { clearTimeout(timer); timer = setTimeout(apply, 120); }
  verdict.addEventListener("change", apply);
  reason.addEventListener("change", apply);
  Object.keys(texts).forEach(function (name) { texts[name].addEventListener("input", later); });
  $("filters").addEventListener("submit", function (e) { e.preventDefault(); });

  function setRange(from, to, label, bucket) {
    range = from === null ? null : [from, to];
    document.querySelectorAll(".bucket.selected").forEach(function (b) { b.classList.remove("selected"); });
    if (bucket) { bucket.classList.add("selected"); }
    $("f-range").hidden = range === null;
    $("f-range-text").textContent = label || "";
    apply();
  }
  $("f-range-clear").addEventListener("click", function () { setRange(null); });
  document.querySelectorAll("#timeline .bucket").forEach(function (bucket) {
    bucket.addEventListener("click", function () {
      var title = bucket.querySelector("title");
      var label = title ? title.textContent.split(": ")[0] : "";
      setRange(parseFloat(bucket.dataset.from), parseFloat(bucket.dataset.to), label, bucket);
      table.scrollIntoView({ block: "start" });
    });
  });

  $("f-reset").addEventListener("click", function () {
    verdict.value = ""; reason.value = "";
    Object.keys(texts).forEach(function (name) { texts[name].value = ""; });
    setRange(null);
  });
  document.querySelectorAll("[data-filter-verdict]").forEach(function (card) {
    card.addEventListener("click", function () {
      verdict.value = card.dataset.filterVerdict; apply();
    });
  });
  document.querySelectorAll("[data-filter-reason]").forEach(function (link) {
    link.addEventListener("click", function () {
      reason.value = link.dataset.filterReason; apply();
      table.scrollIntoView({ block: "start" });
    });
  });

  // Sorting: by number, by time (data-t), or by the cell's text; ties keep the current order.
  var sortedBy = 0, ascending = true;
  function key(body, index, kind) {
    if (kind === "time") { return parseFloat(body.dataset.t); }
    var text = cellText(body, index);
    if (kind === "num") { var n = parseFloat(text); return isNaN(n) ? -Infinity : n; }
    return text.toLowerCase();
  }
  heads.forEach(function (th, index) {
    th.addEventListener("click", function () {
      ascending = sortedBy === index ? !ascending : true;
      sortedBy = index;
      var kind = th.dataset.key;
      var keyed = bodies.map(function (body, position) {
        return [key(body, index, kind), position, body];
      });
      keyed.sort(function (a, b) {
        if (a[0] < b[0]) { return ascending ? -1 : 1; }
        if (a[0] > b[0]) { return ascending ? 1 : -1; }
        return a[1] - b[1];
      });
      var fragment = document.createDocumentFragment();
      bodies = keyed.map(function (k) { fragment.appendChild(k[2]); return k[2]; });
      table.appendChild(fragment);
      apply(true);  // the first rows of the new order are the ones displayed
      heads.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    });
  });

  // Opening an attempt's postmortem (its second row, once unpacked).
  function toggle(body, open) {
    var detail = body.rows[1];
    if (!detail) { return; }
    open = open === undefined ? detail.hidden : open;
    detail.hidden = !open;
    body.classList.toggle("open", open);
    body.rows[0].setAttribute("aria-expanded", open ? "true" : "false");
  }
  function summaryRow(target) {
    var row = target.closest && target.closest("tr");
    return row && row.parentNode.rows[0] === row && row.parentNode.dataset.attempt ? row : null;
  }
  table.addEventListener("click", function (e) {
    var row = summaryRow(e.target);
    if (row && !(window.getSelection && String(window.getSelection()))) { toggle(row.parentNode); }
  });
  table.addEventListener("keydown", function (e) {
    var row = summaryRow(e.target);
    if (row && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); toggle(row.parentNode); }
  });
  $("expand-all").addEventListener("click", function () {
    bodies.forEach(function (body) { if (!body.hidden) { toggle(body, true); } });
  });
  $("collapse-all").addEventListener("click", function () {
    bodies.forEach(function (body) { toggle(body, false); });
  });
  var byNumber = {};
  bodies.forEach(function (body) { byNumber[body.dataset.attempt] = body; });
  function openFromHash() {
    var match = /^#attempt-(\d+)$/.exec(location.hash);
    var body = match && byNumber[match[1]];
    if (body) { body.hidden = false; toggle(body, true); body.scrollIntoView({ block: "start" }); }
  }

  // The rows past the detail limit and the postmortems travel gzip-compressed (html.py):
  // unpack them, append the rows, give each attempt its postmortem. DOMParser never runs
  // scripts, and the page's policy would refuse them anyway.
  function parseRows(html) {
    var parsed = new DOMParser().parseFromString("<table>" + html + "</table>", "text/html");
    return parsed.querySelector("table");
  }
  function placeRows(html) {
    var fragment = document.createDocumentFragment();
    Array.prototype.slice.call(parseRows(html).tBodies).forEach(function (body) {
      body = document.adoptNode(body);
      byNumber[body.dataset.attempt] = body;
      bodies.push(body);
      fragment.appendChild(body);
    });
    table.appendChild(fragment);
  }
  function placeDetails(html) {
    parseRows(html).querySelectorAll("tr[data-for]").forEach(function (detail) {
      var body = byNumber[detail.dataset.for];
      if (!body) { return; }
      body.appendChild(document.adoptNode(detail));
      body.classList.add("has-detail");
      body.rows[0].tabIndex = 0;
      body.rows[0].setAttribute("aria-expanded", "false");
    });
  }
  function unpack(id) {
    var packed = $(id);
    var text = packed ? packed.textContent.replace(/\s+/g, "") : "";
    if (!text) { return Promise.resolve(""); }
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("no DecompressionStream"));
    }
    var binary = atob(text), bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }
  function done(state) {
    // "ready" once every row and postmortem is in place: tests and scripts wait for it
    document.documentElement.dataset.state = state;
    apply();
    window.addEventListener("hashchange", openFromHash);
    openFromHash();
  }
  apply();
  Promise.all([unpack("rows-data"), unpack("details-data")]).then(function (texts) {
    placeRows(texts[0]);
    placeDetails(texts[1]);
    bodies.forEach(function (body) {  // past the detail limit: say where the postmortem is
      if (!body.rows[1]) {
        body.rows[0].title = "No postmortem in this page for attempt " + body.dataset.attempt
          + ": upgrade-analyzer read CAPTURE... --attempt " + body.dataset.attempt;
      }
    });
    done("ready");
  }, function () {
    $("details-unavailable").hidden = false;
    done("unavailable");
  });
})();
