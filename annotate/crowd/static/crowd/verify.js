// Verification page: y / n / c answer at once (the buttons and Enter work without this script).
(function () {
  "use strict";
  var form = document.getElementById("verify-form");
  if (!form) return;
  var sent = false;
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || sent) return;
    var button = form.querySelector('button[data-key="' + event.key.toLowerCase() + '"]');
    if (!button) return;
    event.preventDefault();
    sent = true;  // one answer per key press: a held key does not answer the next image twice
    form.requestSubmit(button);
  });
  form.addEventListener("submit", function () { sent = true; });
})();
