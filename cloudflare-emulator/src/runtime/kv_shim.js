// KV binding for Workers run by cloudflare-emulator (a workerd wrapped binding).
//
// get/getWithMetadata/put/delete/list over the emulator's internal endpoint
// POST /__emulator/runtime/kv/<namespace id>, on the same keys the REST API serves.
// Inner bindings: `backend` (service: the emulator), `namespace` (id), `key` (runtime key).

const ENDPOINT = "http://emulator/__emulator/runtime/kv/";

function toBase64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

async function encodeValue(value) {
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ReadableStream) return new Uint8Array(await new Response(value).arrayBuffer());
  throw new TypeError("KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.");
}

function decodeValue(bytes, type) {
  switch (type ?? "text") {
    case "text":
      return new TextDecoder().decode(bytes);
    case "json":
      return JSON.parse(new TextDecoder().decode(bytes));
    case "arrayBuffer":
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    case "stream":
      return new Response(bytes).body;
    default:
      throw new TypeError(`Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".`);
  }
}

class KvNamespace {
  #backend;
  #namespace;
  #key;

  constructor(backend, namespace, key) {
    this.#backend = backend;
    this.#namespace = namespace;
    this.#key = key;
  }

  async #call(body) {
    const resp = await this.#backend.fetch(ENDPOINT + this.#namespace, {
      method: "POST",
      headers: { "content-type": "application/json", "x-emulator-runtime-key": this.#key },
      body: JSON.stringify(body),
    });
    const out = await resp.json();
    if (!out.success) throw new Error(`KV ${body.op} failed: ${out.error}`);
    return out.result;
  }

  async getWithMetadata(key, options) {
    const type = typeof options === "string" ? options : options?.type;
    const r = await this.#call({ op: "get", key: String(key) });
    if (r === null) return { value: null, metadata: null };
    return { value: decodeValue(fromBase64(r.value), type), metadata: r.metadata ?? null };
  }

  async get(key, options) {
    return (await this.getWithMetadata(key, options)).value;
  }

  async put(key, value, options = {}) {
    const bytes = await encodeValue(value);
    await this.#call({
      op: "put",
      key: String(key),
      value: toBase64(bytes),
      expiration: options.expiration,
      expiration_ttl: options.expirationTtl,
      metadata: options.metadata,
    });
  }

  async delete(key) {
    await this.#call({ op: "delete", key: String(key) });
  }

  async list(options = {}) {
    const r = await this.#call({ op: "list", prefix: options.prefix ?? "", limit: options.limit ?? 1000, cursor: options.cursor });
    return r.cursor ? { keys: r.keys, list_complete: false, cursor: r.cursor, cacheStatus: null } : { keys: r.keys, list_complete: true, cacheStatus: null };
  }
}

export default function makeKvBinding(env) {
  return new KvNamespace(env.backend, env.namespace, env.key);
}
