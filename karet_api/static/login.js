"use strict";
// Sends the password to the auth API as JSON (the API sets the session cookie), then opens the page the
// browser was sent here from. A user name makes it a user's sign-in (KalamDB's endpoint, token cookies);
// without one it is Karet's admin password.
(() => {
  const form = document.getElementById("login");
  const error = form.querySelector(".error");
  const button = form.querySelector("button");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      const user = form.elements.user ? form.elements.user.value.trim() : "";
      const password = form.elements.password.value;
      const response = await fetch(user ? form.dataset.userEndpoint : form.dataset.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(user ? { user, password } : { password }),
      });
      if (response.ok) {
        window.location.assign(form.dataset.next);
        return;
      }
      const body = await response.json().catch(() => ({}));
      // Karet's envelope has `message`; KalamDB's nests it in `error`.
      const message = body.message || (body.error && body.error.message);
      error.textContent = message || `Signing in failed (HTTP ${response.status}).`;
    } catch {
      error.textContent = "The server could not be reached.";
    }
    error.hidden = false;
    button.disabled = false;
  });
})();
