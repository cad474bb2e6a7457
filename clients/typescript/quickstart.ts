// The TypeScript quickstart of the README: a client generated from the OpenAPI document
// (`schema.d.ts`, by openapi-typescript) and called with openapi-fetch. Run it against a
// server with OWNERSHIP_URL and OWNERSHIP_TOKEN (an Owner's token) set; see docs/clients.md.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

// README: begin
const baseUrl = process.env.OWNERSHIP_URL ?? "http://127.0.0.1:8080";
const owner = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${process.env.OWNERSHIP_TOKEN}` },
});

// Throws the server's error code (`conflict`, `forbidden`, …) when a call is refused.
function ok<T>(r: { data?: T; error?: { error: { code: string } }; response: Response }): T {
  if (r.data === undefined) {
    throw new Error(`${r.response.status} ${r.error?.error.code ?? "no body"}`);
  }
  return r.data;
}

// 1. Create a user; their first token is shown once.
const alice = ok(await owner.POST("/v1/admin/users", { body: { user_id: "alice" } }));
console.log(`created user ${alice.user_id} (${alice.role})`);

// 2. Mint a token for a chat adapter on the `telegram` channel.
const minted = ok(
  await owner.POST("/v1/admin/service-tokens", {
    body: { kinds: ["channel:telegram"], label: "telegram bot" },
  }),
);
const bot = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${minted.token}` } });
console.log(`minted a channel token (${minted.kinds.join(", ")})`);

// 3. The bot asks for a pairing code for the sender `42` and shows it to them.
const channel = { path: { channel: "telegram" } };
const pairing = ok(
  await bot.POST("/v1/channels/{channel}/pairing-requests", {
    params: channel,
    body: { external_id: "42" },
  }),
);
console.log(`pairing code issued (new: ${pairing.created})`);

// 4. Alice redeems it with her own token: telegram/42 is now hers.
const asAlice = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${alice.token}` } });
const bound = ok(
  await asAlice.POST("/v1/pairing/{channel}/redeem", { params: channel, body: { code: pairing.code } }),
);
console.log(`redeemed: ${bound.channel}/${bound.external_id} -> ${bound.owner_id}`);

// 5. The bot resolves who is writing.
const who = ok(
  await bot.GET("/v1/channels/{channel}/identities/{external_id}", {
    params: { path: { channel: "telegram", external_id: "42" } },
  }),
);
console.log(`resolved telegram/42: ${who.owner_id} (${who.role})`);

// 6. Page through the audit log, 2 events a page, following `next` to the end.
let events = 0;
let pages = 0;
let after: string | undefined;
do {
  const page: components["schemas"]["EventList"] = ok(
    await owner.GET("/v1/admin/audit", { params: { query: { limit: 2, after } } }),
  );
  events += page.events.length;
  pages += 1;
  after = page.next ?? undefined;
} while (after !== undefined);
console.log(`audit: ${events} events in ${pages} pages`);

// 7. Two more users, then every user, 2 a page.
for (const user_id of ["bob", "carol"]) {
  ok(await owner.POST("/v1/admin/users", { body: { user_id } }));
}
const users: string[] = [];
after = undefined;
do {
  const page: components["schemas"]["UserList"] = ok(
    await owner.GET("/v1/admin/users", { params: { query: { limit: 2, after } } }),
  );
  users.push(...page.users.map((u) => u.user_id));
  after = page.next ?? undefined;
} while (after !== undefined);
console.log(`users: ${users.join(", ")} (2 a page)`);
// README: end
