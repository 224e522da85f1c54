"""Rewrite the keys table of Configuration.md from spyglass.config.KEYS.

    python tools/update_docs.py
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from spyglass.config import keys_markdown_table  # noqa: E402


def main():
    path = os.path.join(ROOT, "Configuration.md")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    text = re.sub(r"(<!-- keys:begin -->\n).*?(\n<!-- keys:end -->)",
                  lambda m: m.group(1) + keys_markdown_table() + m.group(2), text, flags=re.S)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
