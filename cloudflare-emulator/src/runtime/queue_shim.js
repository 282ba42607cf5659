// Queue producer binding for Workers run by cloudflare-emulator (a workerd wrapped binding).
//
// send/sendBatch post to the emulator's internal endpoint POST /__emulator/runtime/queue/<name>,
// which delivers the messages to the consumer Worker's queue() handler.
// Inner bindings: `backend` (service: the emulator), `account`, `queue` (name), `key`.

const ENDPOINT = "http://emulator/__emulator/runtime/queue/";

function encode(body, contentType) {
  if (contentType === "bytes" || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    const bytes = body instanceof ArrayBuffer ? new Uint8Array(body) : new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return { contentType: "bytes", body: btoa(s) };
  }
  if (contentType === "text") return { contentType: "text", body: String(body) };
  return { contentType: "json", body: JSON.stringify(body) };
}

class Queue {
  #backend;
  #account;
  #queue;
  #key;

  constructor(backend, account, queue, key) {
    this.#backend = backend;
    this.#account = account;
    this.#queue = queue;
    this.#key = key;
  }

  async #post(messages) {
    const resp = await this.#backend.fetch(ENDPOINT + encodeURIComponent(this.#queue), {
      method: "POST",
      headers: { "content-type": "application/json", "x-emulator-runtime-key": this.#key },
      body: JSON.stringify({ account: this.#account, messages }),
    });
    const out = await resp.json();
    if (!out.success) throw new Error(`Queue send failed: ${out.error}`);
  }

  async send(body, options = {}) {
    await this.#post([encode(body, options.contentType)]);
  }

  async sendBatch(messages, options = {}) {
    await this.#post(Array.from(messages, (m) => encode(m.body, m.contentType)));
  }
}

export default function makeQueueBinding(env) {
  return new Queue(env.backend, env.account, env.queue, env.key);
}
