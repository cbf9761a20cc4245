"""Who may do what: roles and ownership, in one place for REST and Socket.IO alike."""

from __future__ import annotations

from typing import Protocol

from store.models import Market, Order, Role, User


class Principal(Protocol):
    """Who is acting, as the rules read it: a stored User, or what a long-lived connection keeps of
    one (hub.accounts.ConnectedUser)."""

    @property
    def id(self) -> str: ...

    @property
    def role(self) -> Role: ...


def is_super_admin(user: Principal) -> bool:
    return user.role is Role.SUPER_ADMIN


def may_create_market(user: Principal) -> bool:
    return user.role in (Role.MARKET_ADMIN, Role.SUPER_ADMIN)


def owns_market(user: Principal, market: Market) -> bool:
    """A market_admin's own market. A demoted owner (now a customer) keeps the market, not its keys."""
    return user.role is Role.MARKET_ADMIN and market.owner_id == user.id


def manages_market(user: Principal, market: Market) -> bool:
    """The market's owner or a super_admin: may edit it, its products, its orders, its statistics."""
    return is_super_admin(user) or owns_market(user, market)


def may_see_order(user: Principal, order: Order, market: Market | None) -> bool:
    if is_super_admin(user) or order.customer_id == user.id:
        return True
    return market is not None and owns_market(user, market)


def may_view_market_analytics(user: Principal, market: Market) -> bool:
    return manages_market(user, market)


def may_view_platform_analytics(user: Principal) -> bool:
    return is_super_admin(user)


def may_watch_dashboard(user: Principal, market: Market) -> bool:
    """A super_admin, any market; its owner, while it is active (a deleted market's feed is closed)."""
    return is_super_admin(user) or (owns_market(user, market) and market.is_active)


def dashboard_defaults_to_own_market(user: Principal) -> bool:
    """A market_admin's dashboard without `auth.market_id` watches their own market (a super_admin names one)."""
    return user.role is Role.MARKET_ADMIN


def may_administer_users(user: Principal) -> bool:
    return is_super_admin(user)


def may_be_changed_through_api(target: User) -> bool:
    """A super_admin account is changed by an operator (python -m hub create-admin), never over the API."""
    return not is_super_admin(target)
