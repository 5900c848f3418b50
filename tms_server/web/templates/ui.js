// The only script of the operator UI: a login link may carry the token in its fragment
// (#token=...), which never reaches the server's logs; fill the form with it and log in.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  const match = /[#&]token=([^&]+)/.exec(window.location.hash);
  if (form && match) {
    document.getElementById("token").value = decodeURIComponent(match[1]);
    history.replaceState(null, "", window.location.pathname + window.location.search);
    form.submit();
  }
});
