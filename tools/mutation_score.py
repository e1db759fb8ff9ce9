"""Mutation score per module from a finished ``mutmut run`` (``make mutants`` prints it).

mutmut records one exit code per mutant in ``mutants/<module>.py.meta``; this sums them per module as
mutmut's own status names them (killed, survived, no tests, timeout, ...). The score is killed (and timed
out: the tests did notice) over the mutants that were tested. Usage: ``python tools/mutation_score.py``
(from the repository root, after ``mutmut run``); ``--markdown`` prints a table for a report.
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

# exit code -> status, as mutmut.stats.status_by_exit_code names them
STATUS = {1: 'killed', 3: 'killed', 0: 'survived', 5: 'no tests', 33: 'no tests', 34: 'skipped', 36: 'timeout',
          -24: 'timeout', 24: 'timeout', 152: 'timeout', 255: 'timeout', 37: 'caught by type check', 2: 'interrupted',
          None: 'not checked'}


def module_counts(meta: Path) -> Counter:
    """Mutant statuses of one ``<module>.py.meta`` file."""
    codes = json.loads(meta.read_text())['exit_code_by_key'].values()
    return Counter(STATUS.get(code, 'suspicious') for code in codes)


def score(counts: Counter) -> Optional[float]:
    """Percentage of the tested mutants that the tests noticed (None when none was tested)."""
    noticed = counts['killed'] + counts['timeout'] + counts['caught by type check']
    tested = noticed + counts['survived'] + counts['suspicious']
    return 100.0 * noticed / tested if tested else None


def collect(root: Path) -> Dict[str, Counter]:
    """Statuses per module (path relative to the repository) under ``root/mutants``."""
    return {str(meta.relative_to(root / 'mutants'))[:-len('.meta')]: module_counts(meta)
            for meta in sorted((root / 'mutants').rglob('*.py.meta'))}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', type=Path, default=Path('.'), help='repository root (holds mutants/)')
    parser.add_argument('--markdown', action='store_true', help='a Markdown table')
    args = parser.parse_args(argv)
    modules = collect(args.root)
    if not modules:
        print(f'No mutmut results under {args.root / "mutants"}; run `make mutants` first.', file=sys.stderr)
        return 2
    total = sum(modules.values(), Counter())
    rows = [*modules.items(), ('all', total)]
    cols = ('killed', 'timeout', 'survived', 'no tests', 'suspicious', 'not checked')
    if args.markdown:
        print('| module | score | ' + ' | '.join(cols) + ' |')
        print('|---|---|' + '---|' * len(cols))
    for name, counts in rows:
        value = score(counts)
        text = '-' if value is None else f'{value:.1f} %'
        if args.markdown:
            print(f'| {name} | {text} | ' + ' | '.join(str(counts[c]) for c in cols) + ' |')
        else:
            print(f'{name:50s} {text:>8s}  ' + '  '.join(f'{c} {counts[c]}' for c in cols if counts[c]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
