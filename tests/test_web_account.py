"""Sign-in with a second factor, enrolment, the security page, joining, setup — over HTTP.

Every flow runs on a real instance with the pages' forms and cookies, and checks the outcome in
the services (the factor exists, the session works, the code is spent), not only the page text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

from identity_kit import PASSWORD
from mfa_kit import SoftAuthenticator
from pactvault.api.deps import CSRF_HEADER, SESSION_COOKIE
from pactvault.web.security import ENROL_COOKIE, SIGNIN_COOKIE, TOTP_COOKIE
from web_kit import Instance, Visitor, instance, totp_code, totp_secret, visitor


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    with instance(tmp_path_factory.mktemp("web-account")) as inst:
        yield inst


@pytest.fixture
def web(site: Instance) -> Iterator[Visitor]:
    yield from visitor(site.platform)


@pytest.fixture
def other(site: Instance) -> Iterator[Visitor]:
    """A second browser."""
    yield from visitor(site.platform)


def recovery_codes(page: str) -> list[str]:
    block = re.search(r"data-recovery-codes>(.*?)</ol>", page, re.S)
    assert block, "no recovery codes on the page"
    return re.findall(r"<code>([^<]+)</code>", block.group(1))


def add_totp(web: Visitor) -> tuple[bytes, list[str]]:
    """From the security page: QR + key, confirm with the app's code; returns key and codes."""
    web.get("/account/security")
    page = web.post("/account/security/totp").text
    assert '<img class="qr" src="/account/security/totp/qr.svg"' in page
    secret = totp_secret(page)
    response = web.post("/account/security/totp/confirm", {"code": totp_code(secret)})
    assert response.status_code == 200
    return secret, recovery_codes(response.text)


def user_id(inst: Instance, email: str) -> str:
    issued = inst.platform.login.login(email, PASSWORD, _client())
    return issued.user_id  # type: ignore[union-attr]


def _client():  # type: ignore[no-untyped-def]
    from identity_kit import CLIENT

    return CLIENT


# -- authenticator app and the second step --------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_totp_enrolment_then_sign_in_with_the_second_step(
    site: Instance, web: Visitor, language: str
) -> None:
    web.language = language
    email = site.organisation()
    web.sign_in(email)
    web.get("/account/security")
    page = web.post("/account/security/totp").text
    secret = totp_secret(page)
    # The QR code: an SVG from a fixed address (the key is never in a URL), bound to the session.
    qr = web.client.get("/account/security/totp/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/svg+xml"
    assert qr.text.startswith("<svg") and "<path" in qr.text
    assert re.search(r'src="[^"]*(secret|otpauth|[A-Z2-7]{32})', page) is None
    cookie = next(
        h for h in qr.request.headers.get("cookie", "").split("; ") if h.startswith(TOTP_COOKIE)
    )
    assert secret.hex() not in cookie and "otpauth" not in cookie  # sealed
    wrong = web.post("/account/security/totp/confirm", {"code": "000000"})
    assert wrong.status_code == 401 and "data-totp-secret" in wrong.text  # try again, same key
    done = web.post("/account/security/totp/confirm", {"code": totp_code(secret)})
    codes = recovery_codes(done.text)
    assert len(codes) == 10
    assert f"{TOTP_COOKIE}=" in done.headers["set-cookie"]  # the QR cookie is cleared
    assert web.client.get("/account/security/totp/qr.svg").status_code == 404

    web.get("/account/security")
    web.post("/sign-out")
    response = web.sign_in(email, next_path="/account/security")
    assert response.status_code == 303 and response.headers["location"] == "/sign-in/verify"
    assert SESSION_COOKIE not in web.client.cookies
    assert (
        "HttpOnly" in response.headers["set-cookie"]
        and SIGNIN_COOKIE in response.headers["set-cookie"]
    )
    page = web.get("/sign-in/verify").text
    assert 'name="method" value="totp"' in page and 'value="recovery"' in page
    bad = web.post("/sign-in/verify", {"method": "totp", "code": "123456"})
    assert bad.status_code == 401
    response = web.post(
        "/sign-in/verify", {"method": "totp", "code": totp_code(secret, steps_ahead=1)}
    )
    assert response.status_code == 303 and response.headers["location"] == "/account/security"
    assert web.client.cookies.get(SESSION_COOKIE)
    assert web.get("/account/security").status_code == 200

    # A recovery code works once.
    web.post("/sign-out")
    web.sign_in(email)
    web.get("/sign-in/verify")
    assert web.post("/sign-in/verify", {"method": "recovery", "code": codes[0]}).status_code == 303
    assert web.get("/home").status_code == 200
    web.post("/sign-out")
    web.sign_in(email)
    web.get("/sign-in/verify")
    assert web.post("/sign-in/verify", {"method": "recovery", "code": codes[0]}).status_code == 401


def test_the_qr_code_belongs_to_the_session_that_asked_for_it(
    site: Instance, web: Visitor, other: Visitor
) -> None:
    email = site.organisation()
    web.sign_in(email)
    web.get("/account/security")
    web.post("/account/security/totp")
    stolen = web.client.cookies.get(TOTP_COOKIE)
    other.sign_in(email)
    other.client.cookies.set(TOTP_COOKIE, stolen)
    assert other.client.get("/account/security/totp/qr.svg").status_code == 404
    other.client.cookies.clear()
    other.client.cookies.set(TOTP_COOKIE, stolen)
    anonymous = other.client.get("/account/security/totp/qr.svg", follow_redirects=False)
    assert anonymous.status_code == 303


def test_an_expired_or_missing_second_step_starts_over(site: Instance, web: Visitor) -> None:
    response = web.get("/sign-in/verify")
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"
    assert "took too long" in web.get("/sign-in").text
    web.client.cookies.set(SIGNIN_COOKIE, "forged-value")
    assert web.get("/sign-in/verify").headers["location"] == "/sign-in"


def test_codes_by_email_added_then_used_to_sign_in(site: Instance, web: Visitor) -> None:
    email = site.organisation()
    web.sign_in(email)
    web.get("/account/security")
    page = web.post("/account/security/channels", {"channel": "email"}).text
    channel_id = re.search(r'action="/account/security/channels/([^/]+)/confirm"', page).group(1)
    wrong = web.post(
        f"/account/security/channels/{channel_id}/confirm",
        {"code": "00000000", "channel": "email", "destination": "x"},
    )
    assert wrong.status_code == 401 and "not accepted" in wrong.text
    confirmed = web.post(
        f"/account/security/channels/{channel_id}/confirm", {"code": site.last_code(email)}
    )
    assert len(recovery_codes(confirmed.text)) == 10
    assert "Codes by email" in web.get("/account/security").text

    web.post("/sign-out")
    web.sign_in(email)
    page = web.get("/sign-in/verify").text
    assert 'value="email"' in page and 'value="totp"' not in page
    sent = web.post("/sign-in/verify/send-code", {"channel": "email"})
    assert sent.status_code == 200 and "We emailed a code to" in sent.text
    assert email not in sent.text  # masked
    response = web.post("/sign-in/verify", {"method": "email", "code": site.last_code(email)})
    assert response.status_code == 303 and response.headers["location"] == "/home"

    page = web.get("/account/security").text
    remove = re.search(r'action="(/account/security/channels/[^/]+/remove)"', page).group(1)
    assert web.post(remove).status_code == 303
    assert "The code channel was removed." in web.get("/account/security").text
    assert "/remove" not in re.sub(r"/account/sessions/[^\"]+", "", web.page)


def test_codes_by_text_message(site: Instance, web: Visitor) -> None:
    email = site.organisation()
    web.sign_in(email)
    web.get("/account/security")
    bad = web.post("/account/security/channels", {"channel": "sms", "destination": "1380013"})
    assert bad.status_code == 422 and "with its country code" in bad.text
    web.get("/account/security")
    page = web.post(
        "/account/security/channels", {"channel": "sms", "destination": "+86 138 0013 8000"}
    ).text
    assert "Confirm your mobile number" in page and "8000" in page and "13800138000" not in page
    action = re.search(r'action="(/account/security/channels/[^/]+/confirm)"', page).group(1)
    outbox = site.platform.sms.messages()  # type: ignore[attr-defined]
    code = re.search(r"\b(\d{6,8})\b", outbox[-1].text).group(1)
    assert len(recovery_codes(web.post(action, {"code": code}).text)) == 10
    assert web.get("/account/security").status_code == 200
    web.post("/sign-out")
    web.sign_in(email)
    web.get("/sign-in/verify")
    sent = web.post("/sign-in/verify/send-code", {"channel": "sms"})
    assert "We texted a code to" in sent.text
    code = re.search(r"\b(\d{6,8})\b", site.platform.sms.messages()[-1].text).group(1)  # type: ignore[attr-defined]
    assert web.post("/sign-in/verify", {"method": "sms", "code": code}).status_code == 303


# -- passkeys -------------------------------------------------------------------------------------


def test_passkey_registered_and_used_to_sign_in(site: Instance, web: Visitor) -> None:
    email = site.organisation()
    authenticator = SoftAuthenticator(rp_id="localhost", origin="http://localhost:8000")
    web.sign_in(email)
    page = web.get("/account/security").text
    assert "data-passkey-create" in page
    # What passkeys.js does: options by fetch (CSRF in the header), create(), post the form.
    refused = web.client.post("/account/security/passkeys/options")
    assert refused.status_code == 403
    options = web.client.post(
        "/account/security/passkeys/options", headers={CSRF_HEADER: web.csrf()}
    )
    assert options.status_code == 200 and options.json()["rp"]["id"] == "localhost"
    credential = authenticator.register(options.text)
    done = web.post(
        "/account/security/passkeys", {"credential": json.dumps(credential), "name": "Phone"}
    )
    assert len(recovery_codes(done.text)) == 10
    security = web.get("/account/security").text
    assert "Phone" in security
    passkey_id = re.search(r"/account/security/passkeys/([^/]+)/remove", security).group(1)

    web.post("/sign-out")
    web.sign_in(email)
    page = web.get("/sign-in/verify").text
    options_json = unescape(re.search(r'data-options="([^"]+)"', page).group(1))
    assertion = authenticator.assertion(options_json)
    response = web.post(
        "/sign-in/verify", {"method": "passkey", "credential": json.dumps(assertion)}
    )
    assert response.status_code == 303 and web.client.cookies.get(SESSION_COOKIE)

    web.get("/account/security")
    removed = web.post(f"/account/security/passkeys/{passkey_id}/remove")
    assert removed.status_code == 303
    assert "The passkey was removed." in web.get("/account/security").text


# -- an organisation that requires a second factor ------------------------------------------------


def test_enrolment_when_the_organisation_requires_a_second_factor(
    site: Instance, web: Visitor
) -> None:
    owner_email = site.organisation()
    owner = site.platform.sessions.authenticate(
        site.platform.login.login(owner_email, PASSWORD, _client()).token  # type: ignore[union-attr]
    )
    site.platform.mfa.set_org_requirement(owner, True)
    email = f"member{next(site.counter)}@acme.test"
    site.platform.people.invite(owner, email, "member")
    web.get("/invitations/accept")
    response = web.post(
        "/invitations/accept",
        {
            "token": site.invitation_token(email),
            "display_name": "Mia",
            "password": PASSWORD,
            "repeat_password": PASSWORD,
        },
    )
    assert response.headers["location"] == "/sign-in"

    response = web.sign_in(email, next_path="/account/security")
    assert response.status_code == 303 and response.headers["location"] == "/sign-in/enrol"
    assert (
        ENROL_COOKIE in response.headers["set-cookie"] and SESSION_COOKIE not in web.client.cookies
    )
    assert "pvenrol_" not in response.headers["location"]
    page = web.get("/sign-in/enrol").text
    assert "Your organisation requires a second factor" in page
    # The grant opens nothing else.
    assert web.get("/home").status_code == 303
    assert web.get("/account/security").status_code == 303
    # Finishing before enrolling is refused, and the grant survives.
    assert web.post("/sign-in/enrol/finish").status_code == 422
    web.get("/sign-in/enrol")
    page = web.post("/account/security/totp").text
    secret = totp_secret(page)
    assert web.client.get("/account/security/totp/qr.svg").status_code == 200
    done = web.post("/account/security/totp/confirm", {"code": totp_code(secret)})
    assert len(recovery_codes(done.text)) == 10
    assert 'action="/sign-in/enrol/finish"' in done.text
    response = web.post("/sign-in/enrol/finish")
    assert response.status_code == 303 and response.headers["location"] == "/account/security"
    assert web.client.cookies.get(SESSION_COOKIE)
    security = web.get("/account/security").text
    assert "Your organisation requires a second factor." in security
    # The last factor stays while the organisation requires one.
    refused = web.post("/account/security/totp/remove")
    assert refused.status_code == 409 and "Add another one before removing" in refused.text


def test_the_enrolment_cookie_alone_cannot_be_forged(site: Instance, web: Visitor) -> None:
    web.client.cookies.set(ENROL_COOKIE, "pvenrol_" + "x" * 43)
    response = web.get("/sign-in/enrol")
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"
    assert "took too long" in web.get("/sign-in").text


# -- the security page ----------------------------------------------------------------------------


def test_sessions_listed_revoked_and_signed_out_everywhere(
    site: Instance, web: Visitor, other: Visitor
) -> None:
    email = site.organisation()
    web.sign_in(email)
    other.sign_in(email)
    page = web.get("/account/security").text
    revoke = re.findall(r'action="/account/sessions/([^/]+)/revoke"', page)
    assert len(revoke) == 2 and "This device" in page
    mine = site.platform.sessions.authenticate(web.client.cookies.get(SESSION_COOKIE)).session_id
    theirs = next(s for s in revoke if s != mine)
    assert web.post(f"/account/sessions/{theirs}/revoke").status_code == 303
    assert other.get("/home").status_code == 303  # signed out there
    # Another person's session id answers like a missing one.
    stranger = Visitor(other.client)
    stranger.client.cookies.clear()
    stranger.sign_in(site.organisation())
    web.get("/account/security")
    foreign = site.platform.sessions.authenticate(stranger.client.cookies.get(SESSION_COOKIE))
    response = web.post(f"/account/sessions/{foreign.session_id}/revoke")
    assert response.status_code == 404
    assert stranger.get("/home").status_code == 200
    # Sign out everywhere else, then here.
    other.client.cookies.clear()
    third: Visitor = Visitor(other.client)
    third.sign_in(email)
    web.get("/account/security")
    assert web.post("/account/sessions/revoke-all").status_code == 303
    assert third.get("/home").status_code == 303 and web.get("/home").status_code == 200
    web.get("/account/security")
    response = web.post(f"/account/sessions/{mine}/revoke")
    assert response.headers["location"] == "/sign-in"
    assert web.get("/home").status_code == 303


def test_password_change(site: Instance, web: Visitor, other: Visitor) -> None:
    email = site.organisation()
    web.sign_in(email)
    other.sign_in(email)
    web.get("/account/security")
    new = "a-brand-new-long-passphrase-77"

    def change(current: str, password: str, repeat: str | None = None) -> int:
        web.get("/account/security")
        return web.post(
            "/account/password",
            {
                "current_password": current,
                "new_password": password,
                "repeat_password": password if repeat is None else repeat,
            },
        ).status_code

    assert change(PASSWORD, new, "something-else-entirely") == 422
    assert "not the same" in web.page
    assert change("wrong-current-password", new) == 401
    assert "current password is not correct" in web.page
    assert change(PASSWORD, "short") == 422
    assert "too short" in web.page
    assert change(PASSWORD, new) == 303
    assert "Your password is changed." in web.get("/account/security").text
    assert other.get("/home").status_code == 303  # other sessions ended
    web.post("/sign-out")
    assert web.sign_in(email).status_code == 401
    assert web.sign_in(email, new).status_code == 303


def test_new_recovery_codes_replace_the_old_ones(site: Instance, web: Visitor) -> None:
    email = site.organisation()
    web.sign_in(email)
    web.get("/account/security")
    assert 'action="/account/security/recovery-codes"' not in web.page  # nothing to recover yet
    _, first = add_totp(web)
    web.get("/account/security")
    assert "Unused recovery codes: 10" in web.page
    fresh = recovery_codes(web.post("/account/security/recovery-codes").text)
    assert len(fresh) == 10 and not set(fresh) & set(first)
    web.post("/sign-out")
    web.sign_in(email)
    web.get("/sign-in/verify")
    assert web.post("/sign-in/verify", {"method": "recovery", "code": first[1]}).status_code == 401
    assert web.post("/sign-in/verify", {"method": "recovery", "code": fresh[1]}).status_code == 303
    web.get("/account/security")
    assert web.post("/account/security/totp/remove").status_code == 303
    assert "The authenticator app was removed." in web.get("/account/security").text


# -- joining --------------------------------------------------------------------------------------


def test_accepting_an_invitation_creates_the_account(site: Instance, web: Visitor) -> None:
    owner = site.platform.sessions.authenticate(
        site.platform.login.login(site.organisation(), PASSWORD, _client()).token  # type: ignore[union-attr]
    )
    email = f"new{next(site.counter)}@acme.test"
    site.platform.people.invite(owner, email, "contract_manager")
    link = next(m for m in reversed(site.mailer.messages) if m.to == email).body
    assert "/invitations/accept#pvinv_" in link  # the token rides in the fragment
    page = web.get("/invitations/accept").text
    assert "data-invitation-token" in page and "/static/js/invitation.js" in page
    token = site.invitation_token(email)
    form = {"token": token, "display_name": "Nora", "password": PASSWORD}
    assert web.post("/invitations/accept", {**form, "repeat_password": "x"}).status_code == 422
    assert (
        web.post(
            "/invitations/accept", {**form, "token": "pvinv_nope", "repeat_password": PASSWORD}
        ).status_code
        == 401
    )
    assert "This invitation is not valid" in web.page
    short = web.post(
        "/invitations/accept", {**form, "password": "short", "repeat_password": "short"}
    )
    assert short.status_code == 422 and "too short" in short.text and 'value="Nora"' in short.text
    done = web.post("/invitations/accept", {**form, "repeat_password": PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == "/sign-in"
    assert "Your account is ready" in web.get("/sign-in").text
    assert web.sign_in(email).status_code == 303
    assert "Contract manager" in web.get("/home").text
    # Used once.
    web.client.cookies.clear()
    web.get("/invitations/accept")
    assert web.post("/invitations/accept", {**form, "repeat_password": PASSWORD}).status_code == 401


def test_an_existing_account_joins_by_signing_in(site: Instance, web: Visitor) -> None:
    email = site.organisation()
    owner_b = site.platform.sessions.authenticate(
        site.platform.login.login(site.organisation(), PASSWORD, _client()).token  # type: ignore[union-attr]
    )
    site.platform.people.invite(owner_b, email, "member")
    token = site.invitation_token(email)
    web.get("/invitations/accept")
    new_account = web.post(
        "/invitations/accept",
        {"token": token, "display_name": "X", "password": PASSWORD, "repeat_password": PASSWORD},
    )
    assert new_account.status_code == 401 and "Sign in first" in new_account.text
    web.sign_in(email, next_path="/invitations/accept/signed-in")
    assert web.get("/invitations/accept").headers["location"] == "/invitations/accept/signed-in"
    web.get("/invitations/accept/signed-in")
    assert (
        web.post("/invitations/accept/signed-in", {"token": token}).headers["location"] == "/home"
    )
    member_of = {m.org_id for m in site.platform.people.list_members(owner_b)}
    assert member_of == {owner_b.org_id}
    assert len(site.platform.people.list_members(owner_b)) == 2


# -- the first organisation -----------------------------------------------------------------------


def test_setup_creates_the_organisation_and_invites_its_owner(tmp_path: Path) -> None:
    with instance(tmp_path) as inst:
        assert inst.setup_token
        for web in visitor(inst.platform):
            web.get("/setup")
            form = {"setup_token": inst.setup_token, "organisation_name": "First Ltd"}
            typo = web.post("/setup", {**form, "email": "not-an-email"})
            assert typo.status_code == 422 and "valid email" in typo.text
            wrong = web.post(
                "/setup", {**form, "setup_token": "pvsetup_wrong", "email": "o@first.test"}
            )
            assert wrong.status_code == 401 and "setup token is not valid" in wrong.text
            done = web.post("/setup", {**form, "email": "o@first.test"})
            assert done.status_code == 201
            api_token = re.search(r"data-api-token>(pva_[^<]+)<", done.text).group(1)
            assert inst.platform.tokens.authenticate(api_token).permissions
            assert "development outbox" in done.text
            invitation = inst.invitation_token("o@first.test")
            web.get("/setup")
            again = web.post("/setup", {**form, "email": "o@first.test"})
            assert again.status_code == 401
            # The owner joins through the invitation, like everyone else.
            web.get("/invitations/accept")
            web.post(
                "/invitations/accept",
                {
                    "token": invitation,
                    "display_name": "Otto",
                    "password": PASSWORD,
                    "repeat_password": PASSWORD,
                },
            )
            web.sign_in("o@first.test")
            assert "Owner" in web.get("/home").text and "First Ltd" in web.page


def test_an_old_session_confirms_the_password_before_changing_factors(
    site: Instance, web: Visitor
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from pactvault.store.identity_models import UserSession

    site.organisation("reauth@acme.test")
    assert web.sign_in("reauth@acme.test").status_code in (200, 303)
    with site.platform.db.write() as s:
        s.execute(
            update(UserSession)
            .where(UserSession.user_id == user_id(site, "reauth@acme.test"))
            .values(created_at=datetime.now(UTC) - timedelta(hours=2))
        )
    page = web.get("/account/security").text
    assert 'action="/account/confirm-password"' in page
    refused = web.post("/account/security/totp")
    assert refused.status_code == 403
    assert "confirm your password" in unescape(refused.text)
    wrong = web.post("/account/confirm-password", {"password": "not it"})
    assert wrong.status_code == 401
    confirmed = web.post("/account/confirm-password", {"password": PASSWORD})
    assert confirmed.status_code in (200, 303)
    assert 'action="/account/confirm-password"' not in web.get("/account/security").text
    secret, codes = add_totp(web)
    assert secret and len(codes) == 10
