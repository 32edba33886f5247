// Loaded on every page. Pages work without it; it only smooths a few edges.
document.documentElement.classList.add("js");

// An invitation token waits in sessionStorage only while someone is on their way to accept it
// (see invitation.js); anywhere else in the app it is dropped.
const onInvitationPath =
  location.pathname.startsWith("/invitations/accept") || location.pathname.startsWith("/sign-in");
if (!onInvitationPath) {
  try {
    sessionStorage.removeItem("pv-invitation");
  } catch {
    // storage disabled: nothing was kept
  }
}
