"""The console's wishes pages: the to-do queues (待审核, 待确认) and the browse of the manager's
subtree, review / confirm / return through CSRF-protected forms (each action's effect in the
database and the outbox message the domain writes), a wish's detail with its beneficiary, history
and photos, the export, and refusals (another branch's wish, a plain member, a form without its
CSRF token, a wrong state)."""

import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Member
from models.outbox import OutboxMessage
from models.points import balance
from models.wishes import (
    CLAIMED,
    DONE,
    FULFILLED,
    OPEN,
    PENDING,
    REFUSED,
    Beneficiary,
    NewWish,
    Wish,
    WishPhoto,
    add_photo,
    claim_wish,
    fulfil_wish,
    post_wish,
    propose_wish,
)
from tests.conftest import COMMUNITY, OTHER_BRANCH, Person
from tests.console_activity_support import csrf_token, post_form

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def people(cast):
    return cast(sec=cast.sec.bound(), wang=cast.wang.but(grid="东湖一网格").bound(), zhao=cast.zhao.bound(),
                zhou=cast.zhou.bound(), sun=cast.sun.bound(),
                granny=Person("王奶奶", "13912345678", kind="群众", role="志愿者", grid="东湖一网格"))


def proposed(engine, who: Member, text: str = "家里水龙头漏水，希望有人帮忙修一下") -> int:
    """A wish `who` proposes (待审核)."""
    with Session(engine) as s:
        return propose_wish(s, s.get(Member, who.id), text).id


def fulfilled(engine, poster: Member, claimer: Member, title: str = "陪老人买菜", *, photo: str | None = None) -> int:
    """A wish `poster` publishes for 王奶奶, `claimer` claims and reports fulfilled (待确认)."""
    with Session(engine) as s:
        wish = post_wish(s, s.get(Member, poster.id), NewWish(
            title, "周六上午陪王奶奶去菜场", beneficiary=Beneficiary("王奶奶", "东湖小区3栋2单元101", "13912345678")))
        wish_id = wish.id
        claim_wish(s, s.get(Member, claimer.id), wish_id)
        if photo:
            add_photo(s, s.get(Member, claimer.id), wish_id, photo)
        fulfil_wish(s, s.get(Member, claimer.id), wish_id, "已陪王奶奶买好菜")
    return wish_id


def status_of(engine, wish_id: int) -> str:
    with Session(engine) as s:
        return s.get(Wish, wish_id).status


def told(engine, member: Member) -> list[str]:
    """The bodies of the outbox messages to `member`, oldest first."""
    with Session(engine) as s:
        return list(s.scalars(select(OutboxMessage.body).where(OutboxMessage.member_id == member.id)
                              .order_by(OutboxMessage.id)))


def test_the_queues_and_the_browse_hold_the_subtree_only(client, engine, people, console_login):
    mine = proposed(engine, people["zhao"])
    to_confirm = fulfilled(engine, people["sec"], people["wang"])
    elsewhere = proposed(engine, people["sun"], "西湖的灯坏了")
    their_fulfilled = fulfilled(engine, people["zhou"], people["sun"], "西湖修灯")
    with Session(engine) as s:  # another branch's wish open for anyone to claim
        post_wish(s, s.get(Member, people["zhou"].id), NewWish("西湖送米"))
    console_login(client, people["sec"])
    page = client.get("/console/wishes").get_data(as_text=True)
    queue = page.split('id="to-review"')[1].split('id="to-confirm"')[0]
    assert f'id="review-{mine}"' in queue and 'id="review-total">1<' in queue and "提交人：赵秀英" in queue
    confirm = page.split('id="to-confirm"')[1].split('id="browse"')[0]
    assert f'id="confirm-{to_confirm}"' in confirm and "认领人：王志强" in confirm
    assert 'id="confirm-total">1<' in confirm
    for other in (elsewhere, their_fulfilled):
        assert f"#{other}" not in page
    assert "西湖送米" not in page and "西湖" not in page.split('id="browse"')[1]  # public, yet not this subtree's
    assert "共 2 条" in page

    by_state = client.get("/console/wishes?status=待确认").get_data(as_text=True).split('id="browse"')[1]
    assert "陪老人买菜" in by_state and "家里水龙头漏水" not in by_state
    assert 'class="nav-link active" href="/console/wishes?status=%E5%BE%85%E7%A1%AE%E8%AE%A4"' in by_state


def test_review_approves_and_rejects_with_a_reason(client, engine, people, console_login):
    first, second = proposed(engine, people["zhao"]), proposed(engine, people["zhao"], "想要一本新华字典")
    console_login(client, people["sec"])
    approved = post_form(client, f"/console/wishes/{first}/review", {"decision": "approve"})
    assert approved.status_code == 302 and approved.headers["Location"] == "/console/wishes"
    assert f"心愿 #{first}「家里水龙头漏水，希望有人帮忙修一下」已通过审核" in client.get("/console/wishes").get_data(
        as_text=True)
    assert status_of(engine, first) == OPEN
    assert told(engine, people["zhao"])[-1] == (
        f"您提交的心愿 #{first}「家里水龙头漏水，希望有人帮忙修一下」已通过审核，等待志愿者认领。")

    no_reason = post_form(client, f"/console/wishes/{second}/review", {"decision": "reject", "reason": " "})
    assert no_reason.status_code == 400 and "请写明不通过的理由" in no_reason.get_data(as_text=True)
    assert 'id="reject-reason"' in no_reason.get_data(as_text=True)  # the form is there to try again
    assert status_of(engine, second) == PENDING
    rejected = post_form(client, f"/console/wishes/{second}/review",
                         {"decision": "reject", "reason": "请向社区图书室借阅"})
    assert rejected.status_code == 302 and status_of(engine, second) == REFUSED
    assert told(engine, people["zhao"])[-1] == (
        f"您提交的心愿 #{second}「想要一本新华字典」未通过审核：请向社区图书室借阅。")
    again = post_form(client, f"/console/wishes/{first}/review", {"decision": "approve"})  # a stale page
    assert again.status_code == 409
    assert f"心愿 #{first} 当前状态为「待认领」，无法审核。" in again.get_data(as_text=True)


def test_confirm_credits_the_claimer_once_and_return_sends_back(client, engine, people, console_login):
    wish_id = fulfilled(engine, people["sec"], people["wang"])
    other_id = fulfilled(engine, people["sec"], people["wang"], "帮忙换灯泡")
    console_login(client, people["sec"])
    detail = client.get(f"/console/wishes/{wish_id}").get_data(as_text=True)
    assert 'id="confirm-button"' in detail and "王志强 将获得 10 积分" in detail
    confirmed = post_form(client, f"/console/wishes/{wish_id}/confirm", {})
    assert confirmed.status_code == 302
    page = client.get("/console/wishes").get_data(as_text=True)
    assert f"已确认心愿 #{wish_id}「陪老人买菜」完成，王志强 获得 10 积分。" in page
    with Session(engine) as s:
        assert s.get(Wish, wish_id).status == DONE and s.get(Wish, wish_id).confirmed_by_id == people["sec"].id
        assert balance(s, people["wang"].id) == 10
    assert told(engine, people["wang"])[-1] == (
        f"您完成的心愿 #{wish_id}「陪老人买菜」已确认，获得 10 积分。感谢您的付出！")
    twice = post_form(client, f"/console/wishes/{wish_id}/confirm", {})
    assert twice.status_code == 409 and "已确认完成，积分已发放，无需重复确认" in twice.get_data(as_text=True)
    with Session(engine) as s:
        assert balance(s, people["wang"].id) == 10

    no_reason = post_form(client, f"/console/wishes/{other_id}/return", {"reason": ""})
    assert no_reason.status_code == 400 and "请写明驳回理由" in no_reason.get_data(as_text=True)
    returned = post_form(client, f"/console/wishes/{other_id}/return", {"reason": "照片看不清，请补充"})
    assert returned.status_code == 302 and status_of(engine, other_id) == CLAIMED
    assert told(engine, people["wang"])[-1].startswith(
        f"您提交完成的心愿 #{other_id}「帮忙换灯泡」被驳回：照片看不清，请补充。请在 ")
    assert 'id="confirm-button"' not in client.get(f"/console/wishes/{other_id}").get_data(as_text=True)


def test_a_secretary_who_claimed_a_wish_is_told_they_cannot_confirm_it(client, engine, people, console_login):
    wish_id = fulfilled(engine, people["sec"], people["sec"], "社区书记亲自认领")
    console_login(client, people["sec"])
    detail = client.get(f"/console/wishes/{wish_id}").get_data(as_text=True)
    assert 'id="confirm-button"' not in detail and 'id="return-button"' not in detail
    assert f'id="confirm-{wish_id}"' not in client.get("/console/wishes").get_data(as_text=True)
    refused = post_form(client, f"/console/wishes/{wish_id}/confirm", {})  # a crafted form
    assert refused.status_code == 403
    shown = refused.get_data(as_text=True).split('id="action-error"')[1]
    assert "不能确认自己完成的心愿，请由书记或受助人确认。" in shown
    with Session(engine) as s:
        assert s.get(Wish, wish_id).status == FULFILLED and balance(s, people["sec"].id) == 0


def test_the_detail_shows_the_beneficiary_the_history_and_the_photos(app, client, engine, people, console_login,
                                                                      tmp_path):
    app.extensions["settings"] = app.extensions["settings"].replace(WISH_PHOTO_DIR=str(tmp_path))
    name = "0123456789abcdef0123456789abcdef.png"
    (tmp_path / name).write_bytes(PNG)
    wish_id = fulfilled(engine, people["sec"], people["wang"], photo=f"upload:{name}")
    with Session(engine) as s:  # one sent through the Official Account, not fetched yet; one WeChat had lost
        s.add(WishPhoto(wish_id=wish_id, media_id="MEDIA-1", added_by_id=people["wang"].id))
        s.add(WishPhoto(wish_id=wish_id, media_id="gone:MEDIA-0", added_by_id=people["wang"].id))
        s.commit()
        upload, media, lost = s.scalars(select(WishPhoto.id).where(WishPhoto.wish_id == wish_id)
                                        .order_by(WishPhoto.id))
    console_login(client, people["sec"])
    page = client.get(f"/console/wishes/{wish_id}").get_data(as_text=True)
    assert 'id="wish-status">待确认<' in page and "周六上午陪王奶奶去菜场" in page and "已陪王奶奶买好菜" in page
    beneficiary = page.split('id="wish-facts"')[1].split("</dl>")[0]
    assert "王奶奶" in beneficiary and "13912345678" in beneficiary and "东湖小区3栋2单元101" in beneficiary
    history = page.split('id="history"')[1]
    assert re.search(r"发布</span>\s*<span[^>]*>待认领</span>\s*· 李红梅", history)
    assert "认领" in history and "已认领 → 待确认" in history and "王志强" in history
    assert f'src="/console/wishes/{wish_id}/photos/{upload}"' in page
    assert "照片 2：通过公众号发送，正在从微信取回，请稍后刷新。" in page and "照片 3：已无法从微信取回。" in page
    shown = client.get(f"/console/wishes/{wish_id}/photos/{upload}")
    assert shown.status_code == 200 and shown.data == PNG and shown.mimetype == "image/png"
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    missing = client.get(f"/console/wishes/{wish_id}/photos/{media}")
    assert missing.status_code == 404 and "正在从微信取回，请稍后再看" in missing.get_data(as_text=True)
    lost_page = client.get(f"/console/wishes/{wish_id}/photos/{lost}")
    assert lost_page.status_code == 404 and "已无法从微信取回" in lost_page.get_data(as_text=True)

    # Another branch's secretary: neither the wish nor its photo (the domain's photo_of refuses).
    console_login(client, people["zhou"])
    refused = client.get(f"/console/wishes/{wish_id}")
    assert refused.status_code == 404 and f"未找到心愿 #{wish_id}。" in refused.get_data(as_text=True)
    photo = client.get(f"/console/wishes/{wish_id}/photos/{upload}")
    assert photo.status_code == 403 and "可以查看照片" in photo.get_data(as_text=True) and photo.data != PNG


def test_a_proposal_is_reviewed_from_above_never_from_another_branch(client, engine, people, console_login,
                                                                      make_member):
    wish_id = proposed(engine, people["zhao"])
    console_login(client, people["zhou"])
    assert client.get(f"/console/wishes/{wish_id}").status_code == 404
    assert post_form(client, f"/console/wishes/{wish_id}/review", {"decision": "approve"}).status_code == 404
    assert status_of(engine, wish_id) == PENDING
    boss = make_member("陈书记", "13800000010", org=COMMUNITY, role="书记")  # the community above the branch
    console_login(client, boss)
    assert f'id="review-{wish_id}"' in client.get("/console/wishes").get_data(as_text=True)
    assert post_form(client, f"/console/wishes/{wish_id}/review", {"decision": "approve"}).status_code == 302
    assert status_of(engine, wish_id) == OPEN


def test_another_branchs_wish_cannot_be_confirmed_or_returned(client, engine, people, console_login):
    wish_id = fulfilled(engine, people["sec"], people["wang"])
    before = len(told(engine, people["wang"]))
    console_login(client, people["zhou"])
    for action, data in (("confirm", {}), ("return", {"reason": "越权"})):
        response = post_form(client, f"/console/wishes/{wish_id}/{action}", data)
        assert response.status_code == 404 and f"未找到心愿 #{wish_id}。" in response.get_data(as_text=True)
    assert status_of(engine, wish_id) == FULFILLED and len(told(engine, people["wang"])) == before
    assert f"#{wish_id}" not in client.get("/console/wishes").get_data(as_text=True)
    assert client.get("/console/wishes/999999").status_code == 404


def test_a_plain_member_cannot_open_the_wishes_pages(client, engine, people, console_login):
    wish_id = fulfilled(engine, people["sec"], people["wang"])
    console_login(client, people["zhao"])
    for path in ("/console/wishes", f"/console/wishes/{wish_id}", "/console/wishes/export"):
        response = client.get(path)
        assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert client.post(f"/console/wishes/{wish_id}/confirm").status_code in (400, 403)
    assert status_of(engine, wish_id) == FULFILLED


def test_a_wish_form_without_the_csrf_token_is_refused(client, engine, people, console_login):
    pending, done = proposed(engine, people["zhao"]), fulfilled(engine, people["sec"], people["wang"])
    console_login(client, people["sec"])
    csrf_token(client, "/console/wishes")
    for path, data in ((f"/console/wishes/{pending}/review", {"decision": "approve"}),
                       (f"/console/wishes/{done}/confirm", {}),
                       (f"/console/wishes/{done}/return", {"reason": "再看看"})):
        response = client.post(path, data=data)
        assert response.status_code == 400 and "页面已过期" in response.get_data(as_text=True)
    assert status_of(engine, pending) == PENDING and status_of(engine, done) == FULFILLED
    with Session(engine) as s:
        assert balance(s, people["wang"].id) == 0


def test_the_export_holds_the_subtrees_wishes(client, engine, people, console_login):
    pending, done = proposed(engine, people["zhao"]), fulfilled(engine, people["sec"], people["wang"])
    fulfilled(engine, people["zhou"], people["sun"], "西湖修灯")
    console_login(client, people["sec"])
    link = re.search(r'id="export-link"\s+href="([^"]+)"', client.get("/console/wishes").get_data(as_text=True))[1]
    response = client.get(link)
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("编号", "标题", "类别", "状态")
    assert [(r[0], r[3]) for r in rows[1:]] == [(f"#{pending}", PENDING), (f"#{done}", FULFILLED)]
    assert rows[2][6:9] == ("王奶奶", "东湖小区3栋2单元101", "13912345678")  # what beneficiary_of shows the secretary
    narrowed = client.get("/console/wishes/export?status=待审核")
    assert [r[0] for r in list(load_workbook(io.BytesIO(narrowed.data)).active.iter_rows(values_only=True))[1:]] == [
        f"#{pending}"]


def test_the_wishes_page_costs_the_same_for_2_and_for_12_wishes(client, engine, people, console_login,
                                                                 count_statements, make_member):
    def more(count: int, start: int) -> None:
        for n in range(start, start + count):
            claimer = make_member(f"志愿者{n}", f"1360000{n:04d}", org=OTHER_BRANCH, role="志愿者", kind="群众")
            proposer = make_member(f"居民{n}", f"1370000{n:04d}", grid=f"网格{n}")
            if n % 2:
                fulfilled(engine, people["sec"], claimer, f"心愿{n}")
            else:
                proposed(engine, proposer, f"心愿{n}")

    console_login(client, people["sec"])
    more(2, 0)
    client.get("/console/wishes")
    with count_statements() as few:
        assert client.get("/console/wishes").status_code == 200
    more(10, 2)
    with count_statements() as many:
        page = client.get("/console/wishes").get_data(as_text=True)
    assert "共 12 条" in page and 'id="review-total">6<' in page and 'id="confirm-total">6<' in page
    assert many.count == few.count, many.statements
    wish_id = fulfilled(engine, people["sec"], people["wang"], "详情")
    client.get(f"/console/wishes/{wish_id}")
    with count_statements() as detail:
        assert client.get(f"/console/wishes/{wish_id}").status_code == 200
    assert detail.count <= 12, detail.statements
