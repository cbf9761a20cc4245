"""REST: /analytics."""

from __future__ import annotations

from aiohttp import web

from handlers.http import ApiRoutes, current_user, json_response
from hub.keys import analytics_key
from hub.schemas.analytics import MarketAnalytics, MarketAnalyticsQuery, PeriodQuery, PlatformAnalytics

routes = ApiRoutes("analytics")


@routes.route(
    "GET",
    "/analytics/markets/{id}",
    summary="A market's statistics (owner, super_admin)",
    query=MarketAnalyticsQuery,
    response=MarketAnalytics,
    errors=(401, 403, 404, 422),
)
async def market_analytics(request: web.Request, query: MarketAnalyticsQuery) -> web.Response:
    user = await current_user(request)
    return json_response(await request.app[analytics_key].market(user, request.match_info["id"], query))


@routes.route(
    "GET",
    "/analytics/platform",
    summary="Platform statistics (super_admin)",
    query=PeriodQuery,
    response=PlatformAnalytics,
    errors=(401, 403, 422),
)
async def platform_analytics(request: web.Request, query: PeriodQuery) -> web.Response:
    user = await current_user(request)
    return json_response(await request.app[analytics_key].platform(user, query))
