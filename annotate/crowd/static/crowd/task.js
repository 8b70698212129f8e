// Task page: tile toggling by keyboard, counters, category keys 1-6, lease countdown, active time.
// The page works without this script (plain checkboxes and radios); the script only makes it faster.
(function () {
  "use strict";
  var form = document.getElementById("task-form");
  if (!form) return;
  var boxes = Array.prototype.slice.call(form.querySelectorAll(".tile-box"));
  var grid = document.getElementById("tiles");
  var counter = document.getElementById("flag-count");
  var warn = document.getElementById("flag-warn");
  var minUnmarked = parseInt(form.getAttribute("data-min-unmarked") || "10", 10);

  function update() {
    var marked = 0;
    boxes.forEach(function (box) {
      box.closest(".tile").classList.toggle("is-flagged", box.checked);
      if (box.checked) marked += 1;
    });
    counter.textContent = marked + " marked as not fitting, " + (boxes.length - marked) + " unmarked";
    if (warn) warn.hidden = boxes.length - marked >= minUnmarked;
  }
  form.addEventListener("change", update);
  update();

  // How many tiles sit on the first row: arrow up/down jump by that many.
  function columns() {
    var top = boxes[0].closest("li").offsetTop, n = 0;
    for (var i = 0; i < boxes.length && boxes[i].closest("li").offsetTop === top; i += 1) n += 1;
    return Math.max(n, 1);
  }
  grid.addEventListener("keydown", function (event) {
    var i = boxes.indexOf(document.activeElement);
    if (i < 0) return;
    var steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
    if (event.key === "Enter") { event.preventDefault(); boxes[i].click(); return; }
    if (!(event.key in steps)) return;
    event.preventDefault();
    var j = Math.min(boxes.length - 1, Math.max(0, i + steps[event.key]));
    boxes[j].focus();
  });

  // Keys 1-6 pick the category, unless the worker is typing.
  var radios = form.querySelectorAll("input[name=category]");
  document.addEventListener("keydown", function (event) {
    var t = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text") || (t.tagName === "INPUT" && !t.getAttribute("type"))) return;
    var k = parseInt(event.key, 10);
    if (k >= 1 && k <= radios.length && !radios[k - 1].disabled) {
      radios[k - 1].checked = true;
      event.preventDefault();
    }
  });

  // Lease countdown from the seconds the server says are left (no clock-skew surprises).
  var clock = document.getElementById("lease-clock");
  if (clock && clock.getAttribute("data-seconds-left")) {
    var end = Date.now() + parseFloat(clock.getAttribute("data-seconds-left")) * 1000;
    var tick = function () {
      var s = Math.max(0, Math.round((end - Date.now()) / 1000));
      clock.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
      if (s > 0) { setTimeout(tick, 1000); return; }
      clock.closest(".lease").classList.add("expired");
      document.getElementById("lease-note").textContent = "Time is up: this task went back to the pool.";
    };
    tick();
  }

  // Active seconds: time with the page visible and some input in the last minute.
  var active = 0, last = Date.now(), lastInput = Date.now();
  ["keydown", "pointerdown", "pointermove", "wheel", "input"].forEach(function (type) {
    document.addEventListener(type, function () { lastInput = Date.now(); }, { passive: true });
  });
  setInterval(function () {
    var now = Date.now();
    if (!document.hidden && now - lastInput < 60000) active += (now - last) / 1000;
    last = now;
  }, 1000);
  form.addEventListener("submit", function () {
    var now = Date.now();
    if (!document.hidden && now - lastInput < 60000) active += (now - last) / 1000;
    last = now;
    form.elements.active_seconds.value = active.toFixed(1);
    var button = document.getElementById("submit");
    if (button) setTimeout(function () { button.disabled = true; }, 0);
  });
})();
