"""The police summary drafted from tips (pure): no informant identifier leaks, the suspect's evidence stays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.liaison import load_corpora, pure_summaries, score
from intel.cases.police_summary import TipText, draft, informant_leaks, normalise

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


@pytest.mark.parametrize(
    ("category", "text", "gone", "stays"),
    [
        # a run-on self-description with the building and room, then a surname with a particle
        ("fraud", "喂我是那个金桂苑3栋1单元602的业主我姓彭呀有人冒充我外甥借钱 微信号ljh_2024", ["金桂苑3栋1单元602", "姓彭"], ["ljh_2024"]),
        # the writer's own shop named after their self-description; a sign-off after 落款
        ("counterfeit", "东街口那家“金福酒行”卖假五粮液 老板电话18812345678。我是对面修鞋的 店名叫“老韩鞋铺” 落款：小韩", ["老韩鞋铺", "小韩"],
         ["金福酒行", "18812345678"]),
        ("dispute", "隔壁奶茶店老板天天把垃圾堆我门口 说了还骂人 他叫方志远 电话13711112222。我店叫“甜心烘焙”", ["甜心烘焙"], ["方志远", "13711112222"]),
        # trades and relations that single the writer out
        ("drugs", "公园厕所后面老有人打针 我是公园保洁员 早班就我一个人", ["公园保洁员"], ["公园厕所后面"]),
        ("public_order", "我是他前夫 他现在在酒吧街收保护费 微信 bh_laoda 有事打我电话 15500001111", ["他前夫", "15500001111"], ["bh_laoda", "酒吧街"]),
        # a name standing alone after the writer's contact, or after 名字
        ("fraud", "网购退款被骗2600 对方客服QQ 55667788。我的邮箱 yy_chen@126.com 手机尾号9021，宋雨欣", ["宋雨欣", "9021"], ["55667788", "2600"]),
        ("fraud", "收到短信说医保卡停用 点了链接 yibao-fix.top 被扣了900 我自己邮箱 wq1990@163.com 名字吴倩", ["吴倩"], ["yibao-fix.top"]),
        # a job clause after the writer's own number; a trade clause 在…开…的 before their QQ
        ("fraud", "有人打一七零 五五六六 七七八八 说是银行的让我转账 我叫田芳 电话 13988887777 在镇卫生院做保洁", ["在镇卫生院做保洁"], []),
        ("public_order", "桥洞下面晚上有人聚众赌博 我在桥头开杂货店的 QQ 3344 5566 7 有事找我", ["桥头开杂货店的", "3344 5566 7"], ["桥洞下面"]),
        # a mobile spaced one digit at a time; a landline grouped 4 + 3 after the area code
        ("fraud", "骗子的号是 170 2233 4455 我电话是 1 3 6 5 7 1 2 8 8 0 9", ["13657128809"], ["170 2233 4455"]),
        ("missing_person", "我是住在河西的李大妈 有个小男孩在超市门口哭 我陪着他 我电话 0571-8865 432", ["0571-8865 432"], ["超市门口"]),
        # the same shapes kept where they are the suspect's: the account holder's name, a missing father's name
        ("fraud", "我的手机 139 0000 1111 骗子让我转到 6222 0001 2222 3333 444 户名 韩立新", ["13900001111"], ["韩立新"]),
        ("missing_person", "我爷爷早上出门没回来 八十岁 名字叫郑宝根 穿灰棉袄。我是他孙女 电话 13822223333", ["13822223333"], ["郑宝根"]),
    ],
)
def test_the_classes_the_fresh_set_found_are_caught_in_other_words(category, text, gone, stays):
    summary = draft(category, [TipText(text)]).summary
    assert not [g for g in gone if g in summary or normalise(g) in normalise(summary)], summary
    assert all(normalise(s) in normalise(summary) for s in stays), summary
