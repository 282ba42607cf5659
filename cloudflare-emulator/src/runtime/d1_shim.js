// D1 binding for Workers run by cloudflare-emulator (a workerd wrapped binding).
//
// Implements the D1 client API (prepare/bind/first/all/run/raw, batch, exec) with D1's result
// shapes, over the emulator's internal endpoint POST /__emulator/runtime/d1/<database uuid>.
// The statements run on the same SQLite database the REST API's /query uses, with the same
// rules: one transaction per call (a batch is atomic), D1's error messages.
//
// Inner bindings: `backend` (service: the emulator), `database` (uuid), `key` (runtime key).

const ENDPOINT = "http://emulator/__emulator/runtime/d1/";

function encodeParam(value) {
  const type = typeof value;
  if (type === "number" || type === "string") return value;
  if (type === "boolean") return value ? 1 : 0;
  if (type === "object") {
    if (value === null) return null;
    if (Array.isArray(value) && value.every((b) => typeof b === "number" && Number.isInteger(b) && b >= 0 && b < 256)) {
      return { blob: value };
    }
    if (value instanceof ArrayBuffer) return { blob: Array.from(new Uint8Array(value)) };
    if (ArrayBuffer.isView(value)) {
      return { blob: Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)) };
    }
  }
  throw new Error(`D1_TYPE_ERROR: Type '${type}' not supported for value '${value}'`);
}

function rowObjects(stmt) {
  return stmt.rows.map((row) => {
    const obj = {};
    stmt.columns.forEach((c, i) => {
      obj[c] = row[i];
    });
    return obj;
  });
}

function toResult(stmt) {
  return {
    success: true,
    meta: { served_by: "cloudflare-emulator", ...stmt.meta },
    results: rowObjects(stmt),
  };
}

const EMPTY = { columns: [], rows: [], meta: { duration: 0, changes: 0, last_row_id: 0, changed_db: false } };

class D1Database {
  #backend;
  #database;
  #key;

  constructor(backend, database, key) {
    this.#backend = backend;
    this.#database = database;
    this.#key = key;
  }

  prepare(query) {
    if (typeof query !== "string") throw new TypeError("D1Database.prepare() expects an SQL string");
    return new D1PreparedStatement(this, query, []);
  }

  async batch(statements) {
    if (!Array.isArray(statements)) throw new TypeError("D1Database.batch() expects an array of prepared statements");
    const items = statements.map((s) => {
      if (!(s instanceof D1PreparedStatement)) {
        throw new TypeError("D1Database.batch() expects D1PreparedStatement objects (from db.prepare())");
      }
      return s._item();
    });
    if (items.length === 0) return [];
    const groups = await this._send("batch", items);
    return groups.map((g) => toResult(g[0] ?? EMPTY));
  }

  async exec(query) {
    if (typeof query !== "string") throw new TypeError("D1Database.exec() expects an SQL string");
    const lines = query
      .trim()
      .split("\n")
      .filter((l) => l.trim() !== "");
    const out = await this._send(
      "exec",
      lines.map((sql) => ({ sql, params: [] })),
    );
    if (!out.success) {
      const line = out.index ?? 0;
      throw new Error(`D1_EXEC_ERROR: Error in line ${line + 1}: ${lines[line]}: ${out.error}`, {
        cause: new Error(out.error),
      });
    }
    const duration = out.results.flat().reduce((sum, s) => sum + (s.meta.duration ?? 0), 0);
    return { count: out.results.length, duration };
  }

  async _send(mode, statements) {
    let response;
    try {
      response = await this.#backend.fetch(ENDPOINT + encodeURIComponent(this.#database), {
        method: "POST",
        headers: { "content-type": "application/json", "x-emulator-runtime-key": this.#key },
        body: JSON.stringify({ mode, statements }),
      });
    } catch (e) {
      throw new Error(`D1_ERROR: cannot reach the emulator's D1 engine: ${e.message}`, { cause: e });
    }
    let body;
    try {
      body = await response.json();
    } catch (e) {
      throw new Error(`D1_ERROR: the emulator's D1 engine answered HTTP ${response.status} without JSON`, { cause: e });
    }
    if (mode === "exec" && body.success !== undefined) return body;
    if (!body.success) {
      const message = body.error ?? `HTTP ${response.status}`;
      throw new Error(`D1_ERROR: ${message}`, { cause: new Error(message) });
    }
    return body.results;
  }
}

class D1PreparedStatement {
  #db;
  #query;
  #params;

  constructor(db, query, params) {
    this.#db = db;
    this.#query = query;
    this.#params = params;
  }

  bind(...values) {
    return new D1PreparedStatement(this.#db, this.#query, values.map(encodeParam));
  }

  _item() {
    return { sql: this.#query, params: this.#params };
  }

  async #run() {
    const groups = await this.#db._send("batch", [this._item()]);
    return groups[0]?.[0] ?? EMPTY;
  }

  async first(colName) {
    const rows = rowObjects(await this.#run());
    if (colName !== undefined) {
      if (rows.length > 0 && !(colName in rows[0])) {
        throw new Error("D1_COLUMN_NOTFOUND", { cause: `Column not found (${colName})` });
      }
      return rows[0]?.[colName] ?? null;
    }
    return rows[0] ?? null;
  }

  async all() {
    return toResult(await this.#run());
  }

  async run() {
    return toResult(await this.#run());
  }

  async raw(options) {
    const stmt = await this.#run();
    const rows = stmt.rows.map((r) => [...r]);
    return options?.columnNames ? [[...stmt.columns], ...rows] : rows;
  }
}

export default function makeD1Binding(env) {
  return new D1Database(env.backend, env.database, env.key);
}
