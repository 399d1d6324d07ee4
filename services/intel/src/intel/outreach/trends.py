"""Safety-bulletin drafts from tip trends: a category rising in an area. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

CATEGORY_NAMES = {
    "fugitive": "在逃人员", "drugs": "涉毒", "fraud": "电信网络诈骗", "counterfeit": "假冒伪劣商品",
    "public_order": "治安隐患", "dispute": "矛盾纠纷", "missing_person": "人员走失", "other": "其他",
}
ADVICE = {
    "fraud": "凡是自称公检法、客服要求转账到“安全账户”、先交保证金的，都是诈骗。接到可疑电话请立即挂断，拨打96110咨询。",
    "drugs": "发现可疑吸贩毒线索，请通过守望平台或110举报，举报人信息严格保密。",
    "counterfeit": "购买烟酒等商品请认准正规渠道，发现售假线索请及时举报。",
    "public_order": "发现治安隐患请及时报告，注意自身安全，切勿与违法人员正面冲突。",
    "dispute": "遇到矛盾纠纷请通过调解、诉讼等合法途径解决，可向所在村（社区）调解组织求助。",
    "missing_person": "请看护好老人和儿童，发现走失人员请及时报警并联系守望志愿者。",
    "fugitive": "发现在逃人员线索请及时举报，切勿打草惊蛇，举报人信息严格保密。",
    "other": "发现安全隐患请及时报告。",
}


@dataclass(frozen=True)
class TrendDraft:
    """A bulletin worth publishing: which case type, where, and the figures behind it."""

    case_type: str
    org_path: str
    area_name: str
    recent: int
    baseline: float
    title: str
    body: str


def rising_trends(
    *, recent: dict[tuple[str, str], int], baseline: dict[tuple[str, str], int], baseline_periods: float,
    names: dict[str, str], min_recent: int = 3, min_ratio: float = 2.0,
) -> list[TrendDraft]:
    """Drafts for every (category, area) whose recent count is at least `min_ratio` × its per-period baseline."""
    drafts = []
    for (category, path), count in sorted(recent.items(), key=lambda kv: -kv[1]):
        expected = baseline.get((category, path), 0) / max(baseline_periods, 1.0)
        if count < min_recent or count < min_ratio * max(expected, 0.5):
            continue
        area = names.get(path) or "本地区"
        kind = CATEGORY_NAMES.get(category, category)
        title = f"{area}{kind}警情提示"
        body = (
            f"近期{area}群众反映的{kind}线索明显增多（近一周{count}条，此前平均每周约{expected:.1f}条）。"
            f"{ADVICE.get(category, ADVICE['other'])}"
        )
        drafts.append(TrendDraft(category, path, area, count, expected, title, body))
    return drafts
