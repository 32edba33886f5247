// The signing link is /sign#pvs_…: the token is in the fragment, which the browser never
// sends to any server. Take it out of the address bar at once (so it is in no history entry,
// bookmark or screenshot), then post it once in the form: the server answers with a
// short-lived HttpOnly cookie, and from then on no script ever holds the token.
const form = document.querySelector("[data-sign-open]");
const prefix = form ? form.dataset.prefix : "";
let fragment = "";
try {
  fragment = decodeURIComponent(location.hash.slice(1));
} catch {
  fragment = "";
}
if (location.hash) history.replaceState(null, "", location.pathname + location.search);
if (form && fragment.startsWith(prefix) && /^[A-Za-z0-9_-]{20,120}$/.test(fragment)) {
  form.querySelector("[data-sign-token]").value = fragment;
  fragment = "";
  form.hidden = true;
  document.querySelector("[data-sign-opening]").hidden = false;
  form.submit();
}
