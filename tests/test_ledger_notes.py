"""Signed notes, checkpoints and witness cosignatures (C2SP), checked against outside data.

Two fixtures come from other implementations: the Go ``golang.org/x/mod/sumdb/note`` example
(PeterNeumann), which our signer must reproduce byte for byte, and a real checkpoint of a
Certificate Transparency staging log with four public witnesses' cosignature/v1 lines.
"""

from __future__ import annotations

import base64
import functools
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pactvault.errors import ConflictError
from pactvault.ledger.checkpoint import (
    Checkpoint,
    check_consistent,
    find_forks,
    open_checkpoint,
    sign_checkpoint,
)
from pactvault.ledger.errors import ForkDetectedError, NoteError
from pactvault.ledger.merkle import (
    EMPTY_ROOT,
    consistency_spans,
    leaf_hash,
    perfect_root,
    root_of,
    span_hash,
)
from pactvault.ledger.note import (
    ALG_COSIGNATURE_V1,
    Ed25519NoteSigner,
    NoteSignature,
    add_signatures,
    compute_key_id,
    open_note,
    parse_note,
    parse_verifier_key,
    raw_public_key,
    sign_note,
)
from pactvault.ledger.witness import (
    CosignatureSigner,
    Witness,
    cosignature_time,
    parse_cosigner_key,
)

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # from PRIVATE+KEY+PeterNeumann+…
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

CT_ORIGIN = "arche2025h1.staging.ct.transparency.dev"
CT_LOG_VKEY = f"{CT_ORIGIN}+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
CT_WITNESS_VKEYS = [
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
    "witness.stagemole.eu+67f7aea0+BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv",
    "transparency.dev/DEV:witness-little-garden+d8042a87+BCtusOxINQNUTN5Oj8HObRkh2yHf/MwYaGX4CPdiVEPM",
    "witness1.smartit.nu/witness1+a48c820f+BPSFWg9G6KPiO7QPryYO5Xq4oYJJ+kAvLKLSimDhoxMO",
]
CT_CHECKPOINT = f"""{CT_ORIGIN}
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

— {CT_ORIGIN} zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
— {CT_ORIGIN} ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
— transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==
— witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==
— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
— witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==
"""  # noqa: E501

ORIGIN = "pactvault.example/ledger"
LOG = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
WITNESS = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.generate())
LEAVES = [leaf_hash(b"%d" % i) for i in range(64)]


@functools.cache
def _node(level: int, index: int) -> bytes:
    return perfect_root(LEAVES[index << level : (index + 1) << level])


def checkpoint(size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, root_of(LEAVES[:size]) if size else EMPTY_ROOT)


def proof(size1: int, size2: int) -> list[bytes]:
    return [span_hash(s, _node) for s in consistency_spans(size1, size2)]


# -- signed notes ------------------------------------------------------------------------------


def test_go_example_note_verifies_and_is_reproduced_byte_for_byte() -> None:
    verifier = parse_verifier_key(GO_VKEY)
    assert open_note(GO_NOTE, [verifier]).text == GO_TEXT
    signer = Ed25519NoteSigner(
        "PeterNeumann", Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_SEED)[1:])
    )
    assert signer.verifier.key_string() == GO_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), [verifier])


def test_verifier_key_strings_are_checked() -> None:
    # base64 key material may contain "+" (transparency-dev/formats test key)
    assert parse_verifier_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    for bad in [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),  # wrong key ID
        GO_VKEY.replace("c74f20a3", "C74F20A3"),  # not lowercase hex
        GO_VKEY.replace("ARpc", "ARpd"),  # key changed under the same ID
        GO_VKEY.replace("PeterNeumann", "Peter Neumann"),
        "PeterNeumann+c74f20a3",
        GO_VKEY[:-1],
        CT_WITNESS_VKEYS[0],  # a cosigner key is not a log key
    ]:
        with pytest.raises(NoteError):
            parse_verifier_key(bad)
    with pytest.raises(NoteError):
        parse_cosigner_key(GO_VKEY)


def test_unknown_signatures_are_ignored_but_one_trusted_one_is_required() -> None:
    stranger = Ed25519NoteSigner("stranger.example", Ed25519PrivateKey.generate())
    both = sign_note("hello\n", [stranger, LOG])
    opened = open_note(both, [LOG.verifier])
    assert [s.name for s in opened.verified] == [ORIGIN]
    assert [s.name for s in opened.unverified] == ["stranger.example"]
    with pytest.raises(NoteError, match="not signed by any trusted key"):
        open_note(sign_note("hello\n", [stranger]), [LOG.verifier])
    # Same name as a known key, other key ID: ignored, not a failure.
    impostor = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    assert open_note(sign_note("hello\n", [impostor, LOG]), [LOG.verifier]).verified


def test_a_failing_signature_from_a_known_key_rejects_the_note() -> None:
    good = LOG.sign("hello\n")
    forged = NoteSignature(ORIGIN, LOG.key_id, bytes(64))
    note = "hello\n\n" + good.line() + forged.line()
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note, [LOG.verifier])


@pytest.mark.parametrize(
    "note",
    [
        "hello\n",  # no signature block
        "hello\n\n",  # empty signature block
        "hello\n\n— x AAAAAAA=",  # no final newline
        "hello\n\n- x AAAAAAAA\n",  # hyphen, not em dash
        "hello\n\n—  x AAAAAAAA\n",  # two spaces
        "hello\n\n— x AAAAAAAA extra\n",
        "hello\n\n— a+b AAAAAAAA\n",  # "+" in key name
        "hello\n\n— x AAAA\n",  # signature shorter than 5 bytes
        "hello\n\n— x AAAAAAA!\n",  # not base64
        "hello\n\n— x AAAAAAB=\n",  # non-canonical base64 padding bits
        "hel\tlo\n\n— x AAAAAAAA\n",  # control character
        "hello\r\n\n— x AAAAAAAA\n",
        "hello\n\n" + "— x AAAAAAAA\n" * 101,  # too many signatures
    ],
)
def test_malformed_notes_are_rejected(note: str) -> None:
    with pytest.raises(NoteError):
        parse_note(note)


def test_note_bytes_must_be_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(b"hello \xff\n\n" + LOG.sign("x\n").line().encode())


def test_text_may_contain_blank_lines_the_last_one_separates() -> None:
    text = "a\n\nb\n"
    assert open_note(sign_note(text, [LOG]), [LOG.verifier]).text == text


# -- checkpoints -------------------------------------------------------------------------------


def test_checkpoint_body_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 20852163, hashlib.sha256(b"r").digest(), ("ext one",))
    body = cp.body()
    assert body.splitlines()[:2] == [ORIGIN, "20852163"]
    assert Checkpoint.from_body(body) == cp
    signed = open_checkpoint(sign_checkpoint(cp, LOG), origin=ORIGIN, verifiers=[LOG.verifier])
    assert signed.checkpoint == cp


ROOT64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n5\n",  # no root
        f"{ORIGIN}\n5\n{ROOT64}",  # no final newline
        f"\n5\n{ROOT64}\n",  # empty origin
        f"{ORIGIN}\n05\n{ROOT64}\n",  # leading zero
        f"{ORIGIN}\n+5\n{ROOT64}\n",
        f"{ORIGIN}\n-1\n{ROOT64}\n",
        f"{ORIGIN}\n{1 << 64}\n{ROOT64}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(bytes(31)).decode()}\n",
        f"{ORIGIN}\n5\n{ROOT64[:-1]}\n",
        f"{ORIGIN}\n5\n{ROOT64}\n\n",  # empty extension line
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.from_body(body)


def test_checkpoint_must_be_for_the_expected_log_and_signed_by_the_log() -> None:
    note = sign_checkpoint(checkpoint(3), LOG)
    with pytest.raises(NoteError, match="different log"):
        open_checkpoint(note, origin="other.example/log", verifiers=[LOG.verifier])
    # A note carrying only a witness cosignature is not signed by the log.
    cosigned_only = checkpoint(3).body() + "\n" + WITNESS.cosign(checkpoint(3), 1).line()
    with pytest.raises(NoteError, match="not signed by any trusted key"):
        open_checkpoint(
            cosigned_only, origin=ORIGIN, verifiers=[LOG.verifier], witnesses=[WITNESS.verifier]
        )


def test_real_ct_checkpoint_and_four_public_witness_cosignatures_verify() -> None:
    signed = open_checkpoint(
        CT_CHECKPOINT,
        origin=CT_ORIGIN,
        verifiers=[parse_verifier_key(CT_LOG_VKEY)],
        witnesses=[parse_cosigner_key(k) for k in CT_WITNESS_VKEYS],
        quorum=4,
    )
    assert signed.checkpoint.size == 1432088532
    assert {cosignature_time(c) for c in signed.cosignatures} == {1779573024}
    tampered = CT_CHECKPOINT.replace("1432088532", "1432088533")
    with pytest.raises(NoteError):
        open_checkpoint(tampered, origin=CT_ORIGIN, verifiers=[parse_verifier_key(CT_LOG_VKEY)])


# -- cosignatures and witnessing ---------------------------------------------------------------


def test_cosignature_is_over_the_cosignature_v1_message() -> None:
    cp = checkpoint(5)
    sig = WITNESS.cosign(cp, 1679315147)
    public = raw_public_key(WITNESS.verifier.public_key)
    assert sig.key_id == compute_key_id(WITNESS.name, ALG_COSIGNATURE_V1, public)
    assert sig.signature[:8] == (1679315147).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1679315147\n" + cp.body().encode()
    WITNESS.verifier.public_key.verify(sig.signature[8:], message)  # raises if not
    assert parse_cosigner_key(WITNESS.verifier.key_string()).key_id == sig.key_id

    note = add_signatures(sign_checkpoint(cp, LOG), [sig])
    signed = open_checkpoint(
        note, origin=ORIGIN, verifiers=[LOG.verifier], witnesses=[WITNESS.verifier], quorum=1
    )
    assert signed.cosignatures == (sig,)
    with pytest.raises(NoteError, match="1 trusted cosignatures, 2 required"):
        open_checkpoint(
            note, origin=ORIGIN, verifiers=[LOG.verifier], witnesses=[WITNESS.verifier], quorum=2
        )
    with pytest.raises(NoteError, match="witness keys must be cosignature"):
        # The log's own key passed as a witness would count its signature as a cosignature.
        open_checkpoint(
            note, origin=ORIGIN, verifiers=[LOG.verifier], witnesses=[LOG.verifier], quorum=1
        )
    forged = NoteSignature(sig.name, sig.key_id, sig.signature[:8] + bytes(64))
    with pytest.raises(NoteError, match="cosignature"):
        open_checkpoint(
            add_signatures(sign_checkpoint(cp, LOG), [forged]),
            origin=ORIGIN,
            verifiers=[LOG.verifier],
            witnesses=[WITNESS.verifier],
        )


def test_witness_cosigns_only_consistent_growth() -> None:
    witness = Witness(WITNESS, ORIGIN, [LOG.verifier])
    first, sig = witness.cosign(sign_checkpoint(checkpoint(5), LOG), previous=None, now=100)
    assert first == checkpoint(5) and cosignature_time(sig) == 100
    second, _ = witness.cosign(
        sign_checkpoint(checkpoint(13), LOG), previous=first, proof=proof(5, 13)
    )
    same, _ = witness.cosign(sign_checkpoint(checkpoint(13), LOG), previous=second)
    assert same == second

    with pytest.raises(ConflictError, match="older"):
        witness.cosign(sign_checkpoint(checkpoint(7), LOG), previous=second, proof=proof(7, 13))
    forked = Checkpoint(ORIGIN, 13, hashlib.sha256(b"other history").digest())
    with pytest.raises(ForkDetectedError) as caught:
        witness.cosign(sign_checkpoint(forked, LOG), previous=second)
    assert caught.value.evidence == (second, forked)
    with pytest.raises(ForkDetectedError):
        witness.cosign(sign_checkpoint(checkpoint(20), LOG), previous=second, proof=proof(12, 20))
    stranger = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        witness.cosign(sign_checkpoint(checkpoint(20), stranger), previous=second)


def test_fork_detection() -> None:
    check_consistent(checkpoint(3), checkpoint(9), proof(3, 9))
    check_consistent(checkpoint(9), checkpoint(3), proof(3, 9))  # either order
    check_consistent(checkpoint(0), checkpoint(9), [])
    with pytest.raises(ForkDetectedError):
        check_consistent(Checkpoint(ORIGIN, 0, bytes(32)), checkpoint(9), [])
    evil = Checkpoint(ORIGIN, 9, hashlib.sha256(b"evil").digest())
    with pytest.raises(ForkDetectedError, match="inconsistent"):
        check_consistent(checkpoint(9), evil, [])
    with pytest.raises(ForkDetectedError):
        check_consistent(checkpoint(3), evil, proof(3, 9))
    assert find_forks([checkpoint(3), checkpoint(9), evil, checkpoint(9)]) == [
        (checkpoint(9), evil)
    ]
