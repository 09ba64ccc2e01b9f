// Initiates baocao's MongoDB replica set and creates its users; safe to run again at every start.
//   mongosh --nodb --quiet --file deploy/mongodb/init-replica-set.js
// It talks to the member on 127.0.0.1:27017 and must run in that member's network namespace
// (docker-compose.yml: network_mode service:mongo-1; the chart: a sidecar of member 0), because the
// first user can only be created from localhost, through MongoDB's localhost exception, once the
// set has a primary. Environment (no defaults for passwords):
//   MONGO_REPLICA_SET      the set's name (rs0)
//   MONGO_MEMBERS          host:port of every member, comma-separated; the first is preferred as
//                          primary
//   MONGO_INIT_ON          when set, act only on the host of that name (the chart's member 0)
//   MONGO_ROOT_PASSWORD    the `root` user's (role root: operators and this script)
//   BAOCAO_MONGO_PASSWORD  the `baocao` user's: the services' login (readWrite on the database)
//   BAOCAO_MONGO_BACKUP_PASSWORD  the `backup` user's (roles backup and restore: tools/mongo_backup.py)
//   BAOCAO_MONGO_DATABASE  the services' database (baocao)
// A password set again in the environment is applied to the existing user at the next run.

const env = process.env;
function need(name) {
  const value = env[name];
  if (!value) {
    print(`mongo-init: ${name} is not set (no default)`);
    quit(2);
  }
  return value;
}
const setName = env.MONGO_REPLICA_SET || "rs0";
const members = (env.MONGO_MEMBERS || "mongo-1:27017,mongo-2:27017,mongo-3:27017").split(",").map((h) => h.trim());
const database = env.BAOCAO_MONGO_DATABASE || "baocao";
const rootPassword = need("MONGO_ROOT_PASSWORD");
const users = [
  { user: "baocao", pwd: need("BAOCAO_MONGO_PASSWORD"), roles: [{ role: "readWrite", db: database }] },
  {
    user: "backup",
    pwd: need("BAOCAO_MONGO_BACKUP_PASSWORD"),
    roles: [
      { role: "backup", db: "admin" },
      { role: "restore", db: "admin" },
    ],
  },
];
const majority = { w: "majority", wtimeout: 30000 };

if (env.MONGO_INIT_ON && env.MONGO_INIT_ON !== require("os").hostname()) {
  print(`mongo-init: nothing to do on ${require("os").hostname()} (the set is initiated from ${env.MONGO_INIT_ON})`);
  quit(0);
}

function retry(what, seconds, attempt) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    let error;
    try {
      const result = attempt();
      if (result) return result;
    } catch (e) {
      error = e;
    }
    if (Date.now() > until) throw new Error(`mongo-init: gave up waiting for ${what}${error ? ": " + error : ""}`);
    sleep(2000);
  }
}

const local = retry("the local member", 300, () => new Mongo("mongodb://127.0.0.1:27017/?directConnection=true"));
const localAdmin = local.getDB("admin");

if (!localAdmin.runCommand({ hello: 1 }).setName) {
  const config = {
    _id: setName,
    members: members.map((host, i) => ({ _id: i, host, priority: i === 0 ? 2 : 1 })),
  };
  // Every member must answer before the set can be initiated: retried while they start.
  retry("replSetInitiate", 300, () => {
    const res = localAdmin.runCommand({ replSetInitiate: config });
    if (res.ok || res.codeName === "AlreadyInitialized") return true;
    print(`mongo-init: replSetInitiate: ${res.codeName}: ${res.errmsg}`);
    return false;
  });
  print(`mongo-init: replica set ${setName} initiated with ${members.join(", ")}`);
}
retry("a primary", 300, () => localAdmin.runCommand({ hello: 1 }).primary);

const rootUri =
  `mongodb://root:${encodeURIComponent(rootPassword)}@${members.join(",")}/` +
  `?replicaSet=${encodeURIComponent(setName)}&authSource=admin`;
function rootAdmin() {
  const admin = new Mongo(rootUri).getDB("admin");
  const res = admin.runCommand({ usersInfo: 1 }); // throws, or answers not ok, when the login is refused
  if (!res.ok) throw new Error(`root login refused: ${res.codeName}`);
  return admin;
}

let admin;
try {
  admin = rootAdmin();
} catch (e) {
  // No root user yet (a fresh set): the localhost exception allows creating the first user, on
  // the primary; the first member is the one preferred as primary.
  retry("this member to be primary", 300, () => localAdmin.runCommand({ hello: 1 }).isWritablePrimary);
  const res = localAdmin.runCommand({
    createUser: "root",
    pwd: rootPassword,
    roles: [{ role: "root", db: "admin" }],
    writeConcern: majority,
  });
  if (!res.ok) throw new Error(`mongo-init: creating root failed (${res.codeName}: ${res.errmsg}); was it ${e}?`);
  print("mongo-init: user root created");
  admin = retry("the root login", 60, rootAdmin);
}

for (const u of users) {
  const exists = admin.runCommand({ usersInfo: u.user }).users.length > 0;
  const res = admin.runCommand(
    exists
      ? { updateUser: u.user, pwd: u.pwd, roles: u.roles, writeConcern: majority }
      : { createUser: u.user, pwd: u.pwd, roles: u.roles, writeConcern: majority },
  );
  if (!res.ok) throw new Error(`mongo-init: user ${u.user}: ${res.codeName}: ${res.errmsg}`);
  print(`mongo-init: user ${u.user} ${exists ? "updated" : "created"}`);
}
print(`mongo-init: replica set ${setName} ready`);
