// The only script of the operator UI: a login link may carry the token in its fragment
// (#token=...), which browsers never send to a server; fill the form with it. Logging in stays a
// click of the operator's own, so a link cannot log anybody into somebody else's session.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  const match = /[#&]token=([^&]+)/.exec(window.location.hash);
  if (form && match) {
    document.getElementById("token").value = decodeURIComponent(match[1]);
    history.replaceState(null, "", window.location.pathname + window.location.search);
    form.querySelector("button[type=submit]").focus();
  }
});
