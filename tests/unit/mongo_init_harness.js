// Runs deploy/mongodb/init-replica-set.js under node with a stand-in for mongosh's globals and a
// fake replica set member, then prints the fake's state as JSON (tests/unit/test_mongo_init.py).
//   node mongo_init_harness.js SCRIPT STATE_JSON
// STATE_JSON: {"env": {...}, "hostname": "...", "initiated": bool, "users": {name: {pwd, roles}}}
// The fake keeps MongoDB's rules that the script relies on: without a login, only hello,
// replSetInitiate and (while there is no user, on the primary) createUser are allowed; a login
// needs an existing user with that password.
const fs = require("fs");
const [scriptPath, stateJson] = process.argv.slice(2);
const state = JSON.parse(stateJson);
state.users = state.users || {};
state.calls = [];

class Quit extends Error {
  constructor(code) {
    super(`quit(${code})`);
    this.code = code;
  }
}

function command(login, cmd) {
  const name = Object.keys(cmd)[0];
  state.calls.push(login ? `${name} as ${login}` : name);
  if (name === "hello") {
    return state.initiated ? { ok: 1, setName: "rs0", primary: "mongo-1:27017", isWritablePrimary: true } : { ok: 1 };
  }
  if (name === "replSetInitiate") {
    if (state.initiated) return { ok: 0, codeName: "AlreadyInitialized", errmsg: "already initialized" };
    state.initiated = true;
    state.config = cmd.replSetInitiate;
    return { ok: 1 };
  }
  const anyUser = Object.keys(state.users).length > 0;
  if (!login && !(name === "createUser" && !anyUser && state.initiated)) {
    return { ok: 0, codeName: "Unauthorized", errmsg: `not authorized for ${name}` };
  }
  if (name === "usersInfo") {
    const users = typeof cmd.usersInfo === "string" ? (state.users[cmd.usersInfo] ? [cmd.usersInfo] : []) : Object.keys(state.users);
    return { ok: 1, users };
  }
  if (name === "createUser") {
    if (state.users[cmd.createUser]) return { ok: 0, codeName: "Location51003", errmsg: "user already exists" };
    state.users[cmd.createUser] = { pwd: cmd.pwd, roles: cmd.roles, w: cmd.writeConcern && cmd.writeConcern.w };
    return { ok: 1 };
  }
  if (name === "updateUser") {
    state.users[cmd.updateUser] = { pwd: cmd.pwd, roles: cmd.roles, w: cmd.writeConcern && cmd.writeConcern.w };
    return { ok: 1 };
  }
  return { ok: 0, codeName: "CommandNotFound", errmsg: name };
}

class Mongo {
  constructor(uri) {
    const m = /^mongodb:\/\/(?:([^:@/]+):([^@/]+)@)?/.exec(uri);
    this.login = null;
    if (m[1]) {
      const user = state.users[decodeURIComponent(m[1])];
      if (!user || user.pwd !== decodeURIComponent(m[2])) throw new Error("MongoServerError: Authentication failed.");
      this.login = decodeURIComponent(m[1]);
    }
  }
  getDB() {
    return { runCommand: (cmd) => command(this.login, cmd) };
  }
}

const globals = {
  Mongo,
  print: (...a) => state.calls.push(`print: ${a.join(" ")}`),
  quit: (code) => {
    throw new Quit(code || 0);
  },
  sleep: () => {},
  process: { env: state.env || {} },
  require: (name) => (name === "os" ? { hostname: () => state.hostname || "mongo-1" } : require(name)),
};
let exit = 0;
try {
  new Function(...Object.keys(globals), fs.readFileSync(scriptPath, "utf8"))(...Object.values(globals));
} catch (e) {
  if (e instanceof Quit) exit = e.code;
  else {
    state.error = String(e);
    exit = 1;
  }
}
process.stdout.write(JSON.stringify(state));
process.exit(exit);
