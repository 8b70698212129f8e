// Outside crowds: post the finished assignment back to the panel (turkSubmitTo/mturk/externalSubmit).
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosubmit]");
  if (form) form.submit();
})();
