/* The client pages' script (a static file: the CSP allows no inline script).
   - Time zone: without a chosen zone, the browser's own is stored in the booking_tz cookie and
     the page asks the server again once, so times come rendered in the visitor's zone.
   - The booking form posts JSON to /api/bookings; problem bodies become inline errors; on
     success the manage token is kept in sessionStorage and the browser goes to the checkout.
   - The success page shows the manage and calendar links from that sessionStorage entry. */
(function () {
  "use strict";
  var COOKIE = "booking_tz";

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split("=");
      if (kv[0] === name) { return decodeURIComponent(kv.slice(1).join("=")); }
    }
    return null;
  }

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function adoptBrowserZone() {
    var root = document.documentElement;
    if (!root.dataset.zone || root.dataset.zoneChosen !== "no" || cookie(COOKIE) !== null) {
      return false;
    }
    var zone = browserZone();
    if (!zone) { return false; }
    // IANA names are cookie-safe as they are (letters, digits, "/", "_", "-", "+").
    document.cookie = COOKIE + "=" + zone + "; path=/; max-age=31536000; samesite=lax";
    if (zone !== root.dataset.zone) { window.location.reload(); return true; }
    return false;
  }

  function storageKey(bookingId) { return "booking-manage-" + bookingId; }

  function clearErrors(form) {
    var shown = form.querySelectorAll(".field-error, .form-error");
    for (var i = 0; i < shown.length; i++) { shown[i].hidden = true; shown[i].textContent = ""; }
    var invalid = form.querySelectorAll("[aria-invalid]");
    for (var j = 0; j < invalid.length; j++) { invalid[j].removeAttribute("aria-invalid"); }
  }

  function fieldId(name) { return name.replace(/\./g, "-"); }

  function showProblem(form, problem) {
    var first = null;
    var errors = (problem && problem.errors) || {};
    var unplaced = [];
    Object.keys(errors).forEach(function (name) {
      var slot = document.getElementById("error-" + fieldId(name));
      var messages = errors[name].join("; ");
      if (!slot) { unplaced.push(name + ": " + messages); return; }
      slot.textContent = messages;
      slot.hidden = false;
      var field = document.getElementById(fieldId(name));
      if (field) {
        field.setAttribute("aria-invalid", "true");
        if (!first) { first = field.matches("fieldset") ? field.querySelector("input") || field : field; }
      }
    });
    var summary = form.querySelector(".form-error");
    var text = (problem && problem.detail) || "Something went wrong; please try again.";
    if (Object.keys(errors).length) { text = "Please correct the fields marked below."; }
    if (problem && problem.code === "slot_unavailable") {
      text = "That time was just taken by someone else. Please choose another time.";
    }
    if (unplaced.length) { text += " (" + unplaced.join(", ") + ")"; }
    summary.textContent = text;
    summary.hidden = false;
    (first || summary).focus();
  }

  function bookingBody(form) {
    var data = new FormData(form);
    var client = { name: data.get("client.name") || "", email: data.get("client.email") || "" };
    var phone = data.get("client.phone");
    if (phone) { client.phone = phone; }
    var body = {
      practitioner_id: Number(form.dataset.practitioner),
      service_id: Number(form.dataset.service),
      start: data.get("start") || "",
      client: client
    };
    var notes = data.get("notes");
    if (notes) { body.notes = notes; }
    return body;
  }

  function bookingForm() {
    var form = document.getElementById("book");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearErrors(form);
      var body = bookingBody(form);
      if (!body.start) {
        showProblem(form, { detail: "Choose a time first.", errors: { start: ["choose a time"] } });
        return;
      }
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      fetch(form.getAttribute("action"), {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body),
        credentials: "same-origin"
      }).then(function (response) {
        return response.json().then(function (json) { return { ok: response.ok, json: json }; },
          function () { return { ok: false, json: null }; });
      }).then(function (answer) {
        if (answer.ok && answer.json && answer.json.checkout_url) {
          try {
            sessionStorage.setItem(storageKey(answer.json.booking.id), answer.json.manage_token);
          } catch (e) { /* private mode: the email still carries the link */ }
          window.location.assign(answer.json.checkout_url);
          return;
        }
        button.disabled = false;
        showProblem(form, answer.json);
      }, function () {
        button.disabled = false;
        showProblem(form, { detail: "The booking service did not answer; please try again." });
      });
    });
  }

  function manageLinks() {
    var section = document.getElementById("manage-links");
    if (!section) { return; }
    var id = section.dataset.booking;
    var token = null;
    try { token = sessionStorage.getItem(storageKey(id)); } catch (e) { token = null; }
    if (!token) { return; }
    var query = "?token=" + encodeURIComponent(token);
    document.getElementById("manage-link").href = "/manage/" + id + query;
    document.getElementById("ics-link").href = "/manage/" + id + "/booking.ics" + query;
    document.getElementById("manage-list").hidden = false;
    document.getElementById("manage-fallback").hidden = true;
  }

  function autosubmit() {
    var selects = document.querySelectorAll("select[data-autosubmit]");
    for (var i = 0; i < selects.length; i++) {
      selects[i].addEventListener("change", function (event) { event.target.form.submit(); });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (adoptBrowserZone()) { return; }
    bookingForm();
    manageLinks();
    autosubmit();
  });
})();
