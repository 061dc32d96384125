"""微心愿 through the domain functions: every transition, allowed and refused, and who may do it."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from config import DEFAULTS
from models import DomainError, Forbidden, Member, OutboxMessage
from models.points import balance
from models.wishes import (
    CLAIMED,
    DONE,
    FULFILLED,
    OPEN,
    PENDING,
    REFUSED,
    WITHDRAWN,
    NewWish,
    Wish,
    WishPhoto,
    attach_photo,
    beneficiary_of,
    claim_wish,
    confirm_wish,
    fulfil_wish,
    guess_category,
    list_open_wishes,
    my_wishes,
    post_wish,
    propose_wish,
    release_overdue_claims,
    release_wish,
    remind_due_claims,
    return_wish,
    review_wish,
    wish_history,
    withdraw_wish,
)
from scheduler.wish_jobs import release_overdue_wishes, remind_wish_deadlines
from tests.conftest import SECOND_BRANCH, Person

NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


@pytest.fixture
def people(cast, session):
    """A branch secretary, an admin at the street, a secretary of another community, members."""
    made = cast(sec=cast.sec.bound(), admin=cast.admin.bound(), west=cast.zhou.bound("o-west"),
                a=Person("王党员", "13800000013", grid="东湖一网格", openid="o-a"), b=cast.zhao.bound("o-b"),
                c=cast.liu.but(org=SECOND_BRANCH).bound("o-c"),
                resident=Person("孙大妈", "13800000014", kind="群众", role="志愿者", openid="o-res"))
    return {key: session.get(Member, m.id) for key, m in made.items()}


def post(session, people, **kw):
    kw.setdefault("beneficiary_name", "王奶奶")
    kw.setdefault("beneficiary_address", "东湖小区3栋2单元501")
    kw.setdefault("beneficiary_phone", "13912345678")
    return post_wish(session, people["sec"], NewWish.of("修水龙头", "厨房水龙头漏水", **kw), now=NOW)


def outbox_to(session, member):
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member.id)))


def test_secretary_posts_an_open_wish_with_history(session, people):
    wish = post(session, people, points=15)
    assert (wish.status, wish.points, wish.category) == (OPEN, 15, "维修")
    [event] = wish_history(session, wish.id)
    assert (event.action, event.from_status, event.to_status, event.actor_id) == ("发布", None, OPEN,
                                                                                 people["sec"].id)


@pytest.mark.parametrize("who", ["a", "c"])
def test_members_cannot_post_directly(session, people, who):
    with pytest.raises(Forbidden, match="提交心愿"):
        post_wish(session, people[who], NewWish("修水龙头"), now=NOW)


def test_secretary_posts_only_in_their_subtree(session, people):
    with pytest.raises(Forbidden):
        post_wish(session, people["west"], NewWish("修水龙头", org_id=people["sec"].org_id), now=NOW)


def test_a_proposal_waits_for_the_secretary_and_notifies_them(session, people):
    wish = propose_wish(session, people["resident"], "家里的灯坏了，希望有人帮忙换一下", now=NOW)
    assert wish.status == PENDING
    assert wish.beneficiary_member_id == people["resident"].id
    [notice] = outbox_to(session, people["sec"])
    assert f"#{wish.id}" in notice.body and notice.kind == "wish"
    with pytest.raises(DomainError, match="尚未通过审核"):
        claim_wish(session, people["a"], wish.id, now=NOW)


@pytest.mark.parametrize("who", ["a", "west"])
def test_only_a_manager_above_reviews(session, people, who):
    wish = propose_wish(session, people["resident"], "想要一套学习用书", now=NOW)
    with pytest.raises(Forbidden):
        review_wish(session, people[who], wish.id, True, now=NOW)
    assert session.get(Wish, wish.id).status == PENDING


def test_approve_opens_and_tells_the_poster(session, people):
    wish = propose_wish(session, people["resident"], "想要一套学习用书", now=NOW)
    assert review_wish(session, people["admin"], wish.id, True, now=NOW).status == OPEN
    assert any("已通过审核" in m.body for m in outbox_to(session, people["resident"]))
    with pytest.raises(DomainError, match="无法审核"):
        review_wish(session, people["sec"], wish.id, True, now=NOW)


def test_turning_down_needs_a_reason(session, people):
    wish = propose_wish(session, people["resident"], "想要一台电视", now=NOW)
    with pytest.raises(DomainError, match="理由"):
        review_wish(session, people["sec"], wish.id, False, "", now=NOW)
    wish = review_wish(session, people["sec"], wish.id, False, "不属于微心愿范围", now=NOW)
    assert wish.status == REFUSED
    assert any("不属于微心愿范围" in m.body for m in outbox_to(session, people["resident"]))


def test_claim_sets_the_deadline_and_tells_the_secretary(session, people):
    wish = post(session, people)
    wish = claim_wish(session, people["a"], wish.id, now=NOW, settings=DEFAULTS.replace(WISH_FULFIL_DAYS=14))
    assert (wish.status, wish.claimer_id, wish.claim_count) == (CLAIMED, people["a"].id, 1)
    assert wish.fulfil_by == NOW + timedelta(days=14)
    [notice] = outbox_to(session, people["sec"])
    assert "王党员" in notice.body and f"#{wish.id}" in notice.body


def test_a_claimed_wish_cannot_be_claimed_again(session, people):
    wish = post(session, people)
    claim_wish(session, people["a"], wish.id, now=NOW)
    with pytest.raises(DomainError, match="已被认领") as refused:
        claim_wish(session, people["b"], wish.id, now=NOW)
    assert refused.value.code == "already_claimed"
    with pytest.raises(DomainError, match="您已认领"):
        claim_wish(session, people["a"], wish.id, now=NOW)
    assert [e.action for e in wish_history(session, wish.id)] == ["发布", "认领"]


def test_nobody_claims_their_own_wish(session, people):
    wish = propose_wish(session, people["resident"], "想请人陪我去医院复诊", now=NOW)
    review_wish(session, people["sec"], wish.id, True, now=NOW)
    with pytest.raises(DomainError, match="本人"):
        claim_wish(session, people["resident"], wish.id, now=NOW)


def test_open_claims_are_limited(session, people):
    wishes = [post(session, people) for _ in range(3)]
    two = DEFAULTS.replace(WISH_MAX_OPEN_CLAIMS=2)
    claim_wish(session, people["a"], wishes[0].id, now=NOW, settings=two)
    claim_wish(session, people["a"], wishes[1].id, now=NOW, settings=two)
    with pytest.raises(DomainError, match="2 个未完成") as refused:
        claim_wish(session, people["a"], wishes[2].id, now=NOW, settings=two)
    assert refused.value.code == "too_many_claims"
    # A fulfilled-but-unconfirmed claim still counts; a confirmed one frees a place.
    fulfil_wish(session, people["a"], wishes[0].id, now=NOW)
    with pytest.raises(DomainError, match="未完成"):
        claim_wish(session, people["a"], wishes[2].id, now=NOW, settings=two)
    confirm_wish(session, people["sec"], wishes[0].id, now=NOW)
    assert claim_wish(session, people["a"], wishes[2].id, now=NOW, settings=two).status == CLAIMED


def test_only_the_claimer_releases(session, people):
    wish = post(session, people)
    claim_wish(session, people["a"], wish.id, now=NOW)
    with pytest.raises(Forbidden):
        release_wish(session, people["b"], wish.id, now=NOW)
    with pytest.raises(Forbidden):
        release_wish(session, people["sec"], wish.id, now=NOW)
    wish = release_wish(session, people["a"], wish.id, now=NOW)
    assert (wish.status, wish.claimer_id, wish.fulfil_by) == (OPEN, None, None)
    # Released, it is open again for anyone.
    assert claim_wish(session, people["b"], wish.id, now=NOW).claim_count == 2


def test_only_the_claimer_fulfils(session, people):
    wish = post(session, people)
    with pytest.raises(Forbidden):
        fulfil_wish(session, people["a"], wish.id, now=NOW)
    claim_wish(session, people["a"], wish.id, now=NOW)
    with pytest.raises(Forbidden):
        fulfil_wish(session, people["b"], wish.id, now=NOW)
    wish = fulfil_wish(session, people["a"], wish.id, "已上门修好", now=NOW)
    assert (wish.status, wish.fulfil_note) == (FULFILLED, "已上门修好")
    assert any("已完成心愿" in m.body for m in outbox_to(session, people["sec"]))
    with pytest.raises(DomainError, match="无法提交完成"):
        fulfil_wish(session, people["a"], wish.id, now=NOW)


def fulfilled(session, people, claimer="a", **kw):
    wish = post(session, people, **kw)
    claim_wish(session, people[claimer], wish.id, now=NOW)
    return fulfil_wish(session, people[claimer], wish.id, "办好了", now=NOW)


@pytest.mark.parametrize("who", ["b", "c", "west"])
def test_confirm_is_refused_to_others(session, people, who):
    wish = fulfilled(session, people)
    with pytest.raises(Forbidden):
        confirm_wish(session, people[who], wish.id, now=NOW)
    assert session.get(Wish, wish.id).status == FULFILLED
    assert balance(session, people["a"].id) == 0


def test_the_claimer_cannot_confirm_their_own_fulfilment(session, people, make_member):
    wish = fulfilled(session, people, claimer="sec")
    with pytest.raises(Forbidden, match="自己"):
        confirm_wish(session, people["sec"], wish.id, now=NOW)
    assert confirm_wish(session, people["admin"], wish.id, now=NOW).status == DONE


@pytest.mark.parametrize("who", ["sec", "admin"])
def test_confirm_completes_and_credits_once(session, people, who):
    wish = fulfilled(session, people, points=12)
    wish = confirm_wish(session, people[who], wish.id, now=NOW)
    assert (wish.status, wish.confirmed_by_id, wish.completed_at) == (DONE, people[who].id, NOW)
    assert balance(session, people["a"].id) == 12
    assert any("获得 12 积分" in m.body for m in outbox_to(session, people["a"]))
    with pytest.raises(DomainError, match="无需重复确认") as again:
        confirm_wish(session, people["sec"], wish.id, now=NOW)
    assert again.value.code == "already_confirmed"
    assert balance(session, people["a"].id) == 12


def test_the_bound_beneficiary_confirms(session, people):
    wish = propose_wish(session, people["resident"], "想请人陪我去医院复诊", now=NOW)
    review_wish(session, people["sec"], wish.id, True, now=NOW)
    claim_wish(session, people["c"], wish.id, now=NOW)
    fulfil_wish(session, people["c"], wish.id, now=NOW)
    assert any(f"确认 #{wish.id}" in m.body for m in outbox_to(session, people["resident"]))
    assert confirm_wish(session, people["resident"], wish.id, now=NOW).status == DONE
    assert balance(session, people["c"].id) == 10


def test_return_sends_it_back_with_a_reason(session, people):
    wish = fulfilled(session, people)
    with pytest.raises(Forbidden):
        return_wish(session, people["b"], wish.id, "没修好", now=NOW)
    with pytest.raises(DomainError, match="理由"):
        return_wish(session, people["sec"], wish.id, "", now=NOW)
    wish = return_wish(session, people["sec"], wish.id, "还在漏水", now=NOW)
    assert (wish.status, wish.claimer_id) == (CLAIMED, people["a"].id)
    assert any("还在漏水" in m.body for m in outbox_to(session, people["a"]))
    fulfil_wish(session, people["a"], wish.id, "换了新的阀门", now=NOW)
    confirm_wish(session, people["sec"], wish.id, now=NOW)
    assert [e.action for e in wish_history(session, wish.id)] == [
        "发布", "认领", "完成", "驳回", "完成", "确认"]
    assert balance(session, people["a"].id) == 10


def test_withdraw_by_a_manager_tells_the_claimer(session, people):
    wish = post(session, people)
    claim_wish(session, people["a"], wish.id, now=NOW)
    with pytest.raises(Forbidden):
        withdraw_wish(session, people["a"], wish.id, now=NOW)
    with pytest.raises(Forbidden):
        withdraw_wish(session, people["west"], wish.id, now=NOW)
    assert withdraw_wish(session, people["sec"], wish.id, "受助人已搬走", now=NOW).status == WITHDRAWN
    assert any("已被撤回" in m.body for m in outbox_to(session, people["a"]))
    [last] = wish_history(session, wish.id)[-1:]
    assert (last.from_status, last.to_status, last.note) == (CLAIMED, WITHDRAWN, "受助人已搬走")


# The whole matrix: from each state, each operation by the person entitled to it.
def _to_state(session, people, state):
    if state in (PENDING, REFUSED):
        wish = propose_wish(session, people["resident"], "想要一个书包", now=NOW)
        if state == REFUSED:
            review_wish(session, people["sec"], wish.id, False, "重复", now=NOW)
        return wish.id
    wish = post(session, people)
    if state == WITHDRAWN:
        withdraw_wish(session, people["sec"], wish.id, now=NOW)
    if state in (CLAIMED, FULFILLED, DONE):
        claim_wish(session, people["a"], wish.id, now=NOW)
    if state in (FULFILLED, DONE):
        fulfil_wish(session, people["a"], wish.id, now=NOW)
    if state == DONE:
        confirm_wish(session, people["sec"], wish.id, now=NOW)
    return wish.id


OPERATIONS = {
    "approve": (lambda s, p, i: review_wish(s, p["sec"], i, True, now=NOW), OPEN),
    "claim": (lambda s, p, i: claim_wish(s, p["b"], i, now=NOW), CLAIMED),
    "release": (lambda s, p, i: release_wish(s, p["a"], i, now=NOW), OPEN),
    "fulfil": (lambda s, p, i: fulfil_wish(s, p["a"], i, now=NOW), FULFILLED),
    "confirm": (lambda s, p, i: confirm_wish(s, p["sec"], i, now=NOW), DONE),
    "return": (lambda s, p, i: return_wish(s, p["sec"], i, "不行", now=NOW), CLAIMED),
    "withdraw": (lambda s, p, i: withdraw_wish(s, p["sec"], i, now=NOW), WITHDRAWN),
}
ALLOWED = {
    PENDING: {"approve", "withdraw"},
    OPEN: {"claim", "withdraw"},
    CLAIMED: {"release", "fulfil", "withdraw"},
    FULFILLED: {"confirm", "return", "withdraw"},
    DONE: set(), WITHDRAWN: set(), REFUSED: set(),
}


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_transition_matrix(session, people, state, operation):
    wish_id = _to_state(session, people, state)
    run, target = OPERATIONS[operation]
    events = len(wish_history(session, wish_id))
    if operation in ALLOWED[state]:
        assert run(session, people, wish_id).status == target
        assert len(wish_history(session, wish_id)) == events + 1
    else:
        with pytest.raises(DomainError, match=f"#{wish_id}"):
            run(session, people, wish_id)
        session.expire_all()
        assert session.get(Wish, wish_id).status == state
        assert len(wish_history(session, wish_id)) == events


def test_the_beneficiary_is_masked_until_claimed(session, people):
    wish = post(session, people)
    seen = beneficiary_of(wish, people["a"])
    assert (seen["phone"], seen["masked"]) == ("139****5678", True)
    assert "501" not in seen["address"] and seen["name"].startswith("王")
    assert beneficiary_of(wish, people["sec"])["phone"] == "13912345678"
    assert beneficiary_of(wish, people["admin"])["phone"] == "13912345678"
    assert beneficiary_of(wish, people["west"])["masked"]
    wish = claim_wish(session, people["a"], wish.id, now=NOW)
    assert beneficiary_of(wish, people["a"])["address"] == "东湖小区3栋2单元501"
    assert beneficiary_of(wish, people["b"])["masked"]


def test_listing_puts_the_callers_community_first(session, people):
    west = post_wish(session, people["west"], NewWish("陪伴探访独居老人"), now=NOW)
    east = post(session, people)
    later = post_wish(session, people["west"], NewWish("送一袋米"), now=NOW + timedelta(hours=1))
    wishes, total = list_open_wishes(session, people["a"], per_page=2)
    assert total == 3 and [w.id for w in wishes] == [east.id, later.id]
    wishes, _ = list_open_wishes(session, people["west"], page=2, per_page=2)
    assert [w.id for w in wishes] == [east.id]
    assert {w.id for w in my_wishes(session, people["west"])} == {west.id, later.id}


def test_reminder_two_days_before_is_sent_once_per_claim(session, people):
    wish = post(session, people)
    claim_wish(session, people["a"], wish.id, now=NOW, settings=DEFAULTS.replace(WISH_FULFIL_DAYS=14))
    assert remind_due_claims(session, NOW + timedelta(days=11)) == 0
    assert remind_wish_deadlines(session, NOW + timedelta(days=12, hours=1)) == 1
    assert remind_wish_deadlines(session, NOW + timedelta(days=13)) == 0
    [notice] = outbox_to(session, people["a"])
    assert f"放弃 #{wish.id}" in notice.body


def test_overdue_claims_are_released_once_telling_claimer_and_secretary(session, people):
    wish = post(session, people)
    claim_wish(session, people["a"], wish.id, now=NOW, settings=DEFAULTS.replace(WISH_FULFIL_DAYS=14))
    secretary_before = len(outbox_to(session, people["sec"]))
    assert release_overdue_claims(session, NOW + timedelta(days=13)) == 0
    assert release_overdue_wishes(session, NOW + timedelta(days=14, seconds=1)) == 1
    assert release_overdue_wishes(session, NOW + timedelta(days=15)) == 0
    wish = session.get(Wish, wish.id, populate_existing=True)
    assert (wish.status, wish.claimer_id) == (OPEN, None)
    assert any("超过完成期限" in m.body for m in outbox_to(session, people["a"]))
    assert len(outbox_to(session, people["sec"])) == secretary_before + 1
    last = wish_history(session, wish.id)[-1]
    assert (last.action, last.actor_id) == ("超期释放", None)


def test_a_fulfilled_wish_is_not_released(session, people):
    wish = fulfilled(session, people)
    assert release_overdue_claims(session, NOW + timedelta(days=30)) == 0
    assert session.get(Wish, wish.id).status == FULFILLED


def test_a_photo_within_the_window_is_attached(session, people):
    wish = fulfilled(session, people)
    assert attach_photo(session, people["a"], "MEDIA1", now=NOW + timedelta(minutes=9)).id == wish.id
    assert attach_photo(session, people["b"], "MEDIA2", now=NOW + timedelta(minutes=1)) is None
    assert attach_photo(session, people["a"], "MEDIA3", now=NOW + timedelta(minutes=11)) is None
    assert [p.media_id for p in session.scalars(select(WishPhoto))] == ["MEDIA1"]


@pytest.mark.parametrize(("text", "category"), [
    ("修水龙头", "维修"), ("陪老人聊天", "陪伴探访"), ("买文具", "学习用品"), ("复诊接送", "就医出行"),
    ("一袋米", "生活用品"), ("其他事情", "其他")])
def test_category_is_guessed_from_the_text(text, category):
    assert guess_category(text) == category


def test_export_lists_the_subtree_for_managers_only(session, people):
    from io import BytesIO

    from openpyxl import load_workbook

    from models.wishes import EXPORT_COLUMNS, export_wishes

    east = post(session, people)
    claim_wish(session, people["a"], east.id, now=NOW)
    post_wish(session, people["west"], NewWish("送一袋米"), now=NOW)
    with pytest.raises(Forbidden):
        export_wishes(session, people["a"])
    sheet = load_workbook(BytesIO(export_wishes(session, people["sec"]))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == EXPORT_COLUMNS
    assert [(r[0], r[3], r[12]) for r in rows[1:]] == [(f"#{east.id}", CLAIMED, "王党员")]
    everything = load_workbook(BytesIO(export_wishes(session, people["admin"]))).active
    assert everything.max_row == 3


def test_a_proposal_is_seen_only_by_those_involved(session, people):
    from models import NotFound
    from models.wishes import view_wish

    wish = propose_wish(session, people["resident"], "想要一套学习用书", now=NOW)
    for who in ("resident", "sec", "admin"):
        assert view_wish(session, people[who], wish.id).id == wish.id
    for viewer in (people["a"], people["west"], None):
        with pytest.raises(NotFound):
            view_wish(session, viewer, wish.id)
    review_wish(session, people["sec"], wish.id, True, now=NOW)
    assert view_wish(session, None, wish.id).status == OPEN


def test_a_grid_head_publishes_directly_but_only_for_their_grid(session, people, make_member):
    head = session.get(Member, make_member("网格长甲", openid="o-head", grid="东湖一网格").id)
    with pytest.raises(Forbidden, match="提交心愿"):
        post_wish(session, head, NewWish("换灯泡"), now=NOW)  # not yet marked as the grid's head
    head.grid_head = True
    session.commit()
    wish = post_wish(session, head, NewWish("换灯泡", "楼道灯坏了"), now=NOW)
    assert (wish.status, wish.grid_id, wish.org_id) == (OPEN, head.grid_id, head.org_id)
    other_grid = session.get(Member, make_member("外网格", grid="东湖二网格").id)
    with pytest.raises(Forbidden, match="网格长只能在本网格"):
        post_wish(session, head, NewWish("换灯泡", grid_id=other_grid.grid_id), now=NOW)
    with pytest.raises(Forbidden, match="不在您的管理范围"):
        post_wish(session, head, NewWish.of("换灯泡", beneficiary_member_id=other_grid.id), now=NOW)


def test_a_grid_head_publishes_through_the_chatbot(session, make_member, wx):
    head = make_member("网格长乙", openid="o-head2", grid="东湖一网格")
    session.get(Member, head.id).grid_head = True
    session.commit()
    make_member("普通党员", openid="o-plain", grid="东湖一网格")
    posted = wx.text("o-head2", "发布心愿 修水龙头 王奶奶家厨房漏水").content
    assert posted.startswith("已发布心愿 #") and "等待认领" in posted
    refused = wx.text("o-plain", "发布心愿 修水龙头 厨房漏水").content
    assert "只有书记、网格长或管理员" in refused and "许愿" in refused


def test_refusals_name_no_command_and_the_chatbot_adds_its_example(session, people):
    from handlers.presenter import chat_text

    with pytest.raises(DomainError) as empty:
        propose_wish(session, people["resident"], "  ", now=NOW)
    wish = propose_wish(session, people["resident"], "想要一套学习用书", now=NOW)
    with pytest.raises(DomainError) as no_reason:
        review_wish(session, people["sec"], wish.id, False, "", now=NOW)
    review_wish(session, people["sec"], wish.id, True, now=NOW)
    claim_wish(session, people["a"], wish.id, now=NOW)
    fulfil_wish(session, people["a"], wish.id, now=NOW)
    with pytest.raises(DomainError) as no_return_reason:
        return_wish(session, people["sec"], wish.id, " ", now=NOW)
    number = f"#{wish.id}"
    for refused, message, chat in (
            (empty, "请写下心愿内容", "请写下心愿内容，例如：许愿 家里水龙头漏水，希望有人帮忙修一下"),
            (no_reason, "请写明不通过的理由", f"请写明不通过的理由，例如：审核 {number} 不通过 内容不属于微心愿范围"),
            (no_return_reason, "请写明驳回理由", f"请写明驳回理由，例如：驳回 {number} 水龙头仍在漏水")):
        # The API's words (the same code as before), then the chat's.
        assert (refused.value.message, refused.value.code) == (message, "domain_error")
        assert chat_text(refused.value) == chat
