"""The police summary of a case: drafted from its tips with every informant identifier taken out. Pure, no I/O.

A call-taker's reading written down as rules; the full list and how it fared on unseen tips is in the README
("Police summary"). In short:
- Identifiers are found on a *reading* of the text with the same offsets: full-width characters as ASCII, runs of
  Chinese numerals (幺三九 一二三四…) as digits, 俺 as 我, a space between words as a clause break. So
  "幺三九 1234 5678", "１３９－１２３４－５６７８" and "+86 139…" are one number.
- Self-descriptions are the reporter's: names after 我叫/本人/我姓/举报人…, family names, the home address, roles
  and places that single a person out, and whole clauses only about where the writer lives, works or studies.
- Every number, account, plate, handle or URL is attributed by the owner word nearest before it in its clause,
  then the words after it, then the owner word nearest in the sentence, then a bare contact label or its place at
  the end of the tip; still unattributed, evidence kinds stay in a fraud tip and contact kinds go.
- A value found as the reporter's once is the reporter's everywhere in the case (the reporter wins a conflict).
- Also the writer's: numbers read out in groups or by their tail, a signature after ——, a lone 小区…幢 clause, their
  shop or stall, a nickname in their own 我是… clause (rule 6 in the README, from the hold-out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))
CATEGORY_NAMES = {
    "fugitive": "在逃人员", "drugs": "涉毒", "fraud": "诈骗", "counterfeit": "假冒伪劣", "public_order": "治安",
    "dispute": "纠纷", "missing_person": "失踪走失", "other": "其他",
}
PLACEHOLDER = "〔已隐去〕"
MAX_SUMMARY_CHARS = 1800

_NUMERAL_MAP = str.maketrans({
    "零": "0", "〇": "0", "○": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
    "六": "6", "七": "7", "八": "8", "九": "9",
})
_CN = "零〇○一幺二两三四五六七八九"
_NUMERAL_RUN = re.compile(f"(?:[0-9]+|[{_CN}]{{2,}})(?:[ \\-]?(?:[0-9]+|[{_CN}]{{2,}}))*")  # 一直 or 一个 alone stay words
_DIGIT_MAP = str.maketrans({
    **{chr(0xFF10 + i): str(i) for i in range(10)},
    "＋": "+", "－": "-", "—": "-", "　": " ",
    **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)}, **{chr(0xFF41 + i): chr(0x61 + i) for i in range(26)},
    "＠": "@", "．": ".",
})
_SEP = r"[ \t\-·.]?"


def shadow(text: str) -> str:
    """The text with full-width characters and Chinese numerals as ASCII, character for character (same offsets)."""
    return _NUMERAL_RUN.sub(
        lambda m: m.group(0).translate(_NUMERAL_MAP) if len(re.sub(r"[ \-]", "", m.group(0))) >= 3 else m.group(0), text.translate(_DIGIT_MAP)
    )


def _reading(text: str) -> str:
    """The shadow as a call-taker reads it: 俺 is 我, a space between words ends a clause (same offsets)."""
    read = shadow(text).replace("俺", "我").replace("鄙人", "本人")
    return re.sub(r"(?<=[\u4e00-\u9fff0-9]) +(?=[\u4e00-\u9fff])", lambda m: "，" * len(m.group(0)), read)


def normalise(value: str) -> str:
    """The comparable form of an identifier: ASCII digits, no spaces/dashes/+86 prefix, letters lower-cased."""
    s = re.sub(r"[\s\-·.()（）]", "", shadow(value)).lower()
    s = re.sub(r"^(\+86|0086)", "", s)
    return s


_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾"
    "夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤楼俞应童蒋骆鲍柴祝屠裘倪詹洪葛包"
    "阎岳常康施牛樊兰殷颜喻温庞申尤舒聂甘关焦谷车宁仇栾厉符景束幸韶薄印宿怀蒲邰鄂索卓蔺蒙池乔郁胥闻党翟贡劳姬冉"
    "桂濮寿扈燕冀浦尚庄晏瞿慕连茹艾鱼容古易戈庾居衡耿满匡寇禄阙欧蔚越巩晁敖冷辛阚简饶沙鞠丰巢蒯荆游竺权逯盖桓"
)
_NAME_STOP = "，。！？!?、,;；：:（）()的在住家是今昨前刚电手微联打有我他她们被和跟与因想要就也都从到说了"
_STRONG_SELF = (
    "我叫", "我的", "我电话", "我手机", "我号码", "我微信", "我qq", "我QQ", "本人", "联系我", "联系本人", "找我",
    "留个电话", "留个号", "留电话", "联系人", "举报人", "我家", "我住", "我是", "我妈", "我爸",
    "我老公", "我老婆", "我爱人", "我儿子", "我女儿", "我自己", "叫我", "帮我报", "我报的", "报警人", "报案人",
)
_STRONG_SUSPECT = (
    "骗子", "对方", "他", "她", "他们", "那人", "那个人", "此人", "该人", "嫌疑人", "冒充", "自称", "客服", "打来", "来电", "接到",
    "收到", "陌生", "收款", "转账到", "转到", "转入", "汇到", "打到", "汇入", "存到", "卖家", "上家", "老板", "店主", "车牌",
    "开着", "开一辆", "开辆", "司机", "网站", "网址", "链接", "群里", "群主", "主播", "毒贩", "贩子", "逃犯", "通缉", "那辆",
    "男的", "女的", "男子", "女子", "中介", "放贷", "平台", "短信", "给我打", "打给我", "发给我", "让我加", "叫我加", "加了",
    "诈骗", "犯罪", "假警察", "假客服", "号主", "机主是他", "用", "有人", "有个人", "卖", "让我", "要我",
    "打钱", "转钱", "汇款", "负责人", "骗我的", "骗我", "骗了我", "组织者", "组织的人", "领头", "为首", "寄件人", "发件人",
    "推销", "叫", "网友", "租客", "住户是", "助理", "导师", "专员", "业务员", "推销员", "工作人员", "经理",
    "摊主", "摊贩", "店家", "商家", "厂家", "房主", "店里", "店铺", "门店", "家长", "家属", "监护人", "她妈妈", "他妈妈", "她爸爸", "他爸爸", "记下",
)
_THIRD_PARTY = re.compile(r"的?(?:老师|领导|同学|同事|朋友|亲戚|邻居|老板|客户|上司|班主任|校长|医生)")
_GUARDIANS = ("孩子妈妈", "孩子爸爸", "孩子妈", "孩子爸", "孩子家长", "家长")  # whom the police call in a missing-person case
_PRONOUNS = ("他", "她", "他们", "她们")
_FAMILY = re.compile(
    r"(?:我|本人)(?:的)?(?:妈妈?|爸爸?|母亲|父亲|老公|老婆|爱人|儿子|女儿|奶奶|爷爷|外婆|姥姥|哥哥?|姐姐?|弟弟?|妹妹?|朋友|家人|孩子)"
    r"|(?:孙女|孙子|外孙女?|女儿|儿子|老伴|老公|老婆|家人|邻居|朋友|同事)(?=帮我|替我|代我)"
)
_PERSON = re.compile(r"骗子|对方|嫌疑人|那人|那个人|男的|女的|男子|女子|卖家|老板|客服|司机|主播|中介|毒贩|逃犯|贩子|有人|有个人")
_LABEL_ONLY = re.compile(
    r"^(?:就行|就好|就可以|好了)?[\s，,、：:]*(?:我的)?(?:联系)?(?:电话|手机号?|号码|微信号?|QQ号?|qq号?|邮箱|联系方式|手机号码|地址|住址|车号|车牌号?)?"
    r"\s*(?:就)?(?:是)?(?:店里|家里|单位|办公室|公司)?(?:的)?\s*(?:是|为|叫|[:：])?\s*[“\"「『]?$"
)
_SELF_NUMBER_WORDS = re.compile(
    r"(?<![打给拨加叫让])我(?:还是|就是|自己的?|的|用的|本人的?)?(?:之前|原来|以前|现在)?(?:的|那个|这个)?(?:号码?|电话|手机号?|微信号?|QQ号?|座机)"
    r"|(?:收到|接到)[^，。！？]{0,6}的(?:手机|号码|电话)(?:号码?)?"  # 收到短信的手机是…: the reporter's phone
    r"|(?:有事|可以|请|就|随时|欢迎|方便|麻烦)(?:的话)?(?:打|加|联系|回电|回拨|回复|拨打|打电话)(?:给)?我"  # 有事打我: the reporter's
    r"|(?:请|麻烦)?回(?:电|拨|个电话)(?:给我)?(?!是|过去)(?=[：:\s]*$)"
)
_NAMED_AS_ME = re.compile(r"([A-Za-z][A-Za-z ]{1,19}|[\u4e00-\u9fff]{2,4})\s*(?:就)?是我(?:的)?(?:英文名|名字|网名|小名|昵称|外号|真名|微信名)")
_HONORIFIC_NAME = re.compile(r"([\u4e00-\u9fff](?:先生|女士|小姐|阿姨|师傅|大姐|大哥))[\s，,:：（(]*$")
_STAFF_NO = re.compile(r"(?:工号|学号|员工号|员工编号|胸牌号|车位号?|会员卡号|会员号|(?:骑手|司机|员工|会员)(?:ID|id|编号|号))\s*[:：是]?\s*[A-Za-z0-9][A-Za-z0-9\-]{1,19}")
_LABEL_SELF = re.compile(  # a bare label at the start of a clause; "组织者电话" or "寄件人电话" is someone else's
    r"(?:^|[\s，,。！!？?；;：:（(\n]|联系|留|我|本人)(联系电话|联系方式|联系手机|电话号码|电话|手机号码|手机号?|tel|TEL|Tel|微信号?|QQ|qq|邮箱)\s*[:：]?\s*$"
)
_SUFFIX_SELF = re.compile(r"^[\s，,、（(]*(这个?(?:就|也)?是我|的(?:手机|电话|号码?|微信)号?(?:就|也)?是我|机主就?是我|是我|是本人|本人|我的|联系我|找我|有事|回电|随时)")
_SUFFIX_SUSPECT = re.compile(
    r"^[\s，,、]*(的人|的那个|的骗子|打过来|打给|打电话|发短信|来的|打来|打给我|给我打|发来|发给我|一直|骗|冒充|自称|的电话|来电|加我|是骗子|是他|是对方"
    r"|的号码|这个号)"
)
_TAIL_ONLY = re.compile(r"^[\s，,。.！!~～、：:；;（）()谢多麻烦请尽快处理感辛苦了啊吧呢哈]*$")
_SENTENCE_END = re.compile(r"[。！？!?\n；;]")


@dataclass(frozen=True)
class Found:
    """An identifier found in a text: where, what kind, its comparable value, and whose it is."""

    start: int
    end: int
    kind: str
    value: str
    owner: str  # "reporter" | "suspect"
    reason: str


@dataclass(frozen=True)
class Removal:
    """One removal as the analyst sees it: the kind, the text masked for display and why."""

    kind: str
    text: str
    reason: str


@dataclass(frozen=True)
class TipText:
    """What of a tip the drafting reads."""

    text: str
    place_text: str | None = None
    seen_at: datetime | None = None


@dataclass
class PoliceDraft:
    """The drafted summary, the removals shown to the analyst, and what the informant check must catch later."""

    summary: str
    removals: list[Removal]
    place_text: str | None
    reporter_values: dict[str, str] = field(default_factory=dict)  # comparable value -> kind
    reporter_names: dict[str, str] = field(default_factory=dict)  # names, addresses and roles as written -> kind
    suspect_values: set[str] = field(default_factory=set)


# --- finding identifiers -------------------------------------------------------------------------------------

_MOBILE = re.compile(r"(?<![0-9A-Za-z_])(?:(?:\+ ?86|0086|86)[ \-]*)?1" + _SEP + r"[3-9](?:" + _SEP + r"[0-9]){9}(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9A-Za-z_])(?:\(0[0-9]{2,3}\)|0[0-9]{2,3})[ \-]?[2-9](?:[ \-]?[0-9]){6,7}(?:[\s，,]*转[\s，,]*[0-9]{2,5})?(?![0-9])")
_NATIONAL_ID = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{5}" + _SEP + r"(?:19|20)[0-9]{2}" + _SEP + r"[0-9]{4}" + _SEP + r"[0-9]{3}[0-9Xx](?![0-9A-Za-z])")
_DIGITS_18 = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[ \-]?[0-9]){16}[ \-]?[0-9Xx](?![0-9A-Za-z])")
_BANK = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{3}(?:[ \-]?[0-9]{4}){3}(?:[ \-]?[0-9]{1,3})?(?![0-9])")
_QQ = re.compile(r"(?i)(?:qq|扣扣|企鹅号)(?:小号|大号|群号?|号码?)?\s*(?:是|为|:|：)?\s*([1-9](?: ?[0-9]){4,10})(?![0-9])")
_WECHAT = re.compile(
    r"(?i)(?:微信|v信|vx|wx|薇信|威信|weixin|wechat|v\s?[❤♥💗])(?:号码?|名|id)?\s*(?:是|为|:|：|叫)?\s*([A-Za-z][-_A-Za-z0-9]{4,19})(?![-_A-Za-z0-9])"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_URL = re.compile(r"(?i)(?:https?://|www\.)[^\s，。；！？、“”\"'<>（）()]+|(?<![@A-Za-z0-9.])[a-z0-9-]{2,30}\.(?:com|cn|net|top|xyz|vip|cc|app|site|club)(?:/[^\s，。；！？、“”\"'<>（）()]*)?")
_PHONE_IN_GROUPS = re.compile(r"(?<![0-9])1[0-9]{2,3}(?:[\s，,]*(?:后面|再后面|然后|接着|中间|最后|后四位|再是|是){0,2}[\s，,]*[0-9]{3,4}){2,3}(?![0-9])")
_PHONE_TAIL = re.compile(r"(?:尾号|尾数|后四位|末四位|最后四位|后几位)(?:是|为|[:：])?\s*([0-9]{3,4})(?![0-9])")
_PLATE = re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][ ·•.]?[A-Z0-9]{5,6}(?![A-Za-z0-9])")
_HANDLE = re.compile(
    r"(?:抖音|快手|微博|小红书|闲鱼|淘宝|拼多多|B站|b站|直播间|有鱼|转转|微信|朋友圈|陌陌|探探|[Ss]oul|钉钉)(?:"
    r"(?:号|账号|ID|id|昵称|店铺|店|名字?)\s*(?:是|叫|为|:|：)?\s*([A-Za-z0-9_\-]{3,30})(?![A-Za-z0-9_\-])"
    r"|(?:号|账号|ID|id|昵称|店铺|店|名字?)?\s*(?:是|叫|为|:|：)?\s*[“\"「『]([^”\"」』]{2,20})[”\"」』])"
)


def _sentence_prefix(text: str, start: int, limit: int = 60) -> str:
    """The words before `start` in the same sentence (at most `limit` characters)."""
    begin = max(0, start - limit)
    window = text[begin:start]
    ends = list(_SENTENCE_END.finditer(window))
    return window[ends[-1].end():] if ends else window


def _nearest_cue(
    prefix: str, far_self_ok: bool = True, far_suspect_ok: bool = True, context: str = "", category: str = "",
) -> str | None:
    """'reporter' or 'suspect' by the owner word closest before the identifier (longer word on a tie)."""
    best: tuple[int, int, str, str] | None = None
    guardians = "suspect" if category == "missing_person" else "reporter"  # 孩子爸电话: the writer, unless a child is missing
    for owner, cues in (("reporter", _STRONG_SELF), ("suspect", _STRONG_SUSPECT), (guardians, _GUARDIANS)):
        for cue in cues:
            at = prefix.rfind(cue)
            if at < 0:
                continue
            if owner == "reporter" and cue.startswith("我") and prefix[at - 1:at] in ("打", "给", "拨", "加", "叫", "让"):
                continue  # 打我电话 / 加我QQ: the caller's number, not mine
            if cue in ("他", "他们") and prefix[max(0, at - 1):at] == "其":
                continue
            if cue == "用" and prefix[max(0, at - 1):at + 2] in ("我用", "使用", "用我"):
                continue
            if len(prefix) - at > (10 if owner == "reporter" else 12) and not (far_self_ok if owner == "reporter" else far_suspect_ok):
                continue
            if owner == "reporter" and _THIRD_PARTY.match(prefix, at + len(cue)):  # 我儿子的老师 / 我的领导: someone else
                continue
            rank = (at + len(cue), len(cue), owner, cue)
            if best is None or rank[:2] > best[:2]:
                best = rank
    for m in _SELF_NUMBER_WORDS.finditer(prefix):  # 我还是之前那个号 / 我自己的手机
        if far_self_ok or len(prefix) - m.start() <= 10:
            rank = (m.end(), m.end() - m.start(), "reporter", m.group(0))
            if best is None or rank[:2] > best[:2]:
                best = rank
    if best and best[3] in _PRONOUNS:  # 他/她: whoever the sentence spoke of last (我女儿…她电话 is the family's)
        before = context[:len(context) - len(prefix)] + prefix[:best[0] - len(best[3])]
        family = [m.end() for m in _FAMILY.finditer(before)]
        person = [m.end() for m in _PERSON.finditer(before)]
        if family and (not person or family[-1] > person[-1]):
            return "reporter"
    return best[2] if best else None


def attribute(
    text: str, start: int, end: int, kind: str, category: str, *, cue_start: int | None = None, self_ends: tuple[int, ...] = (),
) -> tuple[str, str]:
    """Whose identifier this is, and why, read from its context the way a call-taker would."""
    at = start if cue_start is None else cue_start
    if any(e <= at and _LABEL_ONLY.match(text[e:at]) for e in self_ends):
        return "reporter", "紧跟在举报人的自我介绍之后"
    if re.search(r"(?<![打给拨加叫让])我(?:的)?\s*$", text[max(0, at - 4):at]):
        return "reporter", "紧跟在“我/我的”之后"
    prefix = _sentence_prefix(text, at)
    far = {"far_self_ok": kind not in ("plate", "url", "handle", "bank_account"), "far_suspect_ok": kind != "national_id"}
    clause = re.split(r"[，,]", prefix)[-1]
    owner = _nearest_cue(clause, **far, context=prefix, category=category)
    if owner:
        return owner, "同一分句中指向" + ("举报人本人" if owner == "reporter" else "他人（嫌疑人/对方/当事人）")
    suffix = text[end:end + 10]
    if (m := _SUFFIX_SELF.match(suffix)) and not (
        m.group(1) in ("有事", "回电", "随时")
        and (kind in ("handle", "url", "plate") or re.match(r"[^，。！？!?；;]{0,4}(?:电话|手机|微信|QQ|qq|号)", text[end + m.end():]))
    ):  # 微信 X 有事打我电话 Y: "有事" leads to the next contact, not back to this one
        return "reporter", "后文指向举报人本人"
    if _SUFFIX_SUSPECT.match(suffix):
        return "suspect", "后文指向他人（嫌疑人/对方）"
    bare_label = re.fullmatch(r"\s*(?:联系电话|联系方式|电话|手机号?|号码|微信|QQ|qq|邮箱)\s*[:：]?\s*", clause)
    if kind in ("phone", "wechat", "qq", "email") and _TAIL_ONLY.match(text[end:]) and bare_label and not re.search(
        r"叫|是|姓|[0-9]{3}", (re.split(r"[，,]", prefix)[-2:-1] or [""])[0]  # 他叫李四海，电话…: the person just named
    ):
        return "reporter", "举报末尾只带“电话/手机”标签的号码，按举报人留的联系方式处理"
    if kind == "national_id" and (m := re.search(r"([\u4e00-\u9fff]{2,3})[，,\s]*身份证(?:号码?)?\s*[:：是]?\s*$", prefix)):
        name_clause = re.split(r"[，,。！？!?；;\n]", prefix[:m.start(1)])[-1]
        if m.group(1)[0] in _SURNAMES and not re.search(r"我|本人|叫", name_clause):
            return "suspect", "身份证号紧跟在他人姓名之后"
    owner = _nearest_cue(prefix, **far, category=category)
    if owner:
        return owner, "前文指向" + ("举报人本人" if owner == "reporter" else "他人（嫌疑人/对方/当事人）")
    if _LABEL_SELF.search(prefix[-12:]) or re.fullmatch(r"\s*(?:联系电话|联系方式|电话|手机号?|tel|TEL|Tel|微信|QQ|qq|邮箱)\s*[:：]?\s*", prefix):
        return "reporter", "未注明归属的联系方式，按举报人留的联系方式处理"
    if kind == "phone" and re.search(r"[\u4e00-\u9fff](?<![我的家里宅])(?:电话|手机|座机)(?:号码?)?\s*[:：是]?\s*$", prefix[-12:]):
        return "suspect", "号码前写明了是谁的（如“加油站电话”“组织者电话”），不是举报人的"
    if _TAIL_ONLY.match(text[end:]) and kind in ("phone", "wechat", "qq", "email"):
        return "reporter", "位于举报末尾，按举报人留的联系方式处理"
    if kind in ("national_id", "wechat", "qq", "email"):
        return "reporter", f"未注明归属的{KIND_NAMES[kind]}，一律隐去"
    if kind == "phone" and category != "fraud":
        return "reporter", "非诈骗线索中未注明归属的号码，按举报人的号码隐去"
    return "suspect", "未注明归属，按涉案证据保留"


KIND_NAMES = {
    "phone": "电话号码", "national_id": "身份证号", "bank_account": "银行卡号", "qq": "QQ号", "wechat": "微信号", "email": "电子邮箱",
    "url": "网址", "plate": "车牌", "handle": "网络账号", "name": "姓名/称呼", "address": "住址", "role": "身份/职务",
}


def _numbers(text: str, sh: str, category: str, self_ends: tuple[int, ...]) -> list[Found]:
    """Every number-like identifier in the reading, each attributed; the first find of a span wins."""
    found: list[Found] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, kind: str, value: str, cue_start: int | None = None) -> None:
        if any(s < end and start < e for s, e in taken):
            return
        taken.append((start, end))
        owner, reason = attribute(text, start, end, kind, category, cue_start=cue_start, self_ends=self_ends)
        found.append(Found(start, end, kind, value, owner, reason))

    for m in _EMAIL.finditer(sh):
        add(m.start(), m.end(), "email", m.group(0).lower())
    for m in _URL.finditer(sh):
        add(m.start(), m.end(), "url", m.group(0).lower())
    for m in _WECHAT.finditer(sh):
        add(m.start(1), m.end(1), "wechat", m.group(1).lower(), cue_start=m.start())
    for m in _QQ.finditer(sh):  # a QQ group is a place people gather, evidence like a handle; a QQ number is a person
        add(m.start(1), m.end(1), "handle" if "群" in m.group(0) else "qq", re.sub(" ", "", m.group(1)), cue_start=m.start())
    for m in _NATIONAL_ID.finditer(sh):
        add(m.start(), m.end(), "national_id", normalise(m.group(0)))
    for m in _DIGITS_18.finditer(sh):
        value = normalise(m.group(0))
        if re.fullmatch(r"[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:[0-2][0-9]|3[01])[0-9]{3}[0-9x]", value) or "身份证" in text[max(0, m.start() - 8):m.start()]:
            add(m.start(), m.end(), "national_id", value)
    for m in _BANK.finditer(sh):
        value = normalise(m.group(0))
        if 16 <= len(value) <= 19:
            add(m.start(), m.end(), "bank_account", value)
    for m in _MOBILE.finditer(sh):
        value = normalise(m.group(0))
        value = value[2:] if len(value) == 13 and value.startswith("86") else value
        add(m.start(), m.end(), "phone", value)
    for m in _PHONE_IN_GROUPS.finditer(sh):  # 一五八 后面零六七一 再后面三三二九: one mobile read out in groups
        value = re.sub(r"[^0-9]", "", m.group(0))
        if len(value) == 11 and value[1] in "3456789":
            add(m.start(), m.end(), "phone", value)
    for m in _PHONE_TAIL.finditer(sh):  # 尾号是4471: part of a number still points at its owner
        add(m.start(1), m.end(1), "phone", m.group(1), cue_start=m.start())
    for m in _LANDLINE.finditer(sh):
        add(m.start(), m.end(), "phone", normalise(m.group(0)))
    for m in _PLATE.finditer(sh):
        add(m.start(), m.end(), "plate", normalise(m.group(0)))
    for m in _HANDLE.finditer(text):
        g = 1 if m.group(1) else 2
        add(m.start(g), m.end(g), "handle", m.group(g).lower(), cue_start=m.start())
    return found


_NAME_CUE = re.compile(
    r"(本人[，,](?=[\u4e00-\u9fff]{2,3}[，,。]|[\u4e00-\u9fff]{2,3}$)|我是[^。！？!?\n]{0,20}?[，,]叫(?!我)[，,]?|我叫|我的?名字(?:是|叫)|名字写的是|我姓名|本人姓名[:：]?|姓名[:：]|本人叫|本人是|本人|我是|举报人(?:是|为|[:：])?[，,]?|联系人(?:是|为|[:：])?[，,]?|"
    r"是我[，,]?叫|我[（(]|我家[^。！？!?\n]{0,16}户主(?:是|叫)?|我在(?:抖音|快手|微博|小红书|微信|QQ|qq|群)(?:上|里)?的(?:名字|昵称|网名|ID|id)(?:叫|是)?|大家都?叫我|都叫我|叫我|我网名叫?|网名[:：]?|我外号叫?|"
    r"我(?:妈妈?|爸爸?|母亲|父亲|老公|老婆|爱人|儿子|女儿|奶奶|爷爷|外婆|姥姥|哥哥?|姐姐?|弟弟?|妹妹?)(?:叫|是)?)\s*"
)
_SELF_SURNAME = re.compile(r"(?:(?:我|本人|举报人)|(?:(?<=[，,])|^))姓([\u4e00-\u9fff])(?=[，,。！!\s啊呀哦嘛吧呢哈的]|$|[，,]?[叫名])")
_HONORIFIC = r"(?:先生|女士|小姐|阿姨|大姐|大哥|师傅|老师|老板|某某|某)"
_ROLE_WORDS = (
    "老板娘|老板|店主|校长|院长|园长|村长|村支书|书记|主任|会计|出纳|经理|保安|门卫|司机|老师|医生|护士|厨师|店员|收银员|网格员|楼长|"
    "组长|队长|所长|站长|社长|厂长|班主任|物业|居委会|村委|村干部|支书|管理员|民警|辅警|协警|房东|前台|服务员|群主|环卫工|保洁|党员|"
    "药剂师|住户|业主|租户|志愿者|居民|村民|低保户|班长|网管|护工|护理员|保姆|月嫂|家政|钟点工|快递员|外卖员|骑手|店长|营业员|导购|"
    "理发师|电工|木工|学徒|帮工|宿管|舍管|门岗|值班员|调度|收费员|售票员|乘务员|列车员|清洁工|搬运工|装卸工|家长"
)
_NO_NUMBER = r"(?:(?![0-9０-９]{5})[^，。！？!?；;\n])"
_SELF_ROLE = re.compile(
    r"(?:我是|本人是|本人系|我系|我就是|本人就是|我爸是|我妈是|我老公是|我老婆是)"
    r"(" + _NO_NUMBER + r"{0,24}?(?:" + _ROLE_WORDS + r")" + _NO_NUMBER + r"{0,6}?)(?=[，。！？!?；;,\n 我]|$)"
    r"|(?:我是|本人是|本人系|我就是)(" + _NO_NUMBER + r"{1,20}的" + _NO_NUMBER + r"{0,6})(?=[，。！？!?；;,\n 我]|$)"
    r"|(?:我是|本人是)((?:她|他)(?:妈妈?|爸爸?|女儿|儿子|孙子|孙女|老公|老婆|爱人|前妻|前夫|前女友|前男友|女朋友|男朋友|对象|媳妇|丈夫|妻子|家属|家人|邻居|同事|朋友|亲戚|同学|老师|姑姑|姑妈|舅舅|舅妈|叔叔|婶婶|阿姨|姨妈|伯伯|表哥|表姐|表弟|表妹|堂哥|堂姐|哥哥|姐姐|弟弟|妹妹|奶奶|爷爷|外婆|外公|班主任)(?:[\u4e00-\u9fff]{2,3}(?=[，,。！!]))?)"
    r"|我们(?:厂|公司|单位|学校|医院|店|超市|酒店|工地|村|小区|社区|镇|班|楼)[（(]([^)）]{2,20})[)）]"
)
_FAMILY_PLACE = re.compile(
    r"我(?:的)?(?:儿子|女儿|孩子|老公|老婆|爱人|妈妈?|爸爸?)(?:[^。！？!?\n]{0,12}?[，,])?(?:[\u4e00-\u9fff]{2,3})?(?:在|是)([^，。！？!?；;\n]{2,20}?(?:上班|工作|读书|上学|班|年级|学校|小学|中学|幼儿园|医院|厂|公司|摊|摊位|档口|铺子)[^，。！？!?；;\n]{0,8})"
)
_SELF_WORKPLACE = re.compile(
    r"(?:我|本人)(?:[^，。！？!?；;\n]{0,8}[，,])?(?:平时|每天|一直|现在)?在(" + _NO_NUMBER + r"{2,20}?)"
    r"(?:上班|上夜班|上白班|工作|打工|干活|开挖机|开车|开店|开了|值班|值夜班|实习|看店|看门|上学|摆摊|卖菜|当|做|读)"
)
_HOME = re.compile(
    r"(?:我家住在?|我家就?在|我家是|我住在?|本人住址?在?|本人家住|家住|住址(?:是|[:：])?|我的地址(?:是|[:：])?|我们家在|我就住在?|"
    r"(?:收货|收件)?地址(?:是|[:：])?(?:我家[，,]?)?|我?(?:的)?(?:房间号|门牌号|房号)(?:是|[:：])?|(?:(?<=[，,])|^)住在?)\s*"
    r"([^，。！？!?；;\n]{2,40})"
)
_ADDRESS_WORD = re.compile(r"[省市县区镇乡村路街巷弄号栋幢楼室单元小区苑园府庭大厦公寓组社区0-9０-９]")
_NICK = re.compile(r"(?:阿|小|老)[\u4e00-\u9fff]")
_CONTINUATION = re.compile(
    r"[，,]\s*((?:" + _NO_NUMBER + r"{1,8}的|叫[\u4e00-\u9fff]{2,3}|是" + _NO_NUMBER + r"{2,12}|(?:" + _ROLE_WORDS + r")"
    r"|住[^，。！？!?；;,\n]{1,16}|[^，。！？!?；;,\n]{2,14}(?:号|室|组|栋|幢|楼)|就?在" + _NO_NUMBER + r"{1,20}"
    r"|男|女|[0-9一二三四五六七八九十]{1,3}岁|今年[0-9一二三四五六七八九十]{1,3}岁?))(?=[，。！？!?；;,\n]|$)"
)
_SELF_PLACE_CLAUSE = re.compile(
    r"(?:(?<=[，,。！？!?；;\n])|^)\s*((?:我|本人)(?:家|们家|自己|也|就|平时|每天|一直|现在|目前|今年|那个|这个|的|店|摊位?|铺子?|档口|门面)*(?:是|在|住|系|做|当|开|上)"
    r"[^，,。！？!?；;\n]{0,24}?(?:站|店|厂|公司|学校|学院|大学|中学|小学|医院|村|组|小区|社区|超市|工地|酒店|宾馆|饭店|单位|局|所|队|院|馆|"
    r"园|楼|栋|幢|室|路|街|巷|镇|年级|班|家|户|号|摊|市场|门口|路口|下游|上游|边上|旁边|对面|隔壁|附近|" + _ROLE_WORDS + r")[^，,。！？!?；;\n]{0,10})(?=[，,。！？!?；;\n]|$)"
)
_SELF_NICKNAME = re.compile(
    r"(?:我是|我就是|本人是)[^，。！？!?；;\n]{0,24}?((?<=[\u4e00-\u9fff])[\u4e00-\u9fff]{1,10}?的)(?=[，,\s]?(?:阿|小|老)[\u4e00-\u9fff])"
    r"|(?:(?<=(?<!他)(?<!她)的)|(?<=(?<!他)(?<!她)的[，,\s]))((?:阿|小|老)[\u4e00-\u9fff])(?=[啊呀呢，,。！!\s就]|$)"
    r"|(?:(?<=[，,。！!\n])|^)\s*((?:阿|小|老)[" + "".join(sorted(_SURNAMES)) + r"])\s*(?=[。！!]?\s*$)"
)
_NOT_NICKNAMES = {"老师", "老板", "老公", "老婆", "老人", "老乡", "老家", "小孩", "小区", "小学", "小卖", "老大", "阿姨", "小姐", "老兵"}
_SIGNATURE = re.compile(r"(?:——|--|—|－－|落款|署名|签名)\s*[:：]?\s*([^—\n]{1,30}?)\s*$")
_OWN_SHOP = re.compile(  # 我店叫“阿峰发艺” / 店名叫“好再来包子”: a shop named after the writer described themself
    r"(我(?:的|们|家)?(?:店|小店|摊|摊位|铺子|档口|门面|饭店|超市)|店名|招牌|门头)(?:名字?)?\s*(?:叫|是|为|[:：])\s*[“\"「『]?"
    r"([^”\"」』，,。！？!?；;\n\s]{2,12})"
)
_NAME_LABEL = re.compile(r"(?:(?<=[\s，,。！!])|^)(?:名字|姓名|称呼)(?:是|叫|为|[:：])?\s*")
_LAST_NAME = re.compile(r"(?:(?<=[，,\s])|^)([\u4e00-\u9fff]{2,3})[\s。！!.~～]*$")  # a bare name closing the text: a sign-off
_SELF_TRADE = re.compile(r"(?:我|本人)(?:就|也|是)?在((?:(?![0-9０-９]{5})[^，。！？!?；;\n\s]){1,12}?开[^，。！？!?；;\n\s]{1,8}?的)(?=[，。！？!?；;,\n ]|$)")
_HOME_CLAUSE = re.compile(
    r"(?:(?<=[，,。！!？?；;\n])|^)\s*([\u4e00-\u9fff]{0,8}(?:小区|花园|苑|公寓|新村|家园|府|庭|社区)[0-9一二三四五六七八九十]{1,3}(?:幢|栋|号楼|单元)(?:[0-9]{1,2}单元)?(?:[0-9]{3,4}(?:室|房)?)?)(?=[，,。！!？?；;\n]|$)"
)
_ONLY_ME = re.compile(r"(?:(?<=[，,。！!？?；;\n])|^)([^，,。！？!?；;\n]{0,8}(?:就我一|只有我一|只有我|就我)(?:户|家|个人?|人)[^，,。！？!?；;\n]{0,10})")
_EVENT_WORDS = re.compile(r"看到|看见|发现|听到|遇到|有人|接到|收到|被|骗|卖给|在卖|卖假|卖毒|买了|打人|打架|偷|抢|贩")


def _name_after(text: str, at: int) -> str | None:
    """A person's name or nickname starting at `at`, if what follows reads like one."""
    rest = text[at:at + 14]
    quoted = re.match(r"[“\"「『]([^”\"」』]{1,12})[”\"」』]", rest)
    if quoted:
        return quoted.group(1)
    m = re.match(r"[A-Za-z][A-Za-z0-9_]{1,15}", rest)
    if m:
        return m.group(0)
    if not rest or rest[0] in _NAME_STOP:
        return None
    m = re.match(r"([\u4e00-\u9fff])(" + _HONORIFIC + r")", rest)
    if m and rest[0] in _SURNAMES:
        return m.group(0)
    m = re.match(r"[\u4e00-\u9fff\*＊×Xx]{1,4}", rest)
    if not m:
        return None
    word = m.group(0)
    cut = next((i for i, ch in enumerate(word) if i >= 2 and ch in _NAME_STOP), len(word))
    word = word[:cut]
    if rest[0] in _SURNAMES or _NICK.match(word) or "某" in word or "*" in word:
        if len(word) >= 4 and rest[0] not in "欧司诸上夏皇东南西":
            word = word[:3]
        return word if len(word) >= 2 else None
    return None


def _people(text: str, category: str) -> list[Found]:
    """What the writer says about themself: names, family names, home, roles, workplaces and self-description clauses."""
    found: list[Found] = []
    for m in _NAME_CUE.finditer(text):
        cue = m.group(1)
        if category == "missing_person" and re.match(r"我(?:妈|爸|母|父|老公|老婆|爱人|儿子|女儿|奶奶|爷爷|外婆|姥姥|哥|姐|弟|妹)", cue):
            continue  # the missing family member is whom the police look for, not who reported
        name = _name_after(text, m.end())
        if not name:
            continue
        if cue in ("我是", "本人", "本人是") and not (name[0] in _SURNAMES or _NICK.match(name) or "某" in name or "*" in name):
            continue
        if cue == "我是":
            nxt = text[m.end() + len(name):m.end() + len(name) + 1]
            if nxt and nxt not in "，。,！!、；;（( 我住家电手微在今" and not re.search(_HONORIFIC + "$", name):
                continue
        quoted = text[m.end():m.end() + 1] in "“\"「『"
        start = m.end() + (1 if quoted else 0)
        found.append(Found(start, start + len(name), "name", name, "reporter", f"“{cue}”后的自称"))
    for m in _SELF_SURNAME.finditer(text):
        found.append(Found(m.start(1) - 1, m.end(1), "name", "姓" + m.group(1), "reporter", "自报姓氏"))
    for m in _SELF_ROLE.finditer(text):
        g = next(i for i in (1, 2, 3, 4) if m.group(i))
        found.append(Found(m.start(g), m.end(g), "role", m.group(g), "reporter", "能指认举报人的身份/职务"))
    for m in _FAMILY_PLACE.finditer(text):
        found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报人家人的单位/学校"))
    for m in re.finditer(r"(?:(?<=[，,。！!？?；;])|^)([^，,。！？!?；;\n]{0,12}(?:" + _ROLE_WORDS + r"))就?是我", text):
        found.append(Found(m.start(1), m.end(), "role", m.group(0), "reporter", "能指认举报人的身份/职务"))
    for m in re.finditer(r"(?:(?<=[，,])|^)([0-9]{3,4}(?:室|号房?)?)(?=[，,。！!]|$)", text):  # 我家…同一层，1502，我姓罗
        sentence = text[max(0, text.rfind("。", 0, m.start()) + 1):m.end() + 12]
        if re.search(r"我家|我住|我房|我姓|我叫|本人", sentence):
            found.append(Found(m.start(1), m.end(1), "address", m.group(1), "reporter", "举报人自己的门牌/房号"))
    for m in re.finditer(r"(?:不说了|不方便说|不透露|不说名字|不留名)[，,]\s*(就在[^，。！？!?；;\n]{2,20})", text):  # …不说了，就在X
        found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报人不愿透露、随后又点明的自己的位置"))
    for m in _SELF_PLACE_CLAUSE.finditer(text):  # a clause only about where the writer lives, works or studies
        if not _EVENT_WORDS.search(m.group(1)) and not re.search(r"[0-9]{5}|[A-Za-z]{3}|看|问|说|报|路过|经过|等", m.group(1)):
            found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报人描述自己住处/单位/身份的分句"))
    for m in re.finditer(r"(?:工作单位|就职于|任职于|单位是)\s*[:：]?\s*([^，,。！？!?；;\n]{2,24})", text):
        if attribute(text, m.start(1), m.end(1), "role", "", cue_start=m.start())[0] == "reporter" or "我" in text[max(0, m.start() - 12):m.start()]:
            found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报人的工作单位"))
    for m in _NAMED_AS_ME.finditer(text):
        found.append(Found(m.start(1), m.end(1), "name", m.group(1).strip(), "reporter", "“是我的名字”之前的称呼"))
    for m in re.finditer(r"我(?:是)?((?:开车|跑车|开出租|开货车|开滴滴|跑运输|跑网约车|送快递|送外卖|跑外卖)的)", text):
        found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报人的职业"))
    for m in _STAFF_NO.finditer(text):
        found.append(Found(m.start(), m.end(), "role", m.group(0), "reporter", "工号等能指认举报人的编号"))
    for m in _SELF_WORKPLACE.finditer(text):
        found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报人的工作单位"))
    for m in _HOME.finditer(text):
        place = m.group(1)
        if not _ADDRESS_WORD.search(place) or re.match(r"^(附近|旁边|对面|楼下|楼上|隔壁|哪)", place):
            continue
        after_self = any(0 <= m.start() - f.end <= 2 for f in found)
        line_start = m.start() == 0 or text[m.start() - 1] == "\n"
        if not re.match(r"(我|本人|家住|住)", m.group(0)) and "我" not in m.group(0) and not after_self and not line_start:
            owner, _ = attribute(text, m.start(1), m.end(1), "address", "", cue_start=m.start())
            if owner != "reporter":
                continue
        found.append(Found(m.start(1), m.end(1), "address", place, "reporter", "举报人自己的住址"))
    for m in re.finditer(r"([\u4e00-\u9fff])(先生|女士|小姐)", text):  # 李先生 (a sign-off or the caller)
        clause = re.split(r"[，,。！？!?；;]", text[max(0, m.start() - 12):m.start()])[-1]
        if m.group(1) in _SURNAMES and _nearest_cue(clause) != "suspect":
            found.append(Found(m.start(), m.end(), "name", m.group(0), "reporter", "先生/女士称呼，不是嫌疑人的即按举报人隐去"))
    for m in _SELF_NICKNAME.finditer(text):  # 我是加油站值夜班的小林 / ——凤溪小区9幢 老周
        g = m.lastindex or 1
        clause = re.split(r"[，,。！？!?；;\n]", text[:m.start(g)].rstrip("，, "))[-1]
        if g == 2 and (not re.search(r"我是|我就是|本人是", clause) or m.group(2) in _NOT_NICKNAMES):
            continue  # 对方自称是我儿子的老师: a word, not what the writer calls themself
        found.append(Found(m.start(g), m.end(g), "role" if m.group(g).endswith("的") else "name", m.group(g), "reporter", "举报人对自己的称呼/描述"))
    for m in _SIGNATURE.finditer(text):
        found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报末尾的署名"))
    for m in _HOME_CLAUSE.finditer(text):  # 城关花园6幢302 standing alone: a home, the writer's unless said otherwise
        clause = re.split(r"[，,。！？!?；;\n]", text[:m.start()])[-1]
        if _nearest_cue(clause) != "suspect" and not re.search(r"他|她|对方|嫌疑|那家", text[max(0, m.start() - 6):m.start()]):
            found.append(Found(m.start(1), m.end(1), "address", m.group(1), "reporter", "单独写出的小区楼栋门牌，按举报人住址隐去"))
    for m in _ONLY_ME.finditer(text):
        found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "“就我一户/只有我”能指认举报人"))
    for m in _SELF_TRADE.finditer(text):  # 我在河边开小卖部的
        found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "举报人自己的营生"))
    for m in _OWN_SHOP.finditer(text):
        if m.group(1).startswith("我") or _nearest_cue(_sentence_prefix(text, m.start())) == "reporter":
            found.append(Found(m.start(2), m.end(2), "role", m.group(2), "reporter", "举报人自己的店名"))
    for m in _NAME_LABEL.finditer(text):  # 名字罗慧琴 after the writer's own contact (a missing person's name stays)
        name, prefix = _name_after(text, m.end()), _sentence_prefix(text, m.start())
        if name and category != "missing_person" and _nearest_cue(prefix) == "reporter" and not _FAMILY.search(prefix):
            found.append(Found(m.end(), m.end() + len(name), "name", name, "reporter", "“名字/姓名”后的称呼"))
    if (m := _LAST_NAME.search(text)) and m.group(1)[0] in _SURNAMES and re.search(r"[，,0-9A-Za-z]$", text[:m.start(1)].rstrip()):
        sentence = _sentence_prefix(text, m.start())
        before = re.split(r"[，,]", sentence.rstrip("，, "))[-1]  # 户名，马晓琳 / 收款人，王某: the label's person, not a sign-off
        if re.search(r"我|本人", sentence) and not re.search(r"(?:名|人|者|主|方)$", before) and _nearest_cue(before) != "suspect":
            found.append(Found(m.start(1), m.end(1), "name", m.group(1), "reporter", "举报末尾单独写出的姓名（落款）"))
    return found + _continuations(text, [f.end for f in found])


def _continuations(text: str, ends: list[int]) -> list[Found]:
    """Short clauses right after something the writer said of themself describe the writer too."""
    found = []
    for end in ends:
        while (m := _CONTINUATION.match(text, end)) and not _EVENT_WORDS.search(m.group(1)):
            found.append(Found(m.start(1), m.end(1), "role", m.group(1), "reporter", "紧接自我介绍的自我描述"))
            end = m.end(1)
    return found


def find_identifiers(text: str, category: str) -> list[Found]:
    """Every identifier in one text with its owner, longest first where they overlap."""
    read = _reading(text)
    people = [
        Found(f.start, f.end, f.kind, text[f.start:f.end] if f.kind != "name" or f.value.startswith("姓") or len(f.value) == f.end - f.start else f.value,
              f.owner, f.reason)
        for f in _people(read, category)
    ]
    numbers = [
        Found(f.start, f.end, f.kind, text[f.start:f.end].lower() if f.kind == "handle" else f.value, f.owner, f.reason)
        for f in _numbers(read, read, category, tuple(f.end for f in people))
    ]
    items = people + numbers + _continuations(read, [f.end for f in numbers if f.owner == "reporter"])
    for f in numbers:  # 李先生 13605798899: a courtesy name right before the reporter's own contact is theirs
        if f.owner == "reporter" and (m := _HONORIFIC_NAME.search(read[max(0, f.start - 8):f.start])) and m.group(1)[0] in _SURNAMES:
            at = max(0, f.start - 8) + m.start(1)
            items.append(Found(at, at + len(m.group(1)), "name", text[at:at + len(m.group(1))], "reporter", "紧挨举报人联系方式的称呼"))
    items.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Found] = []
    for f in items:
        outer = next((k for k in reversed(kept) if f.start < k.end), None)
        if outer is None or (f.owner == outer.owner == "reporter" and f.kind != outer.kind):
            kept.append(f)  # an address or name inside a self-description is also known by itself
        elif f.owner == "reporter" and outer.owner == "suspect":
            kept[kept.index(outer)] = f
    return kept


# --- masking for display ---------------------------------------------------------------------------------------

def mask(kind: str, raw: str) -> str:
    """How a removed identifier is shown to the analyst: enough to recognise, not to copy."""
    s = raw.strip()
    if kind in ("phone", "national_id", "bank_account", "qq") and len(s) > 7:
        return s[:3] + "*" * (len(s) - 7) + s[-4:]
    if kind in ("name",):
        return s[0] + "*" * (len(s) - 1)
    if len(s) <= 2:
        return s[0] + "*"
    return s[:2] + "*" * min(len(s) - 2, 8)


# --- drafting -------------------------------------------------------------------------------------------------

_RESIDUE = re.compile(  # what is left of a clause that only introduced the reporter (我叫〔已隐去〕，电话〔已隐去〕)
    r"^(?:[\s，,。.！!：:、；;（）()]|我叫|我是|我姓|本人|我的|我|的|名字|姓名|叫|是|电话|手机号?|号码|微信|QQ|qq|邮箱|联系方式|联系电话|"
    r"联系人|举报人|有事|随时|可以|请|就行|就好|回电|回拨|打|联系|找|加|留个?|住在|家住|我家住?|住址|在|同号|身份证号?|号|码|谢谢|"
    r"方便|如需核实|需要|核实|核对|" + re.escape(PLACEHOLDER) + r")*$"
)


def _redact(text: str, items: list[Found], reporter_values: dict[str, str], reporter_names: dict[str, str]) -> str:
    """The text with the reporter's identifiers replaced, and clauses left with nothing but the cue dropped."""
    spans = [(f.start, f.end) for f in items if f.owner == "reporter" or f.value in reporter_values]
    merged: list[list[int]] = []
    for s, e in sorted(spans):  # nested or overlapping spans become one
        if merged and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, last = [], 0
    for s, e in merged:
        out.append(text[last:s])
        out.append(PLACEHOLDER)
        last = e
    out.append(text[last:])
    redacted = "".join(out)
    for name in sorted(reporter_names, key=len, reverse=True):
        if len(name) >= 2:
            redacted = redacted.replace(name, PLACEHOLDER)
    clauses = re.split(r"(?<=[，,。！？!?；;\n])", redacted)
    kept = "".join(c for c in clauses if not (PLACEHOLDER in c and _RESIDUE.match(c)))
    return re.sub(r"[，,、]+(?=[。！？!?；;]|$)", "", kept)


def _bigrams(s: str) -> set[str]:
    """Character pairs of a sentence, for spotting a near-repeat."""
    return {s[i:i + 2] for i in range(len(s) - 1)}


def draft(category: str, tips: list[TipText]) -> PoliceDraft:
    """The police summary of a case from its tips, with the removals the analyst is shown."""
    found = [find_identifiers(t.text, category) for t in tips]
    reporter_values = {f.value: f.kind for items in found for f in items if f.owner == "reporter" and f.kind not in ("name", "role", "address")}
    reporter_names = {
        f.value: f.kind for items in found for f in items
        if f.owner == "reporter" and ((f.kind == "name" and len(f.value) >= 2) or (f.kind in ("address", "role") and len(f.value) >= 4))
    }
    suspect_values = {f.value for items in found for f in items if f.owner == "suspect"} - set(reporter_values)
    removals: list[Removal] = []
    seen: set[tuple[str, str]] = set()
    for items in found:
        for f in items:
            if f.owner == "reporter" or f.value in reporter_values:
                key = (f.kind, f.value)
                if key not in seen:
                    seen.add(key)
                    reason = f.reason if f.owner == "reporter" else "同一号码在本案其他线索中是举报人的"
                    removals.append(Removal(f.kind, mask(f.kind, f.value), f"{KIND_NAMES[f.kind]}：{reason}"))
    bodies = [_redact(t.text, items, reporter_values, reporter_names) for t, items in zip(tips, found, strict=True)]
    sentences = merge_sentences(bodies)
    place = next((t.place_text for t in tips if t.place_text), None)
    if place is not None and (informant_leaks(place, category, reporter_values, reporter_names) or _is_reporter_home(place, found)):
        removals.append(Removal("address", mask("address", place), "住址：地点描述是举报人自己的住处，不随案移交"))
        place = None
    seen_at = min((t.seen_at for t in tips if t.seen_at), default=None)
    head = [f"【{CATEGORY_NAMES.get(category, category)}】"]
    if seen_at:
        head.append(f"时间：{seen_at.astimezone(CHINA):%Y-%m-%d %H:%M}（北京时间）；")
    if place:
        head.append(f"地点：{place}；")
    head.append(f"线索{len(tips)}条。")
    summary = "".join(head) + "".join(sentences)
    return PoliceDraft(summary[:MAX_SUMMARY_CHARS], removals, place, reporter_values, reporter_names, suspect_values)


def merge_sentences(texts: list[str]) -> list[str]:
    """The sentences of all tips in order, each said once (a near-repeat of an earlier one is left out)."""
    kept: list[tuple[str, set[str]]] = []
    out: list[str] = []
    for t in texts:
        for sentence in re.split(r"(?<=[。！？!?\n])", t):
            sentence = sentence.strip()
            core = re.sub(r"[\s，,。.！!？?、；;：:]", "", sentence)
            if len(core.replace(PLACEHOLDER, "")) < 2:
                continue
            grams = _bigrams(core)
            if any(core in c or (grams and len(grams & g) / len(grams | g) > 0.7) for c, g in kept):
                continue
            kept.append((core, grams))
            out.append(sentence if sentence[-1] in "。！？!?" else sentence + "。")
    return out


def _is_reporter_home(place: str, found: list[list[Found]]) -> bool:
    """Whether the place text given with the tips is the reporter's own address or self-described place."""
    core = re.sub(r"\s", "", place)
    homes = [re.sub(r"\s", "", f.value) for items in found for f in items if f.kind in ("address", "role")]
    return any(h and (h in core or core in h) and len(core) >= 4 for h in homes)


def informant_leaks(
    text: str, category: str, reporter_values: dict[str, str] | None = None, reporter_names: dict[str, str] | None = None,
    suspect_values: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """The kinds of informant identifier in `text` (an analyst's edited summary): known ones of the case or self-described."""
    reporter_values = reporter_values or {}
    kinds: list[str] = []
    for f in find_identifiers(text, category):
        if f.value in suspect_values and f.value not in reporter_values:
            continue
        if f.owner == "reporter" or f.value in reporter_values:
            kinds.append(f.kind)
    norm = normalise(text)
    kinds.extend(kind for value, kind in reporter_values.items() if len(value) >= 5 and value in norm)
    kinds.extend(kind for phrase, kind in (reporter_names or {}).items() if phrase in text)
    if re.search(r"(举报人|报料人|线人|知情人|联系人)(?:是|为|[:：（(])?\s*[\u4e00-\u9fff]{0,1}[\u4e00-\u9fff*]{1,3}(?:先生|女士)?(?:[，,（(]|电话|手机)", text) and not re.search(
        r"(举报人|报料人|线人|知情人|联系人)(称|说|反映|表示|报称|看到|发现|听到|介绍)", text
    ):
        kinds.append("name")
    return list(dict.fromkeys(kinds))
