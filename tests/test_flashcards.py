"""labsupport.teaching.flashcards: the deck has the practice sheet's ten cards, each notebook's cards show as
click-to-reveal widgets with a static <details> fallback, and the printable deck has one card per page."""
from __future__ import annotations

import re

import pytest

from labsupport.cli import main
from labsupport.teaching import flashcards
from labsupport.teaching.flashcard_deck import CARDS

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def shown(monkeypatch):
    calls = []
    monkeypatch.setattr(flashcards, "display", lambda obj, raw=False: calls.append((obj, raw)))
    return calls


def test_ten_cards_with_unique_ids_and_text():
    assert len(CARDS) == 10
    assert len({c.id for c in CARDS}) == 10
    for card in CARDS:
        assert card.question.strip() and card.answer.strip(), card.id
        assert re.fullmatch(r"0[1-7]", card.notebook), card


@pytest.mark.parametrize("notebook", sorted({c.notebook for c in CARDS}))
def test_each_notebook_has_its_cards(notebook):
    cards = flashcards.cards_for(notebook)
    assert cards and all(c.notebook == notebook for c in cards)
    assert flashcards.cards_for(int(notebook)) == cards
    assert flashcards.cards_for(f"{notebook}_some_name.ipynb") == cards


def test_every_card_belongs_to_one_shown_notebook():
    assert sum(len(flashcards.cards_for(nb)) for nb in {c.notebook for c in CARDS}) == 10


def test_unknown_notebook_says_which_have_cards():
    with pytest.raises(ValueError, match="notebooks with cards are"):
        flashcards.cards_for("09")


def test_widget_reveals_and_hides_answer_on_click(shown):
    deck = flashcards.show_flashcards("03")
    assert len(deck.buttons) == len(flashcards.cards_for("03")) >= 1
    assert deck.revealed() == [False] * len(deck.buttons)
    deck.buttons[0].click()
    assert deck.revealed()[0] and not any(deck.revealed()[1:])
    assert deck.buttons[0].description == "Hide answer"
    assert deck.cards[0].answer.split()[0] in deck.answers[0].value
    deck.buttons[0].click()
    assert not deck.revealed()[0] and deck.buttons[0].description == "Show answer"


def test_shown_once_with_static_fallback(shown):
    deck = flashcards.show_flashcards("05")
    assert len(shown) == 1
    bundle, raw = shown[0]
    assert raw and WIDGET_VIEW in bundle
    fallback = bundle["text/html"]
    assert fallback.count("<details") == fallback.count("<summary") == len(deck.cards)
    for card in deck.cards:
        assert flashcards.html.escape(card.answer) in fallback


def test_printable_deck_one_card_per_page():
    page = flashcards.deck_html()
    assert page.count("page-break-after: always") == 10
    assert page.count("<section class='card'") == 10
    for card in CARDS:
        assert flashcards.html.escape(card.question) in page and flashcards.html.escape(card.answer) in page


def test_cli_writes_the_deck(tmp_path, capsys):
    out = tmp_path / "deck" / "cards.html"
    assert main(["flashcards", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").count("page-break-after: always") == 10
    assert "10 flashcards" in capsys.readouterr().out
    assert main(["flashcards", "--out", str(out), "--notebook", "05"]) == 0
    assert out.read_text(encoding="utf-8").count("page-break-after: always") == len(flashcards.cards_for("05"))
