from dataclasses import dataclass, field

import pytest

from arsound.core.config import apply_overrides, from_dict, to_dict


@dataclass
class Inner:
    steps: int = 10
    lr: float = 1e-3
    name: str = "made"
    flag: bool = False
    hidden: tuple = (8, 8)


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    seed: int = 0


def test_overrides_parse_by_field_type():
    cfg = apply_overrides(Outer(), ["--inner.steps=300", "inner.lr=0.5", "--inner.name=nade", "--inner.flag=true",
                                    "--inner.hidden=16,32", "--seed=7"])
    assert cfg == Outer(Inner(300, 0.5, "nade", True, (16, 32)), 7)


@pytest.mark.parametrize("bad,msg", [("--inner.stepz=3", "unknown config key 'inner.stepz'"),
                                     ("--inner.steps=abc", "--inner.steps: expected a value of type int"),
                                     ("--inner.flag=maybe", "expected true/false"),
                                     ("--inner.steps", "must look like --a.b=value"),
                                     ("--nope.x=1", "unknown config key 'nope.x'")])
def test_bad_overrides_are_one_clear_error(bad, msg):
    with pytest.raises(ValueError, match=msg.replace(".", r"\.")):
        apply_overrides(Outer(), [bad])


def test_dict_round_trip_with_nesting_and_tuples():
    cfg = Outer(Inner(hidden=(3, 4)), seed=2)
    d = to_dict(cfg)
    d["inner"]["hidden"] = list(d["inner"]["hidden"])  # as it comes back from JSON
    assert from_dict(Outer, d) == cfg
    with pytest.raises(ValueError, match="no field"):
        from_dict(Outer, {"bogus": 1})
