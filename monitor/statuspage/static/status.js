// waba-monitor status page: refresh the content every data-refresh seconds without a reload.
// It fetches the same URL (so the filter and page stay), swaps <main id="content">, and keeps
// the scroll position and whatever is typed in the filter box. Without this script the page
// is complete; it only says to reload.
(function () {
  "use strict";
  var every = parseFloat(document.body.getAttribute("data-refresh") || "0");
  var state = document.getElementById("refresh-state");
  if (!(every > 0) || !window.fetch || !window.DOMParser) {
    return;
  }
  var label = "Updates every " + every + " s";
  state.textContent = label + ".";

  function show(text, failed) {
    state.textContent = text;
    state.className = failed ? "warning" : "";
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("content");
    var current = document.getElementById("content");
    if (!fresh || !current) {
      throw new Error("unexpected page");
    }
    var x = window.scrollX, y = window.scrollY;
    current.replaceWith(document.adoptNode(fresh));
    window.scrollTo(x, y);
    document.title = doc.title;
  }

  function tick() {
    fetch(window.location.pathname + window.location.search, {
      headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.text();
    }).then(function (html) {
      swap(html);
      show(label + "; updated " + new Date().toLocaleTimeString() + ".", false);
    }).catch(function (error) {
      show("Update failed (" + error.message + "); trying again in " + every + " s.", true);
    }).then(function () {
      window.setTimeout(tick, every * 1000);
    });
  }

  window.setTimeout(tick, every * 1000);
}());
