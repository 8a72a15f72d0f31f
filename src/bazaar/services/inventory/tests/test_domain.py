import pytest

from bazaar.services.inventory import domain
from bazaar.services.inventory.domain import (
    MAX_LINES,
    Adjustment,
    AdjustStock,
    GetStock,
    InvalidRequest,
    KeyReused,
    Line,
    Reservation,
    ReservationState,
    ReserveStock,
    Stock,
    UnknownProduct,
    WrongState,
)
from bazaar.services.inventory.handlers import stock_changed_event


def order(*lines: tuple[str, int], order_id: str = "o-1") -> ReserveStock:
    return ReserveStock(order_id, tuple(Line(p, q) for p, q in lines))


def test_an_order_that_fits_holds_every_line_and_bumps_versions() -> None:
    stock = {"a": Stock("a", on_hand=5, version=1), "b": Stock("b", on_hand=2, version=7)}
    reservation, changed = domain.reserve(order(("a", 3), ("b", 2)), stock)
    assert reservation.state is ReservationState.RESERVED
    assert [s.product_id for s in changed] == ["a", "b"]
    assert (stock["a"].reserved, stock["a"].available, stock["a"].version) == (3, 2, 2)
    assert (stock["b"].available, stock["b"].version) == (0, 8)


def test_an_order_that_does_not_fit_holds_nothing_and_names_the_short_lines() -> None:
    stock = {"a": Stock("a", on_hand=5, version=1), "b": Stock("b", on_hand=1, version=1)}
    reservation, changed = domain.reserve(order(("a", 3), ("b", 2), ("ghost", 1)), stock)
    assert reservation.state is ReservationState.OUT_OF_STOCK
    assert reservation.short_product_ids == ("b", "ghost")
    assert changed == []
    assert stock["a"] == Stock("a", on_hand=5, version=1)


def test_commit_sells_and_release_gives_back() -> None:
    stock = {"a": Stock("a", on_hand=5, version=1)}
    sold, _ = domain.reserve(order(("a", 2)), stock)
    assert sold.commit(stock) == [stock["a"]]
    assert (stock["a"].on_hand, stock["a"].reserved) == (3, 0)
    assert sold.commit(stock) == []  # a repeat changes nothing

    kept, _ = domain.reserve(order(("a", 3), order_id="o-2"), stock)
    assert kept.release(stock) == [stock["a"]]
    assert (stock["a"].on_hand, stock["a"].reserved, stock["a"].version) == (3, 0, 5)
    assert kept.release(stock) == []


@pytest.mark.parametrize(
    ("state", "action"),
    [(ReservationState.RELEASED, "commit"), (ReservationState.COMMITTED, "release")],
)
def test_a_finished_reservation_refuses_the_opposite_move(
    state: ReservationState, action: str
) -> None:
    reservation = Reservation("o-1", state, (Line("a", 1),))
    with pytest.raises(WrongState, match="o-1"):
        getattr(reservation, action)({"a": Stock("a", on_hand=1)})


def test_an_out_of_stock_outcome_releases_as_nothing_and_cannot_commit() -> None:
    reservation = Reservation("o-1", ReservationState.OUT_OF_STOCK, (Line("a", 9),), ("a",))
    assert reservation.release({}) == []
    with pytest.raises(WrongState, match="out of stock"):
        reservation.commit({})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: order(("a", 1), order_id=""), "order_id"),
        (lambda: order(), "at least one line"),
        (lambda: order(("a", 0)), "qty"),
        (lambda: order(("a", -3)), "qty"),
        (lambda: order(("a", 10_000_000)), "qty"),
        (lambda: order(("a", 1), ("a", 2)), "more than one line"),
        (lambda: order(*((f"p{i}", 1) for i in range(MAX_LINES + 1))), "at most"),
        (lambda: order(("x" * 101, 1)), "longer than"),
        (lambda: order(("a\n", 1)), "unprintable"),
        (lambda: order((" a", 1)), "spaces"),
        (lambda: AdjustStock("a", 0, "r-1"), "delta"),
        (lambda: AdjustStock("a", 10**9, "r-1"), "delta"),
        (lambda: AdjustStock("a", 1, ""), "request_id"),
        (lambda: GetStock(("",)), "product_id"),
    ],
)
def test_bad_commands_are_refused_with_a_reason(make: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        make()  # type: ignore[operator]


def test_adjust_never_goes_below_what_is_reserved() -> None:
    held = Stock("a", on_hand=5, reserved=4, version=3)
    with pytest.raises(WrongState, match="reserved"):
        domain.adjust(AdjustStock("a", -2, "r-1"), held)
    assert held == Stock("a", on_hand=5, reserved=4, version=3)
    assert domain.adjust(AdjustStock("a", -1, "r-2"), held).on_hand == 4


def test_adjust_creates_stock_for_a_new_product_only_when_adding() -> None:
    created = domain.adjust(AdjustStock("new", 7, "r-1"), None)
    assert created == Stock("new", on_hand=7, version=1)
    with pytest.raises(UnknownProduct):
        domain.adjust(AdjustStock("new", -1, "r-2"), None)


def test_a_replayed_adjustment_answers_the_same_and_a_reused_key_is_refused() -> None:
    done = Adjustment("r-1", "a", 5, Stock("a", on_hand=5, version=1))
    assert done.answer_to(AdjustStock("a", 5, "r-1")) == Stock("a", on_hand=5, version=1)
    with pytest.raises(KeyReused, match="r-1"):
        done.answer_to(AdjustStock("a", 6, "r-1"))


def test_seed_reads_products_and_skips_those_with_stock() -> None:
    command = domain.seed_command(
        [{"id": "a", "name": "A", "stock": 3}, {"id": "b", "price_cents": 100, "stock": 0}]
    )
    assert command.levels == (("a", 3), ("b", 0))
    assert domain.seed(command, ["a"]) == [Stock("b", on_hand=0, version=1)]


@pytest.mark.parametrize(
    "content",
    [
        {"id": "a"},
        [1],
        [{"stock": 1}],
        [{"id": "a", "stock": -1}],
        [{"id": "a", "stock": "3"}],
        [{"id": "a", "stock": True}],
        [{"id": "a", "stock": 1}, {"id": "a", "stock": 2}],
    ],
)
def test_a_bad_seed_file_is_refused(content: object) -> None:
    with pytest.raises(InvalidRequest):
        domain.seed_command(content)


def test_the_event_data_follows_the_contract() -> None:
    assert stock_changed_event(Stock("a", on_hand=5, reserved=2, version=4)).data == {
        "product_id": "a",
        "on_hand": 5,
        "reserved": 2,
        "available": 3,
        "version": 4,
    }
