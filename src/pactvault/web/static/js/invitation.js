// The invitation link is /invitations/accept#pvinv_…: the token is in the fragment, which the
// browser never sends to the server. Move it into the form, remove it from the address bar, and
// keep it in sessionStorage (this tab only) while the person signs in first, if they must.
const KEY = "pv-invitation";

function remember(token) {
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    // storage disabled: the form below still gets the token for this page
  }
}

function recall() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

let token = null;
const fragment = decodeURIComponent(location.hash.slice(1));
if (/^pvinv_[A-Za-z0-9_-]{20,100}$/.test(fragment)) {
  token = fragment;
  remember(token);
  history.replaceState(null, "", location.pathname + location.search);
} else {
  token = recall();
}

const input = document.querySelector("[data-invitation-token]");
if (input && token && !input.value) {
  input.value = token;
  const field = input.closest("[data-invitation-field]");
  if (field) field.hidden = true;
}
