"""docs/models.md's full cards are copies of the cards in models/*.safetensors (doc_cards.py)."""

import json
import os
import struct
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import doc_cards  # noqa: E402


class DocCardsTest(unittest.TestCase):
    def test_docs_match_the_files(self):
        with open(os.path.join(doc_cards.ROOT, "docs", "models.md"), encoding="utf-8") as f:
            doc = f.read()
        want = doc_cards.render(doc, os.path.join(doc_cards.ROOT, "models"))
        self.assertEqual(doc, want, "docs/models.md is stale: run /usr/bin/python3 tools/train/doc_cards.py")

    def test_every_shipped_file_has_a_card(self):
        models = os.path.join(doc_cards.ROOT, "models")
        for name in sorted(os.listdir(models)):
            if name.endswith(".safetensors"):
                self.assertTrue(doc_cards.card_of(os.path.join(models, name)).startswith("# "), name)

    def test_stale_and_missing_cards(self):
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(doc_cards.ROOT, "testdata", "golden", "classifier.safetensors")
            shutil.copy(src, os.path.join(tmp, "x.safetensors"))
            card = doc_cards.card_of(os.path.join(tmp, "x.safetensors")).strip()
            good = doc_cards.render("# t\n\n## Full cards\n", tmp)
            self.assertIn(card, good)
            self.assertEqual(doc_cards.render(good, tmp), good)
            stale = good.replace(card, card + "\nedited by hand")
            self.assertNotEqual(doc_cards.render(stale, tmp), stale)
            header = json.dumps({"__metadata__": {"format": "remask/1"}}).encode()
            with open(os.path.join(tmp, "y.safetensors"), "wb") as f:
                f.write(struct.pack("<Q", len(header)) + header)
            with self.assertRaisesRegex(ValueError, "no card"):
                doc_cards.render(good, tmp)
        finally:
            shutil.rmtree(tmp)

if __name__ == "__main__":
    unittest.main()
