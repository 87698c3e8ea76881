// The error summary at the top of a form's page: focus it when the page loads
// (the `autofocus` attribute does the same without script in most browsers),
// and let each of its links put the cursor in the field it names.
(function () {
  const summary = document.getElementById("error-summary");
  if (!summary) return;
  if (document.activeElement !== summary) summary.focus();
  summary.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#']");
    const field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    field.scrollIntoView({block: "center"});
    field.focus();
  });
})();
