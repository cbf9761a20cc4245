"""REST: /users."""

from __future__ import annotations

from aiohttp import web

from handlers.http import ApiRoutes, current_user, json_response, list_of, list_response
from hub.keys import accounts_key, user_admin_key
from hub.schemas.public import UserPublic
from hub.schemas.users import LoginReply, UserAdminUpdate, UserLogin, UserQuery, UserRegister, UserUpdate

routes = ApiRoutes("users")


@routes.route("POST", "/users/register", summary="Register", body=UserRegister, response=UserPublic, status=201,
              auth=False, errors=(403, 409, 422))  # fmt: skip
async def register(request: web.Request, body: UserRegister) -> web.Response:
    user = await request.app[accounts_key].register(body)
    return json_response(UserPublic.of(user), status=201)


@routes.route("POST", "/users/login", summary="Sign in", body=UserLogin, response=LoginReply, auth=False,
              errors=(401, 422))  # fmt: skip
async def login(request: web.Request, body: UserLogin) -> web.Response:
    return json_response(await request.app[accounts_key].login(body))


@routes.route("GET", "/users/me", summary="The signed-in user", response=UserPublic)
async def me(request: web.Request) -> web.Response:
    return json_response(UserPublic.of(await current_user(request)))


async def _update_me(request: web.Request, body: UserUpdate) -> web.Response:
    user = await current_user(request)
    return json_response(UserPublic.of(await request.app[accounts_key].update_profile(user, body)))


routes.route("PATCH", "/users/me", summary="Update my profile", body=UserUpdate, response=UserPublic, errors=(422,))(
    _update_me
)
routes.route("PUT", "/users/me", summary="Update my profile (same as PATCH)", body=UserUpdate, response=UserPublic,
             errors=(422,))(_update_me)  # fmt: skip


# Administration (super_admin). Registered after /users/me, so that "me" is never taken for an id.


@routes.route("GET", "/users", summary="List users (super_admin)", query=UserQuery, response=list_of(UserPublic),
              errors=(401, 403, 422))  # fmt: skip
async def list_users(request: web.Request, query: UserQuery) -> web.Response:
    users, total = await request.app[user_admin_key].list_users(await current_user(request), query)
    return list_response([UserPublic.of(user) for user in users], total)


@routes.route("GET", "/users/{id}", summary="A user (super_admin)", response=UserPublic, errors=(401, 403, 404))
async def get_user(request: web.Request) -> web.Response:
    admin = await current_user(request)
    return json_response(UserPublic.of(await request.app[user_admin_key].user(admin, request.match_info["id"])))


@routes.route("PATCH", "/users/{id}", summary="Deactivate, reactivate or change the role of a user (super_admin)",
              body=UserAdminUpdate, response=UserPublic, errors=(401, 403, 404, 422))  # fmt: skip
async def update_user(request: web.Request, body: UserAdminUpdate) -> web.Response:
    admin = await current_user(request)
    user = await request.app[user_admin_key].update_user(admin, request.match_info["id"], body)
    return json_response(UserPublic.of(user))
