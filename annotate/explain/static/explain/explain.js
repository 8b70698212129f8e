// Explain page: toggle concept layers, download the explanation as JSON.
(function () {
  "use strict";
  function layer(index) {
    return document.querySelector('.concept-layer[data-concept="' + index + '"]');
  }
  var boxes = document.querySelectorAll('.concepts input[type="checkbox"]');
  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      var img = layer(box.dataset.concept);
      if (img) { img.hidden = !box.checked; }
    });
  });
  function setAll(on) {
    boxes.forEach(function (box) {
      box.checked = on;
      box.dispatchEvent(new Event("change"));
    });
  }
  var allOn = document.getElementById("all-on");
  var allOff = document.getElementById("all-off");
  if (allOn) { allOn.addEventListener("click", function () { setAll(true); }); }
  if (allOff) { allOff.addEventListener("click", function () { setAll(false); }); }
  // The chosen network's notes (a demo network knows only the demo world; an untrained one has
  // random weights; an imported one cannot explain), swapped when the choice changes.
  var notes = document.getElementById("notes-by-network");
  var select = document.getElementById("id_network");
  var shown = document.getElementById("network-notes");
  if (notes && select && shown) {
    var byName = JSON.parse(notes.textContent);
    select.addEventListener("change", function () {
      shown.replaceChildren.apply(shown, (byName[select.value] || []).map(function (text) {
        var p = document.createElement("p");
        p.className = "message warning";
        p.setAttribute("role", "note");
        p.textContent = text;
        return p;
      }));
    });
  }
  var data = document.getElementById("explain-result");
  var button = document.getElementById("download-json");
  if (data && button) {
    button.addEventListener("click", function () {
      var blob = new Blob([data.textContent], { type: "application/json" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "explanation.json";
      document.body.appendChild(link);
      link.click();
      link.remove();
    });
  }
  // Picking a demo image does not need the file input: clear it so the demo image wins.
  document.querySelectorAll('.demo-images button').forEach(function (b) {
    b.addEventListener("click", function () {
      var file = document.getElementById("id_image");
      if (file) { file.value = ""; }
    });
  });
})();
