// Runs before the page paints: sets data-theme to the reader's choice, else the system's,
// so a dark-theme reader never sees a white flash and the stylesheets need one rule each.
(function () {
  var root = document.documentElement;
  var query = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  function chosen() {
    try {
      var t = localStorage.getItem("slipway-theme");
      if (t === "dark" || t === "light") return t;
    } catch (e) { /* storage may be off */ }
    return null;
  }
  root.setAttribute("data-theme", chosen() || (query && query.matches ? "dark" : "light"));
  if (query && query.addEventListener) {
    query.addEventListener("change", function (e) {
      if (!chosen()) root.setAttribute("data-theme", e.matches ? "dark" : "light");
    });
  }
})();
