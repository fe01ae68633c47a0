"""The explorer in a real browser (Debian chromium, headless, via Playwright).

What a person looks for: the task's epochs and a plot with one point per epoch; an
attacker's page saying why it was slashed; every verdict of an epoch with its numbers;
a page that follows new blocks by itself. Screenshots are saved as test artefacts.
"""

from __future__ import annotations

from pathlib import Path

from .chain import TASK_ID, Chain


def _finished_epochs(chain: Chain) -> int:
    return chain.node.sequencer.state.tasks[TASK_ID].epochs_run


def test_task_page_plots_one_point_per_epoch(chain: Chain, page, artifacts: Path) -> None:
    page.goto(f"{chain.url}/explorer/tasks/{TASK_ID}")
    n = _finished_epochs(chain)
    assert n == 3
    assert page.locator("#epochs .epoch-row").count() == n
    acc = page.locator("#chart-accuracy")
    acc.locator("canvas").first.wait_for()
    assert acc.get_attribute("data-drawn") == str(n)
    # the plotted values are the committee accuracies in the epoch table
    spec = page.evaluate("JSON.parse(document.querySelector('#chart-accuracy')"
                         ".getAttribute('data-chart'))")
    assert spec["x"] == list(range(n))
    accs = [None if a is None else a / 100  # a rejected epoch has no committee accuracy
            for a in (chain.node.sequencer.state.epochs[(TASK_ID, e)].accuracy_bps
                      for e in range(n))]
    assert spec["series"][0]["values"] == accs
    money = page.locator("#chart-settlement")
    money.locator("canvas").first.wait_for()
    assert money.get_attribute("data-drawn") == str(n)
    assert "completed" in page.locator("h1").inner_text()
    page.screenshot(path=str(artifacts / "task.png"), full_page=True)


def test_attacker_account_says_why_it_was_slashed(chain: Chain, page, artifacts: Path) -> None:
    expected = {"sign_flip": "norm_bound", "lazy": "zero_update"}  # v2 slash reasons
    st = chain.node.sequencer.state
    # an attacker attacks only when selected to propose (a selected voter votes honestly)
    proposed = [pk for pk in chain.attackers() if any(
        bytes.fromhex(pk[2:]) in ep.proposers for (t, _), ep in st.epochs.items() if t == TASK_ID)]
    assert proposed, "no attacker was ever selected to propose"
    for pk in proposed:
        beh = chain.behaviour[pk]
        page.goto(f"{chain.url}/explorer/accounts/{pk}")
        assert page.locator("#slashed").inner_text() != "0 ETH"
        rows = page.locator("#history .history-row")
        slashed_rows = [rows.nth(i).inner_text() for i in range(rows.count())
                        if "slashed:" in rows.nth(i).inner_text()]
        assert slashed_rows, f"{beh}: no slashed row"
        for text in slashed_rows:
            assert expected[beh] in text, text  # the check that fired
        assert page.locator("#proof-link").get_attribute("href") == f"/v1/accounts/{pk}/proof"
        page.screenshot(path=str(artifacts / f"account-{beh}.png"), full_page=True)


def test_epoch_page_shows_every_verdict_with_numbers(chain: Chain, page,
                                                     artifacts: Path) -> None:
    st = chain.node.sequencer.state
    epoch = next(e for e in range(3) if any(v != "ACCEPTED" for v in
                                            st.epochs[(TASK_ID, e)].verdicts.values()))
    ep = st.epochs[(TASK_ID, epoch)]
    page.goto(f"{chain.url}/explorer/tasks/{TASK_ID}/epochs/{epoch}")
    rows = page.locator("#proposers .verdict-row")
    assert rows.count() == len(ep.proposers)
    headers = page.locator("#proposers thead th").all_inner_texts()
    assert "norm_sq" in headers and "reward_weight" in headers
    for pk, verdict in ep.verdicts.items():
        row = page.locator(f"#proposers tr[data-pubkey='0x{pk.hex()}']")
        assert row.get_attribute("data-verdict") == verdict
        score = next(s for s in ep.scores if s["pubkey"] == pk)
        text = row.inner_text()
        for reason in score["reasons"]:
            assert reason in text
        norm = f"{score['norm_sq']:,}".replace(",", "\u202f")
        assert norm in text
    assert page.locator("#voters .voter-row").count() == len(ep.voters)
    page.screenshot(path=str(artifacts / f"epoch-{epoch}.png"), full_page=True)


def _newest_row_is(page, height: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until the first row's height cell reads exactly ``height``."""
    page.wait_for_function("document.querySelector('table.blocks tbody tr td')"
                           f".textContent.trim() == '{height}'", timeout=10_000)


def test_a_block_before_the_first_poll_still_refreshes_the_page(chain: Chain, page) -> None:
    """The race CI can hit under load: the block lands between the page's render and its
    first poll of /explorer/head; the page must notice it differs from what it rendered."""
    seq = chain.node.sequencer
    held: list = []  # the page's first /explorer/head request, held back

    def hold_first_poll(route) -> None:  # type: ignore[no-untyped-def]
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/explorer/head", hold_first_poll)
    page.goto(f"{chain.url}/explorer/blocks")
    for _ in range(200):  # pump Playwright's events until the first poll is in flight
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page never polled /explorer/head"
    seq.produce_block()  # after the render, before the first poll is answered
    held[0].continue_()
    page.wait_for_function("document.getElementById('live-height').textContent == "
                           f"'{seq.height}'", timeout=10_000)
    _newest_row_is(page, seq.height)


def test_pages_follow_new_blocks_without_reload(chain: Chain, page) -> None:
    seq = chain.node.sequencer
    page.goto(f"{chain.url}/explorer/blocks")
    page.evaluate("window.__sameDocument = true")
    before = seq.height
    assert page.locator("#live-height").inner_text() == str(before)
    seq.produce_block()
    page.wait_for_function(f"document.getElementById('live-height').textContent == "
                           f"'{before + 1}'", timeout=10_000)
    _newest_row_is(page, before + 1)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
