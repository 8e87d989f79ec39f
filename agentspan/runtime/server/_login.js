// The login page's script (served as /ui/login.js: the page's policy allows no inline script).
// Posts the token to /api/session, which sets the HttpOnly session cookie, then reloads the page.
"use strict";
(function () {
  var form = document.getElementById("login");
  var input = document.getElementById("token");
  var error = document.getElementById("error");
  var button = form.querySelector("button");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    error.textContent = "";
    if (!input.value) {
      error.textContent = "Enter the token.";
      return;
    }
    button.disabled = true;
    fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: input.value }),
      credentials: "same-origin",
    })
      .then(function (response) {
        if (response.status === 204) {
          window.location.reload();
          return;
        }
        return response.json().then(
          function (body) {
            error.textContent = (body && body.error && body.error.message) || "Login failed (" + response.status + ").";
          },
          function () {
            error.textContent = "Login failed (" + response.status + ").";
          }
        );
      })
      .catch(function (exc) {
        error.textContent = "The server did not answer: " + exc.message;
      })
      .finally(function () {
        button.disabled = false;
      });
  });
})();
