// Moves focus to a form's error summary when a page comes back with one, so keyboard and
// screen-reader users land on the list of what to correct.
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
});
