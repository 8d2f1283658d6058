"""The practice sheet's flashcards: click-to-reveal cards at the end of a notebook, and a printable deck.

`show_flashcards("03")` shows the cards of notebook 03 (`flashcard_deck.CARDS`): a button per card
reveals its answer. Like the sliders (`widgets`), the cell's output also carries plain HTML, one
<details> element per card, which is what an HTML export or an executed copy without widget state
shows; the widgets hold no `W.Output`, so a headless run (nbval, the grader) only creates comms.

`labsupport flashcards --out deck.html` writes the whole deck as one HTML file, one card per printed
page: question at the top, answer below it.
"""
from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as W
from IPython.display import display

from .flashcard_deck import CARDS, Card

__all__ = ["cards_for", "show_flashcards", "static_html", "deck_html", "write_deck", "FlashcardDeck", "add_parser"]

_WHEN_HIDDEN, _WHEN_SHOWN = "Show answer", "Hide answer"   # the button reads


def cards_for(notebook: str | int | None = None) -> tuple[Card, ...]:
    """The cards of one notebook ("03", 3 or "03_ddim_sampling"), or every card when `notebook` is None."""
    if notebook is None:
        return CARDS
    key = f"{notebook:02d}" if isinstance(notebook, int) else str(notebook)[:2]
    cards = tuple(card for card in CARDS if card.notebook == key)
    if not cards:
        known = ", ".join(sorted({card.notebook for card in CARDS}))
        raise ValueError(f"no flashcards belong to notebook {notebook!r}; the notebooks with cards are {known}")
    return cards


def _text(s: str) -> str:
    return html.escape(s).replace("\n", "<br>")


def static_html(cards: tuple[Card, ...]) -> str:
    """The cards as <details> elements: a click on the question opens the answer, no JavaScript needed."""
    items = "".join(
        f"<details style='margin:0.4em 0;padding:0.5em 0.8em;border:1px solid #bbb;border-radius:6px'>"
        f"<summary style='cursor:pointer'><b>Q{k}.</b> {_text(c.question)}</summary>"
        f"<p style='margin:0.6em 0 0.2em'>{_text(c.answer)}</p></details>"
        for k, c in enumerate(cards, 1))
    return f"<div class='labsupport-flashcards'><p><b>Flashcards</b> (click a question for its answer)</p>{items}</div>"


class FlashcardDeck:
    """What `show_flashcards` returns, already on screen: the cards, their buttons and answer widgets."""

    def __init__(self, cards: tuple[Card, ...], buttons: list[W.Button], answers: list[W.HTML], box: W.VBox):
        self.cards, self.buttons, self.answers, self.box = cards, buttons, answers, box

    def revealed(self) -> list[bool]:
        """For each card, whether its answer is showing."""
        return [answer.layout.display != "none" for answer in self.answers]

    def _ipython_display_(self) -> None:   # shown once by show_flashcards, not again as a cell's last value
        pass


def show_flashcards(notebook: str | int = "02") -> FlashcardDeck:
    """Show the flashcards of one notebook: each question with a button that reveals (and hides) its answer."""
    cards = cards_for(notebook)
    buttons, answers, rows = [], [], []
    for k, card in enumerate(cards, 1):
        answer = W.HTML(f"<p style='margin:0.3em 0 0.2em'>{_text(card.answer)}</p>",
                        layout=W.Layout(display="none"))
        button = W.Button(description=_WHEN_HIDDEN, layout=W.Layout(width="9em"))

        def toggle(_button, answer=answer):
            hidden = answer.layout.display == "none"
            answer.layout.display = None if hidden else "none"
            _button.description = _WHEN_SHOWN if hidden else _WHEN_HIDDEN

        button.on_click(toggle)
        rows.append(W.VBox([W.HTML(f"<b>Q{k}.</b> {_text(card.question)}"), button, answer],
                           layout=W.Layout(border="1px solid #bbb", padding="0.4em 0.8em", margin="0.3em 0")))
        buttons.append(button)
        answers.append(answer)
    box = W.VBox([W.HTML("<b>Flashcards</b>"), *rows])
    bundle = dict(box._repr_mimebundle_() or {})
    bundle["text/html"] = static_html(cards)
    bundle["text/plain"] = "\n".join(f"Q{k}. {c.question}" for k, c in enumerate(cards, 1))
    display(bundle, raw=True)
    return FlashcardDeck(cards, buttons, answers, box)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Diffusion sampling lab: flashcards</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42em; margin: 2em auto; line-height: 1.45; }}
.card {{ border: 2px solid #333; border-radius: 10px; padding: 1.5em 2em; margin-bottom: 2em; }}
.card .meta {{ color: #666; font-size: 0.85em; }}
.card .question {{ font-size: 1.35em; font-weight: 600; min-height: 5em; }}
.card .answer {{ border-top: 1px dashed #999; padding-top: 1em; }}
@media print {{ body {{ margin: 0; }} .card {{ margin: 0; border: none; }} }}
</style></head>
<body>
{cards}
</body></html>
"""


def deck_html(cards: tuple[Card, ...] = CARDS) -> str:
    """One HTML page holding the deck, one card per printed page (question, then the answer under a rule)."""
    body = "\n".join(
        f"<section class='card' style='page-break-after: always; break-after: page'>"
        f"<p class='meta'>card {k} of {len(cards)} · notebook {c.notebook} · {html.escape(c.id)}</p>"
        f"<p class='question'>{_text(c.question)}</p>"
        f"<div class='answer'><p>{_text(c.answer)}</p></div></section>"
        for k, c in enumerate(cards, 1))
    return _PAGE.format(cards=body)


def write_deck(out: str | Path, notebook: str | None = None) -> Path:
    """Write the printable deck (every card, or one notebook's) to `out`; returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(deck_html(cards_for(notebook)), encoding="utf-8")
    return path


def _cmd_flashcards(a) -> None:
    path = write_deck(a.out, a.notebook)
    print(f"wrote {path}: {len(cards_for(a.notebook))} flashcards, one per printed page "
          "(open it in a browser and print, or save as PDF)")


def add_parser(subparsers) -> None:
    """Register the `flashcards` subcommand on an argparse subparsers object."""
    f = subparsers.add_parser("flashcards", help="write the practice sheet's flashcards as a printable HTML deck")
    f.add_argument("--out", default="flashcards.html", help="output file (default: flashcards.html)")
    f.add_argument("--notebook", help="only the cards of this notebook (e.g. 03); default: all ten")
    f.set_defaults(func=_cmd_flashcards)
