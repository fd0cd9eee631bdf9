/*
 * The review queue, worked from the keyboard without a page reload.
 *
 * Loads the queue from the API (data-queue-url) and shows one image at a time, large, with the
 * model's label, the members' votes and the flags. Keys:
 *   1-4    pick a class: the model's own class confirms it; another asks for a reason, then
 *          Enter saves the reclassification (Esc cancels)
 *   Enter  confirm the model's label
 *   N      not assessable, then 1-3 for the reason (Esc cancels)
 *   <- ->  previous / next image
 * Every verdict is a POST to the API (data-verdict-url-template, with the CSRF token); on success
 * the next image awaiting a verdict is shown and the counts in the navigation bar go down.
 * Buttons do the same for a mouse. Errors are shown in the status line, never swallowed.
 */
(function () {
  "use strict";

  var root = document.getElementById("reviewer");
  if (!root) return;
  var CLASSES = ["Benign", "Early", "Pre", "Pro"];
  var NA_REASONS = ["poor_quality", "wrong_specimen", "no_relevant_cells"];
  var items = [];
  var index = 0;
  var mode = "idle"; // idle | reason | na | busy
  var pendingLabel = null;

  function $(sel) { return root.querySelector(sel); }
  function text(sel, value) { $(sel).textContent = value; }
  function el(tag, cls, content) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function setState(message, kind) {
    var state = $("[data-state]");
    state.textContent = message || "";
    state.className = "reviewer-state" + (kind ? " reviewer-state-" + kind : "");
  }

  function current() { return items[index]; }

  function render() {
    var item = current();
    var empty = document.getElementById("reviewer-empty");
    if (!item) {
      root.hidden = true;
      empty.hidden = false;
      return;
    }
    root.hidden = false;
    empty.hidden = true;
    var p = item.prediction;
    text("[data-position]", "Image " + (index + 1) + " of " + items.length);
    text("[data-specimen]", item.specimen.accession_number);
    $("[data-image-link]").href = item.page_url;
    var img = $("[data-image]");
    img.src = item.file_url;
    img.alt = "Smear image #" + item.id;
    var flags = $("[data-flags]");
    flags.textContent = "";
    item.flags.forEach(function (f) {
      var badge = el("span", "flag-badge flag-" + f.reason, f.label);
      badge.title = f.detail;
      flags.appendChild(badge);
      flags.appendChild(document.createTextNode(" "));
    });
    var chip = $("[data-model-label]");
    var probs = $("[data-probabilities]");
    var members = $("[data-members]");
    probs.textContent = "";
    members.textContent = "";
    $("[data-demo]").hidden = !(p && p.is_demo);
    if (p && p.out_of_domain) {
      chip.textContent = "Outside the model's domain";
      chip.className = "label-chip label-chip-lg label-ood";
      text("[data-vote-summary]", "not classified: pick the class yourself (1-4)");
    } else if (p) {
      chip.textContent = p.label;
      chip.className = "label-chip label-chip-lg label-" + p.label.toLowerCase();
      text("[data-vote-summary]", p.votes + "/" + p.member_count + " " + p.agreement);
      CLASSES.forEach(function (c, i) {
        var row = el("tr");
        row.appendChild(el("th", "", (i + 1) + " " + c));
        row.appendChild(el("td", "num", ((p.probabilities[c] || 0) * 100).toFixed(1) + "%"));
        probs.appendChild(row);
      });
      p.members.forEach(function (m) {
        var row = el("tr");
        row.appendChild(el("td", "", m.name));
        row.appendChild(el("td", "", m.label));
        row.appendChild(el("td", "num", ((m.probabilities[m.label] || 0) * 100).toFixed(0) + "%"));
        members.appendChild(row);
      });
    } else {
      chip.textContent = "no result";
      chip.className = "label-chip label-chip-lg";
      text("[data-vote-summary]", "classification failed");
    }
    $("[data-confirm]").disabled = !p || p.out_of_domain;
    setState(item.verdict ? "Recorded: " + item.verdict : "");
    setMode("idle");
  }

  function setMode(next) {
    mode = next;
    $("[data-reason-box]").hidden = next !== "reason";
    $("[data-na-box]").hidden = next !== "na";
    if (next === "reason") {
      var input = $("[data-reason]");
      input.value = "";
      text("[data-reason-prompt]", "Why " + pendingLabel + " instead of " + current().prediction.label + "?");
      input.focus();
    }
  }

  function move(step) {
    if (!items.length) return;
    index = Math.max(0, Math.min(items.length - 1, index + step));
    render();
  }

  function nextAwaiting() {
    for (var i = index + 1; i < items.length; i++) if (!items[i].verdict) { index = i; return render(); }
    for (var j = 0; j < items.length; j++) if (!items[j].verdict) { index = j; return render(); }
    render();
    setState("Every image in this queue has a verdict.", "done");
  }

  function adjustNav(flagged) {
    var awaiting = document.querySelector("[data-review-awaiting]");
    if (awaiting) awaiting.textContent = Math.max(0, parseInt(awaiting.textContent, 10) - 1);
    var f = document.querySelector("[data-review-flagged]");
    if (f && flagged) {
      var left = Math.max(0, parseInt(f.textContent, 10) - 1);
      f.textContent = left + " flagged";
      f.hidden = left === 0;
    }
  }

  function send(body, description) {
    var item = current();
    if (!item || mode === "busy") return;
    mode = "busy";
    setState("Saving…");
    var url = root.getAttribute("data-verdict-url-template").replace("/0/", "/" + item.id + "/");
    // The result shown: if the image was classified again meanwhile, the portal refuses (409).
    body.prediction = item.prediction ? item.prediction.id : null;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": root.getAttribute("data-csrf-token")
      },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(data.detail || ("The portal answered " + response.status + "."));
        return data;
      });
    }).then(function () {
      var first = !item.verdict;
      item.verdict = description;
      if (first) adjustNav(item.flags.length > 0);
      mode = "idle";
      nextAwaiting();
    }).catch(function (error) {
      mode = "idle";
      setState("Not saved: " + error.message, "error");
    });
  }

  function confirmable() {
    var item = current();
    return item && item.prediction && !item.prediction.out_of_domain;
  }

  function pick(n) {
    var item = current();
    if (!item || !item.prediction) return setState("This image has no model result: mark it not assessable (N) or open its page to exclude it.", "error");
    var label = CLASSES[n - 1];
    if (item.prediction.out_of_domain) return send({ kind: "reclassify", label: label }, "classified as " + label);
    if (label === item.prediction.label) return send({ kind: "confirm" }, "confirmed " + label);
    pendingLabel = label;
    setMode("reason");
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key;
    if (mode === "reason") {
      if (key === "Escape") { event.preventDefault(); setMode("idle"); root.focus(); }
      else if (key === "Enter") {
        event.preventDefault();
        var reason = $("[data-reason]").value.trim();
        if (!reason) return setState("A reason is required to reclassify.", "error");
        send({ kind: "reclassify", label: pendingLabel, reason: reason }, "reclassified to " + pendingLabel);
      }
      return;
    }
    var target = event.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    if (mode === "na") {
      event.preventDefault();
      if (key === "Escape") return setMode("idle");
      var i = parseInt(key, 10);
      if (i >= 1 && i <= 3) send({ kind: "not_assessable", reason: NA_REASONS[i - 1] }, "not assessable");
      return;
    }
    if (mode === "busy") return;
    if (key >= "1" && key <= "4") { event.preventDefault(); pick(parseInt(key, 10)); }
    else if (key === "Enter") {
      if (target && target.tagName === "BUTTON") return; // the button's own click
      event.preventDefault();
      if (confirmable()) send({ kind: "confirm" }, "confirmed " + current().prediction.label);
    }
    else if (key === "n" || key === "N") { event.preventDefault(); setMode("na"); }
    else if (key === "ArrowRight") { event.preventDefault(); move(1); }
    else if (key === "ArrowLeft") { event.preventDefault(); move(-1); }
  }

  function wireButtons() {
    root.querySelectorAll("[data-pick]").forEach(function (b) {
      b.addEventListener("click", function () { pick(parseInt(b.getAttribute("data-pick"), 10)); });
    });
    $("[data-confirm]").addEventListener("click", function () {
      if (confirmable()) send({ kind: "confirm" }, "confirmed " + current().prediction.label);
    });
    $("[data-na]").addEventListener("click", function () { setMode("na"); });
    $("[data-prev]").addEventListener("click", function () { move(-1); });
    $("[data-next]").addEventListener("click", function () { move(1); });
  }

  function load() {
    fetch(root.getAttribute("data-queue-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("The queue could not be loaded (" + r.status + ").");
        return r.json();
      })
      .then(function (data) {
        items = data.results;
        index = 0;
        var list = document.getElementById("queue-list");
        if (list) list.hidden = true;
        render();
      })
      .catch(function (error) {
        root.hidden = false;
        setState(error.message + " Use the list below.", "error");
      });
  }

  document.addEventListener("keydown", onKey);
  wireButtons();
  load();
})();
