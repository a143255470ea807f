import pytest

from pom_actors.core.codes import SYSTEM_CODES, CodeBook, CompletionCode

REQUIRED = {"answer_human", "answer_machine", "busy", "no_answer", "fax", "invalid_number",
            "network_refusal", "call_failed", "dnc_restricted", "window_restricted",
            "max_attempts_restricted", "nuisance_restricted", "delivered", "bounced", "sms_failed",
            "webhook_failed", "cancelled", "timeout", "channel_restricted", "last_code_restricted",
            "no_address", "in_doubt"}


def test_system_set_is_complete_and_flagged():
    assert REQUIRED <= set(SYSTEM_CODES)
    assert all(c.system and c.name == n for n, c in SYSTEM_CODES.items())
    assert SYSTEM_CODES["answer_human"].final and SYSTEM_CODES["answer_human"].human_contact
    assert SYSTEM_CODES["delivered"].final and not SYSTEM_CODES["delivered"].human_contact
    assert SYSTEM_CODES["invalid_number"].address_uncallable
    assert not SYSTEM_CODES["invalid_number"].contact_uncallable
    assert SYSTEM_CODES["in_doubt"].contact_uncallable and SYSTEM_CODES["cancelled"].contact_uncallable
    assert SYSTEM_CODES["abandoned"].counts_as_abandon
    assert not any(SYSTEM_CODES["busy"].__dict__[f] for f in
                   ("final", "contact_uncallable", "address_uncallable", "human_contact", "counts_as_abandon"))


def test_codebook_merges_custom_codes_as_non_system():
    book = CodeBook([CompletionCode("callback_requested", final=True, human_contact=True, system=True)])
    assert "callback_requested" in book and "busy" in book and "nope" not in book
    custom = book["callback_requested"]
    assert custom.final and custom.human_contact and not custom.system
    assert book.names()[-1] == "callback_requested"
    assert set(book.names()) == set(SYSTEM_CODES) | {"callback_requested"}


def test_codebook_unknown_code_is_keyerror_naming_it():
    with pytest.raises(KeyError, match="nope"):
        CodeBook()["nope"]


@pytest.mark.parametrize("names, match", [
    (["busy"], "clashes with a system code"),
    (["x", "x"], "defined twice"),
    (["default"], "must match"),
    (["Bad Name"], "must match"),
])
def test_codebook_refuses_bad_custom_codes(names, match):
    with pytest.raises(ValueError, match=match):
        CodeBook(CompletionCode(n) for n in names)
