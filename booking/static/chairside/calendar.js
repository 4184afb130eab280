/* The staff calendar: EventCalendar (static/vendor/event-calendar) filled from
 * /api/v1/calendar/, changed through the staff appointments API.
 *
 * Times: the calendar runs in UTC mode and is given the clinic's wall-clock times without an
 * offset, so it shows the clinic's hours whatever the browser's zone. A time the user picks
 * is turned back into an instant with the UTC offsets the data lists for the window (the only
 * way to be right on the days the clocks change): a repeated time (clocks going back) means
 * its first occurrence, as everywhere in Chairside; a skipped one is refused.
 *
 * Rows: the timelines (a row per resource) draw one page of rows at a time, the events of those
 * rows only. The library's cost grows with every event it lays out, and a screen shows about a
 * page of rows anyway (bench/calendar_browser.py measures it). Everything the user chooses
 * (view, date, location, rows, group, one resource, page) is kept in the address, which the
 * server reads back, so a reload or a shared link shows the same.
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
  var moveForm = document.getElementById("move-form");
  var CHANGEABLE = { booked: true, confirmed: true };
  // Said in words on each visit, so a state is never told by colour or pattern alone.
  var FLAGS = {
    held: "Held",
    tentative: "Tentative",
    needs_new_time: "Needs a new time",
    on_hold: "On hold",
    no_show: "No-show",
  };
  var VIEWS = { day: "resourceTimelineDay", week: "resourceTimelineWeek", columns: "resourceTimeGridWeek" };
  var ONE_VIEWS = { day: "resourceTimeGridDay", week: "resourceTimeGridWeek" };
  var data = null;
  var dataKey = "";
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

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // The visit an event belongs to: one event per resource it holds, all with its reference.
  function referenceOf(e) {
    return e.visit || e.id;
  }

  function stateOf(e) {
    return e.state || e.status;
  }

  function isChangeable(e) {
    if ((e.kind || "visit") !== "visit" || !config.canChange) return false;
    return e.editable === undefined ? Boolean(CHANGEABLE[e.status]) : Boolean(e.editable);
  }

  function toEvent(e) {
    var kind = e.kind || "visit";
    var classes = ["cs-event", "cs-kind-" + kind];
    if (kind === "visit") {
      classes.push("cs-status-" + e.status, "cs-state-" + stateOf(e));
      if (e.tentative) classes.push("cs-tentative");
    }
    var editable = isChangeable(e);
    return {
      id: e.id,
      resourceIds: e.resourceIds,
      start: e.start,
      end: e.end,
      title: e.title,
      backgroundColor: kind === "visit" ? e.color : undefined,
      classNames: classes,
      editable: editable,
      startEditable: editable,
      durationEditable: false,
      extendedProps: e,
    };
  }

  // One string per event, no time formatting: the library lays out thousands of these.
  function eventContent(info) {
    var e = info.event.extendedProps;
    var kind = e.kind || "visit";
    if (kind !== "visit") {
      return { html: '<span class="cs-event-text">' + escapeHtml(e.title) + "</span>" };
    }
    var flag = FLAGS[stateOf(e)];
    var title = e.title || "";
    var text = flag && title.indexOf(flag) !== 0 ? '<b class="cs-flag">' + flag + ":</b> " : "";
    var start = /T(\d{2}):(\d{2})/.exec(e.start);
    var hour = start ? +start[1] : 0;
    var clock = start ? ((hour + 11) % 12 + 1) + ":" + start[2] + (hour < 12 ? "am" : "pm") + " " : "";
    return { html: '<span class="cs-event-text">' + text + clock + escapeHtml(title) + "</span>" };
  }

  function resourceLabel(info) {
    var r = info.resource.extendedProps || {};
    var group = r.groupTitle ? '<span class="cs-row-group">' + escapeHtml(r.groupTitle) + "</span>" : "";
    if (config.resource) {
      return { html: '<span class="cs-row-title">' + escapeHtml(info.resource.title) + "</span>" + group };
    }
    return {
      html: '<button type="button" class="cs-row-link" data-resource="' + escapeHtml(info.resource.id) +
        '" aria-label="Week of ' + escapeHtml(info.resource.title) + '">' +
        escapeHtml(info.resource.title) + "</button>" + group,
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

  function renderGroups() {
    if (!data.groups) return;
    var select = document.getElementById("cal-group");
    select.textContent = "";
    var all = document.createElement("option");
    all.value = "";
    all.textContent = "All groups";
    select.appendChild(all);
    data.groups.forEach(function (group) {
      var option = document.createElement("option");
      option.value = group.key;
      option.textContent = group.title;
      select.appendChild(option);
    });
    if (config.group && !data.groups.some(function (g) { return g.key === config.group; })) {
      var chosen = document.createElement("option");
      chosen.value = config.group;
      chosen.textContent = config.group;
      select.appendChild(chosen);
    }
    select.value = config.group || "";
  }

  function remember() {
    var fields = { location: config.location, by: config.by, view: config.view, date: config.date };
    if (config.group) fields.group = config.group;
    if (config.resource) fields.resource = String(config.resource);
    if (config.page > 1) fields.page = String(config.page);
    history.replaceState(null, "", "?" + new URLSearchParams(fields).toString());
  }

  function paged() {
    return !config.resource && config.view !== "columns";
  }

  // The week timeline gives a visit a few pixels: what a person can see there is when each row
  // is busy. Pieces of a row less than RUN_GAP minutes apart are drawn as one run ("12 visits"),
  // opened to list them; a visit alone stays itself (dragged, opened as everywhere).
  var RUN_GAP = 30;

  function runsOf(pieces) {
    var byRow = {};
    pieces.forEach(function (e) {
      e.resourceIds.forEach(function (id) {
        (byRow[id] = byRow[id] || []).push(e);
      });
    });
    var out = [];
    Object.keys(byRow).forEach(function (id) {
      var list = byRow[id].sort(function (a, b) {
        return a.start < b.start ? -1 : a.start > b.start ? 1 : 0;
      });
      var run = null;
      function flush() {
        if (!run) return;
        if (run.visits.length < 2) {
          run.pieces.forEach(function (e) {
            out.push(one(e, +id));
          });
        } else {
          out.push(runEvent(run, +id));
        }
        run = null;
      }
      list.forEach(function (e) {
        // Time away at another site is not this site's busy time: never folded into a run (whose
        // title counts visits here), it ends the run before it and is drawn as itself.
        if (e.kind === "elsewhere") {
          flush();
          out.push(one(e, +id));
          return;
        }
        var from = wallMinutes(e.start);
        var to = wallMinutes(e.end);
        if (run && (from - run.to >= RUN_GAP || e.start.slice(0, 10) !== run.day)) flush();
        if (!run) run = { day: e.start.slice(0, 10), from: from, to: to, start: e.start, end: e.end, pieces: [], visits: [] };
        run.pieces.push(e);
        if ((e.kind || "visit") === "visit") run.visits.push(e);
        if (to > run.to) {
          run.to = to;
          run.end = e.end;
        }
      });
      flush();
    });
    return out;
  }

  function one(e, id) {
    var event = toEvent(e);
    event.resourceIds = [id];
    return event;
  }

  function runEvent(run, id) {
    var counts = {};
    run.visits.forEach(function (e) {
      var flag = FLAGS[stateOf(e)];
      if (flag) counts[flag] = (counts[flag] || 0) + 1;
    });
    var notes = Object.keys(counts).map(function (flag) {
      return counts[flag] + " " + flag.toLowerCase();
    });
    var title = run.visits.length + " visits" + (notes.length ? " (" + notes.join(", ") + ")" : "");
    return {
      id: "run/" + id + "/" + run.start,
      resourceIds: [id],
      start: run.start,
      end: run.end,
      title: title,
      classNames: ["cs-event", "cs-kind-run"].concat(notes.length ? ["cs-run-flagged"] : []),
      editable: false,
      extendedProps: { kind: "run", title: title, visits: run.visits, resource: id, start: run.start, end: run.end },
    };
  }

  // Draws the rows of the current page and their events; the data stays as read.
  function draw() {
    var rows = data.resources;
    var shown = rows;
    var pager = document.getElementById("calendar-rows");
    if (paged() && rows.length > config.rowsPerPage) {
      var pages = Math.ceil(rows.length / config.rowsPerPage);
      config.page = Math.min(Math.max(config.page, 1), pages);
      var first = (config.page - 1) * config.rowsPerPage;
      shown = rows.slice(first, first + config.rowsPerPage);
      document.getElementById("calendar-rows-shown").textContent = "Rows " + (first + 1) + "–" +
        (first + shown.length) + " of " + rows.length;
      document.getElementById("calendar-rows-previous").disabled = config.page === 1;
      document.getElementById("calendar-rows-next").disabled = config.page === pages;
      pager.hidden = false;
    } else {
      config.page = 1;
      pager.hidden = true;
    }
    var ids = {};
    shown.forEach(function (r) {
      ids[r.id] = true;
    });
    var events = [];
    var pieces = [];
    data.events.forEach(function (e) {
      var mine = e.resourceIds.filter(function (id) {
        return ids[id];
      });
      if (!mine.length) return;
      if (mine.length !== e.resourceIds.length) e = Object.assign({}, e, { resourceIds: mine });
      pieces.push(e);
    });
    if (paged() && config.view === "week") {
      events = runsOf(pieces);
    } else {
      pieces.forEach(function (e) {
        events.push(toEvent(e));
      });
    }
    calendar.setOption("resources", shown.map(function (r) {
      return { id: r.id, title: r.title, extendedProps: r };
    }));
    calendar.setOption("events", events);
    var one = document.getElementById("calendar-one");
    if (config.resource) {
      var resource = rows[0];
      document.getElementById("calendar-one-title").textContent = resource
        ? "Only " + resource.title + "." : "";
      one.hidden = false;
    } else {
      one.hidden = true;
    }
    remember();
    var element = document.getElementById("calendar");
    element.setAttribute("data-drawn", String(events.length));
    // After the library has drawn and the browser painted: the figure the benchmark reads.
    requestAnimationFrame(function () {
      setTimeout(function () {
        fixAccessibility();
        element.setAttribute("data-painted", range.start + "/" + config.view + "/" + config.page);
        if (window.performance && performance.mark) performance.mark("calendar-painted");
      }, 0);
    });
  }

  // The library's markup, corrected once per drawing: its grid says role="table"/"row" around
  // the toolbar and the row heads, which screen readers then misread; a plain grouping, named,
  // says what it is. Events get a name that includes their state and time.
  function fixAccessibility() {
    var root = document.getElementById("calendar");
    Array.prototype.forEach.call(root.querySelectorAll("[role=table],[role=row],[role=rowgroup]," +
      "[role=rowheader],[role=columnheader],[role=cell],[role=gridcell],[role=grid]"), function (el) {
      el.removeAttribute("role");
      el.removeAttribute("aria-colindex");
      el.removeAttribute("aria-colspan");
    });
    var main = root.querySelector(".ec-main");
    if (main) {
      main.setAttribute("role", "group");
      main.setAttribute("aria-label", "Visits");
    }
  }

  function load(force) {
    if (!range) return Promise.resolve();
    var fields = { location: config.location, start: range.start, end: range.end, by: config.by };
    if (config.group) fields.group = config.group;
    if (config.resource) fields.resource = String(config.resource);
    var query = new URLSearchParams(fields).toString();
    if (!force && data && query === dataKey) {
      draw();
      return Promise.resolve();
    }
    var ticket = ++loading;
    var answered;
    if (early && early.query === query) {
      answered = early.answer;
    } else {
      if (window.performance && performance.mark) performance.mark("calendar-fetch");
      answered = send("GET", config.dataUrl + "?" + query);
    }
    early = null;
    return answered.then(function (answer) {
      if (ticket !== loading) return;  // a later request supersedes this one
      if (!answer.ok) {
        showAlert(errorMessage(answer.body, answer.status));
        return;
      }
      data = answer.body;
      dataKey = query;
      if (window.performance && performance.mark) performance.mark("calendar-data");
      zoneNote.textContent = "Times are the clinic's local time (" + data.timezone + ").";
      renderLegend();
      renderGroups();
      draw();
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
    moveForm.hidden = true;
    if (runPanel) runPanel.hidden = true;
    selected = null;
    pickedSlot = null;
  }

  // "2026-12-02T10:00:00" shifted by whole minutes, as wall-clock text (no zone involved).
  function shiftWall(wall, minutes) {
    var p = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall);
    var d = new Date(Date.UTC(+p[1], +p[2] - 1, +p[3], +p[4], +p[5]) + minutes * 60000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + "T" +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":00";
  }

  function wallMinutes(wall) {
    var p = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall);
    return Date.UTC(+p[1], +p[2] - 1, +p[3], +p[4], +p[5]) / 60000;
  }

  // A wall-clock text as the calendar's floating dates (their local fields hold the time).
  function floating(wall) {
    var p = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall);
    return new Date(+p[1], +p[2] - 1, +p[3], +p[4], +p[5]);
  }

  function openEvent(event) {
    var e = event.extendedProps;
    var kind = e.kind || "visit";
    if (kind === "run") {
      openRun(e);
      return;
    }
    if (kind === "watch" || kind === "elsewhere") {
      // Nothing to open: time away at another site says where only, never which visit.
      announce(e.title + ", " + describe(event.start, event.end) + ".");
      return;
    }
    if (kind === "turnover") {
      // The turnover belongs to a visit: open that visit.
      var owner = null;
      for (var i = 0; i < data.events.length && !owner; i++) {
        var other = data.events[i];
        if ((other.kind || "visit") === "visit" && referenceOf(other) === e.visit) owner = other;
      }
      if (!owner) {
        announce("Turnover after or before " + e.visit + ".");
        return;
      }
      openVisit(owner);
      return;
    }
    openVisit(e);
  }

  var runPanel = document.getElementById("run-panel");
  var shownRun = null;

  function openRun(run) {
    closePanels();
    shownRun = run;
    var row = null;
    data.resources.forEach(function (r) {
      if (r.id === run.resource) row = r;
    });
    document.getElementById("run-panel-title").textContent = (row ? row.title + ", " : "") +
      describe(floating(run.start), floating(run.end));
    var list = document.getElementById("run-panel-list");
    list.textContent = "";
    run.visits.forEach(function (e, n) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.setAttribute("data-visit", String(n));
      var flag = FLAGS[stateOf(e)];
      button.textContent = describe(floating(e.start)) + " · " + e.title + (flag ? " · " + flag : "");
      item.appendChild(button);
      list.appendChild(item);
    });
    runPanel.hidden = false;
    document.getElementById("run-panel-title").focus();
  }

  document.getElementById("run-panel-list").addEventListener("click", function (event) {
    var button = event.target.closest("button[data-visit]");
    if (!button || !shownRun) return;
    openVisit(shownRun.visits[+button.getAttribute("data-visit")]);
  });
  document.getElementById("run-panel-day").addEventListener("click", function () {
    if (!shownRun) return;
    var day = shownRun.start.slice(0, 10);
    closePanels();
    calendar.setOption("date", day);
    calendar.setOption("view", VIEWS.day);
  });
  document.getElementById("run-panel-close").addEventListener("click", closePanels);

  function openVisit(e) {
    closePanels();
    selected = e;
    var reference = referenceOf(e);
    var start = floating(e.visitStart || e.start);
    var end = floating(e.visitEnd || e.end);
    document.getElementById("event-panel-title").textContent = e.title;
    document.getElementById("event-panel-when").textContent = describe(start, end);
    var flag = FLAGS[stateOf(e)];
    document.getElementById("event-panel-status").textContent =
      (data.statuses[e.status] || e.status) + (flag && flag !== data.statuses[e.status] &&
        stateOf(e) !== e.status ? " · " + flag : "") + (e.tentative ? " (waits for review)" : "");
    document.getElementById("event-panel-reference").textContent = reference;
    document.getElementById("event-panel-link").href = config.detailUrl.replace("REFERENCE", reference);
    var others = e.others || [];
    var list = document.getElementById("event-panel-others-list");
    list.textContent = "";
    others.forEach(function (other) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "cs-row-link";
      button.setAttribute("data-resource", String(other.id));
      button.textContent = "Week of " + other.title;
      item.appendChild(button);
      list.appendChild(item);
    });
    document.getElementById("event-panel-others").hidden = !others.length;
    var changeable = isChangeable(e);
    document.getElementById("event-panel-cancel").hidden = !changeable;
    document.getElementById("event-panel-move").hidden = !changeable;
    var wall = e.visitStart || e.start;
    document.getElementById("move-date").value = wall.slice(0, 10);
    document.getElementById("move-time").value = wall.slice(11, 16);
    panel.hidden = false;
    document.getElementById("event-panel-title").focus();
  }

  // Moves the visit to start at ``wall`` (clinic time) through the staff appointments API;
  // ``revert`` puts a dragged event back when the move is refused.
  function moveVisit(reference, wall, revert) {
    clearAlert();
    announce("");
    var start = withOffset(wall);
    var when = describe(floating(wall));
    if (start === null) {
      if (revert) revert();
      showAlert("That time does not exist on this day: the clocks change then.");
      return Promise.resolve(false);
    }
    return send("POST", appointmentUrl(reference, "reschedule"), { start: start }).then(function (answer) {
      if (!answer.ok) {
        if (revert) revert();
        if (overridable(answer)) {
          offerOverride({ reference: reference, start: start, when: when },
            errorMessage(answer.body, answer.status));
          return false;
        }
        showAlert(errorMessage(answer.body, answer.status));
        return false;
      }
      announce("Moved " + reference + " to " + when + ".");
      // The move may have taken other lanes (another chair): show where it really is.
      load(true);
      return true;
    }, function () {
      if (revert) revert();
      showAlert("The move could not be saved: check the connection and try again.");
      return false;
    });
  }

  function moved(info) {
    clearAlert();
    announce("");
    var e = info.event.extendedProps;
    if (info.newResource && !(info.oldResource && info.oldResource.id === info.newResource.id)) {
      // The services choose the lanes of a visit; only its time can be changed here.
      info.revert();
      showAlert("A visit keeps the staff and chair it was given: drag it along its own " +
        "row to change the time, or open it to change anything else.");
      return;
    }
    // The piece dragged may start later than its visit (a prescriber's first minutes): the
    // visit moves by as much as the piece did.
    var delta = wallMinutes(wallOf(info.event.start)) - wallMinutes(wallOf(info.oldEvent.start));
    var wall = shiftWall(e.visitStart || wallOf(info.oldEvent.start), delta);
    moveVisit(referenceOf(e), wall, info.revert);
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
        load(true);
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

  function toolbarEnd() {
    return config.resource ? "resourceTimeGridDay,resourceTimeGridWeek"
      : "resourceTimelineDay,resourceTimelineWeek,resourceTimeGridWeek";
  }

  function ecView() {
    if (config.resource) return ONE_VIEWS[config.view === "day" ? "day" : "week"];
    return VIEWS[config.view] || VIEWS.week;
  }

  // The first read is asked for before the library is set up, which takes a while on a slow
  // machine: the days shown follow from the date and the view (weeks start on Monday).
  var early = null;
  (function () {
    var p = /^(\d{4})-(\d{2})-(\d{2})$/.exec(config.date);
    if (!p) return;
    var first = new Date(Date.UTC(+p[1], +p[2] - 1, +p[3]));
    var days = config.view === "day" ? 1 : 7;
    if (days === 7) first = new Date(first.getTime() - ((first.getUTCDay() + 6) % 7) * 86400000);
    var last = new Date(first.getTime() + (days - 1) * 86400000);
    var iso = function (d) { return d.toISOString().slice(0, 10); };
    var fields = { location: config.location, start: iso(first), end: iso(last), by: config.by };
    if (config.group) fields.group = config.group;
    if (config.resource) fields.resource = String(config.resource);
    var query = new URLSearchParams(fields).toString();
    if (window.performance && performance.mark) performance.mark("calendar-fetch");
    early = { query: query, answer: send("GET", config.dataUrl + "?" + query) };
  })();

  // "7a", "1p": an hour's label fits its 40 pixels on the week timeline.
  function shortHour(date) {
    var hour = date.getHours();
    return ((hour + 11) % 12 + 1) + (hour < 12 ? "a" : "p");
  }

  function buttonText(text) {
    text.resourceTimelineDay = "Day";
    text.resourceTimelineWeek = "Week";
    text.resourceTimeGridWeek = config.resource ? "Week" : "Week by column";
    text.resourceTimeGridDay = "Day";
    text.today = "Today";
    return text;
  }

  var calendar = EventCalendar.create(document.getElementById("calendar"), {
    view: ecView(),
    date: config.date,
    timeZone: "UTC",
    firstDay: 1,
    headerToolbar: { start: "prev,next today", center: "title", end: toolbarEnd() },
    buttonText: buttonText,
    views: {
      // An hour a slot across a week: the clinic's day fits a wide screen, scrolled sideways.
      resourceTimelineWeek: { slotDuration: "01:00", slotWidth: 40, slotLabelFormat: shortHour },
      resourceTimelineDay: { slotDuration: "00:30", slotWidth: 56, slotLabelInterval: "01:00" },
      // A column per resource and day: readable headers, scrolled sideways, never squeezed.
      resourceTimeGridWeek: { columnWidth: "minmax(5.5rem, 1fr)" },
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
    eventContent: eventContent,
    // The content above shows its own time: no date formatting per event (the library would
    // otherwise format every event's range, a tenth of its drawing time).
    eventTimeFormat: function () {
      return "";
    },
    resourceLabelContent: resourceLabel,
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
      var type = info.view.type;
      if (config.resource) {
        config.view = type === "resourceTimeGridDay" ? "day" : "week";
      } else {
        config.view = type === "resourceTimelineDay" ? "day"
          : type === "resourceTimeGridWeek" ? "columns" : "week";
      }
      config.date = isoDay(calendar ? calendar.getOption("date") : info.start);
      remember();
      load();
    },
  });

  // One resource's week, or back to every row: a new set of rows, so a new read.
  function showResource(id) {
    closePanels();
    clearAlert();
    config.resource = id;
    config.page = 1;
    if (id === null && config.view !== "day") config.view = "week";
    calendar.setOption("buttonText", buttonText);
    calendar.setOption("headerToolbar", { start: "prev,next today", center: "title", end: toolbarEnd() });
    var view = ecView();
    if (calendar.getOption("view") === view) {
      remember();
      load();
    } else {
      calendar.setOption("view", view);  // datesSet reads the data
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest(".cs-row-link") : null;
    if (!link) return;
    event.preventDefault();
    showResource(parseInt(link.getAttribute("data-resource"), 10));
  });
  document.getElementById("calendar-one-back").addEventListener("click", function () {
    showResource(null);
  });
  document.getElementById("calendar-rows-previous").addEventListener("click", function () {
    closePanels();
    config.page -= 1;
    draw();
  });
  document.getElementById("calendar-rows-next").addEventListener("click", function () {
    closePanels();
    config.page += 1;
    draw();
  });
  document.getElementById("cal-location").addEventListener("change", function (event) {
    config.location = event.target.value;
    config.resource = null;
    config.group = "";
    config.page = 1;
    closePanels();
    clearAlert();
    showResource(null);
  });
  document.getElementById("cal-group").addEventListener("change", function (event) {
    config.group = event.target.value;
    config.page = 1;
    closePanels();
    remember();
    load();
  });
  Array.prototype.forEach.call(document.querySelectorAll("input[name=by]"), function (input) {
    input.addEventListener("change", function (event) {
      config.by = event.target.value;
      config.group = "";
      config.page = 1;
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
    moveForm.hidden = true;
    cancelForm.hidden = false;
    document.getElementById("cancel-reason").focus();
  });
  document.getElementById("event-panel-move").addEventListener("click", function () {
    cancelForm.hidden = true;
    moveForm.hidden = false;
    document.getElementById("move-date").focus();
  });
  moveForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!selected) return;
    var day = document.getElementById("move-date").value;
    var time = document.getElementById("move-time").value;
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || !/^\d{2}:\d{2}/.test(time)) {
      showAlert("Give the new date and start time.");
      return;
    }
    moveVisit(referenceOf(selected), day + "T" + time.slice(0, 5) + ":00", null).then(function (done) {
      if (done) {
        closePanels();
      }
    });
  });
  cancelForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!selected) return;
    var reference = referenceOf(selected);
    var reason = document.getElementById("cancel-reason").value.trim();
    send("POST", appointmentUrl(reference, "cancel"), { reason: reason }).then(function (answer) {
      if (!answer.ok) {
        showAlert(errorMessage(answer.body, answer.status));
        return;
      }
      closePanels();
      document.getElementById("cancel-reason").value = "";
      announce("Cancelled " + reference + ".");
      load(true);
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
      load(true);
    });
  });
})();
