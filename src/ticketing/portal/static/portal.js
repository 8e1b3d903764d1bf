// Moves focus to a form's error summary when a page comes back with one, so keyboard and
// screen-reader users land on the list of what to correct.
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
  liveQueue();
});

// The agent's queue follows the ticket events of its tenant (Server-Sent Events on the
// same origin, authenticated by the session cookie): on each created, updated or deleted
// ticket it fetches this very page again (same filters, sort and page) and swaps in its
// results, so what the table shows is always what the server would render now.
function liveQueue() {
  var results = document.getElementById("queue-results");
  if (!results || !results.dataset.live || !window.EventSource || !window.fetch) {
    return;
  }
  var announce = document.getElementById("queue-live");
  var source = new EventSource(results.dataset.live);
  var pending = null;
  var running = false;

  function refresh() {
    pending = null;
    if (running) {
      pending = setTimeout(refresh, 250);
      return;
    }
    running = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("queue-results");
        if (fresh && fresh.innerHTML !== results.innerHTML) {
          results.innerHTML = fresh.innerHTML;
          if (announce) {
            announce.textContent = "The queue was updated.";
          }
        }
      })
      .catch(function () {})
      .then(function () {
        running = false;
      });
  }

  source.addEventListener("connected", function () {
    results.setAttribute("data-connected", "true");
  });
  ["created", "updated", "deleted"].forEach(function (name) {
    source.addEventListener(name, function () {
      if (pending === null) {
        pending = setTimeout(refresh, 250);
      }
    });
  });
  // The stream ends with an `error` event when the session's token expires: stop then
  // (the next page load signs in again); other drops are retried by EventSource itself.
  source.addEventListener("error", function (event) {
    if (event.data && event.data.indexOf("TOKEN_EXPIRED") !== -1) {
      source.close();
    }
  });
}
