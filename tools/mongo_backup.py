"""Back up and restore baocao's MongoDB database.

    python -m tools.mongo_backup dump    --out DIR     [--uri URI] [--db NAME] [--engine auto|mongodump|python]
    python -m tools.mongo_backup restore --from DIR    [--uri URI] [--db NAME] [--drop] [--engine ...]

URI: MONGODB_URI by default (log in as a user with the backup and restore roles, e.g. docker-compose's
`backup`); NAME: MONGODB_DATABASE, else baocao. The backup is a folder in mongodump's layout:
DIR/<db>/<collection>.bson (the documents, BSON one after another) and <collection>.metadata.json
(its indexes), so mongorestore can read what this writes and the other way round.

Engines: ``mongodump`` runs MongoDB's mongodump/mongorestore (MongoDB's Database Tools, installed
from MongoDB's own packages: neither Debian nor the Go module proxy serves them); ``python`` does
the same with PyMongo, for hosts without them; ``auto`` (the default) takes mongodump when it is on
the PATH. On a replica set the python engine reads every collection at one point in time (a
snapshot session), as ``mongodump --oplog`` would for a whole server; on a single server it reads
the collections one after another.

A restore writes with write concern majority; without --drop, documents whose _id exists are
left as they are and counted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bson
from bson.json_util import dumps as json_dumps
from bson.json_util import loads as json_loads
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.errors import BulkWriteError, OperationFailure
from pymongo.write_concern import WriteConcern

from shared.adapters.mongo import redact_uri

BATCH = 1000
MAJORITY = WriteConcern(w="majority", wtimeout=60_000)


def _client(uri: str) -> MongoClient[Any]:
    return MongoClient(uri, serverSelectionTimeoutMS=10_000, appname="baocao-backup")


@contextmanager
def _snapshot(client: MongoClient[Any]) -> Iterator[ClientSession | None]:
    """A snapshot session on a replica set (one point in time for every read), None elsewhere."""
    try:
        hello = client.admin.command("hello")
    except OperationFailure:  # servers from before MongoDB 4.4 (and mongo-java-server) know only isMaster
        hello = client.admin.command("isMaster")
    if not hello.get("setName"):
        yield None
        return
    with client.start_session(snapshot=True) as session:
        yield session


def dump(uri: str, database: str, out: Path) -> dict[str, int]:
    """Every collection of ``database`` into ``out``/``database``; {collection: documents}."""
    target = out / database
    target.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with _client(uri) as client, _snapshot(client) as session:
        db = client[database]
        for info in db.list_collections(session=session):
            name = info["name"]
            if name.startswith("system.") or info.get("type", "collection") != "collection":
                continue
            raw = db.get_collection(name).with_options(codec_options=bson.CodecOptions(document_class=RawBSONDocument))
            n = 0
            with (target / f"{name}.bson").open("wb") as f:
                for doc in raw.find({}, session=session, sort=[("_id", 1)]):
                    f.write(doc.raw)
                    n += 1
            indexes = list(db[name].list_indexes(session=session))
            meta = {
                "options": info.get("options", {}),
                "indexes": indexes,
                "collectionName": name,
                "type": "collection",
            }
            (target / f"{name}.metadata.json").write_text(json_dumps(meta))
            counts[name] = n
    return counts


def dump_folder(source: Path, database: str) -> Path:
    """The folder of one database's .bson files in ``source``: ``source`` itself, its
    ``database`` folder, or the only database folder of a dump's root."""
    if any(source.glob("*.bson")):
        return source
    if (source / database).is_dir():
        return source / database
    found = [d for d in source.iterdir() if d.is_dir() and any(d.glob("*.bson"))] if source.is_dir() else []
    if len(found) != 1:
        raise SystemExit(f"mongo_backup: name the folder of one database's .bson files, not {source}")
    return found[0]


def restore(uri: str, database: str, source: Path, drop: bool = False) -> dict[str, tuple[int, int]]:
    """The collections dumped in ``source`` (see dump_folder) into ``database``;
    {collection: (inserted, already there)}."""
    folder = dump_folder(source, database)
    files = sorted(folder.glob("*.bson"))
    out: dict[str, tuple[int, int]] = {}
    with _client(uri) as client:
        db = client[database]
        for path in files:
            name = path.name[: -len(".bson")]
            col = db.get_collection(name, write_concern=MAJORITY)
            if drop:
                col.drop()
            meta_path = folder / f"{name}.metadata.json"
            meta = json_loads(meta_path.read_text()) if meta_path.exists() else {}
            for index in meta.get("indexes", []):
                if index.get("name") == "_id_":
                    continue
                keys = list(index["key"].items())
                options = {k: v for k, v in index.items() if k not in ("key", "v", "ns")}
                col.create_index(keys, **options)
            inserted = existing = 0
            with path.open("rb") as f:
                batch: list[dict[str, Any]] = []
                for doc in bson.decode_file_iter(f):
                    batch.append(doc)
                    if len(batch) >= BATCH:
                        i, e = _insert(col, batch)
                        inserted, existing, batch = inserted + i, existing + e, []
                if batch:
                    i, e = _insert(col, batch)
                    inserted, existing = inserted + i, existing + e
            out[name] = (inserted, existing)
    return out


def _insert(col: Any, docs: list[dict[str, Any]]) -> tuple[int, int]:
    try:
        return len(col.insert_many(docs, ordered=False).inserted_ids), 0
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        # unordered: every document was inserted or is among the errors
        return len(docs) - len(errors), len(errors)


def mongodump_command(config: Path, database: str, out: Path) -> list[str]:
    return ["mongodump", f"--config={config}", f"--db={database}", f"--out={out}"]


def mongorestore_command(config: Path, database: str, source: Path, drop: bool) -> list[str]:
    cmd = ["mongorestore", f"--config={config}", "--writeConcern=majority"]
    if drop:
        cmd.append("--drop")
    return [*cmd, f"--db={database}", str(dump_folder(source, database))]


@contextmanager
def tools_config(uri: str) -> Iterator[Path]:
    """The URI in an owner-only config file (the Database Tools' --config), so the password is
    not on a command line that every local user can read."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="baocao-backup-") as tmp:
        path = Path(tmp) / "tools.yaml"
        path.touch(mode=0o600)
        path.write_text(f"uri: {json.dumps(uri)}\n")
        yield path


def engine(choice: str, tool: str) -> str:
    if choice == "auto":
        return "mongodump" if shutil.which(tool) else "python"
    if choice == "mongodump" and not shutil.which(tool):
        raise SystemExit(f"mongo_backup: {tool} is not on the PATH (MongoDB's Database Tools); use --engine python")
    return choice


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("dump", "restore"):
        p = sub.add_parser(name)
        p.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
        p.add_argument("--db", default=os.environ.get("MONGODB_DATABASE", "baocao"))
        p.add_argument("--engine", choices=("auto", "mongodump", "python"), default="auto")
        if name == "dump":
            p.add_argument("--out", type=Path, required=True)
        else:
            p.add_argument("--from", dest="source", type=Path, required=True)
            p.add_argument("--drop", action="store_true", help="drop each collection before restoring it")
    args = parser.parse_args(argv)
    if not args.uri:
        parser.error("set MONGODB_URI or pass --uri")
    if args.command == "dump":
        if engine(args.engine, "mongodump") == "mongodump":
            with tools_config(args.uri) as config:
                return subprocess.run(mongodump_command(config, args.db, args.out), check=False).returncode
        counts = dump(args.uri, args.db, args.out)
        print(json.dumps({"dumped": counts, "from": redact_uri(args.uri), "to": str(args.out / args.db)}))
        return 0
    if engine(args.engine, "mongorestore") == "mongodump":
        with tools_config(args.uri) as config:
            cmd = mongorestore_command(config, args.db, args.source, args.drop)
            return subprocess.run(cmd, check=False).returncode
    result = restore(args.uri, args.db, args.source, args.drop)
    print(json.dumps({"restored": {k: {"inserted": i, "existing": e} for k, (i, e) in result.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
