"""The clustering module on its own: Chinese n-grams, the pair rules, and precision/recall on the labelled set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import labelled_set
from intel import clustering as c

T0 = datetime(2026, 10, 1, 8, tzinfo=UTC)


def tip(tip_id, text, *, category="drugs", hours=0.0, lat=None, lon=None, place=None, hashes=()):
    return c.TipFeatures(tip_id, category, text, T0 + timedelta(hours=hours), lat, lon, place, frozenset(hashes))


def test_ngrams_need_no_spaces_and_ignore_punctuation_and_width():
    assert c.normalize_text("浙Ａ１２３，桥头！ Hello") == "浙a123桥头hello"
    grams = c.char_ngrams("上塘村桥头")
    assert {"上塘", "塘村", "村桥", "桥头", "上塘村"} <= set(grams)
    assert c.text_similarity("上塘村桥头有人吸毒", "上塘村桥头有人吸毒。") == pytest.approx(1.0)
    assert c.text_similarity("上塘村桥头有人吸毒", "城关镇超市卖假酒") < 0.1


def test_pair_rules_and_their_reasons():
    a = tip("a", "上塘村出租屋有人吸毒，车牌浙AK1014", lat=29.82, lon=120.0)
    same_plate = tip("b", "出租屋门口停着浙AK1O14的车，有人交易", hours=5, lat=29.821, lon=120.001)
    other_plate = tip("c", "上塘村出租屋有人吸毒，车牌浙AB7777", hours=2, lat=29.82, lon=120.0)
    far = tip("d", "上塘村出租屋有人吸毒，车牌浙AK1014", hours=1, lat=29.95, lon=120.2)
    late = tip("e", "上塘村出租屋有人吸毒，车牌浙AK1014", hours=24 * 30, lat=29.82, lon=120.0)
    other_category = tip("f", "上塘村出租屋有人吸毒，车牌浙AK1014", category="fraud", lat=29.82, lon=120.0)
    photo = tip("g", "完全不同的描述", category="other", hashes={"ab" * 32}, lat=10.0, lon=10.0)
    verdict = c.compare(a, same_plate)  # one typo (O for 0) in the plate still matches
    assert verdict.same and verdict.reasons[-1].startswith("same_identifier:")
    assert c.compare(a, other_plate).reasons[-1] == "different_plate" and c.compare(a, other_plate).conflict
    assert c.compare(a, far).reasons[-1] == "far_in_place"
    assert c.compare(a, late).reasons[-1].startswith("far_in_time")
    assert not c.compare(a, other_category).same
    assert c.compare(tip("x", "桥头有人打架", hashes={"ab" * 32}), photo).same


def test_different_villages_named_in_the_text_are_kept_apart():
    a = tip("a", "下徐村小学门口有人卖冰毒", category="drugs")
    b = tip("b", "龙潭村小学门口有人卖冰毒", category="drugs", hours=1)
    typo = tip("c", "下徐寸小学门口有人卖冰毒，常来", category="drugs", hours=2)
    assert c.compare(a, b).reasons[-1] == "different_named_place"
    assert c.compare(a, typo).same


def test_first_tip_names_the_cluster():
    tips = [tip("late", "上塘村出租屋有人吸毒", hours=3, lat=29.82, lon=120.0), tip("early", "上塘村出租屋有人吸毒贩毒", lat=29.82, lon=120.0)]
    assert c.cluster_offline(tips) == {"early": "early", "late": "early"}


def test_precision_and_recall_on_the_labelled_set():
    data = labelled_set.load()
    assert len(data) >= 300 and len({t["incident"] for t in data}) >= 100
    tips = [
        c.TipFeatures(t["id"], t["category"], t["text"], datetime.fromisoformat(t["seen_at"]), t["lat"], t["lon"], t["place_text"])
        for t in data
    ]
    predicted = c.cluster_offline(tips)
    precision, recall = c.pairwise_precision_recall(predicted, {t["id"]: t["incident"] for t in data})
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_labelled_set_is_reproducible_from_its_generator():
    assert labelled_set.build() == labelled_set.load()


def test_pairwise_metric_counts_pairs():
    assert c.pairwise_precision_recall({"a": "1", "b": "1", "c": "2"}, {"a": "x", "b": "x", "c": "x"}) == (1.0, 1 / 3)
    assert c.pairwise_precision_recall({"a": "1", "b": "1", "c": "1"}, {"a": "x", "b": "x", "c": "y"}) == (1 / 3, 1.0)
