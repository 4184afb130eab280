/* The staff calendar: EventCalendar (static/vendor/event-calendar) filled from
 * /api/v1/calendar/, changed through the staff appointments API.
 *
 * Times: the calendar runs in UTC mode and is given the clinic's wall-clock times without an
 * offset, so it shows the clinic's hours whatever the browser's zone. A time the user picks
 * is turned back into an instant with the UTC offsets the data lists for the window (the only
 * way to be right on the days the clocks change): a repeated time (clocks going back) means
 * its first occurrence, as everywhere in Chairside; a skipped one is refused.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("calendar-config").textContent);
  var csrfInput = document.querySelector("input[name=csrfmiddlewaretoken]");
  var alertBox = document.getElementById("calendar-alert");
  var statusBox = document.getElementById("calendar-status");
  var zoneNote = document.getElementById("calendar-zone");
  var legend = document.getElementById("calendar-legend");
  var panel = document.getElementById("event-panel");
  var cancelForm = document.getElementById("cancel-form");
  var newVisit = document.getElementById("new-visit");
  var newVisitForm = document.getElementById("new-visit-form");
  var CHANGEABLE = { booked: true, confirmed: true };
  var data = null;
  var range = null;
  var selected = null;
  var pickedSlot = null;
  var loading = 0;
  var loads = 0;

  // --- Messages ------------------------------------------------------------------------------

  function showAlert(message) {
    alertBox.textContent = message;
    alertBox.hidden = false;
  }

  function clearAlert() {
    alertBox.textContent = "";
    alertBox.hidden = true;
  }

  function announce(message) {
    statusBox.textContent = message;
  }

  function errorMessage(body, status) {
    if (body && body.error) {
      var fields = body.error.fields || {};
      var details = Object.keys(fields).map(function (name) {
        return fields[name];
      });
      var message = body.error.message || "";
      if (details.length && message.indexOf(details[0]) === -1 && typeof details[0] === "string") {
        message += " " + details.join(" ");
      }
      return message;
    }
    return "The request failed (" + status + "). Reload the page and try again.";
  }

  // --- Time ----------------------------------------------------------------------------------

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // The wall-clock reading of a date the calendar gives us: its local fields hold the floating
  // time it was given.
  function wallOf(date) {
    return isoDay(date) + "T" + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":00";
  }

  function formatOffset(minutes) {
    var sign = minutes < 0 ? "-" : "+";
    var m = Math.abs(minutes);
    return sign + pad(Math.floor(m / 60)) + ":" + pad(m % 60);
  }

  // "2026-11-01T01:30:00" in the clinic's zone → "2026-11-01T01:30:00-04:00", or null when the
  // clocks skip that time.
  function withOffset(wall) {
    var p = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall);
    var asUtc = Date.UTC(+p[1], +p[2] - 1, +p[3], +p[4], +p[5]);
    var segments = data.offsets;
    var best = null;
    for (var i = 0; i < segments.length; i++) {
      var from = segments[i].from === null ? -Infinity : Date.parse(segments[i].from);
      var to = i + 1 < segments.length ? Date.parse(segments[i + 1].from) : Infinity;
      var instant = asUtc - segments[i].minutes * 60000;
      if (instant >= from && instant < to && (best === null || instant < best.instant)) {
        best = { instant: instant, minutes: segments[i].minutes };
      }
    }
    return best === null ? null : wall.slice(0, 16) + ":00" + formatOffset(best.minutes);
  }

  var dayFormat = new Intl.DateTimeFormat("en-US", { weekday: "short", day: "numeric", month: "short" });
  var timeFormat = new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "2-digit" });

  function describe(start, end) {
    return dayFormat.format(start) + ", " + timeFormat.format(start) +
      (end ? "–" + timeFormat.format(end) : "");
  }

  function isoDay(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }

  // --- Requests -----------------------------------------------------------------------------

  function send(method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrfInput ? csrfInput.value : "";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.text().then(function (text) {
        var parsed = null;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch (e) {
          parsed = null;
        }
        return { ok: response.ok, status: response.status, body: parsed };
      });
    });
  }

  function appointmentUrl(reference, action) {
    return config.appointmentsUrl + encodeURIComponent(reference) + "/" + (action ? action + "/" : "");
  }

  // --- The calendar -------------------------------------------------------------------------

  function toEvent(e) {
    var classes = ["cs-event", "cs-status-" + e.status];
    if (e.tentative) classes.push("cs-tentative");
    return {
      id: e.id,
      resourceIds: e.resourceIds,
      start: e.start,
      end: e.end,
      title: e.title,
      backgroundColor: e.color,
      classNames: classes,
      editable: Boolean(config.canChange && CHANGEABLE[e.status]),
      extendedProps: e,
    };
  }

  function renderLegend() {
    legend.textContent = "";
    data.types.forEach(function (type) {
      var item = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "cs-swatch";
      swatch.style.backgroundColor = type.color;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(type.name));
      legend.appendChild(item);
    });
    var select = document.getElementById("new-visit-type");
    select.textContent = "";
    data.types.forEach(function (type) {
      var option = document.createElement("option");
      option.value = type.slug;
      option.textContent = type.name;
      select.appendChild(option);
    });
  }

  function remember() {
    var query = new URLSearchParams({
      location: config.location,
      by: config.by,
      view: config.view,
      date: config.date,
    });
    history.replaceState(null, "", "?" + query.toString());
  }

  function load() {
    if (!range) return Promise.resolve();
    var ticket = ++loading;
    var query = new URLSearchParams({
      location: config.location,
      start: range.start,
      end: range.end,
      by: config.by,
    });
    return send("GET", config.dataUrl + "?" + query.toString()).then(function (answer) {
      if (ticket !== loading) return;  // a later request supersedes this one
      if (!answer.ok) {
        showAlert(errorMessage(answer.body, answer.status));
        return;
      }
      data = answer.body;
      zoneNote.textContent = "Times are the clinic's local time (" + data.timezone + ").";
      renderLegend();
      calendar.setOption("resources", data.resources);
      calendar.setOption("events", data.events.map(toEvent));
      var element = document.getElementById("calendar");
      element.setAttribute("data-loaded", range.start + "/" + config.by);
      element.setAttribute("data-loads", String(++loads));
    });
  }

  function closePanels() {
    panel.hidden = true;
    newVisit.hidden = true;
    if (overridePanel) overridePanel.hidden = true;
    pendingMove = null;
    cancelForm.hidden = true;
    selected = null;
    pickedSlot = null;
  }

  function openEvent(event) {
    closePanels();
    var e = event.extendedProps;
    selected = e;
    document.getElementById("event-panel-title").textContent = e.title;
    document.getElementById("event-panel-when").textContent = describe(event.start, event.end);
    document.getElementById("event-panel-status").textContent =
      (data.statuses[e.status] || e.status) + (e.tentative ? " (waits for review)" : "");
    document.getElementById("event-panel-reference").textContent = e.id;
    document.getElementById("event-panel-link").href = config.detailUrl.replace("REFERENCE", e.id);
    document.getElementById("event-panel-cancel").hidden = !(config.canChange && CHANGEABLE[e.status]);
    panel.hidden = false;
    document.getElementById("event-panel-title").focus();
  }

  function moved(info) {
    clearAlert();
    announce("");
    var revert = info.revert;
    if (info.newResource) {
      // The services choose the lanes of a visit; only its time can be changed here.
      revert();
      showAlert("A visit keeps the staff and chair it was given: drag it within its own " +
        "column to change the time, or open it to change anything else.");
      return;
    }
    var start = withOffset(wallOf(info.event.start));
    if (start === null) {
      revert();
      showAlert("That time does not exist on this day: the clocks change then.");
      return;
    }
    var reference = info.event.id;
    send("POST", appointmentUrl(reference, "reschedule"), { start: start }).then(function (answer) {
      if (!answer.ok) {
        revert();
        if (overridable(answer)) {
          offerOverride({ reference: reference, start: start, when: describe(info.event.start) },
            errorMessage(answer.body, answer.status));
          return;
        }
        showAlert(errorMessage(answer.body, answer.status));
        return;
      }
      announce("Moved " + reference + " to " + describe(info.event.start) + ".");
      // The move may have taken other lanes (another chair): show where it really is.
      load();
    }, function () {
      revert();
      showAlert("The move could not be saved: check the connection and try again.");
    });
  }

  // --- A prescriber's override of a clinical rule -------------------------------------------

  // The age and spacing rules answer 422 not_eligible, a series' cadence 422 policy_violation:
  // a prescriber may set them aside with a reason (a plan not in force refuses even then, and
  // says so).
  var overridePanel = document.getElementById("override-panel");
  var pendingMove = null;

  function overridable(answer) {
    var code = answer.body && answer.body.error ? answer.body.error.code : "";
    return Boolean(config.canOverride && overridePanel) && answer.status === 422 &&
      (code === "not_eligible" || code === "policy_violation");
  }

  function offerOverride(move, why) {
    closePanels();
    pendingMove = move;
    document.getElementById("override-panel-why").textContent =
      move.reference + " to " + move.when + ": " + why;
    overridePanel.hidden = false;
    document.getElementById("override-reason").focus();
  }

  if (overridePanel) {
    document.getElementById("override-close").addEventListener("click", closePanels);
    document.getElementById("override-form").addEventListener("submit", function (event) {
      event.preventDefault();
      if (!pendingMove) return;
      var move = pendingMove;
      var reason = document.getElementById("override-reason").value.trim();
      send("POST", appointmentUrl(move.reference, "reschedule"),
        { start: move.start, override_reason: reason }).then(function (answer) {
        if (!answer.ok) {
          showAlert(errorMessage(answer.body, answer.status));
          return;
        }
        closePanels();
        document.getElementById("override-reason").value = "";
        announce("Moved " + move.reference + " to " + move.when + ", overriding the rule.");
        load();
      });
    });
  }

  // --- Finding the patient ------------------------------------------------------------------

  var patientSearch = document.getElementById("new-visit-search");
  var patientChoices = document.getElementById("new-visit-patients");
  var patientList = document.getElementById("new-visit-patient-list");
  var searchStatus = document.getElementById("new-visit-search-status");
  var searchTimer = null;
  var searchSerial = 0;

  function clearPatients() {
    patientList.textContent = "";
    patientChoices.hidden = true;
    searchStatus.textContent = "";
  }

  function showPatients(patients) {
    clearPatients();
    if (!patients.length) {
      searchStatus.textContent = "No patient of yours matches.";
      return;
    }
    patients.forEach(function (patient) {
      var label = document.createElement("label");
      var input = document.createElement("input");
      input.type = "radio";
      input.name = "new-visit-patient";
      input.value = String(patient.id);
      input.checked = patients.length === 1;
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + patient.last_name + ", " +
        patient.first_name + " · born " + patient.date_of_birth + " · #" + patient.id));
      patientList.appendChild(label);
    });
    patientChoices.hidden = false;
  }

  function findPatients() {
    var text = patientSearch.value.trim();
    var serial = ++searchSerial;
    if (text.length < 2 && !/^\d+$/.test(text)) {
      clearPatients();
      return;
    }
    send("GET", config.patientsUrl + "?q=" + encodeURIComponent(text)).then(function (answer) {
      if (serial !== searchSerial) return; // a newer search is on its way
      if (!answer.ok) {
        clearPatients();
        searchStatus.textContent = errorMessage(answer.body, answer.status);
        return;
      }
      showPatients(answer.body);
    });
  }

  patientSearch.addEventListener("input", function () {
    clearAlert();
    clearTimeout(searchTimer);
    searchTimer = setTimeout(findPatients, 250);
  });

  function chosenPatient() {
    var checked = patientList.querySelector("input[name=new-visit-patient]:checked");
    return checked ? parseInt(checked.value, 10) : null;
  }

  function picked(info) {
    if (!config.canBook) {
      calendar.unselect();
      return;
    }
    closePanels();
    clearAlert();
    // A new slot starts a new search: nobody stays chosen from the last one.
    patientSearch.value = "";
    clearPatients();
    pickedSlot = { start: wallOf(info.start), date: info.start };
    document.getElementById("new-visit-when").textContent = describe(info.start) +
      (info.resource ? " · " + info.resource.title : "");
    newVisit.hidden = false;
    document.getElementById("new-visit-type").focus();
  }

  var calendar = EventCalendar.create(document.getElementById("calendar"), {
    view: config.view === "day" ? "resourceTimeGridDay" : "resourceTimeGridWeek",
    date: config.date,
    timeZone: "UTC",
    firstDay: 1,
    headerToolbar: {
      start: "prev,next today",
      center: "title",
      end: "resourceTimeGridDay,resourceTimeGridWeek",
    },
    buttonText: function (text) {
      text.resourceTimeGridDay = "Day";
      text.resourceTimeGridWeek = "Week";
      text.today = "Today";
      return text;
    },
    allDaySlot: false,
    slotMinTime: "06:00",
    slotMaxTime: "21:00",
    scrollTime: "07:00",
    slotDuration: "00:15",
    slotLabelInterval: "01:00",
    datesAboveResources: true,
    nowIndicator: true,
    resources: [],
    events: [],
    editable: Boolean(config.canChange),
    eventDurationEditable: false,
    selectable: Boolean(config.canBook),
    eventDrop: moved,
    eventClick: function (info) {
      openEvent(info.event);
    },
    select: picked,
    datesSet: function (info) {
      var last = new Date(info.end.getTime() - 86400000);
      range = { start: isoDay(info.start), end: isoDay(last) };
      config.view = info.view.type === "resourceTimeGridDay" ? "day" : "week";
      config.date = isoDay(calendar ? calendar.getOption("date") : info.start);
      remember();
      load();
    },
  });

  document.getElementById("cal-location").addEventListener("change", function (event) {
    config.location = event.target.value;
    closePanels();
    clearAlert();
    remember();
    load();
  });
  Array.prototype.forEach.call(document.querySelectorAll("input[name=by]"), function (input) {
    input.addEventListener("change", function (event) {
      config.by = event.target.value;
      closePanels();
      remember();
      load();
    });
  });
  document.getElementById("calendar-controls").addEventListener("submit", function (event) {
    event.preventDefault();
  });

  document.getElementById("event-panel-close").addEventListener("click", closePanels);
  document.getElementById("new-visit-close").addEventListener("click", function () {
    closePanels();
    calendar.unselect();
  });
  document.getElementById("event-panel-cancel").addEventListener("click", function () {
    cancelForm.hidden = false;
    document.getElementById("cancel-reason").focus();
  });
  cancelForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!selected) return;
    var reference = selected.id;
    var reason = document.getElementById("cancel-reason").value.trim();
    send("POST", appointmentUrl(reference, "cancel"), { reason: reason }).then(function (answer) {
      if (!answer.ok) {
        showAlert(errorMessage(answer.body, answer.status));
        return;
      }
      closePanels();
      document.getElementById("cancel-reason").value = "";
      announce("Cancelled " + reference + ".");
      load();
    });
  });
  newVisitForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!pickedSlot) return;
    clearAlert();
    var when = pickedSlot.date;
    var start = withOffset(pickedSlot.start);
    if (start === null) {
      showAlert("That time does not exist on this day: the clocks change then.");
      return;
    }
    var patient = chosenPatient();
    if (patient === null) {
      showAlert("Find the patient and choose them from the list.");
      patientSearch.focus();
      return;
    }
    var body = {
      location: config.location,
      appointment_type: document.getElementById("new-visit-type").value,
      patient: patient,
      start: start,
    };
    var override = document.getElementById("new-visit-override");
    if (override && override.value.trim()) body.override_reason = override.value.trim();
    send("POST", config.appointmentsUrl, body).then(function (answer) {
      if (!answer.ok) {
        showAlert(errorMessage(answer.body, answer.status));
        return;
      }
      closePanels();
      calendar.unselect();
      announce("Booked " + (answer.body && answer.body.reference ? answer.body.reference : "the visit") +
        " for " + describe(when) + ".");
      load();
    });
  });
})();
