// Poll the run's status JSON and update the progress table until the run finishes.
(function () {
  "use strict";
  var section = document.getElementById("run-progress");
  if (!section) return;
  var url = section.dataset.statusUrl;
  var body = document.getElementById("stages");

  function row(stage) {
    var tr = body.querySelector('tr[data-stage="' + stage.stage + '"]');
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.stage = stage.stage;
      tr.innerHTML = '<td></td><td class="num"><span class="done"></span> / <span class="total"></span> <span class="muted counting"></span></td>' +
        '<td><div class="progress"><span></span></div></td><td class="num seconds"></td>';
      tr.firstChild.textContent = stage.stage;
      body.appendChild(tr);
    }
    return tr;
  }

  function update(status) {
    status.stages.forEach(function (stage) {
      var tr = row(stage);
      tr.querySelector(".done").textContent = stage.done;
      tr.querySelector(".total").textContent = stage.total;
      tr.querySelector(".counting").textContent = stage.counting ? "(" + stage.counting + ")" : "";
      tr.querySelector(".progress span").style.width = Math.round(stage.fraction * 100) + "%";
      tr.querySelector(".seconds").textContent = stage.seconds == null ? "" : stage.seconds;
    });
    var badge = document.getElementById("run-status");
    var changed = badge.textContent !== status.status;
    badge.textContent = status.status;
    badge.className = "badge " + status.status;
    document.getElementById("shards").textContent = status.shards.done + " / " + status.shards.total;
    document.getElementById("run-device").textContent = status.device || "—";
    var error = document.getElementById("run-error");
    error.textContent = status.error;
    error.hidden = !status.error;
    return changed;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (status) {
        var changed = update(status);
        // A finished run has new layers and buttons: reload once to show them.
        if (status.finished) { if (changed) window.location.reload(); return; }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }

  var badge = document.getElementById("run-status");
  if (["done", "failed", "cancelled", "imported"].indexOf(badge.textContent.trim()) === -1) {
    window.setTimeout(poll, 1000);
  }
})();
