/* The proof-of-work check on the booking details page (booking.pow), where it is asked for.
   The vendored ALTCHA widget (vendor/altcha, the build without inline styles or blob workers)
   solves its SHA-256 challenge in a Web Worker loaded from our own static files, so the
   Content-Security-Policy stays 'self'. Without JavaScript the booking cannot pass this check. */
(function () {
  "use strict";

  var widget = document.querySelector("altcha-widget[data-worker]");
  if (!widget || !window.$altcha) {
    return;
  }
  var worker = widget.getAttribute("data-worker");
  window.$altcha.algorithms.set("SHA-256", function () {
    return new Worker(worker);
  });
})();
