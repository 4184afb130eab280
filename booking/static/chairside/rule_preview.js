/* The reminder editor's live preview (notifications/setup.py): as the admin edits a reminder,
   the server renders the chosen message for a sample visit, with the very code the outbox
   sends with, and this swaps the result in. Without script the "Preview" button does the same
   by submitting the form. Editing a reminder's fields turns the preview to that reminder. */
(function () {
  "use strict";
  var form = document.getElementById("rules-form");
  var target = document.getElementById("rule-preview");
  var select = document.getElementById("preview-kind");
  if (!form || !target || !select || !form.dataset.previewUrl) return;
  var timer = null;
  var controller = null;

  function query() {
    var kind = select.value;
    var params = new URLSearchParams();
    params.append("kind", kind);
    new FormData(form).forEach(function (value, name) {
      if (name.indexOf(kind + "-") === 0) params.append(name, value);
    });
    return params.toString();
  }

  function refresh() {
    if (controller) controller.abort();
    controller = new AbortController();
    fetch(form.dataset.previewUrl + "?" + query(), {
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      signal: controller.signal
    })
      .then(function (response) {
        if (!response.ok) throw new Error("preview " + response.status);
        return response.text();
      })
      .then(function (html) {
        // Server-rendered and escaped by Django's templates.
        target.innerHTML = html;
      })
      .catch(function () { /* keep the last preview; the Preview button still works */ });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  }

  form.addEventListener("focusin", function (event) {
    var fieldset = event.target.closest ? event.target.closest("fieldset.rule") : null;
    if (!fieldset) return;
    var kind = fieldset.id.replace(/^rule-/, "");
    if (select.value !== kind) {
      select.value = kind;
      later();
    }
  });
  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
