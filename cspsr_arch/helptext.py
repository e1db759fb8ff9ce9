"""Command-line help from module docstrings: the same text, without the reST markup Sphinx would render."""
import re

_ROLE = re.compile(r':(?:mod|func|class|meth|data|attr|obj):`~?([^`<]+?)(?:\s*<[^>]+>)?`')


def plain(doc: str) -> str:
    """``doc`` as plain text for ``--help``: roles (``:mod:`x```) become ``x``, double back-quotes go, and a
    paragraph ending in ``::`` (a literal block follows) ends in ``:``.

    Args:
        doc: A docstring (reST).
    """
    text = _ROLE.sub(r'\1', doc)
    text = text.replace('``', '')
    return re.sub(r'(?<=\S)::\n', ':\n', text).strip() + '\n'


def split_doc(doc: str) -> tuple:
    """(description, epilog) of an argument parser from a module docstring: its first paragraph, and the rest,
    both as :func:`plain` text (so ``--help`` prints each part once)."""
    first, _, rest = doc.strip().partition('\n\n')
    return plain(first).strip(), plain(rest) if rest.strip() else None
