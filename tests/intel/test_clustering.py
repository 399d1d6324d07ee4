"""The clustering module on its own: Chinese n-grams, the pair rules, and precision/recall on the labelled set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import free_tips
import labelled_set
import pytest

from intel.cases import clustering as c

T0 = datetime(2026, 10, 1, 8, tzinfo=UTC)


def tip(tip_id, text, *, category="drugs", hours=0.0, lat=None, lon=None, place=None, hashes=()):
    return c.TipFeatures(tip_id, category, text, T0 + timedelta(hours=hours), lat, lon, place, frozenset(hashes))


def test_text_is_read_as_words_through_the_lexicon_without_spaces_punctuation_or_width():
    assert c.normalize_text("浙Ａ１２３，桥头！ Hello") == "浙a123桥头hello"
    assert c.text_similarity("上塘村桥头有人吸毒", "上塘村桥头有人吸毒。") == pytest.approx(1.0)
    assert c.text_similarity("上塘村桥头有人吸毒", "城关镇超市卖假酒") < 0.1
    # paraphrase: 菜场 / 菜市场, 鱼摊 / 卖鱼 are one concept each in the lexicon, so these share what matters
    profile = c.text_profile("菜场鱼摊新来的摊主", "drugs")
    assert {"菜市场", "卖鱼", "摊主"} <= set(profile.vector)
    assert c.shared_words(profile, c.text_profile("城关菜市场卖鱼的那个男的", "drugs"))[:2] == ["菜市场", "卖鱼"]
    # the words every report of a category uses weigh little: two fugitive tips sharing only them are not alike
    assert c.text_similarity("看到一个人很像通缉令上的", "发现通缉犯很像，长得一模一样", "fugitive") < 0.1


def test_characters_count_where_the_words_differ_weighed_by_their_rarity_in_general_chinese():
    """Reports by people whose words the lexicon does not know still share characters inside different words
    (修车铺 / 修自行车的, 轮胎 / 胎); the commonest characters (的 人 有 个 那) weigh nothing."""
    def chars(a, b, category="counterfeit"):
        return c._cosine(c.text_profile(a, category).chars, c.text_profile(b, category).chars)

    assert c.text_similarity("修车铺老板卖假轮胎", "修自行车的卖的胎是假的", "counterfeit") < c.MIN_TEXT_TO_JOIN
    assert chars("修车铺老板卖假轮胎", "修自行车的卖的胎是假的") > c.MIN_CHARS_TO_JOIN
    assert chars("有个人在那里", "那个人有") == 0.0
    assert chars("菜场杀猪的那个摊子", "超市门口卖假酒") == 0.0


def test_a_lost_person_is_not_kept_apart_by_the_town_a_landmark_points_to():
    """A lost person walks on: one report from 南苑's market, one from 人民路 (城关) may be one incident; a
    dealer's two places are two incidents."""
    seen_at_market = tip("a", "一个老爷爷在菜市场门口转来转去 问他家在哪说不清楚", category="missing_person", place="南苑菜市场")
    seen_on_road = tip("b", "人民路公交站有个老人 好像走丢了 穿灰色外套", category="missing_person", hours=3)
    assert not c.compare(seen_at_market, seen_on_road).reasons[-1].startswith("different_town")
    dealer_a = tip("c", "南苑菜市场后门有人卖冰毒", place="南苑菜市场")
    dealer_b = tip("d", "人民路公交站有人卖冰毒", hours=3)
    assert c.compare(dealer_a, dealer_b).reasons[-1].startswith("different_town")


def test_two_paraphrased_reports_join_when_no_other_case_is_open():
    """Issue #17: idf over the new tip and one candidate gave the shared words log(4/3) and the others log(4/2),
    so two reports of one incident never matched while the category had few open cases. The weights are fixed now."""
    first = tip("a", "菜场鱼摊新来的摊主好像在卖那种东西 老有年轻人过去了不买鱼就走", hours=0, lat=29.8695, lon=119.9641)
    second = tip("b", "城关菜市场卖鱼的那个男的 晚上收摊后老有人找他拿小包的东西 怀疑是毒品", hours=11, lat=29.8702, lon=119.9633)
    assert c.cluster_offline([first, second]) == {"a": "a", "b": "a"}
    verdict = c.compare(second, first)
    assert verdict.same and verdict.score >= c.JOIN_THRESHOLD
    assert any(r.startswith("shared_words:") and "菜市场" in r for r in verdict.reasons)


def test_details_that_exclude_each_other_count_against_one_incident():
    woman = tip("a", "农商银行城关支行有个老太太非要转钱到安全账户 说公安局打电话讲她涉嫌洗钱", category="fraud", lat=29.8706, lon=119.9652)
    man = tip("b", "邮储银行城关营业所有个老大爷一直要转钱 说公安的人让他把钱转到安全账户", category="fraud", hours=2, lat=29.8742, lon=119.9705)
    same_woman = tip("c", "城关农商行 有个老奶奶被骗 说要转钱去安全帐户 电话一直没挂", category="fraud", hours=0.2, lat=29.8709, lon=119.9660)
    apart = c.compare(man, woman)
    assert not apart.same and any(r.startswith("contradicting_details:") for r in apart.reasons)
    assert c.compare(same_woman, woman).same


def test_who_a_person_is_tells_reports_apart_only_where_a_report_is_about_one_person():
    crying = tip("a", "楼上那家又在打老婆 女的一直在哭 砸东西的声音好响", category="dispute", lat=29.9001, lon=120.0302)
    drunk = tip("b", "那个男的喝多了又动手了 孩子吓得在阳台上喊 邻居都听见了", category="dispute", hours=0.3)
    verdict = c.compare(crying, drunk)
    assert not any(r.startswith("contradicting_details:") for r in verdict.reasons), verdict.reasons
    girl = tip("c", "南苑公园走丢一个小女孩 六七岁 扎两个辫子", category="missing_person")
    boy = tip("d", "南苑公园有个小男孩找不到家长了 在哭", category="missing_person", hours=1)
    assert any(r.startswith("contradicting_details:") for r in c.compare(girl, boy).reasons)


def test_a_preposition_before_the_town_suffix_names_no_town():
    assert c.named_places("下午在镇上网吧门口看到他 后来跑到村里去了") == (frozenset(), frozenset())
    assert c.named_places("白石镇前进村桥头") == (frozenset({"白石"}), frozenset({"前进"}))
    home = tip("a", "我们在塘栖镇三星村 儿子骑黑色山地车出去到现在没回来", category="missing_person", lat=29.9578, lon=120.0948)
    seen = tip("b", "三星村一个男孩不见了 有人说下午在镇上看到一辆黑色山地车", category="missing_person", hours=4, lat=29.9579, lon=120.0935)
    assert "different_named_place" not in c.compare(home, seen).reasons


def test_a_paraphrase_with_little_in_common_is_suggested_not_joined():
    fight = tip("a", "城关夜市烧烤摊有人喝多了打架 酒瓶子都砸了", category="public_order", lat=29.8688, lon=119.9705)
    knives = tip("b", "夜市卖烤串的老板拿刀追人 客人说肉不新鲜不肯付钱", category="public_order", hours=48, lat=29.8689, lon=119.9719)
    unrelated = tip("c", "城关环城北路每天晚上有人飙摩托车", category="public_order", hours=1, lat=29.8765, lon=119.9620)
    case = c.CaseProfile("case-a", "public_order", [fight])
    others = [c.CaseProfile("case-b", "public_order", [knives]), c.CaseProfile("case-c", "public_order", [unrelated])]
    assert c.best_case(knives, [case]) is None
    similar = c.similar_cases(case, others)
    assert similar[0].case_id == "case-b" and c.SUGGEST_THRESHOLD <= similar[0].score < c.JOIN_THRESHOLD
    assert [m.score for m in similar] == sorted((m.score for m in similar), reverse=True)


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
    # what only looks like a name in free text names no place: "我们村" is not a village called 我们
    ours = tip("d", "我们村小学门口有人卖冰毒 常来的", category="drugs", hours=3)
    assert c.named_places("我们村两兄弟 这个镇上 住在农村 塘栖古镇里") == (frozenset(), frozenset())
    assert c.compare(a, ours).reasons[-1] != "different_named_place"
    assert c.compare(tip("e", "东湖公园有人卖冰毒", hours=1), tip("f", "南苑公园有人卖冰毒", hours=2)).reasons[-1].startswith("different_town")


def test_first_tip_names_the_cluster():
    tips = [tip("late", "上塘村出租屋有人吸毒", hours=3, lat=29.82, lon=120.0), tip("early", "上塘村出租屋有人吸毒贩毒", lat=29.82, lon=120.0)]
    assert c.cluster_offline(tips) == {"early": "early", "late": "early"}


def _features(rows):
    return [
        c.TipFeatures(t["id"], t["category"], t["text"], datetime.fromisoformat(t["seen_at"]), t["lat"], t["lon"], t["place_text"])
        for t in rows
    ]


def _measured(rows):
    """Pairwise precision and recall of clustering a labelled set, suggestion recall at 3 and over how many cases."""
    tips = _features(rows)
    truth = {t["id"]: t["incident"] for t in rows}
    predicted = c.cluster_offline(tips)
    return (*c.pairwise_precision_recall(predicted, truth), *c.suggestion_recall(tips, predicted, truth))


def test_precision_and_recall_on_the_template_set():
    data = labelled_set.load()
    assert len(data) >= 300 and len({t["incident"] for t in data}) >= 100
    predicted = c.cluster_offline(_features(data))
    precision, recall = c.pairwise_precision_recall(predicted, {t["id"]: t["incident"] for t in data})
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_precision_recall_and_suggestions_on_the_freely_written_tuning_set():
    """The hand-written tuning set (tests/intel/data/free_tips/tune.json), with the thresholds of issue #17.
    Measured at this commit: precision 0.955, recall 0.988, suggestion recall at 3 1.0 (over 2 split cases)."""
    data = free_tips.load_sets()["tune"]
    assert len(data) >= 150 and len({t["incident"] for t in data}) >= 50 and len({t["category"] for t in data}) == 7
    precision, recall, suggest_recall, split_cases = _measured(data)
    assert precision >= 0.95 and recall >= 0.90, (precision, recall)
    assert suggest_recall >= 0.95 and split_cases > 0, (suggest_recall, split_cases)


def test_precision_and_recall_on_the_development_set_of_another_author():
    """dev2.json, written by another author who saw neither this code, its lexicon nor the tuning set, and used to
    check that changes generalise (nothing was fitted on it; the lost-person rule came from one of its misses). Measured at this commit: precision 1.0, recall 0.736,
    suggestion recall at 3 1.0 (over 26 split cases); before characters and the refit: 1.0 / 0.494 (suggestions 0.96)."""
    data = free_tips.load_sets()["dev2"]
    assert len(data) >= 100 and len({t["incident"] for t in data}) >= 40
    precision, recall, suggest_recall, _ = _measured(data)
    assert precision >= 0.95 and recall >= 0.65, (precision, recall)  # pairs near the threshold: a margin, not the figure
    assert suggest_recall >= 0.95, suggest_recall


def test_labelled_set_is_reproducible_from_its_generator():
    assert labelled_set.build() == labelled_set.load()


def test_pairwise_metric_counts_pairs():
    assert c.pairwise_precision_recall({"a": "1", "b": "1", "c": "2"}, {"a": "x", "b": "x", "c": "x"}) == (1.0, 1 / 3)
    assert c.pairwise_precision_recall({"a": "1", "b": "1", "c": "1"}, {"a": "x", "b": "x", "c": "y"}) == (1 / 3, 1.0)
