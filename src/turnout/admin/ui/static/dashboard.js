// The turnout dashboard: fetches each page's body with the bearer token, refreshes it, and sends
// the write controls' forms to the admin API. No framework, no external file.
(function () {
  "use strict";
  var body = document.body;
  var base = body.dataset.base || "";
  var api = body.dataset.api || "";
  var refreshMs = Math.max(1, Number(body.dataset.refresh || "5")) * 1000;
  var main = document.getElementById("main");
  var age = document.getElementById("age");
  var roleBadge = document.getElementById("role");
  var login = document.getElementById("login");
  var loginError = document.getElementById("login-error");
  var asOf = null;
  var fetchedAt = null;
  var timer = null;
  var KEY = "turnout.dashboard.token";

  function token() {
    try { return window.sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }

  function headers(json) {
    var h = { "Accept": "application/json" };
    if (json) { h["Content-Type"] = "application/json"; }
    var t = token();
    if (t) { h["Authorization"] = "Bearer " + t; }
    return h;
  }

  function pagePath() {
    var path = window.location.pathname;
    if (path.indexOf(base) === 0) { path = path.slice(base.length); }
    return path.replace(/^\/+/, "");
  }

  // A refresh replaces the page's body: never while someone is filling a form, while a change is
  // on its way to the admin API, or for a while after an error was shown (so it can be read).
  var pending = 0;
  var holdUntil = 0;

  function editing() {
    if (pending > 0 || Date.now() < holdUntil) { return true; }
    var active = document.activeElement;
    if (!active || !main.contains(active)) { return false; }
    if (active.closest && active.closest("form.act, .actions")) { return true; }
    return active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA";
  }

  function showAge() {
    if (fetchedAt === null) { return; }
    var now = Date.now() / 1000;
    var text;
    if (asOf === null) {
      text = "no metrics yet; page read " + Math.round(now - fetchedAt) + " s ago";
    } else {
      text = "data is " + Math.max(0, Math.round(now - asOf)) + " s old";
    }
    age.textContent = text;
  }

  function load(force) {
    if (!force && editing()) { return Promise.resolve(); }
    return fetch(base + "/view/" + pagePath() + window.location.search, { headers: headers(false) })
      .then(function (response) {
        return response.json().then(function (data) { return { status: response.status, data: data }; });
      })
      .then(function (answer) {
        if (answer.status === 401) {
          login.hidden = false;
          loginError.textContent = token() ? answer.data.error : "";
          age.textContent = "sign in to see the data";
          return;
        }
        if (answer.status !== 200) {
          main.innerHTML = "";
          var p = document.createElement("p");
          p.className = "problem";
          p.textContent = answer.data.error || ("error " + answer.status);
          main.appendChild(p);
          return;
        }
        login.hidden = true;
        document.title = answer.data.title + " · turnout";
        if (force || !editing()) {
          main.innerHTML = answer.data.html;
          holdUntil = 0;
        }
        roleBadge.hidden = false;
        roleBadge.textContent = "role: " + answer.data.role;
        asOf = answer.data.as_of;
        fetchedAt = answer.data.now;
        showAge();
      })
      .catch(function (error) {
        age.textContent = "could not refresh: " + error;
      });
  }

  function collect(form) {
    var data = {};
    var fields = form.querySelectorAll("input");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      if (!field.name) { continue; }
      var value = field.value;
      if (field.dataset.from) {
        var source = document.getElementById(field.dataset.from);
        value = source ? source.value : "";
      }
      if (field.name === "enabled") {
        data.enabled = value === "true";
      } else if (field.name.indexOf("split.") === 0) {
        data.split = data.split || {};
        data.split[field.name.slice(6)] = value === "" ? null : Number(value);
      } else {
        data[field.name] = value;
      }
    }
    return data;
  }

  function clearErrors(form) {
    var shown = form.querySelectorAll(".field-error, .form-error");
    for (var i = 0; i < shown.length; i++) { shown[i].textContent = ""; }
    var marked = form.querySelectorAll("[aria-invalid]");
    for (var j = 0; j < marked.length; j++) { marked[j].removeAttribute("aria-invalid"); }
  }

  function showErrors(form, data, status) {
    holdUntil = Date.now() + 30000;
    var general = form.querySelector(".form-error");
    var errors = data.errors || [];
    if (!errors.length) {
      general.textContent = data.error || ("the admin API answered " + status);
      return;
    }
    for (var i = 0; i < errors.length; i++) {
      var error = errors[i];
      var text = error.path + ": " + error.message;
      var spot = null;
      var spots = form.querySelectorAll("[data-path]");
      for (var j = 0; j < spots.length; j++) {
        if (spots[j].dataset.path === error.path) { spot = spots[j]; }
      }
      if (spot === null) {
        for (var k = 0; k < spots.length; k++) {
          if (error.path.indexOf(spots[k].dataset.path) === 0 || spots[k].dataset.path.indexOf(error.path) === 0) {
            spot = spots[k];
          }
        }
      }
      var target = spot || general;
      target.textContent = (target.textContent ? target.textContent + " " : "") + text;
      var input = spot && spot.previousElementSibling;
      if (input && input.tagName === "INPUT") { input.setAttribute("aria-invalid", "true"); }
    }
  }

  main.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("act")) { return; }
    event.preventDefault();
    clearErrors(form);
    var data = collect(form);
    if ("reason" in data && !data.reason) {
      holdUntil = Date.now() + 30000;
      form.querySelector(".form-error").textContent = "Say why: a reason is required.";
      return;
    }
    var buttons = form.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
    pending += 1;
    fetch(api + "/" + form.dataset.url, {
      method: form.dataset.method,
      headers: headers(true),
      body: JSON.stringify(data)
    })
      .then(function (response) {
        return response.text().then(function (text) {
          var parsed = {};
          try { parsed = text ? JSON.parse(text) : {}; } catch (e) { parsed = { error: text }; }
          return { ok: response.ok, status: response.status, data: parsed };
        });
      })
      .then(function (answer) {
        pending -= 1;
        for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = false; }
        if (!answer.ok) {
          showErrors(form, answer.data, answer.status);
          return;
        }
        if (document.activeElement) { document.activeElement.blur(); }
        return load(true);
      })
      .catch(function (error) {
        pending = Math.max(0, pending - 1);
        for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = false; }
        holdUntil = Date.now() + 30000;
        form.querySelector(".form-error").textContent = "could not reach the admin API: " + error;
      });
  });

  login.addEventListener("submit", function (event) {
    event.preventDefault();
    try { window.sessionStorage.setItem(KEY, document.getElementById("token").value.trim()); } catch (e) { }
    load(true);
  });

  function tick() {
    load(false);
  }

  load(true);
  timer = window.setInterval(tick, refreshMs);
  window.setInterval(showAge, 1000);
})();
