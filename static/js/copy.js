// Copy buttons for what a page shows once (a new API key, its example
// request). Without script the text is there to select by hand; with it, a
// button copies it, or selects it where the clipboard is not available (a
// page served over plain http) and says how to copy.
(function () {
  const status = document.querySelector("[data-copy-status]");
  const say = (text) => { if (status) status.textContent = text; };

  function select(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.innerText);
        say("Copied to the clipboard.");
      } catch (error) {
        select(source);
        say("Selected: press Ctrl+C (⌘C on a Mac) to copy.");
      }
    });
  });
})();
