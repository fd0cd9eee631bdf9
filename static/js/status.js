/*
 * Live status for smear images, without reloading the page.
 *
 * Every element with data-poll-url polls that JSON endpoint (cases:image-status) until the
 * image is finished. When the reported state differs from data-state, the server-rendered
 * fragments in the answer replace the page's: result_html goes into [data-result] (the image
 * page), badge_html into the badge (data-badge-target, or [data-badge-cell] in a table row),
 * summary_html into [data-summary-cell]. The server renders every fragment, so the page and
 * the update share one template each.
 *
 * Bar widths come as data-width (a percentage) and are set here: the Content-Security-Policy
 * allows no inline style attribute.
 *
 * The updates never end silently: when the endpoint refuses (4xx: e.g. access was withdrawn)
 * polling stops, and when it keeps failing (5xx, network) it is retried ever less often; either
 * way the page's notice ([data-poll-notice], cases/_poll_notice.html) says so and what to do,
 * and it is hidden again once an answer comes.
 */
(function () {
  "use strict";

  var FIRST_DELAY = 1500;
  var MAX_DELAY = 8000;
  var MAX_FAILING_DELAY = 60000; // a failing server is asked less and less often
  var FAILURES_SHOWN = 3; // consecutive failures before the page says so
  var ADVICE = " Reload the page; if this persists, tell an administrator.";
  var pollers = [];

  function Poller(el) {
    this.el = el;
    this.url = el.getAttribute("data-poll-url");
    this.delay = FIRST_DELAY;
    this.timer = null;
    this.stopped = false;
    this.failures = 0;
    this.problem = null; // what the notice says for this poller, or null
  }

  // The page's notice shows the first poller's problem, and hides when none has one.
  function showProblems() {
    var notice = document.querySelector("[data-poll-notice]");
    if (!notice) {
      notice = document.createElement("p");
      notice.className = "notice notice-warning";
      notice.setAttribute("data-poll-notice", "");
      notice.setAttribute("role", "alert");
      var main = document.getElementById("main") || document.body;
      main.insertBefore(notice, main.firstChild);
    }
    var problem = null;
    for (var i = 0; i < pollers.length && !problem; i++) { problem = pollers[i].problem; }
    if (problem) {
      if (notice.textContent !== problem) { notice.textContent = problem; }
      notice.hidden = false;
    } else {
      notice.hidden = true;
    }
  }

  Poller.prototype.setProblem = function (problem) {
    if (this.problem === problem) return;
    this.problem = problem;
    showProblems();
  };

  Poller.prototype.schedule = function () {
    var self = this;
    if (self.stopped) return;
    clearTimeout(self.timer);
    self.timer = setTimeout(function () { self.tick(); }, self.delay);
  };

  Poller.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this.timer);
  };

  Poller.prototype.tick = function () {
    var self = this;
    if (document.hidden) { return; } // resumed by the visibilitychange listener
    fetch(self.url, {
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (response.redirected) {
        // The session ended (idle too long): take the patient's data off the screen. Reload
        // the page itself, so that signing in again comes back to it, not to this poll.
        self.stop();
        window.location.reload();
        return null;
      }
      if (response.status >= 500) {
        self.backOff("the server answered " + response.status); // perhaps passing: try later
        return null;
      }
      if (!response.ok || type.indexOf("application/json") === -1) {
        // No longer visible to this user (404, 403) or not a status answer: asking again
        // would get the same, so stop, and say so.
        self.stop();
        self.setProblem("Updates stopped: the server refused this page's status check (" +
          (response.ok ? "not a status answer" : "error " + response.status) + ")." + ADVICE);
        return null;
      }
      return response.json();
    }).then(function (data) {
      if (!data) return;
      self.failures = 0;
      self.setProblem(null);
      if (data.state !== self.el.getAttribute("data-state")) {
        self.apply(data);
        self.delay = FIRST_DELAY;
      } else {
        self.delay = Math.min(Math.round(self.delay * 1.3), MAX_DELAY);
      }
      // A finished image may still wait for its Grad-CAM maps (a follow-up task).
      if (data.finished && !data.maps_pending) { self.stop(); } else { self.schedule(); }
    }).catch(function () {
      self.backOff("the server could not be reached"); // network hiccup: try again later
    });
  };

  // A failure that may pass: ask again later, less and less often (3 s, 6 s, 12 s… up to a
  // minute); after a few in a row, say so.
  Poller.prototype.backOff = function (why) {
    this.failures += 1;
    this.delay = Math.min(FIRST_DELAY * Math.pow(2, this.failures), MAX_FAILING_DELAY);
    if (this.failures >= FAILURES_SHOWN) {
      this.setProblem("Updates are failing: " + why + ". Still trying; the status shown may " +
        "be out of date." + ADVICE);
    }
    this.schedule();
  };

  function applyWidths(root) {
    var bars = root.querySelectorAll("[data-width]");
    for (var i = 0; i < bars.length; i++) {
      var width = parseFloat(bars[i].getAttribute("data-width"));
      if (!isNaN(width)) { bars[i].style.width = Math.max(0, Math.min(100, width)) + "%"; }
    }
  }

  Poller.prototype.apply = function (data) {
    var el = this.el;
    el.setAttribute("data-state", data.state);
    el.setAttribute("data-status", data.status);
    el.setAttribute("data-finished", data.finished ? "true" : "false");

    var result = el.querySelector("[data-result]");
    if (result && typeof data.result_html === "string") {
      result.innerHTML = data.result_html;
      applyWidths(result);
    }
    var badgeTarget = el.getAttribute("data-badge-target");
    var badge = badgeTarget ? document.querySelector(badgeTarget) : el.querySelector("[data-badge-cell]");
    if (badge && typeof data.badge_html === "string") {
      badge.innerHTML = data.badge_html;
    }
    var summary = el.querySelector("[data-summary-cell]");
    if (summary && typeof data.summary_html === "string") {
      summary.innerHTML = data.summary_html;
    }
    document.dispatchEvent(new CustomEvent("lp:image-status", { detail: data }));
    // The image page's verdict form judges the result it was drawn with: once a new result
    // is in, draw the page again (a verdict on the old one would be refused).
    var verdictForm = document.querySelector("form.verdict-form[data-prediction]");
    if (verdictForm && data.finished &&
        String(data.prediction_id || "") !== verdictForm.getAttribute("data-prediction")) {
      window.location.reload();
    }
  };

  function start() {
    applyWidths(document);
    if (!window.fetch) return; // very old browsers: the page still works with a manual reload
    var nodes = document.querySelectorAll("[data-poll-url]");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].getAttribute("data-finished") === "true") continue;
      var poller = new Poller(nodes[i]);
      pollers.push(poller);
      poller.schedule();
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) return;
      for (var j = 0; j < pollers.length; j++) {
        if (!pollers[j].stopped) { pollers[j].delay = FIRST_DELAY; pollers[j].schedule(); }
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
