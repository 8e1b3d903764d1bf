"""The API's side of portal sessions: a tenant admin ends a user's sessions.

A person whose access must end now (a stolen laptop, someone leaving) would otherwise keep a
signed-in portal until the token in their session expires (8 hours with the development
sign-in, the provider's lifetime otherwise). Ending their sessions makes every page they load
next the sign-in; at an identity provider they must then sign in again, which the provider can
refuse.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from ticketing.auth.access import Action, admit, app_state
from ticketing.kit.db import transaction
from ticketing.kit.errors import InputValidationFailure, PermissionFailure
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS
from ticketing.kit.time import utcnow
from ticketing.portal import sessions
from ticketing.portal.schemas import SessionsEnded
from ticketing.tickets.validation import require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["portal"])

ADMIN_ROLE = "tenant_admin"
# As long as the session table keeps a username or email.
MAX_USER = 320
User = Annotated[
    str, Path(description="The user's username or email address, as their token names them.")
]


@router.delete(
    "/sessions/{user}",
    summary="End a user's portal sessions (tenant admins)",
    response_model=SessionsEnded,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY]},
)
async def end_user_sessions(request: Request, user: User) -> Response:
    """Ends every live portal session of the user in the caller's tenant: the next page
    each of their browsers loads is the sign-in. Sessions of the same name in other
    tenants are not touched."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.UPDATE)
        if ADMIN_ROLE not in access.principal.roles:
            raise PermissionFailure("You do not have the required permissions to end sessions")
        require_catalog_query(request.query_params)
        if not _is_user(user):
            raise InputValidationFailure(
                {"user": [f"user must be a username or email address (1 to {MAX_USER} characters)"]}
            )
        ended = await sessions.end_for_user(
            session, tenant_id=access.tenant_id, user=user, now=utcnow()
        )
    return JsonResponse({"success": True, "status": 200, "ended": ended})


def _is_user(value: str) -> bool:
    return 0 < len(value) <= MAX_USER and value.isprintable()
