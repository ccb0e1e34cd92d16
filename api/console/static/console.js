/* ClaimLane review console: keyboard shortcuts, photo zoom, heatmap toggle, queue refresh.
   Plain JavaScript, nothing fetched from elsewhere; every page also works without it. */
(function () {
  "use strict";

  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable) return true;
    if (tag !== "INPUT") return false;
    var type = (target.type || "text").toLowerCase();
    return ["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"].indexOf(type) < 0;
  }

  function openDialog(dialog) {
    if (dialog && !dialog.open) dialog.showModal();
  }

  /* ------------------------------------------------------------------------------------------- */
  /* Every page: help dialog, forms that cannot be sent twice */

  var help = $("#help");
  $$("[data-help-open]").forEach(function (btn) {
    btn.addEventListener("click", function () { openDialog(help); });
  });

  $$("form[method='post']").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        $$("button[type='submit']", form).forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });

  var handlers = {};  // key -> function(event); filled in by the page sections below

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (isTyping(e.target)) return;
    var lightbox = $("#lightbox");
    var inLightbox = lightbox && lightbox.open;
    if (help && help.open) return;  // the dialog handles Esc itself
    if (e.key === "?") { e.preventDefault(); openDialog(help); return; }
    var fn = handlers[e.key];
    if (fn && (!inLightbox || fn.inLightbox)) {
      if (fn(e) !== false) e.preventDefault();
    }
  });

  /* ------------------------------------------------------------------------------------------- */
  /* The queue */

  var queue = $("#queue");
  if (queue) {
    var rows = $$("tbody tr[data-href]", queue);
    var selected = -1;
    var remembered = window.sessionStorage.getItem("claimlane.queue.selected");

    var select = function (i) {
      if (!rows.length) return;
      i = Math.max(0, Math.min(rows.length - 1, i));
      if (rows[selected]) rows[selected].classList.remove("selected");
      selected = i;
      rows[i].classList.add("selected");
      rows[i].scrollIntoView({ block: "nearest" });
      window.sessionStorage.setItem("claimlane.queue.selected", rows[i].getAttribute("data-href"));
    };

    rows.forEach(function (row, i) {
      if (row.getAttribute("data-href") === remembered) select(i);
      row.addEventListener("click", function (e) {
        if (e.target.closest("a, button, input, select, label")) return;
        window.location.href = row.getAttribute("data-href");
      });
    });

    handlers.j = function () { select(selected + 1); };
    handlers.k = function () { select(selected < 0 ? 0 : selected - 1); };
    handlers.ArrowDown = handlers.j;
    handlers.ArrowUp = handlers.k;
    handlers.Enter = function () {
      if (selected < 0 || document.activeElement.closest && document.activeElement.closest("a, button")) return false;
      window.location.href = rows[selected].getAttribute("data-href");
    };
    handlers.n = function () {
      if (rows.length) window.location.href = rows[selected < 0 ? 0 : selected].getAttribute("data-href");
    };
  }

  var refresh = $("[data-refresh]");
  if (refresh) {
    var every = parseInt(refresh.getAttribute("data-refresh"), 10) * 1000;
    var loaded = Date.now();
    window.setInterval(function () {
      var busy = document.hidden || (help && help.open) ||
        (document.activeElement && document.activeElement.tagName === "SELECT");
      if (!busy && Date.now() - loaded >= every) window.location.reload();
    }, 1000);
  }

  /* ------------------------------------------------------------------------------------------- */
  /* A case */

  var photosBox = $("#photos");
  var lightbox = $("#lightbox");
  var heatToggle = $("#heat-toggle");
  var figures = photosBox ? $$("figure.photo", photosBox) : [];
  var current = 0;

  function setHeat(on) {
    if (!heatToggle) return;
    heatToggle.checked = on;
    if (photosBox) photosBox.classList.toggle("heat-on", on);
    if (lightbox) lightbox.classList.toggle("heat-on", on);
    var legend = $("#heat-legend");
    if (legend) legend.hidden = !on;
    try { window.localStorage.setItem("claimlane.heatmap", on ? "1" : "0"); } catch (err) { /* private mode */ }
  }

  if (heatToggle) {
    var saved = null;
    try { saved = window.localStorage.getItem("claimlane.heatmap"); } catch (err) { /* private mode */ }
    setHeat(saved === "1");
    heatToggle.addEventListener("change", function () { setHeat(heatToggle.checked); });
    handlers.h = function () { setHeat(!heatToggle.checked); };
    handlers.h.inLightbox = true;
  }

  function setCurrent(i, scroll) {
    if (!figures.length) return;
    current = (i + figures.length) % figures.length;
    figures.forEach(function (f, k) { f.classList.toggle("current", k === current); });
    if (scroll) figures[current].scrollIntoView({ block: "nearest", behavior: "smooth" });
    if (lightbox && lightbox.open) showInLightbox();
  }

  /* Zoom: wheel zooms around the pointer, drag pans, 0 resets. */
  var zoom = { scale: 1, x: 0, y: 0 };
  var layer = $("#lb-layer");
  var stage = $("#lb-stage");

  function applyZoom() {
    if (layer) layer.style.transform = "translate(" + zoom.x + "px," + zoom.y + "px) scale(" + zoom.scale + ")";
  }
  function resetZoom() { zoom = { scale: 1, x: 0, y: 0 }; applyZoom(); }
  function zoomAt(factor, cx, cy) {
    var next = Math.max(1, Math.min(8, zoom.scale * factor));
    var k = next / zoom.scale;
    zoom.x = cx - (cx - zoom.x) * k;
    zoom.y = cy - (cy - zoom.y) * k;
    zoom.scale = next;
    if (next === 1) { zoom.x = 0; zoom.y = 0; }
    applyZoom();
  }

  function showInLightbox() {
    var fig = figures[current];
    if (!fig || !lightbox) return;
    $("#lb-img").src = fig.getAttribute("data-src");
    $("#lb-img").alt = "Photo " + (current + 1) + ", zoomed";
    var heat = $("#lb-heat");
    var heatSrc = fig.getAttribute("data-heat");
    heat.hidden = !heatSrc;
    if (heatSrc) heat.src = heatSrc; else heat.removeAttribute("src");
    $("#lb-title").textContent = "Photo " + (current + 1) + " of " + figures.length +
      (heatSrc ? "" : " · no heatmap for this model");
    resetZoom();
  }

  function openZoom() {
    if (!lightbox || !figures.length) return;
    showInLightbox();
    openDialog(lightbox);
  }

  if (figures.length) {
    setCurrent(0, false);
    figures.forEach(function (fig, i) {
      var frame = $("[data-zoom]", fig);
      if (frame) frame.addEventListener("click", function () { setCurrent(i, false); openZoom(); });
      fig.addEventListener("focusin", function () { if (current !== i) setCurrent(i, false); });
    });
    handlers.j = function () { setCurrent(current + 1, true); };
    handlers.k = function () { setCurrent(current - 1, true); };
    handlers.j.inLightbox = handlers.k.inLightbox = true;
    handlers.z = openZoom;
  }

  if (lightbox && stage) {
    stage.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = stage.getBoundingClientRect();
      zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    var drag = null;
    stage.addEventListener("pointerdown", function (e) {
      drag = { x: e.clientX - zoom.x, y: e.clientY - zoom.y };
      stage.setPointerCapture(e.pointerId);
      stage.classList.add("dragging");
    });
    stage.addEventListener("pointermove", function (e) {
      if (!drag) return;
      zoom.x = e.clientX - drag.x;
      zoom.y = e.clientY - drag.y;
      applyZoom();
    });
    var endDrag = function () { drag = null; stage.classList.remove("dragging"); };
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);
    stage.addEventListener("dblclick", function (e) {
      var r = stage.getBoundingClientRect();
      if (zoom.scale > 1) resetZoom(); else zoomAt(2.5, e.clientX - r.left, e.clientY - r.top);
    });
    var centre = function () { var r = stage.getBoundingClientRect(); return [r.width / 2, r.height / 2]; };
    handlers["0"] = resetZoom;
    handlers["+"] = handlers["="] = function () { var c = centre(); zoomAt(1.25, c[0], c[1]); };
    handlers["-"] = function () { var c = centre(); zoomAt(1 / 1.25, c[0], c[1]); };
    handlers["0"].inLightbox = handlers["+"].inLightbox = handlers["="].inLightbox = handlers["-"].inLightbox = true;
  }

  /* Grades the adjuster changed from the model's are marked. */
  $$("select[data-model-grade]").forEach(function (sel) {
    var mark = function () { sel.classList.toggle("changed", sel.value !== sel.getAttribute("data-model-grade")); };
    sel.addEventListener("change", mark);
    mark();
  });

  var takeButton = $("#take-button");
  if (takeButton) {
    handlers.t = function () { if (!takeButton.disabled) takeButton.form.requestSubmit(takeButton); };
  }

  var nextCase = $("#next-case");
  if (nextCase) handlers.n = function () { window.location.href = nextCase.href; };

  /* `a` selects "approve" and arms the submit button; Enter confirms, Esc (or leaving it) cancels. */
  var decideForm = $("#decision-form");
  var decideButton = $("#decide-button");
  var confirmHint = $("#confirm-hint");
  if (decideForm && decideButton) {
    var disarm = function () {
      decideButton.classList.remove("confirming");
      decideButton.textContent = "Submit decision";
      if (confirmHint) confirmHint.hidden = true;
    };
    handlers.a = function () {
      var approve = $("input[name='action'][value='approve']", decideForm);
      if (!approve) return false;
      if (approve.disabled) {
        var off = $("#approve-off-hint");
        if (off) off.hidden = false;
        return;
      }
      approve.checked = true;
      decideButton.textContent = "Approve";
      decideButton.classList.add("confirming");
      if (confirmHint) confirmHint.hidden = false;
      decideButton.focus();
    };
    decideButton.addEventListener("blur", disarm);
    decideButton.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { e.preventDefault(); disarm(); decideButton.blur(); }
    });
  }
})();
