// Review table: one checkbox selects every pending answer.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll("#review-form input[name=assignment]").forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
