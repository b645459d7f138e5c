#!/usr/bin/env python3
"""Keep the "Full cards" section of docs/models.md equal to the cards in models/*.safetensors.

The card stored in each shipped file is the source of truth; docs/models.md
shows a copy of each inside <details>. This writes that section (everything from
the line "## Full cards" to the end of the file) from the files:

    /usr/bin/python3 tools/train/doc_cards.py            # rewrite docs/models.md
    /usr/bin/python3 tools/train/doc_cards.py --check    # exit 1 if it differs

test_doc_cards.py runs the check, so a replaced model whose card was not
copied fails the tests.
"""

import argparse
import glob
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HEADING = "## Full cards"
# The order of the cards in the document: language models first, then the rest.
ORDER = ["shakespeare.safetensors", "shakespeare-small.safetensors",
         "shakespeare-judge.safetensors", "shakespeare-remasker.safetensors"]


def card_of(path: str) -> str:
    """The `card` metadata of a safetensors file (only the header is read)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100 * 1024 * 1024:
            raise ValueError(f"{path}: header of {n} bytes: not a remask/1 file")
        header = json.loads(f.read(n).decode("utf-8"))
    card = (header.get("__metadata__") or {}).get("card")
    if not card:
        raise ValueError(f"{path}: no card; store one with `remask convert --card FILE`")
    return card


def section(models_dir: str) -> str:
    names = sorted((os.path.basename(p) for p in glob.glob(os.path.join(models_dir, "*.safetensors"))),
                   key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    parts = [HEADING, "", "Generated from the files by `tools/train/doc_cards.py`; do not edit by hand.", ""]
    for name in names:
        parts += [f"<details><summary>{name}</summary>", "",
                  card_of(os.path.join(models_dir, name)).strip(), "", "</details>", ""]
    return "\n".join(parts)


def render(doc: str, models_dir: str) -> str:
    i = doc.find("\n" + HEADING + "\n")
    if i < 0:
        raise ValueError(f"docs/models.md has no line {HEADING!r}")
    return doc[:i + 1] + section(models_dir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "models.md"))
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when the doc is stale")
    args = ap.parse_args()
    with open(args.doc, encoding="utf-8") as f:
        doc = f.read()
    want = render(doc, args.models)
    if args.check:
        if want != doc:
            print(f"{args.doc}: the full cards differ from those in {args.models}; "
                  "run /usr/bin/python3 tools/train/doc_cards.py", file=sys.stderr)
            return 1
        return 0
    with open(args.doc, "w", encoding="utf-8") as f:
        f.write(want)
    return 0


if __name__ == "__main__":
    sys.exit(main())
