// Entry module cloudflare-emulator puts in front of an ES-module Worker. It re-exports the
// Worker's named exports (Durable Object classes, entrypoints) and passes every handler
// through, and runs the `scheduled` and `queue` handlers when the emulator asks (requests
// carrying the runtime key; the edge strips that header from outside requests).
// __MAIN__ and __KEY__ are replaced when the config is generated.

import * as user from "__MAIN__";
export * from "__MAIN__";

const KEY = "__KEY__";

function target(env, ctx) {
  const d = user.default;
  return typeof d === "function" ? new d(ctx, env) : d;
}

function decode(m) {
  if (m.contentType === "bytes") {
    const s = atob(m.body);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out.buffer;
  }
  return m.contentType === "text" ? m.body : JSON.parse(m.body);
}

async function runScheduled(h, req, env, ctx) {
  const body = await req.json();
  let noRetry = false;
  const controller = { cron: body.cron ?? "", scheduledTime: body.scheduledTime ?? Date.now(), type: "scheduled", noRetry() { noRetry = true; } };
  await h.scheduled(controller, env, ctx);
  return { success: true, noRetry };
}

async function runQueue(h, req, env, ctx) {
  const body = await req.json();
  const acked = new Set();
  const retried = new Set();
  let all = null;
  const messages = body.messages.map((m) => ({
    id: m.id,
    timestamp: new Date(m.timestamp),
    body: decode(m),
    attempts: m.attempts,
    ack() { acked.add(m.id); retried.delete(m.id); },
    retry() { retried.add(m.id); acked.delete(m.id); },
  }));
  const batch = {
    queue: body.queue,
    messages,
    ackAll() { all = "ack"; },
    retryAll() { all = "retry"; },
  };
  await h.queue(batch, env, ctx);
  const ids = body.messages.map((m) => m.id);
  if (all === "retry") return { success: true, retried: ids.filter((i) => !acked.has(i)) };
  return { success: true, retried: ids.filter((i) => retried.has(i) && all !== "ack") };
}

export default {
  async fetch(request, env, ctx) {
    if (request.headers.get("x-emulator-runtime-key") === KEY) {
      const path = new URL(request.url).pathname;
      const kind = path === "/__emulator/scheduled" ? "scheduled" : path === "/__emulator/queue" ? "queue" : null;
      if (kind) {
        const h = target(env, ctx);
        if (typeof h?.[kind] !== "function") {
          return Response.json({ success: false, error: `the Worker has no ${kind}() handler` }, { status: 501 });
        }
        try {
          const out = kind === "scheduled" ? await runScheduled(h, request, env, ctx) : await runQueue(h, request, env, ctx);
          return Response.json(out);
        } catch (e) {
          return Response.json({ success: false, error: String(e?.stack ?? e) }, { status: 500 });
        }
      }
    }
    const h = target(env, ctx);
    if (typeof h?.fetch !== "function") {
      return new Response("Handler does not export a fetch() function.", { status: 500 });
    }
    return h.fetch(request, env, ctx);
  },
};
