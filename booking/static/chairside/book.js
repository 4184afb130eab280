/* Booking pages, progressive enhancement only: every step works without this file.
   - Moves focus to an error summary, so screen readers announce what to fix.
   - Sends each form once.
   - Shows the patient's own time beside each slot when their device's zone is not the clinic's. */
(function () {
  "use strict";

  var summary = document.querySelector(".error-summary");
  if (summary) {
    summary.focus();
  }

  // One submission per form: a double click on "Confirm" must not send the booking twice.
  // (Disabling the button instead would drop its name and value, which the time buttons carry.)
  Array.prototype.forEach.call(document.querySelectorAll("form[method=post]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent")) {
        event.preventDefault();
        return;
      }
      form.setAttribute("data-sent", "1");
    });
  });
  // Back to a page restored from the browser's cache: its forms may be sent again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      Array.prototype.forEach.call(document.querySelectorAll("form[data-sent]"), function (form) {
        form.removeAttribute("data-sent");
      });
    }
  });

  var slots = document.querySelectorAll("[data-start][data-zone]");
  if (!slots.length || typeof Intl === "undefined" || !Intl.DateTimeFormat) {
    return;
  }
  var browserZone;
  try {
    browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  var clinicZone = slots[0].getAttribute("data-zone");
  if (!browserZone || !clinicZone || browserZone === clinicZone) {
    return;
  }

  function wallClock(zone) {
    // A fixed locale: only used to compare days and times, never shown.
    return new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"
    });
  }
  var clinicClock = wallClock(clinicZone);
  var browserClock = wallClock(browserZone);
  var shownTime = new Intl.DateTimeFormat(undefined, {
    hour: "numeric", minute: "2-digit", timeZoneName: "short"
  });
  var shownDay = new Intl.DateTimeFormat(undefined, { weekday: "short" });

  var differs = false;
  Array.prototype.forEach.call(slots, function (slot) {
    var moment = new Date(slot.getAttribute("data-start"));
    if (isNaN(moment.getTime())) {
      return;
    }
    var clinicWall = clinicClock.format(moment);
    var browserWall = browserClock.format(moment);
    // Zones with other names but the same clock (Detroit and New York) need no second time.
    if (clinicWall === browserWall) {
      return;
    }
    differs = true;
    var text = shownTime.format(moment);
    if (clinicWall.slice(0, 10) !== browserWall.slice(0, 10)) {
      text = shownDay.format(moment) + " " + text;
    }
    var theirs = document.createElement("span");
    theirs.className = "theirs";
    theirs.textContent = text + " your time";
    slot.appendChild(theirs);
  });

  var notice = document.getElementById("zone-notice");
  if (differs && notice) {
    notice.appendChild(document.createTextNode(
      " Your device is set to " + browserZone + ", so your own time is shown under each one."
    ));
  }
})();
