/* The image page's Grad-CAM toggle: swap the main image for the ensemble's overlay and back.
 * Delegated, because the result panel (and the checkbox in it) is re-rendered by status.js. */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-saliency-toggle]")) return;
    var img = document.querySelector(".image-frame img");
    if (!img) return;
    if (!img.hasAttribute("data-original")) img.setAttribute("data-original", img.getAttribute("src"));
    img.setAttribute("src", box.checked ? box.getAttribute("data-overlay") : img.getAttribute("data-original"));
    img.classList.toggle("is-overlay", box.checked);
  });
})();
