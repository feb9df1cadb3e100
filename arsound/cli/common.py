"""What several verbs share."""
from __future__ import annotations


def no_extra(extra: list[str]) -> None:
    """Verbs without ``--a.b=value`` overrides refuse what argparse did not recognize."""
    if extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")
