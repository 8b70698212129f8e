// Show the chosen network's layer names under the layers field.
(function () {
  "use strict";
  var data = document.getElementById("network-layers");
  var select = document.getElementById("id_network");
  var hint = document.getElementById("layer-hint");
  if (!data || !select || !hint) return;
  var layers = JSON.parse(data.textContent);
  function show() {
    var names = layers[select.value] || [];
    hint.textContent = names.length ? "Layers of " + select.value + ": " + names.join(", ") : "";
  }
  select.addEventListener("change", show);
  show();
})();
