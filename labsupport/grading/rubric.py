"""The rubric: Lab 5's 100 points as items, read from an editable TOML file (`rubric.toml`).

An item is automatic when it names a (piece, method) of `labsupport.teaching.checks`, manual otherwise.
`[grading] reference_copy` says what happens to an automatic item whose code is labsupport's reference
implementation pasted in (similarity.py): "zero" scores it 0, "manual" sends it to a person; both flag it.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Item", "Category", "Rubric", "load_rubric", "DEFAULT_RUBRIC", "REFERENCE_COPY_MODES"]

DEFAULT_RUBRIC = Path(__file__).with_name("rubric.toml")
REFERENCE_COPY_MODES = ("zero", "manual")   # [grading] reference_copy: score 0, or leave it to a person


@dataclass(frozen=True)
class Item:
    id: str
    category: str
    title: str
    points: float
    piece: str | None = None
    method: str | None = None
    manual: bool = False
    pending_reason: str = ""   # why an automatic item is graded by a person for now

    @property
    def auto(self) -> bool:
        return not self.manual

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.piece, self.method) if self.auto else None


@dataclass(frozen=True)
class Category:
    id: str
    title: str
    points: float
    bonus: bool = False   # extra credit on top of the 100 points, graded only when [grading] bonus = true


@dataclass(frozen=True)
class Rubric:
    seed: int
    strict_types: bool
    categories: tuple[Category, ...]
    items: tuple[Item, ...]
    notebooks: dict[str, tuple[str, ...]] = field(default_factory=dict)   # notebook -> its pieces
    warnings: tuple[str, ...] = ()
    source: str = ""
    reference_copy: str = "zero"   # one of REFERENCE_COPY_MODES

    @property
    def total(self) -> float:
        """The points of the assignment proper (Lab 5's 100), without bonus items."""
        return sum(i.points for i in self.items if not self.is_bonus(i))

    def is_bonus(self, item: Item) -> bool:
        return any(c.bonus for c in self.categories if c.id == item.category)

    @property
    def auto_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.auto)

    @property
    def manual_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.manual)

    def graded_methods(self) -> dict[str, list[str]]:
        """piece -> the methods the automatic items need, in rubric order."""
        out: dict[str, list[str]] = {}
        for item in self.auto_items:
            out.setdefault(item.piece, [])
            if item.method not in out[item.piece]:
                out[item.piece].append(item.method)
        return out


def _fail(path: Path, msg: str) -> ValueError:
    return ValueError(f"{path}: {msg}")


def load_rubric(path: str | Path | None = None) -> Rubric:
    """Read and validate a rubric file (default: the one shipped next to this module).

    Items of pieces without a registered check become manual with a warning; an unknown method of a
    registered piece, a duplicate id or a category whose items do not add up is an error.
    """
    from ..teaching.checks import PIECES  # the registry of checked pieces and their methods

    path = Path(path) if path is not None else DEFAULT_RUBRIC
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise _fail(path, f"cannot read the rubric ({err})") from err
    settings = data.get("grading", {})
    reference_copy = settings.get("reference_copy", "zero")
    if reference_copy not in REFERENCE_COPY_MODES:
        raise _fail(path, f"[grading] reference_copy must be one of {', '.join(map(repr, REFERENCE_COPY_MODES))}, "
                          f"got {reference_copy!r}")
    categories = tuple(Category(str(c["id"]), str(c.get("title", c["id"])), float(c["points"]), bool(c.get("bonus", False)))
                       for c in data.get("category", []))
    cat_ids = {c.id for c in categories}
    items, warnings, seen = [], [], set()
    for raw in data.get("item", []):
        for key in ("id", "category", "points"):
            if key not in raw:
                raise _fail(path, f"an [[item]] lacks `{key}`: {raw}")
        item_id = str(raw["id"])
        if item_id in seen:
            raise _fail(path, f"item id {item_id!r} appears twice")
        seen.add(item_id)
        if raw["category"] not in cat_ids:
            raise _fail(path, f"item {item_id!r} names category {raw['category']!r}; known: {sorted(cat_ids)}")
        if float(raw["points"]) < 0:
            raise _fail(path, f"item {item_id!r} has negative points")
        manual = bool(raw.get("manual", False))
        piece, method, reason = raw.get("piece"), raw.get("method"), ""
        if not manual:
            if not piece or not method:
                raise _fail(path, f"automatic item {item_id!r} needs `piece` and `method` (or manual = true)")
            if piece not in PIECES:
                manual, reason = True, f"no automatic check for piece {piece!r} yet"
                warnings.append(f"item {item_id!r}: {reason}; exported as manual")
            elif method not in [m.name for m in PIECES[piece].methods]:
                raise _fail(path, f"item {item_id!r}: piece {piece!r} has no checked method {method!r}; it has "
                                  f"{[m.name for m in PIECES[piece].methods]}")
        items.append(Item(item_id, str(raw["category"]), str(raw.get("title", item_id)), float(raw["points"]),
                          piece, method, manual, reason))
    for c in categories:
        total = sum(i.points for i in items if i.category == c.id)
        if abs(total - c.points) > 1e-9:
            raise _fail(path, f"category {c.id!r} is worth {c.points:g} points but its items add up to {total:g}")
    notebooks = {str(k): tuple(map(str, v)) for k, v in data.get("notebooks", {}).items()}
    if not settings.get("bonus", False):  # validated above, then left out: nobody is graded on them
        bonus_ids = {c.id for c in categories if c.bonus}
        kept = [i for i in items if i.category not in bonus_ids]
        only_bonus = {i.piece for i in items if i.category in bonus_ids} - {i.piece for i in kept}
        categories, items = tuple(c for c in categories if not c.bonus), kept
        notebooks = {k: tuple(p for p in v if p not in only_bonus) for k, v in notebooks.items()}
        notebooks = {k: v for k, v in notebooks.items() if v}   # a notebook of bonus pieces only is optional
    return Rubric(seed=int(settings.get("seed", 0)), strict_types=bool(settings.get("strict_types", True)),
                  categories=categories, items=tuple(items), notebooks=notebooks, warnings=tuple(warnings),
                  source=str(path), reference_copy=reference_copy)
