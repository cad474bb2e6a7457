"""The Python quickstart of the README.

It uses the package openapi-python-client generates from the OpenAPI document
(`ownership_api`, see docs/clients.md). Run it against a server with OWNERSHIP_URL and
OWNERSHIP_TOKEN (an Owner's token) set.
"""

import os

# README: begin
from ownership_api import AuthenticatedClient
from ownership_api.api.audit import all_audit
from ownership_api.api.pairing import redeem, request_code, resolve
from ownership_api.api.tokens import service_token
from ownership_api.api.users import create_user, list_users
from ownership_api.models import (
    CreateUserRequest,
    ErrorBody,
    PairingRequestBody,
    RedeemRequest,
    ServiceTokenRequest,
)

base_url = os.environ.get("OWNERSHIP_URL", "http://127.0.0.1:8080")
owner = AuthenticatedClient(base_url=base_url, token=os.environ["OWNERSHIP_TOKEN"])


def ok(answer):
    """The answer, or an error naming the server's code (`conflict`, `forbidden`, ...)."""
    if answer is None or isinstance(answer, ErrorBody):
        raise RuntimeError(answer.error.code if answer else "no answer")
    return answer


# 1. Create a user; their first token is shown once.
alice = ok(create_user.sync(client=owner, body=CreateUserRequest(user_id="alice")))
print(f"created user {alice.user_id} ({alice.role})")

# 2. Mint a token for a chat adapter on the `telegram` channel.
minted = ok(
    service_token.sync(
        client=owner,
        body=ServiceTokenRequest(kinds=["channel:telegram"], label="telegram bot"),
    )
)
bot = AuthenticatedClient(base_url=base_url, token=minted.token)
print(f"minted a channel token ({', '.join(minted.kinds)})")

# 3. The bot asks for a pairing code for the sender `42` and shows it to them.
body = PairingRequestBody(external_id="42")
pairing = ok(request_code.sync("telegram", client=bot, body=body))
print(f"pairing code issued (new: {str(pairing.created).lower()})")

# 4. Alice redeems it with her own token: telegram/42 is now hers.
as_alice = AuthenticatedClient(base_url=base_url, token=alice.token)
bound = ok(redeem.sync("telegram", client=as_alice, body=RedeemRequest(code=pairing.code)))
print(f"redeemed: {bound.channel}/{bound.external_id} -> {bound.owner_id}")

# 5. The bot resolves who is writing.
who = ok(resolve.sync("telegram", "42", client=bot))
print(f"resolved telegram/42: {who.owner_id} ({who.role})")

# 6. Page through the audit log, 2 events a page, following `next` to the end.
events, pages, after = 0, 0, None
while True:
    page = ok(all_audit.sync(client=owner, limit=2, **({"after": after} if after else {})))
    events, pages = events + len(page.events), pages + 1
    after = page.next_ if isinstance(page.next_, str) else None
    if after is None:
        break
print(f"audit: {events} events in {pages} pages")

# 7. Two more users, then every user, 2 a page.
for user_id in ["bob", "carol"]:
    ok(create_user.sync(client=owner, body=CreateUserRequest(user_id=user_id)))
users, after = [], None
while True:
    page = ok(list_users.sync(client=owner, limit=2, **({"after": after} if after else {})))
    users += [u.user_id for u in page.users]
    after = page.next_ if isinstance(page.next_, str) else None
    if after is None:
        break
print(f"users: {', '.join(users)} (2 a page)")
# README: end
