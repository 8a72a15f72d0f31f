"""The storefront's rules, free of I/O: money and dates for people, pagination, which
redirect targets and form origins are safe, and who may read which mail."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from urllib.parse import urlencode, urlsplit

FINAL_STATUSES = frozenset({"paid", "cancelled"})
CANCEL_REASONS = {
    "out_of_stock": "Out of stock: some items could not be reserved.",
    "payment_declined": "Payment declined by the card processor.",
    "payment_unavailable": "The payment service was unavailable; nothing was charged.",
}
MIN_QTY, MAX_QTY = 1, 99


def format_cents(cents: object, currency: str = "$") -> str:
    """1999 -> "$19.99"; -250 -> "-$2.50". Anything not an integer shows as a dash."""
    if not isinstance(cents, int) or isinstance(cents, bool):
        return "—"
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{currency}{whole:,}.{rest:02d}"


def format_when(value: object) -> str:
    """An ISO-8601 timestamp as "2024-05-01 12:30" (UTC as sent); garbage as it is."""
    if not isinstance(value, str):
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def is_final(status: object) -> bool:
    return status in FINAL_STATUSES


def cancel_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason:
        return ""
    return CANCEL_REASONS.get(reason, reason.replace("_", " ").capitalize() + ".")


def parse_qty(raw: str) -> int | None:
    """A quantity from a form field, or None when it is not a whole number in 1..99."""
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 3:
        return None
    qty = int(raw)
    return qty if MIN_QTY <= qty <= MAX_QTY else None


def safe_next(target: str | None, default: str = "/") -> str:
    """Where to go after logging in: only a path on this site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def safe_image_url(url: object) -> str:
    """Only http(s) or site-relative image URLs reach an `src` attribute."""
    if not isinstance(url, str):
        return ""
    if url.startswith(("https://", "http://")) or (
        url.startswith("/") and not url.startswith("//")
    ):
        return url
    return ""


def is_same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
    """CSRF check of a form post: the browser's Origin (or, without one, the Referer)
    must name this very host. A post that names neither is refused: every browser that
    submits a form sends at least one of them."""
    if not host:
        return False
    source = origin if origin and origin != "null" else referer
    if not source:
        return False
    netloc = urlsplit(source).netloc
    return bool(netloc) and netloc.lower() == host.lower()


@dataclass(frozen=True)
class Pagination:
    page: int
    pages: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(total: object, page: object, page_size: object) -> Pagination:
    total = total if isinstance(total, int) and total > 0 else 0
    size = page_size if isinstance(page_size, int) and page_size > 0 else 1
    current = page if isinstance(page, int) and page > 0 else 1
    return Pagination(page=current, pages=max(1, math.ceil(total / size)), total=total)


def page_link(page: int, q: str = "", category: str = "") -> str:
    params = {key: value for key, value in (("q", q), ("category", category)) if value}
    if page > 1:
        params["page"] = str(page)
    return "/?" + urlencode(params) if params else "/"


def recipients(*header_values: str | None) -> frozenset[str]:
    """Every address named in these headers (To, Cc, the envelope's X-RcptTo), lowered."""
    pairs = getaddresses([value for value in header_values if value])
    return frozenset(address.lower() for _, address in pairs if "@" in address)


def may_read_mail(mail_recipients: frozenset[str], email: str, is_admin: bool) -> bool:
    """A customer reads the mails sent to them; an admin reads every mail."""
    return is_admin or email.lower() in mail_recipients
