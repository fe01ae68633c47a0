"""The explorer's formatting helpers accept every form a record may use for a number."""

from __future__ import annotations

from rollup.explorer import fmt


def test_amounts_in_every_form() -> None:
    wei = 25 * 10**15
    for form in (wei, str(wei), hex(wei), wei.to_bytes(32, "big")):
        assert fmt.as_int(form) == wei
        assert fmt.eth(form) == "0.025 ETH"
    assert fmt.as_int("not a number") is None and fmt.eth("n/a") == "n/a"
    assert fmt.eth(None) == "-" and fmt.eth(0) == "0 ETH"


def test_percentages_points_and_numbers() -> None:
    assert fmt.pct(8844) == "88.44%" and fmt.pct(None) == "-"
    assert fmt.points(-125) == "-1.25 pts" and fmt.points(2755) == "+27.55 pts"
    assert fmt.number(1234567) == "1\u202f234\u202f567" and fmt.number(0.123456) == "0.1235"
    assert fmt.number(True) == "yes"


def test_reasons_and_hashes() -> None:
    assert "negative cosine" in fmt.reason_text("adversarial_direction")
    assert fmt.reason_text("some_new_reason") == "some new reason"  # unknown: shown readably
    h = "0x" + "ab" * 32
    assert fmt.short(h) == "0xababab…ababab" and fmt.short("0x12") == "0x12"
