"""Builds the labelled set of Chinese tips used to measure clustering (`python -m tests.intel.labelled_set`).

Each incident (a true case) is reported by one to six people who word it differently: paraphrased
templates, details left out, homophone typos, filler words, place as coordinates and/or free text,
times that differ by hours. Different incidents of the same category happen in the same towns in
the same weeks, so place, time and the incident's own details (plates, phone numbers, names,
shops) are what tells them apart. Deterministic (fixed seed); written to data/labelled_tips.json.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).parent / "data" / "labelled_tips.json"

TOWNS = {
    "城关镇": (29.8710, 119.9410), "临溪镇": (29.9120, 119.8830), "白石镇": (29.8240, 120.0150),
    "青山乡": (29.9580, 119.9900), "东湖街道": (29.8820, 120.0420), "南塘镇": (29.7910, 119.9260),
    "柳营镇": (29.8450, 119.8550), "石门镇": (29.9300, 120.0800), "黄泥岗乡": (29.7700, 120.0500),
    "新桥镇": (29.9800, 119.9100),
}
VILLAGES = ["前进村", "红星社区", "杨家村", "上塘村", "和平社区", "下徐村", "枫林村", "金桥社区", "龙潭村", "沙湾村", "朱家坞村", "新民社区"]
LANDMARKS = [
    "菜市场旁边", "小学门口", "汽车站附近", "网吧楼上", "废弃厂房", "出租屋", "河堤边", "桥头", "加油站对面", "农贸市场后面", "KTV门口",
    "老街口", "卫生院后面", "村委会旁",
]
SURNAMES = "王李张刘陈杨黄赵周吴徐孙朱马胡郭林何高罗"
GIVEN = ["建国", "小红", "伟", "秀英", "志强", "丽娟", "海波", "子涵", "浩然", "梓萱", "国庆", "桂兰", "明", "晓燕"]
CLOTHES = ["红色上衣", "蓝色校服", "黑色羽绒服", "灰色卫衣", "白色T恤", "黄色外套", "绿色军大衣"]
FEATURES = ["左脸有疤", "光头", "戴眼镜", "右手有纹身", "走路一瘸一拐", "留长发扎辫子", "很瘦个子高", "口音像外地的"]
CARS = ["白色面包车", "黑色桑塔纳", "银色五菱", "红色电动三轮车", "灰色SUV", "黑色摩托车"]
BRANDS = [("茅台", "酒"), ("耐克", "鞋"), ("中华", "烟"), ("五粮液", "酒"), ("阿迪达斯", "运动服"), ("飞天茅台", "酒"), ("苹果", "充电器"), ("LV", "包")]
SHOPS = ["便利店", "烟酒店", "小超市", "批发部", "鞋店", "手机店"]
IMPOSTERS = ["公安局民警", "银行客服", "快递客服", "社保局工作人员", "电商客服", "法院工作人员"]
STORIES = ["涉嫌洗钱要把钱转到安全账户", "包裹丢失要理赔", "医保卡被冻结", "网购退款需要验证", "贷款额度要先交保证金", "有一张传票未处理"]
ORDER_ACTS = ["聚众赌博", "深夜飙车扰民", "井盖被偷走了", "有人私拉电线", "有人在河里电鱼", "有人半夜偷电瓶", "有人醉酒闹事砸东西"]
DISPUTE_REASONS = ["宅基地边界", "工钱拖欠", "修路占地", "养狗咬人赔偿", "土地承包", "噪音扰民"]
FILLERS_PRE = ["", "", "你好，", "我要举报，", "紧急情况！", "麻烦核实一下，", "反映个情况：", "您好 "]
FILLERS_POST = ["", "", "请尽快处理", "希望派人来看看", "谢谢。", "我不方便留名", "情况属实"]
TYPOS = {"在": "再", "的": "得", "已": "以", "做": "作", "那": "哪", "象": "像", "到": "倒", "他": "她", "账": "帐", "钱": "前", "说": "讲", "看": "瞧", "人": "入", "有": "又"}
HOMOPHONE_PLACE = {"镇": "真", "村": "寸", "街": "接"}

TEMPLATES = {
    "fugitive": [
        "我在{place}看到一个人很像通缉令上的{name}，{age}岁左右，{feature}，穿{clothes}，开一辆{car}",
        "{place}最近来了个{feature}的男的，跟网上通缉的{name}长得一模一样，穿着{clothes}，好像住那里",
        "发现疑似在逃人员{name}，{feature}，{time}在{place}出没，骑{car}",
        "通缉犯{name}可能躲在{place}，我亲眼看见的，{feature}，{age}来岁",
    ],
    "drugs": [
        "{place}那间房子经常半夜有人进出，怀疑有人吸毒，门口停一辆{car}，车牌{plate}",
        "举报{place}有人贩毒，一个{feature}的男子，开{car}，牌照{plate}，经常在那里交易",
        "{place}附近闻到奇怪的味道，看到有人用锡纸吸东西，{car}车牌号{plate}",
        "怀疑{place}有人卖冰毒，常来的是{feature}的人，开着{plate}的{car}",
    ],
    "fraud": [
        "接到自称{imposter}的电话，号码{phone}，说我{story}，让我转账{amount}元",
        "{phone}打电话冒充{imposter}，说{story}，我家老人差点转了{amount}块",
        "有骗子用{phone}这个号码装成{imposter}，讲{story}，要转{amount}元，大家小心",
        "电信诈骗：对方称是{imposter}，来电{phone}，理由是{story}，要求汇款{amount}元",
    ],
    "counterfeit": [
        "{place}的{shop}在卖假{brand}{goods}，一{goods}才{price}元，肯定是假的",
        "举报{place}{shop}销售假冒{brand}{goods}，价格{price}元，包装很粗糙",
        "我在{place}那个{shop}买的{brand}{goods}是假货，{price}块钱，老板说还有一仓库",
        "{shop}（{place}）卖假冒伪劣{brand}{goods}，售价{price}元",
    ],
    "public_order": [
        "{place}{act}，已经好几天了，{time}最严重",
        "反映{place}的问题：{act}，影响很大",
        "{time}在{place}看到{act}，没人管",
        "{place}这边{act}，请派人来处理",
    ],
    "dispute": [
        "{place}{a}家和{b}家因为{reason}吵起来了，{scale}",
        "{place}两户人家（{a}、{b}）为{reason}发生纠纷，{scale}",
        "{a}和{b}在{place}因{reason}闹矛盾，{scale}，怕打起来",
        "{place}因为{reason}起冲突，{a}家和{b}家，{scale}",
    ],
    "missing_person": [
        "{name}，{age}岁，穿{clothes}，{time}在{place}走失，家人很着急",
        "寻人：{age}岁的{name}{time}在{place}不见了，身穿{clothes}，{feature}",
        "我家{name}（{age}岁）走丢了，最后在{place}看到，穿的是{clothes}",
        "{place}有个{age}岁左右的孩子{name}走失，穿{clothes}，{feature}",
    ],
}
TIME_WORDS = ["今天凌晨", "昨天晚上", "今天下午", "前天夜里", "今天早上", "傍晚的时候"]


def _plate(rng: random.Random) -> str:
    return "浙A" + rng.choice("BCDFGHJK") + "".join(rng.choice("0123456789") for _ in range(4))


def _phone(rng: random.Random) -> str:
    return rng.choice(["170", "171", "165", "0571-", "95"]) + "".join(rng.choice("0123456789") for _ in range(8))


def _incident(rng: random.Random, category: str, town: str, center: tuple[float, float], at: datetime) -> dict:
    village = rng.choice(VILLAGES)
    brand, goods = rng.choice(BRANDS)
    return {
        "category": category,
        "town": town,
        "lat": center[0] + rng.uniform(-0.03, 0.03),
        "lon": center[1] + rng.uniform(-0.03, 0.03),
        "place": f"{town}{village}{rng.choice(LANDMARKS)}",
        "at": at,
        "slots": {
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN), "age": str(rng.randint(5, 60) if category == "missing_person" else rng.randint(20, 55)),
            "feature": rng.choice(FEATURES), "clothes": rng.choice(CLOTHES), "car": rng.choice(CARS), "plate": _plate(rng),
            "imposter": rng.choice(IMPOSTERS), "story": rng.choice(STORIES), "phone": _phone(rng), "amount": str(rng.choice([3000, 5800, 12000, 20000, 49800, 86000])),
            "brand": brand, "goods": goods, "shop": f"{rng.choice(SURNAMES)}记{rng.choice(SHOPS)}", "price": str(rng.choice([35, 68, 120, 299, 450])),
            "act": rng.choice(ORDER_ACTS), "a": rng.choice(SURNAMES), "b": rng.choice(SURNAMES), "reason": rng.choice(DISPUTE_REASONS),
            "scale": rng.choice(["双方十几个人对峙", "已经动手了", "吵了一下午", "村干部劝不住"]),
        },
    }


def _typo(rng: random.Random, text: str, rate: float) -> str:
    out = []
    for ch in text:
        r = rng.random()
        if ch in TYPOS and r < rate * 4:
            out.append(TYPOS[ch])
        elif r < rate / 3:
            continue  # a character dropped
        else:
            out.append(ch)
    return "".join(out)


def _tip(rng: random.Random, incident: dict, index: int) -> dict:
    slots = dict(incident["slots"])
    slots["place"] = incident["place"] if rng.random() < 0.7 else incident["place"].replace(incident["town"], "")
    if rng.random() < 0.2:
        slots["place"] = "".join(HOMOPHONE_PLACE.get(c, c) for c in slots["place"])
    slots["time"] = rng.choice(TIME_WORDS)
    for optional in ("feature", "clothes", "car", "amount", "price", "scale"):
        if rng.random() < 0.25:
            slots[optional] = "记不清了"
    template = rng.choice(TEMPLATES[incident["category"]])
    text = rng.choice(FILLERS_PRE) + template.format(**slots) + ("，" if rng.random() < 0.5 else "。") + rng.choice(FILLERS_POST)
    text = _typo(rng, text, 0.02)
    spread_h = {"fugitive": 72, "missing_person": 12, "fraud": 48, "counterfeit": 96}.get(incident["category"], 10)
    seen = incident["at"] + timedelta(hours=rng.uniform(0, spread_h))
    tip = {"category": incident["category"], "text": text, "seen_at": seen.isoformat(), "lat": None, "lon": None, "place_text": None}
    mode = rng.random()
    if mode < 0.75:
        # fraud victims are spread over the town; other reporters stand near the place
        spread = 0.02 if incident["category"] == "fraud" else 0.003
        tip["lat"] = round(incident["lat"] + rng.uniform(-spread, spread), 6)
        tip["lon"] = round(incident["lon"] + rng.uniform(-spread, spread), 6)
    if mode >= 0.5 and mode < 0.92:
        tip["place_text"] = incident["place"]
    return tip


def build(seed: int = 20261128, incidents_per_category: int = 18) -> list[dict]:
    """The labelled tips: each with `incident` (the true case label) and the tip fields."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    tips: list[dict] = []
    incident_no = 0
    for category in TEMPLATES:
        # a few busy towns get several incidents of the category within days of each other
        busy = rng.sample(list(TOWNS), 4)
        for _ in range(incidents_per_category):
            town = rng.choice(busy) if rng.random() < 0.7 else rng.choice(list(TOWNS))
            at = start + timedelta(hours=rng.uniform(0, 24 * 21))
            incident = _incident(rng, category, town, TOWNS[town], at)
            incident_no += 1
            label = f"{category}-{incident_no:03d}"
            count = rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6])
            for i in range(count):
                tip = _tip(rng, incident, i)
                tip["incident"] = label
                tip["id"] = f"{label}-{i}"
                tips.append(tip)
    rng.shuffle(tips)
    return tips


def load() -> list[dict]:
    """The stored labelled set."""
    return json.loads(OUT.read_text(encoding="utf-8"))


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    data = build()
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(data)} tips, {len({t['incident'] for t in data})} incidents -> {OUT}")
