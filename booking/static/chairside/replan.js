/* The progress of a reminder re-plan running in the background (notifications/rules.py):
   polls the job's JSON and moves the bar. Without script the page's "Refresh" link shows the
   state as it is. The status line is rewritten at most every few seconds, so a screen reader
   is not told every step. */
(function () {
  "use strict";
  var box = document.getElementById("replan-job");
  if (!box || !box.dataset.jobUrl) return;
  var bar = document.getElementById("replan-progress");
  var state = document.getElementById("replan-state");
  var refresh = box.querySelector(".replan-refresh");
  var lastText = 0;
  var lastStatus = "";

  function describe(job) {
    if (job.status === "queued") return "Waiting to start re-planning the messages of booked visits.";
    if (job.status === "running") return "Re-planning: " + job.done + " of " + job.total + " booked visits done.";
    if (job.status === "done") {
      return "Done: the messages of " + job.total + " booked visit" + (job.total === 1 ? "" : "s") +
        " follow these rules" + (job.finished_at_label ? " (finished " + job.finished_at_label + ")" : "") + ".";
    }
    return "Stopped after " + job.done + " of " + job.total + " booked visits: " + job.error +
      ". Save the rules again to retry.";
  }

  function show(job) {
    bar.max = Math.max(job.total, 1);
    if (job.status === "done") bar.value = bar.max;
    else if (job.total) bar.value = job.done;
    bar.textContent = job.done + " of " + job.total;
    var now = Date.now();
    if (job.finished || job.status !== lastStatus || now - lastText > 5000) {
      state.textContent = describe(job);
      lastText = now;
      lastStatus = job.status;
    }
    if (job.finished && refresh) refresh.hidden = true;
  }

  function poll() {
    fetch(box.dataset.jobUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("job " + response.status);
        return response.json();
      })
      .then(function (job) {
        show(job);
        if (!job.finished) setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  poll();
})();
