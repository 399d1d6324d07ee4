"""The police summary drafted from tips (pure): no informant identifier leaks, the suspect's evidence stays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.liaison import load_corpora, pure_summaries, score
from intel.police_summary import TipText, draft, informant_leaks, normalise

CORPORA = load_corpora()


def test_the_tuning_corpus_is_large_and_its_expectations_are_in_the_texts():
    tips = CORPORA["tune"]
    assert len(tips) >= 60 and len({t["id"] for t in tips}) == len(tips)
    for tip in tips:
        assert all(item in tip["text"] for item in tip["must_remove"] + tip["must_keep"]), tip["id"]
    assert sum(len(t["must_remove"]) for t in tips) >= 80 and sum(len(t["must_keep"]) for t in tips) >= 60


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_no_informant_identifier_leaks_and_suspect_evidence_is_kept(name):
    tips = CORPORA[name]
    summaries, _ = pure_summaries(tips)
    result = score(tips, summaries)
    leaks = [f for f in result["failures"] if " leaks " in f]
    assert result["leaks"] == 0, leaks
    assert result["kept"] >= 0.9, result["failures"]


@pytest.mark.parametrize(
    "written",
    ["13912345678", "139 1234 5678", "139-1234-5678", "１３９１２３４５６７８", "一三九一二三四五六七八", "幺三九 幺二三四 五六七八",
     "+86 139 1234 5678", "0086-13912345678", "+8613912345678"],
)
def test_every_way_of_writing_the_reporters_phone_is_one_number_and_goes(written):
    result = draft("fraud", [TipText(f"有人冒充客服打17012340000骗钱，我的手机{written}，有事联系。")])
    assert "13912345678" not in normalise(result.summary).replace("17012340000", "")
    assert "17012340000" in result.summary
    assert [r.kind for r in result.removals] == ["phone"] and "5678" in result.removals[0].text and "1234" not in result.removals[0].text


def test_a_number_the_reporter_gave_as_their_own_goes_from_every_tip_of_the_case():
    tips = [
        TipText("对方冒充公安局，电话17055556666，让我转账到安全账户。我电话15857001234。"),
        TipText("今天又打来了，还是17055556666，冒充公安局要我转账到安全账户。15857001234", seen_at=datetime(2026, 11, 28, 1, 30, tzinfo=UTC)),
    ]
    result = draft("fraud", tips)
    assert "15857001234" not in result.summary and result.summary.count("17055556666") >= 1
    assert "2026-11-28 09:30" in result.summary  # the incident time, in Beijing time
    assert "线索2条" in result.summary


def test_sentences_several_tips_repeat_are_said_once():
    same = "城关镇和平路夜市有人收保护费，每个摊位50块。"
    result = draft("public_order", [TipText(same + "我叫陈晓燕。"), TipText(same), TipText("和平路夜市有人收保护费，每个摊位50块！领头的开浙A88H66。")])
    assert result.summary.count("保护费") == 1 and "浙A88H66" in result.summary and "陈晓燕" not in result.summary


def test_removals_say_why_and_show_only_a_masked_form():
    result = draft("fraud", [TipText("本人王某某，我的微信是wangmm88，骗子的微信是dk_kuaidai888，身份证330782199305120027")])
    shown = {r.kind: r for r in result.removals}
    assert set(shown) == {"name", "wechat", "national_id"}
    assert all(r.reason for r in result.removals)
    assert "wangmm88" not in shown["wechat"].text and "330782199305120027" not in shown["national_id"].text
    assert "dk_kuaidai888" in result.summary


def test_the_reporters_home_given_as_the_place_is_not_sent():
    result = draft("drugs", [TipText("我家住在南塘镇老街18号，楼下那户半夜老有人来，怀疑吸毒。", place_text="南塘镇老街18号")])
    assert result.place_text is None and "老街18号" not in result.summary


def test_an_analysts_text_is_checked_for_what_the_tips_said_about_the_reporter_and_for_new_self_descriptions():
    result = draft("fraud", [TipText("我叫吴小芳，手机15968001234。对方17012345678冒充客服。")])
    known = (result.reporter_values, result.reporter_names, result.suspect_values)
    assert informant_leaks("经核实，17012345678冒充客服实施诈骗，请核查。", "fraud", *known) == []
    assert set(informant_leaks("举报人吴小芳（159 6800 1234）称对方17012345678冒充客服。", "fraud", *known)) == {"name", "phone"}
    assert informant_leaks("群众反映有人冒充客服，举报人微信 xiaofang_88，可回访。", "fraud", *known) == ["wechat"]
    home = draft("drugs", [TipText("我家住在南塘镇老街18号，楼下那户半夜老有人来，怀疑吸毒。")])
    known = (home.reporter_values, home.reporter_names, home.suspect_values)
    assert informant_leaks("南塘镇老街18号楼下一户疑似吸毒，夜间人员往来频繁。", "drugs", *known) == ["address"]


@pytest.mark.parametrize(
    ("category", "text", "gone", "stays"),
    [
        ("drugs", "小区后门那个出租屋天天有人进出 我手机一三七 然后五八一二 最后四四零九 下午打", ["4409", "1375812"], []),
        ("fraud", "+86 150 6871 4420 是我手机 有个自称快递理赔的让我转钱到 6222 0212 0301 5566 778", ["15068714420"], ["6222 0212 0301 5566 778"]),
        ("public_order", "我是夜市第三排卖烧烤的 阿贵 那几个人喝完酒砸桌子 开的浙A·7K2Q9", ["卖烧烤的", "阿贵"], ["浙A·7K2Q9"]),
        ("dispute", "楼上天天半夜拖椅子 说了也不听 ——桂花苑12幢1802 小吴", ["桂花苑12幢1802", "小吴"], []),
        ("counterfeit", "我那个摊就在农贸市场西门口 隔壁卖的烟是假的 尾号是8836的手机是我的", ["农贸市场西门口", "8836"], []),
        ("fraud", "举报人 宋丽华 Q 9 8 7 6 5 4 3 2 1 被刷单骗了2300 对方网友抖音号 shuadan_vip88", ["宋丽华"], ["shuadan_vip88", "2300"]),
    ],
)
def test_the_classes_the_holdout_found_are_caught_in_other_words(category, text, gone, stays):
    summary = draft(category, [TipText(text)]).summary
    assert not [g for g in gone if g in summary or normalise(g) in normalise(summary)], summary
    assert all(normalise(s) in normalise(summary) for s in stays), summary
