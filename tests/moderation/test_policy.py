"""Policy: flags, severity, max label and hold on a frame worked out by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest

from moderation.policy import DEFAULT_HOLD_THRESHOLDS, DEFAULT_THRESHOLDS, OUTPUT_COLUMNS, flag, validate_thresholds
from warehouse.canonical import LABELS

# Defaults: flag toxicity .8, severe .3, obscene .8, threat/insult/identity/sexual .6;
#           hold toxicity .95, severe .6, others .9.
ROWS = {
    #            toxicity severe obscene threat insult identity sexual
    "clean": (0.10, 0.01, 0.05, 0.02, 0.06, 0.03, 0.01),
    "insult": (0.72, 0.06, 0.30, 0.01, 0.66, 0.12, 0.02),
    "severe": (0.97, 0.45, 0.85, 0.30, 0.92, 0.10, 0.05),
    "boundary": (0.50, 0.10, 0.20, 0.60, 0.30, 0.10, 0.10),
    "tie": (0.40, 0.05, 0.10, 0.72, 0.20, 0.72, 0.00),
    "lexical": (0.96, None, None, None, None, None, None),
    "unscored": (None, None, None, None, None, None, None),
}
# Worked by hand: ratio = score / threshold.
# clean:    ratios .125 .033 .0625 .033 .1 .05 .017        -> toxicity .125, nothing flagged
# insult:   .9 .2 .375 .017 1.1 .2 .033                     -> insult 1.1, [insult]
# severe:   1.2125 1.5 1.0625 .5 1.5333 .167 .083           -> insult 1.5333 (beats severe 1.5);
#           flagged toxicity, severe_toxicity, obscene, insult; hold: toxicity .97 >= .95
# boundary: threat .6/.6 = 1.0 exactly                       -> flagged at the threshold, no hold
# tie:      threat and identity_attack both 1.2             -> first in LABELS order: threat
# lexical:  only toxicity, .96/.8 = 1.2                      -> [toxicity], hold (.96 >= .95)
# unscored: all null                                         -> nothing, severity null
EXPECTED = {
    "clean": ([], "toxicity", 0.10, 0.125, False, False),
    "insult": (["insult"], "insult", 0.66, 1.1, True, False),
    "severe": (["toxicity", "severe_toxicity", "obscene", "insult"], "insult", 0.92, 0.92 / 0.6, True, True),
    "boundary": (["threat"], "threat", 0.60, 1.0, True, False),
    "tie": (["threat", "identity_attack"], "threat", 0.72, 1.2, True, False),
    "lexical": (["toxicity"], "toxicity", 0.96, 1.2, True, True),
    "unscored": ([], None, None, None, False, False),
}


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {"content_id": list(ROWS), **{label: [row[i] for row in ROWS.values()] for i, label in enumerate(LABELS)}},
        schema={"content_id": pl.String, **{label: pl.Float64 for label in LABELS}},
    )


def test_flag_matches_hand_worked_rows() -> None:
    out = flag(_frame(), DEFAULT_THRESHOLDS, DEFAULT_HOLD_THRESHOLDS)
    assert out.height == len(ROWS)
    assert out.columns == ["content_id", *LABELS, *OUTPUT_COLUMNS]
    assert out.schema["flagged_labels"] == pl.List(pl.String)
    assert out.schema["flagged"] == pl.Boolean and out.schema["hold"] == pl.Boolean
    for row in out.iter_rows(named=True):
        labels, max_label, max_score, severity, flagged, hold = EXPECTED[row["content_id"]]
        cid = row["content_id"]
        assert row["flagged_labels"] == labels, cid
        assert row["max_label"] == max_label, cid
        assert row["flagged"] is flagged, cid
        assert row["hold"] is hold, cid
        if severity is None:
            assert row["severity"] is None and row["max_score"] is None, cid
        else:
            assert math.isclose(row["severity"], severity, rel_tol=1e-12), cid
            assert row["max_score"] == max_score, cid
            assert (row["severity"] >= 1) is flagged, cid


def test_flag_with_only_some_label_columns() -> None:
    """A lexical scorer's frame has only toxicity; other columns pass through."""
    frame = pl.DataFrame({"id": [1, 2, 3], "toxicity": [0.2, 0.85, None]})
    out = flag(frame, DEFAULT_THRESHOLDS, DEFAULT_HOLD_THRESHOLDS)
    assert out["id"].to_list() == [1, 2, 3]
    assert out["flagged"].to_list() == [False, True, False]
    assert out["flagged_labels"].to_list() == [[], ["toxicity"], []]
    assert out["max_label"].to_list() == ["toxicity", "toxicity", None]
    assert out["hold"].to_list() == [False, False, False]


def test_flag_uses_only_labels_with_thresholds() -> None:
    frame = pl.DataFrame({"toxicity": [0.55], "insult": [0.99]})
    out = flag(frame, {"toxicity": 0.5}, {})
    assert out["flagged_labels"].to_list() == [["toxicity"]]
    assert out["max_label"].to_list() == ["toxicity"]
    assert out["hold"].to_list() == [False]


def test_flag_empty_frame_and_null_dtype() -> None:
    empty = flag(pl.DataFrame(schema={"toxicity": pl.Float64}))
    assert empty.height == 0 and set(OUTPUT_COLUMNS) <= set(empty.columns)
    nulls = flag(pl.DataFrame({"toxicity": [0.9, 0.1], "insult": [None, None]}))
    assert nulls["flagged_labels"].to_list() == [["toxicity"], []]


def test_flag_rejects_frames_without_labels() -> None:
    with pytest.raises(ValueError, match="no label column"):
        flag(pl.DataFrame({"toxic": [0.9]}))
    with pytest.raises(ValueError, match=r"scores\['toxicity'\] has dtype String"):
        flag(pl.DataFrame({"toxicity": ["high"]}))


@pytest.mark.parametrize(
    ("thresholds", "hold", "message"),
    [
        ({"toxic": 0.8}, {}, r"thresholds\['toxic'\]: unknown label"),
        ({"toxicity": 0.0}, {}, r"thresholds\['toxicity'\] = 0.0 is outside \(0, 1\]"),
        ({"toxicity": 80}, {}, r"thresholds\['toxicity'\] = 80 is outside .*not 80"),
        ({"toxicity": -0.1}, {}, r"thresholds\['toxicity'\]"),
        ({"insult": float("nan")}, {}, r"thresholds\['insult'\] = nan is not a number"),
        ({"insult": True}, {}, r"thresholds\['insult'\] = True is not a number"),
        ({"insult": "0.6"}, {}, r"thresholds\['insult'\] = '0.6' is not a number"),
        ({"toxicity": 0.8}, {"toxicity": 1.2}, r"hold_thresholds\['toxicity'\] = 1.2 is outside"),
        (
            {"toxicity": 0.8},
            {"toxicity": 0.7},
            r"hold_thresholds\['toxicity'\] = 0.7 is below thresholds\['toxicity'\] = 0.8; raise",
        ),
        ({"toxicity": 0.8}, {"threat": 0.9}, r"hold_thresholds\['threat'\] has no flag threshold"),
        ({"toxicity": 0.8}, {"identity_hate": 0.9}, r"hold_thresholds\['identity_hate'\]: unknown label"),
    ],
)
def test_bad_thresholds_name_the_key(thresholds: dict, hold: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_thresholds(thresholds, hold)
    with pytest.raises(ValueError, match=message):
        flag(_frame(), thresholds, hold)


def test_defaults_are_valid_and_cover_all_labels() -> None:
    validate_thresholds(DEFAULT_THRESHOLDS, DEFAULT_HOLD_THRESHOLDS)
    assert set(DEFAULT_THRESHOLDS) == set(DEFAULT_HOLD_THRESHOLDS) == set(LABELS)
    assert all(DEFAULT_HOLD_THRESHOLDS[k] > DEFAULT_THRESHOLDS[k] for k in LABELS)


def test_threshold_equal_to_one_and_hold_equal_to_flag() -> None:
    out = flag(pl.DataFrame({"toxicity": [1.0, 0.999]}), {"toxicity": 1.0}, {"toxicity": 1.0})
    assert out["flagged"].to_list() == [True, False]
    assert out["hold"].to_list() == [True, False]


def test_priority_terms_by_hand() -> None:
    from moderation.policy import can_hold, priority_formula, priority_terms

    # Detoxify, insult 0.9 at threshold 0.6 (severity 1.5), 3 reporters, 4 prior flags and 1 removal,
    # 9 interactions, waiting 36 h: 4*0.75 + 2*0.6 + 2*0.6 + 1*ln(10)/ln(101) + 1*0.5
    t = priority_terms(model_severity=1.5, lexical=False, language_routed=False, report_count=5, reporter_count=3,
                       prior_flags=4, prior_removals=1, reach=9, age_hours=36.0)  # fmt: skip
    assert (t["model"], t["reports"], t["history"], t["age"]) == (0.75, 0.6, 0.6, 0.5)
    assert t["reach"] == pytest.approx(math.log(10) / math.log(101))
    assert t["score"] == pytest.approx(3.0 + 1.2 + 1.2 + 0.498922 + 0.5, abs=1e-6)
    assert priority_formula(t) == "6.40 = 4×0.75 model + 2×0.60 reports + 2×0.60 history + 1×0.50 reach + 1×0.50 age"
    # the saturated lexical model: 1.00 / 0.8 counts half; caps at 2x threshold, 5 reporters, 10, 100, 72 h
    lex = priority_terms(model_severity=1.25, lexical=True, language_routed=False, report_count=0, reporter_count=0,
                         prior_flags=30, prior_removals=0, reach=5000, age_hours=1000.0)  # fmt: skip
    assert (lex["model"], lex["reports"], lex["history"], lex["reach"], lex["age"]) == (0.3125, 0.0, 1.0, 1.0, 1.0)
    # a report without a known reporter counts as one; language routing counts as at a threshold (halved: lexical)
    alone = priority_terms(model_severity=None, lexical=True, language_routed=True, report_count=1, reporter_count=0,
                           prior_flags=0, prior_removals=0, reach=0, age_hours=-3.0)  # fmt: skip
    assert (alone["model"], alone["reports"], alone["reach"], alone["age"]) == (0.25, 0.2, 0.0, 0.0)
    assert alone["score"] == pytest.approx(1.4)
    routed = priority_terms(model_severity=None, lexical=False, language_routed=True, report_count=0, reporter_count=0,
                            prior_flags=0, prior_removals=0, reach=0, age_hours=0.0)  # fmt: skip
    assert routed["model"] == 0.5
    assert not can_hold("lexical:alt-profanity-check") and not can_hold("detoxify:original", is_fallback=True)
    assert can_hold("detoxify:original") and can_hold(None)
