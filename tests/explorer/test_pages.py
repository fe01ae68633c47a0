"""The explorer over plain HTTP (no browser): every page renders on a chain with
attackers, nothing is writable, unknown things are 404 pages, and verdict tables render
whatever fields an epoch record carries."""

from __future__ import annotations

import httpx
import pytest

from rollup.explorer import epochs as rows

from .chain import TASK_ID, Chain


def test_every_page_renders(chain: Chain) -> None:
    st = chain.node.sequencer.state
    pk = chain.attackers()[0]
    paths = ["/explorer/", "/explorer/accounts", f"/explorer/accounts/{pk}",
             f"/explorer/tasks/{TASK_ID}", "/explorer/blocks", "/explorer/blocks?upto=5",
             "/explorer/blocks/1", "/explorer/batches", "/explorer/head"]
    paths += [f"/explorer/tasks/{TASK_ID}/epochs/{e}" for e in range(3)]
    for p in paths:
        r = httpx.get(chain.url + p)
        assert r.status_code == 200, (p, r.text[:300])
    home = httpx.get(chain.url + "/explorer/").text
    assert f'href="/explorer/tasks/{TASK_ID}"' in home
    head = httpx.get(chain.url + "/explorer/head").json()
    assert head["height"] == st.height and head["batch"] is not None
    # the live script swaps in the page body only
    part = httpx.get(chain.url + "/explorer/batches", headers={"x-explorer-partial": "1"}).text
    assert "<html" not in part and "<table" in part


def test_read_only_and_404s(chain: Chain) -> None:
    for p in ("/explorer/", f"/explorer/tasks/{TASK_ID}"):
        assert httpx.post(chain.url + p).status_code == 405
    for p in ("/explorer/tasks/99", f"/explorer/tasks/{TASK_ID}/epochs/99",
              "/explorer/blocks/100000", "/explorer/accounts/0x1234"):
        r = httpx.get(chain.url + p)
        assert r.status_code == 404 and "Not found" in r.text, p
    big = 2**63  # beyond BIGINT: refused before any query, like the /v1 routes
    for p in (f"/explorer/blocks/{big}", f"/explorer/tasks/{big}", f"/explorer/blocks?upto={big}",
              f"/explorer/tasks/1/epochs/{big}", f"/v1/tasks/{big}/model",
              f"/v1/tasks/1/model?epoch={big}", "/explorer/blocks/-1"):
        r = httpx.get(chain.url + p)
        assert (r.status_code, r.json()["reason"]) == (400, "malformed"), p
    assert httpx.get(f"{chain.url}/explorer/blocks/{big - 1}").status_code == 404
    for p in ("/explorer/static/..%2f..%2fapi.py", "/explorer/static/nope.js"):
        assert httpx.get(chain.url + p).status_code == 404
    r = httpx.get(chain.url + "/explorer/static/uPlot.iife.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("record", [
    {"scores": [{"pubkey": "0xaa", "verdict": "OUTLIER", "reasons": ["new_check"],
                 "contribution": -5, "zeta": 2.5, "krum_score": 9, "note": "x"}],
     "verdicts": [["0xaa", "OUTLIER"], ["0xbb", "ABSENT"]], "proposers": ["0xaa", "0xbb"],
     "slashes": [["0xaa", "1000", "outlier"]], "rewards": [], "brand_new": 1},
    {"verdicts": {"0xaa": "ACCEPTED"}, "proposers": ["0xaa"]},  # no scores at all
    {},  # nothing
])
def test_verdict_rows_follow_whatever_the_record_holds(record: dict) -> None:
    props = rows.proposer_rows(record)
    cols = rows.number_columns(props)
    if record.get("scores"):
        assert cols == ["krum_score", "contribution", "zeta"]  # known first, then the rest
        aa = next(p for p in props if p["pubkey"] == "0xaa")
        assert aa["reasons"] == ["new_check"] and aa["slashed"] == 1000
        assert aa["slash_reasons"] == ["outlier"] and aa["extra"] == {"note": "x"}
        assert {p["pubkey"] for p in props} == {"0xaa", "0xbb"}
        assert rows.other_fields(record) == {"brand_new": 1}
    else:
        assert cols == []
        assert len(props) == len(record.get("proposers", []))
    assert rows.epoch_totals(record)["proposers"] == len(record.get("proposers", []))


def test_pages_survive_a_reworked_epoch_record(chain: Chain, monkeypatch) -> None:
    """Another verdict logic may rename, drop or add record fields: pages still render,
    and new numbers and reasons appear without code changes here."""
    from state_machine.state import EpochState

    original = EpochState.record

    def reworked(self: EpochState) -> dict:
        rec = original(self)
        for k in ("medians", "phase_log", "voter_verdicts", "treasury"):
            rec.pop(k, None)
        for s in rec["scores"]:
            s["contribution_bps"] = 123
            s["reasons"] = [*s["reasons"], "brand_new_check"]
            s.pop("dot_center", None)
        rec["shapley_round"] = 7
        return rec

    monkeypatch.setattr(EpochState, "record", reworked)
    pk = chain.attackers()[0]
    for p in (f"/explorer/tasks/{TASK_ID}", f"/explorer/tasks/{TASK_ID}/epochs/1",
              f"/explorer/accounts/{pk}"):
        r = httpx.get(chain.url + p)
        assert r.status_code == 200, (p, r.text[:500])
    html = httpx.get(f"{chain.url}/explorer/tasks/{TASK_ID}/epochs/1").text
    assert "contribution_bps" in html and "brand_new_check" in html
    assert "shapley_round" in html  # unknown top-level fields are listed
