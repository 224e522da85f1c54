// A link to a span (/traces/ID#span-SPANID, from the logs page) opens and marks that span.
(function () {
  "use strict";
  function focus() {
    const match = /^#span-([0-9a-fA-F]{1,16})$/.exec(window.location.hash);
    const row = match && document.getElementById(`span-${match[1]}`);
    if (!row || row.tagName !== "DETAILS") return;
    document.querySelectorAll("details.focused").forEach((other) => other.classList.remove("focused"));
    row.open = true;
    row.classList.add("focused");
    row.scrollIntoView({ block: "center" });
  }
  window.addEventListener("hashchange", focus);
  focus();
})();
